//! The micro-batch runtime of one job (a "streaming query"), run by the driver.
//!
//! Each trigger decides the batch's input (`input`: per Kafka partition an offset range,
//! bounded by `max_records_per_trigger`, or the next files), notes the sink's mark and writes the
//! offset-log entry. The batch then runs its stages (`batch`): tasks on the workers or
//! in-process (`runner`), their partials split by state partition in task order, the watermark
//! advanced (largest event time seen minus the delay; it never goes back), each state
//! partition's share sent to its owner ([`crate::stateful`]: it merges, emits and answers a
//! snapshot), the snapshots written, the final query run over the emitted groups, the sink
//! written and the batch committed.
//!
//! A restarted query resumes after its last commit. An uncommitted batch runs again with exactly
//! its logged input and watermark, and the sink skips what that batch already wrote. Progress per
//! batch (`progress`) mirrors Spark's `StreamingQueryProgress`.

mod batch;
mod input;
mod progress;
mod runner;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::producer::BaseProducer;
use tokio::sync::watch;

use crate::checkpoint::{BatchInput, Checkpoint, OffsetEntry};
use crate::plan::Trigger;
use crate::sandbox::JobScope;
use crate::sink::Sink;
use crate::source::{ConsumerPool, SourceSpec, kafka_partitions, kafka_watermarks, list_files};
use crate::sql::JobError;
use crate::stateful::partition_columns;
use crate::task::PreparedJob;
use input::{Position, Resume, end_position, files_input, kafka_input, rate_input, start_position};
pub use progress::{
    Durations, ErrorView, EventTime, Progress, QueryHandle, QueryState, QueryStatus, SinkProgress,
    SourceProgress, StateOperator, rfc3339_ms,
};
pub use runner::{LocalRunner, StateCallError, TaskRunner};

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
    /// What the job may touch (its files root and Kafka clusters).
    pub scope: JobScope,
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
    scope: &JobScope,
    pool: &Arc<ConsumerPool>,
) -> Result<(PreparedJob, Sink), JobError> {
    let job = PreparedJob::new(script, bootstrap, scope).await?;
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
        let (job, sink) = validate(
            &config.script,
            config.bootstrap.as_deref(),
            &config.scope,
            &pool,
        )
        .await?;
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
                let producer: BaseProducer = crate::kafka_access::client_config(&bootstrap)
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
        let resume = Resume::read(&self.checkpoint)?;
        if resume != Resume::Fresh {
            self.handle
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .batches_committed = resume.committed();
        }
        match resume {
            Resume::Fresh => {
                self.watermark_ms = None;
                self.position = None;
                self.next_batch = 0;
            }
            Resume::After { entry, commit } => {
                self.watermark_ms = commit.watermark_ms;
                self.position = Some(end_position(&entry.input));
                self.next_batch = entry.batch_id + 1;
            }
            Resume::Rerun(entry) => {
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
        self.handle.amend_last(progress);
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
                Ok(kafka_input(&starts, ends, limit))
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
                Ok(rate_input(start_ms, from, *due, limit))
            }
            (SourceSpec::Files { dir, max_files }, Position::Files(available)) => {
                let taken = match &self.position {
                    Some(Position::Files(taken)) => *taken,
                    _ => 0,
                };
                files_input(taken, &list_files(dir)?, *available, *max_files)
            }
            (source, latest) => bail!("position {latest:?} does not fit {source:?}"),
        }
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since `since`.
fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
