//! InitProducerId: producer ids for idempotent producers; a transactional id's come from the
//! transaction coordinator (`txn.rs`). DescribeProducers: the producer state of partitions this
//! broker leads (how operators find hanging transactions, as `kafka-transactions.sh
//! find-hanging` does).

use hdi_kafka_client::codes;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};

use super::{Context, sb};
use crate::security::acl::Operation;

/// Kafka's rule (KIP-679): `IDEMPOTENT_WRITE` on the cluster, or `WRITE` on some topic.
fn may_write_idempotently(cx: &Context<'_>) -> bool {
    if cx.allowed_cluster(Operation::IdempotentWrite) {
        return true;
    }
    let view = cx.broker.cluster.view();
    view.meta
        .topics
        .keys()
        .any(|topic| cx.allowed_topic(Operation::Write, topic))
}

/// Handles InitProducerId.
pub async fn init_producer_id(
    cx: &Context<'_>,
    r: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(id) = &r.transactional_id {
        return super::txn::init_producer_id(cx, id.0.as_str(), &r).await;
    }
    let mut response = InitProducerIdResponse::default();
    if !may_write_idempotently(cx) {
        response.error_code = codes::CLUSTER_AUTHORIZATION_FAILED;
    } else if r.producer_id.0 >= 0 {
        // KIP-360 epoch bump of a known producer.
        response.producer_id = r.producer_id;
        response.producer_epoch = r.producer_epoch.saturating_add(1);
    } else {
        let floor = cx.broker.cluster.view().meta.producer_id_floor;
        match cx.broker.producer_ids.next(floor) {
            Ok(id) => {
                response.producer_id = id.into();
                response.producer_epoch = 0;
            }
            Err(error) => {
                tracing::error!(error = %crate::state::chain(&error), "cannot allocate a producer id");
                response.error_code = codes::UNKNOWN_SERVER_ERROR;
            }
        }
    }
    response
}

/// Handles DescribeProducers: per partition, READ on its topic (TOPIC_AUTHORIZATION_FAILED),
/// led here (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION), then its active producers.
pub fn describe_producers(
    cx: &Context<'_>,
    r: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let view = cx.broker.cluster.view();
    let topics = r
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_owned();
            let readable = cx.allowed_topic(Operation::Read, &name);
            let partitions = topic
                .partition_indexes
                .into_iter()
                .map(|index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    if !readable {
                        return answer
                            .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                            .with_error_message(Some(sb(format!(
                                "{} may not read topic {name:?}",
                                cx.principal
                            ))));
                    }
                    match cx.broker.replicas.leader(&view.meta, &name, index) {
                        Err(error) => answer
                            .with_error_code(error.code)
                            .with_error_message(Some(sb(error.message))),
                        Ok(replica) => answer.with_active_producers(
                            replica
                                .describe_producers()
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
