//! The log cleaner under real SIGKILLs: a writer process appends keyed records (fsync per
//! batch) and cleans the log every few appends with a throttled cleaner, so that much of its
//! time is spent inside a clean; the test SIGKILLs it at a random moment, reopens the log
//! (recovery finishes or undoes the interrupted swap) and checks it against the model — every
//! acknowledged offset's latest value per key readable, every record read the one written at its
//! offset, offsets going forward — four crashes in a row, each new writer continuing the log.
//! Rounds 0 and 2 kill at a random moment; rounds 1 and 3 wait until the writer's clean has
//! created a file (`.cleaned`, `.swap` or `.deleted`) and kill it then, and the test asserts that
//! at least one reopen found such leftover files and recovery cleared them: a kill mid-clean is
//! proven to have happened, not just hoped for.
//!
//! The writer is this test binary re-run with `HDI_LOG_CLEAN_WRITER=<dir>` and only
//! `cleaner_crash_writer` selected. Records are derived from their offsets, so the model needs
//! only the acknowledged end.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdi_log::cleaner::{CleanerLimits, CompactionConfig};
use hdi_log::records::{self, Codecs, build_keyed_batch};
use hdi_log::{FailPoint, Log, LogConfig};

const ENV: &str = "HDI_LOG_CLEAN_WRITER";
const KEYS: i64 = 40;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        flush_messages: Some(1),
        ..LogConfig::default()
    }
}

fn compaction() -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: 0,
        ..CompactionConfig::default()
    }
}

/// The record written at `offset`: its key, and its value (`None`: a tombstone).
fn record_at(offset: i64) -> (String, Option<String>) {
    let key = format!("key-{}", (offset * 7) % KEYS);
    let value = (offset % 11 != 5).then(|| format!("value-{offset}-{}", "x".repeat(40)));
    (key, value)
}

fn no_codec(codec: i16, _: &[u8]) -> Result<Vec<u8>, String> {
    Err(format!("codec {codec}"))
}

/// The writer: appends and cleans until killed, printing `acked <end>` after each append.
#[test]
fn cleaner_crash_writer() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    let (mut log, _) = Log::open(std::path::Path::new(&dir), config()).unwrap();
    let limits = CleanerLimits {
        io_max_bytes_per_second: 256.0 * 1024.0,
        ..CleanerLimits::default()
    };
    let mut stdout = std::io::stdout().lock();
    for round in 0u64.. {
        let next = log.next_offset();
        let owned: Vec<(String, Option<String>)> = (0..4).map(|i| record_at(next + i)).collect();
        let refs: Vec<records::KeyValue<'_>> = owned
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), v.as_deref().map(str::as_bytes)))
            .collect();
        let mut batch = build_keyed_batch(0, 0, &refs);
        log.append(&mut batch, 0).unwrap();
        writeln!(stdout, "acked {}", log.next_offset()).unwrap();
        stdout.flush().unwrap();
        if round % 8 == 7 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let bound = log.next_offset();
            log.clean(
                &compaction(),
                bound,
                now,
                &limits,
                &Codecs {
                    decompress: &no_codec,
                    compress: &no_codec,
                },
                &mut FailPoint::none(),
            )
            .unwrap();
            writeln!(stdout, "cleaned").unwrap();
        }
    }
}

/// Whether `dir` holds a clean's files: an unfinished `.cleaned` file, or a swap under way.
fn clean_in_progress(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            [".cleaned", ".swap", ".deleted"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
    })
}

/// `(offset, key, value)` of every record readable, offsets checked to go forward.
fn read_all(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out: Vec<(i64, String, Option<String>)> = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.next_offset() {
        let bytes = log.read(next, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = hdi_log::batch::validate(&bytes[at..], usize::MAX).unwrap();
            let body = records::records_bytes(&bytes[at..], &header, &no_codec).unwrap();
            for r in records::parse_records(&body, &header).unwrap() {
                assert!(
                    out.last().is_none_or(|(o, ..)| *o < r.offset),
                    "offsets go forward"
                );
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                out.push((r.offset, text(r.key.unwrap()), r.value.map(text)));
            }
            next = header.last_offset() + 1;
            at += header.size();
        }
    }
    out
}

#[test]
fn cleaner_sigkill_mid_clean_loses_nothing() {
    if std::env::var_os(ENV).is_some() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("log");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut acked = 0i64;
    let mut completed = 0;
    let mut leftovers_recovered = 0;
    for round in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cleaner_crash_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = Duration::from_millis(400 + seed % 800);
        // Rounds 1 and 3 kill as soon as a clean's file exists (20 s at most).
        let targeted = round % 2 == 1;
        let deadline = if targeted {
            Duration::from_secs(20)
        } else {
            kill_after
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let started = Instant::now();
        let mut cleans = 0;
        while started.elapsed() < deadline {
            if targeted && clean_in_progress(&dir) {
                break;
            }
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(if targeted { 1 } else { 5 })) {
                if let Some(end) = line.strip_prefix("acked ") {
                    acked = end.parse().unwrap();
                } else {
                    cleans += 1;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(line) = rx.try_recv() {
            if let Some(end) = line.strip_prefix("acked ") {
                acked = end.parse().unwrap();
            }
        }
        let leftovers = clean_in_progress(&dir);
        let (log, recovery) = Log::open(&dir, config()).unwrap();
        completed += recovery.cleaner.len();
        if leftovers {
            assert!(
                !recovery.cleaner.is_empty(),
                "round {round}: a clean's files were left, recovery did nothing"
            );
            assert!(
                !clean_in_progress(&dir),
                "round {round}: recovery left files"
            );
            leftovers_recovered += 1;
        }
        let end = log.next_offset();
        assert!(
            end >= acked,
            "round {round}: acked up to {acked}, log ends at {end}"
        );
        let read = read_all(&log);
        let mut latest_log: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        for (offset, key, value) in &read {
            let (k, v) = record_at(*offset);
            assert_eq!((&k, &v), (key, value), "round {round}: record at {offset}");
            latest_log.insert(key.clone(), (*offset, value.clone()));
        }
        let mut latest_model: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        for offset in 0..end {
            let (k, v) = record_at(offset);
            latest_model.insert(k, (offset, v));
        }
        for (key, (offset, value)) in &latest_model {
            match (value, latest_log.get(key)) {
                (Some(_), Some((o, _))) => assert_eq!(o, offset, "round {round}: {key}"),
                (Some(_), None) => panic!("round {round}: {key} lost its value at {offset}"),
                (None, Some((o, _))) => assert_eq!(o, offset, "round {round}: {key} resurrected"),
                (None, None) => {}
            }
        }
        assert!(
            read.len() < end as usize || end < 64,
            "round {round}: nothing was compacted"
        );
        eprintln!(
            "round {round}: killed after {:?} ({cleans} cleans, targeted {targeted}, mid-clean {leftovers}), end {end}, {} records left, recovery: {:?}",
            started.elapsed(),
            read.len(),
            recovery.cleaner
        );
    }
    eprintln!("{completed} recovery actions (interrupted cleans undone or finished)");
    assert!(
        leftovers_recovered > 0,
        "no SIGKILL landed mid-clean: no reopen found a clean's files"
    );
}
