//! ListOffsets (earliest, latest, by timestamp), DeleteRecords and OffsetForLeaderEpoch.

use hdi_kafka_client::codes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::Context;
use crate::security::acl::Operation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Handles ListOffsets.
pub fn list_offsets(cx: &Context<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let view = cx.broker.cluster.view();
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.0.as_str().to_owned();
            let allowed = cx.allowed_topic(Operation::Describe, &name);
            let partitions = wanted
                .partitions
                .iter()
                .map(|lp| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index);
                    if !allowed {
                        return response
                            .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                            .with_offset(-1)
                            .with_timestamp(-1);
                    }
                    let partition =
                        match cx
                            .broker
                            .replicas
                            .leader(&view.meta, &name, lp.partition_index)
                        {
                            Ok(partition) => partition,
                            Err(error) => {
                                return response
                                    .with_error_code(error.code)
                                    .with_offset(-1)
                                    .with_timestamp(-1);
                            }
                        };
                    let epoch = partition.leader_epoch();
                    // Consumers see the high watermark as the end (records above it may vanish).
                    let (start, end, _) = partition.offsets();
                    let found = match lp.timestamp {
                        // Earliest and latest carry no timestamp (-1), as in Kafka.
                        LATEST => Ok(Some((end, -1))),
                        EARLIEST => Ok(Some((start, -1))),
                        t if t >= 0 => super::blocking(|| partition.offset_for_timestamp(t)),
                        _ => Err(crate::state::KafkaError::new(
                            codes::INVALID_REQUEST,
                            "bad timestamp",
                        )),
                    };
                    match found {
                        // leader_epoch exists from v4.
                        // A lookup by time answers with the found batch's (non-negative)
                        // timestamp: Java clients reject a found offset with timestamp -1.
                        Ok(Some((offset, timestamp))) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if cx.version >= 4 { epoch } else { -1 }),
                        Ok(None) => response.with_offset(-1).with_timestamp(-1),
                        Err(error) => response
                            .with_error_code(error.code)
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Handles DeleteRecords.
pub fn delete_records(cx: &Context<'_>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let view = cx.broker.cluster.view();
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.0.as_str().to_owned();
            let allowed = cx.allowed_topic(Operation::Delete, &name);
            let partitions = wanted
                .partitions
                .iter()
                .map(|dp| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(dp.partition_index);
                    if !allowed {
                        return result
                            .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                            .with_low_watermark(-1);
                    }
                    match cx
                        .broker
                        .replicas
                        .leader(&view.meta, &name, dp.partition_index)
                    {
                        Err(error) => result.with_error_code(error.code).with_low_watermark(-1),
                        Ok(partition) => match super::blocking(|| {
                            partition.delete_records_before(dp.offset)
                        }) {
                            Ok(start) => result.with_low_watermark(start),
                            Err(error) => result.with_error_code(error.code).with_low_watermark(-1),
                        },
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Handles OffsetForLeaderEpoch from the leader's epoch cache (KIP-101/320): the largest epoch
/// at or below the one asked and where it ended.
pub fn offset_for_leader_epoch(
    cx: &Context<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let view = cx.broker.cluster.view();
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.topic.0.as_str().to_owned();
            let allowed = cx.allowed_topic(Operation::Describe, &name);
            let partitions = wanted
                .partitions
                .iter()
                .map(|op| {
                    let result = EpochEndOffset::default().with_partition(op.partition);
                    if !allowed {
                        return result
                            .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                            .with_end_offset(-1)
                            .with_leader_epoch(-1);
                    }
                    match cx.broker.replicas.leader(&view.meta, &name, op.partition) {
                        Err(error) => result
                            .with_error_code(error.code)
                            .with_end_offset(-1)
                            .with_leader_epoch(-1),
                        Ok(partition) => {
                            let current = partition.leader_epoch();
                            if op.current_leader_epoch >= 0 && op.current_leader_epoch < current {
                                return result
                                    .with_error_code(codes::FENCED_LEADER_EPOCH)
                                    .with_end_offset(-1)
                                    .with_leader_epoch(-1);
                            }
                            if op.current_leader_epoch > current {
                                return result
                                    .with_error_code(codes::UNKNOWN_LEADER_EPOCH)
                                    .with_end_offset(-1)
                                    .with_leader_epoch(-1);
                            }
                            let (epoch, end) = partition.end_offset_for_epoch(op.leader_epoch);
                            result.with_end_offset(end).with_leader_epoch(epoch)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(wanted.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
