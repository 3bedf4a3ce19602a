//! One micro-batch, from its offset-log entry to its commit, as named stages: the tasks it
//! splits into ([`tasks_for`]), running them and gathering their results in task order
//! ([`gather`]), the watermark ([`advance_watermark`]), the state partitions
//! ([`Query::apply_state`], [`write_snapshots`](Query::write_snapshots)), the final query
//! ([`finalize`]), the sink ([`Query::write_sink`]), the dead letters
//! ([`Query::send_dead_letters`]), the commit ([`Query::commit`]) and the progress entry
//! ([`Query::progress`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt as _;
use rdkafka::producer::{BaseRecord, Producer as _};

use super::input::{end_position, offsets_view};
use super::progress::{
    Durations, EventTime, Progress, SinkProgress, SourceProgress, StateOperator, rfc3339_ms,
};
use super::runner::{TaskRunner, apply_partition};
use super::{Query, QueryConfig, elapsed_ms, now_ms};
use crate::checkpoint::{BatchInput, CommitEntry, OffsetEntry};
use crate::plan::{AggregatePlan, GROUPS_TABLE, session_config};
use crate::source::SourceSpec;
use crate::sql::WatermarkDef;
use crate::stateful::{StateHeader, StateReply, StateRequest, assign, split};
use crate::task::{TaskInput, TaskRequest};

impl Query {
    /// Runs a logged batch to its commit; returns its progress (also recorded). `retry`: the
    /// batch ran before (the sink skips what that run wrote).
    pub(super) async fn run_batch(
        &mut self,
        entry: OffsetEntry,
        retry: bool,
    ) -> anyhow::Result<Progress> {
        let started = Instant::now();
        let timestamp = rfc3339_ms(now_ms());
        let mut durations = Durations::default();

        let requests = tasks_for(&self.config, &self.job.source, &entry);
        let run_started = Instant::now();
        let partitioning = self
            .partition_columns
            .as_deref()
            .map(|columns| (columns, self.partitions));
        let Gathered {
            figures: tasks,
            rows,
            partials,
        } = gather(&self.runner, requests, partitioning).await?;
        durations.execution = elapsed_ms(run_started);
        durations.get_batch = tasks.fetch_ms;
        durations.state_merge = tasks.merge_ms;

        let emit_started = Instant::now();
        let watermark = advance_watermark(
            entry.watermark_ms,
            self.job.plan.source.watermark.as_ref(),
            tasks.max_event,
        );
        let (rows, state) = if self.partition_columns.is_some() {
            let replies = self
                .apply_state(entry.batch_id, watermark, partials)
                .await?;
            durations.state_merge = tasks.merge_ms + elapsed_ms(emit_started);
            let applied = Applied::from_replies(replies)?;
            let snapshot_started = Instant::now();
            self.write_snapshots(entry.batch_id, applied.snapshots)
                .await?;
            // The snapshots count to the commit.
            durations.commit = elapsed_ms(snapshot_started);
            let final_started = Instant::now();
            let aggregate = self.job.plan.aggregate();
            let rows = finalize(aggregate, applied.emitted).await?;
            if aggregate.is_some() {
                durations.query_planning = elapsed_ms(final_started);
            }
            (rows, applied.figures)
        } else {
            (rows, StateFigures::default())
        };
        let output = conform(rows, &self.job.plan.output_schema)?;
        let output_rows: u64 = output.iter().map(|b| b.num_rows() as u64).sum();

        let sink_started = Instant::now();
        self.write_sink(&entry, output, retry).await?;
        self.send_dead_letters(entry.batch_id, &tasks.dead_letters)?;
        durations.add_batch = elapsed_ms(sink_started);
        crash_point_after_sink_write(entry.batch_id);

        let commit_started = Instant::now();
        self.commit(&entry, watermark, output_rows)?;
        durations.commit += elapsed_ms(commit_started);
        durations.trigger_execution = elapsed_ms(started);

        let since_last = self.last_trigger.map(|t| t.elapsed());
        self.last_trigger = Some(started);
        let progress = self.progress(Outcome {
            entry: &entry,
            timestamp,
            durations,
            since_last,
            tasks: &tasks,
            state,
            watermark,
            output_rows,
        });
        self.handle.committed(&progress);
        tracing::info!(
            job = %self.config.id,
            batch = progress.batch_id,
            input = tasks.input_rows,
            output = output_rows,
            late = tasks.late,
            malformed = tasks.malformed,
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

    /// Makes the state partitions' snapshots after batch `batch_id` durable (before it commits).
    async fn write_snapshots(&self, batch_id: u64, snapshots: Vec<Vec<u8>>) -> anyhow::Result<()> {
        let checkpoint = self.checkpoint.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for (p, bytes) in snapshots.iter().enumerate() {
                checkpoint.write_state(batch_id, u32::try_from(p)?, bytes)?;
            }
            Ok(())
        })
        .await?
    }

    /// Writes the batch's output to the sink, once per batch (a `retry` skips what an earlier
    /// run of the batch wrote, by the entry's sink mark).
    async fn write_sink(
        &self,
        entry: &OffsetEntry,
        rows: Vec<RecordBatch>,
        retry: bool,
    ) -> anyhow::Result<()> {
        let sink = Arc::clone(&self.sink);
        let job = self.config.id.clone();
        let mark = entry.sink_mark.clone();
        let batch_id = entry.batch_id;
        tokio::task::spawn_blocking(move || sink.write(&job, batch_id, &rows, &mark, retry)).await?
    }

    /// Hands the batch's malformed records to the dead-letter topic, if the job has one.
    fn send_dead_letters(&self, batch_id: u64, dead_letters: &[String]) -> anyhow::Result<()> {
        let Some((producer, topic)) = &self.dead_letters else {
            return Ok(());
        };
        // At least once: a batch whose dead letters are not all handed over fails and runs
        // again (resending them) rather than losing them.
        for record in dead_letters {
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
            .with_context(|| format!("dead letters of batch {batch_id} to {topic}"))
    }

    /// Commits the batch, and moves the query past it.
    fn commit(
        &mut self,
        entry: &OffsetEntry,
        watermark: Option<i64>,
        output_rows: u64,
    ) -> anyhow::Result<()> {
        self.checkpoint.write_commit(&CommitEntry {
            batch_id: entry.batch_id,
            watermark_ms: watermark,
            output_rows,
        })?;
        self.watermark_ms = watermark;
        self.position = Some(end_position(&entry.input));
        self.next_batch = entry.batch_id + 1;
        Ok(())
    }

    /// The batch's progress entry.
    fn progress(&self, outcome: Outcome<'_>) -> Progress {
        let Outcome {
            entry,
            timestamp,
            durations,
            since_last,
            tasks,
            state,
            watermark,
            output_rows,
        } = outcome;
        let input_rows = tasks.input_rows;
        let (start_offset, end_offset) = offsets_view(&entry.input);
        Progress {
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
                min: tasks.min_event.map(rfc3339_ms),
                max: tasks.max_event.map(rfc3339_ms),
                watermark: watermark.map(rfc3339_ms),
            },
            state_operators: vec![StateOperator {
                num_rows_total: state.rows,
                num_rows_updated: state.rows_updated,
                memory_used_bytes: state.bytes,
                num_rows_dropped_by_watermark: tasks.late,
                num_state_partitions: if self.partition_columns.is_some() {
                    self.partitions
                } else {
                    0
                },
                partition_owners: state.owners,
            }],
            sources: vec![SourceProgress {
                description: self.job.source.describe(),
                start_offset,
                end_offset,
                num_input_rows: input_rows,
                malformed_rows: tasks.malformed,
            }],
            sink: SinkProgress {
                description: self.sink.describe(),
                num_output_rows: output_rows,
            },
        }
    }
}

/// What a batch measured, for its progress entry.
struct Outcome<'a> {
    entry: &'a OffsetEntry,
    /// When the batch started (RFC 3339).
    timestamp: String,
    durations: Durations,
    /// Since the previous batch started.
    since_last: Option<Duration>,
    tasks: &'a TaskFigures,
    state: StateFigures,
    /// The watermark after the batch.
    watermark: Option<i64>,
    output_rows: u64,
}

/// The batch's tasks, one per Kafka partition with records in range, one per file, or one for
/// a `rate` source's rows.
pub(super) fn tasks_for(
    config: &QueryConfig,
    source: &SourceSpec,
    entry: &OffsetEntry,
) -> Vec<TaskRequest> {
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
            let rate = match source {
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
                names: vec![
                    f.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                ],
            })
            .collect(),
    };
    inputs
        .into_iter()
        .map(|input| TaskRequest {
            job_id: config.id.clone(),
            script: config.script.clone(),
            bootstrap: config.bootstrap.clone(),
            batch_id: entry.batch_id,
            watermark_ms: entry.watermark_ms,
            input,
            tables: entry.tables.clone(),
            kafka_access: crate::kafka_access::snapshot(),
        })
        .collect()
}

/// A batch's task counters, summed in task order.
#[derive(Debug, Default, PartialEq)]
pub(super) struct TaskFigures {
    /// Records read.
    pub(super) input_rows: u64,
    /// Records that did not decode.
    pub(super) malformed: u64,
    /// Rows dropped as late.
    pub(super) late: u64,
    /// Milliseconds reading the source, over all tasks.
    pub(super) fetch_ms: u64,
    /// Milliseconds merging the tasks' results as they came.
    pub(super) merge_ms: u64,
    /// Smallest event time seen.
    pub(super) min_event: Option<i64>,
    /// Largest event time seen.
    pub(super) max_event: Option<i64>,
    /// Malformed records for the dead-letter topic.
    pub(super) dead_letters: Vec<String>,
}

/// What a batch's tasks gave.
#[derive(Debug, Default)]
pub(super) struct Gathered {
    /// Counters.
    pub(super) figures: TaskFigures,
    /// A map job's output rows, in task order.
    pub(super) rows: Vec<RecordBatch>,
    /// A stateful job's partial results by state partition, each in task order.
    pub(super) partials: Vec<Vec<RecordBatch>>,
}

/// Runs every task at once and gathers their results in task order (deterministic) as they
/// come, overlapping the gathering with the tasks still running. `partitioning` (the columns
/// that pick a row's state partition, and how many partitions there are) splits a stateful
/// job's rows into partials; without it the rows are the output.
pub(super) async fn gather(
    runner: &Arc<dyn TaskRunner>,
    requests: Vec<TaskRequest>,
    partitioning: Option<(&[usize], u32)>,
) -> anyhow::Result<Gathered> {
    let mut outputs =
        futures::stream::iter(requests.into_iter().map(|r| runner.run(r))).buffered(usize::MAX);
    let mut gathered = Gathered {
        partials: vec![Vec::new(); partitioning.map_or(0, |(_, n)| n as usize)],
        ..Gathered::default()
    };
    while let Some(task) = outputs.next().await {
        let task = task?;
        let merge_started = Instant::now();
        let meta = task.meta;
        let figures = &mut gathered.figures;
        figures.input_rows += meta.input_rows;
        figures.malformed += meta.malformed_rows;
        figures.late += meta.late_rows;
        figures.fetch_ms += meta.fetch_ms;
        figures.min_event = min_opt(figures.min_event, meta.min_event_ms);
        figures.max_event = max_opt(figures.max_event, meta.max_event_ms);
        figures.dead_letters.extend(meta.dead_letters);
        for batch in task.batches.into_iter().filter(|b| b.num_rows() > 0) {
            match partitioning {
                None => gathered.rows.push(batch),
                Some((columns, partitions)) => {
                    let parts = split(&batch, columns, partitions)?;
                    for (p, part) in parts.into_iter().enumerate() {
                        if part.num_rows() > 0
                            && let Some(rows) = gathered.partials.get_mut(p)
                        {
                            rows.push(part);
                        }
                    }
                }
            }
        }
        gathered.figures.merge_ms += elapsed_ms(merge_started);
    }
    Ok(gathered)
}

/// The watermark after a batch: the largest event time seen minus the source's delay, never
/// behind the `previous` one; unchanged without a watermark or event times.
pub(super) fn advance_watermark(
    previous: Option<i64>,
    def: Option<&WatermarkDef>,
    max_event: Option<i64>,
) -> Option<i64> {
    let (Some(def), Some(max)) = (def, max_event) else {
        return previous;
    };
    let delay = i64::try_from(def.delay.as_millis()).unwrap_or(i64::MAX);
    let candidate = max.saturating_sub(delay);
    Some(previous.map_or(candidate, |w| w.max(candidate)))
}

/// The state operator's figures of a batch.
#[derive(Debug, Default, PartialEq)]
pub(super) struct StateFigures {
    /// Rows the batch created or changed.
    pub(super) rows_updated: u64,
    /// Rows held after it.
    pub(super) rows: u64,
    /// Bytes held after it.
    pub(super) bytes: u64,
    /// The state partitions each worker owned.
    pub(super) owners: BTreeMap<String, Vec<u32>>,
}

/// The state partitions' replies to a batch, put together.
#[derive(Debug)]
pub(super) struct Applied {
    /// The rows emitted, in partition order.
    pub(super) emitted: Vec<RecordBatch>,
    /// Each partition's snapshot, in partition order.
    pub(super) snapshots: Vec<Vec<u8>>,
    /// Their figures.
    pub(super) figures: StateFigures,
}

impl Applied {
    /// From the replies of the owners, in partition order.
    pub(super) fn from_replies(replies: Vec<(String, StateReply)>) -> anyhow::Result<Applied> {
        let mut applied = Applied {
            emitted: Vec::new(),
            snapshots: Vec::new(),
            figures: StateFigures::default(),
        };
        for (p, (worker, reply)) in replies.into_iter().enumerate() {
            let figures = &mut applied.figures;
            figures.rows_updated += reply.meta.rows_updated;
            figures.rows += reply.meta.state_rows;
            figures.bytes += reply.meta.state_bytes;
            figures
                .owners
                .entry(worker)
                .or_default()
                .push(u32::try_from(p)?);
            applied.emitted.extend(reply.emitted);
            applied.snapshots.push(reply.snapshot);
        }
        Ok(applied)
    }
}

/// The output rows of a stateful job: an aggregation's final query over the emitted groups
/// (nothing when none were emitted), or a `DISTINCT`'s emitted rows as they are.
pub(super) async fn finalize(
    aggregate: Option<&AggregatePlan>,
    emitted: Vec<RecordBatch>,
) -> anyhow::Result<Vec<RecordBatch>> {
    let Some(plan) = aggregate else {
        return Ok(emitted);
    };
    if !emitted.iter().any(|b| b.num_rows() > 0) {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new_with_config(session_config());
    let table = MemTable::try_new(Arc::clone(&plan.groups_schema), vec![emitted])?;
    ctx.register_table(GROUPS_TABLE, Arc::new(table))?;
    Ok(ctx.sql(&plan.final_sql).await?.collect().await?)
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
