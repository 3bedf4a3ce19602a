"""Fault suite for an hdi-broker cluster: real brokers, real faults, a checker.

Starts three `hdi-broker` processes forming one cluster. Every broker-to-broker link (Raft,
heartbeats, replication) goes through a userspace proxy of this script (`--peer-route`), so a
broker can be cut off from the others while clients still reach it. A topic with replication
factor 3 and min.insync.replicas=2 takes writes from an idempotent acks=all producer (unique
values) while a consumer reads; meanwhile the suite injects faults one after another:

  kill       SIGKILL the leader of a partition, restart it a moment later
  kill-ctl   SIGKILL the controller (metadata quorum leader), restart it
  stop       SIGSTOP a partition leader past the session timeout, then SIGCONT
  partition  cut a partition leader off from the other brokers (both directions), then heal
  partition-kill  cut a leader off, let it take writes it cannot replicate, SIGKILL it, heal
  term       SIGTERM a partition leader (controlled shutdown), restart it

After each fault it waits until the cluster is whole again (every broker serving, every ISR
full). Then the checker reads every partition from the start and requires:

  - 0 acknowledged records lost (each acked value at its acked partition and offset);
  - 0 duplicates within one producer epoch (the idempotent producer's retries across failovers
    are recognised); copies written under different epochs of the producer are counted apart
    (`duplicates_across_epochs`): librdkafka sends possibly written batches again at new
    sequence numbers after it bumps its epoch, which no broker can recognise (see
    `classify_duplicates`);
  - no record the consumer saw during the run later disappeared or changed;
  - every replica's log byte-identical to the leader's;
  - a consumer group that commits throughout (its coordinator is the controller, killed too)
    ends with its committed offsets at the end of every partition.

With --expect-loss the brokers run with --testing-ack-before-replication (acks=all answered
before replication) and only partition-kill faults are injected: the suite then succeeds only if the
checker *finds* lost writes, which shows the checker can fail.

Prints one JSON summary line; exits non-zero when a check fails.
"""

import argparse
import asyncio
import faulthandler
import glob
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "chaos"
PARTITIONS = 3


# Ports handed out by the test harness's race-free allocator (hdi-test-support's `ports`), if
# given: a port read from a port-0 bind and released can be taken before a broker binds it.
PORT_POOL = [int(p) for p in os.environ.get("HDI_TEST_PORTS", "").split(",") if p]


def free_port():
    if PORT_POOL:
        return PORT_POOL.pop(0)
    if "HDI_TEST_PORTS" in os.environ:
        raise RuntimeError("HDI_TEST_PORTS has too few ports for this run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def start_watchdog(seconds, cluster, summary):
    """Ends the suite after `seconds` whatever it is waiting on: prints every thread's stack (to
    show where it hung), stops the brokers, prints the summary with an error and exits 3. The test
    harness's own timeout would kill the suite without any of that."""

    def fire():
        log(f"watchdog: the suite ran past its {seconds}s deadline; thread stacks follow")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        summary["error"] = f"deadline of {seconds}s exceeded"
        try:
            cluster.stop_all()
        finally:
            print(json.dumps(summary, default=str), flush=True)
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


class Link:
    """A proxy from one broker to another's quorum listener that can be cut."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.blocked = False
        self.writers = set()

    async def serve(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()

    async def handle(self, reader, writer):
        self.writers.add(writer)
        try:
            if self.blocked:
                # A cut link: hold the connection and swallow what comes (a black hole).
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers.add(up_writer)

            async def pump(src, dst):
                try:
                    while True:
                        data = await src.read(65536)
                        if not data:
                            break
                        if self.blocked:
                            continue
                        dst.write(data)
                        await dst.drain()
                except (ConnectionError, OSError):
                    pass
                finally:
                    try:
                        dst.close()
                    except Exception:
                        pass

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def close_all(self):
        for w in list(self.writers):
            try:
                w.close()
            except Exception:
                pass
        self.writers.clear()


class Cluster:
    def __init__(self, binary, work, extra_flags, ids=(1, 2, 3)):
        self.binary = binary
        self.work = work
        self.extra = extra_flags
        self.ids = list(ids)
        self.voters = [1, 2, 3]
        self.kafka = {i: free_port() for i in self.ids}
        self.quorum = {i: free_port() for i in self.ids}
        self.links = {(a, b): Link(self.quorum[b]) for a in self.ids for b in self.ids if a != b}
        self.procs = {}
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run_proxies, daemon=True).start()

    def _run_proxies(self):
        asyncio.set_event_loop(self.loop)
        for link in self.links.values():
            self.loop.create_task(link.serve())
        self.loop.run_forever()

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.kafka[i]}" for i in self.voters)

    def start(self, i):
        quorum = ",".join(f"{j}@127.0.0.1:{self.quorum[j]}" for j in self.voters)
        routes = ",".join(f"{j}@127.0.0.1:{self.links[(i, j)].port}" for j in self.ids if j != i)
        args = [
            self.binary, "--node-id", str(i),
            "--data-dir", os.path.join(self.work, f"broker-{i}"),
            "--listen", f"127.0.0.1:{self.kafka[i]}",
            "--quorum-listen", f"127.0.0.1:{self.quorum[i]}",
            "--quorum", quorum, "--peer-route", routes,
            "--rack", f"rack-{i}",
            "--replica-lag-time-max", "3s",
            "--broker-session-timeout", "2s",
        ] + self.extra
        out = open(os.path.join(self.work, f"broker-{i}.log"), "a")
        env = dict(os.environ, RUST_LOG="info,openraft=warn", NO_COLOR="1")
        self.procs[i] = subprocess.Popen(args, stdout=out, stderr=out, env=env)

    def kill(self, i, sig=signal.SIGKILL):
        self.procs[i].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[i].wait()

    def cut(self, i, blocked):
        for (a, b), link in self.links.items():
            if i in (a, b):
                link.blocked = blocked
                self.loop.call_soon_threadsafe(link.close_all)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()


def metadata(admin):
    try:
        return admin.list_topics(timeout=5)
    except KafkaException:
        # librdkafka's admin client can stay stuck on a broken connection after many broker
        # restarts ("Broker transport failure"): ask again through a fresh client.
        fresh = AdminClient({"bootstrap.servers": admin.hdi_bootstrap})
        return fresh.list_topics(timeout=5)


class HdiAdmin(AdminClient):
    """An AdminClient that remembers its bootstrap servers."""


def admin_client(bootstrap):
    admin = HdiAdmin({"bootstrap.servers": bootstrap})
    admin.hdi_bootstrap = bootstrap
    return admin


def wait_whole(cluster, admin, timeout=60):
    """Until all three brokers serve and every partition has a leader and a full ISR."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            md = metadata(admin)
            topic = md.topics.get(TOPIC)
            if len(md.brokers) == 3 and topic is not None and len(topic.partitions) == PARTITIONS:
                parts = topic.partitions.values()
                last = [(p.id, p.leader, p.isrs) for p in parts]
                if all(p.leader >= 0 and len(p.isrs) == 3 for p in parts):
                    return
            else:
                last = (sorted(md.brokers), topic)
        except KafkaException as e:
            last = str(e)
        time.sleep(0.3)
    log(f"cluster not whole after {timeout}s: {last}")
    for i in cluster.ids:
        log(f"broker {i} running: {cluster.procs[i].poll() is None}")
    raise RuntimeError(f"cluster not whole after {timeout}s: {last}")


def leader_of(admin, partition):
    return metadata(admin).topics[TOPIC].partitions[partition].leader


class Workload:
    def __init__(self, bootstrap, rate):
        self.bootstrap = bootstrap
        self.rate = rate
        self.acked = {}  # value -> (partition, offset)
        self.failed = 0
        self.seen = {}  # (partition, offset) -> value
        self.running = True
        self.lock = threading.Lock()
        self.sent = 0
        self.group_pos = {}
        self.fatal = None  # a fatal producer error (librdkafka detects some losses itself)

    def produce(self):
        p = Producer({
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 100,
        })

        def done(err, msg):
            if err is None:
                with self.lock:
                    self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
            else:
                self.failed += 1

        seq = 0
        started = time.time()
        try:
            while self.running:
                target = int((time.time() - started) * self.rate)
                while seq < target and self.running:
                    try:
                        p.produce(TOPIC, f"v{seq:09d}".encode(), partition=seq % PARTITIONS, on_delivery=done)
                        seq += 1
                    except BufferError:
                        p.poll(0.05)
                p.poll(0.01)
            p.flush(60)
        except KafkaException as e:
            self.fatal = str(e)
            log(f"producer failed: {e}")
        self.sent = seq

    def consume_group(self):
        """A consumer group member committing as it goes: it must keep working when its
        coordinator (the controller) or a partition leader dies."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "fault-suite-group",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 500,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
        c.subscribe([TOPIC])
        self.group_read = 0
        self.group_pos = {}
        while self.running or self.consuming:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            self.group_read += 1
            self.group_pos[m.partition()] = m.offset() + 1
        for attempt in range(20):
            try:
                c.commit(asynchronous=False)
                break
            except KafkaException as e:
                if e.args[0].code() == KafkaError._NO_OFFSET:
                    break  # auto-commit already committed the final positions
                log(f"final group commit failed ({e}); retrying")
                time.sleep(0.5)
        close_within(c, 30, "the group consumer")

    def consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "fault-suite-live",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        c.assign([TopicPartition(TOPIC, k, 0) for k in range(PARTITIONS)])
        while self.running or self.consuming:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            with self.lock:
                self.seen[(m.partition(), m.offset())] = m.value().decode()
        close_within(c, 30, "the live consumer")


def close_within(consumer, seconds, what):
    """Consumer.close(), waited for at most `seconds`. librdkafka's close has been seen to block
    for minutes after the fault storm (once in a CI run, in the live consumer, after every record
    was read); the records are in hand by then, so a close that hangs is logged and left behind
    instead of hanging the suite."""
    t = threading.Thread(target=consumer.close, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        log(f"{what}: Consumer.close() still blocked after {seconds}s; left behind")


def read_all(bootstrap):
    """Every record of every partition up to its high watermark as of the call."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-suite-check",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    ends = {}
    for k in range(PARTITIONS):
        for attempt in range(50):
            try:
                ends[k] = c.get_watermark_offsets(TopicPartition(TOPIC, k), timeout=10)[1]
                break
            except KafkaException:
                # A leadership move in progress (the client refreshes its metadata).
                if attempt == 49:
                    raise
                time.sleep(0.2)
    c.assign([TopicPartition(TOPIC, k, 0) for k in range(PARTITIONS) if ends[k] > 0])
    final = {}
    next_offset = {k: 0 for k in range(PARTITIONS)}
    deadline = time.time() + 120
    while any(next_offset[k] < ends[k] for k in range(PARTITIONS)) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.offset() < ends[m.partition()]:
            final[(m.partition(), m.offset())] = m.value().decode()
        next_offset[m.partition()] = m.offset() + 1
    c.close()
    return final


def lost_values(acked, final):
    """Acknowledged values missing from the final log. A value acked with its offset must be at
    that offset; librdkafka's idempotent producer sometimes acknowledges a retried record as
    persisted without an offset: such a value must be somewhere in its partition."""
    by_partition = {}
    for (part, _), value in final.items():
        by_partition.setdefault(part, set()).add(value)
    lost = []
    for value, (part, offset) in acked.items():
        if offset is None:
            if value not in by_partition.get(part, ()):
                lost.append(value)
        elif final.get((part, offset)) != value:
            lost.append(value)
    return lost


def replica_bytes(work, broker, partition):
    dirs = glob.glob(os.path.join(work, f"broker-{broker}", "replicas", f"*-{partition}"))
    data = b""
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, "*.log"))):
            with open(f, "rb") as fh:
                data += fh.read()
    return data


def batch_stamps(data):
    """`(base offset, last offset, producer id, producer epoch)` of every record batch in a
    replica's segment bytes (the v2 batch header: base offset at 0, batch length at 8, last
    offset delta at 23, producer id at 43, producer epoch at 51)."""
    stamps = []
    pos = 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        (last_delta,) = struct.unpack_from(">i", data, pos + 23)
        pid, epoch = struct.unpack_from(">qh", data, pos + 43)
        stamps.append((base, base + last_delta, pid, epoch))
        pos += 12 + length
    return stamps


def classify_duplicates(final, logs):
    """Duplicated values of `final` ((partition, offset) -> value), split by the producer stamps
    of their copies' batches (`logs`: partition -> a replica's segment bytes).

    The broker deduplicates per producer id and epoch, as Kafka does. librdkafka bumps the
    epoch of the whole producer (KIP-360) when a broker answers OUT_OF_ORDER_SEQUENCE_NUMBER to
    a request behind a failed one, which a leader change can cause, and then sends again, at
    new sequence numbers, batches of other partitions that had failed but may have been written
    (librdkafka issue #4953). No broker can recognise those: copies under different epochs are
    the client's duplicates. Copies under one producer id and epoch are the broker's."""
    stamps = {part: batch_stamps(data) for part, data in logs.items()}

    def stamp(part, offset):
        for base, last, pid, epoch in stamps.get(part, ()):
            if base <= offset <= last:
                return (pid, epoch)
        return None

    copies = {}
    for (part, offset), value in final.items():
        copies.setdefault(value, []).append((part, offset))
    same, across, examples = 0, 0, []
    for value, where in sorted(copies.items()):
        if len(where) < 2:
            continue
        seen = [stamp(part, offset) for part, offset in sorted(where)]
        if None not in seen and len(set(seen)) == len(seen):
            across += len(where) - 1
        else:
            same += len(where) - 1
        if len(examples) < 5:
            examples.append([value, [[p, o, s] for (p, o), s in zip(sorted(where), seen)]])
    epochs = sorted({epoch for part in stamps.values() for _, _, pid, epoch in part if pid >= 0})
    return {"duplicates_same_epoch": same, "duplicates_across_epochs": across,
            "duplicate_examples": examples, "producer_epochs": epochs}


def create_topic(cluster, admin):
    deadline = time.time() + 60
    while True:
        try:
            md = metadata(admin)
            if len(md.brokers) < 3 or md.controller_id < 0:
                raise RuntimeError(f"cluster forming: brokers {sorted(md.brokers)}")
            fs = admin.create_topics(
                [NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})],
                request_timeout=10)
            fs[TOPIC].result()
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def minority(args):
    """Two of three brokers down: acks=all writes are not acknowledged, and committed data is
    still read from the surviving leader; after the restart nothing acknowledged is missing."""
    cluster = Cluster(args.broker_bin, args.work_dir, [])
    for i in cluster.ids:
        cluster.start(i)
    admin = admin_client(cluster.bootstrap())
    summary = {"scenario": "minority"}
    try:
        create_topic(cluster, admin)
        wait_whole(cluster, admin)
        p = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all",
                      "enable.idempotence": True, "message.timeout.ms": 8000})
        acked, failed = {}, []

        def done(err, msg):
            if err is None:
                acked[msg.value().decode()] = (msg.partition(), msg.offset())
            else:
                failed.append(str(err))

        for i in range(3000):
            p.produce(TOPIC, f"before-{i}".encode(), partition=0, on_delivery=done)
        p.flush(30)
        summary["acked_before"] = len(acked)
        survivor = leader_of(admin, 0)
        for i in cluster.ids:
            if i != survivor:
                cluster.kill(i)
        log(f"killed every broker but {survivor}, the leader of partition 0")
        time.sleep(1)
        before = len(acked)
        for i in range(500):
            p.produce(TOPIC, f"during-{i}".encode(), partition=0, on_delivery=done)
        p.flush(20)
        summary["acked_during"] = len(acked) - before
        summary["refused_during"] = len(failed)
        # Committed data is still readable from the survivor.
        c = Consumer({"bootstrap.servers": f"127.0.0.1:{cluster.kafka[survivor]}",
                      "group.id": "minority-read", "enable.auto.commit": False})
        c.assign([TopicPartition(TOPIC, 0, 0)])
        read = set()
        deadline = time.time() + 30
        while len(read) < summary["acked_before"] and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                read.add(m.value().decode())
        c.close()
        summary["read_from_survivor"] = len(read)
        for i in cluster.ids:
            if i != survivor:
                cluster.start(i)
        wait_whole(cluster, admin)
        summary["phase"] = "reading every partition"
        final = read_all(cluster.bootstrap())
        summary["lost"] = len(lost_values(acked, final))
    except Exception as e:
        summary["error"] = repr(e)
    finally:
        cluster.stop_all()
    print(json.dumps(summary), flush=True)
    ok = ("error" not in summary and summary["acked_during"] == 0 and summary["lost"] == 0
          and summary["read_from_survivor"] == summary["acked_before"] == 3000
          and summary["refused_during"] == 500)
    sys.stdout.flush()
    os._exit(0 if ok else 1)


def reassign(args):
    """A fourth broker joins the running cluster; broker 1 is drained onto it by partition
    reassignment while a producer, a consumer and a consumer group keep working. Nothing
    acknowledged is lost, the drained broker ends with no replica, and the moved replicas are
    byte-identical to their leaders'."""
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient
    extra = ["--reassignment-throttle", str(args.throttle)] if args.throttle else []
    cluster = Cluster(args.broker_bin, args.work_dir, extra, ids=(1, 2, 3, 4))
    for i in (1, 2, 3):
        cluster.start(i)
    admin = admin_client(cluster.bootstrap())
    summary = {"scenario": "reassign", "throttle": args.throttle}
    try:
        create_topic(cluster, admin)
        wait_whole(cluster, admin)
        work = Workload(cluster.bootstrap(), args.rate)
        work.consuming = True
        threads = [threading.Thread(target=t, daemon=True)
                   for t in (work.produce, work.consume, work.consume_group)]
        for t in threads:
            t.start()
        time.sleep(args.preload_seconds)
        cluster.start(4)
        deadline = time.time() + 60
        while len(metadata(admin).brokers) < 4:
            if time.time() > deadline:
                raise RuntimeError("broker 4 did not join")
            time.sleep(0.3)
        log("broker 4 joined; draining broker 1 onto it")
        kadmin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
        topic = metadata(admin).topics[TOPIC]
        targets = {KTopicPartition(TOPIC, p.id): [4 if r == 1 else r for r in p.replicas]
                   for p in topic.partitions.values()}
        # Each leader sends its partition to broker 4 under its own throttle: the largest
        # partition bounds the time from below.
        summary["bytes_to_move"] = max(
            sum(os.path.getsize(f) for f in glob.glob(os.path.join(d, "*.log")))
            for d in glob.glob(os.path.join(args.work_dir, "broker-1", "replicas", "*")))
        started = time.time()
        answers = kadmin.alter_partition_reassignments(targets)
        summary["alter_errors"] = [str(e) for e in answers.values() if e is not None]
        seen_ongoing = False
        while True:
            ongoing = kadmin.list_partition_reassignments()
            seen_ongoing |= bool(ongoing)
            if not ongoing:
                break
            if time.time() - started > 120:
                raise RuntimeError(f"reassignment did not finish: {ongoing}")
            time.sleep(0.2)
        summary["reassign_seconds"] = round(time.time() - started, 1)
        summary["seen_ongoing"] = seen_ongoing
        md = metadata(admin)
        summary["replicas_after"] = {p.id: p.replicas for p in md.topics[TOPIC].partitions.values()}
        time.sleep(1)
        summary["drained_dirs_left"] = len(glob.glob(os.path.join(args.work_dir, "broker-1", "replicas", "*")))
        summary["new_broker_dirs"] = len(glob.glob(os.path.join(args.work_dir, "broker-4", "replicas", "*")))
        # Preferred elections and log dirs through the admin APIs.
        kadmin.elect_leaders(0, raise_errors=False)
        dirs = kadmin.describe_log_dirs(brokers=[4])
        summary["log_dir_partitions_broker_4"] = sum(
            len(t["partitions"]) for b in dirs for d in b["log_dirs"] for t in d["topics"]
            if t["name"] == TOPIC)
        kadmin.close()
        time.sleep(2)
        work.running = False
        threads[0].join()
        with work.lock:
            acked = dict(work.acked)
        deadline = time.time() + 30
        while time.time() < deadline and len(work.seen) < len(acked):
            time.sleep(0.5)
        work.consuming = False
        for t in threads[1:]:
            t.join()
        summary["phase"] = "reading every partition"
        final = read_all(cluster.bootstrap())
        values = list(final.values())
        summary.update({
            "acked": len(acked), "lost": len(lost_values(acked, final)),
            "duplicates": len(values) - len(set(values)),
            "vanished": len([k for k, v in work.seen.items() if final.get(k) != v]),
            "producer_fatal": work.fatal,
        })
        summary["acked_without_offset"] = sum(1 for _, o in acked.values() if o is None)
        summary["phase"] = "comparing replicas"
        diverged = []
        first = {}
        for part, replicas in summary["replicas_after"].items():
            logs = [replica_bytes(args.work_dir, b, part) for b in replicas]
            first[part] = logs[0]
            if not logs[0] or any(l != logs[0] for l in logs):
                diverged.append(part)
        summary["diverged_replicas"] = diverged
        summary.update(classify_duplicates(final, first))
    except Exception as e:
        summary["error"] = repr(e)
    finally:
        cluster.stop_all()
    throttled_ok = True
    if args.throttle and "error" not in summary:
        # A tenth of a second of burst, then at most `throttle` bytes per second per leader.
        floor = 0.7 * (summary["bytes_to_move"] - args.throttle / 10) / args.throttle
        summary["throttle_floor_seconds"] = round(floor, 1)
        throttled_ok = summary["reassign_seconds"] >= floor
    print(json.dumps(summary), flush=True)
    ok = (throttled_ok and "error" not in summary and summary["lost"] == 0
          and summary["duplicates_same_epoch"] == 0
          and summary["vanished"] == 0 and not summary["producer_fatal"] and not summary["alter_errors"]
          and summary["drained_dirs_left"] == 0 and summary["new_broker_dirs"] == PARTITIONS
          and summary["log_dir_partitions_broker_4"] == PARTITIONS
          and all(1 not in r and 4 in r for r in summary["replicas_after"].values())
          and not summary["diverged_replicas"] and summary["acked"] > 0)
    sys.stdout.flush()
    os._exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker-bin", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--faults", type=int, default=20)
    ap.add_argument("--kinds", default="kill,stop,partition,partition-kill,kill-ctl,term")
    ap.add_argument("--rate", type=int, default=1500, help="records per second")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--expect-loss", action="store_true")
    ap.add_argument("--scenario", choices=["faults", "minority", "reassign"], default="faults")
    ap.add_argument("--throttle", type=int, default=0, help="reassignment throttle, bytes/s")
    ap.add_argument("--preload-seconds", type=float, default=2.0)
    ap.add_argument("--deadline", type=float, default=420.0,
                    help="seconds before the watchdog ends the fault scenario with its stacks")
    args = ap.parse_args()
    if args.scenario == "minority":
        minority(args)
    if args.scenario == "reassign":
        reassign(args)
    random.seed(args.seed)
    extra = ["--testing-ack-before-replication"] if args.expect_loss else []
    kinds = ["partition-kill"] if args.expect_loss else args.kinds.split(",")
    cluster = Cluster(args.broker_bin, args.work_dir, extra)
    for i in cluster.ids:
        cluster.start(i)
    admin = admin_client(cluster.bootstrap())
    summary = {"faults": 0, "kinds": {}}
    start_watchdog(args.deadline, cluster, summary)
    try:
        create_topic(cluster, admin)
        wait_whole(cluster, admin)
        work = Workload(cluster.bootstrap(), args.rate)
        work.consuming = True
        producer = threading.Thread(target=work.produce, daemon=True)
        consumer = threading.Thread(target=work.consume, daemon=True)
        group = threading.Thread(target=work.consume_group, daemon=True)
        producer.start()
        consumer.start()
        group.start()
        time.sleep(2)
        failovers = []
        for n in range(args.faults):
            kind = kinds[n % len(kinds)]
            part = n % PARTITIONS
            victim = leader_of(admin, part)
            if kind == "kill-ctl":
                victim = metadata(admin).controller_id
            if victim not in cluster.ids:
                wait_whole(cluster, admin)
                victim = leader_of(admin, part)
            summary["phase"] = f"fault {n + 1} ({kind} broker {victim})"
            log(f"fault {n + 1}/{args.faults}: {kind} broker {victim}")
            started = time.time()
            if kind in ("kill", "kill-ctl"):
                cluster.kill(victim)
                time.sleep(random.uniform(2.5, 4.0))
                cluster.start(victim)
            elif kind == "term":
                # Controlled shutdown: leadership moves away before the process exits.
                cluster.kill(victim, signal.SIGTERM)
                cluster.procs[victim].wait(timeout=30)
                time.sleep(random.uniform(0.5, 1.5))
                cluster.start(victim)
            elif kind == "stop":
                cluster.kill(victim, signal.SIGSTOP)
                time.sleep(random.uniform(3.0, 4.5))
                cluster.kill(victim, signal.SIGCONT)
            elif kind == "partition":
                cluster.cut(victim, True)
                time.sleep(random.uniform(3.0, 4.5))
                cluster.cut(victim, False)
            elif kind == "partition-kill":
                # The leader keeps taking writes it cannot replicate, then dies: nothing it
                # acknowledged may be lost.
                cluster.cut(victim, True)
                time.sleep(1.5)
                cluster.kill(victim)
                cluster.cut(victim, False)
                time.sleep(random.uniform(1.5, 2.5))
                cluster.start(victim)
            wait_whole(cluster, admin)
            failovers.append(round(time.time() - started, 1))
            summary["faults"] += 1
            summary["kinds"][kind] = summary["kinds"].get(kind, 0) + 1
        time.sleep(2)
        summary["phase"] = "stopping the producer"
        work.running = False
        producer.join()
        wait_whole(cluster, admin)
        with work.lock:
            acked = dict(work.acked)
        # Let the live consumer catch up, then stop it.
        catch_up = time.time() + 30
        while time.time() < catch_up:
            with work.lock:
                if len(work.seen) >= len(acked):
                    break
            time.sleep(0.5)
        acked_ends = {}
        for (part, offset) in acked.values():
            if offset is not None:
                acked_ends[part] = max(acked_ends.get(part, 0), offset + 1)
        while time.time() < catch_up and any(
                work.group_pos.get(k, 0) < acked_ends.get(k, 0) for k in range(PARTITIONS)):
            time.sleep(0.5)
        summary["phase"] = "stopping the consumers"
        work.consuming = False
        consumer.join()
        group.join()
        summary["phase"] = "reading every partition"
        final = read_all(cluster.bootstrap())
        # The group's committed offsets survived every coordinator change and reached the end.
        checker = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "fault-suite-group"})
        committed = checker.committed([TopicPartition(TOPIC, k) for k in range(PARTITIONS)], timeout=20)
        checker.close()
        ends = {}
        for (part, offset) in final:
            ends[part] = max(ends.get(part, 0), offset + 1)
        summary["group_read"] = work.group_read
        summary["group_committed_behind"] = sum(ends.get(tp.partition, 0) - max(tp.offset, 0) for tp in committed)
        values = list(final.values())
        lost = lost_values(acked, final)
        summary["acked_without_offset"] = sum(1 for _, o in acked.values() if o is None)
        duplicates = len(values) - len(set(values))
        vanished = [(k, v) for k, v in work.seen.items() if final.get(k) != v]
        summary["phase"] = "comparing replicas"
        diverged = []
        first = {}
        for part in range(PARTITIONS):
            ok = False
            for _ in range(60):
                logs = [replica_bytes(args.work_dir, b, part) for b in cluster.ids]
                if logs[0] and all(l == logs[0] for l in logs):
                    ok = True
                    break
                time.sleep(0.5)
            first[part] = logs[0]
            if not ok:
                diverged.append((part, [len(l) for l in logs]))
        summary.update(classify_duplicates(final, first))
        logs = "".join(open(os.path.join(args.work_dir, f"broker-{i}.log")).read() for i in cluster.ids)
        summary["controlled_shutdowns_clean"] = logs.count("controlled shutdown: no leaderships left")
        summary["controlled_shutdowns_late"] = logs.count("controlled shutdown: leaderships not moved in time")
        summary.update({
            "sent": work.sent, "acked": len(acked), "not_acked": work.failed, "read": len(final),
            "producer_fatal": work.fatal,
            "lost": len(lost), "duplicates": duplicates, "vanished": len(vanished),
            "diverged_replicas": diverged, "heal_seconds": failovers,
            "lost_examples": lost[:5], "vanished_examples": vanished[:5],
        })
    except Exception as e:
        summary["error"] = repr(e)
    finally:
        cluster.stop_all()
    print(json.dumps(summary), flush=True)
    if "error" in summary:
        os._exit(2)
    if args.expect_loss:
        ok = "error" not in summary and (summary.get("lost", 0) > 0 or bool(summary.get("producer_fatal")))
        log("checker found lost writes in the broken build" if ok else "checker found NO loss in the broken build")
    else:
        ok = (summary["lost"] == 0 and summary["duplicates_same_epoch"] == 0 and summary["vanished"] == 0
              and not summary["producer_fatal"] and summary["group_committed_behind"] == 0
              and summary["controlled_shutdowns_late"] == 0
              and not summary["diverged_replicas"] and summary["acked"] > 0)
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
