//! A job's checkpoint directory, as Spark's: `metadata` (the query's id and its number of state
//! partitions, written once), `offsets/<batch>` written before a batch runs (what it reads, the
//! watermark it runs with, the sink's mark), `state/<batch>/<partition>` (each state partition
//! after it) and then `commits/<batch>` once its output is durable. A restarted job resumes
//! after the last committed batch, or runs an uncommitted one again with exactly its logged input.
//! Every file is written atomically; old entries are pruned, keeping the last few.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::sink::{SinkMark, write_atomic};

/// Entries kept per directory.
const KEEP: u64 = 20;

/// What one batch reads.
// Externally tagged: serde's internally tagged enums buffer their content, and integer map keys
// (partitions) then no longer read back from JSON's string keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchInput {
    /// Per Kafka partition, `[start, end)`.
    Kafka {
        /// Offset ranges by partition.
        ranges: BTreeMap<i32, (i64, i64)>,
    },
    /// Files, in order; `taken` counts the files taken before this batch.
    /// Rows `[from, to)` of a `rate` source that started at `start_ms`.
    Rate {
        /// When row 0 was due (epoch ms).
        start_ms: i64,
        /// First row.
        from: i64,
        /// One past the last row.
        to: i64,
    },
    Files {
        /// Files taken before this batch.
        taken: u64,
        /// This batch's files.
        files: Vec<PathBuf>,
    },
}

impl BatchInput {
    /// Whether it reads nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            BatchInput::Kafka { ranges } => ranges.values().all(|(s, e)| e <= s),
            BatchInput::Files { files, .. } => files.is_empty(),
            BatchInput::Rate { from, to, .. } => to <= from,
        }
    }
}

/// `offsets/<batch>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetEntry {
    /// The batch.
    pub batch_id: u64,
    /// What it reads.
    pub input: BatchInput,
    /// The watermark rows are judged late against.
    pub watermark_ms: Option<i64>,
    /// The sink's mark before the batch first ran.
    pub sink_mark: SinkMark,
    /// Each compacted-topic (`upsert-kafka`) table's end offsets: the batch joins the table as
    /// of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// `commits/<batch>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The batch.
    pub batch_id: u64,
    /// The watermark after it.
    pub watermark_ms: Option<i64>,
    /// Rows it wrote to the sink.
    pub output_rows: u64,
}

/// `metadata`: what stays fixed for the life of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The query's id (a new one when the checkpoint is new).
    pub id: String,
    /// State partitions (fixed once the query has run: state is partitioned by it).
    pub state_partitions: u32,
}

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Checkpoint> {
        for sub in ["offsets", "commits", "state"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
        })
    }

    /// The checkpoint's metadata, written with `id` and `state_partitions` if it has none yet.
    /// A checkpoint of an earlier version (one state file per batch, no metadata) gets one
    /// partition: every key hashes to partition 0, which [`Checkpoint::state_of`] reads from the
    /// old file.
    pub fn metadata(&self, id: &str, state_partitions: u32) -> anyhow::Result<Metadata> {
        let path = self.dir.join("metadata");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = std::fs::read_dir(self.dir.join("state"))?
                    .filter_map(Result::ok)
                    .any(|e| e.file_type().is_ok_and(|t| t.is_file()));
                let metadata = Metadata {
                    id: id.to_string(),
                    state_partitions: if legacy { 1 } else { state_partitions },
                };
                write_atomic(&path, &serde_json::to_vec(&metadata)?)?;
                Ok(metadata)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        }
    }

    fn state_path(&self, batch: u64, partition: u32) -> PathBuf {
        self.path("state", batch).join(format!("{partition:05}"))
    }

    fn path(&self, sub: &str, batch: u64) -> PathBuf {
        self.dir.join(sub).join(format!("{batch:020}"))
    }

    fn latest(&self, sub: &str) -> anyhow::Result<Option<u64>> {
        let mut best = None;
        for entry in std::fs::read_dir(self.dir.join(sub))? {
            let name = entry?.file_name();
            if let Ok(n) = name.to_string_lossy().parse::<u64>() {
                best = best.max(Some(n));
            }
        }
        Ok(best)
    }

    /// The newest offset-log entry.
    pub fn latest_offsets(&self) -> anyhow::Result<Option<OffsetEntry>> {
        match self.latest("offsets")? {
            Some(n) => Ok(Some(self.read("offsets", n)?)),
            None => Ok(None),
        }
    }

    /// The commit entry of `batch`, if it committed.
    pub fn commit_of(&self, batch: u64) -> anyhow::Result<Option<CommitEntry>> {
        if self.path("commits", batch).exists() {
            Ok(Some(self.read("commits", batch)?))
        } else {
            Ok(None)
        }
    }

    /// State partition `partition`'s snapshot after `batch`, if kept.
    pub fn state_of(&self, batch: u64, partition: u32) -> anyhow::Result<Option<Vec<u8>>> {
        let legacy = self.path("state", batch);
        if partition == 0 && legacy.is_file() {
            return Ok(Some(std::fs::read(&legacy)?));
        }
        match std::fs::read(self.state_path(batch, partition)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, sub: &str, batch: u64) -> anyhow::Result<T> {
        let path = self.path(sub, batch);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Logs a batch before it runs.
    pub fn write_offsets(&self, entry: &OffsetEntry) -> anyhow::Result<()> {
        write_atomic(
            &self.path("offsets", entry.batch_id),
            &serde_json::to_vec(entry)?,
        )
    }

    /// Keeps state partition `partition` after `batch`.
    pub fn write_state(&self, batch: u64, partition: u32, bytes: &[u8]) -> anyhow::Result<()> {
        let dir = self.path("state", batch);
        if dir.is_file() {
            // An earlier version's state file of a batch that runs again.
            std::fs::remove_file(&dir)?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&self.state_path(batch, partition), bytes)
    }

    /// Commits a batch, and prunes entries older than the kept window.
    pub fn write_commit(&self, entry: &CommitEntry) -> anyhow::Result<()> {
        write_atomic(
            &self.path("commits", entry.batch_id),
            &serde_json::to_vec(entry)?,
        )?;
        if let Some(oldest) = entry.batch_id.checked_sub(KEEP) {
            for sub in ["offsets", "commits"] {
                let _ = std::fs::remove_file(self.path(sub, oldest));
            }
            let state = self.path("state", oldest);
            let _ = std::fs::remove_dir_all(&state).or_else(|_| std::fs::remove_file(&state));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn entries_round_trip_and_the_latest_wins() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("checkpoint");
        let ckpt = Checkpoint::open(&dir).unwrap();
        assert_eq!(ckpt.latest_offsets().unwrap(), None);
        for n in 0..3 {
            ckpt.write_offsets(&OffsetEntry {
                batch_id: n,
                input: BatchInput::Kafka {
                    ranges: BTreeMap::from([(0, (n as i64 * 10, n as i64 * 10 + 10))]),
                },
                watermark_ms: Some(5),
                sink_mark: SinkMark::new(),
                tables: BTreeMap::new(),
            })
            .unwrap();
        }
        ckpt.write_commit(&CommitEntry {
            batch_id: 1,
            watermark_ms: Some(7),
            output_rows: 3,
        })
        .unwrap();
        let latest = ckpt.latest_offsets().unwrap().unwrap();
        assert_eq!(latest.batch_id, 2);
        assert_eq!(
            latest.input,
            BatchInput::Kafka {
                ranges: BTreeMap::from([(0, (20, 30))])
            }
        );
        assert!(ckpt.commit_of(2).unwrap().is_none());
        assert_eq!(ckpt.commit_of(1).unwrap().unwrap().watermark_ms, Some(7));
    }

    #[test]
    fn an_earlier_versions_state_file_reads_as_partition_0_of_1() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("checkpoint");
        let ckpt = Checkpoint::open(&dir).unwrap();
        std::fs::write(dir.join("state").join(format!("{:020}", 4)), b"old").unwrap();
        assert_eq!(ckpt.metadata("q", 4).unwrap().state_partitions, 1);
        assert_eq!(ckpt.state_of(4, 0).unwrap().unwrap(), b"old");
        // The batch run again writes the new layout over it.
        ckpt.write_state(4, 0, b"new").unwrap();
        assert_eq!(ckpt.state_of(4, 0).unwrap().unwrap(), b"new");
        // A new checkpoint takes the number asked for, and keeps it.
        let fresh = temp.path().join("fresh");
        let ckpt = Checkpoint::open(&fresh).unwrap();
        assert_eq!(ckpt.metadata("q", 4).unwrap().state_partitions, 4);
        assert_eq!(
            ckpt.metadata("r", 8).unwrap(),
            Metadata {
                id: "q".into(),
                state_partitions: 4
            }
        );
    }
}
