//! One partition replica on this broker: its log, idempotent-producer state, and its role in the
//! partition (leader or follower, with the epoch the metadata gave it).
//!
//! As **leader** it appends produced batches in its leader epoch, tracks each follower's log end
//! offset from their fetches, and advances the **high watermark** to the smallest log end offset
//! over the ISR (its own included); consumers only read below it and `acks=all` waits for it. It
//! decides which followers are out of sync (not caught up for `replica.lag.time.max.ms`) and which
//! have caught up, for the caller to propose ISR changes to the controller.
//!
//! As **follower** it appends the leader's batches unchanged and takes the leader's high
//! watermark (capped by its own log end). On a new leader epoch it first truncates by leader epoch
//! (KIP-101), never by high watermark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_kafka_client::codes;
use hdi_log::cleaner::{CleanStats, Cleanable, CleanerLimits, CompactionConfig, Throttle};
use hdi_log::{Log, LogError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::cluster::metadata::{BrokerId, PartitionRecord};
use crate::producers::{
    AbortedTxn, Decision, ProducerDescription, ProducerStates, TxnMarker, VerificationGuard,
};
use crate::state::{KafkaError, chain, lock, read_lock, write_lock};

/// The producer state of the batches stored in `log` (at start-up and after a truncation).
fn rebuild_producers(log: &Log) -> Result<ProducerStates, LogError> {
    let mut producers = ProducerStates::default();
    // Transactions open in the log count as open since now (the batches' timestamps are the
    // clients', possibly event time: they would look hanging at once).
    let now = now_ms();
    log.for_each_batch_with_controls(|header, control| match control {
        Some(batch) => producers.record_batch(header, batch, now),
        None => producers.record_at(header, now),
    })?;
    producers.drop_below(log.log_start_offset());
    Ok(producers)
}

/// Records the stored batches in `records` (whole, concatenated) in `producers`.
fn record_stored(producers: &mut ProducerStates, records: &[u8]) {
    let now = now_ms();
    let mut at = 0;
    while at < records.len() {
        let Ok(header) = hdi_log::batch::parse_header(&records[at..], usize::MAX) else {
            break;
        };
        let end = (at + header.size()).min(records.len());
        producers.record_batch(&header, &records[at..end], now);
        at += header.size();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn storage_error(error: LogError) -> KafkaError {
    tracing::error!(error = %chain(&error), "storage error");
    KafkaError::new(codes::KAFKA_STORAGE_ERROR, error.to_string())
}

/// What the leader knows of one follower.
#[derive(Clone, Copy, Debug)]
struct FollowerState {
    /// The follower's log end offset (its last fetch offset), -1 before it fetched.
    log_end: i64,
    /// The last time it was caught up with the leader's log end.
    caught_up_at: Instant,
    /// The leader's log end when the follower last fetched, and when.
    leader_end_at_last_fetch: i64,
    last_fetch_at: Instant,
}

/// The replica's role, from the metadata.
#[derive(Clone, Debug)]
pub struct Role {
    /// Leader broker, -1 when offline.
    pub leader: BrokerId,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch (for AlterPartition).
    pub partition_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Replicas being added by a reassignment (their fetches may be throttled).
    pub adding: Vec<BrokerId>,
}

struct Leadership {
    role: Role,
    /// Only meaningful while this broker leads.
    followers: HashMap<BrokerId, FollowerState>,
    /// Where the current leader epoch started in the log.
    epoch_start_offset: i64,
    /// A follower needs to truncate before fetching in this epoch.
    needs_truncation: bool,
    /// An ISR change proposal is in flight.
    isr_change_pending: bool,
    /// Replicas a proposal in flight would add: they count for the high watermark at once
    /// (Kafka's "maximal ISR"), so a replica never joins the ISR without what was acknowledged
    /// while its addition was being committed.
    pending_additions: Vec<BrokerId>,
}

/// Where a produce landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record (or the original one, for a duplicate).
    pub base_offset: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// The log end after the append: `acks=all` waits until the high watermark reaches it.
    pub log_end: i64,
    /// The leader epoch the records were appended in.
    pub leader_epoch: i32,
}

/// A proposed ISR change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    /// Leader epoch it was decided in.
    pub leader_epoch: i32,
    /// Partition epoch it was decided in.
    pub partition_epoch: i32,
    /// The ISR wanted.
    pub isr: Vec<BrokerId>,
}

/// The file in a replica's directory holding [`Replica::adopted_epoch`].
const ADOPTED_EPOCH_FILE: &str = "adopted-epoch";

/// A partition replica.
pub struct Replica {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// This broker.
    node_id: BrokerId,
    dir: PathBuf,
    log: RwLock<Log>,
    producers: Mutex<ProducerStates>,
    leadership: Mutex<Leadership>,
    high_watermark: watch::Sender<i64>,
    /// Whether the topic mirrors a source cluster's: its log then keeps the source's leader
    /// epochs, and taking the lead here adds none of this cluster's.
    mirror: std::sync::atomic::AtomicBool,
    /// The leader epoch of the last adoption (a reverse link's cut) this replica applied, -1
    /// for none. Kept in [`ADOPTED_EPOCH_FILE`]: a replica that applied an adoption does not
    /// apply it again after a restart (its records past the cut are then the new source's).
    adopted_epoch: std::sync::atomic::AtomicI32,
    /// The topic's compaction settings when its `cleanup.policy` includes `compact`.
    compaction: RwLock<Option<CompactionConfig>>,
}

impl Replica {
    /// Opens (or creates) the replica's log in `dir`.
    ///
    /// # Errors
    /// A storage error.
    pub fn open(
        dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        node_id: BrokerId,
        config: hdi_log::LogConfig,
    ) -> Result<Replica, LogError> {
        let (log, recovery) = Log::open(dir, config)?;
        if !recovery.truncated.is_empty() || !recovery.removed.is_empty() {
            tracing::warn!(dir = %dir.display(), ?recovery, "recovered partition log");
        }
        let producers = rebuild_producers(&log)?;
        // The high watermark is not persisted: a restarted replica starts at its log start and
        // learns the real one from the leader (or, leading, from its followers).
        let start = log.log_start_offset();
        std::fs::write(dir.join("topic-name"), topic).map_err(|source| LogError::Io {
            action: "cannot write",
            path: dir.join("topic-name"),
            source,
        })?;
        Ok(Replica {
            topic: topic.to_owned(),
            topic_id,
            index,
            node_id,
            dir: dir.to_owned(),
            mirror: std::sync::atomic::AtomicBool::new(false),
            compaction: RwLock::new(None),
            adopted_epoch: std::sync::atomic::AtomicI32::new(
                std::fs::read_to_string(dir.join(ADOPTED_EPOCH_FILE))
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(-1),
            ),
            log: RwLock::new(log),
            producers: Mutex::new(producers),
            leadership: Mutex::new(Leadership {
                role: Role {
                    leader: -1,
                    leader_epoch: -1,
                    partition_epoch: -1,
                    replicas: Vec::new(),
                    isr: Vec::new(),
                    adding: Vec::new(),
                },
                followers: HashMap::new(),
                epoch_start_offset: 0,
                needs_truncation: false,
                isr_change_pending: false,
                pending_additions: Vec::new(),
            }),
            high_watermark: watch::channel(start).0,
        })
    }

    /// The replica's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current role.
    pub fn role(&self) -> Role {
        lock(&self.leadership).role.clone()
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        lock(&self.leadership).role.leader == self.node_id
    }

    /// Takes the role the metadata gives. Returns whether the leader or epoch changed.
    pub fn update_role(&self, record: &PartitionRecord) -> bool {
        self.take_role(record, None)
    }

    /// [`Replica::update_role`] for a partition a reverse link adopted at `adoption.0`, the
    /// leader epoch `adoption.1` beginning there. A follower in that epoch or a later one that
    /// has not applied this adoption yet cuts its log there first (its records past the cut may
    /// be its old source's, and leader epochs alone cannot tell, as the two clusters number
    /// theirs independently); a leader marks it applied (it cut its log itself).
    ///
    /// The cut and the role change happen under the leadership lock that produce and the
    /// follower's fetch and truncation take, so nothing is appended between them under the old
    /// role (a deposed leader's write after the cut would stay, numbered in this cluster's
    /// epochs). An adoption is applied once per replica directory ([`ADOPTED_EPOCH_FILE`]): what
    /// a replica holds past the cut afterwards is the new source's, committed through the
    /// leader, and a restarted replica that is the ISR's last member must not lose it.
    pub fn update_role_adopted(&self, record: &PartitionRecord, adoption: (i64, i32)) -> bool {
        self.take_role(record, Some(adoption))
    }

    fn take_role(&self, record: &PartitionRecord, adoption: Option<(i64, i32)>) -> bool {
        let mut leadership = lock(&self.leadership);
        if let Some((offset, epoch)) = adoption {
            if record.leader == self.node_id {
                self.mark_adopted(epoch);
            } else if record.leader_epoch >= epoch
                && self
                    .adopted_epoch
                    .load(std::sync::atomic::Ordering::Relaxed)
                    < epoch
            {
                match self.cut_to(offset) {
                    Ok(()) => self.mark_adopted(epoch),
                    Err(error) => {
                        tracing::error!(topic = %self.topic, partition = self.index, message = %error.message, "cannot cut an adopted partition's log");
                    }
                }
            }
        }
        let old = leadership.role.clone();
        leadership.role = Role {
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            partition_epoch: record.partition_epoch,
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
            adding: record.adding.clone(),
        };
        if old.partition_epoch != record.partition_epoch {
            leadership.isr_change_pending = false;
            leadership.pending_additions.clear();
        }
        // A follower that left the ISR (fenced, restarted, lagging) must prove its position with
        // a fresh fetch before it can count again (KIP-903's concern).
        for gone in old.isr.iter().filter(|r| !record.isr.contains(r)) {
            if let Some(state) = leadership.followers.get_mut(gone) {
                state.log_end = -1;
                state.leader_end_at_last_fetch = -1;
            }
        }
        let changed = old.leader != record.leader || old.leader_epoch != record.leader_epoch;
        if !changed {
            drop(leadership);
            if self.is_leader() {
                self.maybe_advance_high_watermark();
            }
            return false;
        }
        leadership.followers.clear();
        if record.leader == self.node_id {
            let mut log = write_lock(&self.log);
            // A mirror's epoch history is its source's (the batches carry it): this cluster's
            // leader epochs are not mixed in, so its followers truncate by the same history.
            if !self.is_mirror() {
                log.assign_epoch_start(record.leader_epoch);
            }
            leadership.epoch_start_offset = log.next_offset();
            let now = Instant::now();
            for follower in record.replicas.iter().filter(|r| **r != self.node_id) {
                leadership.followers.insert(
                    *follower,
                    FollowerState {
                        log_end: -1,
                        caught_up_at: now,
                        leader_end_at_last_fetch: -1,
                        last_fetch_at: now,
                    },
                );
            }
            leadership.needs_truncation = false;
            tracing::info!(topic = %self.topic, partition = self.index, epoch = record.leader_epoch, log_end = leadership.epoch_start_offset, "leading");
        } else {
            leadership.needs_truncation = record.leader >= 0;
            tracing::info!(topic = %self.topic, partition = self.index, epoch = record.leader_epoch, leader = record.leader, "following");
        }
        drop(leadership);
        if self.is_leader() {
            self.maybe_advance_high_watermark();
        }
        true
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// `(log start offset, high watermark, log end offset)`.
    pub fn offsets(&self) -> (i64, i64, i64) {
        let log = read_lock(&self.log);
        (
            log.log_start_offset(),
            self.high_watermark(),
            log.next_offset(),
        )
    }

    fn check_leader(&self, leadership: &Leadership) -> Result<(), KafkaError> {
        if leadership.role.leader == self.node_id {
            Ok(())
        } else {
            Err(KafkaError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!(
                    "broker {} does not lead {}-{} (leader: {})",
                    self.node_id, self.topic, self.index, leadership.role.leader
                ),
            ))
        }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` would open a transaction here:
    /// then the guard to append it with once the transaction coordinator verified it (see
    /// [`crate::producers::VerificationGuard`]); `None` when its transaction is open here at
    /// that epoch already.
    ///
    /// # Errors
    /// INVALID_PRODUCER_EPOCH for an epoch below the producer's here (or a verification's under
    /// way): a zombie's batch, refused without asking the coordinator.
    pub fn begin_verification(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<Option<VerificationGuard>, KafkaError> {
        let mut producers = lock(&self.producers);
        if !producers.needs_verification(producer_id, epoch) {
            return Ok(None);
        }
        producers
            .begin_verification(producer_id, epoch, now_ms())
            .map(Some)
            .map_err(|code| {
                KafkaError::new(
                    code,
                    format!(
                        "{}-{}: producer {producer_id}'s epoch {epoch} is older than its \
                         latest here",
                        self.topic, self.index
                    ),
                )
            })
    }

    /// Drops `guard` unless a newer verification replaced it (its verification or append
    /// failed).
    pub fn end_verification(&self, guard: &VerificationGuard) {
        lock(&self.producers).end_verification(guard);
    }

    /// The producers with state here (DescribeProducers).
    pub fn describe_producers(&self) -> Vec<ProducerDescription> {
        lock(&self.producers).describe()
    }

    /// How many transactions have been open here longer than
    /// [`crate::producers::HANGING_AFTER_MS`] at `now_ms`.
    pub fn hanging_transactions(&self, now_ms: i64) -> usize {
        lock(&self.producers).hanging(now_ms).len()
    }

    /// [`Replica::produce_with`] without a verification guard (a transactional batch may then
    /// only continue a transaction open here).
    ///
    /// # Errors
    /// As [`Replica::produce_with`].
    pub fn produce(
        &self,
        records: &[u8],
        min_insync: Option<usize>,
    ) -> Result<Produced, KafkaError> {
        self.produce_with(records, min_insync, None)
    }

    /// Appends a produce request's batches as leader (idempotence checked per batch; a
    /// transactional batch that opens a transaction needs `guard`, see
    /// [`Replica::begin_verification`]). `min_insync` is checked first for `acks=all`.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, sequence
    /// errors, INVALID_TXN_STATE, or a storage error.
    pub fn produce_with(
        &self,
        records: &[u8],
        min_insync: Option<usize>,
        guard: Option<VerificationGuard>,
    ) -> Result<Produced, KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if let Some(min) = min_insync
            && leadership.role.isr.len() < min
        {
            return Err(KafkaError::new(
                codes::NOT_ENOUGH_REPLICAS,
                format!(
                    "{}-{}: {} in-sync replicas, min.insync.replicas is {min}",
                    self.topic,
                    self.index,
                    leadership.role.isr.len()
                ),
            ));
        }
        if read_lock(&self.compaction).is_some() {
            check_keys(records)?;
        }
        // Held across the append: a demotion (and the truncation that follows it) cannot slip
        // in between the leadership check and the write.
        let epoch = leadership.role.leader_epoch;
        let mut log = write_lock(&self.log);
        let max = log.config().max_batch_bytes;
        let headers = hdi_log::batch::validate_all(records, max).map_err(|(index, error)| {
            let code = match error {
                hdi_log::BatchError::InvalidLength(_) if records.len() > max => {
                    codes::MESSAGE_TOO_LARGE
                }
                _ => codes::CORRUPT_MESSAGE,
            };
            KafkaError::new(code, format!("batch {index}: {error}"))
        })?;
        if headers.is_empty() {
            return Err(KafkaError::new(codes::CORRUPT_MESSAGE, "no record batch"));
        }
        for (index, header) in headers.iter().enumerate() {
            if header.is_control() {
                return Err(KafkaError::new(
                    codes::INVALID_RECORD,
                    format!("batch {index}: clients may not write control batches"),
                ));
            }
            if crate::producers::is_transactional(header) && header.producer_id < 0 {
                return Err(KafkaError::new(
                    codes::INVALID_RECORD,
                    format!("batch {index}: a transactional batch without a producer id"),
                ));
            }
        }
        let mut producers = lock(&self.producers);
        let first = if headers.iter().all(|h| h.producer_id < 0) {
            let mut bytes = records.to_vec();
            log.append(&mut bytes, epoch)
                .map_err(storage_error)?
                .first_offset
        } else {
            // Idempotent batches: each is checked and appended on its own.
            let mut first: Option<i64> = None;
            let mut at = 0;
            for header in &headers {
                let bytes = &records[at..at + header.size()];
                at += header.size();
                let offset = match producers.check(header, guard.as_ref()) {
                    Decision::Reject(code) => {
                        return Err(KafkaError::new(
                            code,
                            format!(
                                "producer {} sequence {}",
                                header.producer_id, header.base_sequence
                            ),
                        ));
                    }
                    Decision::Duplicate(offset) => offset,
                    Decision::Append => {
                        let mut owned = bytes.to_vec();
                        let info = log.append(&mut owned, epoch).map_err(storage_error)?;
                        let mut stored = *header;
                        stored.base_offset = info.first_offset;
                        stored.partition_leader_epoch = epoch;
                        producers.record_at(&stored, now_ms());
                        info.first_offset
                    }
                };
                first.get_or_insert(offset);
            }
            first.unwrap_or(-1)
        };
        let produced = Produced {
            base_offset: first,
            log_start_offset: log.log_start_offset(),
            log_end: log.next_offset(),
            leader_epoch: epoch,
        };
        drop(producers);
        drop(log);
        drop(leadership);
        self.maybe_advance_high_watermark();
        Ok(produced)
    }

    /// Appends the control batch of `marker` as leader, after checking it against the
    /// producer's state here (older producer epoch: INVALID_PRODUCER_EPOCH; older coordinator
    /// epoch: TRANSACTION_COORDINATOR_FENCED), and ends the producer's transaction. With
    /// `min_insync`, an ISR below it refuses the write (NOT_ENOUGH_REPLICAS), as for acks=all.
    /// The caller waits for replication with [`Replica::wait_replicated`].
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, the marker's fencing errors, or a storage
    /// error.
    pub fn write_txn_marker(
        &self,
        marker: &TxnMarker,
        min_insync: Option<usize>,
    ) -> Result<Produced, KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if let Some(min) = min_insync
            && leadership.role.isr.len() < min
        {
            return Err(KafkaError::new(
                codes::NOT_ENOUGH_REPLICAS,
                format!(
                    "{}-{}: {} in-sync replicas, min.insync.replicas is {min}",
                    self.topic,
                    self.index,
                    leadership.role.isr.len()
                ),
            ));
        }
        let epoch = leadership.role.leader_epoch;
        let mut log = write_lock(&self.log);
        let mut producers = lock(&self.producers);
        producers.check_marker(marker).map_err(|code| {
            KafkaError::new(
                code,
                format!(
                    "{}-{}: marker of producer {} epoch {} from coordinator epoch {} is fenced",
                    self.topic,
                    self.index,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.coordinator_epoch
                ),
            )
        })?;
        let timestamp = now_ms();
        let mut batch = crate::producers::marker_batch(marker, timestamp);
        let info = log.append(&mut batch, epoch).map_err(storage_error)?;
        producers.complete(marker, info.first_offset, timestamp);
        let produced = Produced {
            base_offset: info.first_offset,
            log_start_offset: log.log_start_offset(),
            log_end: log.next_offset(),
            leader_epoch: epoch,
        };
        drop(producers);
        drop(log);
        drop(leadership);
        self.maybe_advance_high_watermark();
        Ok(produced)
    }

    /// The last stable offset: the high watermark, or the first offset of the earliest
    /// transaction still open (or whose marker the high watermark has not passed), whichever is
    /// lower; never below the log start.
    pub fn last_stable_offset(&self) -> i64 {
        let log = read_lock(&self.log);
        let hw = self.high_watermark();
        lock(&self.producers)
            .last_stable_offset(hw)
            .max(log.log_start_offset())
    }

    /// A `read_committed` read: whole batches from `offset` below the last stable offset, up to
    /// `max_bytes`, with the last stable offset and the aborted transactions that overlap what
    /// was read (a consumer drops their records itself).
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` or a storage error.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Bytes, i64, Vec<AbortedTxn>), KafkaError> {
        let log = read_lock(&self.log);
        let hw = self.high_watermark();
        let mut producers = lock(&self.producers);
        let lso = producers.last_stable_offset(hw).max(log.log_start_offset());
        let bytes = match log.read_below(offset, max_bytes, lso) {
            Ok(bytes) => bytes,
            Err(LogError::OffsetOutOfRange { offset, start, end }) => {
                return Err(KafkaError::new(
                    codes::OFFSET_OUT_OF_RANGE,
                    format!("offset {offset} not in [{start}, {end}]"),
                ));
            }
            Err(error) => return Err(storage_error(error)),
        };
        let mut end = offset;
        let mut at = 0;
        while let Ok(header) =
            hdi_log::batch::parse_header(&bytes[at.min(bytes.len())..], usize::MAX)
        {
            end = header.last_offset() + 1;
            at += header.size();
        }
        let aborted = if end > offset {
            producers.aborted_between(offset, end)
        } else {
            Vec::new()
        };
        Ok((Bytes::from(bytes), lso, aborted))
    }

    /// Aborts every transaction open in the partition (as leader): a mirror partition that
    /// stopped copying keeps the source's open transactions, whose coordinator is in the
    /// source cluster and will never end them here; without their abort markers the last stable
    /// offset would stay at them for good. Returns how many were aborted.
    ///
    /// # Errors
    /// As [`Replica::write_txn_marker`].
    pub fn abort_open_transactions(&self) -> Result<usize, KafkaError> {
        let aborts = lock(&self.producers).open_transaction_aborts();
        for marker in &aborts {
            self.write_txn_marker(marker, None)?;
        }
        if !aborts.is_empty() {
            tracing::warn!(topic = %self.topic, partition = self.index, transactions = aborts.len(), "aborted the transactions a stopped mirror left open");
        }
        Ok(aborts.len())
    }

    /// Forgets idle producers (`producer.id.expiration.ms`, except those with a transaction
    /// open). Returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.producers).expire(now_ms, expiration_ms)
    }

    /// Waits until the high watermark reaches `offset` (acks=all) while this broker still leads
    /// in `epoch`, leadership is lost, or `timeout` passes. With `min_insync`, an ISR that shrank
    /// below it meanwhile fails the write (NOT_ENOUGH_REPLICAS_AFTER_APPEND). Cancel safe.
    ///
    /// # Errors
    /// REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER or NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    pub async fn wait_replicated(
        &self,
        offset: i64,
        epoch: i32,
        min_insync: Option<usize>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let mut hw = self.high_watermark.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                // Leadership first, and the watermark read under the same lock: a watermark
                // raised after a demotion (as a follower) must never count.
                let leadership = lock(&self.leadership);
                self.check_leader(&leadership)?;
                if epoch != leadership.role.leader_epoch {
                    return Err(KafkaError::new(
                        codes::NOT_LEADER_OR_FOLLOWER,
                        "leadership changed while waiting for replication",
                    ));
                }
                if *hw.borrow_and_update() >= offset {
                    if let Some(min) = min_insync
                        && leadership.role.isr.len() < min
                    {
                        return Err(KafkaError::new(
                            codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                            format!(
                                "{}-{}: the ISR shrank to {} below min.insync.replicas {min}",
                                self.topic,
                                self.index,
                                leadership.role.isr.len()
                            ),
                        ));
                    }
                    return Ok(());
                }
            }
            // Re-check leadership at least every 100 ms (a change does not move the watermark).
            let wake = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            tokio::select! {
                _ = hw.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KafkaError::new(
                    codes::REQUEST_TIMED_OUT,
                    format!(
                        "{}-{}: not replicated to the ISR in time",
                        self.topic, self.index
                    ),
                ));
            }
        }
    }

    /// The current leader epoch (for `wait_replicated`).
    pub fn leader_epoch(&self) -> i32 {
        lock(&self.leadership).role.leader_epoch
    }

    /// Whether this broker leads and its high watermark is still below the start of its epoch:
    /// a new leader learns how far the previous one committed only from its followers' next
    /// fetches, so until then its high watermark may lie below acknowledged records (Kafka
    /// answers ListOffsets OFFSET_NOT_AVAILABLE meanwhile, KAFKA-7976).
    pub fn high_watermark_behind_epoch_start(&self) -> bool {
        let leadership = lock(&self.leadership);
        leadership.role.leader == self.node_id
            && self.high_watermark() < leadership.epoch_start_offset
    }

    fn maybe_advance_high_watermark(&self) {
        let leadership = lock(&self.leadership);
        if leadership.role.leader != self.node_id {
            return;
        }
        let own_end = read_lock(&self.log).next_offset();
        let mut candidate = own_end;
        let members = leadership
            .role
            .isr
            .iter()
            .chain(leadership.pending_additions.iter());
        for member in members {
            if *member == self.node_id {
                continue;
            }
            match leadership.followers.get(member) {
                Some(state) if state.log_end >= 0 => candidate = candidate.min(state.log_end),
                // An ISR member that has not fetched in this epoch holds the watermark.
                _ => return,
            }
        }
        self.high_watermark.send_if_modified(|hw| {
            if candidate > *hw {
                *hw = candidate;
                true
            } else {
                false
            }
        });
    }

    /// Records a follower's fetch at `fetch_offset` (its log end) in `leader_epoch`.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH (the follower is behind), UNKNOWN_LEADER_EPOCH
    /// (this broker is behind).
    pub fn follower_fetched(
        &self,
        follower: BrokerId,
        fetch_offset: i64,
        leader_epoch: i32,
    ) -> Result<(), KafkaError> {
        let mut leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        let epoch = leadership.role.leader_epoch;
        if leader_epoch < epoch {
            return Err(KafkaError::new(
                codes::FENCED_LEADER_EPOCH,
                format!("epoch {leader_epoch} < {epoch}"),
            ));
        }
        if leader_epoch > epoch {
            return Err(KafkaError::new(
                codes::UNKNOWN_LEADER_EPOCH,
                format!("epoch {leader_epoch} > {epoch}"),
            ));
        }
        if !leadership.role.replicas.contains(&follower) {
            return Err(KafkaError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!(
                    "broker {follower} is not a replica of {}-{}",
                    self.topic, self.index
                ),
            ));
        }
        let leader_end = read_lock(&self.log).next_offset();
        if fetch_offset > leader_end {
            return Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                format!("follower at {fetch_offset}, leader log ends at {leader_end}"),
            ));
        }
        let now = Instant::now();
        let state = leadership
            .followers
            .entry(follower)
            .or_insert(FollowerState {
                log_end: -1,
                caught_up_at: now,
                leader_end_at_last_fetch: -1,
                last_fetch_at: now,
            });
        // Kafka's rule: caught up now if at the leader's end; else caught up as of the previous
        // fetch if it has reached the end the leader had then.
        if fetch_offset >= leader_end {
            state.caught_up_at = now;
        } else if fetch_offset >= state.leader_end_at_last_fetch
            && state.leader_end_at_last_fetch >= 0
        {
            state.caught_up_at = state.caught_up_at.max(state.last_fetch_at);
        }
        state.log_end = fetch_offset;
        state.leader_end_at_last_fetch = leader_end;
        state.last_fetch_at = now;
        drop(leadership);
        self.maybe_advance_high_watermark();
        Ok(())
    }

    /// The ISR this leader wants now, if it differs from the metadata's: followers that have not
    /// been caught up for `lag_max` leave; replicas caught up to the high watermark (and into this
    /// epoch) join. `None` when nothing should change or a change is in flight. Marks the change
    /// as in flight.
    pub fn isr_change(&self, lag_max: Duration) -> Option<IsrChange> {
        let mut leadership = lock(&self.leadership);
        if leadership.role.leader != self.node_id || leadership.isr_change_pending {
            return None;
        }
        let hw = self.high_watermark();
        let now = Instant::now();
        let mut isr = leadership.role.isr.clone();
        let lagging = |id: &BrokerId| {
            leadership
                .followers
                .get(id)
                .is_some_and(|s| now.duration_since(s.caught_up_at) > lag_max)
        };
        let before = isr.clone();
        isr.retain(|r| *r == self.node_id || !lagging(r));
        for replica in &leadership.role.replicas {
            if isr.contains(replica) {
                continue;
            }
            if let Some(state) = leadership.followers.get(replica)
                && state.log_end >= hw
                && state.log_end >= leadership.epoch_start_offset
                && !lagging(replica)
            {
                isr.push(*replica);
            }
        }
        if isr == before {
            return None;
        }
        leadership.isr_change_pending = true;
        leadership.pending_additions = isr
            .iter()
            .copied()
            .filter(|r| !leadership.role.isr.contains(r))
            .collect();
        Some(IsrChange {
            leader_epoch: leadership.role.leader_epoch,
            partition_epoch: leadership.role.partition_epoch,
            isr,
        })
    }

    /// Clears the in-flight mark after a refused or failed ISR proposal.
    pub fn isr_change_failed(&self) {
        let mut leadership = lock(&self.leadership);
        leadership.isr_change_pending = false;
        leadership.pending_additions.clear();
    }

    /// Whole batches from `offset` up to `max_bytes`: consumers read below the high watermark
    /// (`committed_only`), followers up to the log end.
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` or a storage error.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        committed_only: bool,
    ) -> Result<Bytes, KafkaError> {
        let log = read_lock(&self.log);
        let limit = if committed_only {
            self.high_watermark()
        } else {
            log.next_offset()
        };
        match log.read_below(offset, max_bytes, limit) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(LogError::OffsetOutOfRange { offset, start, end }) => Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                format!("offset {offset} not in [{start}, {end}]"),
            )),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// ListOffsets by timestamp (leader; below the high watermark).
    ///
    /// # Errors
    /// A storage error.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, KafkaError> {
        let found = read_lock(&self.log)
            .offset_for_timestamp(timestamp)
            .map_err(storage_error)?;
        Ok(found.filter(|(offset, _)| *offset < self.high_watermark()))
    }

    /// `OffsetForLeaderEpoch`: `(epoch, end offset)` from the epoch cache.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        read_lock(&self.log).end_offset_for_epoch(epoch)
    }

    /// DeleteRecords (leader): `-1` means the high watermark; never beyond it.
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE`, NOT_LEADER_OR_FOLLOWER, or a storage error.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, KafkaError> {
        self.check_leader(&lock(&self.leadership))?;
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target > hw {
            return Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                "beyond the high watermark",
            ));
        }
        match write_lock(&self.log).delete_records_before(target) {
            Ok(start) => {
                lock(&self.producers).drop_below(start);
                Ok(start)
            }
            Err(LogError::OffsetOutOfRange { .. }) => Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                "beyond the high watermark",
            )),
            Err(error) => Err(storage_error(error)),
        }
    }

    // ---- follower side ----

    /// The follower's fetch position and the epoch it follows, or `None` when it does not follow
    /// `leader` (or must truncate first).
    pub fn fetch_position(&self, leader: BrokerId) -> Option<(i64, i32)> {
        let leadership = lock(&self.leadership);
        if leadership.role.leader != leader || leader == self.node_id || leadership.needs_truncation
        {
            return None;
        }
        Some((
            read_lock(&self.log).next_offset(),
            leadership.role.leader_epoch,
        ))
    }

    /// Whether the follower must truncate before fetching from `leader`; with the epoch to ask.
    pub fn truncation_needed(&self, leader: BrokerId) -> Option<(i32, i32)> {
        let leadership = lock(&self.leadership);
        (leadership.role.leader == leader && leadership.needs_truncation).then(|| {
            (
                leadership.role.leader_epoch,
                read_lock(&self.log).latest_epoch(),
            )
        })
    }

    /// Applies the answer of `asked.0`, asked as its follower in leader epoch `asked.1`, for our
    /// latest epoch `asked_epoch` (Kafka's follower truncation): returns `true` when done, `false`
    /// to ask again about an older epoch.
    ///
    /// An answer for a role that has passed (this replica leads now, follows another leader or
    /// another epoch, or already truncated) cuts nothing and returns `true`: the fetcher asks
    /// again under the new role if it must. The role is checked and the log cut under the
    /// leadership lock that [`Replica::update_role`] takes, so a promotion cannot slip in
    /// between: a deposed leader's word never cuts a leader's log (Kafka checks the fetcher's
    /// partition state under `leaderIsrUpdateLock` the same way).
    ///
    /// # Errors
    /// A storage error.
    pub fn truncate_by_epoch(
        &self,
        asked_epoch: i32,
        leader_answer: (i32, i64),
        asked: (BrokerId, i32),
    ) -> Result<bool, KafkaError> {
        let mut leadership = lock(&self.leadership);
        if leadership.role.leader != asked.0
            || leadership.role.leader_epoch != asked.1
            || asked.0 == self.node_id
            || !leadership.needs_truncation
        {
            return Ok(true);
        }
        let (leader_end_epoch, leader_end) = leader_answer;
        let log = write_lock(&self.log);
        let own_end = log.next_offset();
        let (target, done) = if asked_epoch < 0 {
            // Nothing stored under any epoch: nothing to truncate.
            (own_end, true)
        } else if leader_end < 0 {
            // The leader knows no epoch up to ours (its log starts later or is empty): keep
            // nothing we cannot verify.
            (log.log_start_offset(), true)
        } else if leader_end_epoch == asked_epoch {
            (leader_end.min(own_end), true)
        } else {
            // The leader's floor epoch is older than ours: cut where that epoch ends here too,
            // then ask again.
            let (own_epoch, own_epoch_end) = log.end_offset_for_epoch(leader_end_epoch);
            let cut = if own_epoch == leader_end_epoch {
                own_epoch_end.min(leader_end)
            } else {
                leader_end.min(own_end)
            };
            (cut, own_epoch == leader_end_epoch || cut >= own_end)
        };
        self.cut_locked(log, target, "truncated diverged log tail")?;
        if done {
            leadership.needs_truncation = false;
        }
        Ok(done)
    }

    /// Appends a fetch answer's batches (follower) and takes the leader's high watermark and log
    /// start.
    ///
    /// # Errors
    /// A storage error (or batches that do not continue the log).
    pub fn append_fetched(
        &self,
        records: &[u8],
        leader_hw: i64,
        leader_start: i64,
        asked: (BrokerId, i32),
    ) -> Result<(), KafkaError> {
        // A reply to a fetch sent under an older role (another leader or epoch, or before a
        // truncation became due) is dropped: its records may be a deposed leader's tail.
        let leadership = lock(&self.leadership);
        if !self.still_following(&leadership, asked) {
            return Ok(());
        }
        let end = self.append_stored(records, leader_start)?;
        drop(leadership);
        let hw = leader_hw.min(end);
        self.high_watermark.send_if_modified(|current| {
            if hw > *current {
                *current = hw;
                true
            } else {
                false
            }
        });
        // Forgets the decided transactions the watermark passed (a follower serves no
        // consumer, so nothing else would).
        lock(&self.producers).last_stable_offset(self.high_watermark());
        Ok(())
    }

    /// Appends batches as another log stored them (offsets, epochs, producer state kept), then
    /// follows that log's start offset. Returns the new log end. The caller holds the
    /// leadership lock.
    fn append_stored(&self, records: &[u8], other_start: i64) -> Result<i64, KafkaError> {
        let mut log = write_lock(&self.log);
        if !records.is_empty() {
            log.append_replicated(records).map_err(storage_error)?;
            record_stored(&mut lock(&self.producers), records);
        }
        let end = log.next_offset();
        if other_start > log.log_start_offset() && other_start <= end {
            let start = log
                .delete_records_before(other_start)
                .map_err(storage_error)?;
            lock(&self.producers).drop_below(start);
        }
        Ok(end)
    }

    /// Marks the replica as (or no longer as) a mirror of a source cluster's partition.
    pub fn set_mirror(&self, mirror: bool) {
        self.mirror
            .store(mirror, std::sync::atomic::Ordering::Relaxed);
    }

    /// What a mirror's leader reports when it stops copying: the leader epoch it holds, the
    /// last leader epoch in its log and the highest producer id in its producer state.
    pub fn mirror_stop_report(&self) -> (i32, i32, i64) {
        let leadership = lock(&self.leadership);
        let last_epoch = read_lock(&self.log).latest_epoch();
        let max_producer_id = lock(&self.producers).max_producer_id();
        (leadership.role.leader_epoch, last_epoch, max_producer_id)
    }

    /// Whether the replica mirrors a source cluster's partition.
    pub fn is_mirror(&self) -> bool {
        self.mirror.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Appends batches fetched from the source cluster's partition as this cluster's leader, at
    /// the source's offsets and byte for byte (leader epochs, producer ids and sequences kept),
    /// then follows the source's log start. `asked` is the leader epoch this broker held when it
    /// sent the fetch: an answer that arrives after the lead moved is dropped. Returns whether
    /// anything was appended.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER, or a storage error (batches that do not continue the log).
    pub fn append_mirrored(
        &self,
        records: &[u8],
        source_start: i64,
        asked: i32,
    ) -> Result<bool, KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if leadership.role.leader_epoch != asked {
            return Ok(false);
        }
        self.append_stored(records, source_start)?;
        drop(leadership);
        self.maybe_advance_high_watermark();
        Ok(!records.is_empty())
    }

    /// Empties a mirror's log to restart at the source's log start (the source's retention
    /// removed what the mirror had not copied yet), as its leader in epoch `asked`.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER or a storage error.
    pub fn reset_mirror_to(&self, offset: i64, asked: i32) -> Result<(), KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if leadership.role.leader_epoch != asked {
            return Ok(());
        }
        self.reset_log(offset)
    }

    /// Empties the log to restart at `offset`, with no producer state. The caller holds the
    /// leadership lock.
    fn reset_log(&self, offset: i64) -> Result<(), KafkaError> {
        let mut log = write_lock(&self.log);
        log.reset_to(offset).map_err(storage_error)?;
        *lock(&self.producers) = ProducerStates::default();
        self.high_watermark.send_replace(offset);
        Ok(())
    }

    /// The whole batches of `[from, log end)` as stored (a leader moving its divergent tail);
    /// `from` must be a batch boundary when `exact`, else the batch holding it comes first.
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE`, or a storage error.
    pub fn read_tail(&self, from: i64, exact: bool) -> Result<Vec<u8>, KafkaError> {
        let log = read_lock(&self.log);
        let end = log.next_offset();
        let mut out = Vec::new();
        let mut at = from;
        while at < end {
            let bytes = match log.read(at, 8 << 20) {
                Ok(bytes) => bytes,
                Err(LogError::OffsetOutOfRange { offset, start, end }) => {
                    return Err(KafkaError::new(
                        codes::OFFSET_OUT_OF_RANGE,
                        format!("offset {offset} not in [{start}, {end}]"),
                    ));
                }
                Err(error) => return Err(storage_error(error)),
            };
            let mut pos = 0;
            let mut next = at;
            while let Ok(header) = hdi_log::batch::parse_header(&bytes[pos..], usize::MAX) {
                if pos + header.size() > bytes.len() {
                    break;
                }
                if exact && pos == 0 && header.base_offset != at {
                    return Err(KafkaError::new(
                        codes::OFFSET_OUT_OF_RANGE,
                        format!(
                            "offset {at} of {}-{} is inside a batch",
                            self.topic, self.index
                        ),
                    ));
                }
                next = header.base_offset + i64::from(header.last_offset_delta) + 1;
                pos += header.size();
            }
            if next <= at {
                return Err(KafkaError::new(
                    codes::KAFKA_STORAGE_ERROR,
                    format!(
                        "no whole batch at offset {at} of {}-{}",
                        self.topic, self.index
                    ),
                ));
            }
            out.extend_from_slice(&bytes[..pos]);
            at = next;
        }
        Ok(out)
    }

    /// Appends batches moved from another partition, as this partition's leader in epoch
    /// `asked`: each batch is re-based at this log's end and stamped with this leader epoch, its
    /// bytes otherwise unchanged (its CRC covers neither field). Returns the new log end.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER (also when the epoch moved on), or a storage error.
    pub fn append_moved(&self, records: &[u8], asked: i32) -> Result<i64, KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if leadership.role.leader_epoch != asked {
            return Err(KafkaError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!("{}-{} left leader epoch {asked}", self.topic, self.index),
            ));
        }
        let mut bytes = records.to_vec();
        let mut log = write_lock(&self.log);
        let mut next = log.next_offset();
        let mut at = 0;
        while at < bytes.len() {
            let header = hdi_log::batch::parse_header(&bytes[at..], usize::MAX).map_err(|e| {
                KafkaError::new(codes::CORRUPT_MESSAGE, format!("a moved batch: {e}"))
            })?;
            let size = header.size();
            if at + size > bytes.len() {
                return Err(KafkaError::new(
                    codes::CORRUPT_MESSAGE,
                    "a moved batch is cut short",
                ));
            }
            hdi_log::batch::assign(&mut bytes[at..at + size], next, asked);
            next += i64::from(header.last_offset_delta) + 1;
            at += size;
        }
        if !bytes.is_empty() {
            log.append_replicated(&bytes).map_err(storage_error)?;
            record_stored(&mut lock(&self.producers), &bytes);
        }
        let end = log.next_offset();
        drop(log);
        drop(leadership);
        self.maybe_advance_high_watermark();
        Ok(end)
    }

    /// Cuts the log at `offset` (its producer state rebuilt, the high watermark lowered to it).
    fn cut_to(&self, offset: i64) -> Result<(), KafkaError> {
        self.cut_locked(
            write_lock(&self.log),
            offset,
            "cut the log where it diverged from its new source",
        )
    }

    /// [`Replica::cut_to`] with the log already locked (released on return).
    fn cut_locked(
        &self,
        mut log: std::sync::RwLockWriteGuard<'_, Log>,
        offset: i64,
        why: &'static str,
    ) -> Result<(), KafkaError> {
        let own_end = log.next_offset();
        if offset < own_end {
            let end = log.truncate_to(offset).map_err(storage_error)?;
            tracing::warn!(topic = %self.topic, partition = self.index, from = own_end, to = end, "{why}");
            *lock(&self.producers) = rebuild_producers(&log).map_err(storage_error)?;
        }
        let end = log.next_offset();
        drop(log);
        self.high_watermark.send_if_modified(|hw| {
            if *hw > end {
                *hw = end;
                true
            } else {
                false
            }
        });
        Ok(())
    }

    /// The leader of a partition a reverse link turns into a mirror cuts its log at the
    /// divergence point (its tail already in the quarantine topic), in leader epoch `asked`.
    ///
    /// # Errors
    /// NOT_LEADER_OR_FOLLOWER, or a storage error.
    pub fn cut_for_adoption(&self, offset: i64, asked: i32) -> Result<(), KafkaError> {
        let leadership = lock(&self.leadership);
        self.check_leader(&leadership)?;
        if leadership.role.leader_epoch != asked {
            return Err(KafkaError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!("{}-{} left leader epoch {asked}", self.topic, self.index),
            ));
        }
        self.cut_to(offset)
    }

    /// Marks an adoption as applied by this replica (its leader cut its log itself).
    pub fn adopted(&self, epoch: i32) {
        let _leadership = lock(&self.leadership);
        self.mark_adopted(epoch);
    }

    /// Records (in memory and in [`ADOPTED_EPOCH_FILE`]) that the adoption of leader epoch
    /// `epoch` is applied. The caller holds the leadership lock (one writer of the file).
    fn mark_adopted(&self, epoch: i32) {
        use std::sync::atomic::Ordering;
        if self.adopted_epoch.fetch_max(epoch, Ordering::Relaxed) >= epoch {
            return;
        }
        let path = self.dir.join(ADOPTED_EPOCH_FILE);
        let tmp = self.dir.join(format!("{ADOPTED_EPOCH_FILE}.tmp"));
        let written = std::fs::write(&tmp, epoch.to_string())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all());
        if let Err(error) = written {
            // The adoption is applied again after a restart (its cut repeated).
            tracing::error!(topic = %self.topic, partition = self.index, %error, "cannot record an applied adoption");
        }
    }

    /// Makes the follower truncate by epoch before it fetches again (its fetch offset was past
    /// the leader's log end: the logs diverged).
    pub fn mark_needs_truncation(&self, asked: (BrokerId, i32)) {
        let mut leadership = lock(&self.leadership);
        if self.still_following(&leadership, asked) {
            leadership.needs_truncation = true;
        }
    }

    fn still_following(&self, leadership: &Leadership, asked: (BrokerId, i32)) -> bool {
        leadership.role.leader == asked.0
            && leadership.role.leader_epoch == asked.1
            && asked.0 != self.node_id
            && !leadership.needs_truncation
    }

    /// Empties the log to restart at the leader's start offset (follower fell behind it).
    ///
    /// # Errors
    /// A storage error.
    pub fn reset_to(&self, offset: i64, asked: (BrokerId, i32)) -> Result<(), KafkaError> {
        let leadership = lock(&self.leadership);
        if !self.still_following(&leadership, asked) {
            return Ok(());
        }
        self.reset_log(offset)
    }

    // ---- housekeeping ----

    /// fsyncs the log.
    ///
    /// # Errors
    /// A storage error.
    pub fn flush(&self) -> Result<(), KafkaError> {
        write_lock(&self.log).flush().map_err(storage_error)
    }

    /// fsyncs if `flush.ms` says it is time.
    pub fn flush_if_due(&self) {
        if let Err(error) = write_lock(&self.log).flush_if_due() {
            tracing::error!(error = %chain(&error), partition = self.index, "flush.ms sync failed");
        }
    }

    /// Applies retention; returns segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let mut log = write_lock(&self.log);
        let deleted = log.apply_retention(now_ms).unwrap_or_else(|error| {
            tracing::error!(error = %chain(&error), "retention failed");
            0
        });
        if deleted > 0 {
            lock(&self.producers).drop_below(log.log_start_offset());
        }
        deleted
    }

    /// The log's settings.
    pub fn log_config(&self) -> hdi_log::LogConfig {
        read_lock(&self.log).config().clone()
    }

    /// Reopens the log with new settings.
    ///
    /// # Errors
    /// A storage error.
    pub fn reconfigure(&self, config: hdi_log::LogConfig) -> Result<(), KafkaError> {
        let mut log = write_lock(&self.log);
        log.flush().map_err(storage_error)?;
        let (mut reopened, _) = Log::open(&self.dir, config).map_err(storage_error)?;
        // The epoch a leader started without appending lives only in memory: keep it.
        let latest = log.latest_epoch();
        if latest > reopened.latest_epoch() {
            reopened.assign_epoch_start(latest);
        }
        *log = reopened;
        Ok(())
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        read_lock(&self.log).size_bytes()
    }

    /// Sets the topic's compaction settings (`None`: the topic is not compacted).
    pub fn set_compaction(&self, config: Option<CompactionConfig>) {
        *write_lock(&self.compaction) = config;
    }

    /// How dirty the log is, for a compacted topic. Nothing at or past the last stable offset
    /// (at most the high watermark) is cleanable: leaders and followers clean independently.
    pub fn cleanable(&self, now_ms: i64) -> Option<(Cleanable, CompactionConfig)> {
        let config = read_lock(&self.compaction).clone()?;
        let bound = self.last_stable_offset();
        let cleanable = read_lock(&self.log).cleanable(&config, bound, now_ms);
        match cleanable {
            Ok(cleanable) => Some((cleanable, config)),
            Err(error) => {
                tracing::error!(error = %chain(&error), topic = %self.topic, partition = self.index, "cannot size the dirty section");
                None
            }
        }
    }

    /// Compacts the log once (see `hdi_log::cleaner`): plans under the log's read lock, builds
    /// the key map and writes cleaned segments without it (throttled by `throttle`), and swaps
    /// them in under the write lock. A failed swap reopens the log, whose recovery finishes or
    /// undoes it. `None` when the topic is not compacted or nothing is dirty.
    ///
    /// # Errors
    /// A storage error.
    pub fn clean(
        &self,
        limits: &CleanerLimits,
        throttle: &mut Throttle,
        now_ms: i64,
    ) -> Result<Option<CleanStats>, KafkaError> {
        let Some(config) = read_lock(&self.compaction).clone() else {
            return Ok(None);
        };
        let bound = self.last_stable_offset();
        let plan = read_lock(&self.log)
            .plan_clean(&config, bound, now_ms)
            .map_err(storage_error)?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        let mut fail = hdi_log::FailPoint::none();
        let cleaned = plan
            .run(
                limits,
                &hdi_log::records::Codecs {
                    decompress: &decompress,
                    compress: &compress,
                },
                throttle,
                &mut fail,
            )
            .map_err(storage_error)?;
        let mut log = write_lock(&self.log);
        match log.commit_clean(cleaned, &mut fail) {
            Ok(stats) => Ok(Some(stats)),
            Err(error) => {
                let reopened = Log::open(&self.dir, log.config().clone());
                if let Ok((mut reopened, _)) = reopened {
                    let latest = log.latest_epoch();
                    if latest > reopened.latest_epoch() {
                        reopened.assign_epoch_start(latest);
                    }
                    *log = reopened;
                }
                Err(storage_error(error))
            }
        }
    }
}

/// Kafka's codecs for the cleaner and the key check (`hdi-log` takes them as a function).
fn decompress(codec: i16, data: &[u8]) -> Result<Vec<u8>, String> {
    hdi_kafka_client::compression::decompress(codec, data).map_err(|e| format!("{e:#}"))
}

/// Kafka's codecs for the cleaner's rewritten batches (their own codec, as Kafka recompresses).
fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, String> {
    hdi_kafka_client::compression::compress(codec, data).map_err(|e| format!("{e:#}"))
}

/// A compacted topic refuses records without a key, as Kafka does (INVALID_RECORD: "Compacted
/// topic cannot accept message without key"). Batches that do not parse are left to the
/// validation that follows.
fn check_keys(records: &[u8]) -> Result<(), KafkaError> {
    let mut at = 0;
    while let Ok(header) = hdi_log::batch::parse_header(&records[at..], usize::MAX) {
        let Some(batch) = records.get(at..at + header.size()) else {
            break;
        };
        at += header.size();
        if header.is_control() {
            continue;
        }
        let keyless = hdi_log::records::records_bytes(batch, &header, &decompress)
            .and_then(|bytes| {
                let records = hdi_log::records::parse_records(&bytes, &header)?;
                Ok(records.iter().any(|r| r.key.is_none()))
            })
            .map_err(|error| KafkaError::new(codes::CORRUPT_MESSAGE, error.to_string()))?;
        if keyless {
            return Err(KafkaError::new(
                codes::INVALID_RECORD,
                "Compacted topic cannot accept message without key",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use hdi_log::batch::{build_batch, with_producer};

    fn lead(replica: &Replica) {
        replica.update_role(&PartitionRecord {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        });
    }

    /// A transactional batch of `values` from producer `pid` (epoch 0) at sequence `seq`.
    fn txn_batch(values: &[&[u8]], pid: i64, seq: i32) -> Vec<u8> {
        let mut batch = with_producer(build_batch(0, 0, values), pid, 0, seq);
        batch[21..23].copy_from_slice(&crate::producers::TRANSACTIONAL_BIT.to_be_bytes());
        hdi_log::batch::reseal(&mut batch);
        batch
    }

    fn marker(pid: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id: pid,
            producer_epoch: epoch,
            coordinator_epoch,
            commit,
        }
    }

    impl Replica {
        /// Produces a transactional `batch` as the Produce handler does once the coordinator
        /// verified its producer (the guard is taken and presented).
        fn produce_verified(&self, batch: &[u8]) -> Result<Produced, KafkaError> {
            let header = hdi_log::batch::parse_header(batch, usize::MAX).unwrap();
            let guard = self.begin_verification(header.producer_id, header.producer_epoch)?;
            self.produce_with(batch, None, guard)
        }
    }

    /// `(base offset, is control)` of each batch in `bytes`.
    fn batches(bytes: &[u8]) -> Vec<(i64, bool)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let header = hdi_log::batch::parse_header(&bytes[at..], usize::MAX).unwrap();
            out.push((header.base_offset, header.is_control()));
            at += header.size();
        }
        out
    }

    #[test]
    fn a_transaction_rebuilt_from_the_log_is_open_since_the_restart_not_its_batch_time() {
        let (_temp, dir) = temp();
        let config = hdi_log::LogConfig::default();
        let open = || Replica::open(&dir, "t", Uuid::nil(), 0, 1, config.clone()).unwrap();
        {
            let replica = open();
            lead(&replica);
            // Event time: the batch's timestamps are 1970's.
            replica
                .produce_verified(&txn_batch(&[b"a"], 42, 0))
                .unwrap();
            assert_eq!(replica.hanging_transactions(now_ms()), 0);
        }
        let replica = open();
        assert_eq!(replica.hanging_transactions(now_ms()), 0, "after a restart");
        let later = now_ms() + crate::producers::HANGING_AFTER_MS + 60_000;
        assert_eq!(replica.hanging_transactions(later), 1);
    }

    #[test]
    fn a_marker_is_appended_and_read_committed_stops_at_the_last_stable_offset() {
        let (_temp, dir) = temp();
        let config = hdi_log::LogConfig::default();
        let open = || Replica::open(&dir, "t", Uuid::nil(), 0, 1, config.clone()).unwrap();
        let aborted_42 = AbortedTxn {
            producer_id: 42,
            first_offset: 0,
            last_offset: 4,
        };
        {
            let replica = open();
            lead(&replica);
            // Producer 42's transaction at 0-1, an idempotent batch at 2, producer 43's at 3.
            assert_eq!(
                replica
                    .produce_verified(&txn_batch(&[b"a", b"b"], 42, 0))
                    .unwrap()
                    .base_offset,
                0
            );
            let plain = with_producer(build_batch(0, 0, &[b"c"]), 7, 0, 0);
            assert_eq!(replica.produce(&plain, None).unwrap().base_offset, 2);
            assert_eq!(
                replica
                    .produce_verified(&txn_batch(&[b"d"], 43, 0))
                    .unwrap()
                    .base_offset,
                3
            );
            assert_eq!(
                (replica.high_watermark(), replica.last_stable_offset()),
                (4, 0)
            );
            let (bytes, lso, aborted) = replica.read_committed(0, 1 << 20).unwrap();
            assert_eq!((bytes.len(), lso, aborted), (0, 0, vec![]));
            // A plain batch of a producer inside its transaction, a client's control batch.
            let outside = with_producer(build_batch(0, 0, &[b"x"]), 42, 0, 2);
            assert_eq!(
                replica.produce(&outside, None).unwrap_err().code,
                codes::INVALID_TXN_STATE
            );
            // A transactional batch opening a transaction without the coordinator's
            // verification (no guard) is refused and does not hold the last stable offset.
            let unverified = txn_batch(&[b"y"], 44, 0);
            assert_eq!(
                replica.produce(&unverified, None).unwrap_err().code,
                codes::INVALID_TXN_STATE
            );
            assert_eq!(replica.offsets().2, 4, "nothing appended");
            let forged = crate::producers::marker_batch(&marker(42, 0, 0, true), 0);
            assert_eq!(
                replica.produce(&forged, None).unwrap_err().code,
                codes::INVALID_RECORD
            );
            // Abort 42: the marker lands at 4; 43 still holds the last stable offset at 3.
            let produced = replica
                .write_txn_marker(&marker(42, 0, 3, false), Some(1))
                .unwrap();
            assert_eq!((produced.base_offset, produced.log_end), (4, 5));
            assert_eq!(replica.last_stable_offset(), 3);
            let (bytes, lso, aborted) = replica.read_committed(0, 1 << 20).unwrap();
            assert_eq!(batches(&bytes), vec![(0, false), (2, false)]);
            assert_eq!((lso, aborted), (3, vec![aborted_42]));
            // Stale markers are fenced.
            assert_eq!(
                replica
                    .write_txn_marker(&marker(42, 0, 2, true), None)
                    .unwrap_err()
                    .code,
                codes::TRANSACTION_COORDINATOR_FENCED
            );
            assert_eq!(
                replica
                    .write_txn_marker(&marker(42, -1, 3, true), None)
                    .unwrap_err()
                    .code,
                codes::INVALID_PRODUCER_EPOCH
            );
            // Commit 43; 42 starts a new transaction at 6.
            replica
                .write_txn_marker(&marker(43, 0, 0, true), None)
                .unwrap();
            assert_eq!(replica.last_stable_offset(), 6);
            assert_eq!(
                replica
                    .produce_verified(&txn_batch(&[b"e"], 42, 2))
                    .unwrap()
                    .base_offset,
                6
            );
            assert_eq!(replica.last_stable_offset(), 6);
            let (bytes, _, aborted) = replica.read_committed(5, 1 << 20).unwrap();
            assert_eq!((batches(&bytes), aborted), (vec![(5, true)], vec![]));
            // read_uncommitted is unchanged: up to the high watermark, markers included.
            let all = replica.read(0, 1 << 20, true).unwrap();
            assert_eq!(batches(&all).len(), 6);
        }
        // After a restart the open transaction and the aborted one are known again.
        let replica = open();
        lead(&replica);
        assert_eq!(replica.offsets(), (0, 7, 7));
        assert_eq!(replica.last_stable_offset(), 6);
        let (_, _, aborted) = replica.read_committed(0, 1 << 20).unwrap();
        assert_eq!(aborted, vec![aborted_42]);
        assert_eq!(
            replica
                .write_txn_marker(&marker(42, 0, 2, false), None)
                .unwrap_err()
                .code,
            codes::TRANSACTION_COORDINATOR_FENCED
        );
        replica
            .write_txn_marker(&marker(42, 0, 3, true), None)
            .unwrap();
        assert_eq!(replica.last_stable_offset(), 8);
        // DeleteRecords past the abort marker drops it from the index.
        replica.delete_records_before(5).unwrap();
        let (_, _, aborted) = replica.read_committed(5, 1 << 20).unwrap();
        assert_eq!(aborted, vec![]);
    }

    #[test]
    fn a_promoted_follower_knows_the_open_transactions() {
        let (_l, leader) = replica_on(1);
        leader.update_role(&record(1, 5, vec![1, 2, 3], 1));
        leader.produce_verified(&txn_batch(&[b"a"], 42, 0)).unwrap();
        leader.produce_verified(&txn_batch(&[b"b"], 43, 0)).unwrap();
        leader
            .write_txn_marker(&marker(42, 0, 0, false), None)
            .unwrap();
        let (_f, follower) = replica_on(2);
        copy_from(&leader, &follower);
        // Broker 2 leads in epoch 6: 43's transaction is open from 1, 42's was aborted.
        follower.update_role(&record(2, 6, vec![2], 2));
        assert_eq!(follower.high_watermark(), 3);
        assert_eq!(follower.last_stable_offset(), 1);
        let (bytes, _, aborted) = follower.read_committed(0, 1 << 20).unwrap();
        assert_eq!(batches(&bytes), vec![(0, false)]);
        assert_eq!(
            aborted,
            vec![AbortedTxn {
                producer_id: 42,
                first_offset: 0,
                last_offset: 2
            }]
        );
        follower
            .write_txn_marker(&marker(43, 0, 0, true), None)
            .unwrap();
        assert_eq!(follower.last_stable_offset(), 4);
    }

    #[test]
    fn a_stopped_mirror_aborts_the_transactions_its_source_left_open() {
        let (_s, source) = replica_on(1);
        source.update_role(&record(1, 5, vec![1], 1));
        source.produce_verified(&txn_batch(&[b"a"], 42, 0)).unwrap();
        source.produce_verified(&txn_batch(&[b"b"], 43, 0)).unwrap();
        source
            .write_txn_marker(&marker(42, 0, 4, true), None)
            .unwrap();
        source.produce_verified(&txn_batch(&[b"c"], 42, 1)).unwrap();
        let (_m, mirror) = replica_on(1);
        mirror.set_mirror(true);
        mirror.update_role(&record(1, 2, vec![1], 1));
        let copied = source.read(0, 1 << 20, false).unwrap();
        assert!(mirror.append_mirrored(&copied, 0, 2).unwrap());
        assert_eq!(
            (mirror.high_watermark(), mirror.last_stable_offset()),
            (4, 1)
        );
        // The link fails over: the mirror stops and leads in a new epoch.
        mirror.set_mirror(false);
        mirror.update_role(&record(1, 6, vec![1], 2));
        assert_eq!(mirror.abort_open_transactions().unwrap(), 2);
        assert_eq!(mirror.last_stable_offset(), 6);
        let (bytes, _, aborted) = mirror.read_committed(0, 1 << 20).unwrap();
        assert_eq!(batches(&bytes).len(), 6);
        let aborted: Vec<(i64, i64)> = aborted
            .iter()
            .map(|a| (a.producer_id, a.first_offset))
            .collect();
        assert_eq!(aborted, vec![(43, 1), (42, 3)]);
        assert_eq!(mirror.abort_open_transactions().unwrap(), 0);
    }

    #[test]
    fn idempotence_state_survives_a_restart() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("replica");
        let config = hdi_log::LogConfig::default();
        let open = || Replica::open(&dir, "t", Uuid::nil(), 0, 1, config.clone()).unwrap();
        let first = with_producer(build_batch(0, 0, &[b"a", b"b"]), 42, 0, 0);
        let second = with_producer(build_batch(0, 0, &[b"c"]), 42, 0, 2);
        {
            let replica = open();
            lead(&replica);
            assert_eq!(replica.produce(&first, None).unwrap().base_offset, 0);
            assert_eq!(replica.produce(&second, None).unwrap().base_offset, 2);
        }
        // After a restart, retries are recognised from the stored headers: same offsets, no append.
        let replica = open();
        lead(&replica);
        assert_eq!(replica.produce(&first, None).unwrap().base_offset, 0);
        assert_eq!(replica.produce(&second, None).unwrap().base_offset, 2);
        assert_eq!(replica.offsets(), (0, 3, 3));
        let gap = with_producer(build_batch(0, 0, &[b"d"]), 42, 0, 7);
        assert_eq!(
            replica.produce(&gap, None).unwrap_err().code,
            codes::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        let next = with_producer(build_batch(0, 0, &[b"d"]), 42, 0, 3);
        assert_eq!(replica.produce(&next, None).unwrap().base_offset, 3);
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member_and_a_follower_not_in_sync_leaves() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("replica");
        let replica =
            Replica::open(&dir, "t", Uuid::nil(), 0, 1, hdi_log::LogConfig::default()).unwrap();
        replica.update_role(&PartitionRecord {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 9,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        });
        let batch = build_batch(0, 0, &[b"a", b"b"]);
        assert_eq!(
            replica.produce(&batch, Some(4)).unwrap_err().code,
            codes::NOT_ENOUGH_REPLICAS
        );
        let produced = replica.produce(&batch, Some(2)).unwrap();
        assert_eq!(produced.log_end, 2);
        assert_eq!(replica.high_watermark(), 0);
        replica.follower_fetched(2, 2, 4).unwrap();
        assert_eq!(replica.high_watermark(), 0, "replica 3 has not fetched");
        assert_eq!(
            replica.follower_fetched(3, 1, 3).unwrap_err().code,
            codes::FENCED_LEADER_EPOCH
        );
        replica.follower_fetched(3, 1, 4).unwrap();
        assert_eq!(replica.high_watermark(), 1);
        // Consumers read only below the high watermark (whole batches: nothing yet).
        assert!(replica.read(0, 1 << 20, true).unwrap().is_empty());
        assert!(!replica.read(0, 1 << 20, false).unwrap().is_empty());
        replica.follower_fetched(3, 2, 4).unwrap();
        assert_eq!(replica.high_watermark(), 2);
        assert!(!replica.read(0, 1 << 20, true).unwrap().is_empty());
        // Replica 3 stops fetching while 2 keeps up: only 3 leaves the ISR.
        replica.produce(&batch, None).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        replica.follower_fetched(2, 4, 4).unwrap();
        let change = replica.isr_change(Duration::from_millis(20)).unwrap();
        assert_eq!(
            change,
            IsrChange {
                leader_epoch: 4,
                partition_epoch: 9,
                isr: vec![1, 2]
            }
        );
        assert_eq!(
            replica.isr_change(Duration::from_millis(20)),
            None,
            "one change in flight"
        );
    }

    fn record(
        leader: BrokerId,
        epoch: i32,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
    ) -> PartitionRecord {
        PartitionRecord {
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: epoch,
            partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        }
    }

    /// A directory for one replica (not created yet), removed when the guard drops.
    #[test]
    fn a_compacted_replica_refuses_keyless_records_and_cleans_to_the_latest_per_key() {
        let (_dir_temp, dir) = temp();
        let config = hdi_log::LogConfig {
            segment_bytes: 100,
            ..hdi_log::LogConfig::default()
        };
        let replica = Replica::open(&dir, "t", Uuid::nil(), 0, 1, config).unwrap();
        lead(&replica);
        replica.set_compaction(Some(CompactionConfig::default()));
        let keyless = build_batch(0, 0, &[b"no key"]);
        let error = replica.produce(&keyless, None).unwrap_err();
        assert_eq!(error.code, codes::INVALID_RECORD, "{}", error.message);
        for value in ["1", "2", "3"] {
            let batch =
                hdi_log::records::build_keyed_batch(0, 0, &[(Some(b"k"), Some(value.as_bytes()))]);
            replica.produce(&batch, None).unwrap();
        }
        let limits = CleanerLimits {
            io_max_bytes_per_second: 1e9,
            ..CleanerLimits::default()
        };
        let mut throttle = Throttle::new(limits.io_max_bytes_per_second);
        let (cleanable, _) = replica.cleanable(now_ms()).unwrap();
        assert!(cleanable.dirty_bytes > 0, "{cleanable:?}");
        let stats = replica
            .clean(&limits, &mut throttle, now_ms())
            .unwrap()
            .unwrap();
        assert_eq!(stats.records_removed, 1, "{stats:?}");
        let bytes = read_lock(&replica.log).read(0, 1 << 20).unwrap();
        let first = hdi_log::batch::parse_header(&bytes, usize::MAX).unwrap();
        assert_eq!(first.base_offset, 1, "offset 0 was cleaned away");
        // Not compacted: no clean, keyless records accepted.
        replica.set_compaction(None);
        assert!(
            replica
                .clean(&limits, &mut throttle, now_ms())
                .unwrap()
                .is_none()
        );
        replica.produce(&keyless, None).unwrap();
    }

    fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("replica");
        (temp, dir)
    }

    #[test]
    fn a_joining_replica_holds_the_watermark_while_its_addition_is_in_flight() {
        let (_dir_temp, dir) = temp();
        let replica =
            Replica::open(&dir, "t", Uuid::nil(), 0, 1, hdi_log::LogConfig::default()).unwrap();
        replica.update_role(&record(1, 1, vec![1, 3], 1));
        let batch = build_batch(0, 0, &[b"a", b"b"]);
        replica.produce(&batch, None).unwrap();
        replica.follower_fetched(3, 2, 1).unwrap();
        replica.follower_fetched(2, 2, 1).unwrap();
        assert_eq!(replica.high_watermark(), 2);
        let change = replica.isr_change(Duration::from_secs(10)).unwrap();
        assert_eq!(change.isr, vec![1, 3, 2]);
        // While the addition of 2 is being committed, an append is not committed without it.
        replica.produce(&batch, None).unwrap();
        replica.follower_fetched(3, 4, 1).unwrap();
        assert_eq!(
            replica.high_watermark(),
            2,
            "replica 2 (joining) has not fetched 2..4"
        );
        replica.follower_fetched(2, 4, 1).unwrap();
        assert_eq!(replica.high_watermark(), 4);
    }

    #[test]
    fn a_fetch_reply_for_an_older_role_is_dropped() {
        let ((_a_temp, a), (_b_temp, b)) = (temp(), temp());
        let leader =
            Replica::open(&a, "t", Uuid::nil(), 0, 1, hdi_log::LogConfig::default()).unwrap();
        leader.update_role(&record(1, 5, vec![1, 2], 1));
        leader.produce(&build_batch(0, 0, &[b"x"]), None).unwrap();
        let tail = leader.read(0, 1 << 20, false).unwrap();
        let follower =
            Replica::open(&b, "t", Uuid::nil(), 0, 2, hdi_log::LogConfig::default()).unwrap();
        follower.update_role(&record(3, 6, vec![2, 3], 2));
        // The reply of a fetch sent to broker 1 in epoch 5 arrives after the move to 3 / 6.
        follower.append_fetched(&tail, 1, 0, (1, 5)).unwrap();
        assert_eq!(follower.offsets().2, 0, "nothing appended");
    }

    #[tokio::test]
    async fn acks_all_fails_when_the_isr_shrinks_below_min_insync_or_leadership_moves() {
        let (_dir_temp, dir) = temp();
        let replica =
            Replica::open(&dir, "t", Uuid::nil(), 0, 1, hdi_log::LogConfig::default()).unwrap();
        replica.update_role(&record(1, 1, vec![1, 2], 1));
        let produced = replica
            .produce(&build_batch(0, 0, &[b"a"]), Some(2))
            .unwrap();
        replica.update_role(&record(1, 1, vec![1], 2));
        let error = replica
            .wait_replicated(
                produced.log_end,
                produced.leader_epoch,
                Some(2),
                Duration::from_secs(2),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code, codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND);
        let produced = replica.produce(&build_batch(0, 0, &[b"b"]), None).unwrap();
        // Demoted before the wait: never acknowledged, whatever the watermark says later.
        replica.update_role(&record(2, 2, vec![1, 2], 3));
        let error = replica
            .wait_replicated(
                produced.log_end,
                produced.leader_epoch,
                None,
                Duration::from_secs(2),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code, codes::NOT_LEADER_OR_FOLLOWER);
    }

    /// Opens replica `node` of partition 0 of topic "t" in a directory of its own.
    fn replica_on(node: BrokerId) -> (tempfile::TempDir, Replica) {
        let (temp, dir) = temp();
        let replica = Replica::open(
            &dir,
            "t",
            Uuid::nil(),
            0,
            node,
            hdi_log::LogConfig::default(),
        )
        .unwrap();
        (temp, replica)
    }

    /// Makes `follower` follow broker 1 in epoch 5 and copies `leader`'s whole log into it, as a
    /// replica fetch does.
    fn copy_from(leader: &Replica, follower: &Replica) {
        follower.update_role(&record(1, 5, vec![1, 2, 3], 1));
        // An empty follower has nothing to truncate (no epoch stored).
        follower.truncate_by_epoch(-1, (-1, -1), (1, 5)).unwrap();
        let start = follower.offsets().2;
        let records = leader.read(start, 1 << 20, false).unwrap();
        follower
            .append_fetched(&records, leader.offsets().2, 0, (1, 5))
            .unwrap();
    }

    /// Broker 2 holds `a`, `b`, `c` from leader 1 in epoch 5 and now follows broker 3 in epoch
    /// 6, which must be asked where epoch 5 ends before 2 fetches (3 got only `a` of epoch 5).
    fn diverged_follower() -> (tempfile::TempDir, Replica) {
        let (_a_temp, a) = replica_on(1);
        a.update_role(&record(1, 5, vec![1, 2, 3], 1));
        for value in [b"a", b"b", b"c"] {
            a.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        let (b_temp, b) = replica_on(2);
        copy_from(&a, &b);
        b.update_role(&record(3, 6, vec![2, 3], 2));
        assert_eq!(b.truncation_needed(3), Some((6, 5)));
        (b_temp, b)
    }

    #[test]
    fn an_adopted_follower_cuts_its_log_once_not_again_after_a_restart() {
        // Leader 1 holds `a`, `b`, `c` (epoch 5), follower 2 a copy. A reverse link adopts the
        // partition at 1: the leader cuts there, epoch 6 begins at 1, and 2 cuts its own copy.
        let (_a_temp, a) = replica_on(1);
        a.update_role(&record(1, 5, vec![1, 2], 1));
        for value in [b"a", b"b", b"c"] {
            a.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        let (b_temp, b) = replica_on(2);
        copy_from(&a, &b);
        a.cut_for_adoption(1, 5).unwrap();
        a.adopted(6);
        a.update_role(&record(1, 6, vec![1, 2], 2));
        b.update_role_adopted(&record(1, 6, vec![1, 2], 2), (1, 6));
        assert_eq!(b.offsets().2, 1, "the follower cut at the adoption");

        // Epoch 6 writes `d` and `e`; 2 replicates them and they are committed.
        for value in [b"d", b"e"] {
            a.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        assert!(
            b.truncate_by_epoch(5, a.end_offset_for_epoch(5), (1, 6))
                .unwrap()
        );
        let records = a.read(1, 1 << 20, false).unwrap();
        b.append_fetched(&records, 3, 0, (1, 6)).unwrap();
        assert_eq!(b.offsets(), (0, 3, 3));
        drop(b);

        // 2 restarts while 1 is down: as the ISR's last member it stays in the ISR with no
        // leader (epoch 7) until it is unfenced and elected. The adoption it applied before the
        // restart is not applied again: it would cut the committed `d` and `e`.
        let b = Replica::open(
            &b_temp.path().join("replica"),
            "t",
            Uuid::nil(),
            0,
            2,
            hdi_log::LogConfig::default(),
        )
        .unwrap();
        b.update_role_adopted(&record(-1, 7, vec![2], 3), (1, 6));
        assert_eq!(
            b.offsets().2,
            3,
            "committed records past the adoption are kept"
        );
        b.update_role_adopted(&record(2, 8, vec![2], 4), (1, 6));
        assert_eq!(b.read(1, 1 << 20, false).unwrap(), records);

        // A later adoption (epoch 9, at 2) is applied once more.
        b.update_role_adopted(&record(1, 10, vec![1, 2], 5), (2, 9));
        assert_eq!(b.offsets().2, 2);
    }

    #[test]
    fn a_leader_learning_of_an_adoption_marks_it_applied_and_a_deposed_one_cuts_as_it_follows() {
        let (_a_temp, a) = replica_on(1);
        a.update_role(&record(1, 5, vec![1, 2], 1));
        for value in [b"a", b"b", b"c"] {
            a.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        // Leading in the epoch the adoption began (it cut its log itself): its records past
        // the offset are the new source's, and no later demotion cuts them.
        a.update_role_adopted(&record(1, 6, vec![1, 2], 2), (1, 6));
        a.update_role_adopted(&record(2, 7, vec![1, 2], 3), (1, 6));
        assert_eq!(a.offsets().2, 3);

        // A deposed leader of epoch 5 learning at once of the adoption (epoch 6) and of its
        // successor (epoch 7) cuts as it becomes a follower: nothing it appends as leader
        // survives the cut.
        let (_c_temp, c) = replica_on(1);
        c.update_role(&record(1, 5, vec![1, 2], 1));
        for value in [b"a", b"b", b"c"] {
            c.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        assert!(c.update_role_adopted(&record(2, 7, vec![1, 2], 3), (1, 6)));
        assert_eq!(c.offsets().2, 1);
        assert!(!c.is_leader());
        let refused = c.produce(&build_batch(0, 0, &[b"d"]), None).unwrap_err();
        assert_eq!(refused.code, codes::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(c.offsets().2, 1);

        // The cut waits for the leadership lock, which a produce holds from its leader check
        // through its append: a leader's write in flight is not cut under it.
        let (_d_temp, d) = replica_on(1);
        d.update_role(&record(1, 5, vec![1, 2], 1));
        for value in [b"a", b"b", b"c"] {
            d.produce(&build_batch(0, 0, &[value]), None).unwrap();
        }
        std::thread::scope(|scope| {
            let held = lock(&d.leadership);
            let demotion =
                scope.spawn(|| d.update_role_adopted(&record(2, 7, vec![1, 2], 3), (1, 6)));
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(
                d.offsets().2,
                3,
                "nothing cut while the leadership lock is held"
            );
            drop(held);
            assert!(demotion.join().unwrap());
        });
        assert_eq!(d.offsets().2, 1);
    }

    #[test]
    fn a_truncation_answer_for_an_older_role_cuts_nothing() {
        // Leader 3's answer to "where does epoch 5 end" (at 1) arrives after broker 2 took the
        // lead in epoch 7 and acknowledged `d` there: applying it would cut the leader's log.
        let (_b_temp, b) = diverged_follower();
        b.update_role(&record(2, 7, vec![2], 3));
        assert_eq!(
            b.produce(&build_batch(0, 0, &[b"d"]), None)
                .unwrap()
                .base_offset,
            3
        );
        assert!(b.truncate_by_epoch(5, (5, 1), (3, 6)).unwrap());
        assert_eq!(b.offsets().2, 4, "the leader's log is not cut");
        let read = b.read(3, 1 << 20, false).unwrap();
        assert!(!read.is_empty(), "`d` is still there");

        // The same answer arriving after 2 started following broker 1 in epoch 7: nothing is
        // cut, and 2 still truncates against 1 before it fetches.
        let (_c_temp, c) = diverged_follower();
        c.update_role(&record(1, 7, vec![1, 2], 3));
        assert!(c.truncate_by_epoch(5, (5, 1), (3, 6)).unwrap());
        assert_eq!(c.offsets().2, 3, "nothing cut on 3's word");
        assert_eq!(c.truncation_needed(1), Some((7, 5)));

        // Under the role it was asked in, the answer is applied.
        let (_d_temp, d) = diverged_follower();
        assert!(d.truncate_by_epoch(5, (5, 1), (3, 6)).unwrap());
        assert_eq!(d.offsets().2, 1);
        assert_eq!(d.truncation_needed(3), None);
        assert_eq!(d.fetch_position(3), Some((1, 6)));
        // A second answer once it is done (the role unchanged) cuts nothing either.
        assert!(d.truncate_by_epoch(5, (5, 0), (3, 6)).unwrap());
        assert_eq!(d.offsets().2, 1);
    }

    #[test]
    fn a_promoted_follower_answers_retries_of_batches_it_replicated_and_not_of_cut_ones() {
        let batch = |seq: i32, value: &[u8]| with_producer(build_batch(0, 0, &[value]), 42, 0, seq);
        let (_a_temp, a) = replica_on(1);
        a.update_role(&record(1, 5, vec![1, 2, 3], 1));
        assert_eq!(a.produce(&batch(0, b"a"), None).unwrap().base_offset, 0);
        assert_eq!(a.produce(&batch(1, b"b"), None).unwrap().base_offset, 1);
        // Broker 2 copies both batches; broker 3 copies them and a third that 2 never gets.
        let (_b_temp, b) = replica_on(2);
        copy_from(&a, &b);
        assert_eq!(a.produce(&batch(2, b"c"), None).unwrap().base_offset, 2);
        let (_c_temp, c) = replica_on(3);
        copy_from(&a, &c);
        assert_eq!((b.offsets().2, c.offsets().2), (2, 3));

        // Broker 1 dies; 2 leads in epoch 6. A retry of a batch it replicated as a follower is
        // answered with the original offset, not appended again.
        b.update_role(&record(2, 6, vec![2, 3], 2));
        assert_eq!(b.produce(&batch(1, b"b"), None).unwrap().base_offset, 1);
        assert_eq!(b.produce(&batch(0, b"a"), None).unwrap().base_offset, 0);
        assert_eq!(b.offsets().2, 2, "nothing appended for the retries");

        // Broker 3 follows 2: its copy of the third batch is cut (epoch 5 ended at 2 on the new
        // leader), and its producer state forgets that batch with it.
        c.update_role(&record(2, 6, vec![2, 3], 2));
        assert!(
            c.truncate_by_epoch(5, b.end_offset_for_epoch(5), (2, 6))
                .unwrap()
        );
        assert_eq!(c.offsets().2, 2);
        // 2 dies before 3 fetched anything; 3 leads in epoch 7. The producer's retry of the cut
        // batch is appended (not answered with the offset of records no longer there), once.
        c.update_role(&record(3, 7, vec![3], 3));
        assert_eq!(c.produce(&batch(2, b"c"), None).unwrap().base_offset, 2);
        assert_eq!(c.produce(&batch(2, b"c"), None).unwrap().base_offset, 2);
        assert_eq!(c.offsets().2, 3);
        assert_eq!(c.produce(&batch(3, b"d"), None).unwrap().base_offset, 3);
    }
}
