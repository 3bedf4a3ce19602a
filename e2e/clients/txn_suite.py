"""Transactions (KIP-98) with confluent-kafka's transactional producer against an hdi-broker
cluster, while the test harness SIGKILLs the transaction coordinator's broker.

The harness runs this script with the cluster's bootstrap servers. When the script prints a line
`{"event": "kill-coordinator"}` it waits for one line on stdin: meanwhile the harness SIGKILLs the
broker coordinating transactions (the controller) and restarts it. The script:

  1. commits and aborts transactions of 30 records over three partitions;
  2. opens a transaction, writes half its records, has the coordinator killed, writes the other
     half and commits through the new coordinator (a transaction the client must abort instead
     is done again under a new tag: only tags whose commit succeeded are expected);
  3. commits a transaction and has the coordinator killed at once (the next coordinator finishes
     the markers if the killed one had not);
  4. fences a zombie: a second producer with the same transactional id aborts the first one's
     open transaction, whose commit then fails;
  5. consume-transform-produce: a read_committed consumer group and a transactional producer
     that sends the consumer's offsets with each transaction (`send_offsets_to_transaction`);
     one such transaction aborted first, whose offsets must not be committed;
  6. reads everything back with a read_committed consumer (every committed record exactly once,
     no aborted or fenced record) and a read_uncommitted one (the aborted records are there).

Prints one JSON summary line; exits non-zero when a check fails.
"""

import argparse
import json
import sys
import time
from collections import Counter

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

# What a fenced producer's commit fails with. librdkafka (2.16) turns the coordinator's
# PRODUCER_FENCED or INVALID_PRODUCER_EPOCH answer to EndTxn into its own fatal _FENCED error;
# the broker's codes themselves are accepted too, should a client pass them through.
FENCING_ERRORS = (
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
)

OUT = "txn-out"
IN = "txn-in"
PARTITIONS = 3


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def kill_coordinator():
    """Asks the harness to SIGKILL the coordinator's broker; returns once it did."""
    print(json.dumps({"event": "kill-coordinator"}), flush=True)
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the harness closed stdin")


def is_fenced(error):
    """Whether `error` (a KafkaError, or None) says this producer instance was fenced.

    A fenced instance can never be used again, so librdkafka reports it as a fatal error, not
    one that `txn_requires_abort()`: an abortable or retriable error is not fencing.
    """
    return error is not None and error.code() in FENCING_ERRORS and error.fatal()


def producer(bootstrap, transactional_id):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        }
    )
    p.init_transactions(120)
    return p


def produce(p, tag, count):
    values = [f"{tag}-{i}" for i in range(count)]
    for i, value in enumerate(values):
        while True:
            try:
                p.produce(OUT, value=value.encode(), partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.1)
    return values


def commit(p):
    """Commits the open transaction: True, or False when the client had to abort it."""
    deadline = time.time() + 120
    while True:
        try:
            p.commit_transaction(60)
            return True
        except KafkaException as e:
            error = e.args[0]
            log("commit:", error)
            if error.retriable() and time.time() < deadline:
                time.sleep(0.2)
                continue
            if error.txn_requires_abort():
                p.abort_transaction(120)
                return False
            raise


def abort(p):
    deadline = time.time() + 120
    while True:
        try:
            p.abort_transaction(60)
            return
        except KafkaException as e:
            if e.args[0].retriable() and time.time() < deadline:
                continue
            raise


def read_all(bootstrap, topic, isolation):
    """Every record value of `topic` up to its end (the last stable offset for read_committed)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{isolation}-{time.time()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
    ends = {}
    for p in range(PARTITIONS):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = high
    c.assign(parts)
    values = []
    done = {p for p in range(PARTITIONS) if ends[p] == 0}
    deadline = time.time() + 90
    while len(done) < PARTITIONS and time.time() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if msg.offset() >= ends[msg.partition()]:
                    done.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        values.append(msg.value().decode())
        if msg.offset() + 1 >= ends[msg.partition()]:
            done.add(msg.partition())
    c.close()
    if len(done) < PARTITIONS:
        raise SystemExit(f"{topic} ({isolation}) not read to its end {ends}")
    return values


def consume_transform_produce(bootstrap, expected_inputs):
    """Copies `IN` to `OUT` as `t-<value>` in transactions carrying the consumer's offsets;
    returns the output values and the group's committed offsets."""
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "ctp",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    p = producer(bootstrap, "e2e-ctp")
    # One transaction aborted: its output and offsets must vanish.
    c = Consumer(config)
    c.subscribe([IN])
    batch = []
    deadline = time.time() + 60
    while not batch and time.time() < deadline:
        batch = [m for m in c.consume(10, 1.0) if not m.error()]
    if not batch:
        raise SystemExit("the consume-transform-produce consumer read nothing")
    p.begin_transaction()
    for m in batch:
        p.produce(OUT, value=b"x-" + m.value(), partition=m.partition())
    p.send_offsets_to_transaction(
        c.position(c.assignment()), c.consumer_group_metadata(), 60
    )
    abort(p)
    committed = c.committed(c.assignment(), timeout=30)
    if any(tp.offset >= 0 for tp in committed):
        raise SystemExit(f"an aborted transaction's offsets were committed: {committed}")
    c.close()

    # Then the real thing, from the (uncommitted) start.
    c = Consumer(config)
    c.subscribe([IN])
    outputs = []
    seen = 0
    deadline = time.time() + 120
    while seen < expected_inputs and time.time() < deadline:
        batch = [m for m in c.consume(20, 1.0) if not m.error()]
        if not batch:
            continue
        p.begin_transaction()
        values = []
        for m in batch:
            value = b"t-" + m.value()
            p.produce(OUT, value=value, partition=m.partition())
            values.append(value.decode())
        p.send_offsets_to_transaction(
            c.position(c.assignment()), c.consumer_group_metadata(), 60
        )
        if not commit(p):
            raise SystemExit("a consume-transform-produce transaction was aborted")
        outputs.extend(values)
        seen += len(batch)
    assignment = c.assignment()
    committed = {tp.partition: tp.offset for tp in c.committed(assignment, timeout=30)}
    c.close()
    return outputs, committed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    bootstrap = args.bootstrap

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(OUT, PARTITIONS, 3, config={"min.insync.replicas": "2"}),
            NewTopic(IN, PARTITIONS, 3),
        ]
    )
    for f in futures.values():
        f.result(60)

    committed, aborted = [], []
    p = producer(bootstrap, "e2e-tx")
    for i in range(4):
        p.begin_transaction()
        values = produce(p, f"c{i}", 30)
        if i % 2 == 0:
            if commit(p):
                committed += values
            else:
                aborted += values
        else:
            p.flush(60)
            abort(p)
            aborted += values

    # The coordinator dies in the middle of a transaction.
    attempt = 0
    while True:
        p.begin_transaction()
        values = produce(p, f"k{attempt}", 15)
        p.flush(60)
        if attempt == 0:
            kill_coordinator()
        values += produce(p, f"k{attempt}-late", 15)
        if commit(p):
            committed += values
            break
        log(f"transaction k{attempt} aborted by the client; again")
        aborted += values
        attempt += 1
        if attempt > 3:
            raise SystemExit("no transaction committed after the coordinator died")
    kill_attempts = attempt + 1

    # The coordinator dies right after a commit was accepted.
    p.begin_transaction()
    values = produce(p, "m", 30)
    if not commit(p):
        raise SystemExit("the transaction before the second kill was aborted")
    committed += values
    kill_coordinator()
    p.begin_transaction()
    values = produce(p, "after", 30)
    if not commit(p):
        raise SystemExit("the transaction after the second kill was aborted")
    committed += values
    p.flush(30)

    # A zombie is fenced: the new instance aborts its open transaction.
    zombie = producer(bootstrap, "e2e-zombie")
    zombie.begin_transaction()
    fenced_values = produce(zombie, "zombie", 6)
    zombie.flush(60)
    successor = producer(bootstrap, "e2e-zombie")
    successor.begin_transaction()
    values = produce(successor, "successor", 6)
    if not commit(successor):
        raise SystemExit("the successor's transaction was aborted")
    committed += values
    zombie_error = None
    try:
        zombie.commit_transaction(30)
    except KafkaException as e:
        zombie_error = e.args[0]
        log("zombie commit:", zombie_error)
    if not is_fenced(zombie_error):
        raise SystemExit(
            f"the zombie's commit was not fenced: {zombie_error or 'it succeeded'}"
        )
    fenced = True

    # Consume-transform-produce.
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    inputs = [f"in-{i}" for i in range(60)]
    for i, value in enumerate(inputs):
        plain.produce(IN, value=value.encode(), partition=i % PARTITIONS)
    plain.flush(60)
    outputs, group_offsets = consume_transform_produce(bootstrap, len(inputs))
    committed += outputs

    read_committed = Counter(read_all(bootstrap, OUT, "read_committed"))
    read_uncommitted = Counter(read_all(bootstrap, OUT, "read_uncommitted"))
    missing = [v for v in committed if read_committed[v] == 0]
    duplicated = [v for v in committed if read_committed[v] > 1]
    visible_aborted = [
        v for v in aborted + fenced_values if read_committed[v] > 0
    ]
    visible_ctp_aborted = [v for v in read_committed if v.startswith("x-")]
    unexpected = set(read_committed) - set(committed)
    summary = {
        "committed": len(committed),
        "aborted": len(aborted),
        "read_committed": sum(read_committed.values()),
        "read_uncommitted": sum(read_uncommitted.values()),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "visible_aborted": len(visible_aborted) + len(visible_ctp_aborted),
        "unexpected": len(unexpected),
        "aborted_in_log": sum(read_uncommitted[v] for v in aborted),
        "kill_attempts": kill_attempts,
        "ctp_outputs": len(outputs),
        "ctp_committed_offsets": sum(group_offsets.values()),
        "zombie_fenced": fenced,
        "zombie_error": zombie_error.name(),
    }
    summary["ok"] = (
        not missing
        and not duplicated
        and not visible_aborted
        and not visible_ctp_aborted
        and not unexpected
        and summary["aborted_in_log"] >= 60
        and len(set(outputs)) == len(inputs)
        and summary["ctp_committed_offsets"] == len(inputs)
    )
    if not summary["ok"]:
        summary["examples"] = {
            "missing": missing[:5],
            "duplicated": duplicated[:5],
            "visible_aborted": (visible_aborted + visible_ctp_aborted)[:5],
            "unexpected": sorted(unexpected)[:5],
        }
    print(json.dumps(summary), flush=True)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
