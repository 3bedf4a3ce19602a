//! The transaction coordinator's state (KIP-98): one [`TxnRecord`] per transactional id, the pure
//! transitions the coordinator makes on it, and the [`TxnCommand`]s that replicate it.
//!
//! Records live in a map shared between the metadata quorum's state machine, which changes it
//! when a [`TxnCommand`] is applied (on every broker, so whichever broker coordinates next has
//! every transaction), and the coordinator, which reads it (`txn_coordinator.rs`). Snapshots carry
//! the map as a list. Every change is a compare-and-set on the record's `version`: a change
//! computed from a stale record is refused, so two coordinators (an old one and a new one) can
//! never interleave their changes.
//!
//! Transitions, as Kafka's `TransactionMetadata`:
//! - `Empty`/`Complete*` → `Ongoing` when a partition or a group is added;
//! - `Ongoing` → `PrepareCommit`/`PrepareAbort` on EndTxn (or `PrepareAbort` when the
//!   transaction times out, or a new producer instance initialises while it is open; both bump
//!   the epoch to fence the old producer);
//! - `Prepare*` → `Complete*` once every partition holds the transaction's marker;
//! - `Empty`/`Complete*` → `Empty` (epoch + 1) on InitProducerId.
//!
//! A transaction's offsets (TxnOffsetCommit) are kept in its record and applied to the
//! committed offsets by the very apply that completes the commit; an abort drops them. An id
//! idle past `transactional.id.expiration.ms` is removed (Kafka's `Dead`, which is a state here
//! only as a name ListTransactions filters know).
//!
//! Nothing here does I/O or knows the cluster: the coordinator proposes, the state machine
//! applies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdi_kafka_client::codes;
use serde::{Deserialize, Serialize};

use crate::groups::offsets::{self, OffsetMap};
use crate::state::KafkaError;

/// Kafka's `transaction.max.timeout.ms` default: a longer `transaction.timeout.ms` is refused.
pub const MAX_TIMEOUT_MS: i32 = crate::producers::MAX_TRANSACTION_TIMEOUT_MS;
/// Kafka's `transactional.id.expiration.ms` default: an id idle this long is removed.
pub const ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;

/// A transaction's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions or groups were added.
    Ongoing,
    /// EndTxn(commit) was accepted: markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a new producer instance: markers are being written.
    PrepareAbort,
    /// Every partition holds the commit marker.
    CompleteCommit,
    /// Every partition holds the abort marker.
    CompleteAbort,
    /// Expired (never stored: an expired id is removed).
    Dead,
}

impl TxnState {
    /// Every state, for ListTransactions filters.
    pub const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
    ];

    /// Kafka's name for it (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    /// The state named `name` (as Kafka spells it).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether markers are being written (`PrepareCommit`/`PrepareAbort`).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether no transaction is open (`Empty`/`Complete*`).
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// An offset a transaction commits for a group (applied when the transaction commits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffset {
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

/// One transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer epoch.
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none): a retried InitProducerId naming it is answered
    /// with the current one instead of being fenced (KIP-360).
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// State.
    pub state: TxnState,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added by AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    /// Offsets committed in the transaction (TxnOffsetCommit), not visible until it commits.
    pub pending_offsets: Vec<TxnOffset>,
    /// When (Unix ms) the open transaction began (-1: none open).
    pub start_ms: i64,
    /// When (Unix ms) the record last changed.
    pub last_update_ms: i64,
    /// Bumped by every applied change (compare-and-set).
    pub version: u64,
}

impl TxnRecord {
    /// A new transactional id's record: producer `producer_id` at epoch 0, `Empty`.
    pub fn new(id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnRecord {
        TxnRecord {
            transactional_id: id.to_owned(),
            producer_id,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            version: 0,
        }
    }

    /// Whether its pending offsets include `group`'s offset of `topic`-`partition`.
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_offsets
            .iter()
            .any(|o| o.group == group && o.topic == topic && o.partition == partition)
    }

    /// Whether the open transaction has passed its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms >= self.start_ms.saturating_add(i64::from(self.timeout_ms))
    }

    /// Whether the id has been idle past [`ID_EXPIRATION_MS`] at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.state.is_idle() && now_ms >= self.last_update_ms.saturating_add(ID_EXPIRATION_MS)
    }

    fn changed(&self, now_ms: i64) -> TxnRecord {
        let mut next = self.clone();
        next.last_update_ms = now_ms;
        next
    }

    /// The epoch bumped to fence the current producer (kept at its maximum when exhausted:
    /// then only InitProducerId, which moves to a new producer id, goes on).
    fn fenced(&self, now_ms: i64) -> TxnRecord {
        let mut next = self.changed(now_ms);
        if self.producer_epoch < i16::MAX - 1 {
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch += 1;
        }
        next
    }

    /// Checks a request's producer id and epoch against the record.
    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), i16> {
        if producer_id != self.producer_id {
            Err(codes::INVALID_PRODUCER_ID_MAPPING)
        } else if producer_epoch != self.producer_epoch {
            Err(codes::PRODUCER_FENCED)
        } else {
            Ok(())
        }
    }
}

/// An offset as `CommitOffsets` carries it: `(topic, partition, offset, metadata)`.
pub type CommittedOffset = (String, i32, i64, Option<String>);

/// Records by transactional id.
pub type TxnMap = BTreeMap<String, TxnRecord>;

/// The map shared by the state machine (writer) and the coordinator (reader).
pub type SharedTxns = Arc<Mutex<TxnMap>>;

/// A change to the transactions, replicated through the metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnCommand {
    /// Stores `record` if the stored record's version is `expected_version` (0: no record).
    Put {
        /// The new state (its `version` is set by the apply).
        record: TxnRecord,
        /// The version it was computed from.
        expected_version: u64,
    },
    /// Removes an expired transactional id if its version is still `expected_version`.
    Remove {
        /// The transactional id.
        transactional_id: String,
        /// The version it was found expired at.
        expected_version: u64,
    },
}

/// Applies a committed [`TxnCommand`]: a commit's completion moves its pending offsets into
/// `offsets` in the same step. Refused (CONCURRENT_TRANSACTIONS) when the record changed since
/// the proposer read it.
pub fn apply(
    txns: &mut TxnMap,
    offsets: &mut OffsetMap,
    command: &TxnCommand,
) -> Result<(), KafkaError> {
    let (id, expected) = match command {
        TxnCommand::Put {
            record,
            expected_version,
        } => (&record.transactional_id, *expected_version),
        TxnCommand::Remove {
            transactional_id,
            expected_version,
        } => (transactional_id, *expected_version),
    };
    let stored = txns.get(id).map_or(0, |r| r.version);
    if stored != expected {
        return Err(KafkaError::new(
            codes::CONCURRENT_TRANSACTIONS,
            format!("transactional id {id:?} changed (version {stored}, not {expected})"),
        ));
    }
    match command {
        TxnCommand::Remove { .. } => {
            txns.remove(id);
        }
        TxnCommand::Put { record, .. } => {
            let mut next = record.clone();
            next.version = expected + 1;
            let previous = txns.get(id);
            if next.state == TxnState::CompleteCommit
                && let Some(previous) = previous
                && previous.state == TxnState::PrepareCommit
            {
                let mut by_group: BTreeMap<&str, Vec<CommittedOffset>> = BTreeMap::new();
                for o in &previous.pending_offsets {
                    by_group.entry(&o.group).or_default().push((
                        o.topic.clone(),
                        o.partition,
                        o.offset,
                        o.metadata.clone(),
                    ));
                }
                for (group, committed) in by_group {
                    offsets::apply_commit(offsets, group, &committed);
                }
            }
            if next.state != TxnState::Ongoing && !next.state.is_preparing() {
                next.pending_offsets.clear();
            }
            txns.insert(id.clone(), next);
        }
    }
    Ok(())
}

/// One record per transactional id, for snapshots.
pub fn to_records(map: &TxnMap) -> Vec<TxnRecord> {
    map.values().cloned().collect()
}

/// The map from snapshot records.
pub fn from_records(records: Vec<TxnRecord>) -> TxnMap {
    records
        .into_iter()
        .map(|r| (r.transactional_id.clone(), r))
        .collect()
}

/// What InitProducerId does with a transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitStep {
    /// Store this record and answer with its producer id and epoch.
    Ready(TxnRecord),
    /// Answer with the stored producer id and epoch (a retry of an answered request).
    Unchanged,
    /// An open transaction is aborted first (this `PrepareAbort` record, epoch bumped): the
    /// client gets CONCURRENT_TRANSACTIONS and retries.
    AbortFirst(TxnRecord),
}

/// InitProducerId for a transactional id: `current` is its record, `expected` the producer id
/// and epoch the client already holds (KIP-360, `None` for a new instance), `fresh_id` hands out
/// a new producer id.
///
/// # Errors
/// A Kafka error code.
pub fn init_producer(
    id: &str,
    current: Option<&TxnRecord>,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    now_ms: i64,
    fresh_id: impl FnOnce() -> Result<i64, i16>,
) -> Result<InitStep, i16> {
    if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(codes::INVALID_TRANSACTION_TIMEOUT);
    }
    let Some(current) = current else {
        return Ok(InitStep::Ready(TxnRecord::new(
            id,
            fresh_id()?,
            timeout_ms,
            now_ms,
        )));
    };
    if current.state.is_preparing() || current.state == TxnState::Dead {
        return Err(codes::CONCURRENT_TRANSACTIONS);
    }
    if let Some((producer_id, epoch)) = expected {
        if producer_id != current.producer_id {
            return Err(codes::PRODUCER_FENCED);
        }
        if epoch != current.producer_epoch {
            // A retry whose answer was lost names the epoch before the last bump.
            return if epoch == current.last_producer_epoch && current.state == TxnState::Empty {
                Ok(InitStep::Unchanged)
            } else {
                Err(codes::PRODUCER_FENCED)
            };
        }
    }
    if current.state == TxnState::Ongoing {
        let mut abort = current.fenced(now_ms);
        abort.state = TxnState::PrepareAbort;
        return Ok(InitStep::AbortFirst(abort));
    }
    let mut next = current.changed(now_ms);
    if current.producer_epoch >= i16::MAX - 1 {
        // Epoch exhausted: a new producer id starts at epoch 0.
        next.producer_id = fresh_id()?;
        next.producer_epoch = 0;
        next.last_producer_epoch = -1;
    } else {
        // Only the instance that named its epoch may retry with it (KIP-360); a new instance's
        // bump fences the old one, which must not get the new epoch back by naming its own.
        next.last_producer_epoch = if expected.is_some() {
            current.producer_epoch
        } else {
            -1
        };
        next.producer_epoch = current.producer_epoch + 1;
    }
    next.timeout_ms = timeout_ms;
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.groups.clear();
    next.pending_offsets.clear();
    next.start_ms = -1;
    Ok(InitStep::Ready(next))
}

/// The record with an open transaction, for adding to it: `None` when nothing changes.
fn open_transaction(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    now_ms: i64,
) -> Result<TxnRecord, i16> {
    current.check_producer(producer_id, producer_epoch)?;
    if current.state.is_preparing() {
        return Err(codes::CONCURRENT_TRANSACTIONS);
    }
    if current.state == TxnState::Dead {
        return Err(codes::INVALID_PRODUCER_ID_MAPPING);
    }
    let mut next = current.changed(now_ms);
    if current.state != TxnState::Ongoing {
        next.state = TxnState::Ongoing;
        next.start_ms = now_ms;
        next.partitions.clear();
        next.groups.clear();
        next.pending_offsets.clear();
    }
    Ok(next)
}

/// AddPartitionsToTxn: the record to store, or `None` when every partition is already in the
/// open transaction.
///
/// # Errors
/// A Kafka error code for every partition.
pub fn add_partitions(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(String, i32)],
    now_ms: i64,
) -> Result<Option<TxnRecord>, i16> {
    let mut next = open_transaction(current, producer_id, producer_epoch, now_ms)?;
    if current.state == TxnState::Ongoing
        && partitions.iter().all(|p| current.partitions.contains(p))
    {
        return Ok(None);
    }
    next.partitions.extend(partitions.iter().cloned());
    Ok(Some(next))
}

/// AddOffsetsToTxn: the record to store, or `None` when the group is already in the open
/// transaction.
///
/// # Errors
/// A Kafka error code.
pub fn add_offsets(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    group: &str,
    now_ms: i64,
) -> Result<Option<TxnRecord>, i16> {
    let mut next = open_transaction(current, producer_id, producer_epoch, now_ms)?;
    if current.state == TxnState::Ongoing && current.groups.contains(group) {
        return Ok(None);
    }
    next.groups.insert(group.to_owned());
    Ok(Some(next))
}

/// TxnOffsetCommit: the record with `offsets` (group's, `(topic, partition, offset,
/// metadata)`) pending in the open transaction, which must have added the group.
///
/// # Errors
/// A Kafka error code for every partition.
pub fn commit_offsets(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    group: &str,
    committed: &[CommittedOffset],
    now_ms: i64,
) -> Result<TxnRecord, i16> {
    current.check_producer(producer_id, producer_epoch)?;
    if current.state.is_preparing() {
        return Err(codes::CONCURRENT_TRANSACTIONS);
    }
    if current.state != TxnState::Ongoing || !current.groups.contains(group) {
        return Err(codes::INVALID_TXN_STATE);
    }
    let mut next = current.changed(now_ms);
    for (topic, partition, offset, metadata) in committed {
        next.pending_offsets
            .retain(|o| !(o.group == group && o.topic == *topic && o.partition == *partition));
        next.pending_offsets.push(TxnOffset {
            group: group.to_owned(),
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
            metadata: metadata.clone(),
        });
    }
    Ok(next)
}

/// What EndTxn does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Store this `Prepare*` record, answer, then write the markers.
    Prepare(TxnRecord),
    /// The same outcome is already complete (a retry): answer NONE.
    AlreadyDone,
}

/// EndTxn: commit (`commit`) or abort the open transaction.
///
/// # Errors
/// A Kafka error code: CONCURRENT_TRANSACTIONS while the same outcome is still completing.
pub fn end_transaction(
    current: &TxnRecord,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<EndStep, i16> {
    current.check_producer(producer_id, producer_epoch)?;
    match (current.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut next = current.changed(now_ms);
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            Ok(EndStep::Prepare(next))
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(codes::CONCURRENT_TRANSACTIONS)
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndStep::AlreadyDone)
        }
        _ => Err(codes::INVALID_TXN_STATE),
    }
}

/// The `Complete*` record of a `Prepare*` one whose markers are all written (`None` when it is
/// not preparing).
pub fn complete(current: &TxnRecord, now_ms: i64) -> Option<TxnRecord> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let mut next = current.changed(now_ms);
    next.state = state;
    next.partitions.clear();
    next.groups.clear();
    next.start_ms = -1;
    Some(next)
}

/// The `PrepareAbort` record (epoch bumped, fencing the producer) of a transaction past its
/// timeout at `now_ms`, as Kafka's coordinator aborts it (`None` when it has not timed out).
pub fn abort_timed_out(current: &TxnRecord, now_ms: i64) -> Option<TxnRecord> {
    if !current.timed_out(now_ms) {
        return None;
    }
    let mut next = current.fenced(now_ms);
    next.state = TxnState::PrepareAbort;
    Some(next)
}

/// The coordinator's local state: the replicated records it reads, the term whose records it has
/// loaded, a lock per transactional id (requests for one id are handled one at a time) and the
/// ids whose markers it is writing.
pub struct TxnCoordinator {
    /// The replicated records (written by the state machine only).
    pub shared: SharedTxns,
    loaded_term: AtomicU64,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    completing: Mutex<HashSet<String>>,
    /// Ids whose markers a partition fenced (it saw a newer coordinator epoch), with the
    /// coordinator epoch they were fenced at: not retried until the epoch changes.
    fenced: Mutex<HashMap<String, i32>>,
    /// Woken when a transaction enters `Prepare*` (its markers are due).
    pub wake: tokio::sync::Notify,
    /// Woken (every waiter) when a transaction's `Complete*` state is committed.
    pub completed: tokio::sync::Notify,
}

impl Default for TxnCoordinator {
    fn default() -> Self {
        TxnCoordinator::new(SharedTxns::default())
    }
}

impl TxnCoordinator {
    /// A coordinator over `shared`.
    pub fn new(shared: SharedTxns) -> TxnCoordinator {
        TxnCoordinator {
            shared,
            loaded_term: AtomicU64::new(0),
            locks: Mutex::default(),
            completing: Mutex::default(),
            fenced: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            completed: tokio::sync::Notify::new(),
        }
    }

    /// The record of `id`.
    pub fn get(&self, id: &str) -> Option<TxnRecord> {
        crate::state::lock(&self.shared).get(id).cloned()
    }

    /// Every record.
    pub fn all(&self) -> Vec<TxnRecord> {
        crate::state::lock(&self.shared).values().cloned().collect()
    }

    /// Whether any transaction holds an uncommitted offset of `group` for `topic`-`partition`.
    pub fn offset_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        crate::state::lock(&self.shared)
            .values()
            .any(|r| r.has_pending_offset(group, topic, partition))
    }

    /// Open transactions (`Ongoing` or `Prepare*`), for the metrics.
    pub fn open_count(&self) -> usize {
        crate::state::lock(&self.shared)
            .values()
            .filter(|r| r.state == TxnState::Ongoing || r.state.is_preparing())
            .count()
    }

    /// Marks the records as loaded for Raft term `term` (the coordinator serves from then on).
    pub fn set_loaded(&self, term: u64) {
        self.loaded_term.store(term, Ordering::SeqCst);
    }

    /// Whether the records are loaded for `term`.
    pub fn loaded(&self, term: u64) -> bool {
        term > 0 && self.loaded_term.load(Ordering::SeqCst) == term
    }

    /// The lock serialising requests for `id`.
    pub fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = crate::state::lock(&self.locks);
        // Drop the locks nobody holds or waits for, so the map stays as small as the work.
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }

    /// Claims `id` for writing its markers: `false` when it is already being completed.
    pub fn claim(&self, id: &str) -> bool {
        crate::state::lock(&self.completing).insert(id.to_owned())
    }

    /// Releases a claim.
    pub fn release(&self, id: &str) {
        crate::state::lock(&self.completing).remove(id);
    }

    /// Remembers that a partition refused `id`'s marker from coordinator epoch
    /// `coordinator_epoch` as fenced (TRANSACTION_COORDINATOR_FENCED): a newer coordinator
    /// exists, so this one stops writing the markers until its epoch changes.
    pub fn mark_fenced(&self, id: &str, coordinator_epoch: i32) {
        crate::state::lock(&self.fenced).insert(id.to_owned(), coordinator_epoch);
    }

    /// Whether `id`'s markers were fenced at `coordinator_epoch` (forgetting fences of other
    /// epochs: a new term may write them again).
    pub fn is_fenced(&self, id: &str, coordinator_epoch: i32) -> bool {
        let mut fenced = crate::state::lock(&self.fenced);
        fenced.retain(|_, epoch| *epoch == coordinator_epoch);
        fenced.contains_key(id)
    }
}

/// A refusal for the wire: for requests of `version` below `fenced_since`, PRODUCER_FENCED is
/// answered as INVALID_PRODUCER_EPOCH (KIP-588, as Kafka maps it).
pub fn versioned(code: i16, version: i16, fenced_since: i16) -> i16 {
    if code == codes::PRODUCER_FENCED && version < fenced_since {
        codes::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

#[cfg(test)]
mod tests;
