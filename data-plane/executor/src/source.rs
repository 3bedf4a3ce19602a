//! Source connectors: where a micro-batch's records come from.
//!
//! - `kafka`: a topic's partitions, read by offset range; offsets are per partition, `[start, end)`.
//!   Tasks read with Fetch requests of their own (`direct.rs`, which also decompresses; librdkafka
//!   for pre-v2 batches); offsets, metadata, upsert tables and the sink's checks use librdkafka
//!   (`rdkafka`).
//!   Options: `topic`, `bootstrap_servers` (default: the job's), `format = 'json'`,
//!   `starting_offsets = 'earliest' | 'latest'`, `dead_letter_topic`, `max_records_per_trigger`.
//! - `files`: a directory of newline-delimited JSON files, taken in name order (a file that sorts
//!   before the last one taken is never read: write files with increasing names). Options: `path`,
//!   `format = 'json'`, `max_files_per_trigger`. Its "offset" is the number of files taken.
//!
//! Calls here block (librdkafka, sockets, file I/O): the runtime calls them from blocking threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::Message as _;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::sandbox::{FilesRoot, read_source_file};
use crate::sql::{JobError, TableDef};

mod direct;

/// How long a metadata or offsets call may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long fetching one task's range may take before the task fails (and is retried).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A streaming source, resolved from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A Kafka topic.
    Kafka {
        /// `host:port,...`.
        bootstrap: String,
        /// The topic.
        topic: String,
        /// Where a new job starts.
        earliest: bool,
    },
    /// A directory of JSON-lines files.
    Files {
        /// The directory.
        dir: PathBuf,
        /// Files per batch at most.
        max_files: Option<usize>,
    },
    /// Generated rows `(ts, value)`, `rows_per_second` of them (Spark's `rate` source).
    Rate {
        /// Rows per second of processing time.
        rows_per_second: u64,
    },
}

impl SourceSpec {
    /// Resolves `table`'s options; `default_bootstrap` is the job's Kafka cluster.
    pub fn from_table(
        table: &TableDef,
        default_bootstrap: Option<&str>,
    ) -> Result<SourceSpec, JobError> {
        let format = table.option("format").unwrap_or("json");
        if table.connector()? == "rate" {
            let text = table.option("rows_per_second").unwrap_or("1");
            let rows_per_second = text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=10_000_000).contains(n))
                .ok_or_else(|| {
                    JobError::new(
                        "invalid_option",
                        format!("rows_per_second '{text}' is not a number from 1 to 10000000"),
                    )
                    .at_span(table.span)
                })?;
            return Ok(SourceSpec::Rate { rows_per_second });
        }
        if format != "json" {
            return Err(JobError::new(
                "invalid_option",
                format!(
                    "table {}: format '{format}' is not supported (json)",
                    table.name
                ),
            )
            .at_span(table.span));
        }
        match table.connector()? {
            "kafka" => {
                let topic = table.required("topic")?.to_string();
                let bootstrap = table.bootstrap(default_bootstrap)?;
                let earliest = match table.option("starting_offsets").unwrap_or("latest") {
                    "earliest" => true,
                    "latest" => false,
                    other => {
                        return Err(JobError::new(
                            "invalid_option",
                            format!("starting_offsets '{other}': use earliest or latest"),
                        )
                        .at_span(table.span));
                    }
                };
                Ok(SourceSpec::Kafka {
                    bootstrap,
                    topic,
                    earliest,
                })
            }
            "files" => {
                let max_files = match table.option("max_files_per_trigger") {
                    None => None,
                    Some(text) => Some(text.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(
                        || {
                            JobError::new(
                                "invalid_option",
                                format!("max_files_per_trigger '{text}' is not a positive number"),
                            )
                            .at_span(table.span)
                        },
                    )?),
                };
                Ok(SourceSpec::Files {
                    dir: PathBuf::from(table.required("path")?),
                    max_files,
                })
            }
            other => Err(JobError::new(
                "invalid_option",
                format!("{other} is not a streaming connector"),
            )),
        }
    }

    /// A short description for progress reports.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Kafka { topic, .. } => format!("kafka[{topic}]"),
            SourceSpec::Files { dir, .. } => format!("files[{}]", dir.display()),
            SourceSpec::Rate { rows_per_second } => format!("rate[{rows_per_second}/s]"),
        }
    }
}

/// One partition's offsets, or the files source's count of files taken (partition 0).
pub type Offsets = BTreeMap<i32, i64>;

/// Records read from a source: their payloads back to back (newline-separated) in one buffer.
#[derive(Debug, Clone, Default)]
pub struct RawBatch {
    /// The payloads, each followed by a newline.
    pub buffer: Vec<u8>,
    /// Each record's byte range in `buffer`.
    pub records: Vec<std::ops::Range<usize>>,
}

impl RawBatch {
    /// Appends one record.
    pub fn push(&mut self, payload: &[u8]) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(payload);
        self.records.push(start..self.buffer.len());
        self.buffer.push(b'\n');
    }

    /// The record at `index`.
    pub fn record(&self, index: usize) -> &[u8] {
        self.records
            .get(index)
            .and_then(|r| self.buffer.get(r.clone()))
            .unwrap_or_default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// librdkafka consumers kept for reuse (creating one costs a connection and a metadata call),
/// and the direct reader's connections and partition leaders.
#[derive(Default)]
pub struct ConsumerPool {
    idle: Mutex<BTreeMap<String, Vec<BaseConsumer>>>,
    direct: direct::Pool,
}

impl std::fmt::Debug for ConsumerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerPool").finish_non_exhaustive()
    }
}

impl ConsumerPool {
    /// A shared pool.
    pub fn shared() -> Arc<ConsumerPool> {
        Arc::new(ConsumerPool::default())
    }

    fn take(&self, bootstrap: &str) -> anyhow::Result<BaseConsumer> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(bootstrap)
            .and_then(Vec::pop);
        match pooled {
            Some(consumer) => Ok(consumer),
            None => consumer(bootstrap),
        }
    }

    fn give(&self, bootstrap: &str, consumer: BaseConsumer) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(bootstrap.to_string()).or_default();
        if list.len() < 8 {
            list.push(consumer);
        }
    }
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    crate::kafka_access::client_config(bootstrap)
        .set("group.id", "hdi-executor")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "20")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608")
        .set("queued.max.messages.kbytes", "262144")
        .set("log_level", "3")
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {bootstrap}"))
}

/// The partitions of `topic`, or `unknown_topic`.
pub fn kafka_partitions(
    pool: &ConsumerPool,
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<i32>, JobError> {
    let consumer = pool
        .take(bootstrap)
        .map_err(|e| JobError::new("kafka_unavailable", format!("{e:#}")))?;
    let result = consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT);
    let answer = match result {
        Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                Ok(t.partitions().iter().map(|p| p.id()).collect())
            }
            _ => Err(JobError::new(
                "unknown_topic",
                format!("topic {topic} does not exist on {bootstrap}"),
            )),
        },
        Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
            Err(JobError::new(
                "unknown_topic",
                format!("topic {topic} does not exist on {bootstrap}"),
            ))
        }
        Err(e) => Err(JobError::new(
            "kafka_unavailable",
            format!("cannot read the metadata of {topic} from {bootstrap}: {e}"),
        )),
    };
    pool.give(bootstrap, consumer);
    answer
}

/// Each partition's (low, high) watermark.
pub fn kafka_watermarks(
    pool: &ConsumerPool,
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let consumer = pool.take(bootstrap)?;
    let mut out = BTreeMap::new();
    for partition in partitions {
        let marks = consumer
            .fetch_watermarks(topic, *partition, KAFKA_TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {topic}[{partition}]"))?;
        out.insert(*partition, marks);
    }
    pool.give(bootstrap, consumer);
    Ok(out)
}

/// Calls `each` with every record of `topic[partition]` in `[start, end)`, in offset order.
/// Blocking.
///
/// Offsets in the range may hold no record a consumer is given: a compacted topic has gaps,
/// transaction markers take offsets, and `read_committed` (librdkafka's default) drops the
/// records of aborted transactions. So a record beyond the next expected offset is taken, not
/// treated as loss, and the read is complete when a record at or past `end` arrives or
/// librdkafka reports the partition's end (its fetch position reached the high watermark, or the
/// last stable offset under `read_committed`; both are at least `end`, which was read from them
/// before). The end is checked against a fresh watermark query so a high watermark that moved
/// back (a new leader not yet caught up) cannot end the read early. A jump of the client's own
/// (an offset reset) cannot pass for a gap: the consumers are made with
/// `auto.offset.reset=error`, so an offset out of range is an error and the task is retried.
pub fn for_each_record(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    if end <= start {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let mut next = start;
    while next < end {
        if Instant::now() > deadline {
            bail!(
                "reading {topic}[{partition}] offsets {start}..{end} took over {FETCH_TIMEOUT:?} (got to {next})"
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition, KAFKA_TIMEOUT)
                    .with_context(|| format!("cannot read the offsets of {topic}[{partition}]"))?;
                if high >= end {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => bail!("reading {topic}[{partition}]: {e}"),
            Some(Ok(message)) => {
                let offset = message.offset();
                if message.partition() != partition || message.topic() != topic || offset < next {
                    continue;
                }
                if offset >= end {
                    break;
                }
                next = offset + 1;
                each(&message);
            }
        }
    }
    consumer.unassign()?;
    Ok(())
}

/// Decodes the record batches of one Fetch answer for the range `[start, end)`, as a task's
/// read does: the records in the range, or `None` when a batch is older than v2.
/// (Public for the fuzz tests: these bytes come from the network.)
pub fn decode_fetched(start: i64, end: i64, records: &[u8]) -> anyhow::Result<Option<RawBatch>> {
    direct::decode(start, end, records)
}

/// The records of `topic[partition]` in `[start, end)`: read with the Kafka Fetch protocol
/// directly ([`direct`]), or with librdkafka when the partition holds batches the direct reader
/// does not decode (older than the v2 format).
pub fn kafka_fetch(
    pool: &ConsumerPool,
    bootstrap: &str,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
) -> anyhow::Result<RawBatch> {
    if end <= start {
        return Ok(RawBatch::default());
    }
    // The direct path speaks plain TCP: secured clusters are read with librdkafka.
    if !crate::kafka_access::is_secured(bootstrap)
        && let Some(out) = direct::fetch(pool, bootstrap, topic, partition, start, end)?
    {
        return Ok(out);
    }
    let mut out = RawBatch::default();
    let consumer = pool.take(bootstrap)?;
    for_each_record(&consumer, topic, partition, start, end, |message| {
        out.push(message.payload().unwrap_or_default());
    })?;
    pool.give(bootstrap, consumer);
    Ok(out)
}

/// A topic read whole, as a table: per record key the latest value (a record with no value
/// deletes its key), then the values, in key order. Blocking.
pub fn kafka_read_table(
    pool: &ConsumerPool,
    bootstrap: &str,
    topic: &str,
) -> Result<RawBatch, JobError> {
    Ok(kafka_read_table_at(pool, bootstrap, topic, None)?.0)
}

/// [`kafka_read_table`] up to `ends` (per partition; a partition not named is not read), or up
/// to the current ends when `None`; answers the rows and the ends it read to.
pub fn kafka_read_table_at(
    pool: &ConsumerPool,
    bootstrap: &str,
    topic: &str,
    ends: Option<&BTreeMap<i32, i64>>,
) -> Result<(RawBatch, BTreeMap<i32, i64>), JobError> {
    let unavailable = |e: anyhow::Error| JobError::new("kafka_unavailable", format!("{e:#}"));
    let partitions = kafka_partitions(pool, bootstrap, topic)?;
    let marks = kafka_watermarks(pool, bootstrap, topic, &partitions).map_err(unavailable)?;
    let consumer = pool.take(bootstrap).map_err(unavailable)?;
    let mut latest: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut read_to = BTreeMap::new();
    for (partition, (low, high)) in marks {
        let end = match ends {
            None => high,
            Some(ends) => match ends.get(&partition) {
                None => continue,
                Some(end) if *end > high => {
                    return Err(JobError::new(
                        "kafka_unavailable",
                        format!("{topic}[{partition}] ends at {high}, before offset {end}"),
                    ));
                }
                Some(end) => *end,
            },
        };
        read_to.insert(partition, end);
        for_each_record(&consumer, topic, partition, low.min(end), end, |message| {
            if let Some(key) = message.key() {
                latest.insert(key.to_vec(), message.payload().map(<[u8]>::to_vec));
            }
        })
        .map_err(unavailable)?;
    }
    pool.give(bootstrap, consumer);
    let mut out = RawBatch::default();
    for value in latest.into_values().flatten() {
        out.push(&value);
    }
    Ok((out, read_to))
}

/// The files of a `files` source, in name order.
pub fn list_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') || !entry.file_type()?.is_file() {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

/// Each non-blank line of the files `names` of the source directory `dir` as a record (regular
/// files of bounded size inside the files root only: see [`crate::sandbox`]).
pub fn read_lines(files: &FilesRoot, dir: &Path, names: &[String]) -> anyhow::Result<RawBatch> {
    let mut out = RawBatch::default();
    for name in names {
        let bytes = read_source_file(files, dir, name)?;
        let base = out.buffer.len();
        let mut start = 0;
        for line in bytes.split(|b| *b == b'\n') {
            let end = start + line.len();
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.records.push(base + start..base + end);
            }
            start = end + 1;
        }
        if out.buffer.is_empty() {
            // One file (the usual task): take its bytes, no copy.
            out.buffer = bytes;
        } else {
            out.buffer.extend_from_slice(&bytes);
        }
        out.buffer.push(b'\n');
    }
    Ok(out)
}
