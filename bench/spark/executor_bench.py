"""The Spark side of `cargo xtask bench executor`.

One query throughout, the benchmark's: a 1-minute tumbling window, sum and count per account,
10 s watermark, append mode, on events `{account STRING, amount DOUBLE, ts TIMESTAMP}`:

    .withWatermark("ts", "10 seconds")
    .groupBy(window("ts", "1 minute"), "account").agg(sum("amount"), count("*"))

on `local[2]` with `spark.sql.shuffle.partitions=2`. `--mode` picks the source and the way it runs:

- `files`: Structured Streaming over a directory of newline-delimited JSON files, trigger
  available-now, `maxFilesPerTrigger` N (`--max-files-per-trigger 0`: no limit, all files in one
  batch), into the `noop` sink (`--sink noop`, the benchmark) or into a `foreachBatch` that counts
  the emitted rows (`--sink count`, the validation run on a small data set).
- `batch`: the same aggregation as a plain batch job (`spark.read.json`, `write.format("noop")`)
  over the same files: Spark without any streaming overhead. A batch job has no watermark to
  close windows with, so it outputs every window. Its rows are counted with `observe`.
- `kafka`: Structured Streaming from a Kafka topic (Spark's Kafka source; the connector's jars
  come with `--jars`, passed as `spark.jars`), `startingOffsets` earliest, trigger available-now
  without `maxOffsetsPerTrigger` (everything in the topic when the query starts), into `noop`.
- `kafka-filter`: the end-to-end latency job, `amount > 900` from `--topic` into
  `--output-topic` with Spark's Kafka sink (the event's fields as JSON, `id` carried through),
  processing-time trigger 1 s, until SIGTERM or SIGINT.

Prints one JSON line on stdout (except `kafka-filter`): the pyspark and Spark versions, the
query's wall time (from `start()` to the end of `awaitTermination()`, or around the batch job's
action; JVM start-up excluded), input and output rows (the `foreachBatch` count, the `observe`d
counts, or the sums of the progress' `numInputRows` and `sink.numOutputRows`), and every batch's
`durationMs.triggerExecution` from `recentProgress`. Run by xtask with the venv's python; Spark's
own logging goes to stderr.
"""

import argparse
import json
import signal
import sys
import time

import pyspark
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SCHEMA = StructType(
    [
        StructField("account", StringType()),
        StructField("amount", DoubleType()),
        StructField("ts", TimestampType()),
    ]
)
LIVE_SCHEMA = StructType([StructField("id", LongType())] + SCHEMA.fields)


def windows(events):
    return (
        events.withWatermark("ts", "10 seconds")
        .groupBy(F.window("ts", "1 minute"), "account")
        .agg(F.sum("amount").alias("total"), F.count("*").alias("n"))
    )


def from_kafka(spark, args, schema):
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
        .load()
        .select(F.from_json(F.col("value").cast("string"), schema).alias("e"))
        .select("e.*")
    )


def stream(spark, args, events):
    writer = (
        windows(events)
        .writeStream.outputMode("append")
        .trigger(availableNow=True)
        .option("checkpointLocation", args.checkpoint)
    )
    counted = []
    if args.sink == "noop":
        writer = writer.format("noop")
    else:
        writer = writer.foreachBatch(lambda df, _batch_id: counted.append(df.count()))

    started = time.monotonic()
    query = writer.start()
    query.awaitTermination()
    elapsed = time.monotonic() - started

    batches = []
    for p in query.recentProgress:
        batches.append(
            {
                "batch_id": p["batchId"],
                "num_input_rows": p["numInputRows"],
                "trigger_execution_ms": p["durationMs"].get("triggerExecution", 0),
                "watermark": p.get("eventTime", {}).get("watermark"),
                "state_rows_total": sum(s["numRowsTotal"] for s in p.get("stateOperators", [])),
                "sink_output_rows": p.get("sink", {}).get("numOutputRows", -1),
            }
        )
    if args.sink == "count":
        output_rows = sum(counted)
    elif batches and all(b["sink_output_rows"] >= 0 for b in batches):
        output_rows = sum(b["sink_output_rows"] for b in batches)
    else:
        output_rows = None
    return {
        "elapsed_s": elapsed,
        "input_rows": sum(b["num_input_rows"] for b in batches),
        "output_rows": output_rows,
        "batches": batches,
    }


def batch(spark, args):
    seen, emitted = Observation("input"), Observation("output")
    started = time.monotonic()
    events = spark.read.schema(SCHEMA).json(args.input).observe(seen, F.count(F.lit(1)).alias("n"))
    out = windows(events).observe(emitted, F.count(F.lit(1)).alias("n"))
    out.write.format("noop").mode("overwrite").save()
    elapsed = time.monotonic() - started
    return {
        "elapsed_s": elapsed,
        "input_rows": seen.get["n"],
        "output_rows": emitted.get["n"],
        "batches": [{"batch_id": 0, "trigger_execution_ms": elapsed * 1000.0}],
    }


def kafka_filter(spark, args):
    alerts = (
        from_kafka(spark, args, LIVE_SCHEMA)
        .where(F.col("amount") > 900)
        .select(F.to_json(F.struct("id", "account", "amount", "ts")).alias("value"))
    )
    query = (
        alerts.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("topic", args.output_topic)
        .option("checkpointLocation", args.checkpoint)
        .trigger(processingTime="1 second")
        .start()
    )

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["files", "batch", "kafka", "kafka-filter"], default="files")
    parser.add_argument("--input")
    parser.add_argument("--checkpoint")
    parser.add_argument("--max-files-per-trigger", type=int, default=5)
    parser.add_argument("--sink", choices=["noop", "count"], default="noop")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--output-topic")
    parser.add_argument("--jars", default="", help="comma-separated jars for spark.jars")
    args = parser.parse_args()

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("hdi-bench-executor")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Keep every batch's progress, not only the last 100.
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
    )
    if args.jars:
        builder = builder.config("spark.jars", args.jars)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")

    if args.mode == "kafka-filter":
        kafka_filter(spark, args)
        spark.stop()
        return
    if args.mode == "files":
        reader = spark.readStream.schema(SCHEMA)
        if args.max_files_per_trigger > 0:
            reader = reader.option("maxFilesPerTrigger", args.max_files_per_trigger)
        result = stream(spark, args, reader.json(args.input))
    elif args.mode == "batch":
        result = batch(spark, args)
    else:
        result = stream(spark, args, from_kafka(spark, args, SCHEMA))
    result = {"pyspark": pyspark.__version__, "spark": spark.version, **result}
    spark.stop()
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
