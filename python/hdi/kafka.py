"""Reading a Kafka topic into pandas with confluent-kafka.

The reader assigns the topic's partitions itself (no consumer group: nothing is committed and no
group ACL is needed), starts at ``"earliest"``, ``"latest"``, an offset, a time, or a moment ago,
and stops after ``seconds``, after ``max_records``, or at the end offsets it saw when it started
(``until_end``). Values are decoded as JSON (objects become columns). :func:`read` answers one
DataFrame; :func:`stream` yields a growing DataFrame about every ``every`` seconds, for live
charts; :func:`records` yields the records one by one.

``access`` is a :class:`hdi.client.KafkaAccess` (from ``Client.kafka_access``, which sets TLS
and SASL from the cluster's status) or bootstrap servers as a string (PLAINTEXT).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, Iterator, Union

from .client import KafkaAccess

__all__ = ["Record", "decode", "frame", "read", "records", "stream", "start_offsets"]

Start = Union[str, int, dict, dt.datetime, dt.timedelta]
"""Where to start: ``"earliest"``, ``"latest"``, an offset (every partition), ``{partition:
offset}``, a datetime (the first record at or after it), or a timedelta (that long ago)."""

Record = dict[str, Any]
"""A record: ``partition``, ``offset``, ``timestamp`` (ms), ``key`` (text or None), and the value's
members when it is a JSON object, else ``value``."""

METADATA_TIMEOUT = 15.0

FATAL_CODES = {
    58,  # SASL_AUTHENTICATION_FAILED
    29,  # TOPIC_AUTHORIZATION_FAILED
    3,  # UNKNOWN_TOPIC_OR_PART
    -169,  # _AUTHENTICATION
}
"""Consumer errors that end a read (others, such as a broker down for a moment, are retried)."""


def decode(partition: int, offset: int, timestamp_ms: int | None, key: bytes | None,
           value: bytes | None) -> Record:
    """One record as a flat dict: the value's JSON object members as columns (a member named
    like a record field gets a ``value.`` prefix); a value that is not a JSON object is kept
    as ``value`` (decoded JSON, else text)."""
    record: Record = {
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "key": key.decode("utf-8", "replace") if key is not None else None,
    }
    if value is None:
        record["value"] = None
        return record
    text = value.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        record["value"] = text
        return record
    if isinstance(parsed, dict):
        for name, item in parsed.items():
            record[f"value.{name}" if name in record else name] = item
    else:
        record["value"] = parsed
    return record


def frame(rows: list[Record]):
    """Records as a DataFrame; ``timestamp`` as a pandas UTC timestamp."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if "timestamp" in df:
        df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    return df


def start_offsets(start: Start, partitions: list[int], now_ms: int | None = None) -> dict[int, Any]:
    """Where each partition starts, before asking the brokers: ``"earliest"``/``"latest"`` or an
    offset per partition, or ``("time", ms)`` for a time to look up (pure: for tests)."""
    if isinstance(start, str):
        if start not in ("earliest", "latest"):
            raise ValueError(f"from_ must be 'earliest', 'latest', an offset, a datetime or a timedelta, not {start!r}")
        return {p: start for p in partitions}
    if isinstance(start, bool):
        raise ValueError("from_ must not be a bool")
    if isinstance(start, int):
        return {p: start for p in partitions}
    if isinstance(start, dict):
        unknown = set(start) - set(partitions)
        if unknown:
            raise ValueError(f"no partitions {sorted(unknown)} (the topic has {partitions})")
        return {p: start[p] for p in partitions if p in start}
    if isinstance(start, dt.timedelta):
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return {p: ("time", now - int(start.total_seconds() * 1000)) for p in partitions}
    if isinstance(start, dt.datetime):
        when = start if start.tzinfo else start.replace(tzinfo=dt.timezone.utc)
        return {p: ("time", int(when.timestamp() * 1000)) for p in partitions}
    raise ValueError(f"unsupported from_: {start!r}")


def _config(access: KafkaAccess | str) -> dict[str, Any]:
    if isinstance(access, str):
        access = KafkaAccess({"bootstrap.servers": access, "security.protocol": "PLAINTEXT"})
    return access.client_config(**{
        "group.id": "hdi-notebook",  # required by the client; never joined (partitions assigned)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
        "client.id": "hdi-python",
    })


def records(access: KafkaAccess | str, topic: str, *, from_: Start = "earliest", seconds: float | None = None,
            max_records: int | None = None, until_end: bool = False,
            partitions: list[int] | None = None) -> Iterator[Record]:
    """The topic's records from ``from_``, in each partition's order, until ``seconds`` pass,
    ``max_records`` are read, or (``until_end``) every partition reaches the end offset it had
    when reading began. With none of the three it reads until interrupted."""
    for record in _poll(access, topic, from_, seconds, max_records, until_end, partitions):
        if record is not None:
            yield record


def _poll(access: KafkaAccess | str, topic: str, from_: Start, seconds: float | None,
          max_records: int | None, until_end: bool, partitions: list[int] | None) -> Iterator[Record | None]:
    """:func:`records`, with a ``None`` after every poll that brought nothing (so that a live
    view can refresh while a topic is quiet)."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    consumer = Consumer(_config(access))
    started = time.monotonic()
    try:
        # OAUTHBEARER's token is handed over from a poll; nothing is assigned yet.
        consumer.poll(0.3)
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            reason = described.error if described is not None else "not in the metadata"
            raise KafkaException(f"cannot read topic {topic!r}: {reason}")
        all_partitions = sorted(described.partitions)
        wanted = all_partitions if partitions is None else list(partitions)
        starts = start_offsets(from_, all_partitions)
        wanted = [p for p in wanted if p in starts]
        lookups = [TopicPartition(topic, p, starts[p][1]) for p in wanted if isinstance(starts[p], tuple)]
        found = {}
        if lookups:
            for tp in consumer.offsets_for_times(lookups, timeout=METADATA_TIMEOUT):
                found[tp.partition] = tp.offset if tp.offset >= 0 else OFFSET_END
        assignment = []
        for p in wanted:
            start = starts[p]
            offset = (OFFSET_BEGINNING if start == "earliest" else OFFSET_END if start == "latest"
                      else found[p] if isinstance(start, tuple) else int(start))
            assignment.append(TopicPartition(topic, p, offset))
        ends: dict[int, int] = {}
        if until_end:
            for p in wanted:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=METADATA_TIMEOUT)
                ends[p] = high
        consumer.assign(assignment)
        # A partition is done once its next offset reaches its end offset (or it hits EOF).
        done: set[int] = set()
        if until_end:
            for tp in assignment:
                if ends[tp.partition] <= 0 or tp.offset == OFFSET_END or (tp.offset >= 0 and tp.offset >= ends[tp.partition]):
                    done.add(tp.partition)
        count = 0
        while True:
            if max_records is not None and count >= max_records:
                return
            if seconds is not None and time.monotonic() - started >= seconds:
                return
            if until_end and len(done) >= len(wanted):
                return
            message = consumer.poll(0.2)
            if message is None:
                yield None
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if until_end:
                        done.add(message.partition())
                    continue
                if error.fatal() or error.code() in FATAL_CODES:
                    raise KafkaException(error)
                continue
            partition, offset = message.partition(), message.offset()
            if until_end and partition in ends and offset >= ends[partition]:
                done.add(partition)
                continue
            kind, stamp = message.timestamp()
            yield decode(partition, offset, stamp if kind else None, message.key(), message.value())
            count += 1
            if until_end and partition in ends and offset + 1 >= ends[partition]:
                done.add(partition)
    finally:
        consumer.close()


def read(access: KafkaAccess | str, topic: str, *, from_: Start = "earliest", seconds: float | None = None,
         max_records: int | None = None, until_end: bool = False, partitions: list[int] | None = None):
    """:func:`records` as one DataFrame (columns ``partition``, ``offset``, ``timestamp``,
    ``key`` and the value's members)."""
    if seconds is None and max_records is None and not until_end:
        raise ValueError("give seconds, max_records or until_end: a topic has no end otherwise")
    return frame(list(records(access, topic, from_=from_, seconds=seconds, max_records=max_records,
                              until_end=until_end, partitions=partitions)))


def stream(access: KafkaAccess | str, topic: str, *, from_: Start = "latest", seconds: float | None = None,
           max_records: int | None = None, every: float = 1.0, partitions: list[int] | None = None):
    """Like :func:`read`, but yields the DataFrame read so far about every ``every`` seconds
    (and once more at the end), for live charts and tables."""
    if seconds is None and max_records is None:
        raise ValueError("give seconds or max_records")
    rows: list[Record] = []
    last = time.monotonic()
    for record in _poll(access, topic, from_, seconds, max_records, False, partitions):
        if record is not None:
            rows.append(record)
        if time.monotonic() - last >= every:
            last = time.monotonic()
            yield frame(rows)
    yield frame(rows)
