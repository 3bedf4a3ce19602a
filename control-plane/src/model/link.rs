//! Domain types of replication links (geo-replication pairs): the stored link, its state
//! machine, the per-partition status the target's brokers report, and what a link operation
//! measured. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClusterId, ReplicationLinkId, WorkspaceId};

/// The Kafka user a link reads a secured source as: `hdi-link-<name>` (`hdi-` names are the
/// platform's, so no user of the API can take it).
pub fn link_user(name: &str) -> String {
    format!("hdi-link-{name}")
}

/// Where a link stands (`replication_links.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The target copies the source.
    Mirroring,
    /// Mirroring stopped by `pause`; `resume` goes back to mirroring.
    Paused,
    /// A planned switchover is running.
    Promoting,
    /// The target's topics are writable after a switchover.
    Promoted,
    /// A forced failover is running.
    FailingOver,
    /// The target's topics are writable after a failover.
    FailedOver,
    /// The old source is being made a mirror of the old target.
    Reversing,
}

impl LinkState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Mirroring => "mirroring",
            LinkState::Paused => "paused",
            LinkState::Promoting => "promoting",
            LinkState::Promoted => "promoted",
            LinkState::FailingOver => "failing_over",
            LinkState::FailedOver => "failed_over",
            LinkState::Reversing => "reversing",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<LinkState> {
        Some(match text {
            "mirroring" => LinkState::Mirroring,
            "paused" => LinkState::Paused,
            "promoting" => LinkState::Promoting,
            "promoted" => LinkState::Promoted,
            "failing_over" => LinkState::FailingOver,
            "failed_over" => LinkState::FailedOver,
            "reversing" => LinkState::Reversing,
            _ => return None,
        })
    }

    /// The value of `hdi.link.<name>.state` on the target's brokers in this state (`None`
    /// while reversing: the target's link is stopped already and is left as it is).
    pub fn data_plane(self) -> Option<&'static str> {
        Some(match self {
            LinkState::Mirroring => "mirroring",
            LinkState::Paused => "paused",
            LinkState::Promoting | LinkState::Promoted => "promote",
            LinkState::FailingOver | LinkState::FailedOver => "failover",
            LinkState::Reversing => return None,
        })
    }

    /// Whether the target's topics stopped mirroring for good (or are stopping).
    pub fn stopped(self) -> bool {
        !matches!(self, LinkState::Mirroring | LinkState::Paused)
    }
}

/// A link's topic and group filters: literal names or `prefix*` patterns; exclusions win.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFilters {
    /// Topics mirrored.
    pub topics: Vec<String>,
    /// Topics never mirrored.
    pub topics_exclude: Vec<String>,
    /// Consumer groups whose committed offsets are copied.
    pub groups: Vec<String>,
    /// Groups never copied.
    pub groups_exclude: Vec<String>,
}

/// Whether `name` matches one of `patterns` (a literal name, or `prefix*`).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

impl LinkFilters {
    /// Whether the filters mirror topic `name`.
    pub fn mirrors_topic(&self, name: &str) -> bool {
        matches_any(&self.topics, name) && !matches_any(&self.topics_exclude, name)
    }
}

/// A `replication_links` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationLinkRecord {
    /// Identity.
    pub id: ReplicationLinkId,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Name (letters, digits, `-`, `_`), unique in the workspace.
    pub name: String,
    /// The cluster copied from.
    pub source_cluster_id: ClusterId,
    /// The source's name (joined).
    pub source_cluster: String,
    /// The cluster that holds the link and the mirror topics.
    pub target_cluster_id: ClusterId,
    /// The target's name (joined).
    pub target_cluster: String,
    /// Filters.
    pub filters: LinkFilters,
    /// Always true (mirror topics follow their source's configs).
    pub sync_configs: bool,
    /// Where the pair stands.
    pub state: LinkState,
    /// Reversed at least once (its topics are then the literal names it mirrored).
    pub reversed: bool,
    /// The Kafka user made on a secured source for the link.
    pub source_user: Option<String>,
    /// Bumped by every change of the desired state.
    pub generation: u64,
    /// The generation the target was last seen to hold.
    pub applied_generation: u64,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One mirror partition as a broker of the target reports it (an element of the JSON array in
/// `hdi.link.<name>.partitions`). Every field but the topic and partition may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// `active`, `pausing`, `paused`, `stopping`, `stopped`, `adopting` (a reverse moves its
    /// diverged records to quarantine), `source_unavailable` or `failed`.
    #[serde(default)]
    pub state: String,
    /// Why, for `failed` and `source_unavailable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The mirror's log end.
    #[serde(default)]
    pub log_end: Option<i64>,
    /// The source's log end last seen.
    #[serde(default)]
    pub source_end: Option<i64>,
    /// Records behind.
    #[serde(default)]
    pub lag_records: Option<u64>,
    /// Bytes behind (an estimate: records × the mean record size seen).
    #[serde(default)]
    pub lag_bytes: Option<u64>,
    /// Milliseconds behind.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// Where mirroring stopped (after promote or failover).
    #[serde(default)]
    pub stop_offset: Option<i64>,
    /// Records the source had beyond the stop (failover's loss bound).
    #[serde(default)]
    pub loss_records: Option<u64>,
    /// Milliseconds of the source's records beyond the stop.
    #[serde(default)]
    pub loss_ms: Option<u64>,
    /// Records moved to the quarantine topic by a reverse.
    #[serde(default)]
    pub quarantined: Option<u64>,
}

/// How bad a partition state is (a topic's state is its worst partition's).
pub fn state_rank(state: &str) -> u8 {
    match state {
        "stopped" => 0,
        "active" => 1,
        "adopting" => 2,
        "stopping" => 3,
        "pausing" => 4,
        "paused" => 5,
        "source_unavailable" => 6,
        "failed" => 7,
        _ => 8,
    }
}

/// Parses one broker's `hdi.link.<name>.partitions` value; `None` when it is not the documented
/// JSON array (the value comes from the network).
pub fn parse_partitions(value: &str) -> Option<Vec<MirrorPartition>> {
    serde_json::from_str(value).ok()
}

/// One partition's stop as an operation records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStop {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where mirroring stopped.
    pub stop_offset: Option<i64>,
    /// Records of the source beyond it (failover).
    pub loss_records: Option<u64>,
    /// Milliseconds of the source's records beyond it (failover).
    pub loss_ms: Option<u64>,
    /// Records quarantined (reverse).
    pub quarantined: Option<u64>,
}

/// What a link operation measured, stored with it (`operations.result`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkOperationResult {
    /// Per partition, sorted.
    pub partitions: Vec<PartitionStop>,
    /// Sum of the partitions' loss bounds (records).
    pub loss_records: u64,
    /// Largest of the partitions' loss bounds (milliseconds).
    pub loss_ms: u64,
    /// Sum of the records quarantined.
    pub quarantined_records: u64,
}

impl LinkOperationResult {
    /// The result of the partitions' final status.
    pub fn of(partitions: &[MirrorPartition]) -> LinkOperationResult {
        let mut stops: Vec<PartitionStop> = partitions
            .iter()
            .map(|p| PartitionStop {
                topic: p.topic.clone(),
                partition: p.partition,
                stop_offset: p.stop_offset,
                loss_records: p.loss_records,
                loss_ms: p.loss_ms,
                quarantined: p.quarantined,
            })
            .collect();
        stops.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        LinkOperationResult {
            loss_records: stops.iter().filter_map(|p| p.loss_records).sum(),
            loss_ms: stops.iter().filter_map(|p| p.loss_ms).max().unwrap_or(0),
            quarantined_records: stops.iter().filter_map(|p| p.quarantined).sum(),
            partitions: stops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_literals_and_prefixes_and_exclusions_win() {
        let filters = LinkFilters {
            topics: vec!["orders".into(), "pay*".into()],
            topics_exclude: vec!["pay-internal*".into()],
            ..LinkFilters::default()
        };
        assert!(filters.mirrors_topic("orders"));
        assert!(!filters.mirrors_topic("orders2"));
        assert!(filters.mirrors_topic("payments"));
        assert!(!filters.mirrors_topic("pay-internal-x"));
    }

    #[test]
    fn partitions_parse_from_the_brokers_json_and_tolerate_garbage() {
        let value = r#"[{"topic":"t","partition":0,"state":"stopped","reason":null,"log_end":123,
            "source_end":130,"lag_records":7,"lag_bytes":7168,"lag_ms":40,"stop_offset":123,
            "loss_records":7,"loss_ms":40,"quarantined":null,"later":"ignored"}]"#;
        let parsed = parse_partitions(value).unwrap_or_default();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].loss_records, Some(7));
        assert!(parse_partitions("not json").is_none());
        let result = LinkOperationResult::of(&parsed);
        assert_eq!((result.loss_records, result.loss_ms), (7, 40));
    }

    #[test]
    fn states_round_trip_and_map_to_the_data_plane() {
        for state in [
            LinkState::Mirroring,
            LinkState::Paused,
            LinkState::Promoting,
            LinkState::Promoted,
            LinkState::FailingOver,
            LinkState::FailedOver,
            LinkState::Reversing,
        ] {
            assert_eq!(LinkState::parse(state.as_str()), Some(state));
        }
        assert_eq!(LinkState::Promoted.data_plane(), Some("promote"));
        assert_eq!(LinkState::Paused.data_plane(), Some("paused"));
        assert_eq!(LinkState::Reversing.data_plane(), None);
    }
}
