//! Replication between brokers, over [`Broker`]:
//!
//! - [`run_replication`] follows metadata changes: it has [`crate::replicas::Replicas`]
//!   reconcile the local replicas and starts a fetcher per leader broker.
//! - One fetcher task per leader broker ([`run_fetcher`]) fetches every partition this broker
//!   follows from that leader, truncating by leader epoch first when the epoch changed. It
//!   fetches in a fetch session (KIP-227, `follower_fetch_session.rs`): after a full fetch, a
//!   request lists only the partitions whose position changed, and falls back to a full fetch
//!   on any session error.
//! - [`serve_fetch`] answers a follower as leader: it records the follower's position in every
//!   partition of the fetch (which may advance the high watermark and keeps the follower in
//!   the ISR) and long-polls for new data. Within a session the positions of the partitions a
//!   request does not list come from the session (`fetch_sessions.rs`, where follower sessions
//!   are privileged), so an idle partition is still fetched at its last position, and the
//!   answer carries only the partitions with records, an error, or a high watermark or log
//!   start that moved. [`serve_epoch_end`] answers the follower's epoch-end queries.
//! - [`run_isr_maintenance`] asks each led partition whether its ISR should shrink or grow, and
//!   proposes the change to the controller.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_kafka_client::codes;

use crate::broker::Broker;
use crate::cluster::metadata::{BrokerId, Command, Outcome};
use crate::cluster::rpc::{
    EpochEndAnswer, EpochEndRequest, FetchPartition, FetchedPartition, Peer, ReplicaFetch,
    ReplicaFetchAnswer, Request, SessionFetchAnswer,
};
use crate::fetch_sessions::{
    FetchPlan, FetchPosition, INVALID_SESSION_ID, PartitionAnswer, SessionError, TopicPartition,
};
use crate::follower_fetch_session::{
    FETCH_SESSION_ID_NOT_FOUND, FollowerFetchSession, INVALID_FETCH_SESSION_EPOCH,
};
use crate::replica::Replica;
use crate::state::{KafkaError, chain};

/// Follows metadata changes: reconciles replicas and starts fetchers. Runs until dropped.
pub async fn run_replication(broker: Arc<Broker>) {
    let mut metadata = broker.cluster.metadata.clone();
    loop {
        let view = Arc::clone(&metadata.borrow_and_update());
        let caught_up = broker.cluster.caught_up();
        let b = Arc::clone(&broker);
        let leaders = tokio::task::spawn_blocking(move || b.replicas.reconcile(&view, caught_up))
            .await
            .unwrap_or_default();
        broker.appended.notify_waiters();
        for leader in leaders {
            if broker.replicas.claim_fetcher(leader) {
                tokio::spawn(run_fetcher(Arc::clone(&broker), leader));
            }
        }
        if metadata.changed().await.is_err() {
            return;
        }
    }
}

/// Fetches every partition this broker follows from `leader`, forever. Cancel safe.
pub async fn run_fetcher(broker: Arc<Broker>, leader: BrokerId) {
    let mut peer: Option<Peer> = None;
    let sessions = broker.config.replica_fetch_sessions;
    let mut session = FollowerFetchSession::new(sessions);
    loop {
        let followed: Vec<Arc<Replica>> = broker
            .replicas
            .all()
            .into_iter()
            .filter(|r| r.role().leader == leader)
            .collect();
        if followed.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let view = broker.cluster.view();
        let Some(addr) = view
            .meta
            .brokers
            .get(&leader)
            .map(|b| broker.cluster.broker_addr(leader, &b.quorum_addr))
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if peer.as_ref().is_none_or(|p| p.addr() != addr) {
            peer = Some(Peer::new(addr));
            session = FollowerFetchSession::new(sessions);
        }
        let Some(client) = peer.as_mut() else {
            continue;
        };
        // Truncate first where the leader epoch changed.
        for replica in &followed {
            if let Err(error) = truncate(client, replica, leader).await {
                tracing::debug!(topic = %replica.topic, partition = replica.index, %error, "truncation check failed; retrying");
            }
        }
        let positions: Vec<(Arc<Replica>, FetchPartition)> = followed
            .iter()
            .filter_map(|r| {
                let (offset, epoch) = r.fetch_position(leader)?;
                Some((
                    Arc::clone(r),
                    FetchPartition {
                        topic: r.topic.clone(),
                        partition: r.index,
                        fetch_offset: offset,
                        leader_epoch: epoch,
                    },
                ))
            })
            .collect();
        if positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let wanted: Vec<(TopicPartition, FetchPosition)> = positions
            .iter()
            .map(|(_, p)| {
                (
                    key_of(&p.topic, p.partition),
                    position_of(p, PARTITION_MAX_BYTES),
                )
            })
            .collect();
        let built = session.build(&wanted);
        let request = Request::Fetch(ReplicaFetch {
            replica_id: broker.config.node_id,
            partitions: built
                .partitions
                .iter()
                .map(|(key, position)| FetchPartition {
                    topic: key.topic.clone(),
                    partition: key.partition,
                    fetch_offset: position.fetch_offset,
                    leader_epoch: position.current_leader_epoch,
                })
                .collect(),
            max_wait_ms: 500,
            partition_max_bytes: PARTITION_MAX_BYTES,
            session_id: built.session_id,
            session_epoch: built.epoch,
            forgotten: built
                .forgotten
                .iter()
                .map(|k| (k.topic.clone(), k.partition))
                .collect(),
        });
        let answer = client
            .call::<ReplicaFetchAnswer>(&request, Duration::from_secs(5))
            .await;
        let (answer, raw) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(leader, error = %chain(&error), "replica fetch failed");
                session.failed();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // Each answer with the index of its partition in `positions`.
        let index: HashMap<(&str, i32), usize> = positions
            .iter()
            .enumerate()
            .map(|(i, (_, p))| ((p.topic.as_str(), p.partition), i))
            .collect();
        let answers: Vec<(Option<usize>, FetchedPartition)> = match answer {
            ReplicaFetchAnswer::Plain(answers) => {
                // Sessionless (or a leader without sessions): one per partition listed.
                let listed: Vec<Option<usize>> = built
                    .partitions
                    .iter()
                    .map(|(k, _)| index.get(&(k.topic.as_str(), k.partition)).copied())
                    .collect();
                session.answered(built, INVALID_SESSION_ID, codes::NONE);
                listed.into_iter().zip(answers).collect()
            }
            ReplicaFetchAnswer::Session(answer) => {
                session.answered(built, answer.session_id, answer.error);
                if answer.error != codes::NONE {
                    tracing::info!(
                        leader,
                        error = answer.error,
                        "replica fetch session refused; fetching in full"
                    );
                    continue;
                }
                answer
                    .partitions
                    .into_iter()
                    .map(|a| {
                        let i = a
                            .key
                            .as_ref()
                            .and_then(|(t, p)| index.get(&(t.as_str(), *p)).copied());
                        (i, a)
                    })
                    .collect()
            }
        };
        let mut at = 0usize;
        let mut progressed = false;
        for (i, answer) in &answers {
            let Some(records) = raw.get(at..at + answer.records_len) else {
                break;
            };
            at += answer.records_len;
            let Some((replica, asked)) = i.and_then(|i| positions.get(i)) else {
                continue;
            };
            // The role the request was sent under: replies to an older one are dropped.
            let role = (leader, asked.leader_epoch);
            match answer.error {
                codes::NONE => {
                    progressed |= !records.is_empty();
                    let r = Arc::clone(replica);
                    let records = raw.slice(at - answer.records_len..at);
                    let (hw, start) = (answer.high_watermark, answer.log_start_offset);
                    let result = tokio::task::spawn_blocking(move || {
                        r.append_fetched(&records, hw, start, role)
                    })
                    .await;
                    if let Ok(Err(error)) = result {
                        tracing::warn!(topic = %replica.topic, partition = replica.index, message = %error.message, "cannot append fetched records");
                        replica.mark_needs_truncation(role);
                    }
                }
                codes::OFFSET_OUT_OF_RANGE if asked.fetch_offset < answer.log_start_offset => {
                    tracing::warn!(topic = %replica.topic, partition = replica.index, start = answer.log_start_offset, "behind the leader's log start: resetting");
                    let _ = replica.reset_to(answer.log_start_offset, role);
                }
                codes::OFFSET_OUT_OF_RANGE => replica.mark_needs_truncation(role),
                _ => {}
            }
        }
        if progressed {
            broker.appended.notify_waiters();
        } else if answers.iter().any(|(_, a)| a.error != codes::NONE) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Truncates `replica` by leader epoch if it must (KIP-101 with KIP-279's iteration).
async fn truncate(
    client: &mut Peer,
    replica: &Arc<Replica>,
    leader: BrokerId,
) -> Result<(), String> {
    for _ in 0..16 {
        let Some((current_epoch, asked)) = replica.truncation_needed(leader) else {
            return Ok(());
        };
        let answer = if asked < 0 {
            (codes::NONE, -1, -1)
        } else {
            let request = Request::EpochEnd(EpochEndRequest {
                topic: replica.topic.clone(),
                partition: replica.index,
                current_leader_epoch: current_epoch,
                epoch: asked,
            });
            client
                .call::<EpochEndAnswer>(&request, Duration::from_secs(5))
                .await
                .map_err(|e| chain(&e))?
                .0
        };
        if answer.0 != codes::NONE {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(format!("leader answered error {}", answer.0));
        }
        let r = Arc::clone(replica);
        let done = tokio::task::spawn_blocking(move || {
            r.truncate_by_epoch(asked, (answer.1, answer.2), (leader, current_epoch))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.message)?;
        if done {
            return Ok(());
        }
    }
    Err("truncation did not converge".into())
}

/// Answers a follower's `EpochEnd` as leader.
pub fn serve_epoch_end(broker: &Broker, request: &EpochEndRequest) -> EpochEndAnswer {
    let view = broker.cluster.view();
    match broker
        .replicas
        .leader(&view.meta, &request.topic, request.partition)
    {
        Ok(replica) => {
            let epoch = replica.leader_epoch();
            if request.current_leader_epoch < epoch {
                return (codes::FENCED_LEADER_EPOCH, -1, -1);
            }
            if request.current_leader_epoch > epoch {
                return (codes::UNKNOWN_LEADER_EPOCH, -1, -1);
            }
            let (e, offset) = replica.end_offset_for_epoch(request.epoch);
            (codes::NONE, e, offset)
        }
        Err(error) => (error.code, -1, -1),
    }
}

/// Bytes per partition of a replica fetch at most.
const PARTITION_MAX_BYTES: usize = 1024 * 1024;

fn key_of(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_owned(),
        partition,
    }
}

/// A replica fetch's partition as the session cache keeps it (the leader epoch as the current
/// one; followers send no log start or last fetched epoch).
fn position_of(p: &FetchPartition, max_bytes: usize) -> FetchPosition {
    FetchPosition {
        fetch_offset: p.fetch_offset,
        log_start_offset: -1,
        max_bytes: i32::try_from(max_bytes).unwrap_or(i32::MAX),
        current_leader_epoch: p.leader_epoch,
        last_fetched_epoch: -1,
    }
}

/// How a replica fetch uses its session, once looked up.
enum Served {
    /// No session: a plain answer.
    Sessionless,
    /// Full: a new session of what was read.
    Full,
    /// Incremental in this session: only what changed is answered.
    Incremental(i32),
}

/// Looks `request`'s session up: the partitions to read (for an incremental fetch, every
/// partition of the session at its position there), or the session error to answer.
fn open_session(
    broker: &Broker,
    request: &ReplicaFetch,
) -> Result<(Vec<FetchPartition>, Served), i16> {
    // Only a broker fetches as a replica. A negative id is a consumer's session owner: over a
    // plaintext quorum listener (no certificate to check the claim) it would pass the owner
    // check of consumers' fetch sessions.
    if request.replica_id < 0 {
        return Err(codes::INVALID_REQUEST);
    }
    let full = matches!(request.session_epoch, 0 | -1);
    let changed = if full {
        Vec::new()
    } else {
        request
            .partitions
            .iter()
            .map(|p| {
                (
                    key_of(&p.topic, p.partition),
                    position_of(p, request.partition_max_bytes),
                )
            })
            .collect()
    };
    let forgotten: Vec<TopicPartition> = request
        .forgotten
        .iter()
        .map(|(t, p)| key_of(t, *p))
        .collect();
    let plan = broker.fetch_sessions.plan_as(
        request.replica_id,
        request.session_id,
        request.session_epoch,
        changed,
        &forgotten,
        Instant::now(),
    );
    match plan {
        Ok(FetchPlan::Sessionless) if full => Ok((request.partitions.clone(), Served::Sessionless)),
        // An incremental fetch that forgot its last partition: the session closed.
        Ok(FetchPlan::Sessionless) => Ok((Vec::new(), Served::Sessionless)),
        Ok(FetchPlan::Full) => Ok((request.partitions.clone(), Served::Full)),
        Ok(FetchPlan::Incremental {
            session_id,
            partitions,
        }) => {
            let listed = partitions
                .into_iter()
                .map(|(key, position)| FetchPartition {
                    topic: key.topic,
                    partition: key.partition,
                    fetch_offset: position.fetch_offset,
                    leader_epoch: position.current_leader_epoch,
                })
                .collect();
            Ok((listed, Served::Incremental(session_id)))
        }
        Err(SessionError::NotFound) => Err(FETCH_SESSION_ID_NOT_FOUND),
        Err(SessionError::InvalidEpoch) => Err(INVALID_FETCH_SESSION_EPOCH),
    }
}

/// Answers a follower's fetch as leader, long-polling up to its `max_wait_ms` for new data.
/// Returns the answer, its records, and whether the fetch was incremental.
pub async fn serve_fetch(
    broker: &Broker,
    request: &ReplicaFetch,
) -> (ReplicaFetchAnswer, Vec<Bytes>, bool) {
    let (listed, served) = match open_session(broker, request) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::debug!(
                follower = request.replica_id,
                session = request.session_id,
                epoch = request.session_epoch,
                error,
                "replica fetch session refused"
            );
            let answer = SessionFetchAnswer {
                error,
                session_id: INVALID_SESSION_ID,
                partitions: Vec::new(),
            };
            return (ReplicaFetchAnswer::Session(answer), Vec::new(), false);
        }
    };
    let (answers, chunks) = read_for_follower(broker, request, &listed).await;
    let incremental = matches!(served, Served::Incremental(_));
    let keyed = |answers: Vec<FetchedPartition>| -> Vec<FetchedPartition> {
        answers
            .into_iter()
            .zip(&listed)
            .map(|(mut a, p)| {
                a.key = Some((p.topic.clone(), p.partition));
                a
            })
            .collect()
    };
    let answer = match served {
        Served::Sessionless if request.session_epoch == crate::fetch_sessions::FINAL_EPOCH => {
            ReplicaFetchAnswer::Plain(answers)
        }
        Served::Sessionless => ReplicaFetchAnswer::Session(SessionFetchAnswer {
            error: codes::NONE,
            session_id: INVALID_SESSION_ID,
            partitions: keyed(answers),
        }),
        Served::Full => {
            let answered = listed
                .iter()
                .zip(&answers)
                .map(|(p, a)| {
                    (
                        key_of(&p.topic, p.partition),
                        position_of(p, request.partition_max_bytes),
                        summary(a),
                    )
                })
                .collect();
            let session_id =
                broker
                    .fetch_sessions
                    .create_as(request.replica_id, true, answered, Instant::now());
            tracing::info!(
                follower = request.replica_id,
                session_id,
                partitions = listed.len(),
                "replica fetch session opened"
            );
            ReplicaFetchAnswer::Session(SessionFetchAnswer {
                error: codes::NONE,
                session_id,
                partitions: keyed(answers),
            })
        }
        Served::Incremental(session_id) => {
            let keys: Vec<TopicPartition> = listed
                .iter()
                .map(|p| key_of(&p.topic, p.partition))
                .collect();
            let summaries: Vec<(&TopicPartition, PartitionAnswer)> = keys
                .iter()
                .zip(&answers)
                .map(|(k, a)| (k, summary(a)))
                .collect();
            let send = broker.fetch_sessions.select(session_id, &summaries);
            // The records of the partitions not sent are dropped with them (none: a partition
            // with records is always sent).
            let mut sent_chunks = Vec::new();
            let mut chunks = chunks.into_iter();
            let mut partitions = Vec::new();
            for ((a, p), send) in answers.into_iter().zip(&listed).zip(send) {
                let records = if a.records_len > 0 {
                    chunks.next()
                } else {
                    None
                };
                if send {
                    sent_chunks.extend(records);
                    partitions.push(FetchedPartition {
                        key: Some((p.topic.clone(), p.partition)),
                        ..a
                    });
                }
            }
            return (
                ReplicaFetchAnswer::Session(SessionFetchAnswer {
                    error: codes::NONE,
                    session_id,
                    partitions,
                }),
                sent_chunks,
                incremental,
            );
        }
    };
    (answer, chunks, incremental)
}

/// What decides whether an incremental answer sends `a` (followers get no last stable offset).
fn summary(a: &FetchedPartition) -> PartitionAnswer {
    PartitionAnswer {
        high_watermark: a.high_watermark,
        last_stable_offset: -1,
        log_start_offset: a.log_start_offset,
        error: a.error,
        records: a.records_len,
        always: false,
    }
}

/// Records the follower's position in each of `listed` and reads them, long-polling up to the
/// request's `max_wait_ms` for new data: one answer per partition, and the records of those
/// with some, in order.
async fn read_for_follower(
    broker: &Broker,
    request: &ReplicaFetch,
    listed: &[FetchPartition],
) -> (Vec<FetchedPartition>, Vec<Bytes>) {
    if listed.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.min(5_000));
    let view = broker.cluster.view();
    let replicas: Vec<Result<Arc<Replica>, KafkaError>> = listed
        .iter()
        .map(|p| {
            let replica = broker.replicas.leader(&view.meta, &p.topic, p.partition)?;
            replica.follower_fetched(request.replica_id, p.fetch_offset, p.leader_epoch)?;
            Ok(replica)
        })
        .collect();
    // The follower's position may have moved the high watermark: wake consumers and producers.
    broker.appended.notify_waiters();
    loop {
        let notified = broker.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut answers = Vec::with_capacity(replicas.len());
        let mut chunks = Vec::new();
        let mut any = false;
        for (replica, asked) in replicas.iter().zip(listed) {
            let answer = match replica {
                Err(error) => {
                    any = true;
                    FetchedPartition {
                        error: error.code,
                        high_watermark: -1,
                        log_start_offset: -1,
                        records_len: 0,
                        key: None,
                    }
                }
                Ok(replica) => {
                    let (start, hw, end) = replica.offsets();
                    let throttled = broker
                        .throttle
                        .as_ref()
                        .filter(|_| replica.role().adding.contains(&request.replica_id));
                    let budget = match throttled {
                        Some(throttle) => throttle.available().min(request.partition_max_bytes),
                        None => request.partition_max_bytes,
                    };
                    let records = if asked.fetch_offset >= end || budget == 0 {
                        Ok(Bytes::new())
                    } else {
                        // The first batch is always whole (the bucket may go into debt by it).
                        let read = replica.read(asked.fetch_offset, budget, false);
                        if let (Some(throttle), Ok(bytes)) = (throttled, &read) {
                            throttle.take(bytes.len());
                        }
                        read
                    };
                    match records {
                        Ok(records) => {
                            any |= !records.is_empty();
                            let len = records.len();
                            if len > 0 {
                                chunks.push(records);
                            }
                            FetchedPartition {
                                error: codes::NONE,
                                high_watermark: hw,
                                log_start_offset: start,
                                records_len: len,
                                key: None,
                            }
                        }
                        Err(error) => {
                            any = true;
                            FetchedPartition {
                                error: error.code,
                                high_watermark: hw,
                                log_start_offset: start,
                                records_len: 0,
                                key: None,
                            }
                        }
                    }
                }
            };
            answers.push(answer);
        }
        if any || tokio::time::Instant::now() >= deadline {
            return (answers, chunks);
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Proposes ISR changes for the partitions this broker leads, every 250 ms. Runs until dropped.
pub async fn run_isr_maintenance(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        for replica in broker.replicas.all() {
            let Some(change) = replica.isr_change(broker.config.replica_lag_time_max) else {
                continue;
            };
            let broker = Arc::clone(&broker);
            tokio::spawn(async move {
                tracing::info!(topic = %replica.topic, partition = replica.index, isr = ?change.isr, "proposing ISR change");
                let command = Command::AlterPartition {
                    topic: replica.topic.clone(),
                    partition: replica.index,
                    leader: broker.config.node_id,
                    leader_epoch: change.leader_epoch,
                    partition_epoch: change.partition_epoch,
                    isr: change.isr.clone(),
                };
                let before = replica.role().isr;
                match broker.cluster.propose(command).await {
                    Ok(Outcome::Ok) => broker.metrics.isr_changed(&before, &change.isr),
                    Ok(Outcome::Refused { message, .. }) => {
                        tracing::info!(topic = %replica.topic, partition = replica.index, %message, "ISR change refused");
                        replica.isr_change_failed();
                    }
                    Err(error) => {
                        tracing::warn!(topic = %replica.topic, partition = replica.index, message = %error.message, "ISR change not committed");
                        replica.isr_change_failed();
                    }
                }
            });
        }
    }
}
