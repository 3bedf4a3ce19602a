//! Log compaction (Kafka's log cleaner for `cleanup.policy=compact`): keeps the latest record of
//! every key, drops superseded records, keyless records and — `delete.retention.ms` after the
//! cleaner first passed over them — tombstones. Offsets are kept, so a compacted log has gaps.
//!
//! A clean runs in three stages so that the owner's lock on the [`Log`] is held only briefly:
//! 1. [`Log::plan_clean`] (a shared borrow): picks the cleanable segments — closed ones, below the
//!    bound the caller gives (its high watermark or last stable offset), and old enough for
//!    `min.compaction.lag.ms` — and the dirty section (from the checkpointed first dirty offset).
//! 2. [`CleanPlan::run`] (no borrow of the log; the slow part, throttled): builds the key → latest
//!    offset map over the dirty section, then rewrites the segments from the log start up to the
//!    map's end into `.cleaned` files, grouping small adjacent segments into one.
//! 3. [`Log::commit_clean`] (an exclusive borrow): swaps the cleaned files in crash-safely (see
//!    `swap.rs` for the steps and their recovery) unless the log changed meanwhile, and records
//!    the pass in the durable checkpoint.
//!
//! What a rewritten batch keeps: its base offset, last offset delta, base timestamp, producer id,
//! epoch and base sequence, leader epoch and the transactional/control bits; the survivors are
//! written uncompressed with a new CRC. A batch whose records all survive and that is not
//! compressed is copied byte for byte. Kept whole, never filtered: control batches (transaction
//! markers) and transactional batches (whether their transaction committed or aborted is not
//! known here, so they are neither removed nor used to supersede older records), and batches
//! whose records do not decode. The last batch of every producer in the rewritten range is kept,
//! emptied if need be (Kafka's empty batch), so idempotent-producer state survives cleaning.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::records::{self, Decompress, Record};
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
    /// Records removed (superseded, keyless or expired tombstones).
    pub records_removed: u64,
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
    first_dirty: i64,
    first_uncleanable: i64,
    first_passed: swap::Checkpoint,
    config: CompactionConfig,
    now_ms: i64,
}

/// Stage 2's answer: cleaned files waiting to be swapped in by [`Log::commit_clean`].
#[derive(Debug)]
pub struct Cleaned {
    generation: u64,
    groups: Vec<CleanedGroup>,
    up_to: i64,
    now_ms: i64,
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
                    oldest_dirty = Some(segment.header_at(0)?.base_timestamp);
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
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            generation: self.generation,
            group_bytes: self.config.segment_bytes,
            segments,
            first_dirty: cleanable.first_dirty,
            first_uncleanable: cleanable.first_uncleanable,
            first_passed: self.checkpoint.clone(),
            config: config.clone(),
            now_ms,
        }))
    }

    /// Stage 3: swaps the cleaned segments in and records the pass in the checkpoint. A group
    /// whose segments changed since the plan (retention, truncation, a reopen) is dropped.
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
        if same_log {
            let mut checkpoint = self.checkpoint.clone();
            checkpoint.record_pass(cleaned.up_to, cleaned.now_ms);
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
        decompress: &Decompress,
        fail: &mut FailPoint,
    ) -> Result<Option<CleanStats>, LogError> {
        let Some(plan) = self.plan_clean(config, bound, now_ms)? else {
            return Ok(None);
        };
        let mut throttle = Throttle::new(limits.io_max_bytes_per_second);
        let cleaned = plan.run(limits, decompress, &mut throttle, fail)?;
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
        let mut header_buf = [0u8; HEADER_SIZE];
        segment
            .file
            .read_exact_at(&mut header_buf, self.position)
            .map_err(io("cannot read segment", &segment.path))?;
        let header = batch::parse_header(&header_buf, STORED_BATCH_LIMIT).map_err(|source| {
            LogError::Corrupt {
                path: segment.path.clone(),
                position: self.position,
                source,
            }
        })?;
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

/// Batches the cleaner never filters (see the module docs).
fn kept_whole(header: &BatchHeader) -> bool {
    header.is_control() || header.attributes & 0x10 != 0
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
        decompress: &Decompress,
        throttle: &mut Throttle,
        fail: &mut FailPoint,
    ) -> Result<Cleaned, LogError> {
        let mut stats = CleanStats::default();
        let (map, up_to) = self.build_map(limits, decompress, throttle, &mut stats)?;
        let rewrite: Vec<&Planned> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < up_to)
            .collect();
        let last_of_producer = last_batch_of_each_producer(&rewrite)?;
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
            let rules = Rules {
                map: &map,
                up_to,
                last_of_producer: &last_of_producer,
                checkpoint: &self.first_passed,
                delete_retention_ms: self.config.delete_retention_ms,
                now_ms: self.now_ms,
            };
            self.write_group(members, &rules, decompress, throttle, &mut stats, fail)?;
            groups.push(CleanedGroup {
                base_offset: members[0].base_offset,
                members: members
                    .iter()
                    .map(|s| (s.base_offset, s.size, s.path.clone()))
                    .collect(),
            });
            start = end;
        }
        Ok(Cleaned {
            generation: self.generation,
            groups,
            up_to,
            now_ms: self.now_ms,
            stats,
        })
    }

    /// The key → latest offset map of the dirty section, and the offset it is complete up to
    /// (less than the first uncleanable offset when the keys outgrow the dedupe buffer).
    fn build_map(
        &self,
        limits: &CleanerLimits,
        decompress: &Decompress,
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
                if batch.header.last_offset() < self.first_dirty || kept_whole(&batch.header) {
                    continue;
                }
                let Ok(bytes) = records::records_bytes(&batch.bytes, &batch.header, decompress)
                else {
                    continue;
                };
                let Ok(parsed) = records::parse_records(&bytes, &batch.header) else {
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
                    full_at = Some(batch.header.last_offset() + 1);
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
        rules: &Rules<'_>,
        decompress: &Decompress,
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
                if let Some(bytes) = rules.filter(&batch, decompress, stats) {
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

/// What decides a record's fate in one clean.
struct Rules<'a> {
    map: &'a HashMap<Vec<u8>, i64>,
    up_to: i64,
    last_of_producer: &'a HashMap<i64, i64>,
    checkpoint: &'a swap::Checkpoint,
    delete_retention_ms: i64,
    now_ms: i64,
}

impl Rules<'_> {
    /// The batch as it goes to the cleaned segment: unchanged, rebuilt from its survivors, or
    /// `None` when nothing of it stays.
    fn filter(
        &self,
        batch: &StoredBatch,
        decompress: &Decompress,
        stats: &mut CleanStats,
    ) -> Option<Vec<u8>> {
        let header = &batch.header;
        stats.records_read += header.records_count.max(0) as u64;
        let whole = || Some(batch.bytes.clone());
        if kept_whole(header) || header.base_offset >= self.up_to {
            return whole();
        }
        let decoded = records::records_bytes(&batch.bytes, header, decompress).and_then(|bytes| {
            let parsed = records::parse_records(&bytes, header)?;
            let keep: Vec<bool> = parsed.iter().map(|r| self.keep(r, stats)).collect();
            let survivors: Vec<Record<'_>> = parsed
                .into_iter()
                .zip(&keep)
                .filter_map(|(r, k)| k.then_some(r))
                .collect();
            Ok((survivors.len(), records::rebuild_batch(header, &survivors)))
        });
        let Ok((survivors, rebuilt)) = decoded else {
            stats.undecodable_batches += 1;
            return whole();
        };
        let removed = header.records_count as u64 - survivors as u64;
        stats.records_removed += removed;
        let last_of_producer = header.producer_id >= 0
            && self.last_of_producer.get(&header.producer_id) == Some(&header.base_offset);
        if removed == 0 && header.compression() == 0 {
            whole()
        } else if survivors == 0 && !last_of_producer {
            None
        } else {
            Some(rebuilt)
        }
    }

    fn keep(&self, record: &Record<'_>, stats: &mut CleanStats) -> bool {
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
        if record.value.is_none() {
            let expired = self
                .checkpoint
                .first_passed(record.offset)
                .is_some_and(|at| at.saturating_add(self.delete_retention_ms) <= self.now_ms);
            if expired {
                stats.tombstones_removed += 1;
                return false;
            }
        }
        true
    }
}

/// The base offset of the last batch of each producer among `segments` (headers only).
fn last_batch_of_each_producer(segments: &[&Planned]) -> Result<HashMap<i64, i64>, LogError> {
    let mut last = HashMap::new();
    let mut header_buf = [0u8; HEADER_SIZE];
    for segment in segments {
        let mut position = 0;
        while position < segment.size {
            segment
                .file
                .read_exact_at(&mut header_buf, position)
                .map_err(io("cannot read segment", &segment.path))?;
            let header =
                batch::parse_header(&header_buf, STORED_BATCH_LIMIT).map_err(|source| {
                    LogError::Corrupt {
                        path: segment.path.clone(),
                        position,
                        source,
                    }
                })?;
            if header.producer_id >= 0 {
                last.insert(header.producer_id, header.base_offset);
            }
            position += header.size() as u64;
        }
    }
    Ok(last)
}
