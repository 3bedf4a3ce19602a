//! What a replicated partition needs from its log: appending a leader's batches unchanged (a
//! follower), truncating the tail (a follower whose log diverged from a new leader's, KIP-101),
//! and the leader-epoch cache that decides where to truncate (`OffsetForLeaderEpoch`).
//!
//! The epoch cache is derived from the stored batches: every batch carries the partition leader
//! epoch it was appended in, so the cache is rebuilt when the log opens and needs no file of its
//! own. A leader that starts an epoch without appending records it with
//! [`Log::assign_epoch_start`] (in memory: after a restart the broker is given a new epoch, or
//! the same one with nothing appended, which lands on the same offset).

use crate::segment::{self, Segment};
use crate::{AppendInfo, Log, LogError, batch};

/// Adds `(epoch, start)` to the cache if `epoch` is newer than the latest entry.
pub(crate) fn track_epoch(epochs: &mut Vec<(i32, i64)>, epoch: i32, start: i64) {
    if epoch >= 0 && epochs.last().is_none_or(|(latest, _)| epoch > *latest) {
        epochs.push((epoch, start));
    }
}

/// Parses and CRC-checks concatenated stored batches (which, unlike produced ones, may be
/// sparse after compaction).
fn validate_stored(records: &[u8]) -> Result<Vec<batch::BatchHeader>, LogError> {
    let mut headers = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let header =
            batch::validate(&records[at..], segment::STORED_BATCH_LIMIT).map_err(|source| {
                LogError::InvalidBatch {
                    index: headers.len(),
                    source,
                }
            })?;
        at += header.size();
        headers.push(header);
    }
    Ok(headers)
}

/// No epoch or offset (Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED: (i32, i64) = (-1, -1);

impl Log {
    /// Appends batches exactly as a leader stored them (offsets and leader epochs kept): the
    /// follower side of replication. Offsets must go forward from [`Log::next_offset`]: a gap is
    /// accepted (a compacted leader's log has them, and its cleaned batches may hold fewer
    /// records than offsets, or none), a batch starting below the end is not. CRCs are checked.
    /// All or nothing.
    ///
    /// # Errors
    /// [`LogError::InvalidBatch`], [`LogError::Empty`], [`LogError::NotContiguous`],
    /// [`LogError::Io`].
    pub fn append_replicated(&mut self, records: &[u8]) -> Result<AppendInfo, LogError> {
        if self.failed {
            return Err(LogError::Failed);
        }
        let headers = validate_stored(records)?;
        let Some(first) = headers.first() else {
            return Err(LogError::Empty);
        };
        let mut expected = self.next_offset();
        for header in &headers {
            if header.base_offset < expected {
                return Err(LogError::NotContiguous {
                    expected,
                    got: header.base_offset,
                });
            }
            expected = header.last_offset() + 1;
        }
        let first_offset = first.base_offset;
        self.maybe_roll(records.len() as u64)?;
        let active = self.segments.len() - 1;
        self.segments[active].append(records, &headers)?;
        let mut count = 0u64;
        let mut max_timestamp = -1;
        for header in &headers {
            track_epoch(
                &mut self.epochs,
                header.partition_leader_epoch,
                header.base_offset,
            );
            count += header.records_count as u64;
            max_timestamp = max_timestamp.max(header.max_timestamp);
        }
        self.appended(count)?;
        Ok(AppendInfo {
            first_offset,
            last_offset: expected - 1,
            max_timestamp,
            records: count,
        })
    }

    /// Removes every batch from the one holding `offset` on (a batch is never split: when
    /// `offset` falls inside one, the cut is at its start). Returns the new [`Log::next_offset`].
    /// Never goes below the log start offset: truncating there empties the log and keeps its
    /// start. The cut is fsynced.
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`].
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset >= self.next_offset() {
            return Ok(self.next_offset());
        }
        let offset = offset.max(self.log_start_offset);
        // Whole segments past the cut go first (newest first, so a crash leaves a prefix).
        while self.segments.len() > 1
            && self.segments[self.segments.len() - 1].base_offset >= offset
        {
            if let Some(last) = self.segments.pop() {
                last.delete()?;
            }
        }
        segment::sync_dir(&self.dir)?;
        let index = self.segments.len() - 1;
        let last = &self.segments[index];
        let cut = match last.find(offset)? {
            Some((position, _)) => position,
            None => last.size,
        };
        let (path, base) = (last.path.clone(), last.base_offset);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| LogError::Io {
                action: "cannot open segment to truncate",
                path: path.clone(),
                source,
            })?;
        file.set_len(cut)
            .and_then(|()| file.sync_all())
            .map_err(|source| LogError::Io {
                action: "cannot truncate segment",
                path: path.clone(),
                source,
            })?;
        drop(file);
        let (reopened, _) = Segment::open(&path, base, self.config.index_interval_bytes, false)?;
        self.segments[index] = reopened;
        let end = self.next_offset();
        self.epochs.retain(|(_, start)| *start < end);
        self.generation = crate::next_generation();
        if self.checkpoint.first_dirty > end {
            self.checkpoint.clamp(end);
            self.checkpoint.write(&self.dir)?;
        }
        self.unflushed_records = 0;
        self.unflushed_since = None;
        Ok(end)
    }

    /// Empties the log and restarts it at `offset` (a follower far behind a leader whose log
    /// starts later). The new start offset is persisted.
    ///
    /// # Errors
    /// [`LogError::Io`].
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        crate::write_start_offset(&self.dir, offset)?;
        for segment in self.segments.drain(..) {
            segment.delete()?;
        }
        segment::sync_dir(&self.dir)?;
        self.segments.push(Segment::create(
            &self.dir,
            offset,
            self.config.index_interval_bytes,
        )?);
        self.log_start_offset = offset;
        self.epochs.clear();
        self.generation = crate::next_generation();
        self.checkpoint = crate::swap::Checkpoint::default();
        self.checkpoint.write(&self.dir)?;
        self.unflushed_records = 0;
        self.unflushed_since = None;
        Ok(())
    }

    /// Records that a leader began `epoch` at the current end (Kafka's leader does this when it
    /// takes over), so [`Log::end_offset_for_epoch`] of an older epoch answers with this offset
    /// even before the leader appends anything.
    pub fn assign_epoch_start(&mut self, epoch: i32) {
        let end = self.next_offset();
        track_epoch(&mut self.epochs, epoch, end);
    }

    /// The newest leader epoch in the log, or -1.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.last().map_or(-1, |(epoch, _)| *epoch)
    }

    /// Kafka's `OffsetForLeaderEpoch` answer: the largest epoch `<= requested` this log knows and
    /// the offset where it ended (the start of the next epoch, or the log end for the latest).
    /// [`UNDEFINED`] when `requested` is newer than every epoch here or is -1.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        if requested < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == requested {
            return (requested, self.next_offset());
        }
        let higher = self.epochs.iter().position(|(epoch, _)| *epoch > requested);
        let Some(higher) = higher else {
            return UNDEFINED;
        };
        let next_start = self.epochs[higher].1;
        match higher.checked_sub(1) {
            Some(floor) => (self.epochs[floor].0, next_start),
            None => (requested, next_start),
        }
    }
}
