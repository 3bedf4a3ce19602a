//! A query's input between batches: where the source stands ([`Position`]), what the next batch
//! reads from there (bounded by the trigger's limits), and where a checkpoint says to resume.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::checkpoint::{BatchInput, Checkpoint, CommitEntry, OffsetEntry};

/// Where the source stands between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
    /// The next offset of each Kafka partition.
    Kafka(BTreeMap<i32, i64>),
    /// Files taken (of the directory's sorted listing).
    Files(u64),
    /// The next row of a `rate` source that started at `start_ms`.
    Rate { start_ms: i64, next: i64 },
}

/// A Kafka batch's ranges: from `starts` towards `ends`, at most `limit` records in all, shared
/// across partitions in proportion to what each has (the last partition takes the rounding).
pub(super) fn kafka_input(
    starts: &BTreeMap<i32, i64>,
    ends: &BTreeMap<i32, i64>,
    limit: Option<u64>,
) -> BatchInput {
    let mut available: Vec<(i32, i64, i64)> = Vec::new();
    for (partition, end) in ends {
        // A partition added since the job started is read from its beginning.
        let start = starts.get(partition).copied().unwrap_or(0).min(*end);
        available.push((*partition, start, *end));
    }
    let total: i64 = available.iter().map(|(_, s, e)| e - s).sum();
    let budget = limit.map_or(total, |l| i64::try_from(l).unwrap_or(i64::MAX).min(total));
    let mut ranges = BTreeMap::new();
    let mut given = 0i64;
    for (i, (partition, start, end)) in available.iter().enumerate() {
        let has = end - start;
        let share = if total == 0 {
            0
        } else if i + 1 == available.len() {
            (budget - given).min(has)
        } else {
            ((i128::from(has) * i128::from(budget)) / i128::from(total)) as i64
        };
        given += share;
        ranges.insert(*partition, (*start, start + share.max(0)));
    }
    BatchInput::Kafka { ranges }
}

/// A `rate` batch: rows `from` up to the `due` ones, at most `limit` of them.
pub(super) fn rate_input(start_ms: i64, from: i64, due: i64, limit: Option<u64>) -> BatchInput {
    let to = match limit {
        Some(limit) => due.min(from + i64::try_from(limit).unwrap_or(i64::MAX)),
        None => due,
    };
    BatchInput::Rate {
        start_ms,
        from,
        to: to.max(from),
    }
}

/// A files batch: of the directory's sorted `files`, the ones after the `taken` first, up to the
/// `available` first (the listing the batch's target saw), at most `max_files` of them.
pub(super) fn files_input(
    taken: u64,
    files: &[PathBuf],
    available: u64,
    max_files: Option<usize>,
) -> anyhow::Result<BatchInput> {
    let end = available.min(files.len() as u64);
    let count = end.saturating_sub(taken);
    let count = max_files.map_or(count, |m| count.min(m as u64));
    let from = usize::try_from(taken)?;
    let to = usize::try_from(taken + count)?;
    Ok(BatchInput::Files {
        taken,
        files: files
            .get(from..to)
            .map(<[PathBuf]>::to_vec)
            .unwrap_or_default(),
    })
}

/// Where a batch with this input starts reading.
pub(super) fn start_position(input: &BatchInput) -> Position {
    match input {
        BatchInput::Kafka { ranges } => {
            Position::Kafka(ranges.iter().map(|(p, (s, _))| (*p, *s)).collect())
        }
        BatchInput::Files { taken, .. } => Position::Files(*taken),
        BatchInput::Rate { start_ms, from, .. } => Position::Rate {
            start_ms: *start_ms,
            next: *from,
        },
    }
}

/// Where the source stands after a batch with this input.
pub(super) fn end_position(input: &BatchInput) -> Position {
    match input {
        BatchInput::Kafka { ranges } => {
            Position::Kafka(ranges.iter().map(|(p, (_, e))| (*p, *e)).collect())
        }
        BatchInput::Files { taken, files } => Position::Files(taken + files.len() as u64),
        BatchInput::Rate { start_ms, to, .. } => Position::Rate {
            start_ms: *start_ms,
            next: *to,
        },
    }
}

/// A batch's input as its progress shows it: start and end offsets by partition (or `rows`,
/// `files`).
pub(super) fn offsets_view(input: &BatchInput) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    match input {
        BatchInput::Kafka { ranges } => (
            ranges
                .iter()
                .map(|(p, (s, _))| (p.to_string(), *s))
                .collect(),
            ranges
                .iter()
                .map(|(p, (_, e))| (p.to_string(), *e))
                .collect(),
        ),
        BatchInput::Rate { from, to, .. } => (
            BTreeMap::from([("rows".to_string(), *from)]),
            BTreeMap::from([("rows".to_string(), *to)]),
        ),
        BatchInput::Files { taken, files } => {
            let taken = i64::try_from(*taken).unwrap_or(i64::MAX);
            let after = taken + i64::try_from(files.len()).unwrap_or(0);
            (
                BTreeMap::from([("files".to_string(), taken)]),
                BTreeMap::from([("files".to_string(), after)]),
            )
        }
    }
}

/// Where a checkpoint says a query resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resume {
    /// Nothing logged: a new query.
    Fresh,
    /// The newest logged batch committed: the next one follows it.
    After {
        /// The batch's offset-log entry.
        entry: OffsetEntry,
        /// Its commit.
        commit: CommitEntry,
    },
    /// The newest logged batch did not commit: it runs again with exactly its logged input and
    /// watermark.
    Rerun(OffsetEntry),
}

impl Resume {
    /// Reads the checkpoint's newest offset-log entry and its commit.
    pub(super) fn read(checkpoint: &Checkpoint) -> anyhow::Result<Resume> {
        let Some(entry) = checkpoint.latest_offsets()? else {
            return Ok(Resume::Fresh);
        };
        Ok(match checkpoint.commit_of(entry.batch_id)? {
            Some(commit) => Resume::After { entry, commit },
            None => Resume::Rerun(entry),
        })
    }

    /// Batches committed so far.
    pub(super) fn committed(&self) -> u64 {
        match self {
            Resume::Fresh => 0,
            Resume::After { entry, .. } => entry.batch_id + 1,
            Resume::Rerun(entry) => entry.batch_id,
        }
    }
}
