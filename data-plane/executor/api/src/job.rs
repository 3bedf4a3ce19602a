//! The job API's documents: what a caller sends (a definition, a script to validate) and what
//! the driver answers (a job's status, lists of them, progress and preview).

use serde::{Deserialize, Serialize};

use crate::progress::Progress;

/// The body of `POST /v1/jobs/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// The script.
    pub sql: String,
    /// Default Kafka cluster, `host:port,host:port` (sent as `null` when there is none).
    pub bootstrap_servers: Option<String>,
    /// The bootstrap servers of every Kafka cluster the script's tables may name with
    /// `bootstrap_servers` (the control plane sends its workspace's); absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kafka: Option<Vec<String>>,
    /// How to reach secured Kafka clusters: librdkafka properties (`security.protocol`,
    /// `sasl.*`, `ssl.ca.pem`) by bootstrap servers (`host:port,...`). A cluster not named
    /// here is PLAINTEXT.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kafka_access: std::collections::BTreeMap<String, KafkaProperties>,
}

/// A job's definition: the body of `PUT /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDefinition {
    /// Name.
    pub name: String,
    /// The script.
    pub sql: String,
    /// Default Kafka cluster, `host:port,host:port` (sent as `null` when there is none).
    pub bootstrap_servers: Option<String>,
    /// The bootstrap servers of every Kafka cluster the script's tables may name with
    /// `bootstrap_servers` (the control plane sends its workspace's); absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kafka: Option<Vec<String>>,
    /// How to reach secured Kafka clusters: librdkafka properties (`security.protocol`,
    /// `sasl.*`, `ssl.ca.pem`) by bootstrap servers (`host:port,...`). A cluster not named
    /// here is PLAINTEXT.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kafka_access: std::collections::BTreeMap<String, KafkaProperties>,
}

impl JobDefinition {
    /// A digest of the whole definition (its canonical JSON, SHA-256, hex): what a driver
    /// reports of each job, so the control plane sees a definition it would send differently
    /// (new Kafka credentials or CA certificates, another set of allowed clusters) without the
    /// driver ever sending the secrets back.
    pub fn digest(&self) -> String {
        use sha2::Digest as _;
        // Maps are ordered and fields are in declaration order: equal definitions, equal bytes.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `other` is this job with other access only (`allowed_kafka`, `kafka_access`):
    /// what a driver updates in place rather than refuse as another job.
    pub fn same_job(&self, other: &JobDefinition) -> bool {
        self.name == other.name
            && self.sql == other.sql
            && self.bootstrap_servers == other.bootstrap_servers
    }
}

/// librdkafka properties of one Kafka cluster; they hold a password, so `Debug` names only
/// the keys.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// `{"ok": true}`: a validation passed, a registration was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// Always `true`.
    pub ok: bool,
}

impl Acknowledged {
    /// `{"ok": true}`.
    pub const OK: Acknowledged = Acknowledged { ok: true };
}

/// A query's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryState {
    /// Running batches.
    Running,
    /// Stopped on request.
    Stopped,
    /// Stopped by an error it cannot get past.
    Failed,
    /// An available-now query that processed everything.
    Completed,
}

impl QueryState {
    /// The wire spelling: `running`, `stopped`, `failed`, `completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryState::Running => "running",
            QueryState::Stopped => "stopped",
            QueryState::Failed => "failed",
            QueryState::Completed => "completed",
        }
    }
}

/// An error shown in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    /// Stable code.
    #[serde(default)]
    pub code: String,
    /// For people.
    #[serde(default)]
    pub detail: String,
}

/// `GET /v1/jobs/{id}`: a job's status with its last progress. `Id` is how the reader names
/// jobs: any id on the driver (`String`), a UUID in the control plane, whose reads refuse a job
/// named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus<Id = String> {
    /// Id (chosen by the caller of `PUT`).
    pub id: Id,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// The script.
    #[serde(default)]
    pub sql: String,
    /// `running`, `stopped`, `failed`, `completed`.
    pub state: QueryState,
    /// The last error (the query retries transient ones).
    #[serde(default)]
    pub error: Option<ErrorView>,
    /// Batches committed.
    #[serde(default)]
    pub batches_committed: u64,
    /// The last batch's progress.
    #[serde(default)]
    pub last_progress: Option<Progress>,
    /// When it was submitted (RFC 3339).
    #[serde(default)]
    pub submitted_at: String,
    /// [`JobDefinition::digest`] of the definition the driver holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_digest: Option<String>,
}

/// `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList<Id = String> {
    /// Every job, by id.
    pub jobs: Vec<JobStatus<Id>>,
}

/// `GET /v1/jobs/{id}/progress?limit=N`: the last batches' progress, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressList {
    /// Oldest first.
    pub progress: Vec<Progress>,
}

/// `GET /v1/jobs/{id}/preview?limit=N`: the latest rows of a job's memory sink (none for other
/// sinks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// Column names, in the order they first appear in the rows.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows as objects keyed by column.
    #[serde(default)]
    pub rows: Vec<serde_json::Value>,
}

impl Preview {
    /// A preview of `rows`, its columns in the order they first appear.
    pub fn of(rows: Vec<serde_json::Value>) -> Preview {
        let mut columns: Vec<String> = Vec::new();
        for row in &rows {
            if let Some(object) = row.as_object() {
                for key in object.keys() {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
        }
        Preview { columns, rows }
    }
}
