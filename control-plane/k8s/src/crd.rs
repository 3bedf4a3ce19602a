//! The custom resources: what people `kubectl apply` instead of calling REST.
//!
//! Each mirrors a REST resource field for field, in Kubernetes' camelCase (`nodePools`,
//! `storageGiB`), and converts to the REST spec the service layer takes, so the operator and
//! REST share one set of rules. A custom resource's namespace is the hdi workspace and its name
//! the resource's name there. Status follows the kstatus contract Flux and Argo CD read:
//! `observedGeneration`, and conditions `Ready`, `Reconciling` and `Stalled` (plus
//! domain-specific ones such as `ScaleDownBlocked`), with counts instead of per-pod maps so a
//! status never grows with the cluster.
//!
//! Update semantics per field (documented in each field's description): `kind` and `security`
//! are immutable (a CEL rule refuses the change at the API server), pools resize in place
//! (Kafka scale-in drains first), other changes are applied by the reconciler.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `HdiCluster`: a Kafka or Spark cluster.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hdi.io",
    version = "v1alpha1",
    kind = "HdiCluster",
    plural = "hdiclusters",
    shortname = "hdic",
    namespaced,
    status = "HdiClusterStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Bootstrap","type":"string","priority":1,"jsonPath":".status.endpoints.bootstrapServers"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = r#"self.spec.kind == 'kafka' ? self.spec.nodePools.all(p, p.role == 'broker') : self.spec.nodePools.all(p, p.role == 'executor')"#
)]
#[serde(rename_all = "camelCase")]
pub struct HdiClusterSpec {
    /// `kafka` or `spark`. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "kind cannot change"}]))]
    pub kind: ClusterKind,
    /// A version from `GET /v1/capabilities` (default: the kind's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The node pools: exactly one, of role `broker` (Kafka) or `executor` (Spark). Resizing a
    /// pool is applied in place; a Kafka pool shrinks only after its brokers are drained
    /// (`drain: true`) or empty.
    #[schemars(
        length(min = 1, max = 1),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub node_pools: Vec<NodePool>,
    /// Cluster-wide settings (reserved; must be empty today).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// While on, deleting the cluster is refused (the custom resource stays, its status says
    /// why).
    #[serde(default)]
    pub deletion_protection: bool,
    /// Scale-in of a Kafka pool whose brokers hold partitions: move them away first instead of
    /// refusing the resize.
    #[serde(default)]
    pub drain: bool,
    /// Kafka only: client security (absent: TLS, SCRAM-SHA-512 and OAUTHBEARER, ACLs).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "security cannot change"}]))]
    pub security: Option<KafkaSecurity>,
}

/// What a cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    /// A replicated log of brokers speaking the Kafka protocol.
    Kafka,
    /// A driver and executors running streaming SQL.
    Spark,
}

/// What the nodes of a pool do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// Kafka brokers.
    Broker,
    /// Spark executors (the driver is implicit).
    Executor,
}

/// A group of identical workloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Pool name, a DNS label (e.g. `brokers`).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// `broker` (Kafka) or `executor` (Spark).
    pub role: PoolRole,
    /// How many workloads (pods).
    #[schemars(range(min = 1, max = 100))]
    pub replicas: u32,
    /// A size from `GET /v1/capabilities` (default `small`): the pods' requests and limits.
    #[serde(default = "default_size")]
    pub size: String,
    /// Disk per workload in GiB (default 10): the pods' volume claims.
    #[serde(default = "default_storage", rename = "storageGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub storage_gib: u32,
}

fn default_size() -> String {
    "small".to_owned()
}

fn default_storage() -> u32 {
    10
}

/// A Kafka cluster's client security.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSecurity {
    /// Encrypt client connections with TLS (default on).
    #[serde(default = "yes")]
    pub tls: bool,
    /// SASL mechanisms (`SCRAM-SHA-512`, `SCRAM-SHA-256`, `OAUTHBEARER`); empty: none.
    #[serde(default = "default_mechanisms")]
    pub authentication: Vec<String>,
    /// Enforce ACLs (default on; needs authentication).
    #[serde(default = "yes")]
    pub authorization: bool,
}

fn yes() -> bool {
    true
}

fn default_mechanisms() -> Vec<String> {
    vec!["SCRAM-SHA-512".to_owned(), "OAUTHBEARER".to_owned()]
}

/// A condition in `metav1.Condition`'s shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling`, `Stalled`, `ScaleDownBlocked`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The generation the condition was computed from.
    #[serde(default)]
    pub observed_generation: i64,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// A CamelCase reason.
    pub reason: String,
    /// For people.
    #[serde(default)]
    pub message: String,
}

/// Desired and ready counts of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Pool name (`driver` for a Spark cluster's driver).
    pub name: String,
    /// Workloads wanted.
    pub desired: u32,
    /// Workloads running.
    pub ready: u32,
}

/// Where clients reach a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Kafka bootstrap servers, `host:port,...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// The executor driver's job API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_api: Option<String>,
    /// Kafka's `security.protocol` for the bootstrap servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<String>,
    /// The Secret (in the custom resource's namespace) holding the cluster's CA certificate as
    /// `ca.crt`, for clients' `ssl.ca.location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

/// The operation hdi runs for the resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    /// Its id (`hdictl operation show ID`).
    pub id: String,
    /// `create`, `update`, `delete`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `Running`, `Succeeded` or `Failed`.
    pub state: String,
    /// Its latest step or error, for people.
    #[serde(default)]
    pub message: String,
}

/// Observed state of an `HdiCluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdiClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Creating`, `Running`, `Resizing`, `Deleting`, `Failed` (REST's words).
    #[serde(default)]
    pub state: String,
    /// kstatus conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The hdi cluster's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Desired and ready counts per pool.
    #[serde(default)]
    pub node_pools: Vec<PoolStatus>,
    /// Client endpoints.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// The latest operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<LastOperation>,
}

/// `HdiTopic`: a topic of a Kafka cluster of the same namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hdi.io",
    version = "v1alpha1",
    kind = "HdiTopic",
    plural = "hditopics",
    shortname = "hdit",
    namespaced,
    status = "HdiTopicStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".spec.partitions"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HdiTopicSpec {
    /// The Kafka cluster (its name in this namespace's workspace). Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "clusterRef cannot change"}]))]
    pub cluster_ref: String,
    /// The topic's name in Kafka (default: the resource's name). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "topicName cannot change"}]))]
    pub topic_name: Option<String>,
    /// Partitions (1-10000); can grow, never shrink.
    #[schemars(range(min = 1, max = 10000))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= oldSelf", "message": "partitions cannot shrink"}]))]
    pub partitions: u32,
    /// Replication factor (at most the brokers). Immutable.
    #[schemars(range(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "replicationFactor cannot change"}]))]
    pub replication_factor: u32,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...), applied in place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Observed state of an `HdiTopic`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdiTopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// kstatus conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The topic's id in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions as Kafka reports them.
    #[serde(default)]
    pub partitions: u32,
}

/// `HdiJob`: a streaming SQL job of a Spark cluster of the same namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hdi.io",
    version = "v1alpha1",
    kind = "HdiJob",
    plural = "hdijobs",
    shortname = "hdij",
    namespaced,
    status = "HdiJobStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Batches","type":"integer","jsonPath":".status.batchesCommitted"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HdiJobSpec {
    /// The Spark cluster that runs it. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "clusterRef cannot change"}]))]
    pub cluster_ref: String,
    /// The job's SQL (at most 256 KiB). Immutable: a changed query is a new job (delete and
    /// apply), as its checkpoints belong to the old one.
    #[schemars(length(min = 1, max = 262144))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "sql cannot change: create a new job"}]))]
    pub sql: String,
    /// The Kafka cluster its Kafka tables read and write (a cluster of this namespace).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "kafkaClusterRef cannot change"}]))]
    pub kafka_cluster_ref: Option<String>,
}

/// Observed state of an `HdiJob`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdiJobStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// kstatus conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The job's state as its driver reports it (`Pending`, `Running`, `Failed`, ...).
    #[serde(default)]
    pub state: String,
    /// The hdi job's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Micro-batches committed.
    #[serde(default)]
    pub batches_committed: u64,
}

/// `HdiReplicationLink`: a source Kafka cluster mirrored into a target of the same namespace.
/// Operations are asked for with the annotation `hdi.io/action` (`pause`, `resume`, `promote`,
/// `failover`, `reverse`), run once.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hdi.io",
    version = "v1alpha1",
    kind = "HdiReplicationLink",
    plural = "hdireplicationlinks",
    shortname = "hdil",
    namespaced,
    status = "HdiReplicationLinkStatus",
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.sourceCluster"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetCluster"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HdiReplicationLinkSpec {
    /// The Kafka cluster copied from. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "sourceCluster cannot change"}]))]
    pub source_cluster: String,
    /// The Kafka cluster holding the mirror topics. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "targetCluster cannot change"}]))]
    pub target_cluster: String,
    /// Topics mirrored: literal names or `prefix*` (at least one).
    #[schemars(length(min = 1))]
    pub topics: Vec<String>,
    /// Topics never mirrored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_exclude: Vec<String>,
    /// Consumer groups whose offsets are copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Groups never copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_exclude: Vec<String>,
}

/// Observed state of an `HdiReplicationLink`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdiReplicationLinkStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// kstatus conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `mirroring`, `paused`, `promoting`, ... (REST's words).
    #[serde(default)]
    pub state: String,
    /// The largest lag in records over the link's partitions (the RPO estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<i64>,
    /// The last operation an `hdi.io/action` annotation asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<LastOperation>,
}

impl HdiClusterSpec {
    /// The REST spec the service layer takes.
    ///
    /// # Errors
    /// A mechanism name hdi does not know, naming the field.
    pub fn to_rest(&self) -> Result<hdi_api::ClusterSpec, String> {
        let security = match &self.security {
            None => None,
            Some(s) => {
                let mut authentication = Vec::new();
                for (i, m) in s.authentication.iter().enumerate() {
                    authentication.push(match m.as_str() {
                        "SCRAM-SHA-512" => hdi_api::KafkaMechanism::ScramSha512,
                        "SCRAM-SHA-256" => hdi_api::KafkaMechanism::ScramSha256,
                        "OAUTHBEARER" => hdi_api::KafkaMechanism::Oauthbearer,
                        other => {
                            return Err(format!(
                                "spec.security.authentication[{i}]: unknown mechanism {other:?} \
                                 (SCRAM-SHA-512, SCRAM-SHA-256 or OAUTHBEARER)"
                            ));
                        }
                    });
                }
                Some(hdi_api::KafkaSecurity {
                    tls: s.tls,
                    authentication,
                    authorization: s.authorization,
                })
            }
        };
        Ok(hdi_api::ClusterSpec {
            kind: match self.kind {
                ClusterKind::Kafka => hdi_api::ClusterKind::Kafka,
                ClusterKind::Spark => hdi_api::ClusterKind::Spark,
            },
            version: self.version.clone(),
            node_pools: self
                .node_pools
                .iter()
                .map(|p| hdi_api::NodePool {
                    name: p.name.clone(),
                    role: match p.role {
                        PoolRole::Broker => hdi_api::PoolRole::Broker,
                        PoolRole::Executor => hdi_api::PoolRole::Executor,
                    },
                    replicas: p.replicas,
                    size: p.size.clone(),
                    storage_gib: p.storage_gib,
                })
                .collect(),
            config: self.config.clone(),
            deletion_protection: self.deletion_protection,
            security,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt as _;

    #[test]
    fn cluster_spec_converts_to_rest() -> Result<(), String> {
        let spec: HdiClusterSpec = serde_json::from_value(serde_json::json!({
            "kind": "kafka",
            "nodePools": [{"name": "brokers", "role": "broker", "replicas": 3, "storageGiB": 20}],
            "security": {"tls": true, "authentication": ["SCRAM-SHA-512"], "authorization": true}
        }))
        .map_err(|e| e.to_string())?;
        let rest = spec.to_rest()?;
        assert_eq!(rest.kind, hdi_api::ClusterKind::Kafka);
        assert_eq!(rest.node_pools[0].storage_gib, 20);
        assert_eq!(rest.node_pools[0].size, "small");
        assert_eq!(
            rest.security.map(|s| s.authentication),
            Some(vec![hdi_api::KafkaMechanism::ScramSha512])
        );
        let bad = HdiClusterSpec {
            security: Some(KafkaSecurity {
                tls: true,
                authentication: vec!["GSSAPI".to_owned()],
                authorization: false,
            }),
            ..spec
        };
        let error = bad.to_rest().err().unwrap_or_default();
        assert!(error.contains("spec.security.authentication[0]"), "{error}");
        Ok(())
    }

    #[test]
    fn crds_carry_the_validation_rules() -> Result<(), serde_json::Error> {
        let crd = serde_json::to_string(&HdiCluster::crd())?;
        assert!(crd.contains("kind cannot change"), "{crd}");
        assert!(
            crd.contains(r#""x-kubernetes-list-map-keys":["name"]"#),
            "{crd}"
        );
        let topic = serde_json::to_string(&HdiTopic::crd())?;
        assert!(topic.contains("partitions cannot shrink"), "{topic}");
        Ok(())
    }
}
