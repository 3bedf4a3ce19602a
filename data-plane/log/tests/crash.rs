//! Crash safety with real processes: a writer process appends batches (fsync per batch) and prints
//! each acknowledged offset; the test SIGKILLs it at a random moment, reopens the log and checks
//! that every acknowledged record is there, in order, exactly once — three crashes in a row, each
//! new writer continuing where recovery left the log.
//!
//! The writer is this test binary re-run with `HDI_LOG_CRASH_WRITER=<dir>` and only the
//! `crash_writer` test selected.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdi_log::batch::{build_batch, validate};
use hdi_log::{Log, LogConfig};

const ENV: &str = "HDI_LOG_CRASH_WRITER";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        flush_messages: Some(1),
        ..LogConfig::default()
    }
}

/// The writer: appends forever (until killed), printing `acked <last offset>` after each append.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    let (mut log, _) = Log::open(std::path::Path::new(&dir), config()).unwrap();
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = log.next_offset();
        let values: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("record-{}", next + i).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let mut batch = build_batch(0, next, &refs);
        let info = log.append(&mut batch, 1).unwrap();
        use std::io::Write;
        writeln!(stdout, "acked {}", info.last_offset).unwrap();
        stdout.flush().unwrap();
    }
}

/// Every record from 0 to the end, decoded from the uncompressed batches `build_batch` makes.
fn read_values(log: &Log) -> Vec<String> {
    let mut values = Vec::new();
    let mut next = 0;
    while next < log.next_offset() {
        let bytes = log.read(next, 1 << 16).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let header = validate(&bytes[at..], 1 << 20).unwrap();
            // Records of build_batch: value "record-<offset>"; check count and offsets only.
            for i in 0..header.records_count as i64 {
                values.push(format!("record-{}", header.base_offset + i));
            }
            let body = String::from_utf8_lossy(
                &bytes[at + hdi_log::batch::HEADER_SIZE..at + header.size()],
            )
            .into_owned();
            for i in 0..header.records_count as i64 {
                assert!(
                    body.contains(&format!("record-{}", header.base_offset + i)),
                    "batch at {} lacks record {}",
                    header.base_offset,
                    i
                );
            }
            next = header.last_offset() + 1;
            at += header.size();
        }
    }
    values
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
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
    let mut acked_total = -1i64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer",
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
        let kill_after = Duration::from_millis(200 + seed % 400);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(offset) = line.strip_prefix("acked ") {
                    let _ = tx.send(offset.parse::<i64>().unwrap());
                }
            }
        });
        let started = Instant::now();
        let mut last_acked = acked_total;
        while started.elapsed() < kill_after {
            if let Ok(offset) = rx.recv_timeout(Duration::from_millis(10)) {
                last_acked = offset;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(offset) = rx.try_recv() {
            last_acked = offset;
        }
        assert!(
            last_acked > acked_total,
            "round {round}: the writer acknowledged nothing"
        );
        acked_total = last_acked;

        let (log, recovery) = Log::open(&dir, config()).unwrap();
        let values = read_values(&log);
        assert!(
            log.next_offset() > acked_total,
            "round {round}: acked up to {acked_total}, log ends at {} ({recovery:?})",
            log.next_offset()
        );
        let expected: Vec<String> = (0..log.next_offset())
            .map(|o| format!("record-{o}"))
            .collect();
        assert_eq!(values, expected, "round {round}");
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} records acknowledged, all present",
            acked_total + 1
        );
    }
}
