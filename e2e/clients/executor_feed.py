"""Feeds and reads topics for the executor end-to-end test (confluent-kafka).

  create   --bootstrap B                         topics tx (4 partitions), alerts (3), tx-dlq (1)
  produce  --bootstrap B --start I --count N     card transactions I..I+N (deterministic)
  late     --bootstrap B --count K --ts MS       K transactions with event time MS (to be late)
  garbage  --bootstrap B --count K               K records that are not JSON
  read     --bootstrap B --topic T               every record of T as a JSON line
                                                 {"value": ..., "batch": header}
  expect   --count N --threshold X               the alerts a batch recomputation of 0..N gives

Transaction i: account acct-((i*7919) % 40), amount (i*31) % 500 + 1 (whole numbers, so sums are
exact in any order), event time T0 + 10*i ms minus up to 3 s of disorder (below the job's 10 s
watermark delay, so none of them is late).
"""

import argparse
import json
import sys
from collections import defaultdict

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

T0 = 1_795_687_200_000  # 2026-11-26T10:00:00Z
WINDOW = 60_000


def event(i):
    return {
        "account": f"acct-{(i * 7919) % 40:03d}",
        "amount": float((i * 31) % 500 + 1),
        "ts": T0 + 10 * i - (i * 13) % 3000,
    }


def producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 10})


def create(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([
        NewTopic("tx", num_partitions=4, replication_factor=1),
        NewTopic("alerts", num_partitions=3, replication_factor=1),
        NewTopic("tx-dlq", num_partitions=1, replication_factor=1),
        # hdi-broker has no compaction yet; the upsert reader keeps the latest value per key itself.
        NewTopic("accounts", num_partitions=2, replication_factor=1),
        NewTopic("tx-codecs", num_partitions=2, replication_factor=1),
    ])
    for f in futures.values():
        f.result(30)


def produce(args):
    p = producer(args.bootstrap)
    for i in range(args.start, args.start + args.count):
        p.produce("tx", json.dumps(event(i)).encode(), partition=i % 4)
        p.poll(0)
    assert p.flush(60) == 0


def late(args):
    p = producer(args.bootstrap)
    for k in range(args.count):
        p.produce("tx", json.dumps({"account": "acct-late", "amount": 1.0, "ts": args.ts}).encode(), partition=k % 4)
    assert p.flush(60) == 0


def accounts(args):
    """The compacted `accounts` topic: acct-000..039 gold (even) or basic (odd), then acct-000
    upgraded to platinum and acct-001 deleted (a tombstone)."""
    p = producer(args.bootstrap)
    for a in range(40):
        key = f"acct-{a:03d}"
        p.produce("accounts", json.dumps({"id": key, "tier": "gold" if a % 2 == 0 else "basic"}).encode(), key=key.encode())
    p.produce("accounts", json.dumps({"id": "acct-000", "tier": "platinum"}).encode(), key=b"acct-000")
    p.produce("accounts", None, key=b"acct-001")
    assert p.flush(60) == 0


def tier(args):
    """Sets `--account`'s tier to `--tier` in the `accounts` topic."""
    p = producer(args.bootstrap)
    p.produce("accounts", json.dumps({"id": args.account, "tier": args.tier}).encode(), key=args.account.encode())
    assert p.flush(60) == 0


def codecs(args):
    """40 transactions of account `<codec>` per compression codec into `tx-codecs` (several
    records per batch: linger)."""
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 50,
                      "compression.type": codec})
        for k in range(40):
            p.produce("tx-codecs", json.dumps({"account": codec, "amount": float(k), "ts": T0}).encode(), partition=k % 2)
        assert p.flush(60) == 0


def garbage(args):
    p = producer(args.bootstrap)
    for k in range(args.count):
        p.produce("tx", f"not json {k}".encode(), partition=k % 4)
    assert p.flush(60) == 0


def read(args):
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "executor-e2e-read",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(args.topic, timeout=10)
    parts = list(md.topics[args.topic].partitions)
    ends = {p: c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(args.topic, p, 0) for p in parts if ends[p] > 0])
    seen = {p: 0 for p in parts}
    out = []
    while any(seen[p] < ends[p] for p in parts):
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        seen[m.partition()] = m.offset() + 1
        headers = dict(m.headers() or [])
        batch = headers.get("hdi-batch")
        out.append({"value": json.loads(m.value()) if args.json else m.value().decode(),
                    "batch": batch.decode() if batch else None})
    c.close()
    for row in out:
        print(json.dumps(row))


def expect(args):
    totals = defaultdict(lambda: [0.0, 0])
    for i in range(args.count):
        e = event(i)
        start = e["ts"] - e["ts"] % WINDOW
        t = totals[(start, e["account"])]
        t[0] += e["amount"]
        t[1] += 1
    for (start, account), (total, n) in sorted(totals.items()):
        if total > args.threshold:
            print(json.dumps({"ws": start, "account": account, "total": total, "n": n}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command")
    ap.add_argument("--bootstrap")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--ts", type=int, default=0)
    ap.add_argument("--topic")
    ap.add_argument("--threshold", type=float, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--account")
    ap.add_argument("--tier")
    args = ap.parse_args()
    {"create": create, "produce": produce, "late": late, "garbage": garbage, "read": read,
     "expect": expect, "accounts": accounts, "tier": tier, "codecs": codecs}[args.command](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
