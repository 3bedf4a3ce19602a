//! Domain types of workspaces, clusters, operations and workloads.
//!
//! The cluster's desired spec and its status are kept as JSON documents in PostgreSQL; the serde
//! shapes here are the storage format (field renames are migrations), distinct from the wire types.

use std::collections::BTreeMap;

use super::{ClusterId, KafkaUserId, NodeId, OperationId, WorkloadId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceRecord {
    /// Identity.
    pub id: WorkspaceId,
    /// Unique name.
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Kafka or Spark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Brokers.
    Kafka,
    /// A driver and executors.
    Spark,
}

impl Kind {
    /// The name stored in `clusters.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kafka => "kafka",
            Kind::Spark => "spark",
        }
    }

    /// The pool role clusters of this kind take.
    pub fn pool_role(self) -> PoolRole {
        match self {
            Kind::Kafka => PoolRole::Broker,
            Kind::Spark => PoolRole::Executor,
        }
    }
}

/// What a pool's workloads do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// Kafka brokers.
    Broker,
    /// Spark executors.
    Executor,
}

/// One node pool of a desired cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Name.
    pub name: String,
    /// Role.
    pub role: PoolRole,
    /// Workloads wanted.
    pub replicas: u32,
    /// Size name.
    pub size: String,
    /// Disk per workload.
    pub storage_gib: u32,
}

/// The desired cluster as stored in `clusters.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Version.
    pub version: String,
    /// Pools (exactly one today).
    pub pools: Vec<PoolSpec>,
    /// Reserved settings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Refuse `DELETE` while set.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Removing brokers that hold partitions moves them first (set by the resize that asked).
    #[serde(default)]
    pub drain: bool,
    /// Kafka only: the client listener's security. `None`: `PLAINTEXT` without ACLs (what
    /// clusters stored before security have, and what `security: {tls: false,
    /// authentication: [], authorization: false}` asks for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurity>,
}

/// A Kafka cluster's client security as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSecurity {
    /// TLS on the client listener.
    pub tls: bool,
    /// SASL mechanisms (`SCRAM-SHA-512`, `SCRAM-SHA-256`, `OAUTHBEARER`); empty: none.
    pub mechanisms: Vec<String>,
    /// ACLs enforced.
    pub authorization: bool,
}

impl KafkaSecurity {
    /// Kafka's `security.protocol` of the listener.
    pub fn protocol(&self) -> &'static str {
        match (self.tls, self.mechanisms.is_empty()) {
            (true, false) => "SASL_SSL",
            (true, true) => "SSL",
            (false, false) => "SASL_PLAINTEXT",
            (false, true) => "PLAINTEXT",
        }
    }

    /// Whether the cluster has Kafka users (a SCRAM mechanism).
    pub fn has_scram(&self) -> bool {
        self.mechanisms.iter().any(|m| m.starts_with("SCRAM-"))
    }

    /// Whether hdi users reach it with their access tokens.
    pub fn has_oauth(&self) -> bool {
        self.mechanisms.iter().any(|m| m == "OAUTHBEARER")
    }
}

/// The SCRAM user the control plane administers secured clusters as (a super user, in the
/// brokers' static users file).
pub const KAFKA_ADMIN_USER: &str = "hdi-admin";

/// What the control plane needs to call a secured Kafka cluster: its Kafka CA certificate and
/// the administrator's password (made when its first broker is assigned).
#[derive(Clone)]
pub struct KafkaClientSecrets {
    /// The CA certificate (PEM) of the authority that signs.
    pub ca_cert: String,
    /// The CA certificates to trust (PEM): `ca_cert`, and while the authorities rotate, the
    /// other one too.
    pub ca_trust: String,
    /// The CA's key (PEM): signs the brokers' server certificates.
    pub ca_key: hdi_stdx::secret::Secret,
    /// [`KAFKA_ADMIN_USER`]'s password.
    pub admin_password: hdi_stdx::secret::Secret,
}

impl std::fmt::Debug for KafkaClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaClientSecrets(..)")
    }
}

impl ClusterSpec {
    /// Workloads wanted in the first pool (the only one today).
    pub fn replicas(&self) -> u32 {
        self.pools.first().map_or(0, |pool| pool.replicas)
    }

    /// The first pool's size name.
    pub fn size(&self) -> &str {
        self.pools
            .first()
            .map_or("small", |pool| pool.size.as_str())
    }
}

/// The state of a cluster, for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterState {
    /// Being created.
    Creating,
    /// Converged and healthy.
    Running,
    /// Converging on a changed spec.
    Resizing,
    /// Being deleted.
    Deleting,
    /// Cannot converge; see the conditions.
    Failed,
}

impl ClusterState {
    /// The name stored in `clusters.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Creating => "Creating",
            ClusterState::Running => "Running",
            ClusterState::Resizing => "Resizing",
            ClusterState::Deleting => "Deleting",
            ClusterState::Failed => "Failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<ClusterState> {
        Some(match text {
            "Creating" => ClusterState::Creating,
            "Running" => ClusterState::Running,
            "Resizing" => ClusterState::Resizing,
            "Deleting" => ClusterState::Deleting,
            "Failed" => ClusterState::Failed,
            _ => return None,
        })
    }
}

/// A Kubernetes-style condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Type, e.g. `Ready`.
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
}

/// Observed facts the reconciler keeps in `clusters.status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusDoc {
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Ready workloads per pool (`driver` is a pool of its own for Spark).
    #[serde(default)]
    pub ready: BTreeMap<String, u32>,
    /// Kafka bootstrap servers.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// Executor job API URL.
    #[serde(default)]
    pub job_api: Option<String>,
}

/// The phase of a rotation of a Kafka cluster's authorities (`clusters.ca_rotation`; see
/// migration 0014).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorityPhase {
    /// Both authorities trusted, the current one signs, until `at`.
    Trusting,
    /// The new one signs since `at`; broker certificates are issued again.
    Issuing,
    /// Every broker certificate is the new authority's since `at`; the old one is dropped soon.
    Settling,
}

impl AuthorityPhase {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityPhase::Trusting => "trusting",
            AuthorityPhase::Issuing => "issuing",
            AuthorityPhase::Settling => "settling",
        }
    }

    /// The phase stored as `value`.
    pub fn parse(value: &str) -> Option<AuthorityPhase> {
        [
            AuthorityPhase::Trusting,
            AuthorityPhase::Issuing,
            AuthorityPhase::Settling,
        ]
        .into_iter()
        .find(|p| p.as_str() == value)
    }
}

/// A rotation of a cluster's authorities in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorityRotationRecord {
    /// Its phase.
    pub phase: AuthorityPhase,
    /// `Trusting`: when the new authorities start signing; otherwise when the phase began.
    pub at: DateTime<Utc>,
}

/// What a Kafka cluster's clients are told of its authorities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterAuthorities {
    /// The Kafka CA certificates clients trust (PEM; two while rotating), once made.
    pub kafka_trust: Option<String>,
    /// A rotation in progress.
    pub rotation: Option<AuthorityRotationRecord>,
}

/// A cluster row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRecord {
    /// Identity.
    pub id: ClusterId,
    /// Workspace id.
    pub workspace_id: WorkspaceId,
    /// Workspace name.
    pub workspace: String,
    /// Name in the workspace.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Desired spec.
    pub spec: ClusterSpec,
    /// Spec generation.
    pub generation: u64,
    /// `DELETE` was accepted.
    pub deleting: bool,
    /// Observed state.
    pub state: ClusterState,
    /// Generation reached.
    pub observed_generation: u64,
    /// Observed details.
    pub status: ClusterStatusDoc,
    /// Size of the Kafka metadata quorum (0 until the first brokers are placed).
    pub voters: u32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last spec change.
    pub updated_at: DateTime<Utc>,
    /// The Kubernetes custom resource that made and owns the cluster, if one did.
    pub k8s_owner: Option<K8sOwner>,
}

/// A Kubernetes object that owns a cluster (an `HdiCluster`): what an owner reference names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sOwner {
    /// `hdi.io/v1alpha1`.
    pub api_version: String,
    /// `HdiCluster`.
    pub kind: String,
    /// Its name (in the namespace named like the cluster's workspace).
    pub name: String,
    /// Its uid.
    pub uid: String,
}

impl ClusterRecord {
    /// The entity tag of the spec: changes exactly when the generation does.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id.into_uuid().simple(), self.generation)
    }
}

/// What a mutation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// Create.
    Create,
    /// Replace the spec.
    Update,
    /// Resize a pool.
    Resize,
    /// Delete.
    Delete,
    /// Pause a replication link.
    LinkPause,
    /// Resume a paused replication link.
    LinkResume,
    /// Promote a link's target (planned switchover).
    LinkPromote,
    /// Fail a link over to its target (forced).
    LinkFailover,
    /// Make a promoted link's old source the mirror of its old target.
    LinkReverse,
}

impl OperationKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Create => "create",
            OperationKind::Update => "update",
            OperationKind::Resize => "resize",
            OperationKind::Delete => "delete",
            OperationKind::LinkPause => "link_pause",
            OperationKind::LinkResume => "link_resume",
            OperationKind::LinkPromote => "link_promote",
            OperationKind::LinkFailover => "link_failover",
            OperationKind::LinkReverse => "link_reverse",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<OperationKind> {
        Some(match text {
            "create" => OperationKind::Create,
            "update" => OperationKind::Update,
            "resize" => OperationKind::Resize,
            "delete" => OperationKind::Delete,
            "link_pause" => OperationKind::LinkPause,
            "link_resume" => OperationKind::LinkResume,
            "link_promote" => OperationKind::LinkPromote,
            "link_failover" => OperationKind::LinkFailover,
            "link_reverse" => OperationKind::LinkReverse,
            _ => return None,
        })
    }
}

/// Where an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationState {
    /// In progress.
    Running,
    /// Done.
    Succeeded,
    /// Gave up.
    Failed,
}

impl OperationState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Running => "Running",
            OperationState::Succeeded => "Succeeded",
            OperationState::Failed => "Failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<OperationState> {
        Some(match text {
            "Running" => OperationState::Running,
            "Succeeded" => OperationState::Succeeded,
            "Failed" => OperationState::Failed,
            _ => return None,
        })
    }
}

/// One step of an operation, as stored in `operations.steps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStep {
    /// What it does.
    pub name: String,
    /// `Running`, `Done` or `Failed`.
    pub state: String,
    /// Detail.
    #[serde(default)]
    pub detail: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
}

/// An operation row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRecord {
    /// Identity.
    pub id: OperationId,
    /// Workspace id.
    pub workspace_id: WorkspaceId,
    /// Workspace name (joined; empty if the workspace is gone).
    pub workspace: String,
    /// Cluster id.
    pub cluster_id: ClusterId,
    /// Cluster name.
    pub cluster_name: String,
    /// Kind.
    pub kind: OperationKind,
    /// State.
    pub state: OperationState,
    /// Generation it converges on.
    pub target_generation: u64,
    /// Steps.
    pub steps: Vec<OperationStep>,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure detail.
    pub error_detail: Option<String>,
    /// Who asked.
    pub created_by: String,
    /// Started.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The replication link of a link operation (its id and name).
    pub link: Option<(super::ReplicationLinkId, String)>,
    /// What a finished link operation measured (a failover's stop offsets and loss bound).
    pub result: Option<super::LinkOperationResult>,
}

/// What a workload does in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadRole {
    /// A Kafka broker.
    Broker,
    /// The Spark driver.
    Driver,
    /// A Spark executor worker.
    Worker,
}

impl WorkloadRole {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadRole::Broker => "broker",
            WorkloadRole::Driver => "driver",
            WorkloadRole::Worker => "worker",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<WorkloadRole> {
        Some(match text {
            "broker" => WorkloadRole::Broker,
            "driver" => WorkloadRole::Driver,
            "worker" => WorkloadRole::Worker,
            _ => return None,
        })
    }
}

/// How a workload's process is configured, as stored in `workloads.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkloadConfig {
    /// `hdi-broker`.
    Broker {
        /// Broker id.
        broker_id: i32,
        /// Kafka port.
        kafka_port: u16,
        /// Quorum port.
        quorum_port: u16,
        /// Voters: (broker id, host, quorum port).
        voters: Vec<(i32, String, u16)>,
        /// Rack.
        rack: String,
        /// Prometheus metrics port (`None` for brokers placed before brokers served metrics).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics_port: Option<u16>,
    },
    /// `hdi-executor`.
    Executor {
        /// Driver or worker.
        role: WorkloadRole,
        /// Worker id (0: driver).
        worker_id: u32,
        /// HTTP port.
        port: u16,
        /// The driver's `host:port`.
        driver: String,
    },
}

/// What an agent last reported about a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedProcess {
    /// Nothing reported yet.
    Pending,
    /// Starting.
    Starting,
    /// Running and ready.
    Running,
    /// Exited; restarting after a backoff.
    Backoff,
    /// Being stopped.
    Stopping,
}

impl ObservedProcess {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObservedProcess::Pending => "Pending",
            ObservedProcess::Starting => "Starting",
            ObservedProcess::Running => "Running",
            ObservedProcess::Backoff => "Backoff",
            ObservedProcess::Stopping => "Stopping",
        }
    }

    /// Parses a stored name (unknown: `Pending`).
    pub fn parse(text: Option<&str>) -> ObservedProcess {
        match text {
            Some("Starting") => ObservedProcess::Starting,
            Some("Running") => ObservedProcess::Running,
            Some("Backoff") => ObservedProcess::Backoff,
            Some("Stopping") => ObservedProcess::Stopping,
            _ => ObservedProcess::Pending,
        }
    }
}

/// A workload row joined with its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRecord {
    /// Identity.
    pub id: WorkloadId,
    /// Cluster.
    pub cluster_id: ClusterId,
    /// Node.
    pub node_id: NodeId,
    /// Node name.
    pub node_name: String,
    /// Node address.
    pub address: String,
    /// Node fault domain.
    pub fault_domain: u32,
    /// Whether the node heartbeats.
    pub node_ready: bool,
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: WorkloadRole,
    /// Broker id / worker id.
    pub ordinal: u32,
    /// Process configuration.
    pub config: WorkloadConfig,
    /// To be stopped.
    pub removing: bool,
    /// The agent applied the removal and no longer reports the workload: the row can go.
    pub gone: bool,
    /// What the agent reports.
    pub observed: ObservedProcess,
    /// Restarts reported.
    pub restarts: u32,
}

impl WorkloadRecord {
    /// `host:port` of the process's main listener.
    pub fn endpoint(&self) -> String {
        match &self.config {
            WorkloadConfig::Broker { kafka_port, .. } => format!("{}:{kafka_port}", self.address),
            WorkloadConfig::Executor { port, .. } => format!("{}:{port}", self.address),
        }
    }

    /// `host:port` of the process's Prometheus metrics: a broker's metrics port, an executor's
    /// own listener.
    pub fn metrics_address(&self) -> Option<String> {
        match &self.config {
            WorkloadConfig::Broker { metrics_port, .. } => {
                metrics_port.map(|port| format!("{}:{port}", self.address))
            }
            WorkloadConfig::Executor { .. } => Some(self.endpoint()),
        }
    }
}

/// An audit event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Sequence number (0 before insertion).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub resource: String,
    /// `accepted` or a problem code.
    pub outcome: String,
    /// Detail.
    pub detail: Option<String>,
}

/// A workload size of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeSpec {
    /// Name.
    pub name: &'static str,
    /// CPU reserved.
    pub cpu_millis: u64,
    /// Memory reserved.
    pub memory_bytes: u64,
}

/// What a kind offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSpec {
    /// Kind.
    pub kind: Kind,
    /// Versions, newest first; the first is the default.
    pub versions: &'static [&'static str],
    /// Fewest replicas in the pool.
    pub min_replicas: u32,
    /// Most replicas in the pool.
    pub max_replicas: u32,
}

const GIB: u64 = 1 << 30;

/// The sizes on offer.
pub const SIZES: &[SizeSpec] = &[
    SizeSpec {
        name: "small",
        cpu_millis: 250,
        memory_bytes: GIB / 2,
    },
    SizeSpec {
        name: "medium",
        cpu_millis: 1000,
        memory_bytes: 2 * GIB,
    },
    SizeSpec {
        name: "large",
        cpu_millis: 2000,
        memory_bytes: 8 * GIB,
    },
];

/// The kinds on offer.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        kind: Kind::Kafka,
        versions: &["4.1"],
        min_replicas: 1,
        max_replicas: 16,
    },
    KindSpec {
        kind: Kind::Spark,
        versions: &["3.5"],
        min_replicas: 1,
        max_replicas: 32,
    },
];

/// The largest disk per workload.
pub const MAX_STORAGE_GIB: u32 = 16 * 1024;

/// A size by name.
pub fn size_spec(name: &str) -> Option<SizeSpec> {
    SIZES.iter().copied().find(|size| size.name == name)
}

/// A kind's offer.
pub fn kind_spec(kind: Kind) -> KindSpec {
    KINDS
        .iter()
        .copied()
        .find(|spec| spec.kind == kind)
        .unwrap_or(KindSpec {
            kind,
            versions: &[],
            min_replicas: 1,
            max_replicas: 1,
        })
}

/// What a cluster's processes get besides their spec, and what the control plane presents when
/// it calls them: the workspace (whose storage root jobs' files resolve in) and the cluster's
/// credential. Never part of an API view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAccess {
    /// The cluster's workspace.
    pub workspace_id: WorkspaceId,
    /// The cluster's data-plane credential.
    pub credential: hdi_stdx::secret::Secret,
    /// The operating-system user the cluster's workloads run as (also its own group's id).
    pub os_uid: u32,
    /// The group of the cluster's workspace, owner of its storage root on each node.
    pub workspace_gid: u32,
}

impl ClusterAccess {
    /// The storage root of the cluster's workspace, relative to a node's storage directory:
    /// `workspaces/<workspace id>`.
    pub fn files_root(&self) -> String {
        format!("workspaces/{}", self.workspace_id)
    }
}

/// The SCRAM user Spark clusters' jobs reach a secured Kafka cluster of their workspace as
/// (Read, Write and Describe on every topic and group: jobs may name any topic of the
/// workspace's clusters).
pub const KAFKA_JOBS_USER: &str = "hdi-jobs";

/// How jobs reach one Kafka cluster of their workspace.
#[derive(Clone, Debug)]
pub struct KafkaJobAccess {
    /// `host:port,...`.
    pub bootstrap: String,
    /// The cluster's security (`None`: PLAINTEXT).
    pub security: Option<KafkaSecurity>,
    /// Its Kafka CA certificates to trust (two while they rotate), once made.
    pub ca_cert: Option<String>,
    /// [`KAFKA_JOBS_USER`]'s password once the cluster has its credential.
    pub jobs_password: Option<hdi_stdx::secret::Secret>,
}

impl KafkaJobAccess {
    /// The librdkafka properties jobs add to reach this cluster (empty for PLAINTEXT; `None`
    /// while a secured cluster cannot be reached yet).
    pub fn properties(&self) -> Option<BTreeMap<String, String>> {
        let mut properties = BTreeMap::new();
        let Some(security) = &self.security else {
            return Some(properties);
        };
        properties.insert(
            "security.protocol".to_owned(),
            security.protocol().to_owned(),
        );
        if let Some(mechanism) = security.mechanisms.iter().find(|m| m.starts_with("SCRAM-")) {
            let password = self.jobs_password.as_ref()?;
            properties.insert("sasl.mechanisms".to_owned(), mechanism.clone());
            properties.insert("sasl.username".to_owned(), KAFKA_JOBS_USER.to_owned());
            properties.insert("sasl.password".to_owned(), password.expose().to_owned());
        }
        if security.tls {
            properties.insert("ssl.ca.pem".to_owned(), self.ca_cert.clone()?);
        }
        Some(properties)
    }
}

/// One ACL of a Kafka user as stored (`kafka_users.acls`): the wire's spelling of each enum.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KafkaAclSpec {
    /// `topic`, `group`, `cluster` or `transactional_id`.
    pub resource_type: String,
    /// The resource name or prefix.
    pub resource_name: String,
    /// `literal` or `prefixed`.
    pub pattern: String,
    /// `read`, `write`, ... `all`.
    pub operations: Vec<String>,
    /// `allow` or `deny`.
    pub permission: String,
}

/// A Kafka user's client quotas as stored (`kafka_users.quotas`): Kafka's quota keys, absent
/// when unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaQuotaSpec {
    /// `producer_byte_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_byte_rate: Option<u64>,
    /// `consumer_byte_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_byte_rate: Option<u64>,
    /// `request_percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_percentage: Option<u64>,
}

impl KafkaQuotaSpec {
    /// Kafka's key and value of each quota set.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        [
            ("consumer_byte_rate", self.consumer_byte_rate),
            ("producer_byte_rate", self.producer_byte_rate),
            ("request_percentage", self.request_percentage),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
    }
}

/// A Kafka user of a secured Kafka cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaUserRecord {
    /// Identity.
    pub id: KafkaUserId,
    /// Its cluster.
    pub cluster_id: ClusterId,
    /// Name (principal `User:<name>`).
    pub name: String,
    /// `SCRAM-SHA-512` or `SCRAM-SHA-256`.
    pub mechanism: String,
    /// Its ACLs.
    pub acls: Vec<KafkaAclSpec>,
    /// Its client quotas.
    pub quotas: KafkaQuotaSpec,
    /// Grows with every ACL or quota change.
    pub generation: u64,
    /// The generation whose ACLs and quotas the cluster has.
    pub applied_generation: u64,
    /// Who created it.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last password change.
    pub password_set_at: DateTime<Utc>,
}
