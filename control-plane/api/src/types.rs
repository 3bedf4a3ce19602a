//! Request and response bodies of the REST API, with their OpenAPI schemas.
//!
//! Every type here is a wire type: field names are the JSON names, and changing one is an API
//! change that shows up in the checked-in `openapi/hdi.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An error, as `application/problem+json` (RFC 9457) with a stable machine-readable `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when `code` says it all.
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// A short human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A stable machine-readable code, e.g. `invalid_field`, `not_found`, `unauthorized`.
    pub code: ErrorCode,
    /// The request field at fault, as a JSON-pointer-like path (`capacity.cpu_millis`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid_sql`: the executor's own code (`sql_error`, `unknown_topic`,
    /// `unknown_column`, `unsupported`, `invalid_option`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_code: Option<String>,
    /// For `invalid_sql`: the 1-based line of the SQL at fault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// For `invalid_sql`: the 1-based column of the SQL at fault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

/// Declares [`ErrorCode`] with each variant's wire name written once.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $wire:tt,)+) => {
        /// The stable machine-readable `code` of a problem: what clients branch on.
        ///
        /// A client reads a code it does not know (one added by a newer control plane) as
        /// `unknown`; the control plane never sends `unknown` itself. The HTTP status and `detail`
        /// of such a problem still say what happened.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ #[serde(rename = $wire)] $variant,)+
            /// A code this client does not know.
            #[serde(rename = "unknown", other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every code the control plane sends.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire name, e.g. `not_found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)+
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The code of a wire name; [`ErrorCode::Unknown`] for a name this build does not
            /// know (as a client reads one).
            pub fn from_wire(name: &str) -> ErrorCode {
                match name {
                    $($wire => ErrorCode::$variant,)+
                    _ => ErrorCode::Unknown,
                }
            }
        }
    };
}

error_codes! {
    // The request.
    /// A request field is invalid; `field` names it.
    InvalidField = "invalid_field",
    /// The JSON body does not parse or does not fit the request type.
    InvalidBody = "invalid_body",
    /// A path parameter does not parse (e.g. an id that is not a UUID).
    InvalidPath = "invalid_path",
    /// A query parameter does not parse.
    InvalidQuery = "invalid_query",
    /// The body is not sent as `Content-Type: application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// The body is larger than the control plane accepts.
    BodyTooLarge = "body_too_large",
    /// The endpoint does not take this method.
    MethodNotAllowed = "method_not_allowed",
    /// The resource or endpoint does not exist (or the caller may not see it).
    NotFound = "not_found",
    /// An `If-Match` precondition does not hold.
    PreconditionFailed = "precondition_failed",
    /// A request with the same `Idempotency-Key` is still running.
    IdempotencyKeyInUse = "idempotency_key_in_use",
    /// The `Idempotency-Key` was used for a different request.
    IdempotencyKeyReused = "idempotency_key_reused",
    // Authentication and authorization.
    /// No bearer token, or one that is not valid for the endpoint.
    Unauthorized = "unauthorized",
    /// A token exchange with an unknown user, a wrong password, or an unknown or expired API token.
    InvalidCredentials = "invalid_credentials",
    /// The caller's role does not allow the call.
    Forbidden = "forbidden",
    /// A request authenticated by the portal's session cookie changes something without the
    /// `X-HDI-Requested-By` header, or from another origin (cross-site request forgery).
    CsrfFailed = "csrf_failed",
    // Conflicts with existing state.
    /// A workspace of that name exists.
    WorkspaceExists = "workspace_exists",
    /// A user of that name exists.
    UserExists = "user_exists",
    /// The built-in platform admin cannot be deleted.
    UserBuiltin = "user_builtin",
    /// An API token of that name exists for the user.
    ApiTokenExists = "api_token_exists",
    /// A node of that name is registered under another id.
    NodeNameTaken = "node_name_taken",
    /// The node has an agent credential already: a platform admin revokes it before the agent
    /// enrols again.
    NodeCredentialExists = "node_credential_exists",
    /// The cluster is being deleted.
    ClusterDeleting = "cluster_deleting",
    /// The cluster was made by a Kubernetes custom resource (`HdiCluster`), which owns it:
    /// change or delete that resource instead.
    ManagedByKubernetes = "managed_by_kubernetes",
    /// A custom resource names a cluster that was made through REST: it cannot take it over.
    NotManagedByKubernetes = "not_managed_by_kubernetes",
    /// The cluster changed while the request was served; retry.
    ConcurrentChange = "concurrent_change",
    /// Another operation is still running on the cluster.
    OperationInProgress = "operation_in_progress",
    /// The cluster's certificate authorities are already rotating.
    RotationInProgress = "rotation_in_progress",
    /// The cluster cannot serve the request yet (not Running or Resizing).
    ClusterNotReady = "cluster_not_ready",
    /// A topic of that name exists.
    TopicExists = "topic_exists",
    /// A job of that name exists in the cluster.
    JobExists = "job_exists",
    /// A Kafka user of that name exists in the cluster.
    KafkaUserExists = "kafka_user_exists",
    /// The cluster is the source of a replication link: delete the link first (a target takes
    /// its links with it).
    ClusterHasLinks = "cluster_has_links",
    /// The replication link still feeds mirror topics: promote or fail it over before deleting.
    LinkHasMirrors = "link_has_mirrors",
    /// A replication pair's clusters have brokers in a common fault domain.
    LinkFaultDomainsOverlap = "link_fault_domains_overlap",
    /// The replication link is promoted, failed over or stopping: it cannot do that any more.
    LinkStopped = "link_stopped",
    /// The replication link is paused: resume it first.
    LinkPaused = "link_paused",
    /// The replication link is not paused (resume).
    LinkNotPaused = "link_not_paused",
    /// Only a promoted or failed-over replication link can be reversed.
    LinkNotStopped = "link_not_stopped",
    /// The consumer group has active members: its offsets can be reset, and it can be deleted,
    /// only once they have left.
    GroupNotEmpty = "group_not_empty",
    // Refusals of the request as a whole.
    /// The cluster has `deletion_protection` set.
    DeletionProtected = "deletion_protected",
    /// A Kafka cluster cannot shrink below its metadata quorum.
    BelowQuorum = "below_quorum",
    /// The brokers to remove still hold partitions (resize with `drain`).
    BrokersHoldPartitions = "brokers_hold_partitions",
    // Why an operation failed (`Operation.error.code`; `below_quorum` and
    // `brokers_hold_partitions` too).
    /// No ready node had room for a workload for longer than the capacity grace.
    InsufficientCapacity = "insufficient_capacity",
    /// The cluster did not converge within the operation timeout.
    TimedOut = "timed_out",
    /// A newer spec replaced the one the operation was converging on.
    Superseded = "superseded",
    /// The call needs a Kafka cluster.
    NotAKafkaCluster = "not_a_kafka_cluster",
    /// The call needs a Spark cluster.
    NotASparkCluster = "not_a_spark_cluster",
    /// The Kafka cluster has no SCRAM authentication (`spec.security.authentication`), so it
    /// has no Kafka users.
    KafkaUsersUnsupported = "kafka_users_unsupported",
    /// Kafka refused the change under its policy.
    PolicyViolation = "policy_violation",
    /// A replication link cannot log in to its source (SASL without a SCRAM mechanism).
    LinkSourceUnsupported = "link_source_unsupported",
    /// The job's SQL does not compile; `sql_code`, `line` and `column` say where.
    InvalidSql = "invalid_sql",
    // Failures of what the control plane depends on.
    /// The Kafka cluster cannot be reached or did not answer in time.
    ClusterUnreachable = "cluster_unreachable",
    /// Kafka answered with an error; the detail names it.
    KafkaError = "kafka_error",
    /// The Spark cluster's executor driver cannot be reached.
    DriverUnavailable = "driver_unavailable",
    /// The executor driver answered with an error.
    DriverError = "driver_error",
    /// Too many requests (failed logins of one username, or every password-hashing slot busy);
    /// retry after the `Retry-After` seconds.
    RateLimited = "rate_limited",
    /// The control plane cannot reach its database; retry later.
    Unavailable = "unavailable",
    /// A fault of the control plane; its log has the details.
    Internal = "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Liveness of the control-plane process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// The control plane's version.
    pub version: String,
}

/// Readiness of the control plane: whether it can serve requests that need the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok`, or why the database check failed.
    pub database: String,
}

/// Resources a node offers to workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCapacity {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk available to the node's data directory, in bytes.
    pub disk_bytes: u64,
}

/// What a node agent sends when it (re)starts: `PUT /v1/agent/nodes/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeRegistration {
    /// Unique node name, a DNS label (lowercase letters, digits, `-`; at most 63 characters).
    pub name: String,
    /// The failure domain (rack, zone or host group) the node is in; replicas are spread across them.
    pub fault_domain: u32,
    /// Host or IP address at which the node's workloads are reachable.
    pub address: String,
    /// The agent's version.
    pub agent_version: String,
    /// Resources the node offers.
    pub capacity: NodeCapacity,
}

/// What a node agent sends periodically: `POST /v1/agent/nodes/{id}/heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeHeartbeat {
    /// Resources the node offers now (disk shrinks as data grows).
    pub capacity: NodeCapacity,
    /// The generation of the last workload assignment the agent applied (0: none yet).
    #[serde(default)]
    pub applied_generation: u64,
    /// Every workload the agent runs or is still stopping.
    #[serde(default)]
    pub workloads: Vec<crate::workload::WorkloadStatus>,
}

/// Whether a node is heartbeating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum NodeStatus {
    /// The last heartbeat is younger than the control plane's node timeout.
    Ready,
    /// No heartbeat within the node timeout: the agent is down, hung or cut off.
    NotReady,
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeStatus::Ready => "Ready",
            NodeStatus::NotReady => "NotReady",
        })
    }
}

/// A node agent's own credential (`POST /v1/agent/nodes/{id}/credential`), shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCredential {
    /// The bearer token of the node's agent calls.
    pub credential: String,
}

impl std::fmt::Debug for NodeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCredential(..)")
    }
}

/// A registered node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// The node's identity, chosen by its agent on first start and kept in its data directory.
    pub id: Uuid,
    /// Unique node name.
    pub name: String,
    /// The node's failure domain.
    pub fault_domain: u32,
    /// Host or IP address of the node.
    pub address: String,
    /// The agent's version.
    pub agent_version: String,
    /// Resources the node offers.
    pub capacity: NodeCapacity,
    /// `Ready` while heartbeats arrive within the node timeout.
    pub status: NodeStatus,
    /// When the node first registered.
    pub registered_at: DateTime<Utc>,
    /// When the last heartbeat (or registration) arrived.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Seconds since the last heartbeat, by the control plane's database clock.
    pub heartbeat_age_seconds: f64,
    /// How many times the agent has registered (one per agent start).
    pub incarnation: u64,
}

/// A page of nodes, ordered by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// The nodes on this page.
    pub items: Vec<Node>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_round_trips_and_omits_empty_fields() {
        let problem = Problem {
            problem_type: about_blank(),
            title: "Not found".into(),
            status: 404,
            detail: None,
            code: ErrorCode::NotFound,
            field: None,
            sql_code: None,
            line: None,
            column: None,
        };
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Not found", "status": 404, "code": "not_found"})
        );
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, problem);
    }

    #[test]
    fn error_codes_serialize_as_their_wire_names() {
        for code in ErrorCode::ALL.iter().copied().chain([ErrorCode::Unknown]) {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::json!(code.as_str()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code);
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
        }
        let unknown: ErrorCode = serde_json::from_str("\"added_later\"").unwrap();
        assert_eq!(unknown, ErrorCode::Unknown);
        assert_eq!(ErrorCode::from_wire("added_later"), ErrorCode::Unknown);
        assert!(!ErrorCode::ALL.contains(&ErrorCode::Unknown));
    }

    #[test]
    fn node_status_serializes_as_its_name() {
        assert_eq!(
            serde_json::to_string(&NodeStatus::NotReady).unwrap(),
            "\"NotReady\""
        );
        assert_eq!(NodeStatus::Ready.to_string(), "Ready");
    }
}
