//! ListOffsets (earliest, latest, by timestamp, and v7+'s max timestamp, earliest local and
//! latest tiered), DeleteRecords and OffsetForLeaderEpoch. With `read_committed` (isolation
//! level 1), as in Kafka, the latest offset is the last stable offset and a lookup by time finds
//! only offsets below it.

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
/// The record with the largest timestamp (KIP-734, v7+).
const MAX_TIMESTAMP: i64 = -3;
/// The local log's start (KIP-405, v8+): the log start here, with no tiered storage.
const EARLIEST_LOCAL: i64 = -4;
/// The highest offset in tiered storage (KIP-1005, v9+): none here.
const LATEST_TIERED: i64 = -5;

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
    let committed = request.isolation_level == 1;
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
                    let (start, hw, _) = partition.offsets();
                    let end = if committed {
                        partition.last_stable_offset()
                    } else {
                        hw
                    };
                    let found = match lp.timestamp {
                        // A new leader's end could be older than acknowledged records (the
                        // client retries OFFSET_NOT_AVAILABLE), as Kafka answers.
                        LATEST if partition.high_watermark_behind_epoch_start() => {
                            Err(KafkaError::new(
                                codes::OFFSET_NOT_AVAILABLE,
                                "the new leader's high watermark has not caught up yet",
                            ))
                        }
                        // Earliest and latest carry no timestamp (-1), as in Kafka.
                        LATEST => Ok(Some((end, -1, epoch))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((start, -1, epoch))),
                        // Kafka without tiered storage: offset, timestamp and epoch -1.
                        LATEST_TIERED => Ok(Some((-1, -1, -1))),
                        MAX_TIMESTAMP => super::blocking(|| max_timestamp(&partition)),
                        t if t >= 0 => {
                            super::blocking(|| partition.offset_for_timestamp(t)).map(|found| {
                                found
                                    .filter(|(offset, _)| *offset < end)
                                    .map(|(offset, ts)| (offset, ts, epoch))
                            })
                        }
                        _ => Err(KafkaError::new(codes::INVALID_REQUEST, "bad timestamp")),
                    };
                    match found {
                        // leader_epoch exists from v4.
                        // A lookup by time answers with the found batch's (non-negative)
                        // timestamp: Java clients reject a found offset with timestamp -1.
                        Ok(Some((offset, timestamp, epoch))) => response
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

/// ListOffsets `MAX_TIMESTAMP` (KIP-734) below the high watermark: `(offset, timestamp, leader
/// epoch)` of the first record carrying the largest timestamp, as Kafka's
/// `UnifiedLog.fetchOffsetByTimestamp` answers it (the first batch whose max timestamp is the
/// largest, then its first record with that timestamp; the batch's leader epoch, -1 if none).
///
/// The largest timestamp is found by a binary search over the log's time lookups (each one an
/// index lookup and a bounded scan of batch headers): at most 64 of them.
fn max_timestamp(partition: &Replica) -> Result<Option<(i64, i64, i32)>, KafkaError> {
    let Some((found, largest)) = largest_timestamp(|t| partition.offset_for_timestamp(t))? else {
        return Ok(None);
    };
    let batch = partition.read(found, 1, true)?;
    let Ok(header) = hdi_log::batch::parse_header(&batch, usize::MAX) else {
        return Ok(None);
    };
    if header.max_timestamp != largest {
        return Ok(None);
    }
    let epoch = header.partition_leader_epoch.max(-1);
    Ok(offset_of_max_timestamp(&header, &batch)
        .filter(|offset| *offset < partition.high_watermark())
        .map(|offset| (offset, largest, epoch)))
}

/// The first batch (`(base offset, max timestamp)`) whose max timestamp is the largest of the
/// log, given `lookup(t)`: the first batch whose max timestamp is at least `t` (or none).
fn largest_timestamp(
    lookup: impl Fn(i64) -> Result<Option<(i64, i64)>, KafkaError>,
) -> Result<Option<(i64, i64)>, KafkaError> {
    let Some((_, mut low)) = lookup(0)? else {
        return Ok(None);
    };
    // `low` is a batch's max timestamp; none reaches `high`.
    let mut high = i64::MAX;
    if lookup(high)?.is_some() {
        low = high;
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        match lookup(mid)? {
            Some((_, ts)) => low = ts,
            None => high = mid,
        }
    }
    lookup(low)
}

/// The offset of the first record of `batch` whose timestamp is the batch's max timestamp (Kafka's
/// `RecordBatch.offsetOfMaxTimestamp`): with log-append time every record's timestamp is the
/// batch's, so the base offset. None for a batch whose records do not decode (`hdi-log`'s
/// record parser, which also refuses a record whose offset lies outside its batch).
fn offset_of_max_timestamp(header: &hdi_log::BatchHeader, batch: &[u8]) -> Option<i64> {
    const LOG_APPEND_TIME: i16 = 0x08;
    if header.attributes & LOG_APPEND_TIME != 0 {
        return Some(header.base_offset);
    }
    let decompress = |codec: i16, data: &[u8]| {
        hdi_kafka_client::compression::decompress(codec, data).map_err(|e| format!("{e:#}"))
    };
    let records = hdi_log::records::records_bytes(batch, header, &decompress).ok()?;
    hdi_log::records::parse_records(&records, header)
        .ok()?
        .into_iter()
        .find(|record| record.timestamp == header.max_timestamp)
        .map(|record| record.offset)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::cluster::metadata::PartitionRecord;
    use hdi_log::batch::{build_batch, parse_header};

    fn leader(dir: &std::path::Path, epoch: i32) -> Replica {
        let replica = Replica::open(
            dir,
            "t",
            uuid::Uuid::nil(),
            0,
            1,
            hdi_log::LogConfig::default(),
        )
        .unwrap();
        replica.update_role(&PartitionRecord {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: epoch,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        });
        replica
    }

    /// A leader whose high watermark is below the start of its epoch (its follower has not
    /// fetched since it took over) says so: the condition on which ListOffsets LATEST answers
    /// OFFSET_NOT_AVAILABLE. A leader whose high watermark reached its log end does not.
    #[test]
    fn a_new_leader_behind_its_epoch_start_has_no_latest_offset_yet() {
        let temp = tempfile::tempdir().unwrap();
        let alone = leader(&temp.path().join("alone"), 1);
        alone
            .produce(&build_batch(0, 1_000, &[b"a"]), None)
            .unwrap();
        assert!(!alone.high_watermark_behind_epoch_start());
        let replica = Replica::open(
            &temp.path().join("pair"),
            "t",
            uuid::Uuid::nil(),
            0,
            1,
            hdi_log::LogConfig::default(),
        )
        .unwrap();
        let role = |epoch| PartitionRecord {
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: epoch,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        };
        replica.update_role(&role(1));
        replica
            .produce(&build_batch(0, 1_000, &[b"a", b"b", b"c"]), None)
            .unwrap();
        // Broker 2 never fetched: the high watermark stays at 0 while the log ends at 3.
        assert_eq!(replica.offsets(), (0, 0, 3));
        assert!(
            !replica.high_watermark_behind_epoch_start(),
            "epoch 1 starts at 0"
        );
        replica.update_role(&role(2));
        assert!(
            replica.high_watermark_behind_epoch_start(),
            "epoch 2 starts at 3"
        );
    }

    #[test]
    fn max_timestamp_is_the_first_record_with_the_largest_timestamp() {
        let temp = tempfile::tempdir().unwrap();
        let replica = leader(temp.path(), 3);
        assert_eq!(max_timestamp(&replica).unwrap(), None, "empty log");
        // Offsets 0-2 at 1000-1002, 3 at 5000, 4-5 at 2000-2001, 6 at 5000 again, 7 at 10.
        for (base_timestamp, values) in [
            (1_000, &[&b"a"[..], b"b", b"c"][..]),
            (5_000, &[b"d"]),
            (2_000, &[b"e", b"f"]),
            (5_000, &[b"g"]),
            (10, &[b"h"]),
        ] {
            replica
                .produce(&build_batch(0, base_timestamp, values), None)
                .unwrap();
        }
        assert_eq!(replica.high_watermark(), 8);
        // Kafka answers the first batch holding the largest timestamp, with its leader epoch.
        assert_eq!(max_timestamp(&replica).unwrap(), Some((3, 5_000, 3)));
        replica
            .produce(&build_batch(0, 7_000, &[b"i", b"j"]), None)
            .unwrap();
        assert_eq!(max_timestamp(&replica).unwrap(), Some((9, 7_001, 3)));
    }

    #[test]
    fn the_offset_of_the_max_timestamp_is_its_first_record_in_the_batch() {
        let batch = build_batch(40, 1_000, &[b"a", b"b", b"c"]);
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), Some(42));
        // Records at 1000, 1001, 1002 with a max of 1001: the second record.
        let mut batch = batch;
        batch[35..43].copy_from_slice(&1_001i64.to_be_bytes());
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), Some(41));
        // No record carries the max timestamp: none (Kafka's `Optional.empty`).
        batch[35..43].copy_from_slice(&9_999i64.to_be_bytes());
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), None);
        // Log-append time: every record has the batch's timestamp, so the first record.
        batch[22] |= 0x08;
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), Some(40));
        // A truncated batch does not decode.
        batch[22] &= !0x08;
        let cut = &batch[..batch.len() - 3];
        let header = parse_header(cut, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, cut), None);
        // Nor does one whose record lies past the batch's last offset, though its first record
        // carries the max timestamp: the third record (8 bytes each after the 61-byte header:
        // length, attributes, timestamp delta, offset delta, ...) claims offset delta 5 of 0..=2.
        batch[35..43].copy_from_slice(&1_000i64.to_be_bytes());
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), Some(40));
        assert_eq!(batch[61 + 16 + 3], 2 << 1, "the zig-zag offset delta 2");
        batch[61 + 16 + 3] = 5 << 1;
        let header = parse_header(&batch, usize::MAX).unwrap();
        assert_eq!(offset_of_max_timestamp(&header, &batch), None);
    }

    #[test]
    fn the_largest_timestamp_search_finds_the_first_batch_holding_it() {
        // (base offset, max timestamp) in log order.
        let cases: &[&[(i64, i64)]] = &[
            &[],
            &[(0, 0)],
            &[(0, 5), (1, 3), (2, 9), (3, 9), (4, 1)],
            &[(0, 1_700_000_000_000), (7, i64::MAX), (9, i64::MAX)],
            &[(0, 12), (1, 11), (2, 10)],
        ];
        for batches in cases {
            let lookup = |t: i64| Ok(batches.iter().copied().find(|(_, ts)| *ts >= t));
            let largest = batches.iter().map(|(_, ts)| *ts).max();
            let expected = largest.and_then(|m| batches.iter().copied().find(|(_, ts)| *ts == m));
            assert_eq!(largest_timestamp(lookup).unwrap(), expected, "{batches:?}");
        }
    }
}
