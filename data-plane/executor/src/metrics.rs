//! The executor driver's Prometheus metrics, served at `GET /metrics` on its HTTP API behind
//! the cluster's credential like every other route (`jobs.rs`). Per job (`job` = its id,
//! `name` = its name), from each committed batch's progress — the figures Spark's Structured
//! Streaming metrics (`spark.sql.streaming.metricsEnabled`) and its UI chart:
//!
//! | here | Spark |
//! |---|---|
//! | `hdi_executor_batches_total` | batches committed (`batchId`) |
//! | `hdi_executor_batch_duration_seconds` (histogram) | `durationMs.triggerExecution`, `latency` |
//! | `hdi_executor_input_rows_total` | `numInputRows` |
//! | `hdi_executor_output_rows_total` | `sink.numOutputRows` |
//! | `hdi_executor_late_rows_total` | `stateOperators.numRowsDroppedByWatermark` |
//! | `hdi_executor_input_rows_per_second` | `inputRate-total` |
//! | `hdi_executor_processed_rows_per_second` | `processingRate-total` |
//! | `hdi_executor_state_rows` | `states-rowsTotal` |
//! | `hdi_executor_watermark_delay_seconds` | commit time minus `eventTime.watermark` |
//!
//! A deleted job's series are removed.
//!
//! Each worker serves [`WorkerMetrics`] at `GET /metrics` on its own listener, behind the same
//! credential (`worker.rs`): the figures of Spark's executor metrics
//! (`/metrics/executors/prometheus`), for the tasks and state partitions it ran:
//!
//! | here | Spark |
//! |---|---|
//! | `hdi_executor_worker_tasks_total{outcome}` | `completedTasks`, `failedTasks` |
//! | `hdi_executor_worker_active_tasks` | `activeTasks` |
//! | `hdi_executor_worker_task_duration_seconds` (histogram) | `totalDuration` (per task) |
//! | `hdi_executor_worker_task_phase_seconds_total{phase}` | `executorRunTime` split as fetch, decode, execute |
//! | `hdi_executor_worker_task_input_rows_total` | `inputMetrics.recordsRead` |
//! | `hdi_executor_worker_task_malformed_rows_total`, `…_late_rows_total` | — |
//! | `hdi_executor_worker_state_requests_total{outcome}` | — (state store operations) |
//! | `hdi_executor_worker_state_duration_seconds` (histogram) | `stateOperators.commitTimeMs` |
//! | `hdi_executor_worker_state_snapshot_bytes_total` | checkpoint bytes written |
//! | `hdi_executor_worker_state_partitions` | state store instances loaded |
//! | `hdi_executor_worker_registered` | executor alive in the driver |

use std::sync::atomic::AtomicU64;

use hdi_http_serve::metrics::exposition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use hdi_executor_api::Progress;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    name: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Batch durations: 10 ms to 5 min.
const BATCH_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every metric of the driver.
#[derive(Debug)]
pub struct ExecutorMetrics {
    registry: Registry,
    batches: Family<JobLabels, Counter>,
    duration: Family<JobLabels, Histogram>,
    input_rows: Family<JobLabels, Counter>,
    output_rows: Family<JobLabels, Counter>,
    late_rows: Family<JobLabels, Counter>,
    input_rate: Family<JobLabels, FloatGauge>,
    processed_rate: Family<JobLabels, FloatGauge>,
    state_rows: Family<JobLabels, Gauge>,
    watermark_delay: Family<JobLabels, FloatGauge>,
}

impl Default for ExecutorMetrics {
    fn default() -> Self {
        ExecutorMetrics::new()
    }
}

impl ExecutorMetrics {
    /// New metrics, with no job.
    pub fn new() -> ExecutorMetrics {
        let mut registry = Registry::default();
        let batches = Family::default();
        let duration = Family::<JobLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(BATCH_BUCKETS)) as fn() -> Histogram,
        );
        let input_rows = Family::default();
        let output_rows = Family::default();
        let late_rows = Family::default();
        let input_rate = Family::default();
        let processed_rate = Family::default();
        let state_rows = Family::default();
        let watermark_delay = Family::default();
        registry.register(
            "hdi_executor_batches",
            "Micro-batches committed, by job",
            Family::<JobLabels, Counter>::clone(&batches),
        );
        registry.register(
            "hdi_executor_batch_duration_seconds",
            "A micro-batch's whole duration (triggerExecution), by job",
            duration.clone(),
        );
        registry.register(
            "hdi_executor_input_rows",
            "Records read from the source, by job (numInputRows)",
            Family::<JobLabels, Counter>::clone(&input_rows),
        );
        registry.register(
            "hdi_executor_output_rows",
            "Rows written to the sink, by job",
            Family::<JobLabels, Counter>::clone(&output_rows),
        );
        registry.register(
            "hdi_executor_late_rows",
            "Rows dropped as later than the watermark, by job",
            Family::<JobLabels, Counter>::clone(&late_rows),
        );
        registry.register(
            "hdi_executor_input_rows_per_second",
            "Records read per second of wall clock in the last batch, by job (inputRate)",
            Family::<JobLabels, FloatGauge>::clone(&input_rate),
        );
        registry.register(
            "hdi_executor_processed_rows_per_second",
            "Records processed per second of the last batch's duration, by job (processingRate)",
            Family::<JobLabels, FloatGauge>::clone(&processed_rate),
        );
        registry.register(
            "hdi_executor_state_rows",
            "Rows held in state after the last batch, by job",
            Family::<JobLabels, Gauge>::clone(&state_rows),
        );
        registry.register(
            "hdi_executor_watermark_delay_seconds",
            "How far the watermark was behind the wall clock when the last batch committed, by job",
            Family::<JobLabels, FloatGauge>::clone(&watermark_delay),
        );
        ExecutorMetrics {
            registry,
            batches,
            duration,
            input_rows,
            output_rows,
            late_rows,
            input_rate,
            processed_rate,
            state_rows,
            watermark_delay,
        }
    }

    /// Counts a committed batch of job `id` named `name`, committed at `now_ms` (Unix ms).
    pub fn batch(&self, id: &str, name: &str, progress: &Progress, now_ms: i64) {
        let labels = JobLabels {
            job: id.to_owned(),
            name: name.to_owned(),
        };
        self.batches.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(progress.duration_ms.trigger_execution as f64 / 1000.0);
        self.input_rows
            .get_or_create(&labels)
            .inc_by(progress.num_input_rows);
        self.output_rows
            .get_or_create(&labels)
            .inc_by(progress.sink.num_output_rows);
        let state = progress.state_operators.first();
        self.late_rows
            .get_or_create(&labels)
            .inc_by(state.map_or(0, |s| s.num_rows_dropped_by_watermark));
        self.input_rate
            .get_or_create(&labels)
            .set(progress.input_rows_per_second);
        self.processed_rate
            .get_or_create(&labels)
            .set(progress.processed_rows_per_second);
        self.state_rows
            .get_or_create(&labels)
            .set(state.map_or(0, |s| i64::try_from(s.num_rows_total).unwrap_or(i64::MAX)));
        if let Some(watermark) = progress
            .event_time
            .watermark
            .as_deref()
            .and_then(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
        {
            let delay_ms = now_ms.saturating_sub(watermark.timestamp_millis());
            self.watermark_delay
                .get_or_create(&labels)
                .set(delay_ms as f64 / 1000.0);
        }
    }

    /// Drops the series of job `id` named `name` (deleted).
    pub fn forget(&self, id: &str, name: &str) {
        let labels = JobLabels {
            job: id.to_owned(),
            name: name.to_owned(),
        };
        self.batches.remove(&labels);
        self.duration.remove(&labels);
        self.input_rows.remove(&labels);
        self.output_rows.remove(&labels);
        self.late_rows.remove(&labels);
        self.input_rate.remove(&labels);
        self.processed_rate.remove(&labels);
        self.state_rows.remove(&labels);
        self.watermark_delay.remove(&labels);
    }

    /// The exposition.
    pub fn exposition(&self) -> String {
        exposition(&self.registry)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// How a worker's task or state request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with its output.
    Succeeded,
    /// A state request for state the worker does not hold (`409`; the driver resends a snapshot).
    Missing,
    /// Failed (`500`) or unreadable (`400`).
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Missing => "missing",
            Outcome::Failed => "failed",
        }
    }
}

/// Task durations: 1 ms to 2 min (the driver's deadline).
const TASK_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Every metric of a worker.
#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    tasks: Family<OutcomeLabels, Counter>,
    active: Gauge,
    task_duration: Histogram,
    phase_seconds: Family<PhaseLabels, Counter<f64, AtomicU64>>,
    input_rows: Counter,
    malformed_rows: Counter,
    late_rows: Counter,
    state_requests: Family<OutcomeLabels, Counter>,
    state_duration: Histogram,
    snapshot_bytes: Counter,
    partitions: Gauge,
    registered: Gauge,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}

/// Counts a task as active while it lives ([`WorkerMetrics::task_started`]).
#[derive(Debug)]
pub struct ActiveTask<'a> {
    metrics: &'a WorkerMetrics,
    started: std::time::Instant,
}

impl ActiveTask<'_> {
    /// Ends the task with `outcome` and, when it ran, its counters (rows; fetch, decode and
    /// execute milliseconds).
    pub fn finish(self, outcome: Outcome, counters: Option<TaskCounters>) {
        let m = self.metrics;
        m.tasks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        m.task_duration
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(c) = counters {
            m.input_rows.inc_by(c.input_rows);
            m.malformed_rows.inc_by(c.malformed_rows);
            m.late_rows.inc_by(c.late_rows);
            for (phase, ms) in [
                ("fetch", c.fetch_ms),
                ("decode", c.decode_ms),
                ("execute", c.execute_ms),
            ] {
                m.phase_seconds
                    .get_or_create(&PhaseLabels { phase })
                    .inc_by(ms as f64 / 1000.0);
            }
        }
        // `self` drops here: the task is no longer active.
    }
}

impl Drop for ActiveTask<'_> {
    fn drop(&mut self) {
        self.metrics.active.dec();
    }
}

/// A finished task's counters (its `TaskMeta`, which lives in a layer above this one).
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskCounters {
    /// Records read.
    pub input_rows: u64,
    /// Records that were not valid for the source's schema.
    pub malformed_rows: u64,
    /// Rows below the watermark.
    pub late_rows: u64,
    /// Milliseconds reading the source.
    pub fetch_ms: u64,
    /// Milliseconds decoding.
    pub decode_ms: u64,
    /// Milliseconds in the task query.
    pub execute_ms: u64,
}

impl WorkerMetrics {
    /// New metrics: nothing run, not registered.
    pub fn new() -> WorkerMetrics {
        let mut registry = Registry::default();
        let m = WorkerMetrics {
            registry: Registry::default(),
            tasks: Family::default(),
            active: Gauge::default(),
            task_duration: Histogram::new(TASK_BUCKETS),
            phase_seconds: Family::default(),
            input_rows: Counter::default(),
            malformed_rows: Counter::default(),
            late_rows: Counter::default(),
            state_requests: Family::default(),
            state_duration: Histogram::new(TASK_BUCKETS),
            snapshot_bytes: Counter::default(),
            partitions: Gauge::default(),
            registered: Gauge::default(),
        };
        registry.register(
            "hdi_executor_worker_tasks",
            "Tasks this worker ran, by outcome (Spark's completedTasks and failedTasks)",
            m.tasks.clone(),
        );
        registry.register(
            "hdi_executor_worker_active_tasks",
            "Tasks running now (activeTasks)",
            m.active.clone(),
        );
        registry.register(
            "hdi_executor_worker_task_duration_seconds",
            "A task's duration on this worker, from request to answer",
            m.task_duration.clone(),
        );
        registry.register(
            "hdi_executor_worker_task_phase_seconds",
            "Seconds tasks spent reading the source (fetch), decoding it and executing their query",
            m.phase_seconds.clone(),
        );
        registry.register(
            "hdi_executor_worker_task_input_rows",
            "Records tasks read (inputMetrics.recordsRead)",
            m.input_rows.clone(),
        );
        registry.register(
            "hdi_executor_worker_task_malformed_rows",
            "Records tasks could not read as their source's schema",
            m.malformed_rows.clone(),
        );
        registry.register(
            "hdi_executor_worker_task_late_rows",
            "Rows tasks dropped as later than the watermark",
            m.late_rows.clone(),
        );
        registry.register(
            "hdi_executor_worker_state_requests",
            "State partition requests, by outcome (missing: the worker did not hold the base state)",
            m.state_requests.clone(),
        );
        registry.register(
            "hdi_executor_worker_state_duration_seconds",
            "Applying one state partition's share of a batch",
            m.state_duration.clone(),
        );
        registry.register(
            "hdi_executor_worker_state_snapshot_bytes",
            "Bytes of state snapshots answered to the driver (what checkpoints carry)",
            m.snapshot_bytes.clone(),
        );
        registry.register(
            "hdi_executor_worker_state_partitions",
            "State partitions this worker holds",
            m.partitions.clone(),
        );
        registry.register(
            "hdi_executor_worker_registered",
            "1 while the driver accepts this worker's heartbeats",
            m.registered.clone(),
        );
        WorkerMetrics { registry, ..m }
    }

    /// Counts a task as active until the returned guard is finished or dropped.
    pub fn task_started(&self) -> ActiveTask<'_> {
        self.active.inc();
        ActiveTask {
            metrics: self,
            started: std::time::Instant::now(),
        }
    }

    /// Counts a state request that took `seconds` and answered a snapshot of `snapshot_bytes`.
    pub fn state_request(&self, outcome: Outcome, seconds: f64, snapshot_bytes: u64) {
        self.state_requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        self.state_duration.observe(seconds);
        self.snapshot_bytes.inc_by(snapshot_bytes);
    }

    /// Sets the number of state partitions held.
    pub fn set_partitions(&self, partitions: usize) {
        self.partitions
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// Sets whether the driver accepted the latest heartbeat.
    pub fn set_registered(&self, registered: bool) {
        self.registered.set(i64::from(registered));
    }

    /// The exposition.
    pub fn exposition(&self) -> String {
        exposition(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdi_executor_api::{Durations, EventTime, SinkProgress, StateOperator};

    #[test]
    fn a_batch_is_counted_under_stable_names() {
        let metrics = ExecutorMetrics::new();
        let progress = Progress {
            id: "j1".into(),
            name: "alerts".into(),
            batch_id: 0,
            num_input_rows: 120,
            input_rows_per_second: 60.0,
            processed_rows_per_second: 400.0,
            duration_ms: Durations {
                trigger_execution: 300,
                ..Default::default()
            },
            event_time: EventTime {
                watermark: Some("2026-12-07T12:00:00.000Z".into()),
                ..Default::default()
            },
            state_operators: vec![StateOperator {
                num_rows_total: 7,
                num_rows_dropped_by_watermark: 2,
                ..Default::default()
            }],
            sink: SinkProgress {
                num_output_rows: 5,
                ..Default::default()
            },
            ..Default::default()
        };
        // Committed 4.5 s after the watermark.
        let now_ms = 1_796_644_800_000 + 4_500;
        metrics.batch("j1", "alerts", &progress, now_ms);
        metrics.batch("j1", "alerts", &progress, now_ms);
        let text = metrics.exposition();
        for line in [
            r#"hdi_executor_batches_total{job="j1",name="alerts"} 2"#,
            r#"hdi_executor_batch_duration_seconds_count{job="j1",name="alerts"} 2"#,
            r#"hdi_executor_batch_duration_seconds_sum{job="j1",name="alerts"} 0.6"#,
            r#"hdi_executor_input_rows_total{job="j1",name="alerts"} 240"#,
            r#"hdi_executor_output_rows_total{job="j1",name="alerts"} 10"#,
            r#"hdi_executor_late_rows_total{job="j1",name="alerts"} 4"#,
            r#"hdi_executor_input_rows_per_second{job="j1",name="alerts"} 60.0"#,
            r#"hdi_executor_processed_rows_per_second{job="j1",name="alerts"} 400.0"#,
            r#"hdi_executor_state_rows{job="j1",name="alerts"} 7"#,
            r#"hdi_executor_watermark_delay_seconds{job="j1",name="alerts"} 4.5"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(
            hdi_http_serve::metrics::declared_families(&text),
            [
                "hdi_executor_batches counter",
                "hdi_executor_batch_duration_seconds histogram",
                "hdi_executor_input_rows counter",
                "hdi_executor_output_rows counter",
                "hdi_executor_late_rows counter",
                "hdi_executor_input_rows_per_second gauge",
                "hdi_executor_processed_rows_per_second gauge",
                "hdi_executor_state_rows gauge",
                "hdi_executor_watermark_delay_seconds gauge",
            ]
        );
        metrics.forget("j1", "alerts");
        assert!(!metrics.exposition().contains("j1"));
    }

    #[test]
    fn a_worker_counts_tasks_and_state_under_stable_names() {
        let metrics = WorkerMetrics::new();
        let task = metrics.task_started();
        assert!(
            metrics
                .exposition()
                .contains("hdi_executor_worker_active_tasks 1")
        );
        task.finish(
            Outcome::Succeeded,
            Some(TaskCounters {
                input_rows: 100,
                malformed_rows: 2,
                late_rows: 3,
                fetch_ms: 1500,
                decode_ms: 250,
                execute_ms: 500,
            }),
        );
        // A task that failed before it ran, and one whose guard was dropped by a panic or a
        // cancelled request: neither stays active.
        metrics.task_started().finish(Outcome::Failed, None);
        drop(metrics.task_started());
        metrics.state_request(Outcome::Succeeded, 0.02, 4096);
        metrics.state_request(Outcome::Missing, 0.001, 0);
        metrics.set_partitions(3);
        metrics.set_registered(true);
        let text = metrics.exposition();
        for line in [
            r#"hdi_executor_worker_tasks_total{outcome="succeeded"} 1"#,
            r#"hdi_executor_worker_tasks_total{outcome="failed"} 1"#,
            "hdi_executor_worker_active_tasks 0",
            "hdi_executor_worker_task_duration_seconds_count 2",
            r#"hdi_executor_worker_task_phase_seconds_total{phase="fetch"} 1.5"#,
            r#"hdi_executor_worker_task_phase_seconds_total{phase="decode"} 0.25"#,
            r#"hdi_executor_worker_task_phase_seconds_total{phase="execute"} 0.5"#,
            "hdi_executor_worker_task_input_rows_total 100",
            "hdi_executor_worker_task_malformed_rows_total 2",
            "hdi_executor_worker_task_late_rows_total 3",
            r#"hdi_executor_worker_state_requests_total{outcome="succeeded"} 1"#,
            r#"hdi_executor_worker_state_requests_total{outcome="missing"} 1"#,
            "hdi_executor_worker_state_duration_seconds_count 2",
            "hdi_executor_worker_state_snapshot_bytes_total 4096",
            "hdi_executor_worker_state_partitions 3",
            "hdi_executor_worker_registered 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        for family in hdi_http_serve::metrics::declared_families(&text) {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(hdi_http_serve::metrics::valid_metric_name(name), "{family}");
        }
    }
}
