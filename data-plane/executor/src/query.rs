//! The micro-batch runtime of one job (a "streaming query"), run by the driver.
//!
//! Each trigger: decide the batch's input (per Kafka partition an offset range, bounded by
//! `max_records_per_trigger`; or the next files), note the sink's mark, write the offset-log
//! entry, split the input into tasks (one per partition or file), run them on the workers (or
//! in-process), split their partial results by state partition (in task order), advance the
//! watermark (largest event time seen minus the delay; it never goes back), send each state
//! partition's share to the worker that owns it ([`crate::stateful`]: it merges, emits — append:
//! windows the watermark has passed; update: groups the batch changed — and answers a snapshot),
//! write the snapshots to the checkpoint, run the final query over the emitted groups in
//! partition order, write the sink and commit. A restarted query resumes after its last commit; an
//! uncommitted batch runs again with exactly its logged input and watermark, and the sink skips
//! what that batch already wrote. Progress per batch mirrors Spark's `StreamingQueryProgress`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::checkpoint::{BatchInput, Checkpoint, CommitEntry, OffsetEntry};
use crate::plan::{GROUPS_TABLE, Trigger, session_config};
use crate::sink::Sink;
use crate::source::{ConsumerPool, SourceSpec, kafka_partitions, kafka_watermarks, list_files};
use crate::sql::JobError;
use crate::stateful::{
    ApplyError, StateHeader, StateReply, StateRequest, StateStore, assign, partition_columns, split,
};
use crate::task::{PreparedJob, TaskContext, TaskInput, TaskOutput, TaskRequest};
pub use hdi_executor_api::{
    Durations, ErrorView, EventTime, Progress, QueryState, SinkProgress, SourceProgress,
    StateOperator,
};

/// Progress entries kept per query.
const PROGRESS_KEPT: usize = 100;

/// Why a state request did not give an answer.
#[derive(Debug)]
pub enum StateCallError {
    /// The worker does not hold the base state (send it the snapshot).
    Missing(String),
    /// The worker failed or could not be reached.
    Failed(anyhow::Error),
}

/// Runs tasks and state partitions somewhere: in this process or on workers.
pub trait TaskRunner: Send + Sync + std::fmt::Debug {
    /// Runs one task to its output (retrying elsewhere as the runner sees fit).
    fn run(&self, request: TaskRequest) -> BoxFuture<'_, anyhow::Result<TaskOutput>>;

    /// The workers that can own state partitions now, in a stable order (waits for one).
    fn state_workers(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;

    /// Applies one state partition's share of a batch on `worker` (once; the caller retries).
    fn run_state(
        &self,
        worker: String,
        request: Arc<StateRequest>,
        schema: SchemaRef,
    ) -> BoxFuture<'_, Result<StateReply, StateCallError>>;
}

/// Runs tasks in this process, each on the runtime's worker threads (so a batch's tasks use
/// every core, as they would on separate workers), and holds every state partition.
#[derive(Debug, Default)]
pub struct LocalRunner {
    /// Plans and Kafka consumers.
    pub context: Arc<TaskContext>,
    /// The state partitions.
    pub states: Arc<StateStore>,
}

impl TaskRunner for LocalRunner {
    fn run(&self, request: TaskRequest) -> BoxFuture<'_, anyhow::Result<TaskOutput>> {
        let context = Arc::clone(&self.context);
        Box::pin(async move {
            tokio::spawn(async move { context.run(&request).await })
                .await
                .context("a task panicked")?
        })
    }

    fn state_workers(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async { Ok(vec!["local".to_string()]) })
    }

    fn run_state(
        &self,
        _worker: String,
        request: Arc<StateRequest>,
        _schema: SchemaRef,
    ) -> BoxFuture<'_, Result<StateReply, StateCallError>> {
        let context = Arc::clone(&self.context);
        let states = Arc::clone(&self.states);
        Box::pin(async move {
            let h = &request.header;
            let job = context
                .prepared_job(&h.job_id, &h.script, h.bootstrap.as_deref())
                .await
                .map_err(StateCallError::Failed)?;
            let applied = tokio::task::spawn_blocking(move || states.apply(&job, &request)).await;
            match applied {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(ApplyError::Missing { .. })) => {
                    Err(StateCallError::Missing("not held".into()))
                }
                Ok(Err(ApplyError::Failed(e))) => Err(StateCallError::Failed(e)),
                Err(e) => Err(StateCallError::Failed(
                    anyhow::Error::new(e).context("a state partition panicked"),
                )),
            }
        })
    }
}

/// What the job API shows of a running query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryStatus {
    /// State.
    pub state: QueryState,
    /// The last error (the query retries transient ones).
    pub error: Option<ErrorView>,
    /// Batches committed since the job was created.
    pub batches_committed: u64,
}

/// Shared between a running query and the job API.
#[derive(Debug)]
pub struct QueryHandle {
    /// Status.
    pub status: Mutex<QueryStatus>,
    /// Recent progress, oldest first.
    pub progress: Mutex<VecDeque<Progress>>,
    /// The sink (for previews).
    pub sink: Mutex<Option<Arc<Sink>>>,
}

impl Default for QueryHandle {
    fn default() -> QueryHandle {
        QueryHandle {
            status: Mutex::new(QueryStatus {
                state: QueryState::Running,
                error: None,
                batches_committed: 0,
            }),
            progress: Mutex::new(VecDeque::new()),
            sink: Mutex::new(None),
        }
    }
}

impl QueryHandle {
    fn set_error(&self, code: &str, detail: String) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.error = Some(ErrorView {
            code: code.into(),
            detail,
        });
    }

    fn set_state(&self, state: QueryState) {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state = state;
    }

    /// The last progress entries (oldest first).
    pub fn recent(&self, limit: usize) -> Vec<Progress> {
        let progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress
            .iter()
            .skip(progress.len().saturating_sub(limit))
            .cloned()
            .collect()
    }
}

/// A job to run.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Job id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// The script.
    pub script: String,
    /// Default Kafka cluster.
    pub bootstrap: Option<String>,
    /// The checkpoint directory.
    pub checkpoint: PathBuf,
}

/// Where the source stands between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    Kafka(BTreeMap<i32, i64>),
    Files(u64),
    Rate { start_ms: i64, next: i64 },
}

/// A running query.
pub struct Query {
    config: QueryConfig,
    job: Arc<PreparedJob>,
    sink: Arc<Sink>,
    checkpoint: Checkpoint,
    runner: Arc<dyn TaskRunner>,
    pool: Arc<ConsumerPool>,
    /// The checkpoint's query id.
    query_id: String,
    /// State partitions (fixed by the checkpoint).
    partitions: u32,
    /// The columns that pick a row's state partition; `None` for a map job.
    partition_columns: Option<Vec<usize>>,
    /// Each state partition's owner after the last batch (`None`: not known).
    owners: Vec<Option<String>>,
    watermark_ms: Option<i64>,
    position: Option<Position>,
    next_batch: u64,
    handle: Arc<QueryHandle>,
    dead_letters: Option<(BaseProducer, String)>,
    last_trigger: Option<Instant>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("id", &self.config.id)
            .field("next_batch", &self.next_batch)
            .finish_non_exhaustive()
    }
}

/// Plans a job and checks its topics exist: what submit-time validation runs.
pub async fn validate(
    script: &str,
    bootstrap: Option<&str>,
    pool: &Arc<ConsumerPool>,
) -> Result<(PreparedJob, Sink), JobError> {
    let job = PreparedJob::new(script, bootstrap).await?;
    let sink = Sink::open(&job.plan.sink, bootstrap, Arc::clone(pool))?;
    let checks = {
        let pool = Arc::clone(pool);
        let source = job.source.clone();
        tokio::task::spawn_blocking(move || -> Result<Sink, JobError> {
            match &source {
                SourceSpec::Kafka {
                    bootstrap, topic, ..
                } => {
                    kafka_partitions(&pool, bootstrap, topic)?;
                }
                SourceSpec::Rate { .. } => {}
                SourceSpec::Files { dir, .. } => {
                    if !dir.is_dir() {
                        return Err(JobError::new(
                            "invalid_option",
                            format!("the source directory {} does not exist", dir.display()),
                        ));
                    }
                }
            }
            sink.check()?;
            Ok(sink)
        })
    };
    let sink = checks
        .await
        .map_err(|e| JobError::new("internal", e.to_string()))??;
    Ok((job, sink))
}

impl Query {
    /// Prepares a query (plans it, opens its sink and checkpoint, recovers its position).
    pub async fn start(
        config: QueryConfig,
        runner: Arc<dyn TaskRunner>,
        pool: Arc<ConsumerPool>,
        handle: Arc<QueryHandle>,
    ) -> Result<Query, JobError> {
        let (job, sink) = validate(&config.script, config.bootstrap.as_deref(), &pool).await?;
        let checkpoint = Checkpoint::open(&config.checkpoint)
            .map_err(|e| JobError::new("internal", format!("{e:#}")))?;
        let wanted = crate::plan::state_partitions(&job.plan.script)?;
        let metadata = checkpoint
            .metadata(&uuid::Uuid::new_v4().to_string(), wanted)
            .map_err(|e| JobError::new("internal", format!("{e:#}")))?;
        if metadata.state_partitions != wanted {
            tracing::warn!(job = %config.id, checkpoint = metadata.state_partitions, wanted,
                "the checkpoint fixes the number of state partitions; keeping its number");
        }
        let partition_columns = partition_columns(&job.plan);
        let dead_letters = match job.plan.source.option("dead_letter_topic") {
            Some(topic) => {
                let bootstrap = match &job.source {
                    SourceSpec::Kafka { bootstrap, .. } => Some(bootstrap.clone()),
                    SourceSpec::Files { .. } | SourceSpec::Rate { .. } => config.bootstrap.clone(),
                };
                let bootstrap = bootstrap.ok_or_else(|| {
                    JobError::new("invalid_option", "dead_letter_topic needs a Kafka cluster")
                })?;
                let producer: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("linger.ms", "20")
                    .set("log_level", "3")
                    .create()
                    .map_err(|e| JobError::new("invalid_option", e.to_string()))?;
                Some((producer, topic.to_string()))
            }
            None => None,
        };
        let sink = Arc::new(sink);
        *handle.sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&sink));
        Ok(Query {
            config,
            job: Arc::new(job),
            sink,
            checkpoint,
            runner,
            pool,
            query_id: metadata.id,
            partitions: metadata.state_partitions,
            partition_columns,
            owners: Vec::new(),
            watermark_ms: None,
            position: None,
            next_batch: 0,
            handle,
            dead_letters,
            last_trigger: None,
        })
    }

    /// Runs until stopped (`stop` turns true), completed (available-now) or failed.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> QueryState {
        let mut backoff = Duration::from_millis(200);
        let mut needs_recovery = true;
        let mut target: Option<Position> = None;
        loop {
            if *stop.borrow() {
                self.handle.set_state(QueryState::Stopped);
                return QueryState::Stopped;
            }
            let started = Instant::now();
            let result = async {
                if needs_recovery {
                    // Restore from the checkpoint (running an uncommitted batch again) before
                    // anything new is planned: a batch id is never logged twice.
                    self.recover()
                        .await
                        .context("recovering from the checkpoint")?;
                    needs_recovery = false;
                }
                if self.job.plan.trigger == Trigger::AvailableNow && target.is_none() {
                    target = Some(self.latest().await?);
                }
                self.step(target.as_ref()).await
            }
            .await;
            match result {
                Ok(true) => backoff = Duration::from_millis(200),
                Ok(false) if target.is_some() => {
                    self.handle.set_state(QueryState::Completed);
                    return QueryState::Completed;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(job = %self.config.id, "batch failed, will retry: {error:#}");
                    self.handle.set_error("batch_failed", format!("{error:#}"));
                    needs_recovery = true;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            let interval = match self.job.plan.trigger {
                Trigger::ProcessingTime(interval) => interval,
                Trigger::AvailableNow => Duration::ZERO,
            };
            let wait = interval.saturating_sub(started.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Restores the state and position from the checkpoint; runs an uncommitted batch again.
    async fn recover(&mut self) -> anyhow::Result<()> {
        // Where the state partitions are is not known any more: the next batch sends each owner
        // its partition's snapshot from the checkpoint.
        self.owners = vec![None; self.partitions as usize];
        let Some(entry) = self.checkpoint.latest_offsets()? else {
            self.watermark_ms = None;
            self.position = None;
            self.next_batch = 0;
            return Ok(());
        };
        let committed = self.checkpoint.commit_of(entry.batch_id)?;
        self.handle
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .batches_committed = if committed.is_some() {
            entry.batch_id + 1
        } else {
            entry.batch_id
        };
        match committed {
            Some(commit) => {
                self.watermark_ms = commit.watermark_ms;
                self.position = Some(end_position(&entry.input));
                self.next_batch = entry.batch_id + 1;
            }
            None => {
                tracing::info!(job = %self.config.id, batch = entry.batch_id, "running the uncommitted batch again");
                self.watermark_ms = entry.watermark_ms;
                self.position = Some(start_position(&entry.input));
                self.next_batch = entry.batch_id;
                self.run_batch(entry, true).await?;
            }
        }
        Ok(())
    }

    /// The sources' latest position.
    async fn latest(&self) -> anyhow::Result<Position> {
        if let SourceSpec::Rate { rows_per_second } = &self.job.source {
            let now = now_ms();
            let start_ms = match &self.position {
                Some(Position::Rate { start_ms, .. }) => *start_ms,
                _ => now,
            };
            let due = (now - start_ms).max(0) * i64::try_from(*rows_per_second)? / 1000;
            return Ok(Position::Rate {
                start_ms,
                next: due,
            });
        }
        let pool = Arc::clone(&self.pool);
        let source = self.job.source.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Position> {
            match &source {
                SourceSpec::Kafka {
                    bootstrap, topic, ..
                } => {
                    let partitions = kafka_partitions(&pool, bootstrap, topic)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let marks = kafka_watermarks(&pool, bootstrap, topic, &partitions)?;
                    Ok(Position::Kafka(
                        marks.into_iter().map(|(p, (_, h))| (p, h)).collect(),
                    ))
                }
                SourceSpec::Files { dir, .. } => Ok(Position::Files(list_files(dir)?.len() as u64)),
                SourceSpec::Rate { .. } => bail!("a rate source has no offsets to read"),
            }
        })
        .await?
    }

    /// Plans and runs one batch if there is input; `Ok(false)` when there was none.
    async fn step(&mut self, target: Option<&Position>) -> anyhow::Result<bool> {
        let started = Instant::now();
        let latest = match target {
            Some(target) => target.clone(),
            None => self.latest().await?,
        };
        let latest_ms = elapsed_ms(started);
        let input = self.next_input(&latest).await?;
        if input.is_empty() {
            return Ok(false);
        }
        let sink = Arc::clone(&self.sink);
        let sink_mark = tokio::task::spawn_blocking(move || sink.mark()).await??;
        // Compacted-topic tables are joined as of their ends now, the same on every worker and
        // in a rerun of this batch.
        let tables = {
            let pool = Arc::clone(&self.pool);
            let upserts: Vec<(String, String, String)> = self
                .job
                .upserts
                .iter()
                .map(|u| (u.name.clone(), u.bootstrap.clone(), u.topic.clone()))
                .collect();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut tables = BTreeMap::new();
                for (name, bootstrap, topic) in upserts {
                    let partitions = kafka_partitions(&pool, &bootstrap, &topic)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let marks = kafka_watermarks(&pool, &bootstrap, &topic, &partitions)?;
                    tables.insert(name, marks.into_iter().map(|(p, (_, h))| (p, h)).collect());
                }
                Ok(tables)
            })
            .await??
        };
        let entry = OffsetEntry {
            batch_id: self.next_batch,
            input,
            watermark_ms: self.watermark_ms,
            sink_mark,
            tables,
        };
        self.checkpoint.write_offsets(&entry)?;
        let mut progress = self.run_batch(entry, false).await?;
        progress.duration_ms.latest_offset = latest_ms;
        progress.duration_ms.trigger_execution = elapsed_ms(started);
        if progress.duration_ms.trigger_execution > 0 {
            progress.processed_rows_per_second = progress.num_input_rows as f64 * 1000.0
                / progress.duration_ms.trigger_execution as f64;
        }
        let mut recent = self
            .handle
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = recent.back_mut() {
            *last = progress;
        }
        drop(recent);
        Ok(true)
    }

    /// The next batch's input, from the position to `latest`, bounded by the trigger's limits.
    async fn next_input(&mut self, latest: &Position) -> anyhow::Result<BatchInput> {
        let limit = self.job.plan.max_records_per_trigger;
        match (&self.job.source, latest) {
            (
                SourceSpec::Kafka {
                    bootstrap,
                    topic,
                    earliest,
                },
                Position::Kafka(ends),
            ) => {
                let starts = match &self.position {
                    Some(Position::Kafka(starts)) => starts.clone(),
                    _ => {
                        // A new job: from the earliest or latest offsets.
                        let pool = Arc::clone(&self.pool);
                        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
                        let partitions: Vec<i32> = ends.keys().copied().collect();
                        let marks = tokio::task::spawn_blocking(move || {
                            kafka_watermarks(&pool, &bootstrap, &topic, &partitions)
                        })
                        .await??;
                        let starts: BTreeMap<i32, i64> = marks
                            .into_iter()
                            .map(|(p, (low, high))| (p, if *earliest { low } else { high }))
                            .collect();
                        self.position = Some(Position::Kafka(starts.clone()));
                        starts
                    }
                };
                let mut ranges = BTreeMap::new();
                let mut available: Vec<(i32, i64, i64)> = Vec::new();
                for (partition, end) in ends {
                    // A partition added since the job started is read from its beginning.
                    let start = starts.get(partition).copied().unwrap_or(0).min(*end);
                    available.push((*partition, start, *end));
                }
                let total: i64 = available.iter().map(|(_, s, e)| e - s).sum();
                let budget =
                    limit.map_or(total, |l| i64::try_from(l).unwrap_or(i64::MAX).min(total));
                // Share the budget across partitions in proportion to what each has.
                let mut given = 0i64;
                for (i, (partition, start, end)) in available.iter().enumerate() {
                    let has = end - start;
                    let share = if total == 0 {
                        0
                    } else if i + 1 == available.len() {
                        (budget - given).min(has)
                    } else {
                        ((i128::from(has) * i128::from(budget)) / i128::from(total)) as i64
                    };
                    given += share;
                    ranges.insert(*partition, (*start, start + share.max(0)));
                }
                Ok(BatchInput::Kafka { ranges })
            }
            (
                SourceSpec::Rate { .. },
                Position::Rate {
                    start_ms,
                    next: due,
                },
            ) => {
                let (start_ms, from) = match &self.position {
                    Some(Position::Rate { start_ms, next }) => (*start_ms, *next),
                    _ => {
                        self.position = Some(Position::Rate {
                            start_ms: *start_ms,
                            next: 0,
                        });
                        (*start_ms, 0)
                    }
                };
                let to = match limit {
                    Some(limit) => (*due).min(from + i64::try_from(limit).unwrap_or(i64::MAX)),
                    None => *due,
                };
                Ok(BatchInput::Rate {
                    start_ms,
                    from,
                    to: to.max(from),
                })
            }
            (SourceSpec::Files { dir, max_files }, Position::Files(available)) => {
                let taken = match &self.position {
                    Some(Position::Files(taken)) => *taken,
                    _ => 0,
                };
                let files = list_files(dir)?;
                let end = (*available).min(files.len() as u64);
                let count = end.saturating_sub(taken);
                let count = max_files.map_or(count, |m| count.min(m as u64));
                let from = usize::try_from(taken)?;
                let to = usize::try_from(taken + count)?;
                Ok(BatchInput::Files {
                    taken,
                    files: files
                        .get(from..to)
                        .map(<[PathBuf]>::to_vec)
                        .unwrap_or_default(),
                })
            }
            (source, latest) => bail!("position {latest:?} does not fit {source:?}"),
        }
    }

    /// Runs a logged batch to its commit; returns its progress (also recorded).
    async fn run_batch(&mut self, entry: OffsetEntry, retry: bool) -> anyhow::Result<Progress> {
        let started = Instant::now();
        let timestamp = chrono_now();
        let mut durations = Durations::default();
        // Tasks, one per partition or file.
        let inputs: Vec<TaskInput> = match &entry.input {
            BatchInput::Kafka { ranges } => ranges
                .iter()
                .filter(|(_, (s, e))| e > s)
                .map(|(p, (s, e))| TaskInput::Kafka {
                    partition: *p,
                    start: *s,
                    end: *e,
                })
                .collect(),
            BatchInput::Rate { start_ms, from, to } => {
                let rate = match &self.job.source {
                    SourceSpec::Rate { rows_per_second } => *rows_per_second,
                    _ => 1,
                };
                vec![TaskInput::Rate {
                    start_ms: *start_ms,
                    rows_per_second: rate,
                    from: *from,
                    to: *to,
                }]
            }
            BatchInput::Files { files, .. } => files
                .iter()
                .map(|f| TaskInput::Files {
                    paths: vec![f.clone()],
                })
                .collect(),
        };
        let requests: Vec<TaskRequest> = inputs
            .into_iter()
            .map(|input| TaskRequest {
                job_id: self.config.id.clone(),
                script: self.config.script.clone(),
                bootstrap: self.config.bootstrap.clone(),
                batch_id: entry.batch_id,
                watermark_ms: entry.watermark_ms,
                input,
                tables: entry.tables.clone(),
            })
            .collect();
        // Every task runs at once; their results are merged in task order (deterministic) as
        // they come, overlapping the merge with the tasks still running.
        let run_started = Instant::now();
        let runner = Arc::clone(&self.runner);
        let mut outputs =
            futures::stream::iter(requests.into_iter().map(|r| runner.run(r))).buffered(usize::MAX);
        let mut merge_ms = 0u64;

        let mut input_rows = 0u64;
        let mut malformed = 0u64;
        let mut late = 0u64;
        let mut min_event: Option<i64> = None;
        let mut max_event: Option<i64> = None;
        let mut dead_letters = Vec::new();
        let mut output: Vec<RecordBatch> = Vec::new();
        let mut partials: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.partitions as usize];
        while let Some(task) = outputs.next().await {
            let task = task?;
            let merge_started = Instant::now();
            let meta = task.meta;
            input_rows += meta.input_rows;
            malformed += meta.malformed_rows;
            late += meta.late_rows;
            durations.get_batch += meta.fetch_ms;
            min_event = min_opt(min_event, meta.min_event_ms);
            max_event = max_opt(max_event, meta.max_event_ms);
            dead_letters.extend(meta.dead_letters);
            for batch in task.batches.into_iter().filter(|b| b.num_rows() > 0) {
                match &self.partition_columns {
                    None => output.push(batch),
                    Some(columns) => {
                        let parts = split(&batch, columns, self.partitions)?;
                        for (p, part) in parts.into_iter().enumerate() {
                            if part.num_rows() > 0
                                && let Some(rows) = partials.get_mut(p)
                            {
                                rows.push(part);
                            }
                        }
                    }
                }
            }
            merge_ms += elapsed_ms(merge_started);
        }
        drop(outputs);
        durations.execution = elapsed_ms(run_started);
        let emit_started = Instant::now();
        // The watermark moves with the largest event time seen; it never goes back.
        let mut watermark = entry.watermark_ms;
        if let (Some(def), Some(max)) = (&self.job.plan.source.watermark, max_event) {
            let delay = i64::try_from(def.delay.as_millis()).unwrap_or(i64::MAX);
            let candidate = max.saturating_sub(delay);
            watermark = Some(watermark.map_or(candidate, |w| w.max(candidate)));
        }
        let mut rows_updated = 0u64;
        let (mut state_rows, mut state_bytes) = (0u64, 0u64);
        let mut partition_owners: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut snapshot_ms = 0;
        durations.state_merge = merge_ms;
        if self.partition_columns.is_some() {
            let replies = self
                .apply_state(entry.batch_id, watermark, partials)
                .await?;
            durations.state_merge = merge_ms + elapsed_ms(emit_started);
            let mut emitted = Vec::new();
            let mut snapshots = Vec::new();
            for (p, (worker, reply)) in replies.into_iter().enumerate() {
                rows_updated += reply.meta.rows_updated;
                state_rows += reply.meta.state_rows;
                state_bytes += reply.meta.state_bytes;
                partition_owners
                    .entry(worker)
                    .or_default()
                    .push(u32::try_from(p)?);
                emitted.extend(reply.emitted);
                snapshots.push(reply.snapshot);
            }
            // The snapshots are durable before the batch commits.
            let snapshot_started = Instant::now();
            let checkpoint = self.checkpoint.clone();
            let batch_id = entry.batch_id;
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                for (p, bytes) in snapshots.iter().enumerate() {
                    checkpoint.write_state(batch_id, u32::try_from(p)?, bytes)?;
                }
                Ok(())
            })
            .await??;
            snapshot_ms = elapsed_ms(snapshot_started);
            match self.job.plan.aggregate() {
                Some(plan) => {
                    let final_started = Instant::now();
                    if emitted.iter().any(|b| b.num_rows() > 0) {
                        let ctx = SessionContext::new_with_config(session_config());
                        let table =
                            MemTable::try_new(Arc::clone(&plan.groups_schema), vec![emitted])?;
                        ctx.register_table(GROUPS_TABLE, Arc::new(table))?;
                        output = ctx.sql(&plan.final_sql).await?.collect().await?;
                    }
                    durations.query_planning = elapsed_ms(final_started);
                }
                None => output = emitted,
            }
        }
        let output = conform(output, &self.job.plan.output_schema)?;
        let output_rows: u64 = output.iter().map(|b| b.num_rows() as u64).sum();

        let sink_started = Instant::now();
        {
            let sink = Arc::clone(&self.sink);
            let job = self.config.id.clone();
            let mark = entry.sink_mark.clone();
            let batch_id = entry.batch_id;
            let rows = output;
            tokio::task::spawn_blocking(move || sink.write(&job, batch_id, &rows, &mark, retry))
                .await??;
        }
        if let Some((producer, topic)) = &self.dead_letters {
            // At least once: a batch whose dead letters are not all handed over fails and runs
            // again (resending them) rather than losing them.
            for record in &dead_letters {
                let mut attempt = BaseRecord::<(), [u8]>::to(topic).payload(record.as_bytes());
                loop {
                    match producer.send(attempt) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            back,
                        )) => {
                            producer.poll(Duration::from_millis(10));
                            attempt = back;
                        }
                        Err((error, _)) => bail!("cannot send a dead letter to {topic}: {error}"),
                    }
                }
            }
            producer
                .flush(Duration::from_secs(30))
                .with_context(|| format!("dead letters of batch {} to {topic}", entry.batch_id))?;
        }
        durations.add_batch = elapsed_ms(sink_started);
        crash_point_after_sink_write(entry.batch_id);

        let commit_started = Instant::now();
        self.checkpoint.write_commit(&CommitEntry {
            batch_id: entry.batch_id,
            watermark_ms: watermark,
            output_rows,
        })?;
        durations.commit = snapshot_ms + elapsed_ms(commit_started);
        durations.trigger_execution = elapsed_ms(started);

        self.watermark_ms = watermark;
        self.position = Some(end_position(&entry.input));
        self.next_batch = entry.batch_id + 1;
        let since_last = self.last_trigger.map(|t| t.elapsed());
        self.last_trigger = Some(started);
        let (start_offset, end_offset) = offsets_view(&entry.input);
        let progress = Progress {
            id: self.config.id.clone(),
            name: self.config.name.clone(),
            batch_id: entry.batch_id,
            timestamp,
            num_input_rows: input_rows,
            input_rows_per_second: since_last
                .filter(|d| !d.is_zero())
                .map_or(0.0, |d| input_rows as f64 / d.as_secs_f64()),
            processed_rows_per_second: if durations.trigger_execution > 0 {
                input_rows as f64 * 1000.0 / durations.trigger_execution as f64
            } else {
                0.0
            },
            duration_ms: durations,
            event_time: EventTime {
                min: min_event.map(rfc3339_ms),
                max: max_event.map(rfc3339_ms),
                watermark: watermark.map(rfc3339_ms),
            },
            state_operators: vec![StateOperator {
                num_rows_total: state_rows,
                num_rows_updated: rows_updated,
                memory_used_bytes: state_bytes,
                num_rows_dropped_by_watermark: late,
                num_state_partitions: if self.partition_columns.is_some() {
                    self.partitions
                } else {
                    0
                },
                partition_owners,
            }],
            sources: vec![SourceProgress {
                description: self.job.source.describe(),
                start_offset,
                end_offset,
                num_input_rows: input_rows,
                malformed_rows: malformed,
            }],
            sink: SinkProgress {
                description: self.sink.describe(),
                num_output_rows: output_rows,
            },
        };
        {
            let mut status = self
                .handle
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            status.batches_committed = entry.batch_id + 1;
            status.error = None;
        }
        let mut recent = self
            .handle
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.push_back(progress.clone());
        while recent.len() > PROGRESS_KEPT {
            recent.pop_front();
        }
        tracing::info!(
            job = %self.config.id,
            batch = progress.batch_id,
            input = input_rows,
            output = output_rows,
            late,
            malformed,
            ms = progress.duration_ms.trigger_execution,
            "batch committed"
        );
        Ok(progress)
    }

    /// Sends each state partition its share of batch `batch_id` (emitting by `watermark`) on
    /// its owner (assigned afresh from the live workers); answers the owners and replies in
    /// partition order.
    async fn apply_state(
        &mut self,
        batch_id: u64,
        watermark: Option<i64>,
        partials: Vec<Vec<RecordBatch>>,
    ) -> anyhow::Result<Vec<(String, StateReply)>> {
        let workers = self.runner.state_workers().await?;
        let owners = assign(self.partitions, &self.owners, &workers);
        if owners.len() != partials.len() {
            bail!("no worker can own the state partitions");
        }
        for (p, owner) in owners.iter().enumerate() {
            if let Some(Some(previous)) = self.owners.get(p)
                && previous != owner
            {
                tracing::info!(job = %self.config.id, batch = batch_id, partition = p,
                    from = %previous, to = %owner, "state partition moves");
            }
        }
        let schema = partials.iter().flatten().next().map_or_else(
            || Arc::clone(&self.job.plan.task_output_schema),
            RecordBatch::schema,
        );
        let calls = partials.into_iter().enumerate().map(|(p, rows)| {
            let owner = owners[p].clone();
            let owned = owners
                .iter()
                .enumerate()
                .filter(|(_, o)| **o == owner)
                .map(|(i, _)| i as u32)
                .collect();
            let moved = self.owners.get(p).and_then(Option::as_ref) != Some(&owner);
            let request = StateRequest {
                header: StateHeader {
                    job_id: self.config.id.clone(),
                    query_id: self.query_id.clone(),
                    script: self.config.script.clone(),
                    bootstrap: self.config.bootstrap.clone(),
                    batch_id,
                    partition: p as u32,
                    partitions: self.partitions,
                    base: batch_id.checked_sub(1),
                    watermark_ms: watermark,
                    owned,
                    with_snapshot: false,
                },
                partials: rows,
                snapshot: None,
            };
            apply_partition(
                Arc::clone(&self.runner),
                self.checkpoint.clone(),
                request,
                owner,
                moved,
                Arc::clone(&schema),
            )
        });
        let replies = futures::future::try_join_all(calls).await?;
        self.owners = replies.iter().map(|(w, _)| Some(w.clone())).collect();
        Ok(replies)
    }
}

/// Applies one state partition's share of a batch on `worker`, sending the base snapshot along
/// when the partition moved or the worker lacks it, and moving the partition to another live
/// worker when its owner fails.
async fn apply_partition(
    runner: Arc<dyn TaskRunner>,
    checkpoint: Checkpoint,
    request: StateRequest,
    mut worker: String,
    moved: bool,
    schema: SchemaRef,
) -> anyhow::Result<(String, StateReply)> {
    let partition = request.header.partition;
    let partitions = request.header.partitions;
    let batch_id = request.header.batch_id;
    let base = request.header.base;
    let load = |checkpoint: &Checkpoint| -> anyhow::Result<Option<Arc<Vec<u8>>>> {
        match base {
            None => Ok(None),
            Some(b) => checkpoint
                .state_of(b, partition)?
                .map(|bytes| Some(Arc::new(bytes)))
                .with_context(|| {
                    format!("the checkpoint lacks state partition {partition} after batch {b}")
                }),
        }
    };
    let mut request = Arc::new(request);
    if moved {
        Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
    }
    let mut attempts = 0u32;
    loop {
        let error = match runner
            .run_state(worker.clone(), Arc::clone(&request), Arc::clone(&schema))
            .await
        {
            Ok(reply) => return Ok((worker, reply)),
            Err(StateCallError::Missing(why)) if request.snapshot.is_none() && base.is_some() => {
                tracing::info!(%worker, batch = batch_id, partition,
                    "the worker lacks the partition's state ({why}); sending the snapshot");
                Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
                continue;
            }
            Err(StateCallError::Missing(why)) => anyhow::anyhow!(why),
            Err(StateCallError::Failed(error)) => error,
        };
        attempts += 1;
        if attempts >= 10 {
            return Err(error.context(format!(
                "state partition {partition} of batch {batch_id} failed {attempts} times"
            )));
        }
        tracing::warn!(%worker, batch = batch_id, partition, attempts,
            "state partition failed, retrying: {error:#}");
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
        let workers = runner.state_workers().await?;
        if attempts >= 2 || !workers.contains(&worker) {
            let next = workers
                .iter()
                .position(|w| *w == worker)
                .map_or(0, |i| (i + 1) % workers.len());
            if let Some(other) = workers.get(next)
                && *other != worker
            {
                tracing::info!(batch = batch_id, partition, from = %worker, to = %other,
                    "state partition moves after a failure");
                worker = other.clone();
                // The new owner must not forget partitions it owns that this request does
                // not know of.
                Arc::make_mut(&mut request).header.owned = (0..partitions).collect();
            }
        }
        // A failed attempt leaves the owner without a valid state: always send the base.
        Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
    }
}

/// A test hook: with `HDI_EXECUTOR_CRASH_AFTER_SINK_WRITE=N` in the environment, the process
/// aborts right after batch `N`'s output is written and before it commits, the worst moment for
/// exactly-once (the e2e test restarts it and checks no output row is repeated).
fn crash_point_after_sink_write(batch_id: u64) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("HDI_EXECUTOR_CRASH_AFTER_SINK_WRITE")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(batch_id) {
        eprintln!(
            "HDI_EXECUTOR_CRASH_AFTER_SINK_WRITE: aborting after batch {batch_id}'s sink write"
        );
        std::process::abort();
    }
}

/// Casts each batch to the planned output schema (names and types as planned).
fn conform(batches: Vec<RecordBatch>, schema: &SchemaRef) -> anyhow::Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            if b.num_columns() != schema.fields().len() {
                bail!(
                    "a batch has {} columns, the plan {}",
                    b.num_columns(),
                    schema.fields().len()
                );
            }
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(Arc::clone(c))
                    } else {
                        datafusion::arrow::compute::cast(c, f.data_type()).context("output column")
                    }
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
        })
        .collect()
}

fn start_position(input: &BatchInput) -> Position {
    match input {
        BatchInput::Kafka { ranges } => {
            Position::Kafka(ranges.iter().map(|(p, (s, _))| (*p, *s)).collect())
        }
        BatchInput::Files { taken, .. } => Position::Files(*taken),
        BatchInput::Rate { start_ms, from, .. } => Position::Rate {
            start_ms: *start_ms,
            next: *from,
        },
    }
}

fn end_position(input: &BatchInput) -> Position {
    match input {
        BatchInput::Kafka { ranges } => {
            Position::Kafka(ranges.iter().map(|(p, (_, e))| (*p, *e)).collect())
        }
        BatchInput::Files { taken, files } => Position::Files(taken + files.len() as u64),
        BatchInput::Rate { start_ms, to, .. } => Position::Rate {
            start_ms: *start_ms,
            next: *to,
        },
    }
}

fn offsets_view(input: &BatchInput) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    match input {
        BatchInput::Kafka { ranges } => (
            ranges
                .iter()
                .map(|(p, (s, _))| (p.to_string(), *s))
                .collect(),
            ranges
                .iter()
                .map(|(p, (_, e))| (p.to_string(), *e))
                .collect(),
        ),
        BatchInput::Rate { from, to, .. } => (
            BTreeMap::from([("rows".to_string(), *from)]),
            BTreeMap::from([("rows".to_string(), *to)]),
        ),
        BatchInput::Files { taken, files } => {
            let taken = i64::try_from(*taken).unwrap_or(i64::MAX);
            let after = taken + i64::try_from(files.len()).unwrap_or(0);
            (
                BTreeMap::from([("files".to_string(), taken)]),
                BTreeMap::from([("files".to_string(), after)]),
            )
        }
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn chrono_now() -> String {
    rfc3339_ms(now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_687_200_123), "2026-11-26T10:00:00.123Z");
    }
}
