//! Wire types of workspaces, clusters, operations, capabilities and audit events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/workspaces`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreate {
    /// A DNS label: lowercase letters, digits and `-`, at most 63 characters.
    pub name: String,
}

/// A workspace: the tenant boundary that clusters live in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// Identity.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A page of workspaces, ordered by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    /// This page.
    pub items: Vec<Workspace>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What a cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    /// A replicated log of `hdi-broker`s speaking the Kafka protocol.
    Kafka,
    /// A driver and executors of `hdi-executor` running streaming SQL.
    Spark,
}

impl std::fmt::Display for ClusterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterKind::Kafka => "kafka",
            ClusterKind::Spark => "spark",
        })
    }
}

/// What the nodes of a pool do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// Kafka brokers.
    Broker,
    /// Spark executors (the driver is implicit: one per Spark cluster).
    Executor,
}

/// A group of identical workloads of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    /// Pool name, a DNS label (e.g. `brokers`).
    pub name: String,
    /// What the pool's workloads do; must match the cluster kind.
    pub role: PoolRole,
    /// How many workloads.
    pub replicas: u32,
    /// A size from `GET /v1/capabilities` (default `small`).
    #[serde(default = "default_size")]
    pub size: String,
    /// Disk per workload in GiB (default 10).
    #[serde(default = "default_storage")]
    pub storage_gib: u32,
}

fn default_size() -> String {
    "small".to_owned()
}

fn default_storage() -> u32 {
    10
}

/// `PUT /v1/workspaces/{ws}/clusters/{name}`: the desired cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// `kafka` or `spark`; cannot change after creation.
    pub kind: ClusterKind,
    /// A version from `GET /v1/capabilities` (default: the kind's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The node pools: exactly one, of role `broker` (Kafka) or `executor` (Spark).
    pub node_pools: Vec<NodePool>,
    /// Cluster-wide settings (reserved; must be empty today).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// While on, `DELETE` is refused.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Kafka clusters only: how clients connect and what they may do. Absent on create: TLS,
    /// SCRAM-SHA-512 and OAUTHBEARER, ACLs (`SASL_SSL`). Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurity>,
}

/// A Kafka cluster's client security: its brokers' listener is `SASL_SSL` (TLS and a SASL
/// mechanism), `SASL_PLAINTEXT`, `SSL` or `PLAINTEXT`, as `tls` and `authentication` say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// Encrypt client connections with TLS; the cluster's CA certificate is in its status
    /// (`endpoints.ca_certificate`). Default on.
    #[serde(default = "yes")]
    pub tls: bool,
    /// SASL mechanisms clients may use (default `[SCRAM-SHA-512, OAUTHBEARER]`); empty: no
    /// authentication.
    #[serde(default = "default_mechanisms")]
    pub authentication: Vec<KafkaMechanism>,
    /// Enforce ACLs (Kafka users' `acls`); needs authentication. Default on.
    #[serde(default = "yes")]
    pub authorization: bool,
}

impl Default for KafkaSecurity {
    fn default() -> KafkaSecurity {
        KafkaSecurity {
            tls: true,
            authentication: default_mechanisms(),
            authorization: true,
        }
    }
}

impl KafkaSecurity {
    /// Everything off: `PLAINTEXT`, anyone may do anything.
    pub fn plaintext() -> KafkaSecurity {
        KafkaSecurity {
            tls: false,
            authentication: Vec::new(),
            authorization: false,
        }
    }

    /// Kafka's `security.protocol` of the cluster's listener.
    pub fn protocol(&self) -> &'static str {
        match (self.tls, self.authentication.is_empty()) {
            (true, false) => "SASL_SSL",
            (true, true) => "SSL",
            (false, false) => "SASL_PLAINTEXT",
            (false, true) => "PLAINTEXT",
        }
    }
}

fn yes() -> bool {
    true
}

fn default_mechanisms() -> Vec<KafkaMechanism> {
    vec![KafkaMechanism::ScramSha512, KafkaMechanism::Oauthbearer]
}

/// A SASL mechanism of a Kafka cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum KafkaMechanism {
    /// Kafka users' passwords (RFC 7677).
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Kafka users' passwords with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// hdi access tokens (`POST /v1/auth/token`, what `hdictl` holds): the principal is the hdi
    /// user, whose ACLs follow its roles in the cluster's workspace. Needs a SCRAM mechanism
    /// too (Kafka users and jobs use it).
    #[serde(rename = "OAUTHBEARER")]
    Oauthbearer,
}

impl KafkaMechanism {
    /// Kafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaMechanism::ScramSha512 => "SCRAM-SHA-512",
            KafkaMechanism::ScramSha256 => "SCRAM-SHA-256",
            KafkaMechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// A change to one node pool in `PATCH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePoolPatch {
    /// The pool to change.
    pub name: String,
    /// Its new size.
    pub replicas: u32,
}

/// `PATCH /v1/workspaces/{ws}/clusters/{name}`: resize a pool or toggle deletion protection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterPatch {
    /// Pools to resize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pools: Option<Vec<NodePoolPatch>>,
    /// New deletion protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// When removing brokers that hold partitions: move the partitions away first instead of
    /// refusing the resize.
    #[serde(default)]
    pub drain: bool,
}

/// The state of a cluster, for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ClusterState {
    /// Being created.
    Creating,
    /// Every workload runs and the cluster answers as one.
    Running,
    /// Converging on a changed spec.
    Resizing,
    /// Being deleted.
    Deleting,
    /// The last change failed; see `conditions` and the operation.
    Failed,
}

impl std::fmt::Display for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterState::Creating => "Creating",
            ClusterState::Running => "Running",
            ClusterState::Resizing => "Resizing",
            ClusterState::Deleting => "Deleting",
            ClusterState::Failed => "Failed",
        })
    }
}

/// One observed aspect of a cluster, Kubernetes style.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    /// E.g. `Ready`, `Placed`, `Balanced`.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
}

/// Desired and ready counts of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolStatus {
    /// Pool name (`driver` for a Spark cluster's driver).
    pub name: String,
    /// Workloads wanted.
    pub desired: u32,
    /// Workloads running.
    pub ready: u32,
}

/// Where clients reach the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Endpoints {
    /// Kafka bootstrap servers, `host:port,...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// The executor driver's job API, `http://host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_api: Option<String>,
    /// Kafka's `security.protocol` for the bootstrap servers (`SASL_SSL`, `SSL`,
    /// `SASL_PLAINTEXT`, `PLAINTEXT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<String>,
    /// SASL mechanisms the brokers accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sasl_mechanisms: Vec<String>,
    /// The PEM certificate of the authority that signs the brokers' certificates (TLS only):
    /// what clients trust (`ssl.ca.location`). While the authorities rotate, both the current
    /// and the other authority's certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

/// One workload of a cluster and the node it is placed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlacedWorkload {
    /// Workload name.
    pub name: String,
    /// `broker`, `driver` or `worker`.
    pub role: String,
    /// Broker id or worker id (0 for the driver).
    pub ordinal: u32,
    /// The node's name.
    pub node: String,
    /// The node's fault domain.
    pub fault_domain: u32,
    /// `host:port` of the process.
    pub address: String,
    /// `host:port` serving its Prometheus metrics (`GET /metrics`): a broker's metrics listener
    /// (on the node's address behind the node agent's metrics token when the agent has one, else
    /// on the node's loopback), an executor's own API (behind the cluster credential). Absent for
    /// brokers placed before brokers served metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<String>,
    /// What its agent last reported (`Starting`, `Running`, `Backoff`, `Stopping`), or `Pending`.
    pub state: String,
    /// Restarts after crashes.
    pub restarts: u32,
    /// True while it is being removed.
    pub removing: bool,
}

/// Observed state of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// For people.
    pub state: ClusterState,
    /// The spec generation the status describes as reached.
    pub observed_generation: u64,
    /// Detailed observations.
    pub conditions: Vec<Condition>,
    /// Per pool.
    pub pools: Vec<PoolStatus>,
    /// Client endpoints.
    pub endpoints: Endpoints,
    /// Workloads and where they run.
    pub workloads: Vec<PlacedWorkload>,
    /// The most recent operation on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<Uuid>,
    /// A rotation of the cluster's certificate authorities in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_rotation: Option<crate::AuthorityRotation>,
}

/// A cluster: spec plus status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    /// Identity.
    pub id: Uuid,
    /// Workspace name.
    pub workspace: String,
    /// Cluster name, unique in its workspace.
    pub name: String,
    /// The desired spec.
    pub spec: ClusterSpec,
    /// Bumped by every spec change.
    pub generation: u64,
    /// Observed state.
    pub status: ClusterStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last spec change.
    pub updated_at: DateTime<Utc>,
}

/// A page of clusters, ordered by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterList {
    /// This page.
    pub items: Vec<Cluster>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What a mutation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A cluster is created.
    Create,
    /// A cluster's spec is replaced.
    Update,
    /// A pool is resized.
    Resize,
    /// A cluster is deleted.
    Delete,
    /// A replication link is paused.
    LinkPause,
    /// A paused replication link resumes.
    LinkResume,
    /// A replication link's target is promoted (planned switchover).
    LinkPromote,
    /// A replication link fails over to its target (forced).
    LinkFailover,
    /// A replication link is reversed (the old source mirrors the old target).
    LinkReverse,
}

/// Where an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum OperationState {
    /// In progress.
    Running,
    /// Done.
    Succeeded,
    /// Gave up; see `error`.
    Failed,
}

impl std::fmt::Display for OperationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperationState::Running => "Running",
            OperationState::Succeeded => "Succeeded",
            OperationState::Failed => "Failed",
        })
    }
}

/// One step an operation went through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperationStep {
    /// What the step does, e.g. `place brokers` or `wait for the brokers to form one cluster`.
    pub name: String,
    /// `Running`, `Done` or `Failed`.
    pub state: String,
    /// Detail, e.g. which nodes were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the step started.
    pub started_at: DateTime<Utc>,
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperationError {
    /// A stable code: `insufficient_capacity`, `timed_out`, `superseded`, `below_quorum`,
    /// `brokers_hold_partitions`, or for link operations `kafka_error` (the brokers refused).
    pub code: crate::types::ErrorCode,
    /// For people.
    pub detail: String,
}

/// A long-running mutation: `GET /v1/operations/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    /// Identity.
    pub id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub state: OperationState,
    /// Workspace name.
    pub workspace: String,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's id.
    pub cluster_id: Uuid,
    /// The spec generation it converges on.
    pub target_generation: u64,
    /// Steps so far.
    pub steps: Vec<OperationStep>,
    /// Set when `state` is `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// Who asked.
    pub created_by: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The replication link of a link operation (`cluster` is the link's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// What a finished link operation measured: stop offsets and a failover's loss bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::replication_link::LinkOperationResult>,
}

/// A page of operations, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperationList {
    /// This page.
    pub items: Vec<Operation>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A workload size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Size {
    /// Name used in `node_pools[].size`.
    pub name: String,
    /// CPU reserved per workload, thousandths of a core.
    pub cpu_millis: u64,
    /// Memory reserved per workload, bytes.
    pub memory_bytes: u64,
}

/// What can be created of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KindCapabilities {
    /// The kind.
    pub kind: ClusterKind,
    /// Versions offered, newest first.
    pub versions: Vec<String>,
    /// The version used when the spec names none.
    pub default_version: String,
    /// The pool role the kind takes.
    pub role: PoolRole,
    /// Fewest workloads in the pool.
    pub min_replicas: u32,
    /// Most workloads in the pool.
    pub max_replicas: u32,
}

/// `GET /v1/capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Capabilities {
    /// Per kind.
    pub kinds: Vec<KindCapabilities>,
    /// Sizes.
    pub sizes: Vec<Size>,
    /// Largest `storage_gib`.
    pub max_storage_gib: u32,
}

/// One audited mutation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What, e.g. `cluster.create`.
    pub action: String,
    /// On what, e.g. `workspaces/ws/clusters/c1`.
    pub resource: String,
    /// `accepted`, or the refusal's problem code.
    pub outcome: String,
    /// Extra detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A page of audit events, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEventList {
    /// This page.
    pub items: Vec<AuditEvent>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
