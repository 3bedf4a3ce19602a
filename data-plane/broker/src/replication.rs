//! Replication between brokers, over [`Broker`]:
//!
//! - [`run_replication`] follows metadata changes: it has [`crate::replicas::Replicas`]
//!   reconcile the local replicas and starts a fetcher per leader broker.
//! - One fetcher task per leader broker ([`run_fetcher`]) fetches every partition this broker
//!   follows from that leader, truncating by leader epoch first when the epoch changed.
//! - [`serve_fetch`] answers a follower as leader: it records the follower's position (which may
//!   advance the high watermark) and long-polls for new data; [`serve_epoch_end`] answers its
//!   epoch-end queries.
//! - [`run_isr_maintenance`] asks each led partition whether its ISR should shrink or grow, and
//!   proposes the change to the controller.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdi_kafka_client::codes;

use crate::broker::Broker;
use crate::cluster::metadata::{BrokerId, Command, Outcome};
use crate::cluster::rpc::{
    EpochEndAnswer, EpochEndRequest, FetchPartition, FetchedPartition, Peer, ReplicaFetch, Request,
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
        let request = Request::Fetch(ReplicaFetch {
            replica_id: broker.config.node_id,
            partitions: positions.iter().map(|(_, p)| p.clone()).collect(),
            max_wait_ms: 500,
            partition_max_bytes: 1024 * 1024,
        });
        let answer = client
            .call::<Vec<FetchedPartition>>(&request, Duration::from_secs(5))
            .await;
        let (answers, raw) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(leader, error = %chain(&error), "replica fetch failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut at = 0usize;
        let mut progressed = false;
        for ((replica, asked), answer) in positions.iter().zip(&answers) {
            let Some(records) = raw.get(at..at + answer.records_len) else {
                break;
            };
            at += answer.records_len;
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
        } else if answers.iter().any(|a| a.error != codes::NONE) {
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

/// Answers a follower's fetch as leader, long-polling up to its `max_wait_ms` for new data.
pub async fn serve_fetch(
    broker: &Broker,
    request: &ReplicaFetch,
) -> (Vec<FetchedPartition>, Vec<Bytes>) {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.min(5_000));
    let view = broker.cluster.view();
    let replicas: Vec<Result<Arc<Replica>, KafkaError>> = request
        .partitions
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
        for (replica, asked) in replicas.iter().zip(&request.partitions) {
            let answer = match replica {
                Err(error) => {
                    any = true;
                    FetchedPartition {
                        error: error.code,
                        high_watermark: -1,
                        log_start_offset: -1,
                        records_len: 0,
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
                            chunks.push(records);
                            FetchedPartition {
                                error: codes::NONE,
                                high_watermark: hw,
                                log_start_offset: start,
                                records_len: len,
                            }
                        }
                        Err(error) => {
                            any = true;
                            FetchedPartition {
                                error: error.code,
                                high_watermark: hw,
                                log_start_offset: start,
                                records_len: 0,
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
