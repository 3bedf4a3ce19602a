//! The follower side of a partition log against real files: appending a leader's batches
//! unchanged, truncating a diverged tail (also across segments and after a reopen), resetting a
//! log that fell behind the leader's start, and the leader-epoch cache behind
//! `OffsetForLeaderEpoch`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::Dir;
use hdi_log::batch::build_batch;
use hdi_log::{Log, LogConfig, LogError, UNDEFINED};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// Appends a 2-record batch in `epoch` (as a leader would); returns its base offset.
fn lead(log: &mut Log, epoch: i32) -> i64 {
    let mut batch = build_batch(0, 1, &[b"aaaaaaaaaa", b"bbbbbbbbbb"]);
    log.append(&mut batch, epoch).unwrap().first_offset
}

/// Copies everything from `leader` at or after `from` into `follower`, as a fetcher does.
fn replicate(leader: &Log, follower: &mut Log) {
    while follower.next_offset() < leader.next_offset() {
        let bytes = leader.read(follower.next_offset(), 300).unwrap();
        follower.append_replicated(&bytes).unwrap();
    }
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte() {
    let (a, b) = (Dir::new("repl-copy-a"), Dir::new("repl-copy-b"));
    let (mut leader, _) = Log::open(&a.0, small_segments()).unwrap();
    let (mut follower, _) = Log::open(&b.0, small_segments()).unwrap();
    for epoch in [0, 0, 0, 2, 2, 7] {
        lead(&mut leader, epoch);
    }
    replicate(&leader, &mut follower);
    assert_eq!(follower.next_offset(), 12);
    assert!(follower.segment_count() > 1);
    assert_eq!(
        follower.read(0, 1 << 20).unwrap(),
        leader.read(0, 1 << 20).unwrap()
    );
    assert_eq!(follower.latest_epoch(), 7);
    // A batch that does not continue the log is refused and writes nothing.
    let stale = leader.read(4, 1 << 20).unwrap();
    assert!(matches!(
        follower.append_replicated(&stale),
        Err(LogError::NotContiguous {
            expected: 12,
            got: 4
        })
    ));
    assert_eq!(follower.next_offset(), 12);
}

#[test]
fn the_epoch_cache_answers_offset_for_leader_epoch_as_kafka_does() {
    let dir = Dir::new("repl-epochs");
    let (mut log, _) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), UNDEFINED);
    lead(&mut log, 1); // 0..2
    lead(&mut log, 1); // 2..4
    lead(&mut log, 3); // 4..6
    let cases = [
        (0, (0, 0)), // older than every epoch: the requested epoch and the first start
        (1, (1, 4)),
        (2, (1, 4)), // unknown epoch in between: the floor epoch
        (3, (3, 6)), // the latest: the log end
        (4, UNDEFINED),
        (-1, UNDEFINED),
    ];
    for (requested, expected) in cases {
        assert_eq!(
            log.end_offset_for_epoch(requested),
            expected,
            "epoch {requested}"
        );
    }
    // A leader that takes over in epoch 5 and has appended nothing yet.
    log.assign_epoch_start(5);
    assert_eq!(log.end_offset_for_epoch(3), (3, 6));
    assert_eq!(log.end_offset_for_epoch(4), (3, 6));
    assert_eq!(log.end_offset_for_epoch(5), (5, 6));
    // The cache is rebuilt from the stored batches after a reopen.
    drop(log);
    let (log, _) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(log.end_offset_for_epoch(1), (1, 4));
    assert_eq!(log.latest_epoch(), 3);
}

#[test]
fn truncation_cuts_whole_batches_across_segments_and_survives_a_reopen() {
    let dir = Dir::new("repl-truncate");
    let (mut log, _) = Log::open(&dir.0, small_segments()).unwrap();
    for i in 0..20 {
        lead(&mut log, if i < 10 { 1 } else { 2 });
    }
    let segments = log.segment_count();
    assert!(segments > 3, "{segments}");
    // Inside a batch: cut at its start.
    assert_eq!(log.truncate_to(25).unwrap(), 24);
    assert!(log.segment_count() < segments);
    assert_eq!(log.end_offset_for_epoch(2), (2, 24));
    assert_eq!(log.truncate_to(20).unwrap(), 20);
    assert_eq!(log.latest_epoch(), 1, "epoch 2 started at 20 and is gone");
    assert_eq!(
        log.truncate_to(99).unwrap(),
        20,
        "past the end: nothing to do"
    );
    // Appends continue at the cut, and everything survives a reopen.
    assert_eq!(lead(&mut log, 4), 20);
    drop(log);
    let (mut log, recovery) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!(recovery, Default::default());
    assert_eq!(log.next_offset(), 22);
    assert_eq!(log.end_offset_for_epoch(1), (1, 20));
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!(log.read(0, 100).unwrap(), Vec::<u8>::new());
}

#[test]
fn a_reset_log_restarts_at_the_leaders_start_offset() {
    let dir = Dir::new("repl-reset");
    let (mut log, _) = Log::open(&dir.0, small_segments()).unwrap();
    lead(&mut log, 0);
    log.reset_to(1000).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (1000, 1000));
    let mut batch = build_batch(1000, 1, &[b"x"]);
    hdi_log::batch::assign(&mut batch, 1000, 3);
    log.append_replicated(&batch).unwrap();
    drop(log);
    let (log, _) = Log::open(&dir.0, small_segments()).unwrap();
    assert_eq!((log.log_start_offset(), log.next_offset()), (1000, 1001));
    assert_eq!(log.end_offset_for_epoch(3), (3, 1001));
}
