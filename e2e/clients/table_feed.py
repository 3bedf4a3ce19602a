"""Feeds a compacted topic for the executor's table read (`executor_reads.rs`): creates
--topic compacted (tiny segments, so the broker's cleaner leaves gaps), writes 50 rounds of keys
k0..k9 (value "kN-R"), then with confluent-kafka's transactional producer a committed
transaction (k0 = "committed"), an aborted one (k1 = "aborted") and one left open
(k2 = "open"). Prints "open" once that record is stored, waits for a line on stdin, commits it,
prints "done" and exits."""

import argparse
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = NewTopic(
        args.topic,
        num_partitions=1,
        replication_factor=1,
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "1024",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    for future in admin.create_topics([topic]).values():
        future.result(30)
    plain = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0})
    for rnd in range(50):
        for k in range(10):
            plain.produce(args.topic, key=f"k{k}".encode(), value=f"k{k}-{rnd}".encode())
        plain.flush(30)
    tx = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": "table-feed",
            "transaction.timeout.ms": 60000,
        }
    )
    tx.init_transactions(60)
    for key, value, commit in [(b"k0", b"committed", True), (b"k1", b"aborted", False)]:
        tx.begin_transaction()
        tx.produce(args.topic, key=key, value=value)
        tx.flush(30)
        if commit:
            tx.commit_transaction(30)
        else:
            tx.abort_transaction(30)
    tx.begin_transaction()
    tx.produce(args.topic, key=b"k2", value=b"open")
    if tx.flush(30) != 0:
        raise SystemExit("the open transaction's record was not delivered")
    print("open", flush=True)
    sys.stdin.readline()
    tx.commit_transaction(30)
    print("done", flush=True)


if __name__ == "__main__":
    main()
