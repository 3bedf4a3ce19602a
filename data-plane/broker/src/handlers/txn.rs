//! Transaction APIs (KIP-98): transactional InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn, DescribeTransactions, ListTransactions. The coordinator is
//! [`crate::txn_coordinator`]; this module converts wire types and checks ACLs.
//!
//! ACLs, as Kafka's: every request naming a transactional id needs `WRITE` on it
//! (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`), describing and listing `DESCRIBE`; adding
//! partitions needs `WRITE` on each topic; adding offsets and committing them `READ` on the
//! group, and committing `READ` on each topic. AddPartitionsToTxn v4+ (brokers' batched form)
//! needs `CLUSTER_ACTION` on the cluster.
//!
//! PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to versions older than KIP-588's
//! (InitProducerId v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2), and always to
//! TxnOffsetCommit, as Kafka's group coordinator answers it.

use std::collections::BTreeMap;

use hdi_kafka_client::codes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::{Context, sb};
use crate::security::acl::{Operation, ResourceType};
use crate::txn::{self, TxnState};
use crate::txn_coordinator as coordinator;

impl Context<'_> {
    /// [`Context::allowed`] on a transactional id.
    pub fn allowed_transactional_id(&self, operation: Operation, id: &str) -> bool {
        self.allowed(operation, ResourceType::TransactionalId, id)
    }
}

/// The first refusal of a request naming transactional id `id`: INVALID_REQUEST for an empty
/// one, TRANSACTIONAL_ID_AUTHORIZATION_FAILED without `WRITE` on it.
fn refuse_id(cx: &Context<'_>, id: &str) -> Option<i16> {
    if id.is_empty() {
        Some(codes::INVALID_REQUEST)
    } else if !cx.allowed_transactional_id(Operation::Write, id) {
        Some(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else {
        None
    }
}

/// InitProducerId with a transactional id: a producer id and epoch from the coordinator.
pub async fn init_producer_id(
    cx: &Context<'_>,
    id: &str,
    r: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(code) = refuse_id(cx, id) {
        return response.with_error_code(code);
    }
    // Both or neither, as Kafka's handleInitProducerIdRequest: a half-set pair is INVALID_REQUEST.
    if (r.producer_id.0 >= 0) != (r.producer_epoch >= 0) {
        return response.with_error_code(codes::INVALID_REQUEST);
    }
    let expected = (r.producer_id.0 >= 0).then_some((r.producer_id.0, r.producer_epoch));
    match coordinator::init_producer_id(cx.broker, id, r.transaction_timeout_ms, expected).await {
        Ok((producer_id, epoch)) => response
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(code) => response.with_error_code(txn::versioned(code, cx.version, 4)),
    }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.as_str().to_owned(), *p))
        })
        .collect()
}

/// The answer per partition for one transaction of AddPartitionsToTxn (either shape).
async fn add_partitions_for(
    cx: &Context<'_>,
    id: &str,
    producer: (i64, i16),
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions = flatten(topics);
    let view = cx.broker.cluster.view();
    // Per-partition refusals first; any of them leaves the others not attempted.
    let mut refused: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for (topic, partition) in &partitions {
        let code = if !cx.allowed_topic(Operation::Write, topic) {
            codes::TOPIC_AUTHORIZATION_FAILED
        } else if view.meta.partition(topic, *partition).is_none() {
            codes::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            continue;
        };
        refused.insert((topic.clone(), *partition), code);
    }
    let codes: Vec<i16> = if let Some(code) = refuse_id(cx, id) {
        vec![code; partitions.len()]
    } else if !refused.is_empty() {
        partitions
            .iter()
            .map(|p| {
                refused
                    .get(p)
                    .copied()
                    .unwrap_or(codes::OPERATION_NOT_ATTEMPTED)
            })
            .collect()
    } else if verify_only {
        coordinator::verify_partitions(cx.broker, id, producer, &partitions)
            .unwrap_or_else(|code| vec![code; partitions.len()])
    } else {
        let code = match coordinator::add_partitions(cx.broker, id, producer, &partitions).await {
            Ok(()) => codes::NONE,
            Err(code) => txn::versioned(code, cx.version, 2),
        };
        vec![code; partitions.len()]
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), code) in partitions.into_iter().zip(codes) {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code);
        match results.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => results.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(sb(topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    results
}

/// Handles AddPartitionsToTxn: v0-v3 from a client (one transaction), v4+ batched (brokers'
/// shape, possibly `verify_only`).
pub async fn add_partitions_to_txn(
    cx: &Context<'_>,
    r: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if cx.version < 4 {
        let results = add_partitions_for(
            cx,
            r.v3_and_below_transactional_id.0.as_str(),
            (r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch),
            &r.v3_and_below_topics,
            false,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    if !cx.allowed_cluster(Operation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED);
    }
    let mut by_transaction = Vec::with_capacity(r.transactions.len());
    for t in &r.transactions {
        let topic_results = add_partitions_for(
            cx,
            t.transactional_id.0.as_str(),
            (t.producer_id.0, t.producer_epoch),
            &t.topics,
            t.verify_only,
        )
        .await;
        by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(by_transaction)
}

/// Handles AddOffsetsToTxn: the group's offsets join the transaction.
pub async fn add_offsets_to_txn(
    cx: &Context<'_>,
    r: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let id = r.transactional_id.0.as_str();
    let group = r.group_id.0.as_str();
    let code = if let Some(code) = refuse_id(cx, id) {
        code
    } else if !cx.allowed_group(Operation::Read, group) {
        codes::GROUP_AUTHORIZATION_FAILED
    } else {
        match coordinator::add_offsets(cx.broker, id, (r.producer_id.0, r.producer_epoch), group)
            .await
        {
            Ok(()) => codes::NONE,
            Err(code) => txn::versioned(code, cx.version, 2),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// Handles TxnOffsetCommit (at the group coordinator, which is the transaction coordinator
/// here): the offsets wait in the transaction until it commits.
pub async fn txn_offset_commit(
    cx: &Context<'_>,
    r: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let id = r.transactional_id.0.as_str();
    let group = r.group_id.0.as_str();
    let view = cx.broker.cluster.view();
    let mut refused: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let mut offsets = Vec::new();
    for topic in &r.topics {
        let name = topic.name.0.as_str();
        for p in &topic.partitions {
            let code = if !cx.allowed_topic(Operation::Read, name) {
                codes::TOPIC_AUTHORIZATION_FAILED
            } else if view.meta.partition(name, p.partition_index).is_none() {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                offsets.push((
                    name.to_owned(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_metadata.as_ref().map(|m| m.as_str().to_owned()),
                ));
                continue;
            };
            refused.insert((name.to_owned(), p.partition_index), code);
        }
    }
    let instance = r.group_instance_id.as_ref().map(|s| s.as_str());
    let code = if let Some(code) = refuse_id(cx, id) {
        code
    } else if !cx.allowed_group(Operation::Read, group) {
        codes::GROUP_AUTHORIZATION_FAILED
    } else if !cx.broker.cluster.is_controller() {
        codes::NOT_COORDINATOR
    } else {
        // From v3 the producer names the consumer's generation (KIP-447): a zombie member's
        // commit is refused, as OffsetCommit's.
        let member = if r.generation_id >= 0 || !r.member_id.is_empty() || instance.is_some() {
            cx.broker
                .groups
                .commit_check(group, r.generation_id, r.member_id.as_str(), instance)
        } else {
            codes::NONE
        };
        if member != codes::NONE {
            member
        } else if offsets.is_empty() {
            codes::NONE
        } else {
            let producer = (r.producer_id.0, r.producer_epoch);
            match coordinator::commit_offsets(cx.broker, id, producer, group, &offsets).await {
                Ok(()) => codes::NONE,
                Err(code) => txn::versioned(code, cx.version, i16::MAX),
            }
        }
    };
    let topics = r
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = refused
                        .get(&(name.to_owned(), p.partition_index))
                        .copied()
                        .unwrap_or(code);
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Handles EndTxn: answered once the commit or abort decision is durable.
pub async fn end_txn(cx: &Context<'_>, r: EndTxnRequest) -> EndTxnResponse {
    let id = r.transactional_id.0.as_str();
    let code = if let Some(code) = refuse_id(cx, id) {
        code
    } else {
        let producer = (r.producer_id.0, r.producer_epoch);
        match coordinator::end_transaction(cx.broker, id, producer, r.committed).await {
            Ok(()) => codes::NONE,
            Err(code) => txn::versioned(code, cx.version, 2),
        }
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Handles DescribeTransactions.
pub fn describe_transactions(
    cx: &Context<'_>,
    r: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let coordinating = coordinator::coordinator_epoch(cx.broker);
    let states = r
        .transactional_ids
        .into_iter()
        .map(|id| {
            let answer = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1)
                .with_transaction_state(sb(""));
            let name = id.0.as_str();
            if !cx.allowed_transactional_id(Operation::Describe, name) {
                return answer.with_error_code(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
            if let Err(code) = coordinating {
                return answer.with_error_code(code);
            }
            let Some(record) = cx.broker.txns.get(name) else {
                return answer.with_error_code(codes::TRANSACTIONAL_ID_NOT_FOUND);
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &record.partitions {
                if !cx.allowed_topic(Operation::Describe, topic) {
                    continue;
                }
                match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                    Some(t) => t.partitions.push(*partition),
                    None => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(sb(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            answer
                .with_transaction_state(sb(record.state.name()))
                .with_transaction_timeout_ms(record.timeout_ms)
                .with_transaction_start_time_ms(record.start_ms)
                .with_producer_id(ProducerId(record.producer_id))
                .with_producer_epoch(record.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// Handles ListTransactions: the transactions this broker coordinates (none unless it is the
/// controller: clients ask every broker and merge), filtered by state, producer id and (v1+)
/// how long they have been open.
pub fn list_transactions(cx: &Context<'_>, r: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut unknown = Vec::new();
    let mut states = Vec::new();
    for filter in &r.state_filters {
        match TxnState::from_name(filter.as_str()) {
            Some(state) => states.push(state),
            None => unknown.push(filter.clone()),
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    match coordinator::coordinator_epoch(cx.broker) {
        Ok(_) => {}
        Err(codes::NOT_COORDINATOR) => return response,
        Err(code) => return response.with_error_code(code),
    }
    let now = coordinator::now_ms();
    let min_duration = if cx.version >= 1 {
        r.duration_filter
    } else {
        -1
    };
    let listed = cx
        .broker
        .txns
        .all()
        .into_iter()
        .filter(|t| states.is_empty() || states.contains(&t.state))
        .filter(|t| {
            r.producer_id_filters.is_empty()
                || r.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
        })
        .filter(|t| min_duration < 0 || (t.start_ms >= 0 && now - t.start_ms >= min_duration))
        .filter(|t| cx.allowed_transactional_id(Operation::Describe, &t.transactional_id))
        .map(|t| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(sb(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(sb(t.state.name()))
        })
        .collect();
    response.with_transaction_states(listed)
}
