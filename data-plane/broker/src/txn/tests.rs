//! Unit tests of the transaction state machine: transitions, fencing, timeouts, pending offsets
//! and the compare-and-set replication.

use super::*;

const ID: &str = "tx";

fn fresh(n: i64) -> impl FnOnce() -> Result<i64, i16> {
    move || Ok(n)
}

/// Applies `record` as the proposer would (compare-and-set against the stored version).
fn put(txns: &mut TxnMap, offsets: &mut OffsetMap, record: TxnRecord) -> TxnRecord {
    let expected_version = txns.get(&record.transactional_id).map_or(0, |r| r.version);
    apply(
        txns,
        offsets,
        &TxnCommand::Put {
            record,
            expected_version,
        },
    )
    .unwrap();
    txns[ID].clone()
}

fn ready(step: InitStep) -> TxnRecord {
    match step {
        InitStep::Ready(record) => record,
        other => panic!("{other:?}"),
    }
}

fn prepared(step: EndStep) -> TxnRecord {
    match step {
        EndStep::Prepare(record) => record,
        other => panic!("{other:?}"),
    }
}

/// A record `Ongoing` with partition t-0, started at 1000, producer 7 epoch 0.
fn ongoing(txns: &mut TxnMap, offsets: &mut OffsetMap) -> TxnRecord {
    let record = ready(init_producer(ID, None, 60_000, None, 0, fresh(7)).unwrap());
    let record = put(txns, offsets, record);
    let next = add_partitions(&record, 7, 0, &[("t".into(), 0)], 1_000)
        .unwrap()
        .unwrap();
    put(txns, offsets, next)
}

#[test]
fn a_transaction_goes_through_its_states() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let record = ongoing(&mut txns, &mut offsets);
    assert_eq!(
        (record.state, record.start_ms, record.version),
        (TxnState::Ongoing, 1_000, 2)
    );
    // Adding a partition already in the transaction changes nothing.
    assert_eq!(
        add_partitions(&record, 7, 0, &[("t".into(), 0)], 2_000),
        Ok(None)
    );
    let record = put(
        &mut txns,
        &mut offsets,
        add_partitions(&record, 7, 0, &[("t".into(), 1)], 2_000)
            .unwrap()
            .unwrap(),
    );
    assert_eq!(record.partitions.len(), 2);
    assert_eq!(record.start_ms, 1_000, "the start stays");
    let record = put(
        &mut txns,
        &mut offsets,
        prepared(end_transaction(&record, 7, 0, true, 3_000).unwrap()),
    );
    assert_eq!(record.state, TxnState::PrepareCommit);
    // While it completes: the same outcome again is CONCURRENT_TRANSACTIONS, the other one an
    // invalid state; adding partitions waits.
    assert_eq!(
        end_transaction(&record, 7, 0, true, 3_001),
        Err(codes::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        end_transaction(&record, 7, 0, false, 3_001),
        Err(codes::INVALID_TXN_STATE)
    );
    assert_eq!(
        add_partitions(&record, 7, 0, &[("t".into(), 2)], 3_001),
        Err(codes::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        init_producer(ID, Some(&record), 60_000, None, 3_001, fresh(8)),
        Err(codes::CONCURRENT_TRANSACTIONS)
    );
    let record = put(&mut txns, &mut offsets, complete(&record, 4_000).unwrap());
    assert_eq!(
        (record.state, record.partitions.len(), record.start_ms),
        (TxnState::CompleteCommit, 0, -1)
    );
    assert_eq!(complete(&record, 4_001), None);
    // A retried EndTxn(commit) is answered; an abort of a committed transaction is not.
    assert_eq!(
        end_transaction(&record, 7, 0, true, 4_001),
        Ok(EndStep::AlreadyDone)
    );
    assert_eq!(
        end_transaction(&record, 7, 0, false, 4_001),
        Err(codes::INVALID_TXN_STATE)
    );
    // The next transaction starts from the completed one.
    let next = add_partitions(&record, 7, 0, &[("u".into(), 0)], 5_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.state, next.start_ms, next.partitions.len()),
        (TxnState::Ongoing, 5_000, 1)
    );
    // Ending with nothing open is an invalid state.
    let empty = ready(init_producer(ID, None, 60_000, None, 0, fresh(9)).unwrap());
    assert_eq!(
        end_transaction(&empty, 9, 0, true, 1),
        Err(codes::INVALID_TXN_STATE)
    );
}

#[test]
fn init_producer_fences_older_producers() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let first = put(
        &mut txns,
        &mut offsets,
        ready(init_producer(ID, None, 60_000, None, 0, fresh(7)).unwrap()),
    );
    assert_eq!((first.producer_id, first.producer_epoch), (7, 0));
    // A second instance of the producer: same id, next epoch.
    let second = put(
        &mut txns,
        &mut offsets,
        ready(
            init_producer(ID, Some(&first), 30_000, None, 1, || {
                panic!("no new producer id")
            })
            .unwrap(),
        ),
    );
    assert_eq!(
        (second.producer_id, second.producer_epoch, second.timeout_ms),
        (7, 1, 30_000)
    );
    // The first instance is fenced everywhere.
    assert_eq!(
        add_partitions(&second, 7, 0, &[("t".into(), 0)], 2),
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        add_offsets(&second, 7, 0, "g", 2),
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        end_transaction(&second, 7, 0, true, 2),
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        add_partitions(&second, 8, 1, &[("t".into(), 0)], 2),
        Err(codes::INVALID_PRODUCER_ID_MAPPING)
    );
    // The fenced first instance cannot get the new epoch back by naming its own (the bump was
    // a new instance's, not its retry).
    assert_eq!(
        init_producer(ID, Some(&second), 30_000, Some((7, 0)), 3, fresh(8)),
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        init_producer(ID, Some(&second), 30_000, Some((6, 1)), 3, fresh(8)),
        Err(codes::PRODUCER_FENCED)
    );
    let third = ready(init_producer(ID, Some(&second), 30_000, Some((7, 1)), 3, fresh(8)).unwrap());
    assert_eq!(third.producer_epoch, 2);
    // The epoch exhausted: a new producer id from epoch 0.
    let mut worn = third.clone();
    worn.producer_epoch = i16::MAX - 1;
    let renewed = ready(init_producer(ID, Some(&worn), 30_000, None, 4, fresh(99)).unwrap());
    assert_eq!((renewed.producer_id, renewed.producer_epoch), (99, 0));
    // Timeouts above transaction.max.timeout.ms (or not positive) are refused.
    for timeout in [0, -1, MAX_TIMEOUT_MS + 1] {
        assert_eq!(
            init_producer(ID, None, timeout, None, 0, fresh(1)),
            Err(codes::INVALID_TRANSACTION_TIMEOUT),
            "{timeout}"
        );
    }
    assert!(init_producer(ID, None, MAX_TIMEOUT_MS, None, 0, fresh(1)).is_ok());
}

#[test]
fn a_new_instance_aborts_the_open_transaction_first() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let record = ongoing(&mut txns, &mut offsets);
    let InitStep::AbortFirst(abort) =
        init_producer(ID, Some(&record), 60_000, None, 2_000, fresh(8)).unwrap()
    else {
        panic!("an open transaction is aborted first")
    };
    assert_eq!(
        (abort.state, abort.producer_epoch, abort.partitions.len()),
        (TxnState::PrepareAbort, 1, 1),
        "epoch bumped (the old producer fenced), partitions kept for the markers"
    );
    let abort = put(&mut txns, &mut offsets, abort);
    assert_eq!(
        end_transaction(&abort, 7, 0, true, 2_001),
        Err(codes::PRODUCER_FENCED)
    );
    let done = put(&mut txns, &mut offsets, complete(&abort, 2_500).unwrap());
    assert_eq!(done.state, TxnState::CompleteAbort);
    // The retried InitProducerId then gets the epoch after.
    let ready = ready(init_producer(ID, Some(&done), 60_000, None, 3_000, fresh(8)).unwrap());
    assert_eq!((ready.producer_id, ready.producer_epoch), (7, 2));
}

#[test]
fn transactions_past_their_timeout_are_aborted_and_the_producer_fenced() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let record = ongoing(&mut txns, &mut offsets);
    assert_eq!(abort_timed_out(&record, 60_999), None);
    let aborted = abort_timed_out(&record, 61_000).unwrap();
    assert_eq!(
        (
            aborted.state,
            aborted.producer_epoch,
            aborted.last_producer_epoch
        ),
        (TxnState::PrepareAbort, 1, 0)
    );
    let aborted = put(&mut txns, &mut offsets, aborted);
    // The zombie's EndTxn is fenced; nothing but Ongoing times out.
    assert_eq!(
        end_transaction(&aborted, 7, 0, true, 61_001),
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(abort_timed_out(&aborted, 1_000_000), None);
    let done = complete(&aborted, 61_500).unwrap();
    assert_eq!(abort_timed_out(&done, 1_000_000), None);
    // Idle ids expire after transactional.id.expiration.ms; open ones never.
    assert!(!done.expired(61_500 + ID_EXPIRATION_MS - 1));
    assert!(done.expired(61_500 + ID_EXPIRATION_MS));
    assert!(!record.expired(i64::MAX));
}

#[test]
fn transactional_offsets_are_visible_only_once_committed() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let record = ongoing(&mut txns, &mut offsets);
    let committed = [("in".to_owned(), 0, 42, Some("m".to_owned()))];
    // Without AddOffsetsToTxn for the group, the commit is refused.
    assert_eq!(
        commit_offsets(&record, 7, 0, "g", &committed, 1_100),
        Err(codes::INVALID_TXN_STATE)
    );
    let record = put(
        &mut txns,
        &mut offsets,
        add_offsets(&record, 7, 0, "g", 1_100).unwrap().unwrap(),
    );
    assert_eq!(add_offsets(&record, 7, 0, "g", 1_101), Ok(None));
    assert_eq!(
        commit_offsets(&record, 7, 1, "g", &committed, 1_100),
        Err(codes::PRODUCER_FENCED)
    );
    let record = put(
        &mut txns,
        &mut offsets,
        commit_offsets(&record, 7, 0, "g", &committed, 1_200).unwrap(),
    );
    // A second commit of the same partition replaces the first.
    let record = put(
        &mut txns,
        &mut offsets,
        commit_offsets(&record, 7, 0, "g", &[("in".to_owned(), 0, 43, None)], 1_300).unwrap(),
    );
    assert_eq!(record.pending_offsets.len(), 1);
    assert!(record.has_pending_offset("g", "in", 0));
    assert!(
        offsets.is_empty(),
        "pending offsets are not committed offsets"
    );
    let record = put(
        &mut txns,
        &mut offsets,
        prepared(end_transaction(&record, 7, 0, true, 1_400).unwrap()),
    );
    assert!(offsets.is_empty(), "not before the commit completes");
    let record = put(&mut txns, &mut offsets, complete(&record, 1_500).unwrap());
    assert_eq!(offsets["g"][&("in".to_owned(), 0)].offset, 43);
    assert!(record.pending_offsets.is_empty());

    // An aborted transaction's offsets are dropped.
    let record = put(
        &mut txns,
        &mut offsets,
        add_offsets(&record, 7, 0, "g", 2_000).unwrap().unwrap(),
    );
    let record = put(
        &mut txns,
        &mut offsets,
        commit_offsets(&record, 7, 0, "g", &[("in".to_owned(), 0, 99, None)], 2_100).unwrap(),
    );
    let record = put(
        &mut txns,
        &mut offsets,
        prepared(end_transaction(&record, 7, 0, false, 2_200).unwrap()),
    );
    let record = put(&mut txns, &mut offsets, complete(&record, 2_300).unwrap());
    assert_eq!(record.state, TxnState::CompleteAbort);
    assert_eq!(offsets["g"][&("in".to_owned(), 0)].offset, 43);
    assert!(record.pending_offsets.is_empty());
}

#[test]
fn a_change_computed_from_a_stale_record_is_refused() {
    let (mut txns, mut offsets) = (TxnMap::new(), OffsetMap::new());
    let record = ongoing(&mut txns, &mut offsets);
    let stale = record.clone();
    put(
        &mut txns,
        &mut offsets,
        prepared(end_transaction(&record, 7, 0, false, 2_000).unwrap()),
    );
    // An old coordinator, unaware of the abort, tries to add a partition.
    let late = add_partitions(&stale, 7, 0, &[("t".into(), 5)], 2_001)
        .unwrap()
        .unwrap();
    let refused = apply(
        &mut txns,
        &mut offsets,
        &TxnCommand::Put {
            record: late,
            expected_version: stale.version,
        },
    )
    .unwrap_err();
    assert_eq!(refused.code, codes::CONCURRENT_TRANSACTIONS);
    assert_eq!(txns[ID].state, TxnState::PrepareAbort);
    // A removal of a record that changed is refused too; of the current one, done.
    let remove = |version| TxnCommand::Remove {
        transactional_id: ID.into(),
        expected_version: version,
    };
    assert!(apply(&mut txns, &mut offsets, &remove(stale.version)).is_err());
    let current = txns[ID].version;
    apply(&mut txns, &mut offsets, &remove(current)).unwrap();
    assert!(txns.is_empty());
    // Snapshots round-trip.
    let record = ongoing(&mut txns, &mut offsets);
    let json = serde_json::to_string(&to_records(&txns)).unwrap();
    let back = from_records(serde_json::from_str(&json).unwrap());
    assert_eq!(back[ID], record);
}

#[test]
fn state_names_are_kafkas() {
    for state in TxnState::ALL {
        assert_eq!(TxnState::from_name(state.name()), Some(state));
    }
    assert_eq!(TxnState::from_name("ongoing"), None);
    assert_eq!(
        versioned(codes::PRODUCER_FENCED, 1, 2),
        codes::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        versioned(codes::PRODUCER_FENCED, 2, 2),
        codes::PRODUCER_FENCED
    );
}
