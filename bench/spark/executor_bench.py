"""The Spark Structured Streaming side of `cargo xtask bench executor`.

Runs the benchmark's query on a directory of newline-delimited JSON files:

    spark.readStream.schema(account STRING, amount DOUBLE, ts TIMESTAMP)
         .option("maxFilesPerTrigger", N).json(DIR)
         .withWatermark("ts", "10 seconds")
         .groupBy(window("ts", "1 minute"), "account").agg(sum("amount"), count("*"))
         .writeStream.outputMode("append").trigger(availableNow=True)

on `local[2]` with `spark.sql.shuffle.partitions=2`, into the `noop` sink (`--sink noop`, the
benchmark) or into a `foreachBatch` that counts the emitted rows (`--sink count`, the validation run
on a small data set). Prints one JSON line on stdout: the pyspark version, the query's wall time
(from `start()` to the end of `awaitTermination()`, JVM start-up excluded), input and output rows
(the `foreachBatch` count, or the sum of the progress' `sink.numOutputRows`), and
every batch's `durationMs.triggerExecution` from `recentProgress`. Run by xtask with the venv's
python; Spark's own logging goes to stderr.
"""

import argparse
import json
import sys
import time

import pyspark
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--max-files-per-trigger", type=int, default=5)
    parser.add_argument("--sink", choices=["noop", "count"], default="noop")
    args = parser.parse_args()

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("hdi-bench-executor")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Keep every batch's progress, not only the last 100.
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")

    schema = StructType(
        [
            StructField("account", StringType()),
            StructField("amount", DoubleType()),
            StructField("ts", TimestampType()),
        ]
    )
    events = (
        spark.readStream.schema(schema)
        .option("maxFilesPerTrigger", args.max_files_per_trigger)
        .json(args.input)
    )
    windows = (
        events.withWatermark("ts", "10 seconds")
        .groupBy(F.window("ts", "1 minute"), "account")
        .agg(F.sum("amount").alias("total"), F.count("*").alias("n"))
    )
    writer = (
        windows.writeStream.outputMode("append")
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

    progress = query.recentProgress
    batches = []
    for p in progress:
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
    result = {
        "pyspark": pyspark.__version__,
        "spark": spark.version,
        "elapsed_s": elapsed,
        "input_rows": sum(b["num_input_rows"] for b in batches),
        "output_rows": output_rows,
        "batches": batches,
    }
    spark.stop()
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
