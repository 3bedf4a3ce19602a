//! `cargo xtask bench broker --compaction`, the broker half: produce latency of a real release
//! `hdi-broker` with and without its log cleaner running, and GB cleaned per CPU-second of the
//! broker process during that clean (the storage-level half is hdi-log's `clean_bench`).
//!
//! One data directory, three windows of the same load — `hdi-kafka-perf produce` of 100 B
//! records, acks=all, at a fixed offered rate, to the 1-partition topic `latency`
//! (`cleanup.policy=delete`):
//! 1. **before**: the broker runs with `--log-cleaner-enable false` while the compacted topic
//!    `dirty` (1 partition, small `segment.bytes`) is filled with `--compaction-mib` MiB of 1000 B
//!    values over 100 000 keys, then the window runs: nothing can clean.
//! 2. **during**: the broker is restarted on the same directory with the cleaner on, at
//!    `--log-cleaner-io-max-bytes-per-second` (the bench's `--compaction-cleaner-io`: unthrottled,
//!    the broker's default, a 512 MiB clean takes about a second, too short for a latency
//!    window) and `--log-cleaner-backoff 1s` (so the clean starts within a second). The window
//!    starts once the cleaner metrics show it has looked (`max-dirty-percent` ≥ 50 and no clean
//!    ended), after a 2 s warm-up; it counts only if the clean spanned it: no clean ended by the
//!    window's end (`time-since-last-run-ms` still -1), and the clean's start (from
//!    `time-since-last-run-ms`, which counts from a clean's start, once it has ended) came
//!    before the window's; its end is that plus the `elapsed_ms` of the broker's `cleaned log`
//!    line. The clean's last step, the swap under the log's lock, usually falls after the window
//!    (hdi-log's `clean_bench` times appends across it).
//! 3. **after**: the same process once the clean has ended, its read/written byte counters
//!    unchanged across the window (no second clean).
//!
//! GB cleaned is the bytes of `dirty`'s closed segments before the clean (what the clean
//! covers); CPU is the broker process's (`/proc/<pid>/stat`) from the first scrape that saw the
//! clean under way to the first that saw it ended, shown gross and net of the produce load's
//! own CPU (measured in window 1).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{cpu_seconds, free_port, perf};
use crate::util::{http_get, wait_for};

/// What `--compaction` measures through the network.
pub(crate) struct Options {
    /// Bytes of values in the compacted topic, in MiB.
    pub(crate) mib: u64,
    /// Offered produce rate of the latency windows, records/s.
    pub(crate) rate: u64,
    /// Length of each latency window.
    pub(crate) seconds: u64,
    /// The broker's `--log-cleaner-io-max-bytes-per-second` (0: unlimited, its default).
    pub(crate) cleaner_io: u64,
}

const KEYS: u64 = 100_000;
const VALUE_BYTES: u64 = 1000;
const SEGMENT_BYTES: u64 = 8 << 20;

/// What the clean window measured.
struct Measured {
    during: Window,
    after: Window,
    ended: CleanerMetrics,
    clean_cpu_s: f64,
    clean_seen_s: f64,
    clean_s: f64,
    lead_s: f64,
    trail_s: f64,
}

/// One latency window's figures.
struct Window {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    records_per_s: f64,
    broker_cpu_s: f64,
}

/// The cleaner's metrics at one scrape.
#[derive(Clone, Copy, Debug)]
struct CleanerMetrics {
    max_dirty_percent: f64,
    since_last_run_ms: f64,
    read_bytes: f64,
    written_bytes: f64,
}

/// Runs the three windows and prints the table.
pub(crate) fn run(release: &Path, options: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hdi-bench-compaction-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run_in(release, options, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(release: &Path, options: &Options, dir: &Path) -> anyhow::Result<()> {
    let port = free_port()?;
    let metrics_port = free_port()?;
    let bootstrap = format!("127.0.0.1:{port}");
    let metrics: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    let latency_records = (options.rate * options.seconds).to_string();
    let rate = options.rate.to_string();
    let window = |pid: u32| -> anyhow::Result<Window> {
        let cpu = cpu_seconds(pid)?;
        let figures = perf(
            release,
            &bootstrap,
            &[
                "produce",
                "--topic",
                "latency",
                "--records",
                &latency_records,
                "--record-size",
                "100",
                "--acks",
                "all",
                "--rate",
                &rate,
            ],
        )?;
        let number = |name: &str| figures[name].as_f64().unwrap_or(0.0);
        Ok(Window {
            p50_ms: number("p50_ms"),
            p99_ms: number("p99_ms"),
            p999_ms: number("p999_ms"),
            records_per_s: number("records_per_s"),
            broker_cpu_s: cpu_seconds(pid)? - cpu,
        })
    };
    // A short unmeasured window first, so connections and page cache are warm in each process.
    let warm_up = || -> anyhow::Result<()> {
        let records = (options.rate * 2).to_string();
        perf(
            release,
            &bootstrap,
            &[
                "produce",
                "--topic",
                "latency",
                "--records",
                &records,
                "--record-size",
                "100",
                "--acks",
                "all",
                "--rate",
                &rate,
            ],
        )
        .map(|_| ())
        .context("warm-up")
    };

    // 1. Fill with the cleaner off, then the window with nothing able to clean.
    let cleaner_off = ["--log-cleaner-enable".to_owned(), "false".to_owned()];
    let mut broker = start_broker(release, dir, port, metrics_port, &cleaner_off)?;
    let before = (|| -> anyhow::Result<(Window, u64, f64)> {
        let segment = format!("segment.bytes={SEGMENT_BYTES}");
        perf(
            release,
            &bootstrap,
            &[
                "create-topic",
                "--topic",
                "dirty",
                "--config",
                "cleanup.policy=compact",
                "--config",
                &segment,
            ],
        )?;
        perf(release, &bootstrap, &["create-topic", "--topic", "latency"])?;
        let records = (options.mib << 20) / VALUE_BYTES;
        eprintln!(
            "xtask bench: filling compacted topic `dirty` with {records} records of {VALUE_BYTES} B over {KEYS} keys"
        );
        let started = Instant::now();
        perf(
            release,
            &bootstrap,
            &[
                "produce",
                "--topic",
                "dirty",
                "--records",
                &records.to_string(),
                "--record-size",
                &VALUE_BYTES.to_string(),
                "--keys",
                &KEYS.to_string(),
                "--acks",
                "1",
            ],
        )?;
        let fill_s = started.elapsed().as_secs_f64();
        warm_up()?;
        eprintln!("xtask bench: window 1 (cleaner off)");
        let before = window(broker.id())?;
        let idle = scrape(metrics)?;
        if idle.since_last_run_ms >= 0.0 || idle.read_bytes > 0.0 {
            bail!("the cleaner ran although it is off: {idle:?}");
        }
        Ok((before, records, fill_s))
    })();
    stop(&mut broker);
    let (before, records, fill_s) = before?;

    // The closed segments of `dirty`: what the clean covers.
    let (cleaned_bytes, segments) = closed_segment_bytes(&dir.join("data"))?;

    // 2. The cleaner on: the window while its clean runs.
    let cleaner_on = [
        "--log-cleaner-enable".to_owned(),
        "true".to_owned(),
        "--log-cleaner-backoff".to_owned(),
        "1s".to_owned(),
        "--log-cleaner-io-max-bytes-per-second".to_owned(),
        options.cleaner_io.to_string(),
    ];
    let mut broker = start_broker(release, dir, port, metrics_port, &cleaner_on)?;
    let pid = broker.id();
    let measured = (|| -> anyhow::Result<_> {
        let clean_seen = wait_for(
            "the cleaner to look at `dirty`",
            Duration::from_secs(120),
            || {
                scrape(metrics)
                    .ok()
                    .filter(|m| m.max_dirty_percent >= 50.0 && m.since_last_run_ms < 0.0)
                    .map(|_| Instant::now())
            },
        )?;
        let cpu_start = cpu_seconds(pid)?;
        warm_up()?;
        let window_start_wall = unix_seconds();
        eprintln!("xtask bench: window 2 (clean running)");
        let during = window(pid)?;
        let window_end_wall = unix_seconds();
        let at_end = scrape(metrics)?;
        if at_end.since_last_run_ms >= 0.0 {
            bail!(
                "the clean ended {:.1} s before window 2 did (the window is {} s): \
                 clean a bigger log (--compaction-mib) or throttle it more (--compaction-cleaner-io)",
                at_end.since_last_run_ms / 1e3,
                options.seconds
            );
        }
        eprintln!("xtask bench: waiting for the clean to end");
        // `time-since-last-run-ms` counts from the start of the last clean (the broker stores
        // the time it picked the log).
        let (ended, cpu_end, clean_start_wall) =
            wait_for("the clean to end", Duration::from_secs(3600), || {
                let cpu = cpu_seconds(pid).ok()?;
                let now = unix_seconds();
                scrape(metrics)
                    .ok()
                    .filter(|m| m.since_last_run_ms >= 0.0)
                    .map(|m| (m, cpu, now - m.since_last_run_ms / 1e3))
            })?;
        let clean_wall_s = clean_seen.elapsed().as_secs_f64();
        let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
        let clean_s = clean_elapsed_seconds(&log).context("no `cleaned log` line of `dirty`")?;
        let clean_end_wall = clean_start_wall + clean_s;
        if clean_start_wall > window_start_wall {
            bail!(
                "the clean started {:.1} s after window 2 did",
                clean_start_wall - window_start_wall
            );
        }
        std::thread::sleep(Duration::from_secs(2));
        warm_up()?;
        eprintln!("xtask bench: window 3 (after the clean)");
        let idle = scrape(metrics)?;
        let after = window(pid)?;
        let idle_end = scrape(metrics)?;
        if idle_end.read_bytes != idle.read_bytes || idle_end.max_dirty_percent >= 50.0 {
            bail!("the cleaner worked during window 3: {idle:?} then {idle_end:?}");
        }
        Ok(Measured {
            during,
            after,
            ended,
            clean_cpu_s: cpu_end - cpu_start,
            clean_seen_s: clean_wall_s,
            clean_s,
            lead_s: window_start_wall - clean_start_wall,
            trail_s: clean_end_wall - window_end_wall,
        })
    })();
    stop(&mut broker);
    let Measured {
        during,
        after,
        ended,
        clean_cpu_s,
        clean_seen_s,
        clean_s,
        lead_s,
        trail_s,
    } = measured.with_context(|| crate::util::tail(&dir.join("broker.log"), 20))?;

    // Net of the produce load: window 1's broker CPU per second of load, for every second of
    // load that overlapped the clean (two warm-ups and window 2).
    let load_cpu_per_s = before.broker_cpu_s / options.seconds as f64;
    let load_s = (options.seconds + 2) as f64;
    let net_cpu_s = (clean_cpu_s - load_cpu_per_s * load_s).max(0.01);
    let gb = cleaned_bytes as f64 / 1e9;
    let cleaner_io = match options.cleaner_io {
        0 => "0 (unlimited, the broker's default)".to_owned(),
        b => format!("{b} B/s ({:.0} MiB/s)", b as f64 / (1 << 20) as f64),
    };

    println!(
        "\nhdi-broker compaction: produce latency with and without a clean (one release broker, hdi-kafka-perf on librdkafka)"
    );
    println!(
        "compacted topic `dirty`: {records} records of {VALUE_BYTES} B over {KEYS} keys in {fill_s:.1} s, segment.bytes={SEGMENT_BYTES}; \
         {segments} closed segments, {:.0} MiB cleaned; log.cleaner.io.max.bytes.per.second: {cleaner_io}",
        cleaned_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "load: {} records/s of 100 B, acks=all, to topic `latency` (1 partition), {} s per window",
        options.rate, options.seconds
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>11} {:>13}",
        "window", "p50 ms", "p99 ms", "p99.9 ms", "records/s", "broker CPU s"
    );
    for (name, w) in [
        ("1 no clean (cleaner off)", &before),
        ("2 during the clean", &during),
        ("3 no clean (after it)", &after),
    ] {
        println!(
            "{name:<34} {:>9.2} {:>9.2} {:>9.2} {:>11.0} {:>13.2}",
            w.p50_ms, w.p99_ms, w.p999_ms, w.records_per_s, w.broker_cpu_s
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let p99_ratio = ratio(during.p99_ms, before.p99_ms);
    println!(
        "p99 during / without: {p99_ratio:.2}x (window 1), {:.2}x (window 3){}; p50 {:.2}x, p99.9 {:.2}x (window 1)",
        ratio(during.p99_ms, after.p99_ms),
        if p99_ratio <= 1.2 {
            ""
        } else {
            "  (target: within 1.20x)"
        },
        ratio(during.p50_ms, before.p50_ms),
        ratio(during.p999_ms, before.p999_ms),
    );
    println!(
        "the clean: {clean_s:.1} s (broker log), from {lead_s:.1} s before window 2 began to {trail_s:.1} s after it ended \
         (no clean had ended at the window's end: cleaner metrics); seen for {clean_seen_s:.1} s; read {:.0} MiB, wrote {:.0} MiB",
        ended.read_bytes / (1 << 20) as f64,
        ended.written_bytes / (1 << 20) as f64,
    );
    println!(
        "GB cleaned per CPU-second of the broker process: {:.3} gross ({clean_cpu_s:.2} CPU s), {:.3} net of the produce load ({net_cpu_s:.2} CPU s)",
        gb / clean_cpu_s.max(0.01),
        gb / net_cpu_s,
    );
    Ok(())
}

/// Starts `hdi-broker` on `dir/data` with its metrics on `metrics_port` and the `cleaner`
/// flags. Appends to `dir/broker.log` (without colours, so its lines parse).
fn start_broker(
    release: &Path,
    dir: &Path,
    port: u16,
    metrics_port: u16,
    cleaner: &[String],
) -> anyhow::Result<Child> {
    let mut command = Command::new(release.join("hdi-broker"));
    command
        .args(["--node-id", "1", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(cleaner)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("NO_COLOR", "1");
    crate::bench::spawn_broker(&mut command, dir, port, Duration::from_secs(120))
}

/// Seconds since the Unix epoch, now.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `elapsed_ms` of the broker's `cleaned log` line for topic `dirty`, in seconds (colour
/// codes stripped).
fn clean_elapsed_seconds(log: &str) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| l.contains("cleaned log") && l.contains("dirty"))?;
    let mut plain = String::with_capacity(line.len());
    let mut escape = false;
    for c in line.chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix("elapsed_ms="))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms / 1e3)
}

/// SIGTERM, then SIGKILL after 30 s; the directory stays.
fn stop(child: &mut Child) {
    crate::sys::signal(child.id(), libc::SIGTERM);
    let _ = wait_for("the broker to stop", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The cleaner's gauges from `GET /metrics`.
fn scrape(metrics: SocketAddr) -> anyhow::Result<CleanerMetrics> {
    let (status, body) = http_get(metrics, "/metrics", None)?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    let value = |name: &str| -> anyhow::Result<f64> {
        body.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(name)?;
                rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
            })
            .with_context(|| format!("no {name} in /metrics"))
    };
    Ok(CleanerMetrics {
        max_dirty_percent: value("kafka_log_logcleanermanager_max_dirty_percent")?,
        since_last_run_ms: value("kafka_log_logcleaner_time_since_last_run_ms")?,
        read_bytes: value("hdi_log_cleaner_read_bytes")?,
        written_bytes: value("hdi_log_cleaner_written_bytes")?,
    })
}

/// Bytes and count of the `.log` segment files but the newest (the active one) of the
/// biggest partition under `data/replicas/` (`<topic id>-<partition>`): `dirty`'s.
fn closed_segment_bytes(data: &Path) -> anyhow::Result<(u64, usize)> {
    let mut biggest = (0u64, 0usize);
    for partition in std::fs::read_dir(data.join("replicas"))?.flatten() {
        if !partition.file_type()?.is_dir() {
            continue;
        }
        let mut segments: Vec<(String, u64)> = std::fs::read_dir(partition.path())?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let len = entry.metadata().ok()?.len();
                name.ends_with(".log").then_some((name, len))
            })
            .collect();
        // Zero-padded base offsets: name order is offset order.
        segments.sort();
        segments.pop();
        let bytes = segments.iter().map(|(_, len)| len).sum();
        if bytes > biggest.0 {
            biggest = (bytes, segments.len());
        }
    }
    Ok(biggest)
}
