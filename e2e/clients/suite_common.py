"""What the Python client suites (confluent_suite.py, kafka_python_suite.py) share: the failure
line, the records they write, their checksum, and their command line.

The suites are run as scripts from this directory, so Python finds this module beside them.
"""

import argparse
import hashlib
import json
import sys
import time


def fail(reason):
    print(json.dumps({"ok": False, "reason": reason}))
    sys.exit(1)


def record(i):
    return (f"key-{i}".encode(), f"value-{i}-".encode() + b"x" * (i % 50), [("idx", str(i).encode())], 1_700_000_000_000 + i)


def digest(items):
    h = hashlib.sha256()
    for key, value, headers, ts in sorted(items):
        h.update(key + b"|" + value + b"|" + repr(headers).encode() + b"|" + str(ts).encode() + b"\n")
    return h.hexdigest()


def check_records(items, count, detail=""):
    """Fails unless the consumed `items` are exactly record(0) .. record(count - 1), in any
    order (`detail` follows the reason when their number differs)."""
    if len(items) != count:
        fail(f"consumed {len(items)} of {count}{detail}")
    if digest(items) != digest([record(i) for i in range(count)]):
        fail("checksum of consumed records differs from produced")


def parse_args(phases, *options):
    """The command line: --bootstrap HOST:PORT, --records N, --tag T, each of the string
    `options` (e.g. "--acked-file"), and PHASE, one of `phases`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tag", default=str(int(time.time())))
    for option in options:
        parser.add_argument(option)
    parser.add_argument("phase", choices=phases)
    return parser.parse_args()
