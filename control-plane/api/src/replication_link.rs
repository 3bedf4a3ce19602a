//! Wire types of replication links (geo-replication pairs): a source Kafka cluster mirrored
//! into a target Kafka cluster of the same workspace with the source's offsets, its status as
//! the target's brokers report it (per topic and per partition lag, the RPO estimate), and what
//! its operations measured.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /v1/workspaces/{ws}/replication-links/{name}`: creates the link, or replaces its
/// filters (its clusters cannot change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationLinkSpec {
    /// The Kafka cluster copied from (the primary).
    pub source_cluster: String,
    /// The Kafka cluster that holds the link and the read-only mirror topics (the secondary);
    /// its brokers must be in other fault domains than the source's.
    pub target_cluster: String,
    /// Topics mirrored: literal names or `prefix*` patterns (at least one).
    pub topics: Vec<String>,
    /// Topics never mirrored (same syntax; exclusions win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_exclude: Vec<String>,
    /// Consumer groups whose committed offsets are copied every second (same syntax).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Groups never copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_exclude: Vec<String>,
    /// Mirror topics follow their source's configs: always true (`false` is refused).
    #[serde(default = "yes")]
    pub sync_configs: bool,
}

fn yes() -> bool {
    true
}

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationLinkState {
    /// The target copies the source.
    Mirroring,
    /// Mirroring is paused (`resume`).
    Paused,
    /// A planned switchover runs.
    Promoting,
    /// The target's topics are writable after a switchover (RPO 0).
    Promoted,
    /// A forced failover runs.
    FailingOver,
    /// The target's topics are writable after a failover (see the operation's loss bound).
    FailedOver,
    /// The old source is being made the mirror of the old target.
    Reversing,
}

impl std::fmt::Display for ReplicationLinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplicationLinkState::Mirroring => "mirroring",
            ReplicationLinkState::Paused => "paused",
            ReplicationLinkState::Promoting => "promoting",
            ReplicationLinkState::Promoted => "promoted",
            ReplicationLinkState::FailingOver => "failing_over",
            ReplicationLinkState::FailedOver => "failed_over",
            ReplicationLinkState::Reversing => "reversing",
        })
    }
}

/// A link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicationLink {
    /// Name (letters, digits, `-`, `_`): also the link's name on the target's brokers
    /// (`hdi.link.<name>.*`).
    pub name: String,
    /// Workspace.
    pub workspace: String,
    /// The cluster copied from.
    pub source_cluster: String,
    /// The cluster holding the mirror topics.
    pub target_cluster: String,
    /// Topics mirrored.
    pub topics: Vec<String>,
    /// Topics never mirrored.
    #[serde(default)]
    pub topics_exclude: Vec<String>,
    /// Groups whose offsets are copied.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups never copied.
    #[serde(default)]
    pub groups_exclude: Vec<String>,
    /// Always true.
    pub sync_configs: bool,
    /// Where the pair stands.
    pub state: ReplicationLinkState,
    /// Whether the target's brokers hold the latest definition (`false` until the link
    /// reconciler has applied it).
    pub applied: bool,
    /// The Kafka user the link reads a secured source as (`hdi-link-<name>`, Describe and Read
    /// on the link's topics and groups only; its password is kept only by the target's brokers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_user: Option<String>,
    /// The operation running on the link, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<uuid::Uuid>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// What the target's brokers report now (`GET` of one link only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicationLinkStatus>,
}

/// A page of links by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicationLinkList {
    /// This page.
    pub items: Vec<ReplicationLink>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A link's status as its target's brokers report it, read when asked
/// (`GET .../replication-links/{name}` and `.../lag`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicationLinkStatus {
    /// Whether the target answered.
    pub observed: bool,
    /// Why it did not, or what could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the target's brokers hold the link.
    pub defined: bool,
    /// The link's state on the brokers (`mirroring`, `paused`, `promote`, `failover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane_state: Option<String>,
    /// The brokers' status text: `ok` or the problem the link meets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane_status: Option<String>,
    /// Whether the brokers report per-partition status (older brokers do not: then the lag
    /// figures below are absent).
    pub partitions_reported: bool,
    /// Records behind, summed over the partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_records: Option<u64>,
    /// Bytes behind (an estimate: records × the mean record size seen), summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// The recovery point objective now: the largest partition lag in seconds (what a
    /// failover now would lose at most, in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    /// Per mirror topic.
    #[serde(default)]
    pub topics: Vec<MirrorTopicStatus>,
    /// What the control plane sees wrong with the pair, e.g. its clusters sharing a fault
    /// domain since a resize (checked when the link was created, not enforced after).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One mirror topic: its state is its worst partition's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MirrorTopicStatus {
    /// Topic.
    pub topic: String,
    /// `active`, `paused`, `stopping`, `stopped`, `source_unavailable` or `failed`.
    pub state: String,
    /// Records behind, summed.
    pub lag_records: u64,
    /// Bytes behind (estimate), summed.
    pub lag_bytes: u64,
    /// Seconds behind, the largest of its partitions'.
    pub lag_seconds: f64,
    /// Per partition.
    pub partitions: Vec<MirrorPartitionStatus>,
}

/// One mirror partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MirrorPartitionStatus {
    /// Partition.
    pub partition: i32,
    /// `active`, `paused`, `stopping`, `stopped`, `source_unavailable` or `failed`.
    pub state: String,
    /// Why (`failed`, `source_unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The mirror's log end offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end: Option<i64>,
    /// The source's log end offset last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_end: Option<i64>,
    /// Records behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_records: Option<u64>,
    /// Bytes behind (estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Seconds behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Where mirroring stopped (promote, failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_offset: Option<i64>,
    /// Records of the source beyond the stop (failover's loss bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_records: Option<u64>,
    /// Seconds of the source's records beyond the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_seconds: Option<f64>,
    /// Records moved to `<topic>.quarantine` by a reverse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<u64>,
}

/// What a link operation measured (`Operation.result`): per partition, where mirroring stopped
/// and what a failover lost; what a reverse quarantined.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkOperationResult {
    /// Per partition (empty when the brokers report no per-partition status).
    pub partitions: Vec<PartitionStop>,
    /// Records of the source the target does not have (failover), summed.
    pub loss_records: u64,
    /// Milliseconds of the source's records the target does not have, the largest
    /// partition's.
    pub loss_ms: u64,
    /// Records the old source moved to quarantine topics (reverse), summed.
    pub quarantined_records: u64,
}

/// One partition's stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionStop {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where mirroring stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_offset: Option<i64>,
    /// Records of the source beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_records: Option<u64>,
    /// Milliseconds of the source's records beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_ms: Option<u64>,
    /// Records quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<u64>,
}
