//! The records inside a Kafka v2 batch, as far as the log cleaner needs them: each record's
//! offset, timestamp, key and whether its value is null (a tombstone), with the record's encoded
//! bytes kept whole so a cleaned batch can be rebuilt from the survivors without re-encoding them.
//!
//! Only the cleaner decodes records; appends and reads keep batches byte for byte. Compressed
//! batches are decompressed, and a cleaned batch recompressed in its original codec, by
//! functions the caller passes ([`Codecs`]): the codecs live outside this crate (the broker
//! passes `hdi_kafka_client::compression`, which also carries the Kafka wire layer, so `hdi-log`
//! — the storage engine under it — keeps no codec or protocol dependency).
//!
//! Record layout (varints are zig-zag):
//! ```text
//! length varint | attributes i8 | timestamp_delta varlong | offset_delta varint
//! key_length varint | key | value_length varint | value | header_count varint | headers
//! ```

use crate::batch::{BatchHeader, CRC_START, HEADER_SIZE, LOG_OVERHEAD};

/// Decompresses a batch's records: `(codec, compressed bytes) -> records`. The codec is the
/// attributes' low three bits (1 gzip, 2 snappy, 3 lz4, 4 zstd). It must bound its output.
pub type Decompress = dyn Fn(i16, &[u8]) -> Result<Vec<u8>, String> + Sync;

/// Compresses a batch's records in a codec (the attributes' low three bits), as Kafka's
/// clients read it (snappy in the xerial framing, lz4 as an LZ4 frame).
pub type Compress = dyn Fn(i16, &[u8]) -> Result<Vec<u8>, String> + Sync;

/// The codecs a log clean uses: batches are decompressed to be filtered and their survivors
/// compressed again in the batch's own codec, as Kafka's cleaner does.
#[derive(Clone, Copy)]
pub struct Codecs<'a> {
    /// Decompresses a batch's records.
    pub decompress: &'a Decompress,
    /// Compresses a cleaned batch's survivors.
    pub compress: &'a Compress,
}

impl std::fmt::Debug for Codecs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codecs")
    }
}

/// A transaction marker's type: the key of a control batch's record is a version (i16) and a
/// type (i16): 0 abort, 1 commit (others are not transaction markers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The transaction aborted.
    Abort,
    /// The transaction committed.
    Commit,
}

/// The transaction marker in the control batch `batch` (whole), or `None` when it is not one
/// (an emptied control batch, another control type, or unreadable). Control batches are never
/// compressed.
pub fn parse_marker(batch: &[u8], header: &BatchHeader) -> Option<Marker> {
    if !header.is_control() || header.compression() != 0 || header.records_count < 1 {
        return None;
    }
    let body = batch.get(HEADER_SIZE..header.size())?;
    let single = BatchHeader {
        records_count: 1,
        ..*header
    };
    let records = parse_records(body, &single).ok()?;
    match records.first()?.key?.get(2..4)? {
        [0, 0] => Some(Marker::Abort),
        [0, 1] => Some(Marker::Commit),
        _ => None,
    }
}

/// One record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset (batch base offset + offset delta).
    pub offset: i64,
    /// Absolute timestamp (batch base timestamp + timestamp delta, wrapping as Kafka's Java
    /// arithmetic does, so that re-encoding against another base gives the same timestamp back).
    pub timestamp: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The record's whole encoding, length prefix included.
    pub encoded: &'a [u8],
}

/// Why records did not decode.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The batch's codec failed.
    #[error("cannot decompress: {0}")]
    Decompress(String),
    /// The record bytes are malformed.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// The batch's records section, decompressed if needed.
///
/// # Errors
/// [`RecordsError::Decompress`] when the codec fails.
pub fn records_bytes(
    batch: &[u8],
    header: &BatchHeader,
    decompress: &Decompress,
) -> Result<Vec<u8>, RecordsError> {
    let body = batch
        .get(HEADER_SIZE..header.size())
        .ok_or(RecordsError::Malformed("batch shorter than its length"))?;
    match header.compression() {
        0 => Ok(body.to_vec()),
        codec => decompress(codec, body).map_err(RecordsError::Decompress),
    }
}

/// Splits a decompressed records section into its `header.records_count` records.
///
/// # Errors
/// [`RecordsError::Malformed`] for bytes that are not that many well-formed records.
pub fn parse_records<'a>(
    bytes: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<Record<'a>>, RecordsError> {
    // The count comes from the batch (a client's, or bytes on disk): reserve no more than the
    // bytes can hold (a record takes at least 7), so a false count cannot abort the process.
    let claimed = usize::try_from(header.records_count).unwrap_or(0);
    let mut out = Vec::with_capacity(claimed.min(bytes.len() / 7));
    let mut at = 0usize;
    for _ in 0..header.records_count {
        let start = at;
        let length = varint(bytes, &mut at)?;
        let length = usize::try_from(length).map_err(|_| RecordsError::Malformed("length"))?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= bytes.len())
            .ok_or(RecordsError::Malformed("record longer than its batch"))?;
        let body = &bytes[..end];
        at += 1; // attributes
        let timestamp_delta = varint(body, &mut at)?;
        let offset_delta = varint(body, &mut at)?;
        let key = nullable(body, &mut at)?;
        let value = nullable(body, &mut at)?;
        if !(0..=i64::from(header.last_offset_delta)).contains(&offset_delta) {
            return Err(RecordsError::Malformed("offset delta outside the batch"));
        }
        out.push(Record {
            offset: header.base_offset + offset_delta,
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            encoded: &bytes[start..end],
        });
        at = end;
    }
    Ok(out)
}

/// Reads a zig-zag varint (Kafka's record fields; at most 10 bytes) off the front of `bytes`,
/// or `None` when it is truncated or too long. The one varint reader of the workspace's
/// record code (the broker's and the executor's readers call it).
pub fn read_varint(bytes: &mut &[u8]) -> Option<i64> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = bytes.get(i + 1..)?;
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Appends `value` as a zig-zag varint (the writer beside [`read_varint`]).
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<i64, RecordsError> {
    let mut rest = bytes
        .get(*at..)
        .ok_or(RecordsError::Malformed("truncated varint"))?;
    let before = rest.len();
    let value = read_varint(&mut rest).ok_or(RecordsError::Malformed("malformed varint"))?;
    *at += before - rest.len();
    Ok(value)
}

fn nullable<'a>(bytes: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, RecordsError> {
    let len = varint(bytes, at)?;
    if len < 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordsError::Malformed("length"))?;
    let field = at
        .checked_add(len)
        .and_then(|end| bytes.get(*at..end))
        .ok_or(RecordsError::Malformed("field longer than its record"))?;
    *at += len;
    Ok(Some(field))
}

/// Rebuilds a batch from `original`'s header and the surviving `records` (encoded as they
/// were): base offset, last offset delta, base timestamp, producer id, epoch, base sequence,
/// leader epoch and the transactional/control bits stay; compression is dropped (the records
/// are written uncompressed); the count and the max timestamp are the survivors'; a new CRC.
/// With no survivors this is Kafka's empty batch (kept for a producer's last batch).
pub fn rebuild_batch(original: &BatchHeader, records: &[Record<'_>]) -> Vec<u8> {
    let body: Vec<u8> = records.iter().flat_map(|r| r.encoded).copied().collect();
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(original.max_timestamp);
    let header = BatchHeader {
        attributes: original.attributes & !0x07,
        ..*original
    };
    seal(&header, max_timestamp, records.len(), &body)
}

/// [`rebuild_batch`] as the cleaner writes it: with `delete_horizon` the batch carries KIP-534's
/// delete horizon (the attribute bit, the horizon as base timestamp, each record's timestamp
/// delta re-encoded relative to it); survivors are compressed again in the original's codec
/// with `compress` (uncompressed if it fails, or when nothing survives: Kafka's empty batch).
pub fn rebuild_batch_as(
    original: &BatchHeader,
    records: &[Record<'_>],
    delete_horizon: Option<i64>,
    compress: &Compress,
) -> Result<Vec<u8>, RecordsError> {
    let base_timestamp = delete_horizon.unwrap_or(original.base_timestamp);
    let mut body = Vec::with_capacity(records.iter().map(|r| r.encoded.len() + 8).sum());
    for record in records {
        if base_timestamp == original.base_timestamp {
            body.extend_from_slice(record.encoded);
        } else {
            // Wrapping: a producer's timestamp may be anything (near i64::MIN, say); reading
            // back adds the delta with wrapping too.
            let delta = record.timestamp.wrapping_sub(base_timestamp);
            reencode_timestamp(record, delta, &mut body)?;
        }
    }
    let mut attributes = original.attributes & !0x07;
    if delete_horizon.is_some() {
        attributes |= crate::batch::DELETE_HORIZON_BIT;
    }
    let codec = original.compression();
    if codec != 0
        && !records.is_empty()
        && let Ok(compressed) = compress(codec, &body)
    {
        body = compressed;
        attributes |= codec;
    }
    let header = BatchHeader {
        attributes,
        base_timestamp,
        ..*original
    };
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(original.max_timestamp);
    Ok(seal(&header, max_timestamp, records.len(), &body))
}

/// `record` with a new timestamp delta, appended to `out` (the other fields byte for byte).
fn reencode_timestamp(
    record: &Record<'_>,
    timestamp_delta: i64,
    out: &mut Vec<u8>,
) -> Result<(), RecordsError> {
    let mut rest = record.encoded;
    read_varint(&mut rest).ok_or(RecordsError::Malformed("length"))?;
    let (&attributes, mut rest) = rest
        .split_first()
        .ok_or(RecordsError::Malformed("attributes"))?;
    read_varint(&mut rest).ok_or(RecordsError::Malformed("timestamp delta"))?;
    let mut inner = vec![attributes];
    put_varint(&mut inner, timestamp_delta);
    inner.extend_from_slice(rest);
    put_varint(out, inner.len() as i64);
    out.extend_from_slice(&inner);
    Ok(())
}

/// A v2 batch of `header`'s fields (its own attributes and base timestamp) around `body`,
/// `count` records, `max_timestamp`, with a new length and CRC.
fn seal(header: &BatchHeader, max_timestamp: i64, count: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    let batch_length = (HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32;
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&(count as i32).to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A record's key and value as test support builds them (`None` for null).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Test support: builds a valid uncompressed v2 batch of records `(key, value)` (`None` for
/// null), timestamps `base_timestamp + i`.
pub fn build_keyed_batch(
    base_offset: i64,
    base_timestamp: i64,
    records: &[KeyValue<'_>],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut record = vec![0u8];
        put_varint(&mut record, i as i64);
        put_varint(&mut record, i as i64);
        for field in [key, value] {
            match field {
                Some(bytes) => {
                    put_varint(&mut record, bytes.len() as i64);
                    record.extend_from_slice(bytes);
                }
                None => put_varint(&mut record, -1),
            }
        }
        put_varint(&mut record, 0);
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let count = records.len() as i32;
    let header = BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: 0,
        attributes: 0,
        last_offset_delta: (count - 1).max(0),
        base_timestamp,
        max_timestamp: base_timestamp + i64::from((count - 1).max(0)),
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: count,
    };
    let parsed = parse_records(&body, &header).unwrap_or_default();
    rebuild_batch(&header, &parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::batch::validate;

    fn no_codec(codec: i16, _: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!("codec {codec}"))
    }

    #[test]
    fn records_round_trip_and_a_rebuilt_batch_keeps_its_offsets() {
        let batch = build_keyed_batch(
            100,
            5_000,
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), None),
                (None, Some(b"3")),
            ],
        );
        let header = validate(&batch, 1 << 20).unwrap();
        let bytes = records_bytes(&batch, &header, &no_codec).unwrap();
        let records = parse_records(&bytes, &header).unwrap();
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.timestamp, r.key, r.value))
            .collect();
        assert_eq!(
            seen,
            vec![
                (100, 5_000, Some(&b"a"[..]), Some(&b"1"[..])),
                (101, 5_001, Some(&b"b"[..]), None),
                (102, 5_002, None, Some(&b"3"[..])),
            ]
        );
        let rebuilt = rebuild_batch(&header, &records[1..2]);
        let h = validate(&rebuilt, 1 << 20).unwrap();
        assert_eq!(
            (
                h.base_offset,
                h.last_offset(),
                h.records_count,
                h.max_timestamp
            ),
            (100, 102, 1, 5_001)
        );
        let bytes = records_bytes(&rebuilt, &h, &no_codec).unwrap();
        let again = parse_records(&bytes, &h).unwrap();
        assert_eq!((again[0].offset, again[0].key), (101, Some(&b"b"[..])));
        let empty = rebuild_batch(&header, &[]);
        let h = validate(&empty, 1 << 20).unwrap();
        assert_eq!((h.records_count, h.last_offset()), (0, 102));
    }

    #[test]
    fn a_delete_horizon_far_from_the_producers_timestamps_round_trips_them() {
        for base in [i64::MIN, i64::MAX - 1] {
            let batch = build_keyed_batch(7, base, &[(Some(b"k"), None)]);
            let header = validate(&batch, 1 << 20).unwrap();
            let bytes = records_bytes(&batch, &header, &no_codec).unwrap();
            let records = parse_records(&bytes, &header).unwrap();
            for horizon in [10_000, -10_000] {
                let rebuilt =
                    rebuild_batch_as(&header, &records, Some(horizon), &no_codec).unwrap();
                let h = validate(&rebuilt, 1 << 20).unwrap();
                assert_eq!(h.delete_horizon(), Some(horizon));
                let bytes = records_bytes(&rebuilt, &h, &no_codec).unwrap();
                let again = parse_records(&bytes, &h).unwrap();
                assert_eq!(again[0].timestamp, base, "base {base}, horizon {horizon}");
            }
        }
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let batch = build_keyed_batch(0, 0, &[(Some(b"key"), Some(b"value"))]);
        let header = validate(&batch, 1 << 20).unwrap();
        let body = &batch[HEADER_SIZE..];
        for len in 0..body.len() {
            assert!(
                parse_records(&body[..len], &header).is_err(),
                "prefix {len}"
            );
        }
        let mut bigger = header;
        bigger.records_count = 2;
        assert!(parse_records(body, &bigger).is_err());
        let mut compressed = header;
        compressed.attributes = 1;
        assert!(matches!(
            records_bytes(&batch, &compressed, &no_codec),
            Err(RecordsError::Decompress(_))
        ));
    }
}
