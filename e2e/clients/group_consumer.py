"""A consumer-group member for e2e/tests/consumer_groups.rs, with confluent-kafka.

It joins group --group on --topic (from the earliest offset when the group has none committed),
reads exactly --count records, commits their offsets synchronously and prints one JSON line:
{"ok": true, "consumed": N, "committed": [[topic, partition, offset], ...]}. Then it pauses its
partitions and stays a member (heartbeats, polls) until its stdin is closed, when it leaves
the group (close) and prints {"ok": true, "closed": true}. Failures print {"ok": false, ...}.
"""

import argparse
import json
import select
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": "hdi-e2e-group",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([args.topic])
    consumed = 0
    deadline = time.time() + args.timeout
    while consumed < args.count:
        if time.time() > deadline:
            print(json.dumps({"ok": False, "reason": f"consumed {consumed} of {args.count}"}), flush=True)
            sys.exit(1)
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            print(json.dumps({"ok": False, "reason": str(message.error())}), flush=True)
            sys.exit(1)
        consumed += 1
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        print(json.dumps({"ok": False, "reason": f"commit: {error}"}), flush=True)
        sys.exit(1)
    assignment = consumer.assignment()
    committed = consumer.committed(assignment, timeout=10)
    print(
        json.dumps(
            {
                "ok": True,
                "consumed": consumed,
                "committed": sorted([tp.topic, tp.partition, tp.offset] for tp in committed),
            }
        ),
        flush=True,
    )
    # Stay a member, reading nothing more, until stdin closes.
    consumer.pause(assignment)
    while True:
        consumer.poll(0.2)
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if ready and not sys.stdin.readline():
            break
    consumer.close()
    print(json.dumps({"ok": True, "closed": True}), flush=True)


if __name__ == "__main__":
    main()
