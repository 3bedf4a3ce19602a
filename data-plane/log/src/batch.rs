//! Kafka v2 record batches as the log stores them: header parsing, CRC-32C validation, and the two
//! header fields the log rewrites (base offset and partition leader epoch).
//!
//! The log never decodes records: it keeps each batch byte for byte as the producer sent it
//! (compressed or not), so consumers get exactly what was produced. The CRC covers everything from
//! `attributes` to the end of the batch, so rewriting the base offset and the leader epoch (which
//! come before it) leaves it valid.
//!
//! Layout (big-endian), from the Kafka protocol documentation:
//! ```text
//!  0 base_offset i64          8 batch_length i32 (bytes after this field)
//! 12 partition_leader_epoch i32   16 magic i8 (= 2)   17 crc u32 (CRC-32C of bytes 21..)
//! 21 attributes i16          23 last_offset_delta i32
//! 27 base_timestamp i64      35 max_timestamp i64
//! 43 producer_id i64         51 producer_epoch i16    53 base_sequence i32
//! 57 records_count i32       61 records...
//! ```

/// Bytes before `batch_length` counts: `base_offset` and `batch_length` themselves.
pub const LOG_OVERHEAD: usize = 12;
/// The size of a v2 batch header, up to and including `records_count`.
pub const HEADER_SIZE: usize = 61;
pub(crate) const CRC_START: usize = 21;
/// Attributes bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attributes bit 5: a control batch (transaction markers).
pub const CONTROL_BIT: i16 = 0x20;
/// Attributes bit 6 (KIP-534): the base timestamp is the batch's delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// What is wrong with a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a header, or than `batch_length` says.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header says the batch has.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batch_length` is smaller than a header or larger than allowed.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// Not a v2 batch.
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    /// The CRC does not match the content.
    #[error("corrupt batch: CRC-32C {stored:#010x} stored, {computed:#010x} computed")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the content.
        computed: u32,
    },
    /// Header fields contradict each other.
    #[error("invalid batch header: {0}")]
    InvalidHeader(&'static str),
}

/// The header fields of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batch_length` field.
    pub batch_length: i32,
    /// Leader epoch under which the batch was appended.
    pub partition_leader_epoch: i32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// The whole batch's size in bytes.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch belongs to a transaction (data batches and markers alike).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// KIP-534's delete horizon: when the batch's tombstones and transaction marker may go,
    /// set by the log cleaner (the [`DELETE_HORIZON_BIT`] attribute; the base timestamp then
    /// holds the horizon and the records' timestamp deltas are relative to it).
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    /// The batch's first record's timestamp as far as the header tells: the base timestamp,
    /// unless that holds a delete horizon (then the max timestamp, the best bound left).
    pub fn first_timestamp(&self) -> i64 {
        if self.delete_horizon().is_some() {
            self.max_timestamp
        } else {
            self.base_timestamp
        }
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Parses the header at the start of `bytes` without checking the CRC. Needs only
/// [`HEADER_SIZE`] bytes; `max_batch_bytes` bounds `batch_length`.
///
/// # Errors
/// [`BatchError`] for a short header, a bad length, or a magic other than 2.
pub fn parse_header(bytes: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_SIZE {
        return Err(BatchError::Truncated {
            needed: HEADER_SIZE,
            available: bytes.len(),
        });
    }
    let batch_length = i32_at(bytes, 8);
    if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
        || LOG_OVERHEAD + batch_length as usize > max_batch_bytes
    {
        return Err(BatchError::InvalidLength(batch_length));
    }
    let magic = bytes[16] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    let header = BatchHeader {
        base_offset: i64_at(bytes, 0),
        batch_length,
        partition_leader_epoch: i32_at(bytes, 12),
        attributes: i16_at(bytes, 21),
        last_offset_delta: i32_at(bytes, 23),
        base_timestamp: i64_at(bytes, 27),
        max_timestamp: i64_at(bytes, 35),
        producer_id: i64_at(bytes, 43),
        producer_epoch: i16_at(bytes, 51),
        base_sequence: i32_at(bytes, 53),
        records_count: i32_at(bytes, 57),
    };
    if header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(BatchError::InvalidHeader(
            "negative last_offset_delta or records_count",
        ));
    }
    // Compaction may leave offset gaps (delta > count - 1), but never more records than offsets.
    if header.records_count > 0 && header.records_count - 1 > header.last_offset_delta {
        return Err(BatchError::InvalidHeader("more records than offsets"));
    }
    if header.base_offset < 0
        || header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
            .is_none()
    {
        return Err(BatchError::InvalidHeader("offsets out of range"));
    }
    Ok(header)
}

/// Parses and fully validates (length and CRC-32C) the batch at the start of `bytes`.
///
/// # Errors
/// [`BatchError`] when the batch is short, malformed or corrupt.
pub fn validate(bytes: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    let header = parse_header(bytes, max_batch_bytes)?;
    let size = header.size();
    if bytes.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    }
    let stored = i32_at(bytes, 17) as u32;
    let computed = crc32c::crc32c(&bytes[CRC_START..size]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(header)
}

/// Splits `bytes` (a produce request's records: zero or more concatenated batches) into validated
/// batches. Every batch must be whole and valid, or nothing is accepted.
///
/// # Errors
/// The first batch's [`BatchError`], with its index. Produced batches must also be dense, as Kafka
/// requires: at least one record and one offset per record, so a producer cannot burn offsets.
pub fn validate_all(
    bytes: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, (usize, BatchError)> {
    let mut headers = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = validate(&bytes[at..], max_batch_bytes).map_err(|e| (headers.len(), e))?;
        if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
            let reason = "records_count must be at least 1 and equal last_offset_delta + 1";
            return Err((headers.len(), BatchError::InvalidHeader(reason)));
        }
        at += header.size();
        headers.push(header);
    }
    Ok(headers)
}

/// Rewrites the base offset and the partition leader epoch of the batch at the start of `bytes`.
/// Neither field is covered by the CRC.
pub fn assign(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Test support: builds a valid uncompressed v2 batch of `count` records with the given values.
/// Records carry no key and no headers; timestamps are `base_timestamp + i`.
pub fn build_batch(base_offset: i64, base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<crate::records::KeyValue<'_>> =
        values.iter().map(|value| (None, Some(*value))).collect();
    crate::records::build_keyed_batch(base_offset, base_timestamp, &records)
}

/// Test support: recomputes the CRC of the batch at the start of `batch` after its bytes were
/// changed (the broker's seeded-bug build uses it to corrupt a batch its checks still accept).
pub fn reseal(batch: &mut [u8]) {
    let Ok(header) = parse_header(batch, usize::MAX) else {
        return;
    };
    let size = header.size().min(batch.len());
    let crc = crc32c::crc32c(&batch[CRC_START..size]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Test support: sets the idempotent-producer fields of a built batch and recomputes its CRC.
pub fn with_producer(
    mut batch: Vec<u8>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn a_built_batch_validates_and_survives_offset_assignment() {
        let mut batch = build_batch(0, 1_000, &[b"a", b"bb", b"ccc"]);
        let header = validate(&batch, MAX).unwrap();
        assert_eq!(
            (
                header.records_count,
                header.last_offset_delta,
                header.max_timestamp
            ),
            (3, 2, 1_002)
        );
        assign(&mut batch, 41, 7);
        let header = validate(&batch, MAX).unwrap();
        assert_eq!(
            (
                header.base_offset,
                header.last_offset(),
                header.partition_leader_epoch
            ),
            (41, 43, 7)
        );
    }

    #[test]
    fn rejects_bad_batches() {
        let good = build_batch(0, 0, &[b"value"]);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mut magic1 = good.clone();
        magic1[16] = 1;
        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        let mut huge_len = good.clone();
        huge_len[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut overflow = good.clone();
        overflow[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let mut negative = good.clone();
        negative[0..8].copy_from_slice(&(-5i64).to_be_bytes());
        type Check = fn(&BatchError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("flipped bit", flipped, |e| {
                matches!(e, BatchError::CrcMismatch { .. })
            }),
            ("torn", good[..good.len() - 1].to_vec(), |e| {
                matches!(e, BatchError::Truncated { .. })
            }),
            ("header only part", good[..20].to_vec(), |e| {
                matches!(e, BatchError::Truncated { .. })
            }),
            ("magic 1", magic1, |e| {
                matches!(e, BatchError::UnsupportedMagic(1))
            }),
            ("short length", short_len, |e| {
                matches!(e, BatchError::InvalidLength(10))
            }),
            ("huge length", huge_len, |e| {
                matches!(e, BatchError::InvalidLength(_))
            }),
        ];
        for (case, bytes, check) in cases {
            let error = validate(&bytes, MAX).unwrap_err();
            assert!(check(&error), "case {case}: {error:?}");
        }
    }

    #[test]
    fn validate_all_accepts_concatenated_batches_or_nothing() {
        let mut two = build_batch(0, 0, &[b"a"]);
        two.extend(build_batch(0, 0, &[b"b", b"c"]));
        assert_eq!(validate_all(&two, MAX).unwrap().len(), 2);
        let torn = &two[..two.len() - 3];
        assert!(matches!(
            validate_all(torn, MAX),
            Err((1, BatchError::Truncated { .. }))
        ));
        assert!(validate_all(&[], MAX).unwrap().is_empty());
        // A batch claiming more offsets than records would burn offsets: refused on produce.
        let mut sparse = build_batch(0, 0, &[b"a"]);
        sparse[23..27].copy_from_slice(&1000i32.to_be_bytes());
        let crc = crc32c::crc32c(&sparse[CRC_START..]);
        sparse[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(validate(&sparse, MAX).is_ok());
        assert!(matches!(
            validate_all(&sparse, MAX),
            Err((0, BatchError::InvalidHeader(_)))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and many single-byte corruptions of a batch.
        let good = build_batch(5, 9, &[b"x", b"yy"]);
        for len in 0..good.len() {
            let _ = validate(&good[..len], MAX);
            let _ = validate_all(&good[..len], MAX);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = good.clone();
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8;
            if let Ok(headers) = validate_all(&bytes, MAX) {
                for header in headers {
                    let _ = (header.size(), header.last_offset());
                }
            }
        }
    }
}
