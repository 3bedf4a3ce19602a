//! Domain types of streaming SQL jobs on Spark clusters.
//!
//! The control plane stores a job's definition (desired state); its run state lives on the
//! cluster's executor driver and is read live ([`JobRunState`]).

use super::{ClusterId, JobId};
use chrono::{DateTime, Utc};

/// A stored job definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Identity; also the job's id on the driver.
    pub id: JobId,
    /// The Spark cluster's id.
    pub cluster_id: ClusterId,
    /// The Spark cluster's name.
    pub cluster: String,
    /// Name, unique per cluster.
    pub name: String,
    /// The SQL text.
    pub sql: String,
    /// The Kafka cluster named at submission (`None`: none, or deleted since).
    pub kafka_cluster: Option<String>,
    /// That Kafka cluster's bootstrap servers as last observed (`None` while unknown).
    pub bootstrap_servers: Option<String>,
    /// Who submitted it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A job to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// Identity.
    pub id: JobId,
    /// The Spark cluster.
    pub cluster_id: ClusterId,
    /// Name.
    pub name: String,
    /// SQL text.
    pub sql: String,
    /// The Kafka cluster whose bootstrap servers the job gets.
    pub kafka_cluster_id: Option<ClusterId>,
    /// Who submits it.
    pub created_by: String,
}

/// Where a job is, as far as the control plane can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobRunState {
    /// Stored, not (yet, or no longer) on the driver: the job reconciler submits it.
    Pending,
    /// Running on the driver.
    Running,
    /// Stopped on the driver.
    Stopped,
    /// Failed on the driver (see the error).
    Failed,
    /// Finished (a bounded source ran out).
    Completed,
    /// The driver cannot be reached or answered something else.
    Unknown,
}

impl JobRunState {
    /// From the driver's lowercase state name (`Unknown` for one this control plane does not know).
    pub fn from_driver(state: &str) -> JobRunState {
        match state {
            "running" => JobRunState::Running,
            "stopped" => JobRunState::Stopped,
            "failed" => JobRunState::Failed,
            "completed" => JobRunState::Completed,
            _ => JobRunState::Unknown,
        }
    }
}

/// A serving Spark cluster's driver, for the job reconciler.
#[derive(Clone, Debug)]
pub struct SparkDriver {
    /// The cluster's id.
    pub cluster_id: ClusterId,
    /// The cluster's name.
    pub cluster: String,
    /// The driver's job API base URL, e.g. `http://127.0.0.1:21000`.
    pub job_api: String,
    /// The cluster's credential, presented to the driver.
    pub credential: hdi_stdx::secret::Secret,
    /// The bootstrap servers of its workspace's Kafka clusters (what its jobs may name).
    pub workspace_kafka: Vec<String>,
    /// How its jobs reach those clusters.
    pub kafka_access: Vec<super::KafkaJobAccess>,
}
