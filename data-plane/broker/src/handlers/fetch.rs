//! Fetch (consumers): reads whole batches below the high watermark from each requested partition
//! this broker leads, and long-polls: the request waits until `min_bytes` are available or
//! `max_wait_ms` passes, woken by appends and high-watermark moves (not by polling). A partition
//! led elsewhere answers NOT_LEADER_OR_FOLLOWER; a stale or future `current_leader_epoch` (v9+)
//! answers FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH, as Kafka does. Fetch sessions (v7+) are
//! `fetch_session.rs`: this module reads whatever partitions the request it is given lists.

use std::time::Duration;

use hdi_kafka_client::codes;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::Context;
use crate::security::acl::Operation;
use crate::security::quota::CONSUMER_BYTE_RATE;

/// Handles Fetch.
pub async fn fetch(cx: &Context<'_>, request: FetchRequest) -> FetchResponse {
    // Fetch sessions (KIP-227): an incremental request becomes one listing the session's
    // partitions, and the answer is cut to what changed (`fetch_session.rs`).
    let (request, session) = match super::fetch_session::open(cx, request) {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    let broker = cx.broker;
    let max_wait =
        Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0).min(60_000));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    loop {
        // Register interest before reading, so an append between the read and the wait wakes us.
        let notified = broker.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, bytes, errors, by_topic) =
            super::blocking(|| collect(cx, &request, max_bytes));
        let now = tokio::time::Instant::now();
        // min_bytes 0 answers at once, as in Kafka.
        if bytes >= min_bytes || errors || now >= deadline {
            tracing::debug!(
                bytes,
                waited_ms = (now + max_wait - deadline).as_millis() as u64,
                "fetch answered"
            );
            let throttle_ms = cx.quota(CONSUMER_BYTE_RATE, bytes as u64);
            for (topic, sent) in &by_topic {
                broker.metrics.topic(topic).fetched(*sent as u64);
            }
            let response = FetchResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle_ms);
            return session.answer(cx, response);
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn collect(
    cx: &Context<'_>,
    request: &FetchRequest,
    max_bytes: usize,
) -> (
    Vec<FetchableTopicResponse>,
    usize,
    bool,
    Vec<(String, usize)>,
) {
    let broker = cx.broker;
    let mut total = 0usize;
    // Bytes read per topic, for the bytes-out metric (counted only when the answer goes).
    let mut by_topic = Vec::new();
    let mut errors = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    let view = broker.cluster.view();
    for wanted in &request.topics {
        let name = if wanted.topic.0.is_empty() {
            view.meta
                .topics
                .iter()
                .find(|(_, t)| t.id == wanted.topic_id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default()
        } else {
            wanted.topic.0.as_str().to_owned()
        };
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        let before = total;
        let readable = cx.allowed_topic(Operation::Read, &name);
        for fp in &wanted.partitions {
            let data = PartitionData::default().with_partition_index(fp.partition);
            if !readable {
                errors = true;
                partitions.push(
                    data.with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                        .with_high_watermark(-1),
                );
                continue;
            }
            let replica = broker
                .replicas
                .leader(&view.meta, &name, fp.partition)
                .and_then(|replica| {
                    let epoch = replica.leader_epoch();
                    if cx.version >= 9
                        && fp.current_leader_epoch >= 0
                        && fp.current_leader_epoch != epoch
                    {
                        let code = if fp.current_leader_epoch < epoch {
                            codes::FENCED_LEADER_EPOCH
                        } else {
                            codes::UNKNOWN_LEADER_EPOCH
                        };
                        return Err(crate::state::KafkaError::new(code, "leader epoch mismatch"));
                    }
                    Ok(replica)
                });
            let partition = match replica {
                Ok(replica) => replica,
                Err(error) => {
                    errors = true;
                    partitions.push(data.with_error_code(error.code).with_high_watermark(-1));
                    continue;
                }
            };
            let (start, high_watermark, _) = partition.offsets();
            // log_start_offset exists from v5.
            let start = if cx.version >= 5 { start } else { -1 };
            let data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(partition.last_stable_offset())
                .with_log_start_offset(start);
            let budget = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(total))
                .max(1);
            // The response is full: later partitions return nothing this time (KIP-74).
            if fp.fetch_offset == high_watermark || (total > 0 && total >= max_bytes) {
                partitions.push(data);
                continue;
            }
            match read(&partition, request.isolation_level, fp.fetch_offset, budget) {
                Ok((records, aborted)) => {
                    total += records.len();
                    partitions.push(
                        data.with_records(Some(records))
                            .with_aborted_transactions(aborted),
                    );
                }
                Err(error) => {
                    errors = true;
                    partitions.push(data.with_error_code(error.code));
                }
            }
        }
        if total > before {
            by_topic.push((name, total - before));
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_topic_id(wanted.topic_id)
                .with_partitions(partitions),
        );
    }
    (topics, total, errors, by_topic)
}

/// One partition's read: below the high watermark (`read_uncommitted`, isolation level 0), or
/// below the last stable offset with the aborted transactions it overlaps (`read_committed`,
/// 1), which the consumer uses to drop their records.
fn read(
    partition: &crate::replica::Replica,
    isolation_level: i8,
    offset: i64,
    budget: usize,
) -> Result<(bytes::Bytes, Option<Vec<AbortedTransaction>>), crate::state::KafkaError> {
    if isolation_level != 1 {
        return Ok((partition.read(offset, budget, true)?, None));
    }
    let (records, _, aborted) = partition.read_committed(offset, budget)?;
    let aborted = aborted
        .into_iter()
        .map(|txn| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(txn.producer_id))
                .with_first_offset(txn.first_offset)
        })
        .collect();
    Ok((records, Some(aborted)))
}
