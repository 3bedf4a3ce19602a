//! Wire types of streaming SQL jobs on Spark clusters, managed through the control plane at
//! `/v1/workspaces/{ws}/clusters/{cluster}/jobs`.
//!
//! The control plane stores a job's definition; its status, progress and preview come live from
//! the cluster's executor driver. Progress documents (one per micro-batch, like Spark's
//! `StreamingQueryProgress`) are passed through as the driver writes them.

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
    /// The progress document of the last micro-batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub last_progress: Option<serde_json::Value>,
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
    /// Progress documents (`batch_id`, `num_input_rows`, `input_rows_per_second`,
    /// `processed_rows_per_second`, `duration_ms`, `event_time`, `state_operators`, `sources`,
    /// `sink`, ...), as the executor reports them.
    #[schema(value_type = Vec<Object>)]
    pub progress: Vec<serde_json::Value>,
}

/// The latest rows a job wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobPreview {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows, as objects keyed by column name.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
}
