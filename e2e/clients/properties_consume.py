"""Reads records with confluent-kafka configured only from a librdkafka properties file (what
`hdictl cluster client-config` prints), so a test checks that file end to end. Prints one JSON
line ({"ok": true, "read": N} or {"ok": false, "error": ...}).
Usage: python properties_consume.py PROPERTIES TOPIC GROUP WANT"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError


def main():
    path, topic, group, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                conf[key] = value
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "socket.timeout.ms": 10000})
    c.subscribe([topic])
    read, deadline = 0, time.time() + 40
    while read < want and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            print(json.dumps({"ok": False, "error": m.error().str(), "read": read}))
            sys.exit(1)
        read += 1
    c.close()
    print(json.dumps({"ok": read >= want, "read": read}))
    sys.exit(0 if read >= want else 1)


if __name__ == "__main__":
    main()
