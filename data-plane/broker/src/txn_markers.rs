//! Transaction markers (KIP-98's WriteTxnMarkers), the path the transaction coordinator calls:
//! [`write_txn_markers`] writes a commit or abort marker to each partition of a transaction and
//! answers a Kafka error code per partition once the marker is replicated to the ISR (acks=all).
//!
//! Partitions this broker leads are written here; partitions led by another broker are sent to
//! it over the quorum listener ([`crate::cluster::rpc::Request::WriteTxnMarkers`], answered by
//! [`serve_write_txn_markers`], which writes only what that broker leads: a marker is never
//! forwarded twice). An error code other than NONE (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS,
//! REQUEST_TIMED_OUT, a peer that cannot be reached) tells the coordinator to retry the
//! partition; INVALID_PRODUCER_EPOCH and TRANSACTION_COORDINATOR_FENCED tell it the marker is
//! stale. Nothing here decides a transaction: that is the coordinator's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdi_kafka_client::codes;

use crate::broker::Broker;
use crate::cluster::metadata::BrokerId;
use crate::cluster::rpc::{Peer, Request, WriteTxnMarkersRequest};
use crate::producers::TxnMarker;
use crate::replica::{Produced, Replica};
use crate::state::{KafkaError, chain};

/// How long a marker may take to reach the ISR before the partition answers REQUEST_TIMED_OUT.
pub const MARKER_REPLICATION_TIMEOUT: Duration = Duration::from_secs(15);

/// A partition of a transaction: topic and partition index.
pub type TopicPartition = (String, i32);

/// Writes `marker` to every partition in `partitions` (led here or by another broker of the
/// cluster) and answers a Kafka error code per partition, in the order asked: NONE once the
/// marker is stored by every in-sync replica. Cancel safe (a cancelled call may leave markers
/// written to some partitions; writing them again is what the coordinator's retry does, and a
/// second marker for a transaction already ended changes nothing a consumer sees).
pub async fn write_txn_markers(
    broker: &Broker,
    marker: TxnMarker,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, i16)> {
    let view = broker.cluster.view();
    let me = broker.config.node_id;
    let mut answers: BTreeMap<TopicPartition, i16> = BTreeMap::new();
    let mut local = Vec::new();
    let mut remote: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
    for tp in &partitions {
        match view.meta.partition(&tp.0, tp.1) {
            None => {
                answers.insert(tp.clone(), codes::UNKNOWN_TOPIC_OR_PARTITION);
            }
            Some(record) if record.leader == me => local.push(tp.clone()),
            Some(record) if record.leader < 0 => {
                answers.insert(tp.clone(), codes::NOT_LEADER_OR_FOLLOWER);
            }
            Some(record) => remote.entry(record.leader).or_default().push(tp.clone()),
        }
    }
    answers.extend(write_local(broker, &marker, local).await);
    for (leader, led) in remote {
        answers.extend(write_remote(broker, leader, &marker, led).await);
    }
    partitions
        .into_iter()
        .map(|tp| {
            let code = answers
                .get(&tp)
                .copied()
                .unwrap_or(codes::UNKNOWN_SERVER_ERROR);
            (tp, code)
        })
        .collect()
}

/// Answers a peer's [`Request::WriteTxnMarkers`]: writes the partitions this broker leads
/// (NOT_LEADER_OR_FOLLOWER for the others). The caller checked that the peer speaks for the
/// broker it names.
pub async fn serve_write_txn_markers(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
) -> Vec<(TopicPartition, i16)> {
    write_local(broker, &request.marker, request.partitions).await
}

/// A marker appended to a partition (to wait for), or why not.
type Written = Result<(Produced, Arc<Replica>), KafkaError>;

/// Writes `marker` to `partitions` as their leader here and waits for each to reach the ISR.
async fn write_local(
    broker: &Broker,
    marker: &TxnMarker,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, i16)> {
    let view = broker.cluster.view();
    let mut written: Vec<(TopicPartition, Written)> = Vec::with_capacity(partitions.len());
    let mut appended = false;
    for tp in partitions {
        let min_insync = view
            .meta
            .topics
            .get(&tp.0)
            .and_then(|t| t.configs.get("min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        let outcome = broker
            .replicas
            .leader(&view.meta, &tp.0, tp.1)
            .and_then(|replica| {
                let produced = tokio::task::block_in_place(|| {
                    replica.write_txn_marker(marker, Some(min_insync))
                })?;
                Ok((produced, replica))
            });
        appended |= outcome.is_ok();
        written.push((tp, outcome));
    }
    if appended {
        broker.appended.notify_waiters();
    }
    let mut answers = Vec::with_capacity(written.len());
    for (tp, outcome) in written {
        let code = match outcome {
            Ok((produced, replica)) => match replica
                .wait_replicated(
                    produced.log_end,
                    produced.leader_epoch,
                    None,
                    MARKER_REPLICATION_TIMEOUT,
                )
                .await
            {
                Ok(()) => codes::NONE,
                Err(error) => error.code,
            },
            Err(error) => {
                tracing::debug!(topic = %tp.0, partition = tp.1, code = error.code, message = %error.message, "transaction marker refused");
                error.code
            }
        };
        answers.push((tp, code));
    }
    answers
}

/// Sends `partitions`' markers to their leader `leader`; every partition answers
/// NOT_LEADER_OR_FOLLOWER when it cannot be reached (the coordinator retries).
async fn write_remote(
    broker: &Broker,
    leader: BrokerId,
    marker: &TxnMarker,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, i16)> {
    let view = broker.cluster.view();
    let unreachable = |partitions: Vec<TopicPartition>| {
        partitions
            .into_iter()
            .map(|tp| (tp, codes::NOT_LEADER_OR_FOLLOWER))
            .collect::<Vec<_>>()
    };
    let Some(addr) = view
        .meta
        .brokers
        .get(&leader)
        .map(|b| broker.cluster.broker_addr(leader, &b.quorum_addr))
    else {
        return unreachable(partitions);
    };
    let request = Request::WriteTxnMarkers(WriteTxnMarkersRequest {
        from: broker.config.node_id,
        marker: marker.clone(),
        partitions: partitions.clone(),
    });
    let mut peer = Peer::new(addr);
    match peer
        .call::<Vec<(TopicPartition, i16)>>(
            &request,
            MARKER_REPLICATION_TIMEOUT + Duration::from_secs(5),
        )
        .await
    {
        Ok((answers, _)) => answers,
        Err(error) => {
            tracing::debug!(leader, error = %chain(&error), "cannot send transaction markers");
            unreachable(partitions)
        }
    }
}
