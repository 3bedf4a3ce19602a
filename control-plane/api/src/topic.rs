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
    /// The first offset still in the log (single-topic reads only; absent when the leader did
    /// not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_offset: Option<i64>,
    /// The offset the next record will get: the high watermark (single-topic reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<i64>,
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

/// `POST /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records`: one record to write
/// (a diagnostic write through the control plane; applications write to the brokers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordProduce {
    /// The partition; by default Kafka's partitioner picks it from the key (murmur2, as the
    /// Java client does), or a random one for a record without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The key (UTF-8 text); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value (UTF-8 text); `null` or absent writes a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Where a produced record landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordProduced {
    /// The partition.
    pub partition: u32,
    /// Its offset.
    pub offset: i64,
}

/// A record header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordHeader {
    /// The header's key.
    pub key: String,
    /// Its value as UTF-8 text (invalid bytes replaced); `null` when absent.
    pub value: Option<String>,
}

/// A `record` event of a topic tail (`GET …/topics/{topic}/records`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TailRecord {
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: i64,
    /// The record's timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// The key as UTF-8 text (invalid bytes replaced); `null` when absent.
    pub key: Option<String>,
    /// The value as UTF-8 text; `null` for a tombstone.
    pub value: Option<String>,
    /// Headers in order.
    pub headers: Vec<RecordHeader>,
    /// The key or value was longer than 16,384 characters and is cut there.
    pub truncated: bool,
}

/// A `progress` event of a topic tail, about every second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TailProgress {
    /// Records read so far.
    pub scanned: u64,
    /// Records sent so far (those that passed the filters).
    pub matched: u64,
    /// Records of compressed batches that did not decompress (skipped; gzip, snappy, lz4 and zstd
    /// batches are read).
    pub skipped_compressed: u64,
}

/// Why a topic tail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TailEndReason {
    /// It sent `max_records` records.
    MaxRecords,
    /// It lasted `max_seconds`.
    MaxSeconds,
    /// Not following, it reached the end offsets seen at its start.
    EndOfPartitions,
    /// The cluster failed it; `detail` says how.
    Error,
}

/// The `end` event of a topic tail: the last event of the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TailEnd {
    /// Why it ended.
    pub reason: TailEndReason,
    /// Records sent.
    pub records: u64,
    /// Records read.
    pub scanned: u64,
    /// For `error`: what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
