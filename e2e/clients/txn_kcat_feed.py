"""Writes transactions with confluent-kafka's transactional producer for kcat to read back
(`kafka_clients.rs`, `kcat_reads_committed_transactions`): to partition 0 of --topic, a
committed transaction (c1, c2), an aborted one (a1, a2), a committed one (c3), then one left
open (o1). Prints "open" once o1 is stored, waits for a line on stdin, then aborts it, prints
"done" and exits."""

import argparse
import sys

from confluent_kafka import Producer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": "kcat-feed",
            "transaction.timeout.ms": 60000,
        }
    )
    p.init_transactions(60)
    for values, commit in [(["c1", "c2"], True), (["a1", "a2"], False), (["c3"], True)]:
        p.begin_transaction()
        for value in values:
            p.produce(args.topic, value=value.encode(), partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    p.begin_transaction()
    p.produce(args.topic, value=b"o1", partition=0)
    if p.flush(30) != 0:
        raise SystemExit("o1 was not delivered")
    print("open", flush=True)
    sys.stdin.readline()
    p.abort_transaction(30)
    print("done", flush=True)


if __name__ == "__main__":
    main()
