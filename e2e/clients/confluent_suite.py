"""Compatibility suite for confluent-kafka (librdkafka) against a running broker.

Usage: python confluent_suite.py --bootstrap HOST:PORT PHASE [--records N] [--tag T]
Phases (each prints one JSON line and exits 0 on success, 1 with a reason on failure):
  roundtrip     create a 3-partition topic, produce N keyed records with headers and timestamps
                (acks=all), consume them from the beginning, compare checksums
  idempotent    enable.idempotence=true producer; every record exactly once, in order per partition
  admin         create/describe/alter/partitions/delete topics and the error codes of bad input
  group         3 consumers in one group: rebalance on join and leave; all records consumed; commit
  group-resume  (after a broker restart) the group resumes from its committed offsets
  acked         produce (acks=all, idempotent), printing each acknowledgement, until killed
  verify-acked  every acknowledged record of --acked-file is stored once, at its offset
  max-timestamp AdminClient list_offsets with OffsetSpec.max_timestamp() (ListOffsets v7+):
                the first record with the largest timestamp, also inside a batch
  static        two static members (group.instance.id); one process is SIGKILLed and restarted
                within the session timeout: no rebalance, both keep their partitions
  static-member (run by `static`) one static consumer printing each assignment
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, OffsetSpec

from suite_common import check_records, digest, fail, parse_args, record


def create_topic(admin, name, partitions=3, config=None):
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(timeout=30)


def produce_record(producer, topic, i, on_delivery):
    """Produces record(i), waiting for room in the producer's queue, then serves callbacks."""
    key, value, headers, ts = record(i)
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, timestamp=ts, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


def produce(bootstrap, topic, count, extra=None, start=0):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    conf.update(extra or {})
    producer = Producer(conf)
    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((msg.partition(), msg.offset()))

    for i in range(start, start + count):
        produce_record(producer, topic, i, on_delivery)
    remaining = producer.flush(60)
    if remaining or errors:
        fail(f"produce: {remaining} undelivered, errors {errors[:3]}")
    return delivered


def consume_all(bootstrap, topic, count, group=None, timeout=60):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"reader-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    items = []
    positions = {}
    keys_by_partition = {}
    deadline = time.time() + timeout
    while len(items) < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume: {msg.error()}")
        ts_type, ts = msg.timestamp()
        items.append((msg.key(), msg.value(), [(k, v) for k, v in (msg.headers() or [])], ts))
        positions.setdefault(msg.partition(), []).append(msg.offset())
        keys_by_partition.setdefault(msg.partition(), []).append(msg.key())
    consumer.close()
    return items, positions, keys_by_partition


def phase_roundtrip(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"roundtrip-{args.tag}"
    create_topic(admin, topic)
    produce(args.bootstrap, topic, args.records, {"compression.type": "lz4"})
    items, positions, _ = consume_all(args.bootstrap, topic, args.records)
    check_records(items, args.records)
    for partition, offsets in positions.items():
        if offsets != list(range(len(offsets))):
            fail(f"partition {partition}: offsets not dense from 0")
    return {"records": len(items), "sha256": digest(items)}


def phase_idempotent(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"idempotent-{args.tag}"
    create_topic(admin, topic)
    produce(args.bootstrap, topic, args.records, {"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    items, _, keys_by_partition = consume_all(args.bootstrap, topic, args.records)
    keys = [k for k, _, _, _ in items]
    if len(keys) != args.records or len(set(keys)) != args.records:
        fail(f"idempotent: {len(keys)} records, {len(set(keys))} distinct, expected {args.records}")
    # Per partition, records appear in production order.
    for partition, pkeys in keys_by_partition.items():
        indexes = [int(k.split(b"-")[1]) for k in pkeys]
        if indexes != sorted(indexes):
            fail(f"idempotent: partition {partition} is out of production order")
    return {"records": len(items), "distinct": len(set(keys))}


def expect_error(future, code, what):
    try:
        future.result(timeout=30)
    except KafkaException as e:
        got = e.args[0].code()
        if got != code:
            fail(f"{what}: expected error {code}, got {got} ({e})")
        return
    fail(f"{what}: expected error {code}, got success")


def phase_admin(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"admin-{args.tag}"
    create_topic(admin, topic, 2, {"retention.ms": "3600000"})
    if topic not in admin.list_topics(timeout=10).topics:
        fail("created topic not listed")
    expect_error(admin.create_topics([NewTopic(topic, 1, 1)])[topic], KafkaError.TOPIC_ALREADY_EXISTS, "duplicate topic")
    expect_error(admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"], KafkaError.TOPIC_EXCEPTION, "bad topic name")
    expect_error(admin.create_topics([NewTopic(f"rf-{args.tag}", 1, 3)])[f"rf-{args.tag}"], KafkaError.INVALID_REPLICATION_FACTOR, "replication factor 3")
    expect_error(admin.create_topics([NewTopic(f"cfg-{args.tag}", 1, 1, config={"retention.ms": "soon"})])[f"cfg-{args.tag}"], KafkaError.INVALID_CONFIG, "bad config")
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    if configs["retention.ms"].value != "3600000" or configs["cleanup.policy"].value != "delete":
        fail(f"describe_configs: {configs['retention.ms'].value} {configs['cleanup.policy'].value}")
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "7200000", "segment.bytes": "1048576"})
    admin.alter_configs([resource])[resource].result(timeout=30)
    configs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    configs = list(configs.values())[0].result(timeout=30)
    if configs["retention.ms"].value != "7200000" or configs["segment.bytes"].value != "1048576":
        fail("alter_configs did not take effect")
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
    if len(admin.list_topics(topic, timeout=10).topics[topic].partitions) != 4:
        fail("create_partitions did not take effect")
    expect_error(admin.create_partitions([NewPartitions(topic, 2)])[topic], KafkaError.INVALID_PARTITIONS, "shrinking partitions")
    produce(args.bootstrap, topic, 100, {"partitioner": "murmur2"})
    tp = TopicPartition(topic, 0)
    low, high = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "w"}).get_watermark_offsets(tp, timeout=10)
    if high > 0:
        result = admin.delete_records([TopicPartition(topic, 0, high)])
        list(result.values())[0].result(timeout=30)
        low2, _ = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "w"}).get_watermark_offsets(tp, timeout=10)
        if low2 != high:
            fail(f"delete_records: low watermark {low2}, expected {high}")
    admin.delete_topics([topic])[topic].result(timeout=30)
    if topic in admin.list_topics(timeout=10).topics:
        fail("deleted topic still listed")
    return {"checked": "create, duplicate, bad name, rf, bad config, describe, alter, partitions, delete_records, delete"}


class Member(threading.Thread):
    def __init__(self, bootstrap, topic, group, name):
        super().__init__(daemon=True)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        })
        self.topic = topic
        self.seen = []
        self.assignments = []
        self.stop = threading.Event()

    def commit_now(self):
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing consumed since the last commit

    def run(self):
        def on_assign(consumer, partitions):
            self.assignments.append(sorted(p.partition for p in partitions))

        def on_revoke(consumer, partitions):
            # What was consumed from a partition is committed before another member takes it.
            self.commit_now()

        self.consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        while not self.stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            self.seen.append(msg.key())
            # Every 100 records asynchronously (a synchronous commit per record made the phase
            # take over a minute on a loaded 2-core machine), and synchronously on revoke and stop.
            if len(self.seen) % 100 == 0:
                self.consumer.commit(asynchronous=True)
        self.commit_now()
        self.consumer.close()


def wait(predicate, timeout, what, detail=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    fail(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


def phase_group(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"group-{args.tag}"
    group = f"group-{args.tag}"
    create_topic(admin, topic, 6)
    members = [Member(args.bootstrap, topic, group, f"m{i}") for i in range(3)]
    members[0].start()
    wait(lambda: members[0].assignments and len(members[0].assignments[-1]) == 6, 60, "first member to own all 6 partitions")
    produce(args.bootstrap, topic, args.records // 2)
    for m in members[1:]:
        m.start()
    wait(lambda: all(m.assignments and len(m.assignments[-1]) == 2 for m in members), 60, "3 members with 2 partitions each")
    produce(args.bootstrap, topic, args.records - args.records // 2, start=args.records // 2)
    members[2].stop.set()
    members[2].join(30)
    wait(lambda: all(m.assignments and len(m.assignments[-1]) == 3 for m in members[:2]), 60, "2 members with 3 partitions each after a leave")
    expected = {record(i)[0] for i in range(args.records)}
    wait(lambda: expected <= set(k for m in members for k in m.seen), 60, "every record consumed by the group",
         lambda: {"missing": len(expected - set(k for m in members for k in m.seen)),
                  "seen": [len(m.seen) for m in members], "assignments": [m.assignments for m in members]})
    for m in members[:2]:
        m.stop.set()
        m.join(30)
    return {"records": len(expected), "rebalances": [len(m.assignments) for m in members]}


def phase_group_resume(args):
    topic = f"group-{args.tag}"
    group = f"group-{args.tag}"
    produce(args.bootstrap, topic, 100, start=args.records)
    member = Member(args.bootstrap, topic, group, "resumer")
    member.start()
    wait(lambda: len(member.seen) >= 100, 60, "the 100 records produced after the restart")
    time.sleep(1)
    member.stop.set()
    member.join(30)
    fresh = {record(i)[0] for i in range(args.records, args.records + 100)}
    if set(member.seen) != fresh:
        old = len(set(member.seen) - fresh)
        fail(f"resume: {old} already-committed records consumed again, {len(fresh - set(member.seen))} missing")
    return {"resumed": len(member.seen)}


def phase_acked(args):
    """Produce (acks=all, idempotent) until N are acknowledged or the process is killed, printing
    `acked <key> <partition> <offset>` for each acknowledgement as it arrives."""
    topic = f"acked-{args.tag}"
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 2, "message.timeout.ms": 5000})

    def on_delivery(err, msg):
        if err is None:
            print(f"acked {msg.key().decode()} {msg.partition()} {msg.offset()}", flush=True)

    for i in range(args.records):
        produce_record(producer, topic, i, on_delivery)
    producer.flush(30)
    return {"produced": args.records}


def phase_verify_acked(args):
    """Every acknowledged record (from --acked-file) is readable at its acknowledged offset, and no
    record appears twice."""
    acked = {}
    with open(args.acked_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "acked":
                acked[parts[1].encode()] = (int(parts[2]), int(parts[3]))
    if not acked:
        fail("no acknowledged records to verify")
    topic = f"acked-{args.tag}"
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"verify-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.partition.eof": True})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found = {}
    duplicates = 0
    eof = set()
    deadline = time.time() + 60
    while len(eof) < len(partitions) and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            fail(f"verify: {msg.error()}")
        if msg.key() in found:
            duplicates += 1
        found[msg.key()] = (msg.partition(), msg.offset())
    consumer.close()
    missing = [k for k in acked if k not in found]
    moved = [k for k, where in acked.items() if k in found and found[k] != where]
    if missing or moved or duplicates:
        fail(f"{len(missing)} acknowledged records missing, {len(moved)} at another offset, {duplicates} duplicates")
    return {"acknowledged": len(acked), "stored": len(found)}


def phase_max_timestamp(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"maxts-{args.tag}"
    create_topic(admin, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 200})
    # Offsets 0 and 1 alone, 2-4 in one batch (its max in the middle), 5 alone with the same max.
    for group in ([base], [base + 4_000], [base + 100, base + 9_000, base + 200], [base + 9_000]):
        for ts in group:
            producer.produce(topic, key=b"k", value=str(ts).encode(), partition=0, timestamp=ts)
        producer.flush(30)
    tp = TopicPartition(topic, 0)
    got = {}
    for name, spec in [("max", OffsetSpec.max_timestamp()), ("earliest", OffsetSpec.earliest()),
                       ("latest", OffsetSpec.latest())]:
        info = admin.list_offsets({tp: spec}, request_timeout=30)[tp].result(timeout=30)
        got[name] = [info.offset, info.timestamp]
    expected = {"max": [3, base + 9_000], "earliest": [0, -1], "latest": [6, -1]}
    if got != expected:
        fail(f"list_offsets: got {got}, expected {expected}")
    return got


STATIC_SESSION_MS = 10_000


def static_consumer(bootstrap, group, instance):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": instance,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": STATIC_SESSION_MS,
        "heartbeat.interval.ms": 500,
    })


def phase_static_member(args):
    consumer = static_consumer(args.bootstrap, f"static-{args.tag}", "restarter")

    def on_assign(consumer, partitions):
        print("assigned " + json.dumps(sorted(p.partition for p in partitions)), flush=True)

    consumer.subscribe([f"static-{args.tag}"], on_assign=on_assign)
    while True:  # until killed
        consumer.poll(0.2)


def phase_static(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = group = f"static-{args.tag}"
    create_topic(admin, topic, 4)
    events = []
    survivor = static_consumer(args.bootstrap, group, "survivor")
    survivor.subscribe([topic], on_assign=lambda c, ps: events.append(("assign", sorted(p.partition for p in ps))),
                       on_revoke=lambda c, ps: events.append(("revoke", sorted(p.partition for p in ps))))
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            survivor.poll(0.2)
    poller = threading.Thread(target=poll)
    poller.start()

    children = []

    def spawn():
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--bootstrap", args.bootstrap,
                                  "--tag", args.tag, "static-member"], stdout=subprocess.PIPE, text=True)
        children.append(child)
        lines = []
        threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True).start()
        return child, lines

    def assigned(lines):
        return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("assigned ")]

    def members():
        described = admin.describe_consumer_groups([group])[group].result(timeout=30)
        return str(described.state), sorted((m.group_instance_id, m.member_id) for m in described.members)

    try:
        wait(lambda: events and events[-1] == ("assign", [0, 1, 2, 3]), 60, "the survivor to own 4 partitions",
             lambda: events)
        child, lines = spawn()
        wait(lambda: assigned(lines) and len(assigned(lines)[-1]) == 2 and events[-1][0] == "assign"
             and len(events[-1][1]) == 2, 60, "2 partitions each", lambda: (events, lines))
        before_child, before_events, before_members = assigned(lines)[-1], list(events), members()
        # SIGKILL (no LeaveGroup) and restart at once, well within the session timeout.
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        killed_at = time.time()
        child, lines = spawn()
        wait(lambda: assigned(lines), 60, "the restarted member's assignment", lambda: lines)
        restarted_in = time.time() - killed_at
        if restarted_in * 1000 >= STATIC_SESSION_MS:
            fail(f"the restart took {restarted_in:.1f} s, not within the session timeout")
        # Give a rebalance, if one were coming, time to show on the survivor.
        time.sleep(3)
        after_members = members()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        if assigned(lines) != [before_child]:
            fail(f"restarted member: assignments {assigned(lines)}, before {before_child}")
        if events != before_events:
            fail(f"the survivor saw a rebalance: {events[len(before_events):]}")
        if after_members[0] != "ConsumerGroupState.STABLE" or len(after_members[1]) != 2:
            fail(f"group after the restart: {after_members}")
        old_ids = dict(before_members[1])
        new_ids = dict(after_members[1])
        if old_ids["survivor"] != new_ids["survivor"] or old_ids["restarter"] == new_ids["restarter"]:
            fail(f"member ids before {old_ids}, after {new_ids}")
        return {"restarted_in_s": round(restarted_in, 2), "kept": before_child, "survivor_events": len(events)}
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait(30)
        stop.set()
        poller.join(30)
        survivor.close()


def main():
    args = parse_args(["roundtrip", "idempotent", "admin", "group", "group-resume", "acked", "verify-acked",
                       "max-timestamp", "static", "static-member"],
                      "--acked-file")
    result = globals()["phase_" + args.phase.replace("-", "_")](args)
    print(json.dumps({"ok": True, "phase": args.phase, **result}))


if __name__ == "__main__":
    main()
