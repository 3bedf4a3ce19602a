//! The log cleaner: unit cases (latest record per key, tombstones and their delete horizon,
//! `min.compaction.lag.ms`, the active segment and the caller's bound untouched, offsets kept,
//! producers' last batches, survivors recompressed in their codec, aborted transactions removed
//! and markers after their horizon, an abandoned group leaving the checkpoint, a follower copying
//! a compacted log) and a seeded property test that interleaves plain and transactional appends,
//! commits and aborts, cleans (never past the last stable offset) and crashes injected before
//! every file operation of the swap, comparing the log with a model after each step: offsets
//! kept, the read_committed view's latest value per key the model's, aborted records gone once
//! a clean passed them, and at the end no marker left past its horizon with nothing before it.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use hdi_log::batch::{self, HEADER_SIZE};
use hdi_log::cleaner::{CleanStats, CleanerLimits, CompactionConfig};
use hdi_log::records::{self, Codecs, KeyValue, build_keyed_batch};
use hdi_log::{FailPoint, Log, LogConfig};

/// One record as read back: `(offset, key, value)`.
type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..LogConfig::default()
    }
}

/// The test codec: "gzip" (1) whose compressed form is the records as they are.
fn identity_codec(codec: i16, data: &[u8]) -> Result<Vec<u8>, String> {
    if codec == 1 {
        Ok(data.to_vec())
    } else {
        Err(format!("codec {codec}"))
    }
}

/// The test codecs: [`identity_codec`] both ways.
fn codecs() -> Codecs<'static> {
    Codecs {
        decompress: &identity_codec,
        compress: &identity_codec,
    }
}

fn compaction() -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: 1_000,
        ..CompactionConfig::default()
    }
}

fn clean(log: &mut Log, now_ms: i64) -> Option<CleanStats> {
    let bound = log.next_offset();
    log.clean(
        &compaction(),
        bound,
        now_ms,
        &CleanerLimits::default(),
        &codecs(),
        &mut FailPoint::none(),
    )
    .unwrap()
}

fn put(log: &mut Log, ts: i64, records: &[(&str, Option<&str>)]) -> i64 {
    let owned: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let mut batch = build_keyed_batch(0, ts, &owned);
    log.append(&mut batch, 0).unwrap().first_offset
}

/// Every record from the log start to the end, with batch boundaries checked.
fn rows(log: &Log) -> Vec<Row> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let mut last_offset = -1;
    while next < log.next_offset() {
        let bytes = log.read(next, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = batch::validate(&bytes[at..], usize::MAX).unwrap();
            assert!(header.base_offset > last_offset || out.is_empty());
            let body = records::records_bytes(&bytes[at..], &header, &identity_codec).unwrap();
            for record in records::parse_records(&body, &header).unwrap() {
                assert!(record.offset > last_offset, "offsets go forward");
                last_offset = record.offset;
                out.push((
                    record.offset,
                    record.key.map(<[u8]>::to_vec),
                    record.value.map(<[u8]>::to_vec),
                ));
            }
            next = header.last_offset() + 1;
            at += header.size();
        }
    }
    out
}

fn text(rows: &[Row]) -> Vec<(i64, String, String)> {
    rows.iter()
        .map(|(o, k, v)| {
            let s = |b: &Option<Vec<u8>>| {
                b.as_ref().map_or("<null>".to_owned(), |b| {
                    String::from_utf8_lossy(b).into_owned()
                })
            };
            (*o, s(k), s(v))
        })
        .collect()
}

#[test]
fn cleaner_keeps_the_latest_record_per_key_at_its_offset_and_leaves_the_active_segment() {
    let dir = common::Dir::new("clean-latest");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    for round in 0..4 {
        put(
            &mut log,
            1_000,
            &[
                ("a", Some(&format!("a{round}"))),
                ("b", Some(&format!("b{round}"))),
            ],
        );
        log.roll().unwrap();
    }
    put(
        &mut log,
        1_000,
        &[("a", Some("active")), ("a", Some("active2"))],
    );
    let before = log.segment_count();
    let stats = clean(&mut log, 10_000).unwrap();
    assert_eq!(stats.cleaned_up_to, 8, "{stats:?}");
    assert_eq!(stats.records_removed, 6);
    assert_eq!(
        text(&rows(&log)),
        vec![
            (6, "a".into(), "a3".into()),
            (7, "b".into(), "b3".into()),
            (8, "a".into(), "active".into()),
            (9, "a".into(), "active2".into()),
        ]
    );
    assert!(log.segment_count() < before, "small segments are grouped");
    // A read at an offset cleaned away answers the next batch.
    let bytes = log.read(0, 1 << 20).unwrap();
    assert_eq!(batch::validate(&bytes, usize::MAX).unwrap().base_offset, 6);
    // Nothing new is dirty: no second clean.
    assert!(clean(&mut log, 10_000).is_none());
    // Survives a reopen, checkpoint included.
    drop(log);
    let (log, recovery) = Log::open(&dir.0, config()).unwrap();
    assert!(recovery.cleaner.is_empty(), "{recovery:?}");
    assert_eq!(log.cleaner_checkpoint(), 8);
    assert_eq!(rows(&log).len(), 4);
}

#[test]
fn cleaner_keeps_tombstones_for_delete_retention_after_the_first_pass() {
    let dir = common::Dir::new("clean-tombstone");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    put(&mut log, 0, &[("a", Some("1")), ("b", Some("1"))]);
    put(&mut log, 0, &[("a", None)]);
    log.roll().unwrap();
    put(&mut log, 0, &[("c", Some("1"))]);
    log.roll().unwrap();
    clean(&mut log, 10_000).unwrap();
    let kept = text(&rows(&log));
    assert!(kept.contains(&(2, "a".into(), "<null>".into())), "{kept:?}");
    assert!(!kept.iter().any(|(o, ..)| *o == 0), "{kept:?}");
    // Another pass within delete.retention.ms (1 s) keeps it.
    put(&mut log, 0, &[("c", Some("2"))]);
    log.roll().unwrap();
    clean(&mut log, 10_999).unwrap();
    assert!(text(&rows(&log)).contains(&(2, "a".into(), "<null>".into())));
    // One at 1 s after the first pass drops it.
    put(&mut log, 0, &[("c", Some("3"))]);
    log.roll().unwrap();
    let stats = clean(&mut log, 11_000).unwrap();
    assert_eq!(stats.tombstones_removed, 1, "{stats:?}");
    assert_eq!(
        text(&rows(&log)),
        vec![(1, "b".into(), "1".into()), (5, "c".into(), "3".into())]
    );
}

#[test]
fn cleaner_honours_min_compaction_lag_and_the_callers_bound() {
    let dir = common::Dir::new("clean-lag");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    put(&mut log, 1_000, &[("a", Some("old"))]);
    log.roll().unwrap();
    put(&mut log, 5_000, &[("a", Some("young"))]);
    log.roll().unwrap();
    put(&mut log, 5_000, &[("a", Some("newest"))]);
    log.roll().unwrap();
    let lagged = CompactionConfig {
        min_compaction_lag_ms: 3_000,
        ..compaction()
    };
    // At 6 000 only the first segment (newest record at 1 000) is old enough: nothing in it is
    // superseded within the cleanable range, so all three records stay.
    let stats = log
        .clean(
            &lagged,
            10,
            6_000,
            &CleanerLimits::default(),
            &codecs(),
            &mut FailPoint::none(),
        )
        .unwrap()
        .unwrap();
    assert_eq!((stats.cleaned_up_to, stats.records_removed), (1, 0));
    assert_eq!(rows(&log).len(), 3);
    // The bound (a high watermark of 2) keeps the third segment out.
    let stats = log
        .clean(
            &compaction(),
            2,
            9_000,
            &CleanerLimits::default(),
            &codecs(),
            &mut FailPoint::none(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(stats.cleaned_up_to, 2);
    assert_eq!(
        text(&rows(&log)),
        vec![
            (1, "a".into(), "young".into()),
            (2, "a".into(), "newest".into())
        ]
    );
    let cleanable = log.cleanable(&compaction(), 3, 9_000).unwrap();
    assert_eq!((cleanable.first_dirty, cleanable.first_uncleanable), (2, 3));
    assert!(cleanable.due(&compaction()), "{cleanable:?}");
}

#[test]
fn cleaner_keeps_each_producers_last_batch_and_control_and_transactional_batches() {
    let dir = common::Dir::new("clean-producers");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let keyed =
        |k: &str, v: &str| build_keyed_batch(0, 0, &[(Some(k.as_bytes()), Some(v.as_bytes()))]);
    let mut first = batch::with_producer(keyed("a", "p1"), 7, 0, 0);
    log.append(&mut first, 0).unwrap();
    let mut last = batch::with_producer(keyed("a", "p2"), 7, 0, 1);
    log.append(&mut last, 0).unwrap();
    // A transactional batch (attributes bit 4) and a control batch (bits 4 and 5).
    let mut txn = set_attributes(batch::with_producer(keyed("a", "txn"), 8, 0, 0), 0x10);
    log.append(&mut txn, 0).unwrap();
    let mut marker = set_attributes(batch::with_producer(keyed("x", "marker"), 8, 0, 1), 0x30);
    log.append(&mut marker, 0).unwrap();
    put(&mut log, 0, &[("a", Some("plain"))]);
    log.roll().unwrap();
    clean(&mut log, 10_000).unwrap();
    let mut headers = Vec::new();
    log.for_each_batch_header(|h| headers.push(*h)).unwrap();
    let seen: Vec<(i64, i64, i32)> = headers
        .iter()
        .map(|h| (h.base_offset, h.producer_id, h.records_count))
        .collect();
    // Producer 7's first batch went, its last stays empty; producer 8's transaction has no
    // marker in the log (the control batch at 3 is not a transaction marker), so it is
    // undecided: its batch stays whole and supersedes nothing, the other control batch too.
    assert_eq!(seen, vec![(1, 7, 0), (2, 8, 1), (3, 8, 1), (4, -1, 1)]);
    assert_eq!((headers[0].base_sequence, headers[0].last_offset()), (1, 1));
    assert!(headers[2].is_control());
}

fn set_attributes(mut batch: Vec<u8>, attributes: i16) -> Vec<u8> {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch::reseal(&mut batch);
    batch
}

#[test]
fn cleaner_recompresses_survivors_in_their_codec_and_a_follower_copies_the_gaps() {
    let dir = common::Dir::new("clean-codec");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let mut gz = set_attributes(
        build_keyed_batch(
            0,
            0,
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), Some(b"1")),
                (Some(b"c"), Some(b"1")),
            ],
        ),
        1,
    );
    log.append(&mut gz, 0).unwrap();
    put(&mut log, 0, &[("a", Some("2"))]);
    log.roll().unwrap();
    put(&mut log, 0, &[("b", Some("2"))]);
    log.roll().unwrap();
    put(&mut log, 0, &[("d", Some("active"))]);
    let stats = clean(&mut log, 10_000).unwrap();
    assert_eq!(stats.records_removed, 2, "{stats:?}");
    assert_eq!(
        rows(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    let mut headers = Vec::new();
    log.for_each_batch_header(|h| headers.push(*h)).unwrap();
    // The gzip batch's survivor (c at 2) is written in gzip again, its offsets kept.
    assert_eq!(
        (
            headers[0].base_offset,
            headers[0].last_offset(),
            headers[0].records_count,
            headers[0].compression()
        ),
        (0, 2, 1, 1),
        "{headers:?}"
    );
    // A follower copies the compacted log batch by batch: gaps and all.
    let follower_dir = common::Dir::new("clean-follower");
    let (mut follower, _) = Log::open(&follower_dir.0, config()).unwrap();
    while follower.next_offset() < log.next_offset() {
        let bytes = log.read(follower.next_offset(), 1 << 20).unwrap();
        follower.append_replicated(&bytes).unwrap();
    }
    assert_eq!(rows(&follower), rows(&log));
    // Going backwards is still refused.
    let stale = log.read(3, 1 << 20).unwrap();
    assert!(follower.append_replicated(&stale).is_err());
    let _ = HEADER_SIZE;
}

/// A transactional data batch of `producer` with `records`.
fn txn_batch(producer: i64, sequence: i32, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    let owned: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let batch = batch::with_producer(build_keyed_batch(0, 0, &owned), producer, 0, sequence);
    set_attributes(batch, batch::TRANSACTIONAL_BIT)
}

/// A transaction marker of `producer`, as the broker writes it (key: version 0 and type 1
/// commit / 0 abort; value: version 0 and a coordinator epoch).
fn marker(producer: i64, commit: bool, ts: i64) -> Vec<u8> {
    let key = [0, 0, 0, u8::from(commit)];
    let value = [0, 0, 0, 0, 0, 5];
    let batch = batch::with_producer(
        build_keyed_batch(0, ts, &[(Some(&key[..]), Some(&value[..]))]),
        producer,
        0,
        -1,
    );
    set_attributes(batch, batch::TRANSACTIONAL_BIT | batch::CONTROL_BIT)
}

/// `(base offset, producer id, records, control)` of every batch.
fn batches(log: &Log) -> Vec<(i64, i64, i32, bool)> {
    let mut out = Vec::new();
    log.for_each_batch_header(|h| {
        out.push((
            h.base_offset,
            h.producer_id,
            h.records_count,
            h.is_control(),
        ))
    })
    .unwrap();
    out
}

#[test]
fn cleaner_removes_aborted_records_compacts_committed_ones_and_markers_after_their_horizon() {
    let dir = common::Dir::new("clean-txn");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let append = |log: &mut Log, mut batch: Vec<u8>| log.append(&mut batch, 0).unwrap();
    put(&mut log, 0, &[("a", Some("1"))]); // 0
    append(&mut log, txn_batch(8, 0, &[("a", Some("t8"))])); // 1, committed
    append(
        &mut log,
        txn_batch(9, 0, &[("a", Some("t9")), ("b", Some("t9"))]),
    ); // 2-3, aborted
    append(&mut log, marker(8, true, 0)); // 4
    append(&mut log, marker(9, false, 0)); // 5
    put(&mut log, 0, &[("c", Some("1"))]); // 6
    append(&mut log, txn_batch(9, 2, &[("b", Some("t9b"))])); // 7, committed
    append(&mut log, marker(9, true, 0)); // 8
    put(&mut log, 0, &[("a", Some("final"))]); // 9
    log.roll().unwrap();
    put(&mut log, 0, &[("z", Some("active"))]); // 10
    let stats = clean(&mut log, 10_000).unwrap();
    assert_eq!(
        (stats.aborted_removed, stats.markers_removed),
        (2, 0),
        "{stats:?}"
    );
    // The aborted records went and superseded nothing (b's committed t9b stays the value of
    // b, the aborted a=t9 did not remove anything); producer 8's committed batch is superseded
    // by a=final but stays empty as its last data batch; both markers stay: their
    // transactions' batches were read in this clean.
    assert_eq!(
        batches(&log),
        vec![
            (1, 8, 0, false),
            (4, 8, 1, true),
            (5, 9, 1, true),
            (6, -1, 1, false),
            (7, 9, 1, false),
            (8, 9, 1, true),
            (9, -1, 1, false),
            (10, -1, 1, false),
        ]
    );
    let values: Vec<_> = text(&rows(&log))
        .into_iter()
        .filter(|(o, ..)| ![4, 5, 8].contains(o))
        .collect();
    assert_eq!(
        values,
        vec![
            (6, "c".into(), "1".into()),
            (7, "b".into(), "t9b".into()),
            (9, "a".into(), "final".into()),
            (10, "z".into(), "active".into()),
        ]
    );
    // The next clean finds nothing left of the aborted transaction: its marker gets a delete
    // horizon (1 s), and goes at the first clean after it. Producer 8's marker stays: its
    // transaction still has its (empty) last batch. Producer 9's commit marker is its last batch.
    let horizon_of = |log: &Log, offset: i64| {
        let mut horizon = None;
        log.for_each_batch_header(|h| {
            if h.base_offset == offset {
                horizon = h.delete_horizon();
            }
        })
        .unwrap();
        horizon
    };
    assert_eq!(horizon_of(&log, 5), None);
    for (now, removed) in [(10_500, 0), (11_499, 0), (11_500, 1)] {
        put(&mut log, 0, &[("z", Some(&format!("{now}")))]);
        log.roll().unwrap();
        let stats = clean(&mut log, now).unwrap();
        assert_eq!(stats.markers_removed, removed, "at {now}: {stats:?}");
        if removed == 0 {
            assert_eq!(horizon_of(&log, 5), Some(11_500), "at {now}");
        }
    }
    let controls: Vec<i64> = batches(&log)
        .into_iter()
        .filter(|b| b.3)
        .map(|b| b.0)
        .collect();
    assert_eq!(controls, vec![4, 8]);
}

#[test]
fn an_abandoned_group_leaves_the_checkpoint_so_no_tombstone_outlives_an_older_value() {
    // S0 [x] S1 [k=old] S2 [k=tombstone]: one group. Retention removes S0 while the group is
    // being cleaned, so the group is abandoned: k=old was never deduplicated against the
    // tombstone. Had the pass been checkpointed, the next clean (past the tombstone's
    // retention) would map only newer keys, drop the tombstone and bring k=old back.
    let dir = common::Dir::new("clean-abandoned");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    put(&mut log, 0, &[("x", Some("1"))]);
    log.roll().unwrap();
    put(&mut log, 0, &[("k", Some("old"))]);
    log.roll().unwrap();
    put(&mut log, 0, &[("k", None)]);
    log.roll().unwrap();
    put(&mut log, 0, &[("y", Some("active"))]);
    let plan = log
        .plan_clean(&compaction(), log.next_offset(), 10_000)
        .unwrap()
        .unwrap();
    let mut throttle = hdi_log::cleaner::Throttle::new(f64::INFINITY);
    let cleaned = plan
        .run(
            &CleanerLimits::default(),
            &codecs(),
            &mut throttle,
            &mut FailPoint::none(),
        )
        .unwrap();
    log.delete_records_before(1).unwrap();
    let stats = log.commit_clean(cleaned, &mut FailPoint::none()).unwrap();
    assert_eq!(stats.groups_abandoned, 1, "{stats:?}");
    assert_eq!(log.cleaner_checkpoint(), 0);
    for now in [11_000, 12_000, 13_000] {
        put(&mut log, 0, &[("z", Some("1"))]);
        log.roll().unwrap();
        clean(&mut log, now).unwrap();
        let k: Vec<_> = text(&rows(&log))
            .into_iter()
            .filter(|(_, key, _)| key == "k")
            .collect();
        assert!(
            k.is_empty() || k == vec![(2, "k".into(), "<null>".into())],
            "at {now}: {k:?}"
        );
    }
}

#[test]
fn an_undecodable_batch_holds_the_checkpoint_so_no_tombstone_outlives_its_value() {
    // k=old in a batch of a codec the cleaner lacks (3): kept whole, never deduplicated against
    // the later tombstone. Had the pass been checkpointed past it, a clean after the
    // tombstone's horizon would drop the tombstone and bring k=old back.
    let dir = common::Dir::new("clean-undecodable");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let mut old = set_attributes(build_keyed_batch(0, 0, &[(Some(b"k"), Some(b"old"))]), 3);
    log.append(&mut old, 0).unwrap(); // 0
    put(&mut log, 0, &[("k", None)]); // 1
    log.roll().unwrap();
    for now in [10_000, 11_000, 12_000] {
        put(&mut log, 0, &[("z", Some("1"))]);
        log.roll().unwrap();
        clean(&mut log, now);
        assert_eq!(log.cleaner_checkpoint(), 0, "at {now}");
        assert!(
            batches(&log).contains(&(1, -1, 1, false)),
            "at {now}: the tombstone stays: {:?}",
            batches(&log)
        );
    }
}

#[test]
fn an_unreadable_control_batch_ends_its_producers_transaction_undecided() {
    // Producer 9's first transaction (k=t1) ends with a control batch that is no marker we
    // read (type 7); its second (j=t2) commits. T1's data must not be taken for T2's: it
    // supersedes nothing (k=plain stays) and holds the checkpoint.
    let dir = common::Dir::new("clean-unreadable-marker");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let append = |log: &mut Log, mut batch: Vec<u8>| log.append(&mut batch, 0).unwrap();
    put(&mut log, 0, &[("k", Some("plain"))]); // 0
    append(&mut log, txn_batch(9, 0, &[("k", Some("t1"))])); // 1
    let unknown = batch::with_producer(
        build_keyed_batch(
            0,
            0,
            &[(Some(&[0, 0, 0, 7][..]), Some(&[0, 0, 0, 0, 0, 5][..]))],
        ),
        9,
        0,
        -1,
    );
    append(
        &mut log,
        set_attributes(unknown, batch::TRANSACTIONAL_BIT | batch::CONTROL_BIT),
    ); // 2
    append(&mut log, txn_batch(9, 1, &[("j", Some("t2"))])); // 3
    append(&mut log, marker(9, true, 0)); // 4
    log.roll().unwrap();
    put(&mut log, 0, &[("z", Some("active"))]); // 5
    clean(&mut log, 10_000).unwrap();
    let values = text(&rows(&log));
    assert!(
        values.contains(&(0, "k".into(), "plain".into())),
        "{values:?}"
    );
    assert!(values.contains(&(1, "k".into(), "t1".into())), "{values:?}");
    assert!(values.contains(&(3, "j".into(), "t2".into())), "{values:?}");
    assert_eq!(log.cleaner_checkpoint(), 1);
}

/// A tiny deterministic generator (xorshift), so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the model knows of one offset.
#[derive(Clone, Debug)]
enum Entry {
    /// A data record; `txn` is its transaction (an index into `Model::txns`).
    Data {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        txn: Option<usize>,
    },
    /// A transaction's marker.
    Marker { txn: usize },
}

/// A transaction of the model: its producer, its first offset, and once ended its outcome.
#[derive(Clone, Debug)]
struct ModelTxn {
    producer: i64,
    first: i64,
    committed: Option<bool>,
}

/// Everything appended, with the transactions' outcomes.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<i64, Entry>,
    txns: Vec<ModelTxn>,
    /// The open transaction of each producer.
    open: BTreeMap<i64, usize>,
    sequences: BTreeMap<i64, i32>,
}

impl Model {
    /// The last stable offset: the first offset of the earliest open transaction.
    fn last_stable_offset(&self, end: i64) -> i64 {
        self.open
            .values()
            .map(|t| self.txns[*t].first)
            .min()
            .unwrap_or(end)
    }

    /// Whether a data record is committed: plain, or of a committed transaction (`None` while
    /// its transaction is open).
    fn committed(&self, txn: Option<usize>) -> Option<bool> {
        txn.map_or(Some(true), |t| self.txns[t].committed)
    }

    /// The latest committed record of every key: `(offset, value)`.
    fn latest_committed(&self) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
        let mut latest = BTreeMap::new();
        for (offset, entry) in &self.entries {
            if let Entry::Data { key, value, txn } = entry
                && self.committed(*txn) == Some(true)
            {
                latest.insert(key.clone(), (*offset, value.clone()));
            }
        }
        latest
    }
}

/// The log as read back: data records `(offset, key, value)`, markers `(offset, producer,
/// commit)`, every batch header, and the read_committed view (records of transactions whose
/// commit marker is in the log, and plain records, in offset order).
#[derive(Debug, Default)]
struct LogView {
    records: Vec<Row>,
    markers: Vec<(i64, i64, bool)>,
    headers: Vec<batch::BatchHeader>,
    read_committed: Vec<Row>,
}

fn read_log(log: &Log) -> LogView {
    let mut view = LogView::default();
    let mut pending: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
    let mut next = log.log_start_offset();
    while next < log.next_offset() {
        let bytes = log.read(next, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut at = 0;
        while at < bytes.len() {
            let batch_bytes = &bytes[at..];
            let header = batch::validate(batch_bytes, usize::MAX).unwrap();
            assert!(
                view.headers
                    .last()
                    .is_none_or(|h| h.last_offset() < header.base_offset),
                "batches go forward"
            );
            view.headers.push(header);
            next = header.last_offset() + 1;
            at += header.size();
            if header.is_control() {
                let marker = records::parse_marker(batch_bytes, &header).unwrap();
                let commit = marker == records::Marker::Commit;
                view.markers
                    .push((header.base_offset, header.producer_id, commit));
                let done = pending.remove(&header.producer_id).unwrap_or_default();
                if commit {
                    view.read_committed.extend(done);
                }
                continue;
            }
            let body = records::records_bytes(batch_bytes, &header, &identity_codec).unwrap();
            for record in records::parse_records(&body, &header).unwrap() {
                let row = (
                    record.offset,
                    record.key.map(<[u8]>::to_vec),
                    record.value.map(<[u8]>::to_vec),
                );
                view.records.push(row.clone());
                if header.is_transactional() {
                    pending.entry(header.producer_id).or_default().push(row);
                } else {
                    view.read_committed.push(row);
                }
            }
        }
    }
    view.read_committed.sort_by_key(|r| r.0);
    view
}

/// Checks the log against the model (see the property test).
fn check_against_model(
    log: &Log,
    model: &Model,
    protected_from: i64,
    gone: &BTreeSet<i64>,
    context: &str,
) -> LogView {
    let view = read_log(log);
    let end = model.entries.keys().next_back().map_or(0, |o| o + 1);
    assert_eq!(log.next_offset(), end, "{context}: log end");
    // Offsets are kept: every record and marker read is the one appended at its offset.
    for (offset, key, value) in &view.records {
        match &model.entries[offset] {
            Entry::Data {
                key: k, value: v, ..
            } => {
                assert_eq!(
                    (key.as_ref(), value),
                    (Some(k), v),
                    "{context}: record at {offset}"
                );
            }
            other => panic!("{context}: a record at {offset}, the model has {other:?}"),
        }
        assert!(
            !gone.contains(offset),
            "{context}: aborted record at {offset} came back"
        );
    }
    for (offset, producer, commit) in &view.markers {
        match &model.entries[offset] {
            Entry::Marker { txn } => {
                let t = &model.txns[*txn];
                assert_eq!(
                    (t.producer, t.committed),
                    (*producer, Some(*commit)),
                    "{context}: marker at {offset}"
                );
            }
            other => panic!("{context}: a marker at {offset}, the model has {other:?}"),
        }
    }
    // Nothing at or past what any clean could touch is lost.
    let present: BTreeSet<i64> = view
        .records
        .iter()
        .map(|r| r.0)
        .chain(view.markers.iter().map(|m| m.0))
        .collect();
    for offset in model.entries.range(protected_from..).map(|(o, _)| *o) {
        assert!(
            present.contains(&offset),
            "{context}: lost {offset} (protected from {protected_from})"
        );
    }
    // read_committed: the latest committed value of every key reads as the model's; a
    // tombstone may have gone, and then nothing older of its key may remain.
    let mut latest_log: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    for (offset, key, value) in &view.read_committed {
        latest_log.insert(key.clone().unwrap_or_default(), (*offset, value.clone()));
    }
    for (key, (offset, value)) in model.latest_committed() {
        match (value, latest_log.get(&key)) {
            (Some(_), Some((o, _))) => assert_eq!(*o, offset, "{context}: key {key:?}"),
            (Some(_), None) => panic!("{context}: key {key:?} lost its value at {offset}"),
            (None, Some((o, _))) => assert_eq!(*o, offset, "{context}: key {key:?} resurrected"),
            (None, None) => {}
        }
    }
    view
}

#[test]
fn cleaner_property_random_transactions_cleans_and_crashes_match_the_model() {
    let seed = std::env::var("HDI_CLEANER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                | 1
        });
    eprintln!("HDI_CLEANER_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = common::Dir::new("clean-property");
    let (mut log, _) = Log::open(&dir.0, config()).unwrap();
    let mut model = Model::default();
    let mut now_ms = 0i64;
    // Records at or past the furthest any clean could reach must all survive.
    let mut protected_from: Option<i64> = None;
    // Aborted records a completed clean passed (with their marker in its reach): never again.
    let mut gone: BTreeSet<i64> = BTreeSet::new();
    let (mut cleans, mut crashes, mut recovered_swaps) = (0, 0, 0);
    let (mut commits, mut aborts, mut aborted_removed) = (0, 0, 0);
    for step in 0..500 {
        let context = format!("seed {seed} step {step}");
        now_ms += rng.below(400) as i64;
        match rng.below(12) {
            // A plain batch, or a transactional one of producer 1-3 (opening its transaction).
            0..=5 => {
                let transactional = rng.below(3) == 0;
                let producer = 1 + rng.below(3) as i64;
                let count = 1 + rng.below(4) as usize;
                let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..count)
                    .map(|_| {
                        let key = format!("k{}", rng.below(12)).into_bytes();
                        let value = (rng.below(6) != 0)
                            .then(|| format!("v{step}-{}", rng.next() % 1000).into_bytes());
                        (key, value)
                    })
                    .collect();
                let refs: Vec<KeyValue<'_>> = records
                    .iter()
                    .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                    .collect();
                let mut batch = build_keyed_batch(0, now_ms, &refs);
                let mut txn = None;
                if transactional {
                    let sequence = model.sequences.entry(producer).or_insert(0);
                    batch = batch::with_producer(batch, producer, 0, *sequence);
                    *sequence += count as i32;
                    batch = set_attributes(batch, batch::TRANSACTIONAL_BIT);
                    let first = log.next_offset();
                    let t = *model.open.entry(producer).or_insert_with(|| {
                        model.txns.push(ModelTxn {
                            producer,
                            first,
                            committed: None,
                        });
                        model.txns.len() - 1
                    });
                    txn = Some(t);
                }
                let first = log.append(&mut batch, 0).unwrap().first_offset;
                for (i, (key, value)) in records.into_iter().enumerate() {
                    model
                        .entries
                        .insert(first + i as i64, Entry::Data { key, value, txn });
                }
            }
            // End an open transaction: commit (two in three) or abort.
            6..=7 => {
                let open: Vec<i64> = model.open.keys().copied().collect();
                if !open.is_empty() {
                    let producer = open[rng.below(open.len() as u64) as usize];
                    let txn = model.open.remove(&producer).unwrap();
                    let commit = rng.below(3) != 0;
                    let mut batch = marker(producer, commit, now_ms);
                    let offset = log.append(&mut batch, 0).unwrap().first_offset;
                    model.txns[txn].committed = Some(commit);
                    model.entries.insert(offset, Entry::Marker { txn });
                    if commit {
                        commits += 1;
                    } else {
                        aborts += 1;
                    }
                }
            }
            8 => log.roll().unwrap(),
            // A clean, never at or past the last stable offset, maybe crashing.
            _ => {
                let end = log.next_offset();
                let bound = model.last_stable_offset(end).min(end - rng.below(3) as i64);
                let limits = CleanerLimits {
                    dedupe_buffer_bytes: if rng.below(3) == 0 { 200 } else { 1 << 20 },
                    ..CleanerLimits::default()
                };
                let mut fail = if rng.below(2) == 0 {
                    FailPoint::after(rng.below(14) as u32)
                } else {
                    FailPoint::none()
                };
                if let Some(plan) = log.plan_clean(&compaction(), bound, now_ms).unwrap() {
                    let reach = plan.first_uncleanable();
                    assert!(
                        reach <= bound,
                        "{context}: reach {reach} past bound {bound}"
                    );
                    protected_from = Some(protected_from.map_or(reach, |p| p.max(reach)));
                    let mut throttle = hdi_log::cleaner::Throttle::new(f64::INFINITY);
                    let result = plan
                        .run(&limits, &codecs(), &mut throttle, &mut fail)
                        .and_then(|cleaned| log.commit_clean(cleaned, &mut fail));
                    cleans += 1;
                    match result {
                        Ok(stats) => {
                            aborted_removed += stats.aborted_removed;
                            // Every aborted record below what this clean finished whose marker
                            // it read is gone, for good.
                            for (offset, entry) in model.entries.range(..stats.cleaned_up_to) {
                                let Entry::Data { txn: Some(t), .. } = entry else {
                                    continue;
                                };
                                let marker = model.entries.iter().find_map(|(o, e)| {
                                    matches!(e, Entry::Marker { txn } if txn == t).then_some(*o)
                                });
                                if model.txns[*t].committed == Some(false)
                                    && marker.is_some_and(|m| m < reach)
                                {
                                    gone.insert(*offset);
                                }
                            }
                        }
                        Err(_) => {
                            assert!(fail.fired(), "{context}: {result:?}");
                            crashes += 1;
                            drop(log);
                            let (reopened, recovery) = Log::open(&dir.0, config()).unwrap();
                            recovered_swaps += recovery
                                .cleaner
                                .iter()
                                .filter(|r| r.starts_with("completed"))
                                .count();
                            log = reopened;
                        }
                    }
                }
            }
        }
        check_against_model(&log, &model, protected_from.unwrap_or(0), &gone, &context);
    }
    // End every transaction, then clean four times, each past the last one's delete horizon,
    // with nothing held back (a new record in the active segment makes each dirty): the first
    // removes superseded and aborted records and gives tombstones their horizon, the second
    // removes those tombstones, the third finds their transactions empty and gives the markers
    // their horizon, the fourth removes them.
    for (producer, txn) in std::mem::take(&mut model.open) {
        let commit = rng.below(2) == 0;
        let mut batch = marker(producer, commit, now_ms);
        let offset = log.append(&mut batch, 0).unwrap().first_offset;
        model.txns[txn].committed = Some(commit);
        model.entries.insert(offset, Entry::Marker { txn });
    }
    for round in 0..4 {
        now_ms += 2_000;
        let mut batch = build_keyed_batch(0, now_ms, &[(Some(b"final"), Some(b"x"))]);
        let offset = log.append(&mut batch, 0).unwrap().first_offset;
        model.entries.insert(
            offset,
            Entry::Data {
                key: b"final".to_vec(),
                value: Some(b"x".to_vec()),
                txn: None,
            },
        );
        log.roll().unwrap();
        let stats = clean(&mut log, now_ms).unwrap();
        aborted_removed += stats.aborted_removed;
        assert_eq!(stats.groups_abandoned, 0, "seed {seed} final clean {round}");
    }
    let end = log.next_offset();
    let view = check_against_model(&log, &model, end, &gone, &format!("seed {seed} end"));
    // No aborted record is left, and each key at most once.
    let mut seen = std::collections::HashSet::new();
    for (offset, key, _) in &view.records {
        let Entry::Data { txn, .. } = &model.entries[offset] else {
            unreachable!()
        };
        assert_ne!(
            model.committed(*txn),
            Some(false),
            "seed {seed}: aborted record at {offset} survived"
        );
        assert!(seen.insert(key.clone()), "seed {seed}: key {key:?} twice");
    }
    // A marker is left only while a batch of its transaction is (a producer's last data batch,
    // kept empty), or as its producer's last batch.
    for (offset, producer, _) in &view.markers {
        let Entry::Marker { txn } = &model.entries[offset] else {
            unreachable!()
        };
        let first = model.txns[*txn].first;
        let has_batch = view.headers.iter().any(|h| {
            h.producer_id == *producer
                && !h.is_control()
                && (first..*offset).contains(&h.base_offset)
        });
        let last = view
            .headers
            .iter()
            .rev()
            .find(|h| h.producer_id == *producer)
            .is_some_and(|h| h.base_offset == *offset);
        assert!(
            has_batch || last,
            "seed {seed}: marker at {offset} (txn from {first}) outlived its horizon with nothing before it: {:?}",
            view.headers
                .iter()
                .filter(|h| h.producer_id == *producer)
                .map(|h| (
                    h.base_offset,
                    h.records_count,
                    h.is_control(),
                    h.delete_horizon()
                ))
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "{cleans} cleans, {crashes} crashes, {recovered_swaps} swaps completed by recovery, \
         {commits} commits, {aborts} aborts, {aborted_removed} aborted records removed, \
         {} of {} markers left",
        view.markers.len(),
        model.txns.len()
    );
    assert!(
        cleans > 20 && crashes > 5 && commits > 5 && aborts > 3,
        "seed {seed}: {cleans} cleans, {crashes} crashes, {commits} commits, {aborts} aborts"
    );
}
