//! ListOffsets (earliest, latest, by timestamp), DeleteRecords and OffsetForLeaderEpoch.

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
use crate::codes;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Handles ListOffsets.
pub fn list_offsets(cx: &Context<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = cx.broker.topics.get(wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|lp| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index);
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(lp.partition_index))
                    else {
                        return response
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_offset(-1)
                            .with_timestamp(-1);
                    };
                    let (start, end) = partition.offsets();
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
                            .with_leader_epoch(if cx.version >= 4 { 0 } else { -1 }),
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
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = cx.broker.topics.get(wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|dp| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(dp.partition_index);
                    match topic.as_ref().and_then(|t| t.partition(dp.partition_index)) {
                        None => result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_low_watermark(-1),
                        Some(partition) => match super::blocking(|| {
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

/// Handles OffsetForLeaderEpoch. A single node has one leader epoch, 0: its end is the log end.
pub fn offset_for_leader_epoch(
    cx: &Context<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = cx.broker.topics.get(wanted.topic.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|op| {
                    let result = EpochEndOffset::default().with_partition(op.partition);
                    match topic.as_ref().and_then(|t| t.partition(op.partition)) {
                        None => result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_end_offset(-1)
                            .with_leader_epoch(-1),
                        Some(_) if op.leader_epoch > 0 => {
                            result.with_end_offset(-1).with_leader_epoch(-1)
                        }
                        Some(partition) => result
                            .with_end_offset(partition.offsets().1)
                            .with_leader_epoch(0),
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
