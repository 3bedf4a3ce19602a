//! Produce: appends each partition's record batches (validated, idempotence-checked) and answers
//! with base offsets; acks=0 gets no response, as Kafka does.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{Context, sb};
use crate::codes;

/// Handles Produce; `None` for acks=0.
pub fn produce(cx: &Context<'_>, request: ProduceRequest) -> Option<ProduceResponse> {
    let broker = cx.broker;
    let acks = request.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended = false;
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str().to_owned();
        let topic = broker.topics.get(&name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let response = PartitionProduceResponse::default().with_index(data.index);
            let outcome = if !valid_acks {
                Err((
                    codes::INVALID_REQUIRED_ACKS,
                    format!("acks must be 0, 1 or -1, got {acks}"),
                ))
            } else if request.transactional_id.is_some() {
                Err((
                    codes::INVALID_REQUEST,
                    "transactions are not supported".to_owned(),
                ))
            } else {
                match topic.as_ref().and_then(|t| t.partition(data.index)) {
                    None => Err((
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no partition {name}-{}", data.index),
                    )),
                    Some(partition) => {
                        let records = data.records.unwrap_or_default();
                        super::blocking(|| partition.produce(&records))
                            .map_err(|e| (e.code, e.message))
                    }
                }
            };
            partitions.push(match outcome {
                // log_start_offset exists from v5, error_message from v8.
                Ok(produced) => {
                    appended = true;
                    response
                        .with_base_offset(produced.base_offset)
                        .with_log_start_offset(if cx.version >= 5 { produced.log_start_offset } else { -1 })
                        .with_log_append_time_ms(-1)
                }
                Err((code, message)) => {
                    tracing::debug!(topic = %name, partition = data.index, code, %message, "produce refused");
                    let response = response.with_error_code(code).with_base_offset(-1);
                    if cx.version >= 8 { response.with_error_message(Some(sb(message))) } else { response }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    if appended {
        broker.appended.notify_waiters();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
