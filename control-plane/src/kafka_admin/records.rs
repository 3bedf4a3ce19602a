//! Records read and written as a diagnostic client (the portal's live tail and "produce a
//! record" through the API): one `Fetch` (v12, `read_uncommitted`, no fetch session) of a
//! leader's partitions, and one `Produce` (v8, `acks=all`) of a single record. Partition offsets
//! are `groups.rs`'s `list_offsets`.
//!
//! Fetched data is untrusted: batches are framed by their own length and checked before they
//! are decoded, a trailing partial batch (a fetch cut at its byte limit) is left for the next
//! fetch, control batches are skipped, and compressed batches (gzip, snappy, lz4, zstd: the Java
//! client's and librdkafka's codecs) are decompressed with a bound on their size
//! (`hdi_kafka_client::compression`, 16 MiB a batch); one that does not decompress within it is
//! skipped and counted, never a panic.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::time::Instant;

use super::{AdminError, KafkaAdmin, KafkaErrorCode, check, missing, topic_name};

/// `Fetch` version: topics by name, flexible.
const FETCH_VERSION: i16 = 12;
/// `Produce` version.
const PRODUCE_VERSION: i16 = 8;
/// The attribute bits of a record batch: compression codec, control batch.
const COMPRESSION_MASK: i16 = 0x07;
const CONTROL_BIT: i16 = 0x20;

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRecord {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What one fetch brought of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The partition.
    pub partition: i32,
    /// The partition's error, if the leader refused it.
    pub error: Option<KafkaErrorCode>,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Records at or after the requested offset, in order.
    pub records: Vec<FetchedRecord>,
    /// Records of compressed batches that did not decompress, skipped.
    pub skipped_compressed: u64,
    /// Where the next fetch of this partition starts (the requested offset if nothing came).
    pub next_offset: i64,
}

/// A record to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Its headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl KafkaAdmin {
    /// One fetch from the broker at `leader` of `positions` (`(partition, offset)`) of `topic`,
    /// waiting up to `max_wait` for data, at most `max_bytes` in all (and per partition).
    ///
    /// # Errors
    /// [`AdminError::Connect`], [`AdminError::Timeout`], [`AdminError::Protocol`] (including
    /// a batch that does not decode), or [`AdminError::Kafka`] for a top-level error.
    pub async fn fetch(
        &self,
        leader: &str,
        topic: &str,
        positions: &[(i32, i64)],
        max_wait: Duration,
        max_bytes: i32,
    ) -> Result<Vec<FetchedPartition>, AdminError> {
        const API: &str = "Fetch";
        let deadline = Instant::now() + max_wait + self.timeout;
        let wait_ms = i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        positions
                            .iter()
                            .map(|&(partition, offset)| {
                                FetchPartition::default()
                                    .with_partition(partition)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(offset)
                                    .with_last_fetched_epoch(-1)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(max_bytes)
                            })
                            .collect(),
                    ),
            ]);
        let response = self
            .send_to(API, leader, &request, FETCH_VERSION, deadline, true)
            .await?;
        check(API, response.error_code, None)?;
        let requested: BTreeMap<i32, i64> = positions.iter().copied().collect();
        let mut out = Vec::new();
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            let Some(&from) = requested.get(&data.partition_index) else {
                continue;
            };
            let mut fetched = FetchedPartition {
                partition: data.partition_index,
                error: KafkaErrorCode::from_code(data.error_code),
                high_watermark: data.high_watermark,
                log_start_offset: data.log_start_offset,
                next_offset: from,
                ..FetchedPartition::default()
            };
            if let Some(records) = &data.records {
                decode_batches(records.clone(), from, &mut fetched).map_err(|e| {
                    AdminError::Protocol(format!(
                        "{leader}: Fetch of {topic}-{}: {e}",
                        data.partition_index
                    ))
                })?;
            }
            out.push(fetched);
        }
        Ok(out)
    }

    /// Writes one record to `partition` of `topic` at its leader (`acks=all`): its offset.
    ///
    /// # Errors
    /// As [`KafkaAdmin::fetch`]; a refusal (e.g. `NOT_LEADER_OR_FOLLOWER`,
    /// `MESSAGE_TOO_LARGE`, `TOPIC_AUTHORIZATION_FAILED`) is [`AdminError::Kafka`].
    pub async fn produce(
        &self,
        leader: &str,
        topic: &str,
        partition: i32,
        record: NewRecord,
    ) -> Result<i64, AdminError> {
        const API: &str = "Produce";
        let deadline = Instant::now() + self.timeout;
        let mut wire = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: chrono::Utc::now().timestamp_millis(),
            key: record.key,
            value: record.value,
            headers: Default::default(),
        };
        for (key, value) in record.headers {
            wire.headers.insert(StrBytes::from_string(key), value);
        }
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            [&wire],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| AdminError::Protocol(format!("encoding the record: {e}")))?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(super::remaining_ms(deadline))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]);
        // Not retried on a broken connection: the write may have landed.
        let response = self
            .send_to(API, leader, &request, PRODUCE_VERSION, deadline, false)
            .await?;
        let answer = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| missing(API, topic))?;
        check(API, answer.error_code, answer.error_message.as_ref())?;
        Ok(answer.base_offset)
    }
}

/// Decodes the whole record batches of `data` (a fetch answer's records) into `into`: records
/// at or after `from`, skipping control batches and counting compressed ones; `next_offset`
/// moves past every whole batch. A trailing partial batch is left for the next fetch.
fn decode_batches(mut data: Bytes, from: i64, into: &mut FetchedPartition) -> Result<(), String> {
    const HEADER: usize = 61;
    while data.len() >= 12 {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().map_err(|_| "short batch")?);
        let length = i32::from_be_bytes(data[8..12].try_into().map_err(|_| "short batch")?);
        let Ok(length) = usize::try_from(length) else {
            return Err(format!(
                "a batch at offset {base_offset} has length {length}"
            ));
        };
        let total = 12 + length;
        if total < HEADER {
            return Err(format!(
                "a batch at offset {base_offset} is {total} bytes, below a header"
            ));
        }
        if data.len() < total {
            break; // cut by the fetch's byte limit
        }
        let mut batch = data.split_to(total);
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(format!(
                "a batch at offset {base_offset} has magic {magic}, not 2"
            ));
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let last_delta = i32::from_be_bytes([batch[23], batch[24], batch[25], batch[26]]);
        let next = base_offset + i64::from(last_delta) + 1;
        if attributes & CONTROL_BIT != 0 {
            // Transaction markers: never shown to clients.
        } else {
            let compressed = attributes & COMPRESSION_MASK != 0;
            let set = match RecordBatchDecoder::decode_with_custom_compression(
                &mut batch,
                Some(decompress),
            ) {
                Ok(set) => set,
                Err(error) if compressed => {
                    tracing::warn!(base_offset, "a compressed batch does not decode: {error:#}");
                    let skipped = next - base_offset.max(from);
                    into.skipped_compressed += u64::try_from(skipped).unwrap_or(0);
                    into.next_offset = into.next_offset.max(next);
                    continue;
                }
                Err(error) => {
                    return Err(format!(
                        "a batch at offset {base_offset} does not decode: {error}"
                    ));
                }
            };
            for record in set.records {
                if record.offset < from || record.control {
                    continue;
                }
                into.records.push(FetchedRecord {
                    offset: record.offset,
                    timestamp_ms: record.timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                });
            }
        }
        into.next_offset = into.next_offset.max(next);
    }
    Ok(())
}

/// The most bytes one batch's records may decompress to for the tail: a diagnostic read of a
/// few records needs far less than a consumer's bound (`compression::MAX_DECOMPRESSED`, 256 MiB),
/// and every tail request of every user may decompress this much. A batch over it is skipped and
/// counted like one that does not decompress.
const TAIL_MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// A batch's records in its codec, at most [`TAIL_MAX_DECOMPRESSED`] bytes (`kafka-protocol`'s
/// decoder calls it for every batch).
fn decompress(data: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    let codec = match compression {
        Compression::None => return Ok(data.split_to(data.len())),
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    hdi_kafka_client::compression::decompress_at_most(codec, data, TAIL_MAX_DECOMPRESSED)
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, values: &[&str]) -> Bytes {
        compressed_batch(base, values, Compression::None, |_, _| {})
    }

    /// A batch of `values` whose records section `compress` writes (in `compression`'s codec).
    fn compressed_batch(
        base: i64,
        values: &[&str],
        compression: Compression,
        compress: impl Fn(&[u8], &mut BytesMut),
    ) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                // Offsets and sequences advancing together: the encoder puts the records in one
                // batch (it starts a new batch wherever `offset - sequence` changes).
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
            Some(
                |plain: &mut BytesMut, out: &mut BytesMut, c: Compression| -> anyhow::Result<()> {
                    if c == Compression::None {
                        out.extend_from_slice(plain);
                    } else {
                        compress(plain, out);
                    }
                    Ok(())
                },
            ),
        )
        .expect("encodes");
        buf.freeze()
    }

    /// Batches of the Java client's and librdkafka's codecs are read; one whose records do not
    /// decompress is skipped and counted, and the tail goes on after it.
    #[test]
    fn compressed_batches_decode_and_a_broken_one_is_skipped() {
        use std::io::Write as _;
        let gzip = |plain: &[u8], out: &mut BytesMut| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).expect("gzip");
            out.extend_from_slice(&e.finish().expect("gzip"));
        };
        let snappy = |plain: &[u8], out: &mut BytesMut| {
            let packed = snap::raw::Encoder::new()
                .compress_vec(plain)
                .expect("snappy");
            out.extend_from_slice(&packed);
        };
        let lz4 = |plain: &[u8], out: &mut BytesMut| {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(plain).expect("lz4");
            out.extend_from_slice(&e.finish().expect("lz4"));
        };
        let zstd = |plain: &[u8], out: &mut BytesMut| {
            out.extend_from_slice(&zstd::stream::encode_all(plain, 3).expect("zstd"));
        };
        let mut data = BytesMut::new();
        data.extend_from_slice(&compressed_batch(0, &["g0", "g1"], Compression::Gzip, gzip));
        data.extend_from_slice(&compressed_batch(
            2,
            &["s2", "s3"],
            Compression::Snappy,
            snappy,
        ));
        data.extend_from_slice(&compressed_batch(4, &["l4"], Compression::Lz4, lz4));
        data.extend_from_slice(&compressed_batch(5, &["z5", "z6"], Compression::Zstd, zstd));
        // A valid CRC over a records section that is not zstd at all.
        let garbage = |_: &[u8], out: &mut BytesMut| out.extend_from_slice(b"not zstd");
        data.extend_from_slice(&compressed_batch(
            7,
            &["x7", "x8"],
            Compression::Zstd,
            garbage,
        ));
        data.extend_from_slice(&batch(9, &["p9"]));
        let mut out = FetchedPartition {
            next_offset: 1,
            ..FetchedPartition::default()
        };
        decode_batches(data.freeze(), 1, &mut out).expect("decodes");
        let values: Vec<&[u8]> = out
            .records
            .iter()
            .map(|r| r.value.as_deref().unwrap_or_default())
            .collect();
        let expected: [&[u8]; 7] = [b"g1", b"s2", b"s3", b"l4", b"z5", b"z6", b"p9"];
        assert_eq!(values, expected);
        assert_eq!(out.skipped_compressed, 2);
        assert_eq!(out.next_offset, 10);
    }

    /// A batch whose records decompress to more than the tail's bound (16 MiB) is skipped and
    /// counted; one just under it is read.
    #[test]
    fn a_batch_over_the_tails_bound_is_skipped() {
        let zstd = |plain: &[u8], out: &mut BytesMut| {
            out.extend_from_slice(&zstd::stream::encode_all(plain, 1).expect("zstd"));
        };
        let under = "u".repeat(TAIL_MAX_DECOMPRESSED - 1024);
        let over = "o".repeat(TAIL_MAX_DECOMPRESSED);
        let mut data = BytesMut::new();
        data.extend_from_slice(&compressed_batch(0, &[&under], Compression::Zstd, zstd));
        data.extend_from_slice(&compressed_batch(1, &[&over], Compression::Zstd, zstd));
        data.extend_from_slice(&batch(2, &["p2"]));
        let mut out = FetchedPartition::default();
        decode_batches(data.freeze(), 0, &mut out).expect("decodes");
        let offsets: Vec<i64> = out.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 2]);
        assert_eq!(
            out.records[0].value.as_deref().map(<[u8]>::len),
            Some(under.len())
        );
        assert_eq!(out.skipped_compressed, 1);
        assert_eq!(out.next_offset, 3);
    }

    #[test]
    fn whole_batches_decode_from_the_requested_offset_and_a_partial_one_waits() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(10, &["a", "b", "c"]));
        let second = batch(13, &["d", "e"]);
        data.extend_from_slice(&second[..second.len() - 3]);
        let mut out = FetchedPartition {
            next_offset: 11,
            ..FetchedPartition::default()
        };
        decode_batches(data.freeze(), 11, &mut out).expect("decodes");
        let offsets: Vec<i64> = out.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [11, 12]);
        assert_eq!(out.next_offset, 13, "the partial batch is fetched again");
        assert_eq!(out.records[0].value.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&0_i64.to_be_bytes());
        data.extend_from_slice(&(-5_i32).to_be_bytes());
        let mut out = FetchedPartition::default();
        assert!(decode_batches(data.freeze(), 0, &mut out).is_err());
        let mut data = BytesMut::new();
        data.extend_from_slice(&0_i64.to_be_bytes());
        data.extend_from_slice(&20_i32.to_be_bytes());
        data.extend_from_slice(&[0_u8; 20]);
        assert!(
            decode_batches(data.freeze(), 0, &mut out).is_err(),
            "shorter than a header"
        );
        let mut wrong_crc = BytesMut::from(&batch(0, &["x"])[..]);
        let last = wrong_crc.len() - 1;
        wrong_crc[last] ^= 0xff;
        // A flipped byte either fails the CRC check or decodes to a different value; never a panic.
        let _ = decode_batches(wrong_crc.freeze(), 0, &mut FetchedPartition::default());
    }

    /// A deterministic fuzz of the decoder (the fetched bytes come from the network): valid
    /// batches with bytes flipped, cut, or replaced by noise never panic or loop.
    #[test]
    fn decoder_fuzz_never_panics() {
        let mut valid = BytesMut::new();
        valid.extend_from_slice(&batch(0, &["one", "two"]));
        valid.extend_from_slice(&batch(2, &["three"]));
        let valid = valid.freeze();
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut data = BytesMut::from(&valid[..]);
            match round % 3 {
                0 => {
                    for _ in 0..(next() % 4 + 1) {
                        let at = (next() as usize) % data.len();
                        data[at] = next() as u8;
                    }
                }
                1 => data.truncate((next() as usize) % data.len()),
                _ => {
                    data.clear();
                    for _ in 0..(next() % 200) {
                        data.extend_from_slice(&[next() as u8]);
                    }
                }
            }
            let mut out = FetchedPartition::default();
            let _ = decode_batches(data.freeze(), (next() % 4) as i64, &mut out);
            assert!(out.records.len() <= 3);
        }
    }
}
