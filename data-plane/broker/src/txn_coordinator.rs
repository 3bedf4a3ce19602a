//! The transaction coordinator (KIP-98) at work: it takes the transactional requests the handlers
//! decoded, changes a transactional id's [`TxnRecord`] through the metadata quorum, writes a
//! completing transaction's markers ([`crate::txn_markers::write_txn_markers`]) and aborts
//! transactions past their timeout ([`run`]).
//!
//! Which broker coordinates: the controller (the metadata quorum's leader) coordinates every
//! transactional id, as it coordinates every group (FindCoordinator answers it for both key
//! types); any other broker answers NOT_COORDINATOR. The coordinator epoch a marker carries is
//! the Raft term, which rises whenever leadership (and so coordination) moves: a deposed
//! coordinator's markers are fenced by the partitions, and its changes to a record are refused by
//! the compare-and-set of [`TxnCommand::Put`]. A new coordinator serves once it has applied every
//! entry committed before its term (COORDINATOR_LOAD_IN_PROGRESS until then), and then resumes
//! the markers of every `Prepare*` transaction: the state it needs is all in the quorum.
//!
//! Requests for one transactional id are handled one at a time (a lock per id); an EndTxn is
//! answered once its `Prepare*` state is committed, the markers are written after, by tasks that
//! [`run`] owns. The producer's next transaction usually begins (AddPartitionsToTxn) before they
//! are done: that request waits for the `Complete*` state (bounded, [`COMPLETION_WAIT`]) rather
//! than answering CONCURRENT_TRANSACTIONS at once, which would cost the client a retry backoff.

use std::sync::Arc;
use std::time::Duration;

use hdi_kafka_client::codes;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::cluster::metadata::{Command, Outcome};
use crate::producers::TxnMarker;
use crate::txn::{self, EndStep, InitStep, TxnCommand, TxnRecord};

/// How often [`run`] looks for timed-out transactions and unfinished markers.
const SCAN_INTERVAL: Duration = Duration::from_millis(200);
/// The longest wait between two attempts at a transaction's markers.
const MAX_MARKER_BACKOFF: Duration = Duration::from_secs(2);
/// How long AddPartitionsToTxn and AddOffsetsToTxn wait for the previous transaction of their
/// id to complete before answering CONCURRENT_TRANSACTIONS. A producer starts its next
/// transaction as soon as EndTxn answers, usually before the markers are written; the retry
/// CONCURRENT_TRANSACTIONS causes costs it a client backoff (librdkafka's `retry.backoff.ms`,
/// 100 ms by default; 20 ms in Kafka's Java client), far longer than the completion itself.
const COMPLETION_WAIT: Duration = Duration::from_millis(300);

/// Unix time in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This broker's coordinator epoch if it coordinates transactions now: NOT_COORDINATOR when
/// another broker does, COORDINATOR_LOAD_IN_PROGRESS while it has not loaded the records of its
/// term yet.
///
/// # Errors
/// The Kafka error code.
pub fn coordinator_epoch(broker: &Broker) -> Result<i32, i16> {
    if !broker.cluster.is_controller() {
        return Err(codes::NOT_COORDINATOR);
    }
    let term = broker.cluster.raft.metrics().borrow().current_term;
    if !broker.txns.loaded(term) {
        return Err(codes::COORDINATOR_LOAD_IN_PROGRESS);
    }
    Ok(i32::try_from(term).unwrap_or(i32::MAX))
}

/// Commits `record` through the quorum if its stored version is still `expected_version`.
async fn store(broker: &Broker, record: TxnRecord, expected_version: u64) -> Result<(), i16> {
    let id = record.transactional_id.clone();
    let command = Command::Transaction(TxnCommand::Put {
        record,
        expected_version,
    });
    match broker.cluster.propose(command).await {
        Ok(Outcome::Ok) => Ok(()),
        Ok(Outcome::Refused { code, message }) => {
            tracing::debug!(transactional_id = %id, code, %message, "transaction change refused");
            Err(code)
        }
        Err(error) => {
            tracing::warn!(transactional_id = %id, message = %error.message, "transaction change not replicated");
            // Retriable: the client asks again (the new coordinator, if it moved).
            Err(codes::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Runs `change` on `id`'s record under the id's lock, once this broker coordinates, and
/// stores what it returns (`None`: nothing to store). Returns `change`'s answer.
async fn change<T>(
    broker: &Broker,
    id: &str,
    change: impl FnOnce(Option<&TxnRecord>) -> Result<(Option<TxnRecord>, T), i16>,
) -> Result<T, i16> {
    coordinator_epoch(broker)?;
    let lock = broker.txns.lock_for(id);
    let _held = lock.lock().await;
    coordinator_epoch(broker)?;
    let current = broker.txns.get(id);
    let (next, answer) = change(current.as_ref())?;
    if let Some(next) = next {
        let preparing = next.state.is_preparing();
        store(broker, next, current.map_or(0, |r| r.version)).await?;
        if preparing {
            broker.txns.wake.notify_one();
        }
    }
    Ok(answer)
}

fn known(record: Option<&TxnRecord>) -> Result<&TxnRecord, i16> {
    record.ok_or(codes::INVALID_PRODUCER_ID_MAPPING)
}

/// InitProducerId for transactional id `id`: its producer id and epoch. `expected` is what the
/// client holds already (KIP-360). An open transaction is aborted first: CONCURRENT_TRANSACTIONS
/// until its markers are written.
///
/// # Errors
/// The Kafka error code.
pub async fn init_producer_id(
    broker: &Broker,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), i16> {
    let fresh_id = || {
        let floor = broker.cluster.view().meta.producer_id_floor;
        tokio::task::block_in_place(|| broker.producer_ids.next(floor)).map_err(|error| {
            tracing::error!(error = %crate::state::chain(&error), "cannot allocate a producer id");
            codes::UNKNOWN_SERVER_ERROR
        })
    };
    let now = now_ms();
    let step = change(broker, id, |current| {
        let step = txn::init_producer(id, current, timeout_ms, expected, now, fresh_id)?;
        let stored = match &step {
            InitStep::Ready(record) | InitStep::AbortFirst(record) => Some(record.clone()),
            InitStep::Unchanged => None,
        };
        Ok((stored, step))
    })
    .await?;
    match step {
        InitStep::Ready(record) => Ok((record.producer_id, record.producer_epoch)),
        InitStep::Unchanged => {
            let record = broker.txns.get(id).ok_or(codes::CONCURRENT_TRANSACTIONS)?;
            Ok((record.producer_id, record.producer_epoch))
        }
        InitStep::AbortFirst(_) => Err(codes::CONCURRENT_TRANSACTIONS),
    }
}

/// AddPartitionsToTxn: adds `partitions` to `id`'s open transaction (waiting up to
/// [`COMPLETION_WAIT`] for the previous one to complete).
///
/// # Errors
/// The Kafka error code (for every partition).
pub async fn add_partitions(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    partitions: &[(String, i32)],
) -> Result<(), i16> {
    after_completion(broker, id, || async {
        let now = now_ms();
        change(broker, id, |current| {
            let next =
                txn::add_partitions(known(current)?, producer.0, producer.1, partitions, now)?;
            Ok((next, ()))
        })
        .await
    })
    .await
}

/// Runs `attempt` and, while it answers CONCURRENT_TRANSACTIONS because `id`'s previous
/// transaction is still completing (`Prepare*`), again each time a transaction completes, for
/// up to [`COMPLETION_WAIT`]; then once more, and answers what that attempt answers (success,
/// or NOT_COORDINATOR for a coordinator that moved, rather than a stale CONCURRENT_TRANSACTIONS).
async fn after_completion<F, Fut>(broker: &Broker, id: &str, attempt: F) -> Result<(), i16>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), i16>>,
{
    retry_while_preparing(
        &broker.txns.completed,
        || {
            broker
                .txns
                .get(id)
                .is_some_and(|record| record.state.is_preparing())
        },
        COMPLETION_WAIT,
        attempt,
    )
    .await
}

/// [`after_completion`]'s loop: `attempt` again on each `completed` notification while it
/// answers CONCURRENT_TRANSACTIONS and `preparing()`, for up to `wait`; a last attempt after.
async fn retry_while_preparing<P, F, Fut>(
    completed_notify: &tokio::sync::Notify,
    preparing: P,
    wait: Duration,
    mut attempt: F,
) -> Result<(), i16>
where
    P: Fn() -> bool,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), i16>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before the attempt, so a completion between the two is not missed.
        let completed = completed_notify.notified();
        tokio::pin!(completed);
        completed.as_mut().enable();
        match attempt().await {
            Err(codes::CONCURRENT_TRANSACTIONS)
                if tokio::time::Instant::now() < deadline && preparing() =>
            {
                if tokio::time::timeout_at(deadline, completed).await.is_err() {
                    // The wait is over: what the state says now, not what it said then.
                    return attempt().await;
                }
            }
            answer => return answer,
        }
    }
}

/// AddPartitionsToTxn v4+ with `verify_only`: whether each partition is in `id`'s open
/// transaction (INVALID_TXN_STATE for one that is not).
///
/// # Errors
/// The Kafka error code for every partition.
pub fn verify_partitions(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    partitions: &[(String, i32)],
) -> Result<Vec<i16>, i16> {
    coordinator_epoch(broker)?;
    let record = broker
        .txns
        .get(id)
        .ok_or(codes::INVALID_PRODUCER_ID_MAPPING)?;
    if record.producer_id != producer.0 {
        return Err(codes::INVALID_PRODUCER_ID_MAPPING);
    }
    if record.producer_epoch != producer.1 {
        return Err(codes::PRODUCER_FENCED);
    }
    Ok(partitions
        .iter()
        .map(|p| {
            if record.state == txn::TxnState::Ongoing && record.partitions.contains(p) {
                codes::NONE
            } else {
                codes::INVALID_TXN_STATE
            }
        })
        .collect())
}

/// AddOffsetsToTxn: adds `group` (its offsets) to `id`'s open transaction (waiting up to
/// [`COMPLETION_WAIT`] for the previous one to complete).
///
/// # Errors
/// The Kafka error code.
pub async fn add_offsets(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    group: &str,
) -> Result<(), i16> {
    after_completion(broker, id, || async {
        let now = now_ms();
        change(broker, id, |current| {
            let next = txn::add_offsets(known(current)?, producer.0, producer.1, group, now)?;
            Ok((next, ()))
        })
        .await
    })
    .await
}

/// TxnOffsetCommit: keeps `offsets` (`(topic, partition, offset, metadata)`) of `group`
/// pending in `id`'s open transaction (visible once it commits).
///
/// # Errors
/// The Kafka error code (for every partition).
pub async fn commit_offsets(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    group: &str,
    offsets: &[txn::CommittedOffset],
) -> Result<(), i16> {
    let now = now_ms();
    change(broker, id, |current| {
        let next =
            txn::commit_offsets(known(current)?, producer.0, producer.1, group, offsets, now)?;
        Ok((Some(next), ()))
    })
    .await
}

/// EndTxn: commits or aborts `id`'s open transaction. Answers once the `Prepare*` state is
/// committed; the markers follow.
///
/// # Errors
/// The Kafka error code.
pub async fn end_transaction(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> Result<(), i16> {
    let now = now_ms();
    change(broker, id, |current| {
        let step = txn::end_transaction(known(current)?, producer.0, producer.1, commit, now)?;
        Ok((
            match step {
                EndStep::Prepare(record) => Some(record),
                EndStep::AlreadyDone => None,
            },
            (),
        ))
    })
    .await
}

/// The coordinator's background work, on every broker (it acts only while this broker
/// coordinates): loads the records when coordination arrives, writes the markers of `Prepare*`
/// transactions (resuming those a previous coordinator left), aborts transactions past their
/// timeout and removes expired ids. Runs until dropped; the marker tasks it started stop with it.
pub async fn run(broker: Arc<Broker>) {
    let mut completions: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = broker.txns.wake.notified() => {}
            Some(_) = completions.join_next(), if !completions.is_empty() => {}
        }
        if !broker.cluster.is_controller() {
            continue;
        }
        if !load(&broker).await {
            continue;
        }
        let Ok(epoch) = coordinator_epoch(&broker) else {
            continue;
        };
        let now = now_ms();
        for record in broker.txns.all() {
            let id = record.transactional_id.clone();
            if record.state.is_preparing() || record.timed_out(now) {
                // A transaction whose markers were fenced at this epoch waits for a new one.
                if !broker.txns.is_fenced(&id, epoch) && broker.txns.claim(&id) {
                    completions.spawn(complete(Arc::clone(&broker), id));
                }
            } else if record.expired(now) {
                let command = Command::Transaction(TxnCommand::Remove {
                    transactional_id: id.clone(),
                    expected_version: record.version,
                });
                match broker.cluster.propose(command).await {
                    Ok(Outcome::Ok) => {
                        tracing::info!(transactional_id = %id, "expired transactional id removed")
                    }
                    Ok(Outcome::Refused { .. }) => {}
                    Err(error) => {
                        tracing::debug!(transactional_id = %id, message = %error.message, "expiry not replicated")
                    }
                }
            }
        }
    }
}

/// Loads the records for this broker's Raft term if not yet: waits until every entry committed
/// before the term is applied here. Whether they are loaded.
async fn load(broker: &Broker) -> bool {
    let term = broker.cluster.raft.metrics().borrow().current_term;
    if broker.txns.loaded(term) {
        return true;
    }
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        broker.cluster.raft.ensure_linearizable(),
    );
    match read.await {
        Ok(Ok(_)) if broker.cluster.is_controller() => {
            broker.txns.set_loaded(term);
            tracing::info!(
                term,
                transactions = broker.txns.all().len(),
                "transaction coordinator loaded"
            );
            true
        }
        _ => false,
    }
}

/// Releases a claimed transactional id when its completion task ends, however it ends.
struct Claim<'a>(&'a Broker, &'a str);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.txns.release(self.1);
    }
}

/// Drives transaction `id` to an end: aborts it first if it timed out (epoch bumped, fencing the
/// producer), then writes its markers to every partition, retrying until each partition has
/// stored it, then commits `Complete*` (and with a commit, its offsets). Stops when this broker no
/// longer coordinates (the next coordinator resumes).
async fn complete(broker: Arc<Broker>, id: String) {
    let _claim = Claim(&broker, &id);
    let mut backoff = Duration::from_millis(50);
    // The partitions still without the marker of the record version they were read from.
    let mut pending: Option<(u64, Vec<(String, i32)>)> = None;
    loop {
        let Ok(coordinator_epoch) = coordinator_epoch(&broker) else {
            return;
        };
        let Some(record) = broker.txns.get(&id) else {
            return;
        };
        if record.timed_out(now_ms()) {
            let aborted = change(&broker, &id, |current| {
                let next = current.and_then(|c| txn::abort_timed_out(c, now_ms()));
                Ok((next, ()))
            })
            .await;
            if aborted.is_ok() {
                tracing::info!(transactional_id = %id, producer_id = record.producer_id, "transaction timed out: aborting");
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_MARKER_BACKOFF);
            }
            continue;
        }
        if !record.state.is_preparing() {
            return;
        }
        let marker = TxnMarker {
            producer_id: record.producer_id,
            producer_epoch: record.producer_epoch,
            coordinator_epoch,
            commit: record.state == txn::TxnState::PrepareCommit,
        };
        let partitions = match pending.take() {
            Some((version, left)) if version == record.version => left,
            _ => record.partitions.iter().cloned().collect(),
        };
        match write_markers(&broker, &record, marker.clone(), partitions).await {
            Ok(()) => {}
            Err(Stop::Fenced) => {
                broker.txns.mark_fenced(&id, coordinator_epoch);
                return;
            }
            Err(Stop::Retry(left)) => {
                pending = Some((record.version, left));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_MARKER_BACKOFF);
                continue;
            }
        }
        pending = Some((record.version, Vec::new()));
        let now = now_ms();
        let completed = change(&broker, &id, |current| match current {
            Some(current) if current.version == record.version => {
                Ok((txn::complete(current, now), ()))
            }
            // Changed meanwhile (another coordinator finished it): look again.
            _ => Err(codes::CONCURRENT_TRANSACTIONS),
        })
        .await;
        match completed {
            Ok(()) => {
                tracing::debug!(transactional_id = %id, commit = marker.commit, "transaction complete");
                broker.txns.completed.notify_waiters();
                return;
            }
            Err(code) => {
                tracing::debug!(transactional_id = %id, code, "completion not stored; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_MARKER_BACKOFF);
            }
        }
    }
}

enum Stop {
    /// These partitions have not stored the marker yet.
    Retry(Vec<(String, i32)>),
    /// A partition saw a newer coordinator: this one stops.
    Fenced,
}

/// Writes `marker` to `partitions` of `record`'s transaction; partitions of a topic deleted
/// since are skipped, as Kafka does.
async fn write_markers(
    broker: &Broker,
    record: &TxnRecord,
    marker: TxnMarker,
    partitions: Vec<(String, i32)>,
) -> Result<(), Stop> {
    if partitions.is_empty() {
        return Ok(());
    }
    let answers = crate::txn_markers::write_txn_markers(broker, marker.clone(), partitions).await;
    let view = broker.cluster.view();
    let mut retry = Vec::new();
    for ((topic, partition), code) in answers {
        match code {
            codes::NONE => {}
            codes::UNKNOWN_TOPIC_OR_PARTITION
                if view.meta.partition(&topic, partition).is_none() =>
            {
                tracing::info!(transactional_id = %record.transactional_id, topic, partition, "partition gone: no marker");
            }
            codes::TRANSACTION_COORDINATOR_FENCED => {
                tracing::warn!(transactional_id = %record.transactional_id, topic, partition, coordinator_epoch = marker.coordinator_epoch, "a newer coordinator wrote this producer's markers: stopping until the coordinator epoch changes");
                return Err(Stop::Fenced);
            }
            codes::INVALID_PRODUCER_EPOCH => {
                // The partition holds a newer epoch of the producer: this transaction ended
                // there already. (Only the coordinator raises a transactional producer's epoch
                // on a partition: a batch opening a transaction is verified with it first,
                // `txn_verification.rs`, and its id may write no plain batch there.)
                tracing::warn!(transactional_id = %record.transactional_id, topic, partition, epoch = marker.producer_epoch, "marker refused as stale");
            }
            code => {
                tracing::debug!(transactional_id = %record.transactional_id, topic, partition, code, "marker not written yet");
                retry.push((topic, partition));
            }
        }
    }
    if retry.is_empty() {
        Ok(())
    } else {
        Err(Stop::Retry(retry))
    }
}

#[cfg(test)]
mod completion_tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn the_wait_ends_with_one_last_attempt() {
        let notify = tokio::sync::Notify::new();
        let calls = Cell::new(0);
        // Concurrent until the wait is over, then the coordinator moved: that is the answer.
        let answer = retry_while_preparing(
            &notify,
            || true,
            Duration::from_millis(20),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n == 1 {
                        Err(codes::CONCURRENT_TRANSACTIONS)
                    } else {
                        Err(codes::NOT_COORDINATOR)
                    }
                }
            },
        )
        .await;
        assert_eq!(answer, Err(codes::NOT_COORDINATOR));
        assert_eq!(calls.get(), 2);
        // Not preparing: no wait, no second attempt.
        calls.set(0);
        let answer = retry_while_preparing(
            &notify,
            || false,
            Duration::from_millis(20),
            || {
                calls.set(calls.get() + 1);
                async { Err(codes::CONCURRENT_TRANSACTIONS) }
            },
        )
        .await;
        assert_eq!(answer, Err(codes::CONCURRENT_TRANSACTIONS));
        assert_eq!(calls.get(), 1);
    }
}
