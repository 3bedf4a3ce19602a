//! `kafka_admin`: the control plane's Kafka admin client.
//!
//! This module owns everything the control plane says to the Kafka clusters it provisions over
//! the Kafka protocol: probing readiness (`Metadata`), topic management (`CreateTopics`,
//! `DeleteTopics`, `CreatePartitions`, `DescribeConfigs`, `IncrementalAlterConfigs`) and moving
//! partitions when brokers are added or drained (`AlterPartitionReassignments`,
//! `ListPartitionReassignments`, planned by the pure [`crate::reconcile::rebalance`]), cluster
//! links (the cluster-wide and per-broker configs of the broker resource, and a write probe
//! that tells a read-only mirror topic from a writable one without writing). Kafka wire
//! types (`kafka-protocol`) stay inside this module; callers see plain Rust types and one error
//! type, [`AdminError`], whose Kafka `code`/`name` are stable so that they can be mapped to HTTP
//! problems. Consumer groups and partition offsets (`ListGroups`, `FindCoordinator`,
//! `DescribeGroups`, `OffsetFetch`, `OffsetCommit`, `DeleteGroups`, `ListOffsets`) are in
//! [`groups`].
//!
//! Wire details:
//! - Framing, correlation ids and checked decoding are `hdi-kafka-client`'s async `Connection`.
//!   Nothing read from the network is trusted: frame sizes are bounded (100 MiB), every decode
//!   error is an [`AdminError::Protocol`], nothing panics.
//! - Fixed API versions, all within what `hdi-broker` advertises (`handlers/mod.rs`): Metadata
//!   v12, CreateTopics v7, DeleteTopics v6, CreatePartitions v3, DescribeConfigs v4,
//!   IncrementalAlterConfigs v1, AlterPartitionReassignments v0, ListPartitionReassignments v0,
//!   Produce v8 (the write probe only).
//!   (No ApiVersions round trip: a broker that does not support a version closes the
//!   connection, which surfaces as [`AdminError::Protocol`].)
//! - Read-only calls (Metadata, DescribeConfigs) go to the first reachable bootstrap address,
//!   tried in order. Admin calls go to the controller named by Metadata's `controller_id` (cached,
//!   refreshed on `NOT_CONTROLLER` or when it cannot be reached, then retried; if the controller's
//!   advertised address cannot be reached at all the bootstrap broker is used, which `hdi-broker`
//!   and KRaft-mode Kafka forward to the controller).
//! - One connection per broker address is kept and reused; calls to the same broker are
//!   serialised on it. A connection that failed or timed out is dropped.
//! - Every public call has one deadline, `timeout` from its start, covering connection set-up,
//!   controller look-up, retries and the response. Connection failures (refused, unreachable,
//!   connect timed out) on every candidate address are [`AdminError::Connect`]; a request that got
//!   no answer in time is [`AdminError::Timeout`].

mod groups;
mod records;
mod security;

pub use groups::{
    CommittedOffset, EARLIEST, GroupDescription, GroupMember, LATEST, ListedGroup, OffsetAnswer,
    TopicPartition, decode_assignment,
};
pub use records::{FetchedPartition, FetchedRecord, NewRecord};
pub use security::{AclBinding, AdminSecurity, QuotaChange, UserQuotas};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hdi_kafka_client::codes::NOT_CONTROLLER;
use hdi_kafka_client::{Connection, Request};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

pub use hdi_kafka_client::codes::error_name;

/// Metadata v12: nullable topic list (null = all topics), topic ids, cluster id, controller id.
const METADATA_VERSION: i16 = 12;
/// CreateTopics v7: topic ids in the answer.
const CREATE_TOPICS_VERSION: i16 = 7;
/// DeleteTopics v6: topics by name or id, error messages.
const DELETE_TOPICS_VERSION: i16 = 6;
/// CreatePartitions v3 (flexible).
const CREATE_PARTITIONS_VERSION: i16 = 3;
/// DescribeConfigs v4 (flexible).
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
/// IncrementalAlterConfigs v1 (flexible).
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
/// DescribeConfigs `config_source` of a value set on the topic itself (`TOPIC_CONFIG`).
const SOURCE_TOPIC_CONFIG: i8 = 1;
/// The only version `hdi-broker` accepts.
const ALTER_REASSIGNMENTS_VERSION: i16 = 0;
/// The only version there is.
const LIST_REASSIGNMENTS_VERSION: i16 = 0;

/// `resource_type` of a topic in DescribeConfigs.
const RESOURCE_TOPIC: i8 = 2;
/// `resource_type` of a broker (named by its id) or of the whole cluster (named `""`).
const RESOURCE_BROKER: i8 = 4;
/// Produce v8, for the write probe of [`KafkaAdmin::topic_writable`].
const PRODUCE_VERSION: i16 = 8;
/// The largest response frame accepted (the broker's own request limit is 100 MiB too).
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// How often an admin request is sent again after NOT_CONTROLLER or an unreachable controller.
const CONTROLLER_ATTEMPTS: usize = 3;

/// What went wrong in a [`KafkaAdmin`] call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No connection could be made to any of `addrs`.
    #[error("cannot connect to Kafka at {}: {reason}", addrs.join(", "))]
    Connect {
        /// The addresses tried, in order.
        addrs: Vec<String>,
        /// Why the last attempt(s) failed, for people.
        reason: String,
    },
    /// The call did not complete within the client's timeout.
    #[error("{api}: no answer from Kafka within {timeout:?}")]
    Timeout {
        /// The Kafka API being called.
        api: &'static str,
        /// The per-call timeout.
        timeout: Duration,
    },
    /// The peer broke the protocol: a closed connection, an oversized or undecodable frame, a
    /// mismatched correlation id, an answer missing what was asked for.
    #[error("Kafka protocol error: {0}")]
    Protocol(String),
    /// Kafka answered with an error code.
    #[error("{api}: Kafka error {name} ({code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// The Kafka API that failed (`"CreateTopics"`).
        api: &'static str,
        /// The Kafka error code (`36`).
        code: i16,
        /// The Kafka error name (`"TOPIC_ALREADY_EXISTS"`), see [`error_name`].
        name: String,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
}

impl AdminError {
    fn kafka(api: &'static str, code: i16, message: Option<&StrBytes>) -> AdminError {
        AdminError::Kafka {
            api,
            code,
            name: error_name(code),
            message: message.map(|m| m.as_str().to_owned()),
        }
    }

    /// The Kafka error name when this is a [`AdminError::Kafka`].
    pub fn kafka_name(&self) -> Option<&str> {
        match self {
            AdminError::Kafka { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// A Kafka error code with its name, where a result carries one instead of failing the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaErrorCode {
    /// The code (`3`).
    pub code: i16,
    /// Its name (`"UNKNOWN_TOPIC_OR_PARTITION"`).
    pub name: String,
}

impl KafkaErrorCode {
    fn from_code(code: i16) -> Option<KafkaErrorCode> {
        (code != 0).then(|| KafkaErrorCode {
            code,
            name: error_name(code),
        })
    }
}

/// The cluster as Metadata describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster id (`None` before the cluster has one).
    pub cluster_id: Option<String>,
    /// The controller's broker id, -1 when unknown.
    pub controller_id: i32,
    /// Live brokers, by id.
    pub brokers: Vec<BrokerInfo>,
    /// All topics, by name.
    pub topics: Vec<TopicInfo>,
}

impl ClusterMetadata {
    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// A broker by id.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }
}

/// One broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Broker id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port` (IPv6 hosts in brackets), as a connection address.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Topic id (`None` if the broker sent the nil id).
    pub topic_id: Option<uuid::Uuid>,
    /// Whether it is an internal topic.
    pub internal: bool,
    /// The topic-level error Metadata reported, if any.
    pub error: Option<KafkaErrorCode>,
    /// Partitions, by index.
    pub partitions: Vec<PartitionInfo>,
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, -1 when there is none.
    pub leader: i32,
    /// Replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas on brokers that are offline.
    pub offline: Vec<i32>,
}

/// One config of a topic, as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfigEntry {
    /// Key (`retention.ms`).
    pub name: String,
    /// Value in force.
    pub value: String,
    /// Set on the topic itself (`TOPIC_CONFIG`), not a broker or built-in default.
    pub explicit: bool,
}

/// A reassignment in progress: `(topic, partition, replicas, adding, removing)`.
pub type OngoingReassignment = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// A broker address's connection, `None` until connected or after a failure.
type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// An async Kafka admin client. Cheap to share (`&self` everywhere); see the module docs for
/// routing, connections and timeouts.
pub struct KafkaAdmin {
    bootstrap: Vec<String>,
    timeout: Duration,
    client_id: String,
    /// One connection slot per broker address.
    connections: std::sync::Mutex<HashMap<String, Slot>>,
    /// The controller's address from the last Metadata, until it proves wrong.
    controller: std::sync::Mutex<Option<String>>,
    /// TLS and SASL for secured clusters.
    security: Option<AdminSecurity>,
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("bootstrap", &self.bootstrap)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where an admin request goes.
enum Target {
    Address(String),
    Bootstrap,
}

impl KafkaAdmin {
    /// A client for the cluster reachable at any of `bootstrap` (`host:port`, tried in order);
    /// every call must complete within `timeout`. Connects lazily.
    pub fn new(bootstrap: Vec<String>, timeout: Duration) -> KafkaAdmin {
        KafkaAdmin {
            bootstrap,
            timeout,
            client_id: "hdi-control-plane".to_owned(),
            connections: std::sync::Mutex::new(HashMap::new()),
            controller: std::sync::Mutex::new(None),
            security: None,
        }
    }

    /// The same client speaking TLS and SASL as `security` says (a secured cluster).
    pub fn with_security(mut self, security: Option<AdminSecurity>) -> KafkaAdmin {
        self.security = security;
        self
    }

    async fn open(&self, addr: &str) -> Result<Connection, String> {
        match &self.security {
            None => Connection::connect(addr, &self.client_id, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| e.to_string()),
            Some(security) => {
                let security = security.for_address(addr)?;
                Connection::connect_secure(addr, &self.client_id, MAX_RESPONSE_BYTES, &security)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The whole cluster: brokers, controller and all topics with their partitions (sorted by
    /// broker id, topic name and partition index).
    ///
    /// # Errors
    /// [`AdminError::Connect`] when no bootstrap address answers, [`AdminError::Timeout`],
    /// [`AdminError::Protocol`], or [`AdminError::Kafka`] for a top-level Metadata error.
    pub async fn metadata(&self) -> Result<ClusterMetadata, AdminError> {
        let deadline = self.deadline();
        self.metadata_until(deadline).await
    }

    /// Creates a topic with `partitions` partitions of `replication_factor` replicas and the
    /// given topic configs (e.g. `("retention.ms", "3600000")`).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; Kafka refusals such as `TOPIC_ALREADY_EXISTS`,
    /// `INVALID_REPLICATION_FACTOR`, `INVALID_PARTITIONS`, `INVALID_CONFIG`,
    /// `INVALID_TOPIC_EXCEPTION` are [`AdminError::Kafka`].
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: Vec<(String, String)>,
    ) -> Result<(), AdminError> {
        const API: &str = "CreateTopics";
        let deadline = self.deadline();
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .into_iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k))
                            .with_value(Some(StrBytes::from_string(v)))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(remaining_ms(deadline));
        let response: CreateTopicsResponse = self
            .send_controller(API, &request, CREATE_TOPICS_VERSION, deadline, |r| {
                r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER)
            })
            .await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())
    }

    /// Deletes a topic.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; `UNKNOWN_TOPIC_OR_PARTITION` when there is no such topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        const API: &str = "DeleteTopics";
        let deadline = self.deadline();
        let request = DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name))),
            ])
            .with_timeout_ms(remaining_ms(deadline));
        let response: DeleteTopicsResponse = self
            .send_controller(API, &request, DELETE_TOPICS_VERSION, deadline, |r| {
                r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER)
            })
            .await?;
        let result = response
            .responses
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())
    }

    /// Grows a topic to `total` partitions.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; `INVALID_PARTITIONS` when `total` is not more than now,
    /// `UNKNOWN_TOPIC_OR_PARTITION` when there is no such topic.
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<(), AdminError> {
        const API: &str = "CreatePartitions";
        let deadline = self.deadline();
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(total)
                    // The default is an empty list, which means "explicit assignments".
                    .with_assignments(None),
            ])
            .with_timeout_ms(remaining_ms(deadline));
        let response: CreatePartitionsResponse = self
            .send_controller(API, &request, CREATE_PARTITIONS_VERSION, deadline, |r| {
                r.results.iter().any(|t| t.error_code == NOT_CONTROLLER)
            })
            .await?;
        let result = response
            .results
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())
    }

    /// A topic's configs sorted by name: the ones set on the topic and the defaults in force
    /// (configs without a value, such as sensitive ones, are left out).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; `UNKNOWN_TOPIC_OR_PARTITION` when there is no such topic.
    pub async fn describe_topic_configs(
        &self,
        name: &str,
    ) -> Result<Vec<TopicConfigEntry>, AdminError> {
        const API: &str = "DescribeConfigs";
        let deadline = self.deadline();
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configuration_keys(None),
        ]);
        let response = self
            .send_bootstrap(API, &request, DESCRIBE_CONFIGS_VERSION, deadline, true)
            .await?;
        let result = response
            .results
            .iter()
            .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == name)
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())?;
        let mut configs: Vec<TopicConfigEntry> = result
            .configs
            .iter()
            .filter_map(|c| {
                c.value.as_ref().map(|v| TopicConfigEntry {
                    name: c.name.as_str().to_owned(),
                    value: v.as_str().to_owned(),
                    explicit: c.config_source == SOURCE_TOPIC_CONFIG,
                })
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(configs)
    }

    /// Sets (`Some(value)`) or removes (`None`, back to the default) configs of a topic, leaving
    /// the others as they are.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; `UNKNOWN_TOPIC_OR_PARTITION` when there is no such topic,
    /// `INVALID_CONFIG` for an unknown key or a bad value.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<(), AdminError> {
        self.alter_configs(RESOURCE_TOPIC, name, changes).await
    }

    /// Sets or deletes configs of the resource `(resource_type, name)` (IncrementalAlterConfigs
    /// to the controller).
    async fn alter_configs(
        &self,
        resource_type: i8,
        name: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<(), AdminError> {
        const API: &str = "IncrementalAlterConfigs";
        let deadline = self.deadline();
        let configs = changes
            .into_iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key))
                    // 0 = SET, 1 = DELETE.
                    .with_config_operation(if value.is_some() { 0 } else { 1 })
                    .with_value(value.map(StrBytes::from_string))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(configs),
        ]);
        let response: IncrementalAlterConfigsResponse = self
            .send_controller(
                API,
                &request,
                INCREMENTAL_ALTER_CONFIGS_VERSION,
                deadline,
                |r| r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER),
            )
            .await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == name)
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())
    }

    /// The configs of a broker resource: the cluster-wide ones (`name` empty) or those of the
    /// broker with that id, asked of `address` when given (Kafka answers a broker's resource
    /// only on that broker), else of the bootstrap servers. `(key, value)` pairs as the broker
    /// sends them (sensitive values are `None`).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`], or the resource's error.
    pub async fn describe_broker_configs(
        &self,
        name: &str,
        address: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, AdminError> {
        const API: &str = "DescribeConfigs";
        let deadline = self.deadline();
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configuration_keys(None),
        ]);
        let response = match address {
            Some(address) => {
                self.send_to(
                    API,
                    address,
                    &request,
                    DESCRIBE_CONFIGS_VERSION,
                    deadline,
                    true,
                )
                .await?
            }
            None => {
                self.send_bootstrap(API, &request, DESCRIBE_CONFIGS_VERSION, deadline, true)
                    .await?
            }
        };
        let result = response
            .results
            .iter()
            .find(|r| r.resource_type == RESOURCE_BROKER && r.resource_name.as_str() == name)
            .ok_or_else(|| missing(API, name))?;
        check(API, result.error_code, result.error_message.as_ref())?;
        Ok(result
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.as_str().to_owned(),
                    c.value.as_ref().map(|v| v.as_str().to_owned()),
                )
            })
            .collect())
    }

    /// Sets (`Some(value)`) or deletes (`None`) cluster-wide configs (the broker resource named
    /// `""`), leaving the others as they are.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the cluster's refusal (`INVALID_CONFIG`,
    /// `POLICY_VIOLATION`) as [`AdminError::Kafka`].
    pub async fn alter_cluster_configs(
        &self,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<(), AdminError> {
        self.alter_configs(RESOURCE_BROKER, "", changes).await
    }

    /// Whether `topic` takes writes, probed without writing anything: a Produce with no records
    /// and an invalid `acks` (5) is answered `INVALID_TOPIC_EXCEPTION` by a read-only mirror
    /// topic (the mirror check comes first) and `INVALID_REQUIRED_ACKS` by a writable one.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; any other answer is [`AdminError::Kafka`].
    pub async fn topic_writable(&self, topic: &str) -> Result<bool, AdminError> {
        const API: &str = "Produce";
        const INVALID_TOPIC_EXCEPTION: i16 = 17;
        const INVALID_REQUIRED_ACKS: i16 = 21;
        let deadline = self.deadline();
        let request = ProduceRequest::default()
            .with_acks(5)
            .with_timeout_ms(remaining_ms(deadline))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(None),
                    ]),
            ]);
        let response = self
            .send_bootstrap(API, &request, PRODUCE_VERSION, deadline, true)
            .await?;
        let code = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .map(|p| p.error_code)
            .next()
            .ok_or_else(|| missing(API, topic))?;
        match code {
            INVALID_TOPIC_EXCEPTION => Ok(false),
            INVALID_REQUIRED_ACKS | 0 => Ok(true),
            other => Err(AdminError::kafka(API, other, None)),
        }
    }

    /// Starts moving partitions: `(topic, partition, target replicas)`, the first replica being
    /// the preferred leader (the shape [`crate::reconcile::rebalance::plan_rebalance`]
    /// returns). Returns the accepted `(topic, partition)`s, sorted. The broker proposes each partition on its own, so when one
    /// is refused the others may still have been accepted; the error says which failed and how
    /// many were accepted.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; a top-level or per-partition refusal (e.g.
    /// `INVALID_REPLICA_ASSIGNMENT`, `UNKNOWN_TOPIC_OR_PARTITION`) is [`AdminError::Kafka`]
    /// naming the first failed partition in its message.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<(String, i32, Vec<i32>)>,
    ) -> Result<Vec<(String, i32)>, AdminError> {
        const API: &str = "AlterPartitionReassignments";
        let deadline = self.deadline();
        if reassignments.is_empty() {
            return Ok(Vec::new());
        }
        let mut asked: Vec<(String, i32)> = reassignments
            .iter()
            .map(|(t, p, _)| (t.clone(), *p))
            .collect();
        asked.sort();
        let mut by_topic: std::collections::BTreeMap<String, Vec<ReassignablePartition>> =
            std::collections::BTreeMap::new();
        for (topic, partition, replicas) in reassignments {
            by_topic.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(partition)
                    .with_replicas(Some(replicas.into_iter().map(BrokerId).collect())),
            );
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(remaining_ms(deadline))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(name, partitions)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(&name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response: AlterPartitionReassignmentsResponse = self
            .send_controller(API, &request, ALTER_REASSIGNMENTS_VERSION, deadline, |r| {
                r.error_code == NOT_CONTROLLER
            })
            .await?;
        check(API, response.error_code, response.error_message.as_ref())?;
        let mut accepted = Vec::new();
        let mut failed = None;
        for topic in &response.responses {
            for p in &topic.partitions {
                let key = (topic.name.0.as_str().to_owned(), p.partition_index);
                if p.error_code == 0 {
                    accepted.push(key);
                } else if failed.is_none() {
                    failed = Some((key, p.error_code, p.error_message.clone()));
                }
            }
        }
        accepted.sort();
        if let Some(((topic, partition), code, message)) = failed {
            let others = accepted.len();
            return Err(AdminError::Kafka {
                api: API,
                code,
                name: error_name(code),
                message: Some(format!(
                    "{topic}-{partition}: {} ({others} other partition(s) accepted)",
                    message.as_ref().map_or("refused", |m| m.as_str())
                )),
            });
        }
        if let Some((t, p)) = asked.iter().find(|k| accepted.binary_search(k).is_err()) {
            return Err(AdminError::Protocol(format!(
                "{API}: no answer for {t}-{p} in the response"
            )));
        }
        Ok(accepted)
    }

    /// The reassignments in progress: `(topic, partition, replicas, adding, removing)`, sorted.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`].
    pub async fn list_partition_reassignments(
        &self,
    ) -> Result<Vec<OngoingReassignment>, AdminError> {
        const API: &str = "ListPartitionReassignments";
        let deadline = self.deadline();
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(remaining_ms(deadline))
            .with_topics(None);
        let response = self
            .send_controller(API, &request, LIST_REASSIGNMENTS_VERSION, deadline, |r| {
                r.error_code == NOT_CONTROLLER
            })
            .await?;
        check(API, response.error_code, response.error_message.as_ref())?;
        let ids = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut ongoing: Vec<OngoingReassignment> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.as_str().to_owned(),
                        p.partition_index,
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas),
                    )
                })
            })
            .collect();
        ongoing.sort();
        Ok(ongoing)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    async fn metadata_until(&self, deadline: Instant) -> Result<ClusterMetadata, AdminError> {
        const API: &str = "Metadata";
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        let response = self
            .send_bootstrap(API, &request, METADATA_VERSION, deadline, true)
            .await?;
        check(API, response.error_code, None)?;
        let metadata = convert_metadata(response);
        let controller = metadata
            .broker(metadata.controller_id)
            .map(BrokerInfo::address);
        *lock(&self.controller) = controller;
        Ok(metadata)
    }

    /// Sends to the first bootstrap address that accepts a connection.
    async fn send_bootstrap<R: Request>(
        &self,
        api: &'static str,
        request: &R,
        version: i16,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<R::Response, AdminError> {
        let mut failures = Vec::new();
        for addr in &self.bootstrap {
            match self
                .send_to(api, addr, request, version, deadline, idempotent)
                .await
            {
                Err(AdminError::Connect { reason, .. }) => failures.push(reason),
                other => return other,
            }
        }
        Err(AdminError::Connect {
            addrs: self.bootstrap.clone(),
            reason: if failures.is_empty() {
                "no bootstrap address given".to_owned()
            } else {
                failures.join("; ")
            },
        })
    }

    /// Sends an admin request to the controller; sends it again after NOT_CONTROLLER (as told
    /// by `not_controller`) or when the controller cannot be reached, with fresh Metadata.
    async fn send_controller<R: Request>(
        &self,
        api: &'static str,
        request: &R,
        version: i16,
        deadline: Instant,
        not_controller: impl Fn(&R::Response) -> bool,
    ) -> Result<R::Response, AdminError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= CONTROLLER_ATTEMPTS;
            let cached = lock(&self.controller).clone();
            let target = match cached {
                Some(addr) => Target::Address(addr),
                None => {
                    let metadata = self.metadata_until(deadline).await?;
                    match metadata.broker(metadata.controller_id) {
                        Some(b) => Target::Address(b.address()),
                        None => Target::Bootstrap,
                    }
                }
            };
            let sent = match &target {
                Target::Address(addr) => {
                    match self
                        .send_to(api, addr, request, version, deadline, false)
                        .await
                    {
                        // The advertised address may not be reachable from here: any broker
                        // forwards admin requests to the controller.
                        Err(AdminError::Connect { .. }) => {
                            *lock(&self.controller) = None;
                            self.send_bootstrap(api, request, version, deadline, false)
                                .await
                        }
                        other => other,
                    }
                }
                Target::Bootstrap => {
                    self.send_bootstrap(api, request, version, deadline, false)
                        .await
                }
            };
            let response = sent?;
            if !not_controller(&response) || last {
                return Ok(response);
            }
            tracing::debug!(api, attempt, "NOT_CONTROLLER: refreshing metadata");
            *lock(&self.controller) = None;
            // The quorum may be electing a leader: give it a moment.
            let pause = Duration::from_millis(100 * attempt as u64);
            if Instant::now() + pause >= deadline {
                return Ok(response);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends one request to `addr` on its (cached or new) connection. An I/O failure on a reused
    /// connection is retried once on a new one when `idempotent`.
    async fn send_to<R: Request>(
        &self,
        api: &'static str,
        addr: &str,
        request: &R,
        version: i16,
        deadline: Instant,
        idempotent: bool,
    ) -> Result<R::Response, AdminError> {
        let slot = {
            let mut connections = lock(&self.connections);
            Arc::clone(connections.entry(addr.to_owned()).or_default())
        };
        let timeout = AdminError::Timeout {
            api,
            timeout: self.timeout,
        };
        let mut guard = tokio::time::timeout_at(deadline, slot.lock())
            .await
            .map_err(|_| timeout.clone())?;
        let mut retried = false;
        loop {
            let reused = guard.is_some();
            let connection = match guard.as_mut() {
                Some(connection) => connection,
                None => {
                    let connect = self.open(addr);
                    let connection = match tokio::time::timeout_at(deadline, connect).await {
                        Ok(Ok(connection)) => connection,
                        Ok(Err(error)) => {
                            return Err(AdminError::Connect {
                                addrs: vec![addr.to_owned()],
                                reason: format!("{addr}: {error}"),
                            });
                        }
                        Err(_) => {
                            return Err(AdminError::Connect {
                                addrs: vec![addr.to_owned()],
                                reason: format!("{addr}: connect timed out"),
                            });
                        }
                    };
                    guard.insert(connection)
                }
            };
            let outcome =
                tokio::time::timeout_at(deadline, connection.call(request, version)).await;
            match outcome {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) => {
                    // The connection's state is unknown after any failure: start afresh.
                    *guard = None;
                    if reused && idempotent && !retried && error.is_io() {
                        retried = true;
                        continue;
                    }
                    return Err(AdminError::Protocol(format!("{addr}: {error}")));
                }
                Err(_) => {
                    *guard = None;
                    return Err(timeout);
                }
            }
        }
    }
}

/// Locks a std mutex; a poisoned one is still usable (the data are plain caches).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn remaining_ms(deadline: Instant) -> i32 {
    let ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    i32::try_from(ms).unwrap_or(i32::MAX)
}

fn check(api: &'static str, code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    if code == 0 {
        Ok(())
    } else {
        Err(AdminError::kafka(api, code, message))
    }
}

fn missing(api: &'static str, name: &str) -> AdminError {
    AdminError::Protocol(format!("{api}: no result for {name:?} in the response"))
}

fn convert_metadata(response: MetadataResponse) -> ClusterMetadata {
    let ids = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut brokers: Vec<BrokerInfo> = response
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            host: b.host.as_str().to_owned(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.as_str().to_owned()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut topics: Vec<TopicInfo> = response
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    offline: ids(&p.offline_replicas),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicInfo {
                name: t
                    .name
                    .as_ref()
                    .map(|n| n.0.as_str().to_owned())
                    .unwrap_or_default(),
                topic_id: (!t.topic_id.is_nil()).then_some(t.topic_id),
                internal: t.is_internal,
                error: KafkaErrorCode::from_code(t.error_code),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterMetadata {
        cluster_id: response
            .cluster_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .filter(|c| !c.is_empty()),
        controller_id: response.controller_id.0,
        brokers,
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_display_name_code_and_message() {
        let error = AdminError::kafka(
            "CreateTopics",
            36,
            Some(&StrBytes::from_static_str("topic \"t\" exists")),
        );
        assert_eq!(
            error.to_string(),
            "CreateTopics: Kafka error TOPIC_ALREADY_EXISTS (36): topic \"t\" exists"
        );
        assert_eq!(error.kafka_name(), Some("TOPIC_ALREADY_EXISTS"));
    }

    #[test]
    fn ipv6_broker_addresses_are_bracketed() {
        let broker = |host: &str| BrokerInfo {
            id: 1,
            host: host.to_owned(),
            port: 9092,
            rack: None,
        };
        assert_eq!(broker("::1").address(), "[::1]:9092");
        assert_eq!(broker("kafka-0").address(), "kafka-0:9092");
    }
}
