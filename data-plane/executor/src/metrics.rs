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
//! A deleted job's series are removed. Workers serve no metrics (their work is in these figures).

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
}
