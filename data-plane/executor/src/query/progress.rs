//! What a running query shows: each batch's progress (mirroring Spark's
//! `StreamingQueryProgress`), the query's state and last error, and the [`QueryHandle`] the
//! job API reads them through.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::Sink;

/// Progress entries kept per query.
const PROGRESS_KEPT: usize = 100;

/// Durations of a batch's phases, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// The whole batch.
    pub trigger_execution: u64,
    /// Finding the sources' latest offsets.
    pub latest_offset: u64,
    /// Writing the offset log.
    pub wal_commit: u64,
    /// Running the tasks (reading, decoding, task queries), wall clock.
    pub execution: u64,
    /// Of which reading the source (sum over tasks).
    pub get_batch: u64,
    /// Merging partials into state and emitting.
    pub state_merge: u64,
    /// The final query.
    pub query_planning: u64,
    /// Writing the sink.
    pub add_batch: u64,
    /// State snapshot and commit.
    pub commit: u64,
}

/// Event-time figures of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTime {
    /// Smallest event time in the batch (RFC 3339).
    pub min: Option<String>,
    /// Largest event time in the batch.
    pub max: Option<String>,
    /// The watermark after the batch.
    pub watermark: Option<String>,
}

/// The state operator's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateOperator {
    /// Rows (groups, windows, seen keys) held.
    pub num_rows_total: u64,
    /// Rows the batch created or changed.
    pub num_rows_updated: u64,
    /// Approximate bytes held.
    pub memory_used_bytes: u64,
    /// Late rows dropped.
    pub num_rows_dropped_by_watermark: u64,
    /// State partitions.
    pub num_state_partitions: u32,
    /// Which worker owns which state partitions in this batch.
    pub partition_owners: BTreeMap<String, Vec<u32>>,
}

/// The source's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceProgress {
    /// `kafka[topic]` or `files[dir]`.
    pub description: String,
    /// Where the batch started (per partition, or files taken).
    pub start_offset: BTreeMap<String, i64>,
    /// Where it ended.
    pub end_offset: BTreeMap<String, i64>,
    /// Records read.
    pub num_input_rows: u64,
    /// Records that did not decode.
    pub malformed_rows: u64,
}

/// The sink's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkProgress {
    /// `kafka[topic]`, `files[dir]`, `memory`, `blackhole`.
    pub description: String,
    /// Rows written.
    pub num_output_rows: u64,
}

/// One batch's progress, like Spark's `StreamingQueryProgress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The job.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The batch.
    pub batch_id: u64,
    /// When the batch started (RFC 3339).
    pub timestamp: String,
    /// Records read.
    pub num_input_rows: u64,
    /// Records read per second of wall clock since the previous batch started.
    pub input_rows_per_second: f64,
    /// Records processed per second of this batch's duration.
    pub processed_rows_per_second: f64,
    /// Phase durations.
    pub duration_ms: Durations,
    /// Event times.
    pub event_time: EventTime,
    /// The state operator (one).
    pub state_operators: Vec<StateOperator>,
    /// The source (one).
    pub sources: Vec<SourceProgress>,
    /// The sink.
    pub sink: SinkProgress,
}

/// A query's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryState {
    /// Running batches.
    Running,
    /// Stopped on request.
    Stopped,
    /// Stopped by an error it cannot get past.
    Failed,
    /// An available-now query that processed everything.
    Completed,
}

/// What the job API shows of a running query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryStatus {
    /// State.
    pub state: QueryState,
    /// The last error (the query retries transient ones).
    pub error: Option<ErrorView>,
    /// Batches committed since the job was created.
    pub batches_committed: u64,
}

/// An error shown in a status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorView {
    /// Stable code.
    pub code: String,
    /// For people.
    pub detail: String,
}

/// Shared between a running query and the job API.
#[derive(Debug)]
pub struct QueryHandle {
    /// Status.
    pub status: Mutex<QueryStatus>,
    /// Recent progress, oldest first.
    pub progress: Mutex<VecDeque<Progress>>,
    /// The sink (for previews).
    pub sink: Mutex<Option<Arc<Sink>>>,
}

impl Default for QueryHandle {
    fn default() -> QueryHandle {
        QueryHandle {
            status: Mutex::new(QueryStatus {
                state: QueryState::Running,
                error: None,
                batches_committed: 0,
            }),
            progress: Mutex::new(VecDeque::new()),
            sink: Mutex::new(None),
        }
    }
}

impl QueryHandle {
    pub(super) fn set_error(&self, code: &str, detail: String) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.error = Some(ErrorView {
            code: code.into(),
            detail,
        });
    }

    pub(super) fn set_state(&self, state: QueryState) {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state = state;
    }

    /// Records a committed batch: its progress, the batch count, and no error any more.
    pub(super) fn committed(&self, progress: &Progress) {
        {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            status.batches_committed = progress.batch_id + 1;
            status.error = None;
        }
        let mut recent = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back(progress.clone());
        while recent.len() > PROGRESS_KEPT {
            recent.pop_front();
        }
    }

    /// Replaces the newest progress entry (with the figures only the caller of a batch knows).
    pub(super) fn amend_last(&self, progress: Progress) {
        let mut recent = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = recent.back_mut() {
            *last = progress;
        }
    }

    /// The last progress entries (oldest first).
    pub fn recent(&self, limit: usize) -> Vec<Progress> {
        let progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress
            .iter()
            .skip(progress.len().saturating_sub(limit))
            .cloned()
            .collect()
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC), to the millisecond:
/// `2026-11-26T10:00:00.123Z`. Times beyond chrono's range (some 262 000 years from 1970) show
/// as its first or last instant.
pub fn rfc3339_ms(ms: i64) -> String {
    let time = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    // Spelled out rather than `%Y`, which signs years past 9999.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.timestamp_subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_687_200_123), "2026-11-26T10:00:00.123Z");
        // As the hand-written formatter chrono replaced wrote them.
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-62_135_596_800_001), "0000-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_ms(-1_000_000_000_000_000),
            "-29719-04-05T22:13:20.000Z"
        );
    }
}
