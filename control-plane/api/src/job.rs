//! Wire types of streaming SQL jobs on Spark clusters, managed through the control plane at
//! `/v1/workspaces/{ws}/clusters/{cluster}/jobs`.
//!
//! The control plane stores a job's definition; its status, progress and preview come live from
//! the cluster's executor driver. Progress documents (one per micro-batch, like Spark's
//! `StreamingQueryProgress`) are typed here as `JobProgress`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/workspaces/{ws}/clusters/{cluster}/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCreate {
    /// Job name, unique in the cluster: 1-63 lowercase letters, digits or `-` (not a UUID).
    pub name: String,
    /// The job's SQL (at most 256 KiB).
    pub sql: String,
    /// A Kafka cluster of the same workspace whose bootstrap servers the job's Kafka sources and
    /// sinks use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_cluster: Option<String>,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum JobState {
    /// Stored; not on the driver yet (the control plane submits it).
    Pending,
    /// Running on the driver.
    Running,
    /// Stopped.
    Stopped,
    /// Failed; see `error`.
    Failed,
    /// Finished: its sources ran out.
    Completed,
    /// The driver cannot be reached.
    Unknown,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Pending => "Pending",
            JobState::Running => "Running",
            JobState::Stopped => "Stopped",
            JobState::Failed => "Failed",
            JobState::Completed => "Completed",
            JobState::Unknown => "Unknown",
        })
    }
}

/// Why a job failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// Stable code from the executor.
    pub code: String,
    /// For people.
    pub detail: String,
}

/// A job's status, as its driver reports it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    /// State.
    pub state: JobState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Micro-batches committed so far.
    #[serde(default)]
    pub batches_committed: u64,
    /// The progress of the last micro-batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<JobProgress>,
}

/// A streaming SQL job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Identity.
    pub id: Uuid,
    /// Name, unique in the cluster.
    pub name: String,
    /// The Spark cluster it runs on.
    pub cluster: String,
    /// The Kafka cluster it reads and writes, if one was named (and still exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_cluster: Option<String>,
    /// Its SQL.
    pub sql: String,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// Who submitted it.
    pub created_by: String,
    /// Live status from the driver.
    pub status: JobStatus,
}

/// A page of a cluster's jobs, ordered by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// This page.
    pub items: Vec<Job>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The latest micro-batch progress documents of a job, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobProgressList {
    /// One document per micro-batch, oldest first.
    pub progress: Vec<JobProgress>,
}

/// One micro-batch's progress, as the executor reports it: the figures of Spark's
/// `StreamingQueryProgress` (and its UI's Structured Streaming charts). A member the executor
/// did not report reads as its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobProgress {
    /// The micro-batch, from 0.
    pub batch_id: u64,
    /// When the batch started (RFC 3339).
    pub timestamp: String,
    /// Records read.
    pub num_input_rows: u64,
    /// Records read per second of wall clock since the previous batch started.
    pub input_rows_per_second: f64,
    /// Records processed per second of this batch's duration.
    pub processed_rows_per_second: f64,
    /// Durations of the batch's phases.
    pub duration_ms: JobBatchDurations,
    /// Event-time figures.
    pub event_time: JobEventTime,
    /// The stateful operators (one today).
    pub state_operators: Vec<JobStateOperator>,
    /// The sources (one today).
    pub sources: Vec<JobSourceProgress>,
    /// The sink.
    pub sink: JobSinkProgress,
}

/// Durations of a micro-batch's phases, in milliseconds (Spark's `durationMs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobBatchDurations {
    /// The whole batch.
    pub trigger_execution: u64,
    /// Finding the sources' latest offsets.
    pub latest_offset: u64,
    /// Writing the offset log.
    pub wal_commit: u64,
    /// Running the tasks (reading, decoding, task queries), wall clock.
    pub execution: u64,
    /// Of which reading the source (summed over tasks).
    pub get_batch: u64,
    /// Merging partial aggregates into state and emitting.
    pub state_merge: u64,
    /// The final query.
    pub query_planning: u64,
    /// Writing the sink.
    pub add_batch: u64,
    /// State snapshot and commit.
    pub commit: u64,
}

/// Event-time figures of a micro-batch (RFC 3339 instants).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobEventTime {
    /// Smallest event time in the batch.
    pub min: Option<String>,
    /// Largest event time in the batch.
    pub max: Option<String>,
    /// The watermark after the batch.
    pub watermark: Option<String>,
}

/// A stateful operator's figures after a micro-batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobStateOperator {
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

/// A source's figures for a micro-batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobSourceProgress {
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

/// The sink's figures for a micro-batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct JobSinkProgress {
    /// `kafka[topic]`, `files[dir]`, `memory`, `blackhole`.
    pub description: String,
    /// Rows written.
    pub num_output_rows: u64,
}

/// The latest rows a job wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobPreview {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows, as objects keyed by column name (values as the job's SQL types render in JSON:
    /// numbers, strings, booleans, `null`).
    #[schema(value_type = Vec<std::collections::HashMap<String, serde_json::Value>>)]
    pub rows: Vec<serde_json::Value>,
}
