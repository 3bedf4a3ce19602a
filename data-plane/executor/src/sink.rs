//! Sink connectors, each exactly-once per batch id:
//! - `kafka` (`topic`, `bootstrap_servers`, `format = 'json'`, optional `key` column): rows as JSON
//!   objects, each record carrying the header `hdi-batch: <job>:<batch>`. Before a batch first
//!   runs, the driver notes the topic's end offsets in the batch's offset-log entry
//!   ([`Sink::mark`]); a batch run again after a crash first counts, per partition, the records
//!   of that batch already written after the mark and skips that many of its (deterministic)
//!   records. The producer is idempotent, so its own retries add nothing either.
//! - `files` (`path`, `format = 'parquet'`, optional `partition_by = 'col[,col]'`): Parquet files
//!   named by batch (`<col>=<value>/part-<batch>-<n>.parquet`) and a manifest entry
//!   `_hdi_manifest/<batch>.json` written after them; a rerun overwrites the same files. Readers
//!   take only the files the manifest lists.
//! - `memory` (`rows`, default 1000): the latest rows, readable through the job API (preview).
//! - `blackhole`: counts and drops (benchmarks).
//!
//! Every sink but `blackhole` keeps the last rows it wrote in this run (the memory sink's
//! `rows`, [`PREVIEW_ROWS`] for Kafka and files) for the job API's preview.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use datafusion::arrow::array::{Array, AsArray as _};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use rdkafka::ClientContext;
use rdkafka::Message as _;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use serde::{Deserialize, Serialize};

use crate::source::{ConsumerPool, for_each_record, kafka_partitions, kafka_watermarks};
use crate::sql::{JobError, TableDef};

/// The record header that names the job and batch a sink record came from.
pub const BATCH_HEADER: &str = "hdi-batch";

/// What a sink notes before a batch runs (Kafka: each partition's end offset).
pub type SinkMark = BTreeMap<i32, i64>;

/// A sink, opened.
#[derive(Debug)]
pub enum Sink {
    /// A Kafka topic.
    Kafka(KafkaSink),
    /// A Parquet directory.
    Files(FileSink),
    /// Latest rows in memory.
    Memory(MemorySink),
    /// Nowhere.
    Blackhole,
}

impl Sink {
    /// Opens the sink `table` declares.
    pub fn open(
        table: &TableDef,
        default_bootstrap: Option<&str>,
        pool: Arc<ConsumerPool>,
    ) -> Result<Sink, JobError> {
        match table.connector()? {
            "kafka" => {
                let format = table.option("format").unwrap_or("json");
                if format != "json" {
                    return Err(JobError::new(
                        "invalid_option",
                        format!("sink {}: format '{format}' (json)", table.name),
                    )
                    .at_span(table.span));
                }
                let bootstrap = table.bootstrap(default_bootstrap)?;
                let topic = table.required("topic")?.to_string();
                Ok(Sink::Kafka(KafkaSink {
                    bootstrap,
                    topic,
                    key: table.option("key").map(str::to_string),
                    pool,
                    producer: Mutex::new(None),
                    recent: MemorySink::new(PREVIEW_ROWS),
                }))
            }
            "files" => {
                let format = table.option("format").unwrap_or("parquet");
                if format != "parquet" {
                    return Err(JobError::new(
                        "invalid_option",
                        format!("sink {}: format '{format}' (parquet)", table.name),
                    )
                    .at_span(table.span));
                }
                Ok(Sink::Files(FileSink {
                    dir: PathBuf::from(table.required("path")?),
                    partition_by: table
                        .option("partition_by")
                        .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
                        .unwrap_or_default(),
                    recent: MemorySink::new(PREVIEW_ROWS),
                }))
            }
            "memory" => {
                let capacity = table
                    .option("rows")
                    .map(|r| r.parse::<usize>())
                    .transpose()
                    .map_err(|_| {
                        JobError::new("invalid_option", "rows must be a number").at_span(table.span)
                    })?
                    .unwrap_or(1000);
                Ok(Sink::Memory(MemorySink::new(capacity)))
            }
            "blackhole" => Ok(Sink::Blackhole),
            other => Err(JobError::new(
                "invalid_option",
                format!("{other} is not a sink connector"),
            )),
        }
    }

    /// Checks the sink can be written at submit time (Kafka: the topic exists).
    pub fn check(&self) -> Result<(), JobError> {
        if let Sink::Kafka(kafka) = self {
            kafka_partitions(&kafka.pool, &kafka.bootstrap, &kafka.topic)?;
        }
        Ok(())
    }

    /// A short description for progress reports.
    pub fn describe(&self) -> String {
        match self {
            Sink::Kafka(k) => format!("kafka[{}]", k.topic),
            Sink::Files(f) => format!("files[{}]", f.dir.display()),
            Sink::Memory(_) => "memory".into(),
            Sink::Blackhole => "blackhole".into(),
        }
    }

    /// What to note in the offset log before a batch first runs.
    pub fn mark(&self) -> anyhow::Result<SinkMark> {
        match self {
            Sink::Kafka(kafka) => kafka.end_offsets(),
            _ => Ok(SinkMark::new()),
        }
    }

    /// Writes a batch's rows; `retry` when this batch may have been (partly) written before a
    /// crash. Blocking.
    pub fn write(
        &self,
        job: &str,
        batch_id: u64,
        rows: &[RecordBatch],
        mark: &SinkMark,
        retry: bool,
    ) -> anyhow::Result<()> {
        match self {
            Sink::Kafka(kafka) => {
                kafka.write(job, batch_id, rows, mark, retry)?;
                kafka.recent.write(rows)
            }
            Sink::Files(files) => {
                files.write(batch_id, rows)?;
                files.recent.write(rows)
            }
            Sink::Memory(memory) => memory.write(rows),
            Sink::Blackhole => Ok(()),
        }
    }

    /// The latest rows written (what the job API's preview shows): a memory sink's rows, or
    /// the last [`PREVIEW_ROWS`] a Kafka or file sink wrote in this run; none for `blackhole`.
    pub fn preview(&self) -> Option<&MemorySink> {
        match self {
            Sink::Memory(memory) => Some(memory),
            Sink::Kafka(kafka) => Some(&kafka.recent),
            Sink::Files(files) => Some(&files.recent),
            Sink::Blackhole => None,
        }
    }
}

/// Rows as JSON objects, one per row, in order.
pub fn json_rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for batch in batches {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut buffer);
            writer.write(batch)?;
            writer.finish()?;
        }
        out.extend(
            buffer
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    Ok(out)
}

/// A Kafka topic sink.
pub struct KafkaSink {
    bootstrap: String,
    topic: String,
    key: Option<String>,
    pool: Arc<ConsumerPool>,
    producer: Mutex<Option<BaseProducer<DeliveryErrors>>>,
    /// The last rows written, for the preview.
    recent: MemorySink,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("bootstrap", &self.bootstrap)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Counts failed deliveries.
#[derive(Default)]
struct DeliveryErrors {
    failed: std::sync::atomic::AtomicU64,
    first: Mutex<Option<String>>,
}

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, _)) = result {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| error.to_string());
        }
    }
}

impl KafkaSink {
    fn end_offsets(&self) -> anyhow::Result<SinkMark> {
        let partitions = kafka_partitions(&self.pool, &self.bootstrap, &self.topic)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(
            kafka_watermarks(&self.pool, &self.bootstrap, &self.topic, &partitions)?
                .into_iter()
                .map(|(p, (_, high))| (p, high))
                .collect(),
        )
    }

    fn write(
        &self,
        job: &str,
        batch_id: u64,
        batches: &[RecordBatch],
        mark: &SinkMark,
        retry: bool,
    ) -> anyhow::Result<()> {
        let partitions = kafka_partitions(&self.pool, &self.bootstrap, &self.topic)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let count = i32::try_from(partitions.len())?;
        let tag = format!("{job}:{batch_id}");
        let mut skip: BTreeMap<i32, u64> = if retry {
            self.written(&tag, mark)?
        } else {
            BTreeMap::new()
        };
        let skipped: u64 = skip.values().sum();
        if skipped > 0 {
            tracing::info!(
                batch = batch_id,
                topic = %self.topic,
                "batch {batch_id} was written before a crash: skipping its {skipped} records already in the topic"
            );
        }
        let values = json_rows(batches)?;
        let keys = match &self.key {
            Some(column) => Some(key_strings(batches, column)?),
            None => None,
        };
        let mut guard = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            let producer: BaseProducer<DeliveryErrors> =
                crate::kafka_access::client_config(&self.bootstrap)
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .set("message.timeout.ms", "60000")
                    .set("log_level", "3")
                    .create_with_context(DeliveryErrors::default())
                    .with_context(|| format!("cannot create a producer for {}", self.bootstrap))?;
            *guard = Some(producer);
        }
        let producer = guard.as_ref().context("producer")?;
        producer
            .context()
            .failed
            .store(0, std::sync::atomic::Ordering::SeqCst);
        *producer
            .context()
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        for (i, value) in values.iter().enumerate() {
            let key = keys.as_ref().and_then(|k| k[i].as_deref());
            let partition = match key {
                Some(key) => murmur2_partition(key.as_bytes(), count),
                None => i32::try_from(i % partitions.len())?,
            };
            if let Some(n) = skip.get_mut(&partition)
                && *n > 0
            {
                *n -= 1;
                continue;
            }
            let headers = OwnedHeaders::new().insert(Header {
                key: BATCH_HEADER,
                value: Some(tag.as_bytes()),
            });
            let mut record = BaseRecord::to(&self.topic)
                .payload(value.as_slice())
                .partition(partition)
                .headers(headers);
            if let Some(key) = key {
                record = record.key(key.as_bytes());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((error, returned)) => {
                        if matches!(
                            error,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            producer.poll(Duration::from_millis(10));
                            record = returned;
                        } else {
                            bail!("cannot produce to {}: {error}", self.topic);
                        }
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer
            .flush(Duration::from_secs(60))
            .with_context(|| format!("flushing batch {batch_id} to {}", self.topic))?;
        let failed = producer
            .context()
            .failed
            .load(std::sync::atomic::Ordering::SeqCst);
        if failed > 0 {
            let first = producer
                .context()
                .first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // Drop the producer: a new one starts a new idempotent session for the retry.
            *guard = None;
            bail!(
                "{failed} records of batch {batch_id} were not delivered to {}: {}",
                self.topic,
                first.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Per partition, how many records tagged `tag` follow the mark.
    fn written(&self, tag: &str, mark: &SinkMark) -> anyhow::Result<BTreeMap<i32, u64>> {
        let partitions: Vec<i32> = mark.keys().copied().collect();
        let ends = kafka_watermarks(&self.pool, &self.bootstrap, &self.topic, &partitions)?;
        let consumer: rdkafka::consumer::BaseConsumer =
            crate::kafka_access::client_config(&self.bootstrap)
                .set("group.id", "hdi-executor-sink-check")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .set("auto.offset.reset", "error")
                .set("log_level", "3")
                .create()?;
        let mut out = BTreeMap::new();
        for (partition, start) in mark {
            let end = ends.get(partition).map_or(*start, |(_, high)| *high);
            let mut count = 0u64;
            for_each_record(&consumer, &self.topic, *partition, *start, end, |message| {
                let tagged = message.headers().is_some_and(|headers| {
                    headers
                        .iter()
                        .any(|h| h.key == BATCH_HEADER && h.value == Some(tag.as_bytes()))
                });
                if tagged {
                    count += 1;
                }
            })?;
            out.insert(*partition, count);
        }
        Ok(out)
    }
}

/// Each row's `column` as text (null stays null).
fn key_strings(batches: &[RecordBatch], column: &str) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch
            .column_by_name(column)
            .with_context(|| format!("no key column {column}"))?;
        let text = cast(array, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for i in 0..text.len() {
            out.push((!text.is_null(i)).then(|| text.value(i).to_string()));
        }
    }
    Ok(out)
}

pub use hdi_kafka_client::partitioner::{murmur2, murmur2_partition};

/// A Parquet directory sink.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    partition_by: Vec<String>,
    /// The last rows written, for the preview.
    recent: MemorySink,
}

/// One manifest entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The batch.
    pub batch_id: u64,
    /// Files, relative to the sink directory.
    pub files: Vec<String>,
    /// Rows in them.
    pub rows: u64,
}

impl FileSink {
    fn write(&self, batch_id: u64, batches: &[RecordBatch]) -> anyhow::Result<()> {
        let manifest_dir = self.dir.join("_hdi_manifest");
        std::fs::create_dir_all(&manifest_dir)
            .with_context(|| format!("cannot create {}", manifest_dir.display()))?;
        // Group rows by partition directory, in first-seen order.
        let mut groups: Vec<(String, Vec<RecordBatch>)> = Vec::new();
        let mut rows = 0u64;
        for batch in batches {
            rows += batch.num_rows() as u64;
            let mut by_dir: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            let columns = self
                .partition_by
                .iter()
                .map(|c| {
                    let array = batch
                        .column_by_name(c)
                        .with_context(|| format!("no column {c}"))?;
                    Ok(cast(array, &DataType::Utf8)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let mut dir = String::new();
                for (name, column) in self.partition_by.iter().zip(&columns) {
                    let text = column.as_string::<i32>();
                    let value = if text.is_null(row) {
                        "__null__".to_string()
                    } else {
                        sanitize(text.value(row))
                    };
                    dir.push_str(&format!("{name}={value}/"));
                }
                by_dir.entry(dir).or_default().push(u32::try_from(row)?);
            }
            for (dir, indexes) in by_dir {
                let part = take_record_batch(
                    batch,
                    &datafusion::arrow::array::UInt32Array::from(indexes),
                )?;
                match groups.iter_mut().find(|(d, _)| *d == dir) {
                    Some((_, list)) => list.push(part),
                    None => groups.push((dir, vec![part])),
                }
            }
        }
        let mut files = Vec::new();
        for (n, (dir, parts)) in groups.iter().enumerate() {
            let relative = format!("{dir}part-{batch_id:010}-{n:05}.parquet");
            let path = self.dir.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let schema: SchemaRef = parts[0].schema();
            let tmp = path.with_extension("parquet.tmp");
            {
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut writer = ArrowWriter::try_new(file.try_clone()?, schema, None)?;
                for part in parts {
                    writer.write(part)?;
                }
                writer.close()?;
                file.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            files.push(relative);
        }
        let entry = ManifestEntry {
            batch_id,
            files,
            rows,
        };
        write_atomic(
            &manifest_dir.join(format!("{batch_id:010}.json")),
            &serde_json::to_vec(&entry)?,
        )
    }
}

/// A partition value safe as a directory name.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The files a `files` sink has committed (every manifest entry's), relative to `dir`.
pub fn committed_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = dir.join("_hdi_manifest");
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&manifest) {
        Ok(list) => list
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        let entry: ManifestEntry = serde_json::from_slice(&std::fs::read(&entry)?)?;
        files.extend(entry.files.into_iter().map(|f| dir.join(f)));
    }
    Ok(files)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Rows a Kafka or file sink keeps for the preview.
pub const PREVIEW_ROWS: usize = 1000;

/// The latest rows written to a memory sink (and kept by Kafka and file sinks for the preview).
#[derive(Debug)]
pub struct MemorySink {
    capacity: usize,
    rows: Mutex<VecDeque<serde_json::Value>>,
}

impl MemorySink {
    fn new(capacity: usize) -> MemorySink {
        MemorySink {
            capacity: capacity.max(1),
            rows: Mutex::new(VecDeque::new()),
        }
    }

    fn write(&self, batches: &[RecordBatch]) -> anyhow::Result<()> {
        // Only the rows that will be kept are turned into JSON: a big batch costs its last
        // `capacity` rows, not all of them.
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut skip = total.saturating_sub(self.capacity);
        let mut kept = Vec::new();
        for batch in batches {
            let n = batch.num_rows();
            if skip >= n {
                skip -= n;
                continue;
            }
            kept.push(batch.slice(skip, n - skip));
            skip = 0;
        }
        let lines = json_rows(&kept)?;
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        for line in lines {
            rows.push_back(serde_json::from_slice(&line)?);
            while rows.len() > self.capacity {
                rows.pop_front();
            }
        }
        Ok(())
    }

    /// The last `limit` rows, oldest first.
    pub fn rows(&self, limit: usize) -> Vec<serde_json::Value> {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.iter()
            .skip(rows.len().saturating_sub(limit))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))])
            .expect("a batch")
    }

    #[test]
    fn the_preview_keeps_the_last_rows_across_batches_in_order() {
        let recent = MemorySink::new(5);
        recent.write(&[batch(0..3)]).expect("writes");
        assert_eq!(recent.rows(10).len(), 3);
        // 7 more rows in two batches: only the last 5 of all 10 are kept, oldest first.
        recent.write(&[batch(3..6), batch(6..10)]).expect("writes");
        let kept: Vec<i64> = recent
            .rows(10)
            .iter()
            .map(|r| r["n"].as_i64().expect("n"))
            .collect();
        assert_eq!(kept, [5, 6, 7, 8, 9]);
        assert_eq!(recent.rows(2).len(), 2, "a limit takes the newest");
        // A batch bigger than the capacity alone.
        recent.write(&[batch(100..200)]).expect("writes");
        let kept: Vec<i64> = recent
            .rows(10)
            .iter()
            .map(|r| r["n"].as_i64().expect("n"))
            .collect();
        assert_eq!(kept, [195, 196, 197, 198, 199]);
    }
}
