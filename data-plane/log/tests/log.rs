//! The partition log against real files: append and read, segment roll, recovery from torn and
//! corrupt tails, DeleteRecords, retention and time lookups.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Dir;
use hdi_log::batch::{build_batch, parse_header};
use hdi_log::{Log, LogConfig, LogError};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:06}").into_bytes()
}

/// Appends `batches` batches of 3 records each, timestamps 1000 * batch index.
fn fill(log: &mut Log, batches: usize) {
    for b in 0..batches {
        let values: Vec<Vec<u8>> = (0..3).map(|r| value(b * 3 + r)).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let mut batch = build_batch(0, 1000 * b as i64, &refs);
        let info = log.append(&mut batch, 5).unwrap();
        assert_eq!(info.first_offset, 3 * b as i64);
        assert_eq!(info.last_offset, 3 * b as i64 + 2);
    }
}

/// Reads everything from `from` and returns the base offsets of the batches read, in order.
fn read_all(log: &Log, from: i64) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = from;
    while next < log.next_offset() {
        let bytes = log.read(next, 500).unwrap();
        assert!(!bytes.is_empty());
        let mut at = 0;
        while at < bytes.len() {
            let header = hdi_log::batch::validate(&bytes[at..], 1 << 20).unwrap();
            assert_eq!(header.partition_leader_epoch, 5);
            offsets.push(header.base_offset);
            next = header.last_offset() + 1;
            at += header.size();
        }
    }
    offsets
}

/// Checks the offset `log` finds for each timestamp of `cases`.
#[track_caller]
fn assert_offsets_for_timestamps(log: &Log, cases: &[(i64, Option<i64>)]) {
    for &(timestamp, expected) in cases {
        assert_eq!(
            log.offset_for_timestamp(timestamp)
                .unwrap()
                .map(|(offset, _)| offset),
            expected,
            "timestamp {timestamp}"
        );
    }
}

#[test]
fn appends_roll_segments_and_read_back_across_them() {
    let dir = Dir::new("roundtrip");
    let (mut log, recovery) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(recovery, Default::default());
    fill(&mut log, 100);
    assert_eq!(log.next_offset(), 300);
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    let expected: Vec<i64> = (0..100).map(|b| b * 3).collect();
    assert_eq!(read_all(&log, 0), expected);
    // A read from the middle of a batch starts at that batch.
    let bytes = log.read(151, 1).unwrap();
    let header = parse_header(&bytes, 1 << 20).unwrap();
    assert_eq!((header.base_offset, bytes.len()), (150, header.size()));
    // At the end: nothing; past it: out of range.
    assert!(log.read(300, 1000).unwrap().is_empty());
    assert!(matches!(
        log.read(301, 1000),
        Err(LogError::OffsetOutOfRange {
            offset: 301,
            start: 0,
            end: 300
        })
    ));

    // Reopened, the log has the same content and keeps counting.
    drop(log);
    let (mut log, recovery) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(recovery, Default::default());
    assert_eq!(read_all(&log, 0), expected);
    fill_one(&mut log, 300);
}

fn fill_one(log: &mut Log, expected_offset: i64) {
    let mut batch = build_batch(0, 0, &[b"one more"]);
    assert_eq!(
        log.append(&mut batch, 5).unwrap().first_offset,
        expected_offset
    );
}

fn last_segment(dir: &PathBuf) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

#[test]
fn recovery_truncates_a_torn_tail_to_the_last_whole_batch() {
    let dir = Dir::new("torn");
    let (mut log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    fill(&mut log, 10);
    drop(log);
    // A crash mid-write: half of the next batch reached the file.
    let segment = last_segment(&dir.0);
    let whole = std::fs::metadata(&segment).unwrap().len();
    let next = build_batch(30, 0, &[b"torn", b"write"]);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&next[..next.len() / 2]);
    std::fs::write(&segment, &bytes).unwrap();

    let (mut log, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(recovery.truncated.len(), 1, "{recovery:?}");
    assert_eq!(recovery.truncated[0].1, whole);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
    assert_eq!(log.next_offset(), 30);
    assert_eq!(read_all(&log, 0).len(), 10);
    fill_one(&mut log, 30);
}

#[test]
fn recovery_never_serves_a_corrupt_batch() {
    let dir = Dir::new("corrupt");
    let (mut log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    fill(&mut log, 10);
    drop(log);
    // Flip one byte inside the 8th batch's records: its CRC no longer matches.
    let segment = last_segment(&dir.0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let batch_size = parse_header(&bytes, 1 << 20).unwrap().size();
    let at = 7 * batch_size + batch_size - 3;
    bytes[at] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let (log, recovery) = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(recovery.truncated.len(), 1);
    assert!(recovery.truncated[0].2.contains("CRC"), "{recovery:?}");
    assert_eq!(log.next_offset(), 21);
    assert_eq!(read_all(&log, 0), [0, 3, 6, 9, 12, 15, 18]);
}

#[test]
fn a_bad_batch_rejects_the_whole_request_and_writes_nothing() {
    let dir = Dir::new("reject");
    let (mut log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    fill(&mut log, 2);
    let size = log.size_bytes();
    let mut request = build_batch(0, 0, &[b"good"]);
    let mut bad = build_batch(0, 0, &[b"bad"]);
    *bad.last_mut().unwrap() ^= 1;
    request.extend_from_slice(&bad);
    let error = log.append(&mut request, 5).unwrap_err();
    assert!(
        matches!(error, LogError::InvalidBatch { index: 1, .. }),
        "{error:?}"
    );
    assert!(matches!(log.append(&mut [], 5), Err(LogError::Empty)));
    assert_eq!((log.size_bytes(), log.next_offset()), (size, 6));
}

#[test]
fn delete_records_moves_the_start_offset_durably() {
    let dir = Dir::new("delete-records");
    let (mut log, _) = Log::open(&dir.0, small_segments()).unwrap();
    fill(&mut log, 100);
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(150).unwrap(), 150);
    assert!(log.segment_count() < segments);
    assert!(matches!(
        log.read(149, 100),
        Err(LogError::OffsetOutOfRange { start: 150, .. })
    ));
    assert_eq!(read_all(&log, 150).first(), Some(&150));
    assert!(log.delete_records_before(301).is_err());
    drop(log);
    let (log, _) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(log.log_start_offset(), 150);
    assert_eq!(log.next_offset(), 300);
}

#[test]
fn retention_deletes_old_and_excess_segments_but_never_the_active_one() {
    let dir = Dir::new("retention");
    let config = LogConfig {
        retention_bytes: Some(5_000),
        retention_ms: None,
        ..small_segments()
    };
    let (mut log, _) = Log::open(&dir.0, config).unwrap();
    fill(&mut log, 100);
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 5_000 + 2_000, "{}", log.size_bytes());
    assert!(log.log_start_offset() > 0);
    assert_eq!(read_all(&log, log.log_start_offset()).last(), Some(&297));

    let dir = Dir::new("retention-time");
    let config = LogConfig {
        retention_ms: Some(Duration::from_millis(10_000)),
        ..small_segments()
    };
    let (mut log, _) = Log::open(&dir.0, config).unwrap();
    fill(&mut log, 100); // timestamps 0 ..= 99_000
    log.apply_retention(100_000).unwrap();
    // Segments whose newest record is older than 90_000 are gone; the rest remain.
    let first = read_all(&log, log.log_start_offset())[0];
    assert!(
        first > 0 && first <= 90 * 3,
        "first remaining offset {first}"
    );
    log.apply_retention(i64::MAX / 2).unwrap();
    assert_eq!(log.segment_count(), 1, "the active segment stays");
}

#[test]
fn finds_offsets_by_timestamp_even_out_of_order() {
    let dir = Dir::new("timestamps-disorder");
    let config = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir.0, config).unwrap();
    // Batch timestamps (max): 100, 5_000, 200, 300 — the second batch jumps ahead.
    for (i, ts) in [100i64, 5_000, 200, 300].into_iter().enumerate() {
        let mut batch = build_batch(0, ts, &[b"x"]);
        assert_eq!(log.append(&mut batch, 0).unwrap().first_offset, i as i64);
    }
    let cases = [
        (150, Some(1)),
        (4_000, Some(1)),
        (5_000, Some(1)),
        (250, Some(1)),
        (5_001, None),
    ];
    assert_offsets_for_timestamps(&log, &cases);
}

#[test]
fn stored_batches_stay_readable_when_the_size_limit_is_lowered() {
    let dir = Dir::new("lowered-limit");
    let (mut log, _) = Log::open(&dir.0, LogConfig::default()).unwrap();
    fill(&mut log, 10);
    drop(log);
    let config = LogConfig {
        max_batch_bytes: 100,
        ..LogConfig::default()
    };
    let (mut log, recovery) = Log::open(&dir.0, config).unwrap();
    assert_eq!(recovery, Default::default());
    assert_eq!(read_all(&log, 0).len(), 10);
    // New batches over the limit are refused.
    let mut big = build_batch(0, 0, &[&[0u8; 200]]);
    assert!(matches!(
        log.append(&mut big, 5),
        Err(LogError::InvalidBatch { .. })
    ));
}

#[test]
fn finds_offsets_by_timestamp() {
    let dir = Dir::new("timestamps");
    let (mut log, _) = Log::open(&dir.0, small_segments()).unwrap();
    fill(&mut log, 50); // batch b has timestamps 1000b ..= 1000b + 2
    let cases = [
        (0, Some(0)),
        (1000, Some(3)),
        (1001, Some(3)),
        (1003, Some(6)),
        (49_000, Some(147)),
        (49_003, None),
    ];
    assert_offsets_for_timestamps(&log, &cases);
}

#[test]
fn flush_ms_syncs_only_when_due() {
    let dir = Dir::new("flush-ms");
    let config = LogConfig {
        flush_interval: Some(Duration::from_millis(50)),
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir.0, config).unwrap();
    assert!(!log.flush_if_due().unwrap(), "nothing to sync");
    fill(&mut log, 1);
    assert!(!log.flush_if_due().unwrap(), "not old enough yet");
    std::thread::sleep(Duration::from_millis(60));
    assert!(log.flush_if_due().unwrap());
    assert!(!log.flush_if_due().unwrap(), "already synced");
}
