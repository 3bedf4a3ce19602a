//! Log compaction (Kafka's log cleaner for `cleanup.policy=compact`): keeps the latest record of
//! every key, drops superseded records, keyless records, the records of aborted transactions
//! and — once their delete horizon has passed — tombstones and transaction markers. Offsets are
//! kept, so a compacted log has gaps.
//!
//! A clean runs in three stages so that the owner's lock on the [`Log`] is held only briefly:
//! 1. [`Log::plan_clean`] (a shared borrow): picks the cleanable segments — closed ones, below the
//!    bound the caller gives (its high watermark or last stable offset), and old enough for
//!    `min.compaction.lag.ms` — and the dirty section (from the checkpointed first dirty offset).
//! 2. [`CleanPlan::run`] (no borrow of the log; the slow part, throttled): collects the
//!    transactions of the planned segments from their markers, builds the key → latest offset
//!    map over the dirty section, then rewrites the segments from the log start up to the map's
//!    end into `.cleaned` files, grouping small adjacent segments into one.
//! 3. [`Log::commit_clean`] (an exclusive borrow): swaps the cleaned files in crash-safely (see
//!    `swap.rs` for the steps and their recovery) unless the log changed meanwhile, and records
//!    the pass in the durable checkpoint — only when every group was swapped.
//!
//! Transactions, as Kafka's `LogCleaner` (`CleanedTransactionMetadata`): the cleaner reads the
//! markers of the planned segments in offset order, so it knows for each transactional batch
//! whether its transaction committed or aborted. Aborted records are removed and supersede
//! nothing; committed ones are compacted like any other record. Markers are read through the
//! end of the log, since a transaction with data below the bound may end past it. A batch with
//! no marker anywhere (never below the last stable offset) is kept whole, supersedes nothing,
//! and the checkpoint stays below it; so is one whose transaction ended with a control batch
//! that does not read as a marker (any control batch of the producer ends its open
//! transaction, with an unknown outcome then). A marker stays while any batch of its transaction was read by this clean;
//! the first clean that finds none left before it gives it a delete horizon
//! (`now + delete.retention.ms`), and a clean after the horizon removes it — so a consumer that
//! read the transaction's data within `delete.retention.ms` still sees its marker.
//!
//! Tombstones, as KIP-534 (Kafka 3.x): the first clean that keeps a tombstone writes its batch
//! with a delete horizon (attribute bit 6, the horizon as base timestamp, record timestamp deltas
//! relative to it); a clean after the horizon removes the tombstone if it lies below the
//! checkpointed first dirty offset (every older record of its key is gone by then).
//!
//! What a rewritten batch keeps: its base offset, last offset delta, producer id, epoch and base
//! sequence, leader epoch, the transactional/control bits, its records' timestamps, and its
//! codec: survivors are compressed again in the batch's own codec (the caller's [`Codecs`]), as
//! Kafka recompresses with the source batch's compression. A batch whose records all survive
//! and that needs no new horizon is copied byte for byte; so are batches whose records do not
//! decode, and they too keep the checkpoint below them (they were not deduplicated). The last data batch of every producer in the rewritten range is kept, emptied if need
//! be (Kafka's empty batch), and so is a producer's last batch when it is a marker, so
//! idempotence and fencing state survive cleaning.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::records::{self, Codecs, Marker, Record};
use crate::segment::{self, STORED_BATCH_LIMIT, Segment};
use crate::swap::{self, CLEANED, DELETED, FailPoint, SWAP};
use crate::{Log, LogError};

/// A compacted topic's cleaning settings (Kafka topic configs of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone stays after the cleaner first passed it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments with a record newer than this are not cleaned yet.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this force a clean whatever the ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when dirty bytes / cleanable bytes reach this.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for CompactionConfig {
    /// Kafka's defaults: 1 day, 0, forever, 0.5.
    fn default() -> CompactionConfig {
        CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// The cleaner's resource bounds (broker-wide `log.cleaner.*` settings).
#[derive(Clone, Debug, PartialEq)]
pub struct CleanerLimits {
    /// `log.cleaner.dedupe.buffer.size`: memory for the key map; a dirty section whose keys do
    /// not fit is cleaned in several passes.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`: bytes read plus written per second.
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerLimits {
    /// Kafka's defaults: a 128 MiB dedupe buffer, no I/O limit.
    fn default() -> CleanerLimits {
        CleanerLimits {
            dedupe_buffer_bytes: 128 << 20,
            io_max_bytes_per_second: f64::INFINITY,
        }
    }
}

/// How dirty a log is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cleanable {
    /// Offsets below this have been cleaned.
    pub first_dirty: i64,
    /// Nothing at or past this offset may be cleaned now (the first segment that is active,
    /// reaches the caller's bound, or is younger than `min.compaction.lag.ms`).
    pub first_uncleanable: i64,
    /// Bytes of cleaned segments.
    pub clean_bytes: u64,
    /// Bytes of cleanable dirty segments.
    pub dirty_bytes: u64,
    /// The oldest dirty record is older than `max.compaction.lag.ms`.
    pub max_lag_exceeded: bool,
}

impl Cleanable {
    /// Dirty bytes over cleanable bytes (0 when there is nothing).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner should clean this log now (Kafka's choice: dirty enough, or forced
    /// by `max.compaction.lag.ms`).
    pub fn due(&self, config: &CompactionConfig) -> bool {
        self.dirty_bytes > 0
            && (self.max_lag_exceeded || self.dirty_ratio() >= config.min_cleanable_dirty_ratio)
    }
}

/// What a clean did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes read (map building and rewriting).
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Bytes of the segments replaced.
    pub bytes_replaced: u64,
    /// Records examined in the rewritten segments.
    pub records_read: u64,
    /// Records removed (superseded, keyless, expired tombstones, aborted, expired markers).
    pub records_removed: u64,
    /// Records of aborted transactions removed.
    pub aborted_removed: u64,
    /// Transaction markers removed (their transaction left nothing before them, and their
    /// delete horizon had passed).
    pub markers_removed: u64,
    /// Tombstones removed because `delete.retention.ms` had passed.
    pub tombstones_removed: u64,
    /// Keyless records removed (invalid in a compacted topic).
    pub keyless_removed: u64,
    /// Batches kept whole because their records did not decode.
    pub undecodable_batches: u64,
    /// Segment groups swapped in.
    pub groups_swapped: u64,
    /// Segment groups dropped because the log changed while they were cleaned.
    pub groups_abandoned: u64,
    /// Everything below this offset is now clean.
    pub cleaned_up_to: i64,
}

/// A closed segment as planned: its identity and a handle of its own for reading.
#[derive(Debug)]
struct Planned {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    path: PathBuf,
    file: File,
}

/// Stage 1's answer: what to clean (see the module docs).
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    generation: u64,
    group_bytes: u64,
    segments: Vec<Planned>,
    /// The segments past the planned ones, active included (sizes as planned): read only for
    /// their transaction markers.
    tail: Vec<Planned>,
    first_dirty: i64,
    first_uncleanable: i64,
    config: CompactionConfig,
    now_ms: i64,
}

/// Stage 2's answer: cleaned files waiting to be swapped in by [`Log::commit_clean`].
#[derive(Debug)]
pub struct Cleaned {
    generation: u64,
    groups: Vec<CleanedGroup>,
    up_to: i64,
    stats: CleanStats,
}

#[derive(Debug)]
struct CleanedGroup {
    base_offset: i64,
    /// `(base offset, size, path)` of the segments it replaces.
    members: Vec<(i64, u64, PathBuf)>,
}

/// Bounds the cleaner's I/O to a rate: each charge sleeps until the bytes so far fit.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: f64,
    started: Instant,
    bytes: f64,
}

impl Throttle {
    /// A throttle at `bytes_per_second` (infinite: never sleeps).
    pub fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0.0,
        }
    }

    fn charge(&mut self, bytes: u64) {
        if !self.bytes_per_second.is_finite() || self.bytes_per_second <= 0.0 {
            return;
        }
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64(self.bytes / self.bytes_per_second);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        // Forget old history so an idle spell does not buy a burst.
        if elapsed > Duration::from_secs(1) {
            self.started = Instant::now();
            self.bytes = 0.0;
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Log {
    /// How dirty the log is for `config`, cleaning nothing at or past `bound` (the high
    /// watermark, or the last stable offset once transactions exist), at `now_ms`.
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`] reading a segment's first batch.
    pub fn cleanable(
        &self,
        config: &CompactionConfig,
        bound: i64,
        now_ms: i64,
    ) -> Result<Cleanable, LogError> {
        let closed = &self.segments[..self.segments.len() - 1];
        let young = |s: &Segment| {
            config.min_compaction_lag_ms > 0
                && s.max_timestamp > now_ms.saturating_sub(config.min_compaction_lag_ms)
        };
        let cleanable = closed
            .iter()
            .position(|s| s.next_offset > bound || young(s))
            .unwrap_or(closed.len());
        let first_uncleanable = self.segments[cleanable].base_offset;
        let first_dirty = self
            .checkpoint
            .first_dirty
            .max(self.log_start_offset)
            .min(first_uncleanable);
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        let mut oldest_dirty: Option<i64> = None;
        for segment in &self.segments[..cleanable] {
            if segment.next_offset <= first_dirty {
                clean_bytes += segment.size;
            } else {
                dirty_bytes += segment.size;
                if oldest_dirty.is_none() && segment.size > 0 {
                    oldest_dirty = Some(segment.header_at(0)?.first_timestamp());
                }
            }
        }
        let max_lag_exceeded = config.max_compaction_lag_ms < i64::MAX
            && oldest_dirty.is_some_and(|ts| {
                ts >= 0 && ts < now_ms.saturating_sub(config.max_compaction_lag_ms)
            });
        Ok(Cleanable {
            first_dirty,
            first_uncleanable,
            clean_bytes,
            dirty_bytes,
            max_lag_exceeded,
        })
    }

    /// Everything below this offset has been cleaned (the durable checkpoint).
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.checkpoint.first_dirty
    }

    /// Stage 1: what a clean at `now_ms` would rewrite, or `None` when nothing is dirty.
    ///
    /// # Errors
    /// [`LogError::Io`] duplicating segment handles.
    pub fn plan_clean(
        &self,
        config: &CompactionConfig,
        bound: i64,
        now_ms: i64,
    ) -> Result<Option<CleanPlan>, LogError> {
        let cleanable = self.cleanable(config, bound, now_ms)?;
        if cleanable.dirty_bytes == 0 {
            return Ok(None);
        }
        let mut segments = Vec::new();
        for s in &self.segments[..self.segments.len() - 1] {
            if s.next_offset > cleanable.first_uncleanable
                || s.base_offset >= cleanable.first_uncleanable
            {
                break;
            }
            segments.push(Planned {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                path: s.path.clone(),
                file: s.file_clone()?,
            });
        }
        let mut tail = Vec::new();
        for s in &self.segments[segments.len()..] {
            tail.push(Planned {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                path: s.path.clone(),
                file: s.file_clone()?,
            });
        }
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            generation: self.generation,
            group_bytes: self.config.segment_bytes,
            segments,
            tail,
            first_dirty: cleanable.first_dirty,
            first_uncleanable: cleanable.first_uncleanable,
            config: config.clone(),
            now_ms,
        }))
    }

    /// Stage 3: swaps the cleaned segments in and records the pass in the checkpoint. A group
    /// whose segments changed since the plan (retention, truncation, a reopen) is dropped, and
    /// then the checkpoint stays where it was: its segments were not deduplicated against this
    /// pass's keys, so the next pass must see those keys again (else a tombstone whose horizon
    /// passes could go while an older value of its key survives in them).
    ///
    /// # Errors
    /// [`LogError::Io`] (or an injected failure): the log is then marked failed; reopen it, and
    /// recovery finishes or undoes the interrupted swap.
    pub fn commit_clean(
        &mut self,
        cleaned: Cleaned,
        fail: &mut FailPoint,
    ) -> Result<CleanStats, LogError> {
        let result = self.commit_clean_inner(cleaned, fail);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn commit_clean_inner(
        &mut self,
        cleaned: Cleaned,
        fail: &mut FailPoint,
    ) -> Result<CleanStats, LogError> {
        let mut stats = cleaned.stats;
        let same_log = cleaned.generation == self.generation;
        for group in cleaned.groups {
            let cleaned_path = swap::path_with(&self.dir, group.base_offset, CLEANED);
            let at = same_log
                .then(|| self.find_members(&group.members))
                .flatten();
            let Some(at) = at else {
                let _ = std::fs::remove_file(&cleaned_path);
                stats.groups_abandoned += 1;
                continue;
            };
            let swap_path = swap::path_with(&self.dir, group.base_offset, SWAP);
            fail.step("cannot rename cleaned segment", &cleaned_path)?;
            std::fs::rename(&cleaned_path, &swap_path)
                .map_err(io("cannot rename cleaned segment", &cleaned_path))?;
            fail.step("cannot sync directory", &self.dir)?;
            segment::sync_dir(&self.dir)?;
            for (base, _, path) in &group.members {
                let deleted = swap::path_with(&self.dir, *base, DELETED);
                fail.step("cannot rename replaced segment", path)?;
                std::fs::rename(path, &deleted)
                    .map_err(io("cannot rename replaced segment", path))?;
            }
            let target = self.dir.join(segment::file_name(group.base_offset));
            fail.step("cannot rename swap", &swap_path)?;
            std::fs::rename(&swap_path, &target).map_err(io("cannot rename swap", &swap_path))?;
            fail.step("cannot sync directory", &self.dir)?;
            segment::sync_dir(&self.dir)?;
            let (segment, _) = Segment::open(
                &target,
                group.base_offset,
                self.config.index_interval_bytes,
                false,
            )?;
            self.segments
                .splice(at..at + group.members.len(), std::iter::once(segment));
            for (base, size, _) in &group.members {
                let deleted = swap::path_with(&self.dir, *base, DELETED);
                fail.step("cannot delete replaced segment", &deleted)?;
                std::fs::remove_file(&deleted)
                    .map_err(io("cannot delete replaced segment", &deleted))?;
                stats.bytes_replaced += size;
            }
            stats.groups_swapped += 1;
        }
        if same_log && stats.groups_abandoned == 0 {
            let mut checkpoint = self.checkpoint.clone();
            checkpoint.advance(cleaned.up_to);
            fail.step("cannot write cleaner checkpoint", &self.dir)?;
            checkpoint.write(&self.dir)?;
            self.checkpoint = checkpoint;
            stats.cleaned_up_to = cleaned.up_to;
        }
        Ok(stats)
    }

    /// Where `members` sit, unchanged and contiguous, among the closed segments.
    fn find_members(&self, members: &[(i64, u64, PathBuf)]) -> Option<usize> {
        let (first, ..) = members.first()?;
        let at = self.segments.iter().position(|s| s.base_offset == *first)?;
        let closed = self.segments.len() - 1;
        let fits = at + members.len() <= closed
            && members
                .iter()
                .zip(&self.segments[at..])
                .all(|((base, size, path), s)| {
                    s.base_offset == *base && s.size == *size && s.path == *path
                });
        fits.then_some(at)
    }

    /// All three stages at once (tests, and owners that may hold the log that long).
    ///
    /// # Errors
    /// As [`Log::commit_clean`] and [`CleanPlan::run`].
    pub fn clean(
        &mut self,
        config: &CompactionConfig,
        bound: i64,
        now_ms: i64,
        limits: &CleanerLimits,
        codecs: &Codecs<'_>,
        fail: &mut FailPoint,
    ) -> Result<Option<CleanStats>, LogError> {
        let Some(plan) = self.plan_clean(config, bound, now_ms)? else {
            return Ok(None);
        };
        let mut throttle = Throttle::new(limits.io_max_bytes_per_second);
        let cleaned = plan.run(limits, codecs, &mut throttle, fail)?;
        self.commit_clean(cleaned, fail).map(Some)
    }
}

/// A batch read from a planned segment.
struct StoredBatch {
    header: BatchHeader,
    bytes: Vec<u8>,
}

/// Reads the batches of a planned segment in order, whole.
struct BatchReader<'a> {
    segment: &'a Planned,
    position: u64,
}

impl<'a> BatchReader<'a> {
    fn new(segment: &'a Planned) -> BatchReader<'a> {
        BatchReader {
            segment,
            position: 0,
        }
    }

    fn next(
        &mut self,
        throttle: &mut Throttle,
        stats: &mut CleanStats,
    ) -> Result<Option<StoredBatch>, LogError> {
        let segment = self.segment;
        if self.position >= segment.size {
            return Ok(None);
        }
        let header = read_header(segment, self.position)?;
        let mut bytes = vec![0u8; header.size()];
        segment
            .file
            .read_exact_at(&mut bytes, self.position)
            .map_err(io("cannot read segment", &segment.path))?;
        // Checked before a rewrite gives it a new CRC: a batch corrupted on disk is an error,
        // never resealed as valid.
        batch::validate(&bytes, STORED_BATCH_LIMIT).map_err(|source| LogError::Corrupt {
            path: segment.path.clone(),
            position: self.position,
            source,
        })?;
        self.position += header.size() as u64;
        stats.bytes_read += bytes.len() as u64;
        throttle.charge(bytes.len() as u64);
        Ok(Some(StoredBatch { header, bytes }))
    }
}

fn read_header(segment: &Planned, position: u64) -> Result<BatchHeader, LogError> {
    let mut header_buf = [0u8; HEADER_SIZE];
    segment
        .file
        .read_exact_at(&mut header_buf, position)
        .map_err(io("cannot read segment", &segment.path))?;
    batch::parse_header(&header_buf, STORED_BATCH_LIMIT).map_err(|source| LogError::Corrupt {
        path: segment.path.clone(),
        position,
        source,
    })
}

/// Calls `each` with every batch header of `segment` and its position.
fn for_each_header(
    segment: &Planned,
    mut each: impl FnMut(&BatchHeader, u64) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut position = 0;
    while position < segment.size {
        let header = read_header(segment, position)?;
        each(&header, position)?;
        position += header.size() as u64;
    }
    Ok(())
}

/// A decided transaction of one producer: its first batch still in the log and its marker.
#[derive(Clone, Copy, Debug)]
struct Txn {
    first: i64,
    marker: i64,
    /// Whether it aborted; `None` when its control batch does not read as a marker (its
    /// batches are undecided: kept whole, and the checkpoint stays below them).
    aborted: Option<bool>,
}

/// What a transactional data batch is, as far as the planned segments tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Not transactional.
    Plain,
    /// Its transaction committed (the marker's offset).
    Committed(i64),
    /// Its transaction aborted (the marker's offset).
    Aborted(i64),
    /// Its marker lies past the planned segments or does not read: kept whole, used for
    /// nothing.
    Undecided,
}

/// The transactions of the planned segments, collected from their markers in offset order (the
/// part of Kafka's aborted-transaction index and `CleanedTransactionMetadata` the cleaner needs).
#[derive(Debug, Default)]
struct Transactions {
    by_producer: HashMap<i64, Vec<Txn>>,
}

impl Transactions {
    /// Reads the markers of `segments` and of `tail` (the rest of the log: a transaction with
    /// data below the last stable offset has its marker below the high watermark, possibly past
    /// the cleanable segments). An error reading the tail (it may be truncated meanwhile) ends
    /// the scan there: what it would have told stays undecided.
    fn scan(
        segments: &[Planned],
        tail: &[Planned],
        throttle: &mut Throttle,
    ) -> Result<Transactions, LogError> {
        let mut open: HashMap<i64, i64> = HashMap::new();
        let mut by_producer: HashMap<i64, Vec<Txn>> = HashMap::new();
        let planned = segments.len();
        for (index, segment) in segments.iter().chain(tail).enumerate() {
            let scanned = for_each_header(segment, |header, position| {
                throttle.charge(HEADER_SIZE as u64);
                if header.producer_id < 0 || !header.is_transactional() {
                    return Ok(());
                }
                if !header.is_control() {
                    open.entry(header.producer_id).or_insert(header.base_offset);
                    return Ok(());
                }
                let mut bytes = vec![0u8; header.size()];
                segment
                    .file
                    .read_exact_at(&mut bytes, position)
                    .map_err(io("cannot read segment", &segment.path))?;
                // Any control batch of the producer ends its open transaction: one that does
                // not read as a marker with an unknown outcome (its data must not be taken for
                // the next transaction's).
                let marker = records::parse_marker(&bytes, header);
                let first = open
                    .remove(&header.producer_id)
                    .unwrap_or(header.base_offset);
                by_producer
                    .entry(header.producer_id)
                    .or_default()
                    .push(Txn {
                        first,
                        marker: header.base_offset,
                        aborted: marker.map(|m| m == Marker::Abort),
                    });
                Ok(())
            });
            match scanned {
                Err(error) if index < planned => return Err(error),
                Err(_) => break,
                Ok(()) => {}
            }
        }
        Ok(Transactions { by_producer })
    }

    fn fate(&self, header: &BatchHeader) -> Fate {
        if header.producer_id < 0 || !header.is_transactional() || header.is_control() {
            return Fate::Plain;
        }
        let Some(txns) = self.by_producer.get(&header.producer_id) else {
            return Fate::Undecided;
        };
        let at = txns.partition_point(|t| t.marker < header.base_offset);
        match txns.get(at) {
            Some(t) if t.first <= header.base_offset => match t.aborted {
                Some(true) => Fate::Aborted(t.marker),
                Some(false) => Fate::Committed(t.marker),
                None => Fate::Undecided,
            },
            _ => Fate::Undecided,
        }
    }
}

/// Each producer's last data batch and last batch of any kind among the rewritten segments:
/// kept (emptied if need be) so idempotence and fencing state survive, as Kafka keeps the
/// batches of its active producers' last entries.
#[derive(Debug, Default)]
struct LastBatches {
    data: HashMap<i64, i64>,
    any: HashMap<i64, i64>,
}

impl LastBatches {
    fn scan(segments: &[&Planned]) -> Result<LastBatches, LogError> {
        let mut last = LastBatches::default();
        for segment in segments {
            for_each_header(segment, |header, _| {
                if header.producer_id >= 0 {
                    last.any.insert(header.producer_id, header.base_offset);
                    if !header.is_control() {
                        last.data.insert(header.producer_id, header.base_offset);
                    }
                }
                Ok(())
            })?;
        }
        Ok(last)
    }

    /// Whether `header` is its producer's last data batch, or its last batch and a control one.
    fn is_last(&self, header: &BatchHeader) -> bool {
        let map = if header.is_control() {
            &self.any
        } else {
            &self.data
        };
        header.producer_id >= 0 && map.get(&header.producer_id) == Some(&header.base_offset)
    }
}

impl CleanPlan {
    /// Everything below this offset will be clean after the commit if the map holds all keys.
    pub fn first_uncleanable(&self) -> i64 {
        self.first_uncleanable
    }

    /// Stage 2: builds the key map and writes the cleaned segments (see the module docs). Runs
    /// without the log; `throttle` bounds its I/O; `fail` injects crashes (tests).
    ///
    /// # Errors
    /// [`LogError::Io`] or [`LogError::Corrupt`].
    pub fn run(
        self,
        limits: &CleanerLimits,
        codecs: &Codecs<'_>,
        throttle: &mut Throttle,
        fail: &mut FailPoint,
    ) -> Result<Cleaned, LogError> {
        let mut stats = CleanStats::default();
        let transactions = Transactions::scan(&self.segments, &self.tail, throttle)?;
        let (map, up_to) = self.build_map(limits, codecs, &transactions, throttle, &mut stats)?;
        let rewrite: Vec<&Planned> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < up_to)
            .collect();
        let last = LastBatches::scan(&rewrite)?;
        let mut rules = Rules {
            map: &map,
            up_to,
            first_dirty: self.first_dirty,
            transactions: &transactions,
            last: &last,
            delete_retention_ms: self.config.delete_retention_ms,
            now_ms: self.now_ms,
            codecs,
            observed: HashSet::new(),
            first_undecided: None,
        };
        let mut groups = Vec::new();
        let mut start = 0;
        while start < rewrite.len() {
            let mut end = start + 1;
            let mut bytes = rewrite[start].size;
            while end < rewrite.len()
                && bytes + rewrite[end].size <= self.group_bytes
                && rewrite[end].next_offset - rewrite[start].base_offset < i64::from(i32::MAX)
            {
                bytes += rewrite[end].size;
                end += 1;
            }
            let members = &rewrite[start..end];
            self.write_group(members, &mut rules, throttle, &mut stats, fail)?;
            groups.push(CleanedGroup {
                base_offset: members[0].base_offset,
                members: members
                    .iter()
                    .map(|s| (s.base_offset, s.size, s.path.clone()))
                    .collect(),
            });
            start = end;
        }
        // Undecided batches were not deduplicated: the checkpoint stays below them.
        let up_to = rules.first_undecided.map_or(up_to, |at| at.min(up_to));
        Ok(Cleaned {
            generation: self.generation,
            groups,
            up_to,
            stats,
        })
    }

    /// The key → latest offset map of the dirty section, and the offset it is complete up to
    /// (less than the first uncleanable offset when the keys outgrow the dedupe buffer).
    /// Control batches and the records of aborted or undecided transactions supersede nothing.
    fn build_map(
        &self,
        limits: &CleanerLimits,
        codecs: &Codecs<'_>,
        transactions: &Transactions,
        throttle: &mut Throttle,
        stats: &mut CleanStats,
    ) -> Result<(HashMap<Vec<u8>, i64>, i64), LogError> {
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut memory = 0usize;
        let mut up_to = self.first_uncleanable;
        'segments: for segment in &self.segments {
            if segment.next_offset <= self.first_dirty {
                continue;
            }
            let mut full_at = None;
            let mut reader = BatchReader::new(segment);
            while let Some(batch) = reader.next(throttle, stats)? {
                let header = &batch.header;
                let counts = matches!(transactions.fate(header), Fate::Plain | Fate::Committed(_));
                if header.last_offset() < self.first_dirty || header.is_control() || !counts {
                    continue;
                }
                let Ok(bytes) = records::records_bytes(&batch.bytes, header, codecs.decompress)
                else {
                    continue;
                };
                let Ok(parsed) = records::parse_records(&bytes, header) else {
                    continue;
                };
                for record in parsed {
                    if let Some(key) = record.key
                        && record.offset >= self.first_dirty
                    {
                        match map.get_mut(key) {
                            Some(offset) => *offset = record.offset,
                            None => {
                                memory += key.len() + 64;
                                map.insert(key.to_vec(), record.offset);
                            }
                        }
                    }
                }
                if memory >= limits.dedupe_buffer_bytes {
                    full_at = Some(header.last_offset() + 1);
                    break;
                }
            }
            if let Some(at) = full_at {
                up_to = at.min(self.first_uncleanable);
                break 'segments;
            }
        }
        Ok((map, up_to))
    }

    /// Writes the survivors of `members` to `<first base>.log.cleaned`, fsynced.
    fn write_group(
        &self,
        members: &[&Planned],
        rules: &mut Rules<'_>,
        throttle: &mut Throttle,
        stats: &mut CleanStats,
        fail: &mut FailPoint,
    ) -> Result<(), LogError> {
        let path = swap::path_with(&self.dir, members[0].base_offset, CLEANED);
        fail.step("cannot create cleaned segment", &path)?;
        let file = File::create(&path).map_err(io("cannot create cleaned segment", &path))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for segment in members {
            let mut reader = BatchReader::new(segment);
            while let Some(batch) = reader.next(throttle, stats)? {
                if let Some(bytes) = rules.filter(&batch, stats) {
                    out.write_all(&bytes)
                        .map_err(io("cannot write cleaned segment", &path))?;
                    stats.bytes_written += bytes.len() as u64;
                    throttle.charge(bytes.len() as u64);
                }
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| io("cannot write cleaned segment", &path)(e.into_error()))?;
        fail.step("cannot sync cleaned segment", &path)?;
        file.sync_all()
            .map_err(io("cannot sync cleaned segment", &path))?;
        Ok(())
    }
}

/// What decides a batch's and a record's fate in one clean, and what the clean has seen so far
/// (the batches are filtered in offset order).
struct Rules<'a> {
    map: &'a HashMap<Vec<u8>, i64>,
    up_to: i64,
    /// The checkpoint the plan started from: only below it has every key been deduplicated by
    /// a pass that swapped all its groups, so only there may a tombstone go.
    first_dirty: i64,
    transactions: &'a Transactions,
    last: &'a LastBatches,
    delete_retention_ms: i64,
    now_ms: i64,
    codecs: &'a Codecs<'a>,
    /// Markers (by offset) of transactions with a batch read in this clean: such a marker stays.
    observed: HashSet<i64>,
    /// The first batch kept whole undeduplicated: its transaction's outcome unknown to this
    /// clean, or its records not decodable.
    first_undecided: Option<i64>,
}

impl Rules<'_> {
    /// The horizon a batch gets when it first holds a tombstone or a removable marker.
    fn new_horizon(&self) -> i64 {
        self.now_ms.saturating_add(self.delete_retention_ms)
    }

    /// The batch as it goes to the cleaned segment: unchanged, rebuilt from its survivors, or
    /// `None` when nothing of it stays.
    fn filter(&mut self, batch: &StoredBatch, stats: &mut CleanStats) -> Option<Vec<u8>> {
        let header = &batch.header;
        stats.records_read += header.records_count.max(0) as u64;
        if header.base_offset >= self.up_to {
            return Some(batch.bytes.clone());
        }
        if header.is_control() {
            return self.filter_control(batch, stats);
        }
        match self.transactions.fate(header) {
            Fate::Undecided => {
                self.hold_checkpoint_at(header.base_offset);
                return Some(batch.bytes.clone());
            }
            Fate::Aborted(marker) => {
                self.observed.insert(marker);
                stats.aborted_removed += header.records_count.max(0) as u64;
                stats.records_removed += header.records_count.max(0) as u64;
                return self.last.is_last(header).then(|| {
                    records::rebuild_batch_as(header, &[], None, self.codecs.compress)
                        .unwrap_or_else(|_| batch.bytes.clone())
                });
            }
            Fate::Committed(marker) => {
                self.observed.insert(marker);
            }
            Fate::Plain => {}
        }
        self.filter_records(batch, stats)
    }

    /// Keeps the checkpoint at or below `offset`: a batch there was kept whole without being
    /// deduplicated (its transaction undecided, or it does not decode), so a tombstone past it
    /// must not go as if every older value were gone.
    fn hold_checkpoint_at(&mut self, offset: i64) {
        self.first_undecided = Some(self.first_undecided.map_or(offset, |f| f.min(offset)));
    }

    /// A data batch's records: the latest per key, tombstones until the batch's delete horizon.
    /// One that does not decode stays whole (and holds the checkpoint, as build_map skipped it).
    fn filter_records(&mut self, batch: &StoredBatch, stats: &mut CleanStats) -> Option<Vec<u8>> {
        let header = &batch.header;
        let horizon = header.delete_horizon();
        let decoded = records::records_bytes(&batch.bytes, header, self.codecs.decompress)
            .and_then(|bytes| {
                let parsed = records::parse_records(&bytes, header)?;
                let keep: Vec<bool> = parsed
                    .iter()
                    .map(|r| self.keep(r, horizon, stats))
                    .collect();
                let survivors: Vec<Record<'_>> = parsed
                    .into_iter()
                    .zip(&keep)
                    .filter_map(|(r, k)| k.then_some(r))
                    .collect();
                // KIP-534: the first clean that keeps a tombstone sets the batch's horizon.
                let tombstones = survivors
                    .iter()
                    .any(|r| r.value.is_none() && r.offset < self.up_to);
                let horizon = horizon.or_else(|| tombstones.then(|| self.new_horizon()));
                let rebuilt = (survivors.len() < parsed_len(header)
                    || horizon != header.delete_horizon())
                .then(|| {
                    records::rebuild_batch_as(header, &survivors, horizon, self.codecs.compress)
                })
                .transpose()?;
                Ok((survivors.len(), rebuilt))
            });
        let Ok((survivors, rebuilt)) = decoded else {
            stats.undecodable_batches += 1;
            self.hold_checkpoint_at(header.base_offset);
            return Some(batch.bytes.clone());
        };
        stats.records_removed += (header.records_count.max(0) as usize - survivors) as u64;
        // An empty batch goes unless it is its producer's last (Kafka's DELETE_EMPTY).
        match rebuilt {
            _ if survivors == 0 && !self.last.is_last(header) => None,
            None => Some(batch.bytes.clone()),
            Some(rebuilt) => Some(rebuilt),
        }
    }

    /// A control batch: a transaction marker stays while a batch of its transaction was read
    /// in this clean; once none was, it gets a delete horizon and goes when that has passed
    /// (Kafka's `onControlBatchRead` and KIP-534). A producer's last batch stays whole.
    fn filter_control(&self, batch: &StoredBatch, stats: &mut CleanStats) -> Option<Vec<u8>> {
        let header = &batch.header;
        let whole = Some(batch.bytes.clone());
        if records::parse_marker(&batch.bytes, header).is_none() {
            // An empty control batch is an already cleaned one: it may go (other kinds stay).
            let empty = header.records_count == 0 && !self.last.is_last(header);
            return if empty { None } else { whole };
        }
        if self.observed.contains(&header.base_offset) || self.last.is_last(header) {
            return whole;
        }
        match header.delete_horizon() {
            Some(horizon) if horizon <= self.now_ms => {
                stats.markers_removed += 1;
                stats.records_removed += header.records_count.max(0) as u64;
                None
            }
            Some(_) => whole,
            None => {
                let rebuilt = records::parse_records(&batch.bytes[HEADER_SIZE..], header).and_then(
                    |parsed| {
                        records::rebuild_batch_as(
                            header,
                            &parsed,
                            Some(self.new_horizon()),
                            self.codecs.compress,
                        )
                    },
                );
                rebuilt.ok().or(whole)
            }
        }
    }

    fn keep(&self, record: &Record<'_>, horizon: Option<i64>, stats: &mut CleanStats) -> bool {
        if record.offset >= self.up_to {
            return true;
        }
        let Some(key) = record.key else {
            stats.keyless_removed += 1;
            return false;
        };
        if self
            .map
            .get(key)
            .is_some_and(|latest| *latest > record.offset)
        {
            return false;
        }
        if record.value.is_none()
            && record.offset < self.first_dirty
            && horizon.is_some_and(|h| h <= self.now_ms)
        {
            stats.tombstones_removed += 1;
            return false;
        }
        true
    }
}

fn parsed_len(header: &BatchHeader) -> usize {
    header.records_count.max(0) as usize
}
