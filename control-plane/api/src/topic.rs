//! Wire types of Kafka topics, managed through the control plane at
//! `/v1/workspaces/{ws}/clusters/{cluster}/topics`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/workspaces/{ws}/clusters/{cluster}/topics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicCreate {
    /// Topic name as Kafka allows: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
    pub name: String,
    /// Number of partitions, 1-10000.
    pub partitions: u32,
    /// Replicas per partition, at least 1 and at most the number of brokers.
    pub replication_factor: u32,
    /// Topic configs set on the topic (e.g. `retention.ms`); the others take their defaults.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// `PATCH /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicPatch {
    /// New partition count; partitions can only be added, never removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Configs to set on the topic; a `null` value removes the key (back to its default). Keys
    /// not named are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<BTreeMap<String, Option<String>>>,
}

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionState {
    /// Partition index.
    pub partition: u32,
    /// Broker id of the leader; absent while the partition has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u32>,
    /// Broker ids of the replicas, preferred leader first.
    pub replicas: Vec<u32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<u32>,
    /// Broker ids of replicas on brokers that are offline.
    #[serde(default)]
    pub offline: Vec<u32>,
}

/// A topic as the Kafka cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Kafka's topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<Uuid>,
    /// Partitions by index.
    pub partitions: Vec<PartitionState>,
    /// Replicas per partition (of partition 0; all partitions have as many unless a
    /// reassignment is in progress).
    pub replication_factor: u32,
    /// The configs set on the topic itself (non-default values only). Absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<BTreeMap<String, String>>,
    /// The other configs in force, with their default values. Absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_configs: Option<BTreeMap<String, String>>,
}

/// A page of a cluster's topics, ordered by name (internal topics are not listed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    /// This page (without configs).
    pub items: Vec<Topic>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
