//! Committed offsets, replicated through the metadata quorum.
//!
//! The map is shared between the Raft state machine, which changes it when an
//! `OffsetCommit`/`DeleteGroup` entry is applied (on every broker, so whichever broker becomes
//! the coordinator next already has every committed offset), and the coordinator, which reads it.
//! Snapshots carry it as a flat list ([`OffsetRecord`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The offset.
    pub offset: i64,
    /// Client metadata.
    pub metadata: Option<String>,
    /// The cluster link that copied it from a source cluster (`None`: a client committed it here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Committed offsets by group, then `(topic, partition)`.
pub type OffsetMap = BTreeMap<String, BTreeMap<(String, i32), Committed>>;

/// The map shared by the state machine (writer) and the coordinator (reader).
pub type SharedOffsets = Arc<Mutex<OffsetMap>>;

/// One committed offset in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRecord {
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Client metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// The cluster link that copied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// The map as snapshot records.
pub fn to_records(map: &OffsetMap) -> Vec<OffsetRecord> {
    map.iter()
        .flat_map(|(group, entries)| {
            entries
                .iter()
                .map(move |((topic, partition), c)| OffsetRecord {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                    metadata: c.metadata.clone(),
                    origin: c.origin.clone(),
                })
        })
        .collect()
}

/// The map from snapshot records.
pub fn from_records(records: Vec<OffsetRecord>) -> OffsetMap {
    let mut map = OffsetMap::new();
    for r in records {
        map.entry(r.group).or_default().insert(
            (r.topic, r.partition),
            Committed {
                offset: r.offset,
                metadata: r.metadata,
                origin: r.origin,
            },
        );
    }
    map
}

/// Applies a committed `OffsetCommit`.
pub fn apply_commit(
    map: &mut OffsetMap,
    group: &str,
    offsets: &[(String, i32, i64, Option<String>)],
) {
    let entries = map.entry(group.to_owned()).or_default();
    for (topic, partition, offset, metadata) in offsets {
        entries.insert(
            (topic.clone(), *partition),
            Committed {
                offset: *offset,
                metadata: metadata.clone(),
                origin: None,
            },
        );
    }
}

/// Applies offsets a cluster link copied from its source for `group`: unless a client has
/// committed for the group on this cluster (then the group is this cluster's, and the copy is
/// dropped whole), each offset replaces the one stored.
pub fn apply_sync(map: &mut OffsetMap, link: &str, group: &str, offsets: &[(String, i32, i64)]) {
    let entries = map.entry(group.to_owned()).or_default();
    if entries.values().any(|c| c.origin.is_none()) {
        return;
    }
    for (topic, partition, offset) in offsets {
        entries.insert(
            (topic.clone(), *partition),
            Committed {
                offset: *offset,
                metadata: None,
                origin: Some(link.to_owned()),
            },
        );
    }
}

/// Applies a committed group deletion.
pub fn apply_delete(map: &mut OffsetMap, group: &str) {
    map.remove(group);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_offsets_never_replace_a_group_committed_here() {
        let mut map = OffsetMap::new();
        apply_sync(&mut map, "dr", "payments", &[("orders".into(), 0, 10)]);
        apply_sync(&mut map, "dr", "payments", &[("orders".into(), 0, 20)]);
        assert_eq!(map["payments"][&("orders".into(), 0)].offset, 20);
        assert_eq!(
            map["payments"][&("orders".into(), 0)].origin.as_deref(),
            Some("dr")
        );
        // A client commits here: the group is this cluster's from then on.
        apply_commit(&mut map, "payments", &[("orders".into(), 1, 5, None)]);
        apply_sync(
            &mut map,
            "dr",
            "payments",
            &[("orders".into(), 0, 30), ("orders".into(), 1, 9)],
        );
        assert_eq!(map["payments"][&("orders".into(), 0)].offset, 20);
        assert_eq!(map["payments"][&("orders".into(), 1)].offset, 5);
        // Snapshots keep the origin.
        let round = from_records(to_records(&map));
        assert_eq!(round, map);
    }
}
