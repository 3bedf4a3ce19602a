//! What a running query shows: each batch's progress (mirroring Spark's
//! `StreamingQueryProgress`), the query's state and last error, and the [`QueryHandle`] the
//! job API reads them through.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::Sink;
pub use hdi_executor_api::{
    Durations, ErrorView, EventTime, Progress, QueryState, SinkProgress, SourceProgress,
    StateOperator,
};

/// Progress entries kept per query.
const PROGRESS_KEPT: usize = 100;

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

/// Shared between a running query and the job API.
#[derive(Debug)]
pub struct QueryHandle {
    /// Status.
    pub status: Mutex<QueryStatus>,
    /// Recent progress, oldest first.
    pub progress: Mutex<VecDeque<Progress>>,
    /// The sink (for previews).
    pub sink: Mutex<Option<Arc<Sink>>>,
    /// The driver's metrics, which count each committed batch (none in `hdi-executor run`).
    pub metrics: Option<Arc<crate::metrics::ExecutorMetrics>>,
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
            metrics: None,
        }
    }
}

impl QueryHandle {
    /// A handle whose committed batches are counted in `metrics`.
    pub fn counted(metrics: Arc<crate::metrics::ExecutorMetrics>) -> QueryHandle {
        QueryHandle {
            metrics: Some(metrics),
            ..QueryHandle::default()
        }
    }

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
        if let Some(metrics) = &self.metrics {
            let now_ms = Utc::now().timestamp_millis();
            metrics.batch(&progress.id, &progress.name, progress, now_ms);
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
