//! The metadata quorum's Raft plumbing for `openraft` 0.9: the type configuration, the durable
//! log store and the state machine that applies [`Command`]s to [`ClusterMetadata`].
//!
//! Files under `<data-dir>/quorum/`:
//! - `log.jsonl`: one JSON entry per line, fsynced before an append is acknowledged to Raft; a
//!   torn last line (a crash mid-write) is dropped when the store opens. Truncation and purging
//!   rewrite the file atomically (the log is kept short by snapshots). Appends are written at
//!   once and fsynced by a thread of the store's own (so no fsync blocks a tokio worker), one
//!   `fdatasync` for every append written meanwhile; an append is acknowledged ([`LogFlushed`])
//!   only once an fsync that began after it has ended. That grouping does not happen with
//!   openraft 0.9: its core waits for each append's acknowledgement before it hands the store
//!   the next (`RaftCore::append_to_log`), so every append still gets an fsync of its own.
//! - `vote.json`, `purged.json`: the vote and the last purged log id, written atomically and
//!   fsynced. `committed.json`: the last known commit (a hint that lets a restarted broker apply
//!   its log before it hears from a leader), written in place at a fixed size without fsync,
//!   and read back only when it names an entry of the log (not past its end, same leader).
//! - `snapshot.json`: the state machine as of its last applied entry. The state machine itself
//!   lives in memory; a restart loads the snapshot and re-applies the log after it.
//!
//! The state machine publishes every change as a [`MetadataView`] on a `watch` channel: that is
//! how the rest of the broker reads metadata (never by locking the state machine).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::metadata::{ClusterMetadata, Command, Outcome};
use crate::groups::offsets::{self, OffsetRecord, SharedOffsets};
use crate::txn::{self, SharedTxns, TxnRecord};

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
);

/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft storage error.
pub type StoreError = StorageError<u64>;

/// The metadata as of an applied log index.
#[derive(Clone, Debug, Default)]
pub struct MetadataView {
    /// The metadata.
    pub meta: ClusterMetadata,
    /// The last applied Raft log index (0 before anything is applied).
    pub applied_index: u64,
}

fn write_error(error: impl std::error::Error + 'static) -> StoreError {
    StorageIOError::write(&error).into()
}
fn read_error(error: impl std::error::Error + 'static) -> StoreError {
    StorageIOError::read(&error).into()
}

/// The size `committed.json` is written at (its JSON padded with spaces).
const COMMITTED_HINT_LEN: usize = 128;

/// Writes `value` as JSON to `dir/name` atomically, fsynced.
fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{} is corrupt: {e}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

type LogEntry = Entry<TypeConfig>;

struct LogInner {
    dir: PathBuf,
    file: std::fs::File,
    entries: BTreeMap<u64, LogEntry>,
    last_purged: Option<LogId<u64>>,
    /// Appends written to `file` but not yet fsynced: acknowledged, in order, by the next fsync.
    unsynced: Vec<LogFlushed<TypeConfig>>,
}

impl LogInner {
    /// Fsyncs the log now and acknowledges every append waiting for it (before a truncation or
    /// a purge, so acknowledgements never cross them).
    fn sync_now(&mut self) -> std::io::Result<()> {
        let waiting = std::mem::take(&mut self.unsynced);
        let result = self.file.sync_data();
        acknowledge(waiting, &result);
        result
    }

    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.dir.join("log.jsonl.tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for entry in self.entries.values() {
            serde_json::to_writer(&mut out, entry).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("log.jsonl"))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("log.jsonl"))?;
        Ok(())
    }
}

/// Acknowledges `waiting` appends with the outcome of the fsync that covered them.
fn acknowledge(waiting: Vec<LogFlushed<TypeConfig>>, result: &std::io::Result<()>) {
    for callback in waiting {
        callback.log_io_completed(match result {
            Ok(()) => Ok(()),
            Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
        });
    }
}

/// The group-commit thread: on each wake-up, one fsync for every append written so far, then
/// their acknowledgements. Ends when every [`LogStore`] clone (every sender) is dropped.
fn run_syncer(inner: &Mutex<LogInner>, wake: &std::sync::mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        while wake.try_recv().is_ok() {}
        let (waiting, file) = {
            let mut guard = lock(inner);
            if guard.unsynced.is_empty() {
                continue;
            }
            (std::mem::take(&mut guard.unsynced), guard.file.try_clone())
        };
        // A rewrite may replace the file meanwhile: it fsyncs every entry it keeps itself, so
        // syncing the file these appends went to is enough.
        let result = file.and_then(|f| f.sync_data());
        if let Err(error) = &result {
            tracing::error!(%error, "cannot fsync the Raft log");
        }
        acknowledge(waiting, &result);
    }
}

/// The durable Raft log (and vote).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    /// Wakes the group-commit thread ([`run_syncer`]).
    sync: std::sync::mpsc::Sender<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LogStore {
    /// Opens `dir/log.jsonl`, dropping a torn last line.
    ///
    /// # Errors
    /// When the files cannot be read or are corrupt before their last line.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log.jsonl");
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error),
        };
        let mut entries = BTreeMap::new();
        let mut torn = false;
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            if i + 1 == count {
                // Text after the last newline: an append cut short before its fsync (so never
                // acknowledged), even when it happens to parse.
                torn = true;
                continue;
            }
            match serde_json::from_slice::<LogEntry>(line) {
                Ok(entry) => {
                    entries.insert(entry.log_id.index, entry);
                }
                // Only the last line may be torn (written but not yet acknowledged).
                Err(_) if i + 1 == count => torn = true,
                Err(error) => {
                    return Err(std::io::Error::other(format!(
                        "{} line {} is corrupt: {error}",
                        path.display(),
                        i + 1
                    )));
                }
            }
        }
        let last_purged = read_json(&dir.join("purged.json"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut inner = LogInner {
            dir: dir.to_owned(),
            file,
            entries,
            last_purged,
            unsynced: Vec::new(),
        };
        if torn {
            tracing::warn!(path = %path.display(), "dropped a torn last Raft log entry");
            inner.rewrite()?;
        }
        let inner = Arc::new(Mutex::new(inner));
        let (sync, wake) = std::sync::mpsc::channel();
        let syncer = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(&syncer, &wake))?;
        Ok(LogStore { inner, sync })
    }
}

impl LogStore {
    /// Whether a commit hint names an entry of the log as it is: not past its last entry, and
    /// the same entry (index and leader) where it has one (a hint past the log, or from an
    /// entry since overwritten, would keep the node from starting; it is dropped and re-learned
    /// from the leader).
    fn matches_log(&self, hint: &LogId<u64>) -> bool {
        let inner = lock(&self.inner);
        if let Some(entry) = inner.entries.get(&hint.index) {
            return entry.log_id == *hint;
        }
        // Purged (only applied, so committed, entries are): nothing to compare below it.
        inner
            .last_purged
            .is_some_and(|purged| hint.index < purged.index || purged == *hint)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StoreError> {
        let inner = lock(&self.inner);
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StoreError> {
        let dir = lock(&self.inner).dir.clone();
        write_atomic(&dir, "vote.json", vote).map_err(write_error)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StoreError> {
        let dir = lock(&self.inner).dir.clone();
        read_json(&dir.join("vote.json")).map_err(read_error)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StoreError> {
        let dir = lock(&self.inner).dir.clone();
        // A hint only (a lost one is re-learned from the leader): no fsync, and written in place
        // rather than renamed over, which would make ext4 write the file out (and discard the
        // old one's blocks) on every commit. One write of a fixed size (JSON padded with
        // spaces) into the same sector: never a mix of an old and a new value.
        let mut bytes = serde_json::to_vec(&committed).map_err(write_error)?;
        if bytes.len() < COMMITTED_HINT_LEN {
            bytes.resize(COMMITTED_HINT_LEN, b' ');
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("committed.json"))
            .map_err(write_error)?;
        file.write_all(&bytes).map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StoreError> {
        let dir = lock(&self.inner).dir.clone();
        match read_json(&dir.join("committed.json")) {
            Ok(committed) => Ok(committed.flatten().filter(|hint| self.matches_log(hint))),
            // A hint only: a torn one (a crash as it was first written) is no commit.
            Err(error) if error.kind() == std::io::ErrorKind::Other => {
                tracing::warn!(%error, "ignoring the Raft commit hint");
                Ok(None)
            }
            Err(error) => Err(read_error(error)),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = lock(&self.inner);
        let result = (|| {
            let mut buf = Vec::new();
            let mut new = Vec::new();
            for entry in entries {
                serde_json::to_writer(&mut buf, &entry).map_err(std::io::Error::other)?;
                buf.push(b'\n');
                new.push(entry);
            }
            inner.file.write_all(&buf)?;
            for entry in new {
                inner.entries.insert(entry.log_id.index, entry);
            }
            Ok::<(), std::io::Error>(())
        })();
        match result {
            Ok(()) => {
                // Acknowledged by the group-commit thread once fsynced.
                inner.unsynced.push(callback);
                drop(inner);
                if self.sync.send(()).is_err() {
                    // The thread is gone (it never ends while a store lives): sync here.
                    lock(&self.inner).sync_now().map_err(write_error)?;
                }
                Ok(())
            }
            Err(error) => {
                drop(inner);
                let message = error.to_string();
                callback.log_io_completed(Err(error));
                Err(write_error(std::io::Error::other(message)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        inner.sync_now().map_err(write_error)?;
        inner.entries.retain(|index, _| *index < log_id.index);
        inner.rewrite().map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        inner.sync_now().map_err(write_error)?;
        write_atomic(&inner.dir, "purged.json", &log_id).map_err(write_error)?;
        inner.last_purged = Some(log_id);
        inner.entries.retain(|index, _| *index > log_id.index);
        inner.rewrite().map_err(write_error)
    }
}

/// What a snapshot holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SnapshotData {
    meta: ClusterMetadata,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// Committed consumer-group offsets (kept in the shared map between snapshots).
    #[serde(default)]
    offsets: Vec<OffsetRecord>,
    /// Transactions by transactional id (kept in the shared map between snapshots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transactions: Vec<TxnRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

struct MachineInner {
    dir: PathBuf,
    /// `state.offsets` and `state.transactions` are empty in memory: they live in `offsets` and
    /// `txns`.
    state: SnapshotData,
    offsets: SharedOffsets,
    txns: SharedTxns,
    snapshot: Option<StoredSnapshot>,
    snapshot_seq: u64,
}

/// The state machine: metadata in memory, published on every apply.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<MachineInner>>,
    published: Arc<watch::Sender<Arc<MetadataView>>>,
}

impl StateMachine {
    /// Loads the last snapshot from `dir` (if any).
    ///
    /// # Errors
    /// When the snapshot cannot be read or is corrupt.
    pub fn open(
        dir: &Path,
        offsets: SharedOffsets,
        txns: SharedTxns,
    ) -> std::io::Result<(StateMachine, watch::Receiver<Arc<MetadataView>>)> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<StoredSnapshot> = read_json(&dir.join("snapshot.json"))?;
        let mut state: SnapshotData = match &snapshot {
            Some(s) => serde_json::from_slice(&s.data).map_err(std::io::Error::other)?,
            None => SnapshotData::default(),
        };
        *lock(&offsets) = offsets::from_records(std::mem::take(&mut state.offsets));
        *lock(&txns) = txn::from_records(std::mem::take(&mut state.transactions));
        let view = Arc::new(MetadataView {
            meta: state.meta.clone(),
            applied_index: state.last_applied.map_or(0, |l| l.index),
        });
        let (sender, receiver) = watch::channel(view);
        Ok((
            StateMachine {
                inner: Arc::new(Mutex::new(MachineInner {
                    dir: dir.to_owned(),
                    state,
                    offsets,
                    txns,
                    snapshot,
                    snapshot_seq: 0,
                })),
                published: Arc::new(sender),
            },
            receiver,
        ))
    }

    fn publish(&self, inner: &MachineInner) {
        self.published.send_replace(Arc::new(MetadataView {
            meta: inner.state.meta.clone(),
            applied_index: inner.state.last_applied.map_or(0, |l| l.index),
        }));
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let mut inner = lock(&self.inner);
        let mut state = inner.state.clone();
        state.offsets = offsets::to_records(&lock(&inner.offsets));
        state.transactions = txn::to_records(&lock(&inner.txns));
        let data = serde_json::to_vec(&state).map_err(write_error)?;
        inner.snapshot_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.state.last_applied,
            last_membership: inner.state.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                inner.state.last_applied.map_or(0, |l| l.index),
                inner.snapshot_seq
            ),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        write_atomic(&inner.dir, "snapshot.json", &stored).map_err(write_error)?;
        inner.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StoreError> {
        let inner = lock(&self.inner);
        Ok((inner.state.last_applied, inner.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StoreError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = lock(&self.inner);
        let mut outcomes = Vec::new();
        for entry in entries {
            inner.state.last_applied = Some(entry.log_id);
            let outcome = match &entry.payload {
                EntryPayload::Blank => Outcome::Ok,
                EntryPayload::Normal(Command::CommitOffsets {
                    group,
                    offsets: committed,
                }) => {
                    offsets::apply_commit(&mut lock(&inner.offsets), group, committed);
                    Outcome::Ok
                }
                EntryPayload::Normal(Command::SyncGroupOffsets {
                    link,
                    group,
                    offsets: copied,
                }) => {
                    offsets::apply_sync(&mut lock(&inner.offsets), link, group, copied);
                    Outcome::Ok
                }
                EntryPayload::Normal(Command::DeleteGroup { group }) => {
                    offsets::apply_delete(&mut lock(&inner.offsets), group);
                    Outcome::Ok
                }
                EntryPayload::Normal(Command::Transaction(command)) => {
                    // Transactions before offsets, always in this order (a commit's completion
                    // writes both).
                    let mut txns = lock(&inner.txns);
                    match txn::apply(&mut txns, &mut lock(&inner.offsets), command) {
                        Ok(()) => Outcome::Ok,
                        Err(error) => Outcome::Refused {
                            code: error.code,
                            message: error.message,
                        },
                    }
                }
                EntryPayload::Normal(command) => {
                    if let Command::DeleteTopic { name } = command {
                        // Kafka drops a deleted topic's committed offsets.
                        for entries in lock(&inner.offsets).values_mut() {
                            entries.retain(|(topic, _), _| topic != name);
                        }
                    }
                    let outcome = inner.state.meta.apply(command);
                    tracing::debug!(
                        index = entry.log_id.index,
                        ?command,
                        ?outcome,
                        "metadata applied"
                    );
                    outcome
                }
                EntryPayload::Membership(membership) => {
                    inner.state.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    Outcome::Ok
                }
            };
            outcomes.push(outcome);
        }
        self.publish(&inner);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StoreError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let data = snapshot.into_inner();
        let mut state: SnapshotData = serde_json::from_slice(&data).map_err(read_error)?;
        let mut inner = lock(&self.inner);
        *lock(&inner.offsets) = offsets::from_records(std::mem::take(&mut state.offsets));
        *lock(&inner.txns) = txn::from_records(std::mem::take(&mut state.transactions));
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        write_atomic(&inner.dir, "snapshot.json", &stored).map_err(write_error)?;
        inner.state = state;
        inner.snapshot = Some(stored);
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
