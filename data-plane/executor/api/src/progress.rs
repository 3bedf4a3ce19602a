//! A micro-batch's progress as the driver reports it (`GET /v1/jobs/{id}/progress`, a status's
//! `last_progress`, `hdi-executor run`'s JSON lines), mirroring Spark's `StreamingQueryProgress`.
//!
//! Readers take missing members as their defaults, so a document with fewer figures still reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Durations of a batch's phases, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Durations {
    /// The whole batch.
    pub trigger_execution: u64,
    /// Finding the sources' latest offsets.
    pub latest_offset: u64,
    /// Writing the offset log.
    pub wal_commit: u64,
    /// Running the tasks (reading, decoding, task queries), wall clock.
    pub execution: u64,
    /// Of which reading the source (sum over tasks).
    pub get_batch: u64,
    /// Merging partials into state and emitting.
    pub state_merge: u64,
    /// The final query.
    pub query_planning: u64,
    /// Writing the sink.
    pub add_batch: u64,
    /// State snapshot and commit.
    pub commit: u64,
}

/// Event-time figures of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventTime {
    /// Smallest event time in the batch (RFC 3339).
    pub min: Option<String>,
    /// Largest event time in the batch.
    pub max: Option<String>,
    /// The watermark after the batch.
    pub watermark: Option<String>,
}

/// The state operator's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateOperator {
    /// Rows (groups, windows, seen keys) held.
    pub num_rows_total: u64,
    /// Rows the batch created or changed.
    pub num_rows_updated: u64,
    /// Approximate bytes held.
    pub memory_used_bytes: u64,
    /// Late rows dropped.
    pub num_rows_dropped_by_watermark: u64,
    /// State partitions.
    pub num_state_partitions: u32,
    /// Which worker owns which state partitions in this batch.
    pub partition_owners: BTreeMap<String, Vec<u32>>,
}

/// The source's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceProgress {
    /// `kafka[topic]` or `files[dir]`.
    pub description: String,
    /// Where the batch started (per partition, or files taken).
    pub start_offset: BTreeMap<String, i64>,
    /// Where it ended.
    pub end_offset: BTreeMap<String, i64>,
    /// Records read.
    pub num_input_rows: u64,
    /// Records that did not decode.
    pub malformed_rows: u64,
}

/// The sink's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SinkProgress {
    /// `kafka[topic]`, `files[dir]`, `memory`, `blackhole`.
    pub description: String,
    /// Rows written.
    pub num_output_rows: u64,
}

/// One batch's progress, like Spark's `StreamingQueryProgress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// The job.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The batch.
    pub batch_id: u64,
    /// When the batch started (RFC 3339).
    pub timestamp: String,
    /// Records read.
    pub num_input_rows: u64,
    /// Records read per second of wall clock since the previous batch started.
    pub input_rows_per_second: f64,
    /// Records processed per second of this batch's duration.
    pub processed_rows_per_second: f64,
    /// Phase durations.
    pub duration_ms: Durations,
    /// Event times.
    pub event_time: EventTime,
    /// The state operator (one).
    pub state_operators: Vec<StateOperator>,
    /// The source (one).
    pub sources: Vec<SourceProgress>,
    /// The sink.
    pub sink: SinkProgress,
}
