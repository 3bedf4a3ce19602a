"""Compatibility suite for kafka-python (3.x) against a running broker.

Usage: python kafka_python_suite.py --bootstrap HOST:PORT PHASE [--records N] [--tag T]
Phases (each prints one JSON line and exits 0 on success, 1 with a reason on failure):
  roundtrip     create a 3-partition topic, produce N keyed records with headers and timestamps
                (acks=all, gzip), consume them from the beginning, compare checksums
  idempotent    enable_idempotence=True producer; every record exactly once, in order per partition
  admin         create/describe/alter/partitions/delete_records/delete topics and the error
                classes of bad input
  group         3 consumers in one group: rebalance on join and leave; all records consumed; commit
  group-resume  (after a broker restart) the group resumes from its committed offsets

Mirrors confluent_suite.py, in kafka-python terms.
"""

import json
import threading
import time

import kafka
import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, ConfigResource, ConfigResourceType, OffsetSpec
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from suite_common import check_records, digest, fail, parse_args, record


def index_of(key):
    return int(key.decode().split("-", 1)[1])


def describe_error(e):
    errno = getattr(e, "errno", None)
    return f"{type(e).__name__}(errno={errno}): {e}"


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def create_topic(admin, name, partitions=3, config=None):
    admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1, "configs": config or {}}})


def produce(bootstrap, topic, count, extra=None, start=0):
    """Produce records start..start+count; returns [(partition, offset, key)] from the delivery reports."""
    conf = {"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 5}
    conf.update(extra or {})
    producer = KafkaProducer(**conf)
    futures = []
    for i in range(start, start + count):
        key, value, headers, ts = record(i)
        futures.append((key, producer.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts)))
    producer.flush(timeout=60)
    undelivered = sum(1 for _, f in futures if not f.is_done)
    errors = [describe_error(f.exception) for _, f in futures if f.is_done and f.failed()]
    delivered = [(f.value.partition, f.value.offset, key) for key, f in futures if f.is_done and f.succeeded()]
    producer.close(timeout=10)
    if undelivered or errors:
        fail(f"produce: {undelivered} undelivered, {len(errors)} errors {errors[:3]}")
    return delivered, producer


def normalize_headers(headers):
    return [(k, bytes(v) if v is not None else None) for k, v in (headers or [])]


def consume_all(bootstrap, topic, count, group=None, timeout=60):
    """Read `count` records of `topic` from the beginning with a fresh group.

    Returns (items, positions, extra): items as (key, value, headers, timestamp), positions as
    {partition: [(offset, key), ...]} in consumption order, and the number of records that arrived
    after `count` had been reached (a broker serving duplicates or phantom records)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group or f"reader-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    consumer.subscribe([topic])
    items = []
    positions = {}
    timestamp_types = set()

    def take(batch):
        for tp, records in batch.items():
            for msg in records:
                items.append((msg.key, msg.value, normalize_headers(msg.headers), msg.timestamp))
                positions.setdefault(tp.partition, []).append((msg.offset, msg.key))
                timestamp_types.add(msg.timestamp_type)

    deadline = time.time() + timeout
    while len(items) < count and time.time() < deadline:
        take(consumer.poll(timeout_ms=500))
    reached = len(items)
    # One more fetch round: nothing beyond what was produced may show up.
    drain_until = time.time() + 1.5
    while time.time() < drain_until:
        take(consumer.poll(timeout_ms=300))
    consumer.close()
    if timestamp_types - {0}:
        fail(f"consume: timestamp types {sorted(timestamp_types)}, expected only 0 (CreateTime)")
    return items, positions, len(items) - reached


def check_offsets(delivered, positions):
    """Consumed offsets are dense from 0 per partition and match the producer's delivery reports."""
    for partition, seen in positions.items():
        offsets = [o for o, _ in seen]
        if offsets != list(range(len(offsets))):
            fail(f"partition {partition}: offsets not dense from 0 (first {offsets[:5]}, count {len(offsets)})")
    produced = sorted(delivered)
    consumed = sorted((p, o, k) for p, seen in positions.items() for o, k in seen)
    if produced != consumed:
        mismatch = sorted(set(produced) ^ set(consumed))[:3]
        fail(f"(partition, offset, key) of consumed records differ from delivery reports, e.g. {mismatch}")


def phase_roundtrip(args):
    admin = admin_client(args.bootstrap)
    topic = f"roundtrip-{args.tag}"
    create_topic(admin, topic)
    # Plain (non-idempotent) acks=all producer, as librdkafka's default in the confluent suite;
    # kafka-python 3 would otherwise default to idempotence.
    delivered, _ = produce(args.bootstrap, topic, args.records, {"compression_type": "gzip", "enable_idempotence": False})
    items, positions, extra = consume_all(args.bootstrap, topic, args.records)
    check_records(items, args.records, f" ({extra} after reaching the count)")
    check_offsets(delivered, positions)
    if len(positions) != 3:
        fail(f"records landed in partitions {sorted(positions)}, expected all of 0..2")
    admin.close()
    return {"records": len(items), "sha256": digest(items), "compression": "gzip"}


def phase_idempotent(args):
    admin = admin_client(args.bootstrap)
    topic = f"idempotent-{args.tag}"
    create_topic(admin, topic)
    delivered, producer = produce(args.bootstrap, topic, args.records,
                                  {"enable_idempotence": True, "max_in_flight_requests_per_connection": 5})
    # The producer must really have been idempotent: it got a producer id from InitProducerId.
    tm = producer._transaction_manager
    if tm is None or not producer.config["enable_idempotence"]:
        fail("idempotent: kafka-python disabled idempotence")
    pid = tm.producer_id_and_epoch.producer_id
    epoch = tm.producer_id_and_epoch.epoch
    if pid is None or pid < 0:
        fail(f"idempotent: producer never obtained a producer id (got {pid})")
    items, positions, extra = consume_all(args.bootstrap, topic, args.records)
    keys = [k for k, _, _, _ in items]
    if len(keys) != args.records or len(set(keys)) != args.records:
        fail(f"idempotent: {len(keys)} records, {len(set(keys))} distinct, expected {args.records}")
    if digest(items) != digest([record(i) for i in range(args.records)]):
        fail("idempotent: checksum of consumed records differs from produced")
    check_offsets(delivered, positions)
    # Per partition, records appear in production order.
    for partition, seen in positions.items():
        order = [index_of(k) for _, k in seen]
        if order != sorted(order):
            bad = next(n for n in range(1, len(order)) if order[n] < order[n - 1])
            fail(f"idempotent: partition {partition} out of production order at offset {bad}: {order[bad - 1]} then {order[bad]}")
    admin.close()
    return {"records": len(items), "distinct": len(set(keys)), "producer_id": pid, "epoch": epoch}


def expect_error(fn, error_class, what):
    try:
        fn()
    except error_class:
        return
    except Errors.KafkaError as e:
        fail(f"{what}: expected {error_class.__name__} (errno {getattr(error_class, 'errno', None)}), got {describe_error(e)}")
    fail(f"{what}: expected {error_class.__name__}, got success")


def topic_configs(admin, topic):
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    try:
        configs = result["topic"][topic]
    except KeyError:
        fail(f"describe_configs: no result for topic {topic}: {result}")
    return {name: entry.get("value") for name, entry in configs.items()}


def partition_count(admin, topic):
    for t in admin.describe_topics([topic]):
        if t["name"] == topic:
            if t["error_code"] != 0:
                fail(f"describe_topics {topic}: error {Errors.for_code(t['error_code']).__name__}")
            return len(t["partitions"])
    fail(f"describe_topics: {topic} missing")


def watermarks(admin, tp):
    low = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset
    high = admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset
    return low, high


def phase_admin(args):
    admin = admin_client(args.bootstrap)
    notes = []
    topic = f"admin-{args.tag}"
    create_topic(admin, topic, 2, {"retention.ms": "3600000"})
    if topic not in admin.list_topics():
        fail("created topic not listed")
    expect_error(lambda: create_topic(admin, topic, 1), Errors.TopicAlreadyExistsError, "duplicate topic")
    expect_error(lambda: create_topic(admin, "bad/name", 1), Errors.InvalidTopicError, "bad topic name")
    expect_error(lambda: admin.create_topics({f"rf-{args.tag}": {"num_partitions": 1, "replication_factor": 3}}),
                 Errors.InvalidReplicationFactorError, "replication factor 3")
    expect_error(lambda: create_topic(admin, f"cfg-{args.tag}", 1, {"retention.ms": "soon"}),
                 Errors.InvalidConfigurationError, "bad config")
    for name in ("bad/name", f"rf-{args.tag}", f"cfg-{args.tag}"):
        if name in admin.list_topics():
            fail(f"rejected topic {name} exists anyway")

    configs = topic_configs(admin, topic)
    if configs.get("retention.ms") != "3600000" or configs.get("cleanup.policy") != "delete":
        fail(f"describe_configs: retention.ms={configs.get('retention.ms')} cleanup.policy={configs.get('cleanup.policy')}")

    # Default path: IncrementalAlterConfigs when the broker advertises it, else AlterConfigs.
    incremental = admin._check_incremental_alter_configs_support()
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                 {"retention.ms": "7200000", "segment.bytes": "1048576"})])
    if result.get("topic", {}).get(topic) != "OK":
        fail(f"alter_configs (incremental={incremental}): {result}")
    configs = topic_configs(admin, topic)
    if configs.get("retention.ms") != "7200000" or configs.get("segment.bytes") != "1048576":
        fail(f"alter_configs did not take effect: retention.ms={configs.get('retention.ms')} segment.bytes={configs.get('segment.bytes')}")
    if incremental:
        # Legacy AlterConfigs too (the confluent suite's path); kafka-python resends the other
        # modified keys, so segment.bytes must survive.
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "3600000"})],
                                     incremental=False)
        if result.get("topic", {}).get(topic) != "OK":
            fail(f"alter_configs (legacy AlterConfigs): {result}")
        configs = topic_configs(admin, topic)
        if configs.get("retention.ms") != "3600000" or configs.get("segment.bytes") != "1048576":
            fail(f"legacy alter_configs: retention.ms={configs.get('retention.ms')} segment.bytes={configs.get('segment.bytes')}")
    else:
        notes.append("broker lacks IncrementalAlterConfigs; only legacy AlterConfigs checked")

    admin.create_partitions({topic: 4})
    if partition_count(admin, topic) != 4:
        fail(f"create_partitions did not take effect: {partition_count(admin, topic)} partitions")
    expect_error(lambda: admin.create_partitions({topic: 2}), Errors.InvalidPartitionsError, "shrinking partitions")
    if partition_count(admin, topic) != 4:
        fail("rejected shrink changed the partition count")

    produce(args.bootstrap, topic, 100)
    tp = TopicPartition(topic, 0)
    low, high = watermarks(admin, tp)
    if hasattr(admin, "delete_records"):
        if low != 0 or high == 0:
            fail(f"before delete_records: partition 0 watermarks {low}..{high}, expected 0..>0")
        result = admin.delete_records({tp: high})
        if result.get(tp, {}).get("low_watermark") != high:
            fail(f"delete_records: response {result.get(tp)}, expected low_watermark {high}")
        low2, high2 = watermarks(admin, tp)
        if low2 != high or high2 != high:
            fail(f"delete_records: watermarks {low2}..{high2}, expected {high}..{high}")
        delete_records = "checked"
    else:
        delete_records = "skipped: this kafka-python has no KafkaAdminClient.delete_records"
        notes.append(delete_records)

    admin.delete_topics([topic])
    if topic in admin.list_topics():
        fail("deleted topic still listed")
    admin.close()
    return {"checked": "create, duplicate, bad name, rf, bad config, describe, alter"
                       + (" (incremental + legacy)" if incremental else " (legacy)")
                       + ", partitions, shrink, delete_records, delete",
            "delete_records": delete_records, "notes": notes}


class Listener(ConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self.member.assignments.append(sorted(tp.partition for tp in assigned))


class Member(threading.Thread):
    def __init__(self, bootstrap, topic, group, name):
        super().__init__(daemon=True)
        self.conf = dict(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        self.name = name
        self.topic = topic
        self.seen = []
        self.assignments = []
        self.commit_failures = []
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            consumer = KafkaConsumer(**self.conf)
            consumer.subscribe([self.topic], listener=Listener(self))
            while not self.stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                offsets = {}
                for tp, records in batch.items():
                    for msg in records:
                        self.seen.append(msg.key)
                    if records:
                        offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
                if offsets:
                    # Commit after processing. A commit that loses a race with a rebalance is
                    # legal (the records are redelivered to the partition's new owner).
                    try:
                        consumer.commit(offsets)
                    except (Errors.CommitFailedError, Errors.RebalanceInProgressError) as e:
                        self.commit_failures.append(describe_error(e))
            consumer.close()
        except Exception as e:  # reported by wait()
            self.error = describe_error(e)


def wait(predicate, timeout, what, members=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in members:
            if m.error:
                fail(f"member {m.name}: {m.error} (while waiting for {what})")
        if predicate():
            return
        time.sleep(0.2)
    fail(f"timed out waiting for {what}; assignments {[m.assignments[-1:] for m in members]}")


def spread(members, each):
    latest = [m.assignments[-1] if m.assignments else [] for m in members]
    return all(len(a) == each for a in latest) and sorted(p for a in latest for p in a) == list(range(each * len(members)))


def committed_offsets(admin, group):
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    return {tp.partition: om.offset for tp, om in offsets.items()}


def phase_group(args):
    admin = admin_client(args.bootstrap)
    topic = f"group-{args.tag}"
    group = f"group-{args.tag}"
    create_topic(admin, topic, 6)
    members = [Member(args.bootstrap, topic, group, f"m{i}") for i in range(3)]
    members[0].start()
    wait(lambda: spread(members[:1], 6), 60, "first member to own all 6 partitions", members[:1])
    delivered, _ = produce(args.bootstrap, topic, args.records // 2)
    for m in members[1:]:
        m.start()
    wait(lambda: spread(members, 2), 60, "3 members with 2 partitions each", members)
    more, _ = produce(args.bootstrap, topic, args.records - args.records // 2, start=args.records // 2)
    delivered += more
    members[2].stop.set()
    members[2].join(30)
    if members[2].is_alive():
        fail("member m2 did not close within 30s")
    if members[2].error:
        fail(f"member m2: {members[2].error}")
    wait(lambda: spread(members[:2], 3), 60, "2 members with 3 partitions each after a leave", members[:2])
    expected = {record(i)[0] for i in range(args.records)}
    wait(lambda: expected <= set(k for m in members for k in m.seen), 60, "every record consumed by the group", members[:2])
    ends = {}
    for partition, offset, _ in delivered:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    wait(lambda: committed_offsets(admin, group) == ends, 60,
         f"the group's committed offsets to reach the end offsets {ends}", members[:2])
    for m in members[:2]:
        m.stop.set()
        m.join(30)
        if m.is_alive() or m.error:
            fail(f"member {m.name}: {m.error or 'did not close within 30s'}")
    # Committed offsets survive the members leaving.
    final = committed_offsets(admin, group)
    if final != ends:
        fail(f"committed offsets after the group emptied: {final}, expected {ends}")
    admin.close()
    return {"records": len(expected), "consumed": sum(len(m.seen) for m in members),
            "rebalances": [len(m.assignments) for m in members],
            "commit_failures": sum(len(m.commit_failures) for m in members), "committed": ends}


def phase_group_resume(args):
    topic = f"group-{args.tag}"
    group = f"group-{args.tag}"
    produce(args.bootstrap, topic, 100, start=args.records)
    member = Member(args.bootstrap, topic, group, "resumer")
    member.start()
    wait(lambda: len(member.seen) >= 100, 60, "the 100 records produced after the restart", [member])
    time.sleep(1)
    member.stop.set()
    member.join(30)
    if member.error:
        fail(f"resumer: {member.error}")
    fresh = {record(i)[0] for i in range(args.records, args.records + 100)}
    if set(member.seen) != fresh or len(member.seen) != 100:
        old = len(set(member.seen) - fresh)
        fail(f"resume: {old} already-committed records consumed again, {len(fresh - set(member.seen))} missing, "
             f"{len(member.seen)} deliveries in all")
    return {"resumed": len(member.seen)}


def main():
    args = parse_args(["roundtrip", "idempotent", "admin", "group", "group-resume"])
    started = time.time()
    try:
        result = globals()["phase_" + args.phase.replace("-", "_")](args)
    except Exception as e:  # noqa: BLE001 - any client exception is a failed phase
        fail(f"{args.phase}: {describe_error(e)}")
    print(json.dumps({"ok": True, "phase": args.phase, **result,
                      "client": f"kafka-python {kafka.__version__}", "seconds": round(time.time() - started, 2)}))


if __name__ == "__main__":
    main()
