//! Durable committed offsets: an append-only JSON-lines file (`groups/offsets.jsonl`), fsynced
//! before a commit is answered, replayed and compacted at start-up. A torn last line is ignored.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The offset.
    pub offset: i64,
    /// Client metadata.
    pub metadata: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OffsetLine {
    pub(super) g: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) t: Option<String>,
    #[serde(default)]
    pub(super) p: i32,
    #[serde(default)]
    pub(super) o: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) m: Option<String>,
    /// Tombstone of a whole group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) deleted: bool,
}

pub(super) type OffsetMap = BTreeMap<String, BTreeMap<(String, i32), Committed>>;

pub(super) struct OffsetStore {
    pub(super) path: PathBuf,
    pub(super) file: std::fs::File,
}

impl OffsetStore {
    pub(super) fn open(dir: &Path) -> std::io::Result<(OffsetStore, OffsetMap)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("offsets.jsonl");
        let mut offsets = OffsetMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let Ok(entry) = serde_json::from_str::<OffsetLine>(line) else {
                    continue;
                };
                if entry.deleted {
                    offsets.remove(&entry.g);
                } else if let Some(topic) = entry.t {
                    offsets.entry(entry.g).or_default().insert(
                        (topic, entry.p),
                        Committed {
                            offset: entry.o,
                            metadata: entry.m,
                        },
                    );
                }
            }
        }
        // Compact: rewrite only the live entries, atomically.
        let tmp = dir.join("offsets.jsonl.tmp");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for (group, entries) in &offsets {
                for ((topic, partition), committed) in entries {
                    let line = OffsetLine {
                        g: group.clone(),
                        t: Some(topic.clone()),
                        p: *partition,
                        o: committed.offset,
                        m: committed.metadata.clone(),
                        deleted: false,
                    };
                    serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")?;
                }
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok((OffsetStore { path, file }, offsets))
    }

    pub(super) fn append(&mut self, lines: &[OffsetLine]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut buf, line).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let length = self.file.metadata()?.len();
        if let Err(error) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Cut off a partial line, so the next commit does not land glued to it (and lost).
            let _ = self.file.set_len(length);
            return Err(error);
        }
        Ok(())
    }
}
