//! The log cleaner's benchmark (`cargo xtask bench compaction` runs it in release): fills a log
//! with keyed records (a fixed key space, so most records are superseded), then
//! 1. appends for a while with no clean running and records each append's latency;
//! 2. appends the same way while one thread cleans the log through the three stages the broker
//!    uses (plan and swap under the log's lock, the heavy middle without it).
//!
//! It prints one JSON line: GB cleaned per CPU-second of the cleaning thread, and append p50/p99
//! without and during the clean. Appends are fsync-free (the broker's default), so the figures
//! are the lock and CPU contention a clean adds, not disk latency.
//!
//! Usage: `clean_bench [MIB] [KEYS]` (default 512 MiB of 1 KiB records over 100 000 keys).
#![allow(clippy::unwrap_used, reason = "a benchmark")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdi_log::cleaner::{CleanerLimits, CompactionConfig, Throttle};
use hdi_log::records::{Codecs, KeyValue, build_keyed_batch};
use hdi_log::{FailPoint, Log, LogConfig};

fn thread_cpu_seconds() -> f64 {
    // utime + stime of this thread, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn batch(keys: u64, seq: &mut u64, value: &[u8]) -> Vec<u8> {
    let names: Vec<String> = (0..16)
        .map(|_| {
            *seq = seq
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            format!("key-{:08}", (*seq >> 33) % keys)
        })
        .collect();
    let records: Vec<KeyValue<'_>> = names
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(value)))
        .collect();
    build_keyed_batch(0, 0, &records)
}

fn no_codec(codec: i16, _: &[u8]) -> Result<Vec<u8>, String> {
    Err(format!("codec {codec}"))
}

/// Appends for `duration` (one 16-record batch every `pause`), answering each append's latency.
fn appends(log: &Mutex<Log>, keys: u64, seq: &mut u64, duration: Duration) -> Vec<Duration> {
    let value = vec![b'v'; 1000];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let mut bytes = batch(keys, seq, &value);
        let at = Instant::now();
        log.lock().unwrap().append(&mut bytes, 0).unwrap();
        latencies.push(at.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    latencies
}

fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(512);
    let keys: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("hdi-clean-bench-{}", std::process::id()));
    let config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(&dir, config).unwrap();
    let log = Arc::new(Mutex::new(log));
    let value = vec![b'v'; 1000];
    let mut seq = 1u64;
    {
        let mut log = log.lock().unwrap();
        while log.size_bytes() < mib << 20 {
            let mut bytes = batch(keys, &mut seq, &value);
            log.append(&mut bytes, 0).unwrap();
        }
        log.roll().unwrap();
    }
    let size = log.lock().unwrap().size_bytes();
    let mut quiet = appends(&log, keys, &mut seq, Duration::from_secs(5));

    let cleaner_log = Arc::clone(&log);
    let cleaner = std::thread::spawn(move || {
        let cpu = thread_cpu_seconds();
        let wall = Instant::now();
        let now = 0;
        let config = CompactionConfig::default();
        let plan = {
            let log = cleaner_log.lock().unwrap();
            let bound = log.next_offset();
            log.plan_clean(&config, bound, now).unwrap().unwrap()
        };
        let limits = CleanerLimits::default();
        let mut throttle = Throttle::new(limits.io_max_bytes_per_second);
        let cleaned = plan
            .run(
                &limits,
                &Codecs {
                    decompress: &no_codec,
                    compress: &no_codec,
                },
                &mut throttle,
                &mut FailPoint::none(),
            )
            .unwrap();
        let stats = cleaner_log
            .lock()
            .unwrap()
            .commit_clean(cleaned, &mut FailPoint::none())
            .unwrap();
        (stats, thread_cpu_seconds() - cpu, wall.elapsed())
    });
    let mut during = Vec::new();
    while !cleaner.is_finished() {
        during.extend(appends(&log, keys, &mut seq, Duration::from_millis(200)));
    }
    let (stats, cpu, wall) = cleaner.join().unwrap();
    let after = log.lock().unwrap().size_bytes();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{{\"log_bytes\":{size},\"keys\":{keys},\"bytes_cleaned\":{},\"bytes_read\":{},\"bytes_written\":{},\"log_bytes_after\":{after},\"clean_cpu_seconds\":{cpu:.2},\"clean_wall_seconds\":{:.2},\"gb_cleaned_per_cpu_second\":{:.3},\"append_p50_ms_quiet\":{:.3},\"append_p99_ms_quiet\":{:.3},\"append_p50_ms_during_clean\":{:.3},\"append_p99_ms_during_clean\":{:.3},\"appends_quiet\":{},\"appends_during_clean\":{}}}",
        stats.bytes_replaced,
        stats.bytes_read,
        stats.bytes_written,
        wall.as_secs_f64(),
        stats.bytes_replaced as f64 / 1e9 / cpu.max(0.01),
        percentile(&mut quiet, 0.5),
        percentile(&mut quiet, 0.99),
        percentile(&mut during, 0.5),
        percentile(&mut during, 0.99),
        quiet.len(),
        during.len(),
    );
}
