//! `hdi-log`: the broker's storage engine. One [`Log`] per partition: a directory of segment files
//! holding Kafka v2 record batches exactly as produced (offsets and leader epoch assigned, CRC-32C
//! checked on the way in), sparse offset and time indexes, segment roll by size and age, retention
//! by bytes and time, a log start offset (`DeleteRecords`), and crash recovery that truncates a
//! torn tail to the last whole batch.
//!
//! It has its own types, not Kafka wire types, and does no networking.
//!
//! # Durability
//! [`LogConfig::flush_messages`] decides when appended batches are fsynced: `Some(1)` syncs every
//! append before it returns (an acknowledged write survives a machine crash); `Some(n)` after every
//! `n` records; `None` leaves it to the OS page cache (an acknowledged write survives a process
//! crash — SIGKILL — but not a power loss; replication covers that, as in Kafka). A process crash
//! never loses what `append` wrote, whatever the policy, because the data is in the page cache.
//! [`LogConfig::flush_interval`] (`flush.ms`) additionally bounds how long an append may stay
//! unsynced: the owner calls [`Log::flush_if_due`] periodically (the broker does every 100 ms).
//!
//! What a producer's `acks` then means on today's single-node broker: `acks=0` — nothing is
//! promised; `acks=1` and `acks=all` — the records were appended (in the page cache: they survive
//! a broker crash) and, with `flush.messages=1`, also fsynced before the answer (they survive a
//! power loss). With `flush.messages=N` or `flush.ms=T`, up to N records or T of acknowledged
//! writes can be lost to a power loss, never to a process crash. Replication (the cluster work)
//! makes `acks=all` wait for the in-sync replicas instead.
//!
//! # Compaction
//! [`cleaner`] compacts a log (`cleanup.policy=compact`): the latest record per key stays at its
//! offset, so a compacted log has offset gaps and batches with fewer records than offsets;
//! [`Log::read`] at a cleaned-away offset answers the next batch, and
//! [`Log::append_replicated`] accepts a leader's gaps. Cleaned segments are swapped in with
//! `.cleaned`/`.swap`/`.deleted` files that [`Log::open`] finishes or undoes after a crash
//! (`swap.rs`). Records are decoded only there ([`records`]), with codecs the caller passes.
//!
//! # Limits of this version
//! Indexes live in memory and are rebuilt from batch headers when a segment opens (a header read per
//! batch); [`Log::offset_for_timestamp`] answers at batch granularity (the base offset of the first
//! batch whose max timestamp qualifies), never later than the exact record. The `segment.ms` clock
//! starts at the active segment's first append in this process, so a restart resets it.

pub mod batch;
pub mod cleaner;
pub mod records;
mod replication;
mod segment;
mod swap;

use std::path::{Path, PathBuf};
use std::time::Duration;

use segment::{Scan, Segment};

pub use batch::{BatchError, BatchHeader};
pub use replication::UNDEFINED;
pub use swap::FailPoint;

/// Every [`Log`] instance and every truncation of one gets a new generation, so a clean planned
/// against one state of a log is never committed to another (see `cleaner.rs`).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Settings of one partition log (Kafka topic configs of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: Option<Duration>,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_batch_bytes: usize,
    /// `flush.messages`: fsync after this many records (see the crate docs).
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fsync when the oldest unsynced append is this old (see [`Log::flush_if_due`]).
    pub flush_interval: Option<Duration>,
    /// `retention.bytes`: delete old segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// `retention.ms`: delete segments whose newest record is older than this.
    pub retention_ms: Option<Duration>,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 4 KiB index interval, 1 MiB batches, 7 days retention,
    /// no forced flush.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(Duration::from_secs(7 * 24 * 3600)),
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            flush_messages: None,
            flush_interval: None,
            retention_bytes: None,
            retention_ms: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A produced batch is invalid; nothing of the request was written.
    #[error("invalid record batch #{index}")]
    InvalidBatch {
        /// Index of the first bad batch in the request.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: BatchError,
    },
    /// The request holds no batch.
    #[error("no record batch in the request")]
    Empty,
    /// A stored batch header is unreadable (the file changed under us).
    #[error("corrupt segment {path} at position {position}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where.
        position: u64,
        /// What.
        #[source]
        source: BatchError,
    },
    /// An earlier fsync failed; reopen the log to recover.
    #[error("the log failed an fsync and refuses appends until reopened")]
    Failed,
    /// Replicated batches do not continue the log.
    #[error("replicated batch starts at offset {got}, expected {expected}")]
    NotContiguous {
        /// The log end.
        expected: i64,
        /// The batch's base offset.
        got: i64,
    },
    /// The offset is outside `[log start offset, next offset]`.
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Offset asked for.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// Next offset.
        end: i64,
    },
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest record timestamp appended.
    pub max_timestamp: i64,
    /// Records appended.
    pub records: u64,
}

/// What recovery did when the log opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments whose torn or corrupt tail was cut off, with where and why.
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Segments removed because they followed a corrupt one.
    pub removed: Vec<PathBuf>,
    /// What finishing or undoing an interrupted clean did (see `swap.rs`).
    pub cleaner: Vec<String>,
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Ascending by base offset; never empty; the last is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    unflushed_records: u64,
    /// When the oldest unsynced append happened.
    unflushed_since: Option<std::time::Instant>,
    /// When the active segment got its first batch in this process (for `segment.ms`).
    active_since: Option<std::time::Instant>,
    /// Set when an fsync failed: what was written may or may not be durable, so the log refuses
    /// further appends until it is reopened (and recovered).
    failed: bool,
    /// The leader-epoch cache (Kafka's `leader-epoch-checkpoint`): `(epoch, start offset)`,
    /// ascending in both, derived from the stored batches' partition leader epochs plus the epochs
    /// a leader started without appending yet (see [`Log::assign_epoch_start`]).
    epochs: Vec<(i32, i64)>,
    /// Changes when the segments are truncated or reset (see [`next_generation`]).
    generation: u64,
    /// The cleaner's durable progress (see `swap.rs`).
    checkpoint: swap::Checkpoint,
}

const START_OFFSET_FILE: &str = "log-start-offset";

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from a crash: every batch of the active
    /// segment is CRC-checked and a torn or corrupt tail is truncated; older segments (fsynced when
    /// they were rolled) are header-scanned.
    ///
    /// # Errors
    /// [`LogError::Io`] when the directory or a segment cannot be used.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, Recovery), LogError> {
        std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
            action: "cannot create log directory",
            path: dir.to_owned(),
            source,
        })?;
        let cleaner = swap::recover(dir, config.index_interval_bytes)?;
        let mut bases: Vec<i64> = std::fs::read_dir(dir)
            .map_err(|source| LogError::Io {
                action: "cannot list log directory",
                path: dir.to_owned(),
                source,
            })?
            .filter_map(Result::ok)
            .filter_map(|entry| segment::parse_file_name(&entry.file_name().to_string_lossy()))
            .collect();
        bases.sort_unstable();
        let mut recovery = Recovery {
            cleaner,
            ..Recovery::default()
        };
        let mut segments: Vec<Segment> = Vec::new();
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().enumerate() {
            let path = dir.join(segment::file_name(*base));
            let broken = segments.last().is_some_and(|s| s.next_offset > *base)
                || !recovery.truncated.is_empty();
            if broken {
                // After a truncated segment (or overlapping offsets) nothing later can be trusted.
                std::fs::remove_file(&path).map_err(|source| LogError::Io {
                    action: "cannot remove segment",
                    path: path.clone(),
                    source,
                })?;
                recovery.removed.push(path);
                continue;
            }
            let (segment, scan) =
                Segment::open(&path, *base, config.index_interval_bytes, i == last)?;
            if let Scan::Truncated { at, reason } = scan {
                recovery.truncated.push((path, at, reason));
            }
            segments.push(segment);
        }
        let mut log_start_offset = read_start_offset(dir)?;
        let next_offset = segments.last().map_or(0, |s| s.next_offset);
        if log_start_offset > next_offset {
            // The start offset was made durable but the tail it passed was not (power loss):
            // nothing below the start offset may be served, so start afresh at it.
            for segment in segments.drain(..) {
                recovery.removed.push(segment.path.clone());
                segment.delete()?;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                log_start_offset.max(0),
                config.index_interval_bytes,
            )?);
        }
        log_start_offset = log_start_offset.max(segments[0].base_offset);
        let mut checkpoint = swap::Checkpoint::read(dir);
        checkpoint.clamp(segments[segments.len() - 1].next_offset);
        let mut log = Log {
            dir: dir.to_owned(),
            config,
            segments,
            log_start_offset,
            unflushed_records: 0,
            unflushed_since: None,
            active_since: None,
            failed: false,
            epochs: Vec::new(),
            generation: next_generation(),
            checkpoint,
        };
        let mut epochs = Vec::new();
        log.for_each_batch_header(|header| {
            replication::track_epoch(
                &mut epochs,
                header.partition_leader_epoch,
                header.base_offset,
            );
        })?;
        log.epochs = epochs;
        Ok((log, recovery))
    }

    /// Whether an fsync failed; a failed log refuses appends until reopened.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The offset the next record will get (Kafka's log end offset).
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// The first offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Bytes on disk over all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty (see `open`).
        &self.segments[self.segments.len() - 1]
    }

    /// Validates every batch of `records` (a produce request's concatenated batches), assigns
    /// offsets from [`Log::next_offset`] and `leader_epoch`, and appends them. All or nothing:
    /// one bad batch rejects the whole request and writes nothing.
    ///
    /// # Errors
    /// [`LogError::InvalidBatch`] or [`LogError::Empty`] for bad input; [`LogError::Io`].
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        if self.failed {
            return Err(LogError::Failed);
        }
        let headers = batch::validate_all(records, self.config.max_batch_bytes)
            .map_err(|(index, source)| LogError::InvalidBatch { index, source })?;
        if headers.is_empty() {
            return Err(LogError::Empty);
        }
        self.maybe_roll(records.len() as u64)?;
        let first_offset = self.next_offset();
        let mut next = first_offset;
        let mut at = 0;
        let mut assigned = Vec::with_capacity(headers.len());
        let mut count = 0u64;
        let mut max_timestamp = -1;
        for header in &headers {
            batch::assign(&mut records[at..], next, leader_epoch);
            let mut header = *header;
            header.base_offset = next;
            header.partition_leader_epoch = leader_epoch;
            next = header.last_offset() + 1;
            at += header.size();
            count += header.records_count as u64;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            assigned.push(header);
        }
        let active = self.segments.len() - 1;
        self.segments[active].append(records, &assigned)?;
        replication::track_epoch(&mut self.epochs, leader_epoch, first_offset);
        self.appended(count)?;
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp,
            records: count,
        })
    }

    /// Bookkeeping after `count` records reached the active segment: the `segment.ms` clock, and
    /// an fsync when `flush.messages` says so.
    fn appended(&mut self, count: u64) -> Result<(), LogError> {
        self.active_since
            .get_or_insert_with(std::time::Instant::now);
        self.unflushed_records += count;
        self.unflushed_since
            .get_or_insert_with(std::time::Instant::now);
        if self
            .config
            .flush_messages
            .is_some_and(|n| self.unflushed_records >= n)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// fsyncs the active segment.
    ///
    /// # Errors
    /// [`LogError::Io`].
    pub fn flush(&mut self) -> Result<(), LogError> {
        if let Err(error) = self.active().flush() {
            self.failed = true;
            return Err(error);
        }
        self.unflushed_records = 0;
        self.unflushed_since = None;
        Ok(())
    }

    /// fsyncs if `flush.ms` is set and the oldest unsynced append is at least that old. Returns
    /// whether it synced.
    ///
    /// # Errors
    /// [`LogError::Io`].
    pub fn flush_if_due(&mut self) -> Result<bool, LogError> {
        let due = self
            .config
            .flush_interval
            .zip(self.unflushed_since)
            .is_some_and(|(interval, since)| since.elapsed() >= interval);
        if due {
            self.flush()?;
        }
        Ok(due)
    }

    fn maybe_roll(&mut self, incoming: u64) -> Result<(), LogError> {
        let active = self.active();
        let full = active.size > 0 && active.size + incoming > self.config.segment_bytes;
        let old = active.size > 0
            && self
                .config
                .segment_ms
                .zip(self.active_since)
                .is_some_and(|(max, since)| since.elapsed() >= max);
        if full || old {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment (fsynced) and starts a new one at [`Log::next_offset`].
    ///
    /// # Errors
    /// [`LogError::Io`].
    pub fn roll(&mut self) -> Result<(), LogError> {
        if self.active().size == 0 {
            return Ok(());
        }
        self.flush()?;
        let next = Segment::create(
            &self.dir,
            self.next_offset(),
            self.config.index_interval_bytes,
        )?;
        self.segments.push(next);
        self.active_since = None;
        Ok(())
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (the first batch
    /// is returned whole even when larger, as Kafka does, so a consumer always makes progress).
    /// Empty at [`Log::next_offset`].
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] outside `[log start offset, next offset]`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>, LogError> {
        self.read_below(offset, max_bytes, self.next_offset())
    }

    /// [`Log::read`], but only batches that end before `limit` (a leader serving consumers
    /// passes its high watermark, which is always at a batch boundary).
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] outside `[log start offset, next offset]`.
    pub fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: i64,
    ) -> Result<Vec<u8>, LogError> {
        let end = self.next_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            let Some((position, header)) = segment.find(offset)? else {
                continue;
            };
            if header.last_offset() >= limit {
                return Ok(Vec::new());
            }
            let mut len = header.size() as u64;
            // Extend over following batches while they fit.
            let mut next = position + len;
            while next < segment.size && len < max_bytes as u64 {
                let h = segment.header_at(next)?;
                if len + h.size() as u64 > max_bytes as u64 || h.last_offset() >= limit {
                    break;
                }
                len += h.size() as u64;
                next += h.size() as u64;
            }
            return segment.read(position, len as usize);
        }
        Ok(Vec::new())
    }

    /// Calls `visit` with the header of every stored batch, oldest first (the broker rebuilds its
    /// idempotent-producer state from them at start-up).
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`].
    pub fn for_each_batch_header(
        &self,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        for segment in &self.segments {
            let mut position = 0;
            while position < segment.size {
                let header = segment.header_at(position)?;
                visit(&header);
                position += header.size() as u64;
            }
        }
        Ok(())
    }

    /// [`Log::for_each_batch_header`], with the whole bytes of each control batch (transaction
    /// markers: the broker rebuilds its transaction state from them; they are small) and `None`
    /// for other batches, whose records are not read.
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`].
    pub fn for_each_batch_with_controls(
        &self,
        mut visit: impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<(), LogError> {
        for segment in &self.segments {
            let mut position = 0;
            while position < segment.size {
                let header = segment.header_at(position)?;
                if header.is_control() {
                    let bytes = segment.read(position, header.size())?;
                    visit(&header, Some(&bytes));
                } else {
                    visit(&header, None);
                }
                position += header.size() as u64;
            }
        }
        Ok(())
    }

    /// The base offset of the first batch with a timestamp at or after `timestamp` (Kafka's
    /// ListOffsets by time, at batch granularity) and that batch's max timestamp (at least
    /// `timestamp`), or `None` if every record is older.
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in &self.segments {
            if let Some((offset, max_timestamp)) = segment.find_timestamp(timestamp)? {
                return Ok(Some((offset.max(self.log_start_offset), max_timestamp)));
            }
        }
        Ok(None)
    }

    /// Kafka's `DeleteRecords`: makes offsets below `offset` unreadable (persisting the new log
    /// start offset) and deletes segments that lie wholly below it. Returns the new start offset.
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] past the end; [`LogError::Io`].
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let end = self.next_offset();
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        write_start_offset(&self.dir, offset)?;
        self.log_start_offset = offset;
        self.delete_segments_while(|segment, _| segment.next_offset <= offset)?;
        Ok(self.log_start_offset)
    }

    /// Applies `retention.ms` (against `now_ms`, milliseconds since the epoch) and `retention.bytes`:
    /// deletes the oldest closed segments that are too old, or while the log stays over its byte
    /// limit without them. The active segment is never deleted. Returns how many were deleted.
    ///
    /// # Errors
    /// [`LogError::Io`].
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let retention_ms = self
            .config
            .retention_ms
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let retention_bytes = self.config.retention_bytes;
        let mut size = self.size_bytes();
        let deleted = self.delete_segments_while(|segment, _| {
            let too_old = retention_ms.is_some_and(|ms| {
                segment.max_timestamp >= 0 && segment.max_timestamp < now_ms.saturating_sub(ms)
            });
            let too_big = retention_bytes.is_some_and(|limit| size - segment.size >= limit);
            if too_old || too_big {
                size -= segment.size;
                true
            } else {
                false
            }
        })?;
        Ok(deleted)
    }

    /// Deletes closed segments from the oldest while `pred` holds; advances the log start offset.
    fn delete_segments_while(
        &mut self,
        mut pred: impl FnMut(&Segment, usize) -> bool,
    ) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && pred(&self.segments[0], deleted) {
            // Remove the file first: if that fails, the segment stays listed and readable.
            self.segments[0].delete_file()?;
            self.segments.remove(0);
            deleted += 1;
        }
        if deleted > 0 {
            segment::sync_dir(&self.dir)?;
            let first = self.segments[0].base_offset;
            if first > self.log_start_offset {
                write_start_offset(&self.dir, first)?;
                self.log_start_offset = first;
            }
        }
        Ok(deleted)
    }
}

fn read_start_offset(dir: &Path) -> Result<i64, LogError> {
    let path = dir.join(START_OFFSET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(LogError::Io {
            action: "cannot read",
            path,
            source,
        }),
    }
}

fn write_start_offset(dir: &Path, offset: i64) -> Result<(), LogError> {
    let path = dir.join(START_OFFSET_FILE);
    let tmp = dir.join(format!("{START_OFFSET_FILE}.tmp"));
    let io = |action| {
        move |source| LogError::Io {
            action,
            path: dir.join(START_OFFSET_FILE),
            source,
        }
    };
    std::fs::write(&tmp, format!("{offset}\n")).map_err(io("cannot write"))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync"))?;
    std::fs::rename(&tmp, &path).map_err(io("cannot rename"))?;
    segment::sync_dir(dir)
}
