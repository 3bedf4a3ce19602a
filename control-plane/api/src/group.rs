//! Wire types of the consumer groups of Kafka clusters, at
//! `/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups`: list, describe (members, their
//! assignments, committed and end offsets, lag), reset offsets, delete.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state of a consumer group, as its coordinator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ConsumerGroupState {
    /// No members (offsets may be committed).
    Empty,
    /// Members are joining.
    PreparingRebalance,
    /// The leader is computing the assignment.
    CompletingRebalance,
    /// Members consume with a settled assignment.
    Stable,
    /// The group does not exist (or is being removed).
    Dead,
    /// A state this build does not know.
    #[serde(other)]
    Unknown,
}

impl ConsumerGroupState {
    /// The state named as Kafka names it (`Stable`); [`ConsumerGroupState::Unknown`] otherwise.
    pub fn from_kafka(name: &str) -> ConsumerGroupState {
        match name {
            "Empty" => ConsumerGroupState::Empty,
            "PreparingRebalance" => ConsumerGroupState::PreparingRebalance,
            "CompletingRebalance" => ConsumerGroupState::CompletingRebalance,
            "Stable" => ConsumerGroupState::Stable,
            "Dead" => ConsumerGroupState::Dead,
            _ => ConsumerGroupState::Unknown,
        }
    }

    /// The name as Kafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::PreparingRebalance => "PreparingRebalance",
            ConsumerGroupState::CompletingRebalance => "CompletingRebalance",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
            ConsumerGroupState::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ConsumerGroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A consumer group in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroupSummary {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: ConsumerGroupState,
    /// Protocol type: `consumer` for Kafka consumers; empty for a group that only has
    /// committed offsets.
    pub protocol_type: String,
    /// The partition assignor the members agreed on (`range`, `roundrobin`,
    /// `cooperative-sticky`...); absent without members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<String>,
    /// Number of members.
    pub members: u32,
    /// Sum over the partitions with a committed offset of `end_offset - committed_offset`
    /// (partitions whose end offset could not be read count 0).
    pub total_lag: i64,
}

/// A page of a cluster's consumer groups, ordered by group id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroupList {
    /// This page.
    pub items: Vec<ConsumerGroupSummary>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Partitions of one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicPartitions {
    /// Topic.
    pub topic: String,
    /// Partition indexes, ascending.
    pub partitions: Vec<u32>,
}

/// A member of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroupMember {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// Static membership id (`group.instance.id`), if the member has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address as the coordinator saw it (`/127.0.0.1`).
    pub client_host: String,
    /// The partitions assigned to it, by topic (empty for groups that are not Kafka
    /// consumers).
    pub assignment: Vec<TopicPartitions>,
}

/// One partition of a consumer group: what it committed, where the partition ends, the lag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The committed offset (the next record the group reads); absent for an assigned
    /// partition without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_offset: Option<i64>,
    /// The partition's end offset (high watermark); absent when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<i64>,
    /// `end_offset - committed_offset` (at least 0), when both are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The metadata committed with the offset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// The member the partition is assigned to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
}

/// A consumer group described: members with their assignments, and per partition the committed
/// offset, the end offset and the lag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroup {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: ConsumerGroupState,
    /// Protocol type (`consumer`), empty for a group that only has committed offsets.
    pub protocol_type: String,
    /// The partition assignor in use; absent without members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<String>,
    /// Broker id of the group's coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<u32>,
    /// Members, by member id.
    pub members: Vec<ConsumerGroupMember>,
    /// Partitions with a committed offset or assigned to a member, by topic and partition.
    pub offsets: Vec<ConsumerGroupOffset>,
    /// Sum of `lag` over `offsets`.
    pub total_lag: i64,
}

/// Where [`ConsumerGroupResetOffsets`] moves the offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetTo {
    /// Each partition's first offset (log start).
    Earliest,
    /// Each partition's end (high watermark): skip everything not read yet.
    Latest,
    /// The first offset whose record's timestamp is at or after `timestamp_ms` (the end when
    /// none is).
    Timestamp,
    /// `offset` on every partition, clamped to the partition's earliest and end offsets.
    Offset,
}

/// `POST /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerGroupResetOffsets {
    /// Where to move the offsets.
    pub to: ResetTo,
    /// With `to: timestamp`: milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// With `to: offset`: the offset (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Reset every partition of these topics; absent: the partitions the group has committed
    /// offsets for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Compute and answer the new offsets without committing them.
    #[serde(default)]
    pub dry_run: bool,
}

/// One partition's offset before and after a reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionOffsetReset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The committed offset before the reset; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_offset: Option<i64>,
    /// The new committed offset.
    pub new_offset: i64,
}

/// The answer to a reset: the new offsets (committed unless `dry_run`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerGroupOffsetsReset {
    /// Group id.
    pub group_id: String,
    /// Whether this was a dry run (nothing committed).
    pub dry_run: bool,
    /// Every partition reset, by topic and partition.
    pub offsets: Vec<PartitionOffsetReset>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_requests_use_snake_case_targets_and_refuse_unknown_fields() {
        let reset: ConsumerGroupResetOffsets =
            serde_json::from_str(r#"{"to": "timestamp", "timestamp_ms": 1700000000000}"#).unwrap();
        assert_eq!(reset.to, ResetTo::Timestamp);
        assert!(!reset.dry_run);
        assert!(
            serde_json::from_str::<ConsumerGroupResetOffsets>(r#"{"to": "latest", "force": true}"#)
                .is_err()
        );
    }

    #[test]
    fn unknown_group_states_decode_as_unknown() {
        let state: ConsumerGroupState = serde_json::from_str("\"Assigning\"").unwrap();
        assert_eq!(state, ConsumerGroupState::Unknown);
        assert_eq!(
            ConsumerGroupState::from_kafka("Stable"),
            ConsumerGroupState::Stable
        );
    }
}
