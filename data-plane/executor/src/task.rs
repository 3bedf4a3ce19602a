//! One task of a micro-batch: read a source range, decode it, drop late rows, assign windows and
//! run the task query with DataFusion. Workers run tasks for the driver (`POST /v1/tasks`); the
//! single-process `hdi-executor run` runs them in-process. Tasks are pure functions of their
//! request (the same range and watermark give the same rows), which is what lets a batch be
//! retried on another worker, or run again after a crash, with the same result.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context as _, bail};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use serde::{Deserialize, Serialize};

use crate::plan::{JobPlan, SOURCE_TABLE, WindowKind, session_config};
use crate::sandbox::{FilesRoot, JobScope, KafkaScope, MAX_FILE_BYTES};
use crate::source::{ConsumerPool, RawBatch, SourceSpec, kafka_fetch, read_lines};
use crate::sql::{JobError, TableDef, parse_script};
use crate::state::{read_ipc, write_ipc};

/// Malformed records a task returns for the dead-letter topic, at most.
const MAX_DEAD_LETTERS: usize = 1000;

/// What a task reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskInput {
    /// `[start, end)` of one Kafka partition.
    Kafka {
        /// The partition.
        partition: i32,
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
    },
    /// Generated rows `[from, to)` of a `rate` source.
    Rate {
        /// When row 0 was due.
        start_ms: i64,
        /// Rows per second.
        rows_per_second: u64,
        /// First row.
        from: i64,
        /// One past the last row.
        to: i64,
    },
    /// Whole files of the source's directory.
    Files {
        /// The files' names in the directory (never paths: the worker resolves the directory
        /// itself), read in this order.
        names: Vec<String>,
    },
}

/// A task, as the driver sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The job.
    pub job_id: String,
    /// The job's script (workers plan it once and cache the plan).
    pub script: String,
    /// The job's default Kafka cluster.
    pub bootstrap: Option<String>,
    /// The batch this task belongs to.
    pub batch_id: u64,
    /// Rows with an event time below this are late (dropped, counted).
    pub watermark_ms: Option<i64>,
    /// What to read.
    pub input: TaskInput,
    /// Compacted-topic tables to join as of these end offsets (from the batch's offset-log
    /// entry; a table not named is joined as loaded when the job was planned).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, BTreeMap<i32, i64>>,
    /// How to reach secured Kafka clusters (the driver's, by address).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka_access: BTreeMap<String, hdi_executor_api::KafkaProperties>,
}

/// Counters and timings of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// Records read.
    pub input_rows: u64,
    /// Records that were not valid JSON objects of the source's schema (or had no event time).
    pub malformed_rows: u64,
    /// The first malformed records (for the dead-letter topic).
    pub dead_letters: Vec<String>,
    /// Rows dropped because their event time was below the watermark.
    pub late_rows: u64,
    /// Smallest event time among the rows kept.
    pub min_event_ms: Option<i64>,
    /// Largest event time among the rows kept.
    pub max_event_ms: Option<i64>,
    /// Milliseconds reading the source.
    pub fetch_ms: u64,
    /// Milliseconds decoding JSON.
    pub decode_ms: u64,
    /// Milliseconds in the task query.
    pub execute_ms: u64,
}

/// A task's result.
#[derive(Debug, Clone)]
pub struct TaskOutput {
    /// The task query's rows.
    pub batches: Vec<RecordBatch>,
    /// Counters.
    pub meta: TaskMeta,
}

impl TaskOutput {
    /// The wire form: a 4-byte big-endian length, the meta as JSON, then Arrow IPC file bytes.
    pub fn encode(&self, schema: &SchemaRef) -> anyhow::Result<Vec<u8>> {
        let meta = serde_json::to_vec(&self.meta)?;
        let mut out = Vec::with_capacity(meta.len() + 1024);
        out.extend_from_slice(&u32::try_from(meta.len())?.to_be_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&write_ipc(schema, &self.batches)?);
        Ok(out)
    }

    /// Reads [`TaskOutput::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<TaskOutput> {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .context("a task answer shorter than its header")?;
        let len = usize::try_from(u32::from_be_bytes(*len))?;
        if rest.len() < len {
            bail!("a task answer shorter than its meta");
        }
        let (meta, ipc) = rest.split_at(len);
        Ok(TaskOutput {
            meta: serde_json::from_slice(meta)?,
            batches: read_ipc(ipc)?,
        })
    }
}

/// A planned job with its static tables loaded, ready to run tasks.
#[derive(Debug)]
pub struct PreparedJob {
    /// The plan.
    pub plan: JobPlan,
    /// The streaming source.
    pub source: SourceSpec,
    /// Static tables, loaded.
    pub statics: Vec<(String, Arc<MemTable>)>,
    /// The compacted-topic (`upsert-kafka`) tables among them, re-read as batches name newer
    /// offsets.
    pub upserts: Vec<UpsertTable>,
    /// The files root its paths were resolved in (reads are checked against it again).
    pub files: FilesRoot,
}

/// A compacted topic joined as a table, as of the offsets the current batch names.
#[derive(Debug)]
pub struct UpsertTable {
    /// The table's name.
    pub name: String,
    /// Its Kafka cluster.
    pub bootstrap: String,
    /// Its topic.
    pub topic: String,
    schema: SchemaRef,
    /// The end offsets last read to, and the table as of them.
    loaded: tokio::sync::Mutex<(BTreeMap<i32, i64>, Arc<MemTable>)>,
}

impl UpsertTable {
    /// The table as of `ends` (read again when they differ from the loaded ones).
    pub async fn at(
        &self,
        pool: &Arc<ConsumerPool>,
        ends: &BTreeMap<i32, i64>,
    ) -> anyhow::Result<Arc<MemTable>> {
        let mut loaded = self.loaded.lock().await;
        if loaded.0 != *ends {
            let table = read_upsert(pool, &self.bootstrap, &self.topic, &self.schema, Some(ends))
                .await
                .map_err(|e| anyhow::anyhow!("table {}: {e}", self.name))?;
            *loaded = table;
        }
        Ok(Arc::clone(&loaded.1))
    }
}

impl PreparedJob {
    /// Plans `script`, confined to `scope`, and loads its static tables.
    pub async fn new(
        script: &str,
        bootstrap: Option<&str>,
        scope: &JobScope,
    ) -> Result<PreparedJob, JobError> {
        let plan = JobPlan::new(parse_script(script)?.confine(scope)?).await?;
        let source = SourceSpec::from_table(&plan.source, bootstrap)?;
        let mut statics = Vec::new();
        let mut upserts = Vec::new();
        for table in &plan.statics {
            let rows = if table.connector()? == "upsert-kafka" {
                let (upsert, rows) = load_compacted_topic(table, bootstrap).await?;
                upserts.push(upsert);
                rows
            } else {
                load_static(table, &scope.files).await?
            };
            statics.push((table.name.clone(), rows));
        }
        Ok(PreparedJob {
            plan,
            source,
            statics,
            upserts,
            files: scope.files.clone(),
        })
    }
}

/// Reads a compacted topic (`connector = 'upsert-kafka'`, `topic`, `bootstrap_servers` or the
/// job's cluster, JSON values) into a table, when the job is planned.
async fn load_compacted_topic(
    table: &TableDef,
    default_bootstrap: Option<&str>,
) -> Result<(UpsertTable, Arc<MemTable>), JobError> {
    let topic = table.required("topic")?.to_string();
    let bootstrap = table.bootstrap(default_bootstrap)?;
    let schema: SchemaRef = Arc::new(table.schema.clone());
    let (ends, rows) = read_upsert(&Arc::default(), &bootstrap, &topic, &schema, None).await?;
    let upsert = UpsertTable {
        name: table.name.clone(),
        bootstrap,
        topic,
        schema,
        loaded: tokio::sync::Mutex::new((ends, Arc::clone(&rows))),
    };
    Ok((upsert, rows))
}

/// A compacted topic as a table, up to `ends` (or its current ends); with the ends read to.
async fn read_upsert(
    pool: &Arc<ConsumerPool>,
    bootstrap: &str,
    topic: &str,
    schema: &SchemaRef,
    ends: Option<&BTreeMap<i32, i64>>,
) -> Result<(BTreeMap<i32, i64>, Arc<MemTable>), JobError> {
    let (pool, bootstrap, topic) = (Arc::clone(pool), bootstrap.to_string(), topic.to_string());
    let ends = ends.cloned();
    let (raw, read_to) = tokio::task::spawn_blocking(move || {
        crate::source::kafka_read_table_at(&pool, &bootstrap, &topic, ends.as_ref())
    })
    .await
    .map_err(|e| JobError::new("internal", e.to_string()))??;
    let (batch, _malformed) =
        decode(&raw, schema).map_err(|e| JobError::new("invalid_option", format!("{e:#}")))?;
    let table = MemTable::try_new(Arc::clone(schema), vec![vec![batch]])
        .map_err(|e| JobError::new("invalid_option", e.to_string()))?;
    Ok((read_to, Arc::new(table)))
}

/// Reads a static table (`connector = 'file'`, `format = 'csv' | 'parquet' | 'json'`, `path`).
async fn load_static(table: &TableDef, files: &FilesRoot) -> Result<Arc<MemTable>, JobError> {
    let path = table.required("path")?;
    let schema = table.schema.clone();
    let ctx = SessionContext::new_with_config(session_config());
    let format = table.option("format").unwrap_or("csv");
    let io = |e: datafusion::error::DataFusionError| {
        JobError::new(
            "invalid_option",
            format!(
                "cannot read the static table {} from {path}: {e}",
                table.name
            ),
        )
        .at_span(table.span)
    };
    // A regular file of bounded size, still inside the files root (DataFusion reads it again).
    let checked = files.recheck(std::path::Path::new(path)).and_then(|()| {
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.is_file() {
            anyhow::bail!("not a regular file");
        }
        if meta.len() > MAX_FILE_BYTES {
            anyhow::bail!("{} bytes, more than {MAX_FILE_BYTES}", meta.len());
        }
        Ok(())
    });
    if let Err(error) = checked {
        return Err(io(datafusion::error::DataFusionError::Plan(format!(
            "{error:#}"
        ))));
    }
    let frame = match format {
        "csv" => {
            let header = table.option("header").unwrap_or("true") == "true";
            ctx.read_csv(
                path,
                CsvReadOptions::new().schema(&schema).has_header(header),
            )
            .await
            .map_err(io)?
        }
        "parquet" => ctx
            .read_parquet(path, ParquetReadOptions::default())
            .await
            .map_err(io)?,
        "json" => ctx
            .read_json(path, JsonReadOptions::default().schema(&schema))
            .await
            .map_err(io)?,
        other => {
            return Err(JobError::new(
                "invalid_option",
                format!(
                    "static table {}: format '{other}' (csv, parquet or json)",
                    table.name
                ),
            )
            .at_span(table.span));
        }
    };
    let batches = frame.collect().await.map_err(io)?;
    let schema: SchemaRef = Arc::new(schema);
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = schema
                .fields()
                .iter()
                .map(|f| {
                    let column = b.column_by_name(f.name()).ok_or_else(|| {
                        JobError::new(
                            "unknown_column",
                            format!("the static table {} has no column {}", table.name, f.name()),
                        )
                    })?;
                    datafusion::arrow::compute::cast(column, f.data_type())
                        .map_err(|e| JobError::new("invalid_option", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| JobError::new("invalid_option", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let table = MemTable::try_new(schema, vec![batches])
        .map_err(|e| JobError::new("invalid_option", e.to_string()))?;
    Ok(Arc::new(table))
}

/// Plans cached per job (a worker runs many tasks of few jobs).
#[derive(Debug, Default)]
pub struct TaskContext {
    jobs: Mutex<HashMap<(String, String), Arc<PreparedJob>>>,
    /// Kafka consumers.
    pub pool: Arc<ConsumerPool>,
    /// Where the jobs' file connectors resolve paths (the worker plans every script itself).
    pub files: FilesRoot,
}

impl TaskContext {
    /// A context whose jobs resolve file paths in `files`.
    pub fn new(files: FilesRoot) -> TaskContext {
        TaskContext {
            files,
            ..TaskContext::default()
        }
    }

    /// The prepared job for a request (planned on first use).
    pub async fn prepared(&self, request: &TaskRequest) -> anyhow::Result<Arc<PreparedJob>> {
        crate::kafka_access::register(&request.kafka_access);
        self.prepared_job(
            &request.job_id,
            &request.script,
            request.bootstrap.as_deref(),
        )
        .await
    }

    /// The prepared job `job_id` running `script` (planned on first use).
    pub async fn prepared_job(
        &self,
        job_id: &str,
        script: &str,
        bootstrap: Option<&str>,
    ) -> anyhow::Result<Arc<PreparedJob>> {
        let key = (job_id.to_string(), script.to_string());
        if let Some(job) = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(job));
        }
        let scope = JobScope {
            files: self.files.clone(),
            kafka: KafkaScope::any(),
        };
        let job = PreparedJob::new(script, bootstrap, &scope)
            .await
            .map_err(|e| anyhow::anyhow!("the job does not plan: {e}"))?;
        let job = Arc::new(job);
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.retain(|(id, _), _| id != job_id);
        jobs.insert(key, Arc::clone(&job));
        Ok(job)
    }

    /// Runs a task.
    pub async fn run(&self, request: &TaskRequest) -> anyhow::Result<TaskOutput> {
        let job = self.prepared(request).await?;
        run_task(&job, &self.pool, request).await
    }
}

/// Runs one task of `job`.
pub async fn run_task(
    job: &PreparedJob,
    pool: &Arc<ConsumerPool>,
    request: &TaskRequest,
) -> anyhow::Result<TaskOutput> {
    let mut meta = TaskMeta::default();
    let started = Instant::now();
    let schema = Arc::new(job.plan.source.schema.clone());
    let generated = match &request.input {
        TaskInput::Rate {
            start_ms,
            rows_per_second,
            from,
            to,
        } => Some(rate_rows(&schema, *start_ms, *rows_per_second, *from, *to)?),
        _ => None,
    };
    let raw = if generated.is_some() {
        RawBatch::default()
    } else {
        let pool = Arc::clone(pool);
        let source = job.source.clone();
        let input = request.input.clone();
        let files = job.files.clone();
        tokio::task::spawn_blocking(move || fetch(&pool, &files, &source, &input)).await??
    };
    meta.fetch_ms = elapsed_ms(started);
    meta.input_rows = raw.len() as u64;

    let started = Instant::now();
    let (batch, malformed) = match generated {
        Some(batch) => {
            meta.input_rows = batch.num_rows() as u64;
            (batch, Vec::new())
        }
        None => decode(&raw, &schema)?,
    };
    meta.malformed_rows = malformed.len() as u64;
    meta.dead_letters = malformed
        .iter()
        .take(MAX_DEAD_LETTERS)
        .map(|i| String::from_utf8_lossy(raw.record(*i)).into_owned())
        .collect();
    drop(raw);
    let mut batch = batch;
    if let Some(watermark) = &job.plan.source.watermark {
        let column = schema.index_of(&watermark.column)?;
        let (kept, late, no_time, min, max) = drop_late(&batch, column, request.watermark_ms)?;
        meta.late_rows = late;
        meta.malformed_rows += no_time;
        meta.min_event_ms = min;
        meta.max_event_ms = max;
        batch = kept;
    }
    if let Some(window) = &job.plan.window {
        let column = schema.index_of(&window.time_column)?;
        batch = assign_windows(&batch, column, window.kind, &job.plan.task_input_schema)?;
    }
    meta.decode_ms = elapsed_ms(started);

    let started = Instant::now();
    let ctx = SessionContext::new_with_config(session_config());
    let source = MemTable::try_new(Arc::clone(&job.plan.task_input_schema), vec![vec![batch]])?;
    ctx.register_table(SOURCE_TABLE, Arc::new(source))?;
    for (name, table) in &job.statics {
        let table = match (
            job.upserts.iter().find(|u| &u.name == name),
            request.tables.get(name),
        ) {
            (Some(upsert), Some(ends)) => upsert.at(pool, ends).await?,
            _ => Arc::clone(table),
        };
        ctx.register_table(name.as_str(), table as _)?;
    }
    let batches = ctx.sql(&job.plan.task_sql).await?.collect().await?;
    meta.execute_ms = elapsed_ms(started);
    Ok(TaskOutput { batches, meta })
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn fetch(
    pool: &ConsumerPool,
    files: &FilesRoot,
    source: &SourceSpec,
    input: &TaskInput,
) -> anyhow::Result<RawBatch> {
    match (source, input) {
        (
            SourceSpec::Kafka {
                bootstrap, topic, ..
            },
            TaskInput::Kafka {
                partition,
                start,
                end,
            },
        ) => kafka_fetch(pool, bootstrap, topic, *partition, *start, *end),
        (SourceSpec::Files { dir, .. }, TaskInput::Files { names }) => {
            read_lines(files, dir, names)
        }
        (source, input) => bail!("task input {input:?} does not fit the source {source:?}"),
    }
}

/// Rows `[from, to)` of a `rate` source: `ts` = when the row was due, `value` = its number.
fn rate_rows(
    schema: &SchemaRef,
    start_ms: i64,
    rows_per_second: u64,
    from: i64,
    to: i64,
) -> anyhow::Result<RecordBatch> {
    let rate = i64::try_from(rows_per_second.max(1))?;
    let values: Vec<i64> = (from..to).collect();
    let times: Vec<i64> = values.iter().map(|i| start_ms + i * 1000 / rate).collect();
    Ok(RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(TimestampMillisecondArray::from(times)),
            Arc::new(datafusion::arrow::array::Int64Array::from(values)),
        ],
    )?)
}

/// Decodes JSON records into rows of `schema`; returns the rows and the indexes of the records
/// that did not decode (each becomes no row).
pub fn decode(raw: &RawBatch, schema: &SchemaRef) -> anyhow::Result<(RecordBatch, Vec<usize>)> {
    if raw.is_empty() {
        return Ok((RecordBatch::new_empty(Arc::clone(schema)), Vec::new()));
    }
    // Fast path: the whole buffer at once.
    if let Ok(batch) = decode_bytes(&raw.buffer, schema, raw.len())
        && batch.num_rows() == raw.len()
    {
        return Ok((batch, Vec::new()));
    }
    // Some record is bad: decode one by one.
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in 0..raw.len() {
        match decode_bytes(raw.record(i), schema, 1) {
            Ok(batch) if batch.num_rows() == 1 => good.push(batch),
            _ => bad.push(i),
        }
    }
    let batch = concat_batches(schema, &good)?;
    Ok((batch, bad))
}

fn decode_bytes(bytes: &[u8], schema: &SchemaRef, rows: usize) -> anyhow::Result<RecordBatch> {
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(rows.max(1))
        .build_decoder()?;
    let mut batches = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let consumed = decoder.decode(rest)?;
        if consumed == 0 {
            if let Some(batch) = decoder.flush()? {
                batches.push(batch);
                continue;
            }
            bail!("the JSON decoder made no progress");
        }
        rest = &rest[consumed..];
        if let Some(batch) = decoder.flush()? {
            batches.push(batch);
        }
    }
    if let Some(batch) = decoder.flush()? {
        batches.push(batch);
    }
    Ok(concat_batches(schema, &batches)?)
}

/// Kept rows, late count, missing-time count, and the kept rows' smallest and largest event time.
type LateSplit = (RecordBatch, u64, u64, Option<i64>, Option<i64>);

/// Drops rows whose event time is below `watermark` or missing; returns the kept rows, the
/// late count, the missing-time count and the kept rows' event-time range.
fn drop_late(
    batch: &RecordBatch,
    column: usize,
    watermark: Option<i64>,
) -> anyhow::Result<LateSplit> {
    let times = batch
        .column(column)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .context("the event-time column is not a millisecond timestamp")?;
    let mut keep = Vec::with_capacity(times.len());
    let (mut late, mut missing) = (0u64, 0u64);
    let (mut min, mut max) = (None::<i64>, None::<i64>);
    for i in 0..times.len() {
        if times.is_null(i) {
            missing += 1;
            keep.push(false);
            continue;
        }
        let t = times.value(i);
        if watermark.is_some_and(|w| t < w) {
            late += 1;
            keep.push(false);
            continue;
        }
        min = Some(min.map_or(t, |m| m.min(t)));
        max = Some(max.map_or(t, |m| m.max(t)));
        keep.push(true);
    }
    if late == 0 && missing == 0 {
        return Ok((batch.clone(), 0, 0, min, max));
    }
    let kept = filter_record_batch(batch, &BooleanArray::from(keep))?;
    Ok((kept, late, missing, min, max))
}

/// Adds `window_start` and `window_end` to each row (a hopping window repeats the row once per
/// window it falls in).
pub fn assign_windows(
    batch: &RecordBatch,
    column: usize,
    kind: WindowKind,
    schema: &SchemaRef,
) -> anyhow::Result<RecordBatch> {
    let times = batch
        .column(column)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .context("the window's time column is not a millisecond timestamp")?;
    let mut rows: Vec<u32> = Vec::with_capacity(times.len());
    let mut starts: Vec<i64> = Vec::with_capacity(times.len());
    let mut ends: Vec<i64> = Vec::with_capacity(times.len());
    for i in 0..times.len() {
        if times.is_null(i) {
            continue;
        }
        let t = times.value(i);
        let row = u32::try_from(i)?;
        match kind {
            // Event times come from outside: saturating arithmetic, so a timestamp at the edge
            // of the range gives an odd window rather than an overflow panic.
            WindowKind::Tumble { size_ms } => {
                let start = t.saturating_sub(t.rem_euclid(size_ms));
                rows.push(row);
                starts.push(start);
                ends.push(start.saturating_add(size_ms));
            }
            WindowKind::Hop { slide_ms, size_ms } => {
                let mut start = t.saturating_sub(t.rem_euclid(slide_ms));
                for _ in 0..size_ms / slide_ms {
                    rows.push(row);
                    starts.push(start);
                    ends.push(start.saturating_add(size_ms));
                    start = start.saturating_sub(slide_ms);
                }
            }
            WindowKind::Session { gap_ms } => {
                rows.push(row);
                starts.push(t);
                ends.push(t.saturating_add(gap_ms));
            }
        }
    }
    let base = if rows.len() == batch.num_rows()
        && matches!(kind, WindowKind::Tumble { .. } | WindowKind::Session { .. })
    {
        batch.clone()
    } else {
        take_record_batch(batch, &UInt32Array::from(rows))?
    };
    let mut columns: Vec<ArrayRef> = base.columns().to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use datafusion::arrow::array::AsArray as _;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    #[test]
    fn malformed_records_are_counted_and_the_rest_decode() {
        let mut raw = RawBatch::default();
        raw.push(br#"{"account":"a","amount":1.5,"ts":"2026-11-26T10:00:00Z"}"#);
        raw.push(b"not json");
        raw.push(br#"{"account":"b","amount":2,"ts":1000}"#);
        raw.push(br#"{"account":"c","amount":"lots","ts":1000}"#);
        let (batch, bad) = decode(&raw, &schema()).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(bad, vec![1, 3]);
        let ts = batch
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(ts.value(0), 1_795_687_200_000);
        assert_eq!(ts.value(1), 1000);
    }

    #[test]
    fn late_rows_are_dropped_and_counted() {
        let mut raw = RawBatch::default();
        for t in [500, 1500, 999, 1000] {
            raw.push(format!(r#"{{"account":"a","amount":1,"ts":{t}}}"#).as_bytes());
        }
        raw.push(br#"{"account":"a","amount":1}"#);
        let (batch, _) = decode(&raw, &schema()).unwrap();
        let (kept, late, missing, min, max) = drop_late(&batch, 2, Some(1000)).unwrap();
        assert_eq!(
            (kept.num_rows(), late, missing, min, max),
            (2, 2, 1, Some(1000), Some(1500))
        );
    }

    #[test]
    fn event_times_at_the_edges_do_not_overflow() {
        let mut raw = RawBatch::default();
        for t in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            raw.push(format!(r#"{{"account":"a","amount":1,"ts":{t}}}"#).as_bytes());
        }
        let (batch, bad) = decode(&raw, &schema()).unwrap();
        assert_eq!(batch.num_rows() + bad.len(), 4);
        let windowed = crate::plan::task_input_schema(&schema(), true);
        for kind in [
            WindowKind::Tumble { size_ms: 60_000 },
            WindowKind::Hop {
                slide_ms: 10_000,
                size_ms: 60_000,
            },
            WindowKind::Session { gap_ms: 30_000 },
        ] {
            assign_windows(&batch, 2, kind, &windowed).unwrap();
        }
        drop_late(&batch, 2, Some(0)).unwrap();
    }

    #[test]
    fn hopping_windows_repeat_rows() {
        let mut raw = RawBatch::default();
        raw.push(br#"{"account":"a","amount":1,"ts":65000}"#);
        let (batch, _) = decode(&raw, &schema()).unwrap();
        let windowed = crate::plan::task_input_schema(&schema(), true);
        let out = assign_windows(
            &batch,
            2,
            WindowKind::Hop {
                slide_ms: 30_000,
                size_ms: 60_000,
            },
            &windowed,
        )
        .unwrap();
        let starts = out
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(starts.values().to_vec(), vec![60_000, 30_000]);
    }
}
