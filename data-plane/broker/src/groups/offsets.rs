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
            },
        );
    }
}

/// Applies a committed group deletion.
pub fn apply_delete(map: &mut OffsetMap, group: &str) {
    map.remove(group);
}
