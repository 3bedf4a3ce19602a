//! Idempotent producers: producer-id allocation (durable) and per-partition sequence state.
//!
//! Per partition and producer the broker keeps the producer epoch and the last five batches'
//! sequence ranges with their offsets, as Kafka does. A batch whose range equals a remembered one
//! is a retry: it is not appended again, and the original offset is returned. A batch that does
//! not continue the last sequence is refused with OUT_OF_ORDER_SEQUENCE_NUMBER. The state is
//! rebuilt from the stored batch headers (which carry producer id, epoch and base sequence) when a
//! partition opens, so it survives a restart.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hdi_kafka_client::codes;
use hdi_log::BatchHeader;

/// How many batches per producer are remembered for duplicate detection.
pub const REMEMBERED_BATCHES: usize = 5;
const SEQUENCE_MODULUS: i64 = 1 << 31;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchRange {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRange>,
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append it.
    Append,
    /// A retry of an appended batch: answer with this base offset, append nothing.
    Duplicate(i64),
    /// Refuse it with this error code.
    Reject(i16),
}

/// The idempotence state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_sequence(header: &BatchHeader) -> i32 {
    ((i64::from(header.base_sequence) + i64::from(header.records_count) - 1)
        .rem_euclid(SEQUENCE_MODULUS)) as i32
}

impl ProducerStates {
    /// Decides about `header` (a batch with `producer_id >= 0`).
    pub fn check(&self, header: &BatchHeader) -> Decision {
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state aged out): accept its sequence as the start.
            return Decision::Append;
        };
        if header.producer_epoch < entry.epoch {
            return Decision::Reject(codes::INVALID_PRODUCER_EPOCH);
        }
        if header.producer_epoch > entry.epoch {
            // A bumped epoch starts over at sequence 0.
            return if header.base_sequence == 0 {
                Decision::Append
            } else {
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = last_sequence(header);
        if let Some(done) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last)
        {
            return Decision::Duplicate(done.first_offset);
        }
        match entry.batches.back() {
            Some(prev)
                if (i64::from(prev.last_seq) + 1).rem_euclid(SEQUENCE_MODULUS)
                    != i64::from(header.base_sequence) =>
            {
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => Decision::Append,
        }
    }

    /// The highest producer id with state here (-1 for none).
    pub fn max_producer_id(&self) -> i64 {
        self.producers.keys().copied().max().unwrap_or(-1)
    }

    /// Records an appended batch (its producer id, epoch and sequences).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchRange {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

/// Hands out producer ids, durably: ids are reserved in blocks whose upper bound is persisted
/// before any id of the block is used, so a restarted broker never reuses one. Ids are unique
/// across the cluster without coordination: broker `n` hands out `n * 2^40 + k`.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<(i64, i64)>,
    prefix: i64,
}

const BLOCK: i64 = 1000;

impl ProducerIdAllocator {
    /// Opens the allocator persisted at `path`.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn open(path: &Path, node_id: i32) -> std::io::Result<ProducerIdAllocator> {
        let start = match std::fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<i64>().unwrap_or(0),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error),
        };
        Ok(ProducerIdAllocator {
            path: path.to_owned(),
            state: Mutex::new((start, start)),
            // Node ids are checked to be 0..=65535 (`config.rs`): 16 bits under the generation.
            prefix: i64::from(node_id.clamp(0, 0xffff)) << 40,
        })
    }

    /// The next producer id: `generation << 56 | node id << 40 | n`, where the generation is 0
    /// until partitions copied from another cluster (whose brokers may be numbered like ours)
    /// stopped mirroring here, and above `floor`, the highest producer id they held, after.
    ///
    /// # Errors
    /// When the next block cannot be persisted.
    pub fn next(&self, floor: i64) -> std::io::Result<i64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (next, bound) = *state;
        if next >= bound {
            let new_bound = next + BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{new_bound}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            state.1 = new_bound;
        }
        let generation = if floor > 0 { (floor >> 56) + 1 } else { 0 };
        if generation > 0x7f {
            return Err(std::io::Error::other(
                "producer ids exhausted: 127 generations of copied producer ids",
            ));
        }
        state.0 = next + 1;
        Ok((generation << 56) + self.prefix + next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            records_count: count,
        }
    }

    #[test]
    fn detects_duplicates_gaps_and_fenced_epochs() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&header(7, 0, 0, 3, 0)), Decision::Append);
        states.record(&header(7, 0, 0, 3, 0));
        assert_eq!(states.check(&header(7, 0, 3, 2, 99)), Decision::Append);
        states.record(&header(7, 0, 3, 2, 3));
        let cases = [
            (
                "retry of the first batch",
                header(7, 0, 0, 3, 99),
                Decision::Duplicate(0),
            ),
            (
                "retry of the second batch",
                header(7, 0, 3, 2, 99),
                Decision::Duplicate(3),
            ),
            ("next in order", header(7, 0, 5, 1, 99), Decision::Append),
            (
                "gap",
                header(7, 0, 6, 1, 99),
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ),
            (
                "old epoch",
                header(7, -1, 5, 1, 99),
                Decision::Reject(codes::INVALID_PRODUCER_EPOCH),
            ),
            ("new epoch from 0", header(7, 1, 0, 1, 99), Decision::Append),
            (
                "new epoch not from 0",
                header(7, 1, 4, 1, 99),
                Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ),
            (
                "another producer",
                header(8, 0, 42, 1, 99),
                Decision::Append,
            ),
        ];
        for (case, h, want) in cases {
            assert_eq!(states.check(&h), want, "{case}");
        }
        // Only the last five batches are remembered.
        for i in 0..6 {
            states.record(&header(7, 0, 5 + i, 1, 5 + i64::from(i)));
        }
        assert_eq!(
            states.check(&header(7, 0, 0, 3, 99)),
            Decision::Reject(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        // Sequences wrap at 2^31.
        let mut states = ProducerStates::default();
        states.record(&header(9, 0, i32::MAX - 1, 2, 0));
        assert_eq!(states.check(&header(9, 0, 0, 1, 2)), Decision::Append);
    }

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("producer-ids");
        let first = ProducerIdAllocator::open(&path, 3).unwrap();
        let a = first.next(0).unwrap();
        let b = first.next(0).unwrap();
        drop(first);
        let second = ProducerIdAllocator::open(&path, 3).unwrap();
        let c = second.next(0).unwrap();
        assert!(a < b && b < c, "{a} {b} {c}");
        // Another broker's ids never collide with these.
        let other = temp.path().join("other-producer-ids");
        let other_ids = ProducerIdAllocator::open(&other, 4).unwrap();
        let d = other_ids.next(0).unwrap();
        assert!(d > c && a >> 40 == 3 && d >> 40 == 4, "{a} {d}");
        // Once partitions copied from another cluster held ids up to a floor (a cluster whose
        // broker 4 allocated them, say), new ids are above it and still apart per broker.
        let floor = (4 << 40) + 5_000;
        let e = other_ids.next(floor).unwrap();
        let f = second.next(floor).unwrap();
        assert!(e > floor && f > floor && e != f, "{e} {f}");
        assert_eq!(
            (e >> 56, (e >> 40) & 0xffff, f >> 56, (f >> 40) & 0xffff),
            (1, 4, 1, 3)
        );
        // A second promotion above the first generation moves on again; none past the last.
        assert!(second.next(e).unwrap() >> 56 == 2);
        assert!(second.next(0x7f << 56).is_err());
        std::fs::remove_file(&other).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
