//! Wire types between the control plane and node agents: the workloads a node must run, and what
//! the agent reports about them.
//!
//! A node's assignment is the whole desired set with a generation number that grows whenever the
//! set changes; an agent applies a set only if its generation is not older than the one it has
//! applied, so a stale answer (from a lagging control-plane replica) cannot undo a newer one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /v1/agent/nodes/{id}/workloads`: everything the node must run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkloadAssignment {
    /// Grows whenever the set changes.
    pub generation: u64,
    /// The workloads; any other workload on the node is stopped and its data removed.
    pub workloads: Vec<Workload>,
}

/// One data-plane process to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workload {
    /// Unique on the node and stable for the workload's life; names its data directory
    /// (`<data-dir>/workloads/<name>`). Lowercase letters, digits and `-`.
    pub name: String,
    /// The cluster the workload belongs to.
    pub cluster_id: Uuid,
    /// The operating-system identity it runs as (a node agent running as root switches to it).
    pub run_as: RunAs,
    /// What to run.
    pub spec: WorkloadSpec,
}

/// Numbers the control plane gives clusters' users and workspaces' groups; a node agent refuses
/// a workload whose identity is outside them (never root, a system or an ordinary login id).
pub const RUN_AS_IDS: std::ops::RangeInclusive<u32> = 1_000_000..=1_999_999_999;

/// The operating-system identity of a workload: its cluster's own user, so that workloads of
/// different clusters on one node cannot read each other's files, and its workspace's group,
/// which owns the workspace's storage root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunAs {
    /// The cluster's user id, also the id of the cluster's own group (its primary group).
    pub uid: u32,
    /// The workspace's group id (a supplementary group).
    pub workspace_gid: u32,
}

impl RunAs {
    /// Whether both ids are in [`RUN_AS_IDS`] and differ.
    pub fn is_valid(&self) -> bool {
        RUN_AS_IDS.contains(&self.uid)
            && RUN_AS_IDS.contains(&self.workspace_gid)
            && self.uid != self.workspace_gid
    }
}

/// The process and its configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkloadSpec {
    /// An `hdi-broker` of a Kafka cluster.
    Broker(BrokerWorkload),
    /// An `hdi-executor` (driver or worker) of a Spark cluster.
    Executor(ExecutorWorkload),
}

/// `hdi-broker --node-id N --listen HOST:KAFKA_PORT --quorum-listen HOST:QUORUM_PORT --quorum ...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrokerWorkload {
    /// The broker id in its cluster.
    pub broker_id: i32,
    /// Host the broker listens on and advertises (the node's address).
    pub host: String,
    /// Kafka listener port.
    pub kafka_port: u16,
    /// Broker-to-broker (metadata quorum and replication) port.
    pub quorum_port: u16,
    /// The metadata quorum's voters; a broker not among them joins as a learner.
    pub voters: Vec<QuorumVoter>,
    /// Rack (the node's fault domain) for replica placement.
    pub rack: String,
    /// The quorum listener's mutual-TLS material: the agent writes it to 0600 files and runs
    /// the broker with `--quorum-tls-dir`. Absent: a plain-TCP quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_tls: Option<QuorumTls>,
    /// The Kafka listener's security; absent: a `PLAINTEXT` listener that lets anyone do
    /// anything (clusters created before security, or asking for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_security: Option<Box<BrokerSecurity>>,
    /// Port of the broker's Prometheus metrics listener (`GET /metrics`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
}

/// How a broker secures its Kafka listener: `hdi-broker --listener PROTOCOL://HOST:PORT
/// [--tls-dir DIR] [--sasl-mechanisms ... --sasl-users-file FILE] [--authorizer --super-users
/// ...] --auto-create-topics false`, the files written 0600 by the agent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrokerSecurity {
    /// `SASL_SSL`, `SSL`, `SASL_PLAINTEXT` or `PLAINTEXT`.
    pub protocol: String,
    /// The listener's server certificate (naming the broker's host), its key and the cluster's
    /// Kafka CA, for SSL and SASL_SSL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<QuorumTls>,
    /// SASL mechanisms offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sasl_mechanisms: Vec<String>,
    /// The static users file (the platform's administrator; Kafka users live in the quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_users: Option<String>,
    /// The control plane's JSON Web Key Set (OAUTHBEARER), written to `jwks.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_jwks: Option<String>,
    /// Enforce ACLs.
    pub authorizer: bool,
    /// Principals allowed everything (`User:NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

impl std::fmt::Debug for BrokerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanisms", &self.sasl_mechanisms)
            .field("authorizer", &self.authorizer)
            .field("super_users", &self.super_users)
            .finish_non_exhaustive()
    }
}

/// A certificate, its key and the authority that signed it, as PEM (a broker's quorum
/// identity, or its Kafka listener's).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuorumTls {
    /// The cluster's CA certificate.
    pub ca_pem: String,
    /// The broker's certificate (names `quorum.hdi` and `broker-<id>.quorum.hdi`).
    pub cert_pem: String,
    /// The broker's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls(..)")
    }
}

/// One voter of a broker cluster's metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuorumVoter {
    /// Broker id.
    pub broker_id: i32,
    /// Host of its quorum listener.
    pub host: String,
    /// Port of its quorum listener.
    pub port: u16,
}

/// Which half of a Spark cluster an executor process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorRole {
    /// Plans jobs, owns the job API and assigns work to workers.
    Driver,
    /// Runs the work the driver assigns.
    Worker,
}

/// `hdi-executor driver --listen HOST:PORT ...` or `hdi-executor worker --id N --listen HOST:PORT --driver HOST:PORT ...`,
/// each with `--credential-file FILE --files-root DIR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecutorWorkload {
    /// Driver or worker.
    pub role: ExecutorRole,
    /// The worker's id in its cluster (0 for the driver).
    pub worker_id: u32,
    /// Host the process listens on (the node's address).
    pub host: String,
    /// Its HTTP port (the driver's is the job API).
    pub port: u16,
    /// The driver's `host:port` (workers register there; the driver's own address for the driver).
    pub driver: String,
    /// The cluster's credential: the agent writes it to a 0600 file the process reads
    /// (`--credential-file`); every caller of the driver and the workers must present it.
    pub credential: String,
    /// The storage root jobs' file connectors resolve paths in, relative to the node's storage
    /// directory (`workspaces/<workspace id>`): one per workspace, shared by its clusters.
    pub files_root: String,
}

/// What an agent knows of one of its workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WorkloadState {
    /// Started, not ready yet.
    Starting,
    /// The process runs and said it is ready.
    Running,
    /// The process exited; it is restarted after a backoff.
    Backoff,
    /// Being stopped because it is no longer assigned.
    Stopping,
}

/// One workload, as its agent sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkloadStatus {
    /// The workload's name.
    pub name: String,
    /// Its state.
    pub state: WorkloadState,
    /// The process id while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times it was restarted after exiting.
    pub restarts: u32,
    /// How the last process ended, e.g. `exit status 1` or `signal 9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}
