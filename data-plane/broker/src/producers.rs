//! Idempotent and transactional producers: producer-id allocation (durable) and per-partition
//! producer state (sequences, ongoing transactions, aborted transactions).
//!
//! Per partition and producer the broker keeps the producer epoch and the last five batches'
//! sequence ranges with their offsets, as Kafka does. A batch whose range equals a remembered one
//! is a retry: it is not appended again, and the original offset is returned. A batch that does
//! not continue the last sequence is refused with OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Transactions (KIP-98), the partition side: a transactional batch of a producer with no
//! transaction open in the partition opens one at its base offset; a transaction marker (a
//! control batch, [`TxnMarker`]) written by the coordinator's request ends it, committed or
//! aborted. Aborted transactions are kept (producer id, first offset, marker offset) for
//! `read_committed` fetches, and the **last stable offset** is the high watermark, or the first
//! offset of the earliest transaction not yet decided (or whose marker is not yet below the high
//! watermark), whichever is lower.
//!
//! All of it is rebuilt from the log when a partition opens (the batch headers carry producer
//! id, epoch, base sequence and the transactional and control bits; a marker's record says commit
//! or abort), so it survives a restart and a follower that becomes leader knows the open
//! transactions. Producers idle for `producer.id.expiration.ms` are forgotten, except those with
//! a transaction open.
//!
//! Hanging transactions (KIP-890 part 1): a transactional batch that would open a transaction
//! here is appended only with a [`VerificationGuard`] the partition handed out
//! ([`ProducerStates::begin_verification`]) before the transaction coordinator confirmed that
//! the producer's epoch is current and the partition is in its ongoing transaction. A marker for
//! the producer drops the guard, so a verification that raced with the transaction's end cannot
//! open a new one; a failed one drops its own ([`ProducerStates::end_verification`]). A batch
//! below the producer's epoch here, or below a guard's under way, is refused at once
//! (INVALID_PRODUCER_EPOCH): a zombie never replaces its successor's guard. Batches of a transaction already open here at the same epoch need no guard
//! (the steady state costs nothing). A producer id that wrote transactionally here may not write
//! plain batches (INVALID_TXN_STATE), so no client raises its epoch here without the coordinator.
//! Transactions open longer than [`HANGING_AFTER_MS`] are counted as hanging
//! ([`ProducerStates::hanging`]); nothing aborts them here (Kafka's `kafka-transactions.sh
//! find-hanging` and DescribeProducers find them).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdi_kafka_client::codes;
use hdi_log::BatchHeader;
use serde::{Deserialize, Serialize};

/// Kafka's `transaction.max.timeout.ms` default: no transaction may be open longer, so one
/// open on a partition longer than this plus [`HANGING_MARGIN_MS`] is hanging (its marker was
/// never written: a batch the coordinator never knew of).
pub const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;
/// The margin past [`MAX_TRANSACTION_TIMEOUT_MS`] for the coordinator's abort and its markers.
pub const HANGING_MARGIN_MS: i64 = 300_000;
/// How long a partition-side transaction may be open before it counts as hanging.
pub const HANGING_AFTER_MS: i64 = MAX_TRANSACTION_TIMEOUT_MS as i64 + HANGING_MARGIN_MS;

/// The attributes bit of a transactional batch.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// The attributes bit of a control batch.
pub const CONTROL_BIT: i16 = 0x20;

/// A transaction marker for the partitions of one producer's transaction, as the transaction
/// coordinator asks for it (Kafka's WriteTxnMarkers entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMarker {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Its producer epoch (with Kafka 4's transaction protocol, possibly one above the data's).
    pub producer_epoch: i16,
    /// The coordinator's epoch for the transactional id: a marker from an older coordinator is
    /// fenced.
    pub coordinator_epoch: i32,
    /// Commit (`true`) or abort.
    pub commit: bool,
}

/// An aborted transaction in a partition: its producer, its first offset and the offset of its
/// abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    /// Producer id.
    pub producer_id: i64,
    /// The transaction's first offset in the partition.
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
}

/// A partition's permission to open a transaction of one producer at one epoch, handed out by
/// [`ProducerStates::begin_verification`] before the transaction coordinator is asked and
/// presented with the append once it agreed. Valid until a marker of the producer is written
/// here (or its transaction opens, when it is no longer needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationGuard {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch verified.
    pub producer_epoch: i16,
    token: u64,
}

/// Guard tokens, unique in the process (a partition's rebuilt state never matches an old one).
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// A producer's state on a partition, as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerDescription {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch here.
    pub producer_epoch: i16,
    /// The last sequence appended (-1 for none).
    pub last_sequence: i32,
    /// The last batch's max timestamp (ms).
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker (-1 for none).
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction (-1 for none).
    pub current_txn_start_offset: i64,
}

/// How many batches per producer are remembered for duplicate detection.
pub const REMEMBERED_BATCHES: usize = 5;
const SEQUENCE_MODULUS: i64 = 1 << 31;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchRange {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRange>,
    /// The coordinator epoch of the last marker (-1 before any).
    coordinator_epoch: i32,
    /// The first offset of the producer's open transaction here.
    txn_first_offset: Option<i64>,
    /// The last batch's max timestamp (ms): idle producers expire by it, as in Kafka.
    last_timestamp: i64,
    /// When its open transaction opened here (ms, the broker's clock: at the append, or when
    /// the state was rebuilt from the log or replicated; never the client's batch timestamp,
    /// which may be event time, long past).
    txn_started_ms: i64,
    /// It wrote a transactional batch or got a marker here: it may not write plain batches.
    transactional: bool,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_timestamp: -1,
            txn_started_ms: -1,
            transactional: false,
        }
    }
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append it.
    Append,
    /// A retry of an appended batch: answer with this base offset, append nothing.
    Duplicate(i64),
    /// Refuse it with this error code.
    Reject(i16),
}

/// The producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: `(first offset, producer id)`.
    ongoing: BTreeSet<(i64, i64)>,
    /// Decided transactions whose marker the high watermark has not passed yet:
    /// `(first offset, marker offset)`, in marker order. They still hold the last stable offset.
    unreplicated: VecDeque<(i64, i64)>,
    /// Aborted transactions, in marker order.
    aborted: VecDeque<AbortedTxn>,
    /// Verifications under way: producer id → (guard, when handed out in ms).
    verifications: HashMap<i64, (VerificationGuard, i64)>,
}

/// Whether a batch is transactional.
pub fn is_transactional(header: &BatchHeader) -> bool {
    header.attributes & TRANSACTIONAL_BIT != 0
}

/// A batch's last sequence: its base sequence plus its last offset delta, as Kafka computes it
/// (not its record count: the cleaner rewrites a batch with fewer records, or none, and keeps its
/// offset range, so a producer state rebuilt from a cleaned log still continues and still
/// recognises a retry of the original batch).
fn last_sequence(header: &BatchHeader) -> i32 {
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta))
        .rem_euclid(SEQUENCE_MODULUS)) as i32
}

impl ProducerStates {
    /// Decides about `header` (a batch with `producer_id >= 0`). A transactional batch that
    /// would open a transaction needs `guard`, verified by the coordinator, and still current
    /// here (INVALID_TXN_STATE otherwise).
    pub fn check(&self, header: &BatchHeader, guard: Option<&VerificationGuard>) -> Decision {
        let entry = self.producers.get(&header.producer_id);
        if entry.is_some_and(|entry| header.producer_epoch < entry.epoch) {
            return Decision::Reject(codes::INVALID_PRODUCER_EPOCH);
        }
        if is_transactional(header)
            && self.needs_verification(header.producer_id, header.producer_epoch)
            && !self.guard_holds(header, guard)
        {
            // Kafka: "Record was not part of an ongoing transaction".
            return Decision::Reject(codes::INVALID_TXN_STATE);
        }
        let Some(entry) = entry else {
            // Unknown producer (new, or its state aged out): accept its sequence as the start.
            return Decision::Append;
        };
        if entry.transactional && !is_transactional(header) {
            // Kafka: "Expected transactional write from producer" (while its transaction is
            // open; here for good: a transactional producer's id never writes plain batches).
            return Decision::Reject(codes::INVALID_TXN_STATE);
        }
        if header.producer_epoch > entry.epoch {
            // A bumped epoch starts over at sequence 0.
            return if header.base_sequence == 0 {
                Decision::Append
            } else {
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = last_sequence(header);
        if let Some(done) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return Decision::Duplicate(done.first_offset);
        }
        match entry.batches.back() {
            Some(prev)
                if (i64::from(prev.last_seq) + 1).rem_euclid(SEQUENCE_MODULUS)
                    != i64::from(header.base_sequence) =>
            {
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => Decision::Append,
        }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` would open a transaction here
    /// (and so needs the coordinator's verification): none of it is open at that epoch.
    pub fn needs_verification(&self, producer_id: i64, epoch: i16) -> bool {
        !self
            .producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == epoch)
    }

    /// A guard for opening a transaction of `producer_id` at `epoch` once the coordinator
    /// agrees (the one under way for that epoch, or a new one replacing one of a lower epoch).
    ///
    /// # Errors
    /// INVALID_PRODUCER_EPOCH, at once, for an epoch below the producer's here or below a
    /// guard's under way (a zombie's batch must not replace its successor's guard).
    pub fn begin_verification(
        &mut self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<VerificationGuard, i16> {
        if self
            .producers
            .get(&producer_id)
            .is_some_and(|entry| epoch < entry.epoch)
        {
            return Err(codes::INVALID_PRODUCER_EPOCH);
        }
        if let Some((guard, _)) = self.verifications.get(&producer_id) {
            if guard.producer_epoch == epoch {
                return Ok(*guard);
            }
            if epoch < guard.producer_epoch {
                return Err(codes::INVALID_PRODUCER_EPOCH);
            }
        }
        let guard = VerificationGuard {
            producer_id,
            producer_epoch: epoch,
            token: NEXT_GUARD.fetch_add(1, Ordering::Relaxed),
        };
        self.verifications.insert(producer_id, (guard, now_ms));
        Ok(guard)
    }

    /// Drops `guard` if it is still the one under way for its producer (its verification or
    /// append failed: a made-up producer id leaves nothing behind).
    pub fn end_verification(&mut self, guard: &VerificationGuard) {
        if self
            .verifications
            .get(&guard.producer_id)
            .is_some_and(|(held, _)| held == guard)
        {
            self.verifications.remove(&guard.producer_id);
        }
    }

    fn guard_holds(&self, header: &BatchHeader, guard: Option<&VerificationGuard>) -> bool {
        guard.is_some_and(|guard| {
            guard.producer_id == header.producer_id
                && guard.producer_epoch == header.producer_epoch
                && self
                    .verifications
                    .get(&header.producer_id)
                    .is_some_and(|(held, _)| held == guard)
        })
    }

    /// The highest producer id with state here (-1 for none).
    pub fn max_producer_id(&self) -> i64 {
        self.producers.keys().copied().max().unwrap_or(-1)
    }

    /// Records an appended data batch (its producer id, epoch and sequences; a transactional
    /// one opens its producer's transaction here if none is open). A control batch is ignored:
    /// see [`ProducerStates::record_batch`].
    pub fn record(&mut self, header: &BatchHeader) {
        self.record_at(header, header.max_timestamp);
    }

    /// [`ProducerStates::record`] of a batch the leader appends at `now_ms` (when a
    /// transaction it opens started).
    pub fn record_at(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchRange {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
        if is_transactional(header) {
            entry.transactional = true;
            if entry.txn_first_offset.is_none() {
                entry.txn_first_offset = Some(header.base_offset);
                entry.txn_started_ms = now_ms;
                self.ongoing
                    .insert((header.base_offset, header.producer_id));
                // Open: its batches need no guard any more.
                self.verifications.remove(&header.producer_id);
            }
        }
    }

    /// Records a stored batch, whole in `batch` (as a follower appends it, or as the log is
    /// read at start-up), at the broker's `now_ms`: a data batch as
    /// [`ProducerStates::record_at`], a transaction marker as the end of its producer's
    /// transaction. Control batches of other kinds change nothing.
    pub fn record_batch(&mut self, header: &BatchHeader, batch: &[u8], now_ms: i64) {
        if !header.is_control() {
            self.record_at(header, now_ms);
            return;
        }
        if header.producer_id < 0 {
            return;
        }
        if let Some((commit, coordinator_epoch)) = parse_marker(batch) {
            let marker = TxnMarker {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                coordinator_epoch,
                commit,
            };
            self.complete(&marker, header.base_offset, header.max_timestamp);
        }
    }

    /// Whether the partition may append `marker` (as leader): `Err` with
    /// INVALID_PRODUCER_EPOCH for an epoch older than the producer's here, or
    /// TRANSACTION_COORDINATOR_FENCED for a coordinator epoch older than one already seen.
    ///
    /// # Errors
    /// The Kafka error code.
    pub fn check_marker(&self, marker: &TxnMarker) -> Result<(), i16> {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return Ok(());
        };
        if marker.producer_epoch < entry.epoch {
            return Err(codes::INVALID_PRODUCER_EPOCH);
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(codes::TRANSACTION_COORDINATOR_FENCED);
        }
        Ok(())
    }

    /// Ends `marker`'s producer's transaction with the marker appended at `offset`: an abort
    /// is remembered as an aborted transaction (with its first offset, or the marker's own when
    /// no data was written here), and the transaction holds the last stable offset until the
    /// high watermark passes the marker.
    pub fn complete(&mut self, marker: &TxnMarker, offset: i64, timestamp: i64) {
        let entry = self.producers.entry(marker.producer_id).or_default();
        if marker.producer_epoch != entry.epoch {
            entry.epoch = marker.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        entry.transactional = true;
        entry.txn_started_ms = -1;
        // A verification from before the marker must not open a transaction after it.
        self.verifications.remove(&marker.producer_id);
        let first = match entry.txn_first_offset.take() {
            Some(first) => {
                self.ongoing.remove(&(first, marker.producer_id));
                first
            }
            None => offset,
        };
        self.unreplicated.push_back((first, offset));
        if !marker.commit {
            self.aborted.push_back(AbortedTxn {
                producer_id: marker.producer_id,
                first_offset: first,
                last_offset: offset,
            });
        }
    }

    /// The last stable offset under high watermark `hw`: the first offset of the earliest
    /// transaction that is open, or decided with its marker not yet below `hw`; `hw` when there
    /// is none (or it is lower). Forgets the decided transactions `hw` has passed.
    pub fn last_stable_offset(&mut self, hw: i64) -> i64 {
        while self
            .unreplicated
            .front()
            .is_some_and(|(_, marker)| *marker < hw)
        {
            self.unreplicated.pop_front();
        }
        let open = self.ongoing.first().map(|(first, _)| *first);
        let decided = self.unreplicated.iter().map(|(first, _)| *first).min();
        open.into_iter().chain(decided).fold(hw, i64::min)
    }

    /// The aborted transactions that overlap `[from, to)`: their marker is at or after `from`
    /// and their first offset before `to` (what a `read_committed` fetch of that range needs).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Markers are in offset order: skip those before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the aborted transactions whose marker is below `log_start` (retention or
    /// DeleteRecords removed them).
    pub fn drop_below(&mut self, log_start: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Forgets producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (Kafka's `producer.id.expiration.ms`), except those with a transaction open. Returns how
    /// many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.verifications
            .retain(|_, (_, since)| now_ms.saturating_sub(*since) < expiration_ms);
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry.txn_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// An abort marker for each transaction open here (for a partition whose coordinator is
    /// gone: a mirror's source cluster after a failover), in the producer's epochs.
    pub fn open_transaction_aborts(&self) -> Vec<TxnMarker> {
        self.ongoing
            .iter()
            .filter_map(|(_, producer_id)| {
                let entry = self.producers.get(producer_id)?;
                Some(TxnMarker {
                    producer_id: *producer_id,
                    producer_epoch: entry.epoch,
                    coordinator_epoch: entry.coordinator_epoch,
                    commit: false,
                })
            })
            .collect()
    }

    /// The transactions open here since before `now_ms - HANGING_AFTER_MS`: `(producer id,
    /// first offset)` of each (see [`HANGING_AFTER_MS`]).
    pub fn hanging(&self, now_ms: i64) -> Vec<(i64, i64)> {
        self.ongoing
            .iter()
            .filter(|(_, producer_id)| {
                self.producers.get(producer_id).is_some_and(|e| {
                    e.txn_started_ms >= 0
                        && now_ms.saturating_sub(e.txn_started_ms) > HANGING_AFTER_MS
                })
            })
            .map(|(first, producer_id)| (*producer_id, *first))
            .collect()
    }

    /// Every producer with state here, by producer id (DescribeProducers).
    pub fn describe(&self) -> Vec<ProducerDescription> {
        let mut out: Vec<ProducerDescription> = self
            .producers
            .iter()
            .map(|(producer_id, e)| ProducerDescription {
                producer_id: *producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|d| d.producer_id);
        out
    }

    /// The number of producers with state here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state here.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// Builds the control batch of `marker` (not yet placed: base offset 0, leader epoch 0), as
/// Kafka writes it: the transactional and control bits set, no sequence, one record whose key is
/// version 0 and type 0 (abort) or 1 (commit), and whose value is version 0 and the coordinator
/// epoch. `timestamp_ms` is its timestamp.
pub fn marker_batch(marker: &TxnMarker, timestamp_ms: i64) -> Vec<u8> {
    use hdi_log::records::{Record, put_varint, rebuild_batch};
    let key = [0i16.to_be_bytes(), i16::from(marker.commit).to_be_bytes()].concat();
    let value = [
        &0i16.to_be_bytes()[..],
        &marker.coordinator_epoch.to_be_bytes(),
    ]
    .concat();
    let mut body = vec![0u8]; // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    for field in [&key, &value] {
        put_varint(&mut body, field.len() as i64);
        body.extend_from_slice(field);
    }
    put_varint(&mut body, 0); // headers
    let mut encoded = Vec::with_capacity(body.len() + 1);
    put_varint(&mut encoded, body.len() as i64);
    encoded.extend_from_slice(&body);
    let header = hdi_log::BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        attributes: TRANSACTIONAL_BIT | CONTROL_BIT,
        last_offset_delta: 0,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        base_sequence: -1,
        records_count: 1,
    };
    let record = Record {
        offset: 0,
        timestamp: timestamp_ms,
        key: Some(&key),
        value: Some(&value),
        encoded: &encoded,
    };
    rebuild_batch(&header, &[record])
}

/// The transaction marker in a control batch (whole in `batch`): `(commit, coordinator epoch)`,
/// or `None` when it is not one (another control type, or unreadable).
pub fn parse_marker(batch: &[u8]) -> Option<(bool, i32)> {
    let header = hdi_log::batch::parse_header(batch, usize::MAX).ok()?;
    // Control batches are never compressed.
    if !header.is_control() || header.compression() != 0 || header.records_count < 1 {
        return None;
    }
    let body = batch.get(hdi_log::batch::HEADER_SIZE..header.size())?;
    let single = hdi_log::BatchHeader {
        records_count: 1,
        ..header
    };
    let records = hdi_log::records::parse_records(body, &single).ok()?;
    let record = records.first()?;
    let key = record.key?;
    let commit = match key.get(2..4)? {
        [0, 0] => false,
        [0, 1] => true,
        _ => return None,
    };
    let coordinator_epoch = match record.value.and_then(|v| v.get(2..6)) {
        Some(epoch) => i32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]),
        None => -1,
    };
    Some((commit, coordinator_epoch))
}

/// Hands out producer ids, durably: ids are reserved in blocks whose upper bound is persisted
/// before any id of the block is used, so a restarted broker never reuses one. Ids are unique
/// across the cluster without coordination: broker `n` hands out `n * 2^40 + k`.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<(i64, i64)>,
    prefix: i64,
}

const BLOCK: i64 = 1000;

impl ProducerIdAllocator {
    /// Opens the allocator persisted at `path`.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn open(path: &Path, node_id: i32) -> std::io::Result<ProducerIdAllocator> {
        let start = match std::fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<i64>().unwrap_or(0),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error),
        };
        Ok(ProducerIdAllocator {
            path: path.to_owned(),
            state: Mutex::new((start, start)),
            // Node ids are checked to be 0..=65535 (`config.rs`): 16 bits under the generation.
            prefix: i64::from(node_id.clamp(0, 0xffff)) << 40,
        })
    }

    /// The next producer id: `generation << 56 | node id << 40 | n`, where the generation is 0
    /// until partitions copied from another cluster (whose brokers may be numbered like ours)
    /// stopped mirroring here, and above `floor`, the highest producer id they held, after.
    ///
    /// # Errors
    /// When the next block cannot be persisted.
    pub fn next(&self, floor: i64) -> std::io::Result<i64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (next, bound) = *state;
        if next >= bound {
            let new_bound = next + BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{new_bound}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            state.1 = new_bound;
        }
        let generation = if floor > 0 { (floor >> 56) + 1 } else { 0 };
        if generation > 0x7f {
            return Err(std::io::Error::other(
                "producer ids exhausted: 127 generations of copied producer ids",
            ));
        }
        state.0 = next + 1;
        Ok((generation << 56) + self.prefix + next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: count,
        }
    }

    #[test]
    fn state_rebuilt_from_cleaned_batches_continues_their_sequences() {
        // The cleaner kept 1 of 3 records of the first batch and none of the second: the
        // record counts shrink, the offset ranges (last offset deltas) stay.
        let mut first = header(7, 0, 0, 3, 0);
        first.records_count = 1;
        let mut emptied = header(7, 0, 3, 2, 3);
        emptied.records_count = 0;
        let mut states = ProducerStates::default();
        states.record(&first);
        states.record(&emptied);
        assert_eq!(
            states.check(&header(7, 0, 5, 1, 99), None),
            Decision::Append,
            "the producer's next sequence"
        );
        assert_eq!(
            states.check(&header(7, 0, 3, 2, 99), None),
            Decision::Duplicate(3),
            "a retry of the emptied batch"
        );
        assert_eq!(
            states.check(&header(7, 0, 0, 3, 99), None),
            Decision::Duplicate(0),
            "a retry of the cleaned batch"
        );
        assert_eq!(states.describe()[0].last_sequence, 4);
    }

    #[test]
    fn detects_duplicates_gaps_and_fenced_epochs() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&header(7, 0, 0, 3, 0), None), Decision::Append);
        states.record(&header(7, 0, 0, 3, 0));
        assert_eq!(
            states.check(&header(7, 0, 3, 2, 99), None),
            Decision::Append
        );
        states.record(&header(7, 0, 3, 2, 3));
        let cases = [
            (
                "retry of the first batch",
                header(7, 0, 0, 3, 99),
                Decision::Duplicate(0),
            ),
            (
                "retry of the second batch",
                header(7, 0, 3, 2, 99),
                Decision::Duplicate(3),
            ),
            ("next in order", header(7, 0, 5, 1, 99), Decision::Append),
            (
                "gap",
                header(7, 0, 6, 1, 99),
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ),
            (
                "old epoch",
                header(7, -1, 5, 1, 99),
                Decision::Reject(codes::INVALID_PRODUCER_EPOCH),
            ),
            ("new epoch from 0", header(7, 1, 0, 1, 99), Decision::Append),
            (
                "new epoch not from 0",
                header(7, 1, 4, 1, 99),
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ),
            (
                "another producer",
                header(8, 0, 42, 1, 99),
                Decision::Append,
            ),
        ];
        for (case, h, want) in cases {
            assert_eq!(states.check(&h, None), want, "{case}");
        }
        // Only the last five batches are remembered.
        for i in 0..6 {
            states.record(&header(7, 0, 5 + i, 1, 5 + i64::from(i)));
        }
        assert_eq!(
            states.check(&header(7, 0, 0, 3, 99), None),
            Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        // Sequences wrap at 2^31.
        let mut states = ProducerStates::default();
        states.record(&header(9, 0, i32::MAX - 1, 2, 0));
        assert_eq!(states.check(&header(9, 0, 0, 1, 2), None), Decision::Append);
    }

    fn txn_header(producer_id: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        let mut h = header(producer_id, epoch, seq, count, offset);
        h.attributes = TRANSACTIONAL_BIT;
        h.max_timestamp = 1_000;
        h
    }

    fn marker(producer_id: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id,
            producer_epoch: epoch,
            coordinator_epoch,
            commit,
        }
    }

    #[test]
    fn a_marker_batch_reads_back_as_its_marker() {
        for (commit, coordinator_epoch) in [(true, 7), (false, 0), (true, i32::MAX)] {
            let m = marker(5 << 40, 3, coordinator_epoch, commit);
            let batch = marker_batch(&m, 1234);
            let header = hdi_log::batch::validate(&batch, usize::MAX).unwrap();
            assert!(header.is_control() && is_transactional(&header));
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (5 << 40, 3, -1)
            );
            assert_eq!((header.records_count, header.max_timestamp), (1, 1234));
            assert_eq!(parse_marker(&batch), Some((commit, coordinator_epoch)));
        }
        // A data batch, or a control record of another type, is no marker.
        assert_eq!(
            parse_marker(&hdi_log::batch::build_batch(0, 0, &[b"x"])),
            None
        );
        let mut other = marker_batch(&marker(1, 0, 0, true), 0);
        other[hdi_log::batch::HEADER_SIZE + 7] = 2; // the key's type
        hdi_log::batch::reseal(&mut other);
        assert_eq!(parse_marker(&other), None);
    }

    #[test]
    fn transactions_hold_the_last_stable_offset_until_their_marker_is_replicated() {
        let mut states = ProducerStates::default();
        states.record(&txn_header(1, 0, 0, 2, 10));
        states.record(&header(9, 0, 0, 1, 12));
        states.record(&txn_header(2, 0, 0, 1, 13));
        states.record(&txn_header(1, 0, 2, 1, 14));
        assert_eq!(
            states.last_stable_offset(15),
            10,
            "producer 1's open transaction"
        );
        assert_eq!(
            states.last_stable_offset(5),
            5,
            "never above the high watermark"
        );
        states.complete(&marker(1, 0, 0, false), 15, 2_000);
        // Decided, but the marker is not below the high watermark yet.
        assert_eq!(states.last_stable_offset(15), 10);
        assert_eq!(
            states.last_stable_offset(16),
            13,
            "producer 2's is still open"
        );
        states.complete(&marker(2, 0, 0, true), 16, 2_000);
        assert_eq!(states.last_stable_offset(17), 17);
        // Only the aborted one is listed, for the ranges it overlaps.
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 15,
        };
        assert_eq!(states.aborted_between(0, 11), vec![aborted]);
        assert_eq!(states.aborted_between(15, 20), vec![aborted]);
        assert_eq!(states.aborted_between(0, 10), vec![]);
        assert_eq!(states.aborted_between(16, 20), vec![]);
        // A new transaction of producer 1 starts at its next transactional batch.
        states.record(&txn_header(1, 0, 3, 1, 17));
        assert_eq!(states.last_stable_offset(18), 17);
        // A marker for a producer with nothing open here aborts an empty range at the marker.
        states.complete(&marker(3, 0, 0, false), 18, 2_000);
        assert_eq!(states.aborted_between(18, 19)[0].first_offset, 18);
        // The log start passing a marker drops the aborted transaction.
        states.drop_below(16);
        assert_eq!(states.aborted_between(0, 100).len(), 1);
    }

    #[test]
    fn markers_and_batches_are_fenced_by_epochs() {
        let mut states = ProducerStates::default();
        states.record(&txn_header(1, 2, 0, 1, 0));
        states.complete(&marker(1, 2, 5, true), 1, 0);
        let cases = [
            (
                "older producer epoch",
                marker(1, 1, 5, true),
                Err(codes::INVALID_PRODUCER_EPOCH),
            ),
            (
                "older coordinator epoch",
                marker(1, 2, 4, false),
                Err(codes::TRANSACTION_COORDINATOR_FENCED),
            ),
            ("same epochs", marker(1, 2, 5, false), Ok(())),
            ("bumped epochs", marker(1, 3, 6, true), Ok(())),
            ("unknown producer", marker(8, 0, 0, true), Ok(())),
        ];
        for (case, m, want) in cases {
            assert_eq!(states.check_marker(&m), want, "{case}");
        }
        // Kafka 4's protocol bumps the epoch with the marker: the next transaction starts at
        // sequence 0 of the new epoch; the old epoch is fenced.
        states.complete(&marker(1, 3, 6, true), 2, 0);
        // Opening the next transaction needs the coordinator's verification: a guard handed
        // out here, for that epoch, and not dropped by a marker since.
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 3), None),
            Decision::Reject(codes::INVALID_TXN_STATE)
        );
        let stale = states.begin_verification(1, 3, 0).unwrap();
        states.complete(&marker(1, 3, 6, false), 3, 0);
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 4), Some(&stale)),
            Decision::Reject(codes::INVALID_TXN_STATE),
            "a guard from before a marker"
        );
        let guard = states.begin_verification(1, 3, 0).unwrap();
        assert_eq!(
            states.begin_verification(1, 3, 0),
            Ok(guard),
            "one guard per epoch"
        );
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 4), Some(&guard)),
            Decision::Append
        );
        let other_epoch = states.begin_verification(1, 4, 0).unwrap();
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 4), Some(&guard)),
            Decision::Reject(codes::INVALID_TXN_STATE),
            "replaced by another epoch's verification"
        );
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 4), Some(&other_epoch)),
            Decision::Reject(codes::INVALID_TXN_STATE),
            "a guard of another epoch"
        );
        // A failed verification drops its guard (only its own: a stale one drops nothing).
        states.end_verification(&guard);
        assert!(states.verifications.contains_key(&1));
        states.end_verification(&other_epoch);
        assert!(states.verifications.is_empty());
        let guard = states.begin_verification(1, 3, 0).unwrap();
        assert_eq!(
            states.check(&txn_header(1, 3, 0, 1, 3), Some(&guard)),
            Decision::Append
        );
        assert_eq!(
            states.check(&txn_header(1, 2, 1, 1, 3), None),
            Decision::Reject(codes::INVALID_PRODUCER_EPOCH)
        );
        // Once open, its batches need no guard; while it is open, the producer may not write
        // outside it, nor after (a transactional producer id never writes plain batches).
        states.record(&txn_header(1, 3, 0, 1, 3));
        assert!(!states.needs_verification(1, 3) && states.needs_verification(1, 4));
        assert_eq!(
            states.check(&header(1, 3, 1, 1, 4), None),
            Decision::Reject(codes::INVALID_TXN_STATE)
        );
        assert_eq!(
            states.check(&txn_header(1, 3, 1, 1, 4), None),
            Decision::Append
        );
    }

    #[test]
    fn a_zombie_batch_leaves_its_successors_guard_alone() {
        let mut states = ProducerStates::default();
        // Instance A wrote at epoch 4 and ended its transaction; B (epoch 5) opens the next.
        states.record(&txn_header(1, 4, 0, 1, 0));
        states.complete(&marker(1, 4, 0, true), 1, 0);
        let b = states.begin_verification(1, 5, 0).unwrap();
        // The zombie A (epoch 4) is refused at once: no guard, no coordinator question.
        assert_eq!(
            states.begin_verification(1, 4, 0),
            Err(codes::INVALID_PRODUCER_EPOCH)
        );
        // Below a held guard's epoch too, with no state of the producer here yet.
        let mut fresh = ProducerStates::default();
        let b2 = fresh.begin_verification(7, 5, 0).unwrap();
        assert_eq!(
            fresh.begin_verification(7, 4, 0),
            Err(codes::INVALID_PRODUCER_EPOCH)
        );
        // B's verified batch is still appended with its guard.
        assert_eq!(
            states.check(&txn_header(1, 5, 0, 1, 2), Some(&b)),
            Decision::Append
        );
        assert_eq!(
            fresh.check(&txn_header(7, 5, 0, 1, 0), Some(&b2)),
            Decision::Append
        );
        // A higher epoch replaces the guard.
        let c = fresh.begin_verification(7, 6, 0).unwrap();
        assert_ne!(c, b2);
        assert_eq!(
            fresh.check(&txn_header(7, 5, 0, 1, 0), Some(&b2)),
            Decision::Reject(codes::INVALID_TXN_STATE)
        );
    }

    #[test]
    fn idle_producers_expire_but_not_with_a_transaction_open() {
        let mut states = ProducerStates::default();
        let mut idle = header(1, 0, 0, 1, 0);
        idle.max_timestamp = 1_000;
        states.record(&idle);
        states.record(&txn_header(2, 0, 0, 1, 1)); // max timestamp 1000, open
        let mut recent = header(3, 0, 0, 1, 2);
        recent.max_timestamp = 50_000;
        states.record(&recent);
        assert_eq!(states.expire(60_000, 59_000), 1);
        assert_eq!(states.len(), 2);
        assert_eq!(
            states.last_stable_offset(3),
            1,
            "the open transaction stays"
        );
        // Once its transaction ends, it expires too.
        states.complete(&marker(2, 0, 0, true), 3, 1_000);
        assert_eq!(states.expire(60_000, 59_000), 1);
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn transactions_open_too_long_are_hanging_and_producers_are_described() {
        let mut states = ProducerStates::default();
        states.record_at(&txn_header(1, 2, 0, 2, 10), 1_000);
        states.record(&header(2, 0, 4, 1, 12));
        assert_eq!(states.hanging(1_000 + HANGING_AFTER_MS), vec![]);
        assert_eq!(states.hanging(1_001 + HANGING_AFTER_MS), vec![(1, 10)]);
        let described = states.describe();
        assert_eq!(
            described,
            vec![
                ProducerDescription {
                    producer_id: 1,
                    producer_epoch: 2,
                    last_sequence: 1,
                    last_timestamp: 1_000,
                    coordinator_epoch: -1,
                    current_txn_start_offset: 10,
                },
                ProducerDescription {
                    producer_id: 2,
                    producer_epoch: 0,
                    last_sequence: 4,
                    last_timestamp: 0,
                    coordinator_epoch: -1,
                    current_txn_start_offset: -1,
                },
            ]
        );
        // Its marker ends it: no longer hanging, and described with the marker's epoch.
        states.complete(&marker(1, 2, 7, false), 13, 2_000);
        assert_eq!(states.hanging(i64::MAX / 2), vec![]);
        assert_eq!(
            (
                states.describe()[0].coordinator_epoch,
                states.describe()[0].current_txn_start_offset
            ),
            (7, -1)
        );
    }

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("producer-ids");
        let first = ProducerIdAllocator::open(&path, 3).unwrap();
        let a = first.next(0).unwrap();
        let b = first.next(0).unwrap();
        drop(first);
        let second = ProducerIdAllocator::open(&path, 3).unwrap();
        let c = second.next(0).unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        // Another broker's ids never collide with these.
        let other = temp.path().join("other-producer-ids");
        let other_ids = ProducerIdAllocator::open(&other, 4).unwrap();
        let d = other_ids.next(0).unwrap();
        assert!(d > c && a >> 40 == 3 && d >> 40 == 4, "{a} {d}");
        // Once partitions copied from another cluster held ids up to a floor (a cluster whose
        // broker 4 allocated them, say), new ids are above it and still apart per broker.
        let floor = (4 << 40) + 5_000;
        let e = other_ids.next(floor).unwrap();
        let f = second.next(floor).unwrap();
        assert!(e > floor && f > floor && e != f, "{e} {f}");
        assert_eq!(
            (e >> 56, (e >> 40) & 0xffff, f >> 56, (f >> 40) & 0xffff),
            (1, 4, 1, 3)
        );
        // A second promotion above the first generation moves on again; none past the last.
        assert!(second.next(e).unwrap() >> 56 == 2);
        assert!(second.next(0x7f << 56).is_err());
        std::fs::remove_file(&other).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
