//! Produce: appends each partition's record batches on its leader (validated, idempotence
//! checked) and answers with base offsets. `acks=all` refuses the write when the ISR is smaller
//! than `min.insync.replicas` (NOT_ENOUGH_REPLICAS) and otherwise answers only once the high
//! watermark covers it (every ISR member has it), or REQUEST_TIMED_OUT after the request's
//! timeout. acks=0 gets no response, as Kafka does.
//!
//! Transactional batches (KIP-98) are appended like idempotent ones, their transaction state
//! kept per partition (`producers.rs`); a request carrying any needs a transactional id the
//! principal may write (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise, as Kafka answers). A
//! partition's first transactional batch of a transaction is appended only once the transaction
//! coordinator verified it (KIP-890 part 1, [`crate::txn_verification`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdi_kafka_client::codes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{Context, sb};
use crate::producers::VerificationGuard;
use crate::replica::{Produced, Replica};
use crate::security::acl::Operation;
use crate::security::quota::PRODUCER_BYTE_RATE;
use crate::state::KafkaError;
use crate::topic_config;

/// A partition's append and, for acks=all, the replica to wait on with its min.insync.replicas.
type Pending = (
    i32,
    Result<(Produced, Option<(Arc<Replica>, usize)>), KafkaError>,
);

/// Handles Produce; `None` for acks=0.
pub async fn produce(cx: &Context<'_>, request: ProduceRequest) -> Option<ProduceResponse> {
    let broker = cx.broker;
    let bytes: u64 = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum();
    let throttle_ms = cx.quota(PRODUCER_BYTE_RATE, bytes);
    let acks = request.acks;
    let view = broker.cluster.view();
    let transactional = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .any(|records| transactional_producer(records).is_some());
    let transaction_refused = transactional
        && !request.transactional_id.as_ref().is_some_and(|id| {
            cx.allowed(
                Operation::Write,
                crate::security::acl::ResourceType::TransactionalId,
                id.as_str(),
            )
        });
    let (mut verified, guards) = if transactional && !transaction_refused {
        verify_transactions(cx, &request).await
    } else {
        (HashMap::new(), Vec::new())
    };
    let mut appended = false;
    let mut pending: Vec<(kafka_protocol::messages::TopicName, Vec<Pending>)> = Vec::new();
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str().to_owned();
        let min_insync = view
            .meta
            .topics
            .get(&name)
            .and_then(|t| t.configs.get("min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        let refused = topic_refusal(cx, &view, &name, acks);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let (guard, unverified) = match verified.remove(&(name.clone(), data.index)) {
                Some(Ok(guard)) => (Some(guard), None),
                Some(Err(error)) => (None, Some(error)),
                None => (None, None),
            };
            let outcome = if transaction_refused {
                Err(KafkaError::new(
                    codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    format!(
                        "{} may not write transactional id {:?}",
                        cx.principal,
                        request.transactional_id.as_ref().map(|id| id.as_str())
                    ),
                ))
            } else if let Some(error) = &refused {
                Err(error.clone())
            } else if let Some(error) = unverified {
                Err(error)
            } else {
                match broker.replicas.leader(&view.meta, &name, data.index) {
                    Err(error) => Err(error),
                    Ok(replica) => {
                        let records = data.records.unwrap_or_default();
                        let min = (acks == -1).then_some(min_insync);
                        super::blocking(|| replica.produce_with(&records, min, guard)).map(
                            |produced| {
                                appended = true;
                                // Records appended: the log end moved past them (a duplicate
                                // batch's original offset may count it again; rare).
                                let messages =
                                    produced.log_end.saturating_sub(produced.base_offset);
                                broker.metrics.topic(&name).produced(
                                    records.len() as u64,
                                    u64::try_from(messages).unwrap_or(0),
                                );
                                let wait =
                                    acks == -1 && !broker.config.testing_ack_before_replication;
                                (produced, wait.then(|| (Arc::clone(&replica), min_insync)))
                            },
                        )
                    }
                }
            };
            partitions.push((data.index, outcome));
        }
        pending.push((topic_data.name, partitions));
    }
    if appended {
        broker.appended.notify_waiters();
    }
    // A guard whose partition appended nothing (refused by the coordinator or the partition)
    // is dropped: a made-up producer id must leave nothing behind.
    for ((topic, index), replica, guard) in guards {
        let failed = pending
            .iter()
            .filter(|(name, _)| name.0.as_str() == topic)
            .flat_map(|(_, partitions)| partitions)
            .any(|(i, outcome)| *i == index && outcome.is_err());
        if failed {
            replica.end_verification(&guard);
        }
    }
    if acks == 0 {
        return None;
    }
    let timeout = Duration::from_millis(
        u64::try_from(request.timeout_ms)
            .unwrap_or(0)
            .clamp(1, 300_000),
    );
    let mut responses = Vec::with_capacity(pending.len());
    for (topic_name, partitions) in pending {
        let mut out = Vec::with_capacity(partitions.len());
        for (index, outcome) in partitions {
            let outcome = match outcome {
                Ok((produced, Some((replica, min_insync)))) => replica
                    .wait_replicated(
                        produced.log_end,
                        produced.leader_epoch,
                        Some(min_insync),
                        timeout,
                    )
                    .await
                    .map(|()| produced),
                Ok((produced, None)) => Ok(produced),
                Err(error) => Err(error),
            };
            let response = PartitionProduceResponse::default().with_index(index);
            out.push(match outcome {
                // log_start_offset exists from v5, error_message from v8.
                Ok(produced) => response
                    .with_base_offset(produced.base_offset)
                    .with_log_start_offset(if cx.version >= 5 { produced.log_start_offset } else { -1 })
                    .with_log_append_time_ms(-1),
                Err(error) => {
                    tracing::debug!(topic = %topic_name.0.as_str(), partition = index, code = error.code, message = %error.message, "produce refused");
                    let response = response.with_error_code(error.code).with_base_offset(-1);
                    if cx.version >= 8 { response.with_error_message(Some(sb(error.message))) } else { response }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_name)
                .with_partition_responses(out),
        );
    }
    Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms),
    )
}

/// The producer (id, epoch) of the first transactional batch in `records` (every batch's header
/// is read: a plain first batch must not hide a transactional one behind it; malformed bytes
/// are refused whole by the replica's validation).
fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    let mut rest = records;
    while let Ok(header) = hdi_log::batch::parse_header(rest, usize::MAX) {
        if crate::producers::is_transactional(&header) {
            return Some((header.producer_id, header.producer_epoch));
        }
        match rest.get(header.size()..) {
            Some(next) if !next.is_empty() => rest = next,
            _ => break,
        }
    }
    None
}

/// Why every partition of topic `name` is refused before any append (write not allowed, a
/// mirror, read-only, bad acks), or `None`.
fn topic_refusal(
    cx: &Context<'_>,
    view: &crate::cluster::raft::MetadataView,
    name: &str,
    acks: i16,
) -> Option<KafkaError> {
    let topic = view.meta.topics.get(name);
    if !cx.allowed_topic(Operation::Write, name) {
        Some(KafkaError::new(
            codes::TOPIC_AUTHORIZATION_FAILED,
            format!("{} may not write to topic {name:?}", cx.principal),
        ))
    } else if let Some(link) = topic.and_then(|t| t.mirror.as_ref()) {
        // Not retriable, as Kafka answers for topics no client may append to.
        Some(KafkaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!(
                "topic {name:?} is a read-only mirror of cluster link {link:?}: \
                 produce to the source cluster, or stop the mirror to write here"
            ),
        ))
    } else if topic.is_some_and(|t| topic_config::read_only(&t.configs)) {
        Some(KafkaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!(
                "topic {name:?} is read-only ({}=true: its writes move to another \
                 cluster, as in a planned switchover)",
                topic_config::READ_ONLY
            ),
        ))
    } else if !(-1..=1).contains(&acks) {
        Some(KafkaError::new(
            codes::INVALID_REQUIRED_ACKS,
            format!("acks must be 0, 1 or -1, got {acks}"),
        ))
    } else {
        None
    }
}

/// A partition and the guard its leader handed out for a verification.
type Guarded = ((String, i32), VerificationGuard);

/// The verifications' answers by partition, and every guard handed out with its replica (to
/// drop those whose partition appends nothing).
type Verified = (
    HashMap<(String, i32), Result<VerificationGuard, KafkaError>>,
    Vec<((String, i32), Arc<Replica>, VerificationGuard)>,
);

/// KIP-890 part 1: for each partition led here whose first transactional batch would open a
/// transaction there, the verification guard to append it with once the transaction coordinator
/// agreed, or the error to answer (a zombie's older epoch at once, without a question).
/// Partitions not listed need no verification (their producer's transaction is open there
/// already, or they are refused for another reason, checked first). One question to the
/// coordinator per producer of the request; none with verification off, when every guard is
/// granted as Kafka appends unverified.
async fn verify_transactions(cx: &Context<'_>, request: &ProduceRequest) -> Verified {
    let broker = cx.broker;
    let mut verified = HashMap::new();
    let mut guards = Vec::new();
    let Some(transactional_id) = request.transactional_id.as_ref() else {
        return (verified, guards);
    };
    let view = broker.cluster.view();
    let mut asks: BTreeMap<(i64, i16), Vec<Guarded>> = BTreeMap::new();
    for topic_data in &request.topic_data {
        let name = topic_data.name.0.as_str();
        if topic_refusal(cx, &view, name, request.acks).is_some() {
            continue;
        }
        for data in &topic_data.partition_data {
            let Some(producer) = data.records.as_deref().and_then(transactional_producer) else {
                continue;
            };
            let Ok(replica) = broker.replicas.leader(&view.meta, name, data.index) else {
                continue;
            };
            let tp = (name.to_owned(), data.index);
            match replica.begin_verification(producer.0, producer.1) {
                Ok(Some(guard)) => {
                    guards.push((tp.clone(), replica, guard));
                    asks.entry(producer).or_default().push((tp, guard));
                }
                Ok(None) => {}
                Err(error) => {
                    verified.insert(tp, Err(error));
                }
            }
        }
    }
    for (producer, partitions) in asks {
        if !broker.config.transaction_partition_verification {
            // Verification off (`transaction.partition.verification.enable=false`): trusted.
            verified.extend(partitions.into_iter().map(|(tp, guard)| (tp, Ok(guard))));
            continue;
        }
        let asked = partitions.iter().map(|(tp, _)| tp.clone()).collect();
        let answers =
            crate::txn_verification::verify(broker, transactional_id.as_str(), producer, asked)
                .await;
        for ((tp, answer), (_, guard)) in answers.into_iter().zip(partitions) {
            verified.insert(tp, answer.map(|()| guard));
        }
    }
    (verified, guards)
}
