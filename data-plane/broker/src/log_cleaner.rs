//! The log cleaner task (Kafka's `LogCleaner` with `log.cleaner.threads=1`): every
//! `log.cleaner.backoff.ms` it picks the dirtiest compacted log among this broker's replicas —
//! leaders and followers alike, each cleans its own copy, as in Kafka — and compacts it with
//! `hdi_log::cleaner`, one log at a time on one blocking thread, its I/O bounded by
//! `log.cleaner.io.max.bytes.per.second`, then looks again at once while logs are due.
//!
//! Which log: one forced by `max.compaction.lag.ms` first, else the highest dirty ratio at or
//! above its `min.cleanable.dirty.ratio` (Kafka's `LogCleanerManager.grabFilthiestCompactedLog`).
//! It never touches what the log layer keeps out: the active segment, offsets at or past the
//! last stable offset, segments younger than `min.compaction.lag.ms`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdi_log::cleaner::Throttle;

use crate::broker::Broker;
use crate::replica::Replica;

/// Runs the cleaner until dropped.
pub async fn run(broker: Arc<Broker>) {
    let settings = broker.config.cleaner.clone();
    if !settings.enabled {
        return;
    }
    let throttle = Arc::new(std::sync::Mutex::new(Throttle::new(
        settings.limits.io_max_bytes_per_second,
    )));
    loop {
        let broker = Arc::clone(&broker);
        let throttle = Arc::clone(&throttle);
        let cleaned = tokio::task::spawn_blocking(move || {
            let mut throttle = crate::state::lock(&throttle);
            clean_dirtiest(&broker, &mut throttle)
        })
        .await
        .unwrap_or(false);
        if !cleaned {
            tokio::time::sleep(settings.backoff).await;
        }
    }
}

/// The replica to clean now, if any (see the module docs).
fn dirtiest(broker: &Broker, now_ms: i64) -> Option<Arc<Replica>> {
    let mut best: Option<(bool, f64, Arc<Replica>)> = None;
    let mut max_ratio = 0.0f64;
    for replica in broker.replicas.all() {
        let Some((cleanable, config)) = replica.cleanable(now_ms) else {
            continue;
        };
        let ratio = cleanable.dirty_ratio();
        max_ratio = max_ratio.max(ratio);
        if !cleanable.due(&config) {
            continue;
        }
        let rank = (cleanable.max_lag_exceeded, ratio);
        if best
            .as_ref()
            .is_none_or(|(forced, r, _)| rank > (*forced, *r))
        {
            best = Some((rank.0, rank.1, replica));
        }
    }
    broker
        .replicas
        .cleaner_stats
        .max_dirty_ratio_permille
        .store((max_ratio * 1000.0) as u64, Ordering::Relaxed);
    best.map(|(_, _, replica)| replica)
}

/// Cleans the dirtiest log once; whether one was cleaned.
fn clean_dirtiest(broker: &Broker, throttle: &mut Throttle) -> bool {
    let now_ms = now_ms();
    let Some(replica) = dirtiest(broker, now_ms) else {
        return false;
    };
    let started = std::time::Instant::now();
    match replica.clean(&broker.config.cleaner.limits, throttle, now_ms) {
        Ok(Some(stats)) => {
            let totals = &broker.replicas.cleaner_stats;
            totals
                .bytes_read
                .fetch_add(stats.bytes_read, Ordering::Relaxed);
            totals
                .bytes_written
                .fetch_add(stats.bytes_written, Ordering::Relaxed);
            totals.cleans.fetch_add(1, Ordering::Relaxed);
            totals.last_clean_ms.store(now_ms, Ordering::Relaxed);
            tracing::info!(
                topic = %replica.topic,
                partition = replica.index,
                read = stats.bytes_read,
                written = stats.bytes_written,
                removed = stats.records_removed,
                aborted_removed = stats.aborted_removed,
                markers_removed = stats.markers_removed,
                tombstones_removed = stats.tombstones_removed,
                up_to = stats.cleaned_up_to,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cleaned log"
            );
            true
        }
        Ok(None) => false,
        Err(error) => {
            tracing::error!(topic = %replica.topic, partition = replica.index, error = %error.message, "log clean failed");
            false
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
