//! ListOffsets (earliest, latest, by timestamp), DeleteRecords and OffsetForLeaderEpoch.

use std::sync::Arc;

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
use crate::cluster::metadata::ClusterMetadata;
use crate::replica::Replica;
use crate::security::acl::Operation;
use crate::state::KafkaError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// The answers to `partitions` of `topic`: `answer` gets each partition and its leader replica,
/// or the error to answer it with (`TOPIC_AUTHORIZATION_FAILED` unless the session may
/// `operation` on the topic, else no such partition or not its leader here).
fn per_partition<P, R>(
    cx: &Context<'_>,
    meta: &ClusterMetadata,
    operation: Operation,
    topic: &str,
    partitions: &[P],
    index: impl Fn(&P) -> i32,
    mut answer: impl FnMut(&P, Result<Arc<Replica>, KafkaError>) -> R,
) -> Vec<R> {
    let allowed = cx.allowed_topic(operation, topic);
    partitions
        .iter()
        .map(|partition| {
            let leader = if allowed {
                cx.broker.replicas.leader(meta, topic, index(partition))
            } else {
                Err(KafkaError::new(
                    codes::TOPIC_AUTHORIZATION_FAILED,
                    format!("not authorized for topic {topic}"),
                ))
            };
            answer(partition, leader)
        })
        .collect()
}

/// Handles ListOffsets.
pub fn list_offsets(cx: &Context<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let view = cx.broker.cluster.view();
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let partitions = per_partition(
                cx,
                &view.meta,
                Operation::Describe,
                wanted.name.0.as_str(),
                &wanted.partitions,
                |lp| lp.partition_index,
                |lp, leader| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index);
                    let failed = |code| {
                        response
                            .clone()
                            .with_error_code(code)
                            .with_offset(-1)
                            .with_timestamp(-1)
                    };
                    let partition = match leader {
                        Ok(partition) => partition,
                        Err(error) => return failed(error.code),
                    };
                    let epoch = partition.leader_epoch();
                    // Consumers see the high watermark as the end (records above it may vanish).
                    let (start, end, _) = partition.offsets();
                    let found = match lp.timestamp {
                        // Earliest and latest carry no timestamp (-1), as in Kafka.
                        LATEST => Ok(Some((end, -1))),
                        EARLIEST => Ok(Some((start, -1))),
                        t if t >= 0 => super::blocking(|| partition.offset_for_timestamp(t)),
                        _ => Err(KafkaError::new(codes::INVALID_REQUEST, "bad timestamp")),
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
                        Err(error) => failed(error.code),
                    }
                },
            );
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
            // A mirror's log start follows its source's: deleting records there is the way.
            let mirror_of = view
                .meta
                .topics
                .get(wanted.name.0.as_str())
                .and_then(|t| t.mirror.clone());
            let partitions = per_partition(
                cx,
                &view.meta,
                Operation::Delete,
                wanted.name.0.as_str(),
                &wanted.partitions,
                |dp| dp.partition_index,
                |dp, leader| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(dp.partition_index);
                    let leader = match &mirror_of {
                        Some(link) => Err(crate::mirror::read_only(wanted.name.0.as_str(), link)),
                        None => leader,
                    };
                    match leader.and_then(|partition| {
                        super::blocking(|| partition.delete_records_before(dp.offset))
                    }) {
                        Ok(start) => result.with_low_watermark(start),
                        Err(error) => result.with_error_code(error.code).with_low_watermark(-1),
                    }
                },
            );
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
            let partitions = per_partition(
                cx,
                &view.meta,
                Operation::Describe,
                wanted.topic.0.as_str(),
                &wanted.partitions,
                |op| op.partition,
                |op, leader| {
                    let result = EpochEndOffset::default().with_partition(op.partition);
                    let failed = |code| {
                        result
                            .clone()
                            .with_error_code(code)
                            .with_end_offset(-1)
                            .with_leader_epoch(-1)
                    };
                    let partition = match leader {
                        Ok(partition) => partition,
                        Err(error) => return failed(error.code),
                    };
                    let current = partition.leader_epoch();
                    if op.current_leader_epoch >= 0 && op.current_leader_epoch < current {
                        return failed(codes::FENCED_LEADER_EPOCH);
                    }
                    if op.current_leader_epoch > current {
                        return failed(codes::UNKNOWN_LEADER_EPOCH);
                    }
                    let (epoch, end) = partition.end_offset_for_epoch(op.leader_epoch);
                    result.with_end_offset(end).with_leader_epoch(epoch)
                },
            );
            OffsetForLeaderTopicResult::default()
                .with_topic(wanted.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
