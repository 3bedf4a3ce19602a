//! The partition side of transactions (KIP-98) over the wire, without the coordinator: a
//! producer id from InitProducerId writes transactional batches, markers come from
//! `txn_markers::write_txn_markers` (the coordinator's path) and from the quorum listener's
//! `WriteTxnMarkers` request (a peer's), and Kafka requests check what a consumer sees: a
//! `read_committed` Fetch stops at the last stable offset while a transaction is open and lists
//! the aborted transactions a consumer drops (checked by filtering as Kafka's consumer does),
//! `read_uncommitted` sees everything, ListOffsets' latest follows the isolation level, stale
//! markers are fenced, and all of it holds after a restart. The broker runs with
//! `--transaction-partition-verification-enable false` (Kafka's
//! `transaction.partition.verification.enable`): its batches are not verified with the
//! coordinator, which knows none of these producers; with verification (the default) the first
//! of them is refused, as the last test shows.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::{BTreeSet, HashSet};

use bytes::Bytes;
use common::{call, name, open, open_with, s, temp_dir};
use hdi_broker::broker::Broker;
use hdi_broker::producers::{TRANSACTIONAL_BIT, TxnMarker};
use hdi_broker::txn_markers::write_txn_markers;
use hdi_kafka_client::codes::TRANSACTION_COORDINATOR_FENCED;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A broker whose partitions take transactional batches without asking the coordinator.
async fn open_unverified(dir: &std::path::Path) -> common::TestBroker {
    open_with(
        dir,
        &["--transaction-partition-verification-enable", "false"],
    )
    .await
}

/// An idempotent producer id and epoch from InitProducerId (no transactional id: the partition
/// side does not need the coordinator).
async fn producer_id(broker: &Broker) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = call(
        broker,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(request),
    )
    .await;
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

/// Produces one batch of `values` to `topic`-0 (transactional when `transactional`, with
/// producer `(id, epoch)` at sequence `seq`): the base offset or the error code.
async fn produce(
    broker: &Broker,
    topic: &str,
    producer: Option<((i64, i16), i32, bool)>,
    values: &[&[u8]],
) -> Result<i64, i16> {
    let mut batch = hdi_log::batch::build_batch(0, 1_000, values);
    let mut transactional_id = None;
    if let Some(((id, epoch), seq, transactional)) = producer {
        batch = hdi_log::batch::with_producer(batch, id, epoch, seq);
        if transactional {
            batch[21..23].copy_from_slice(&TRANSACTIONAL_BIT.to_be_bytes());
            hdi_log::batch::reseal(&mut batch);
            transactional_id = Some(TransactionalId(s("tx")));
        }
    }
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id)
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let response: ProduceResponse =
        call(broker, ApiKey::Produce, 8, RequestKind::Produce(request)).await;
    let partition = &response.responses[0].partition_responses[0];
    match partition.error_code {
        0 => Ok(partition.base_offset),
        code => Err(code),
    }
}

/// A fetch of `topic`-0 from `offset`: the partition's answer.
async fn fetch(
    broker: &Broker,
    topic: &str,
    offset: i64,
    read_committed: bool,
) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut response: FetchResponse =
        call(broker, ApiKey::Fetch, 11, RequestKind::Fetch(request)).await;
    let partition = response.responses.remove(0).partitions.remove(0);
    assert_eq!(partition.error_code, 0);
    partition
}

/// The values a Kafka consumer returns from `partition`'s answer: control records skipped and,
/// for `read_committed`, the records of aborted transactions dropped as Kafka's fetcher does
/// (an aborted transaction's producer is skipped from its first offset until its abort marker).
fn consumed(partition: &fetch_response::PartitionData, read_committed: bool) -> Vec<String> {
    let mut aborted: Vec<(i64, i64)> = partition
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.first_offset, a.producer_id.0))
        .collect();
    aborted.sort_unstable();
    let mut aborted = aborted.into_iter().peekable();
    let mut skipping: HashSet<i64> = HashSet::new();
    let mut bytes = partition.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for record in set.records {
            if read_committed {
                while let Some((_, producer)) =
                    aborted.next_if(|(first, _)| *first <= record.offset)
                {
                    skipping.insert(producer);
                }
            }
            if record.control {
                if record.key.as_deref() == Some(&[0, 0, 0, 0][..]) {
                    skipping.remove(&record.producer_id);
                }
                continue;
            }
            if read_committed && record.transactional && skipping.contains(&record.producer_id) {
                continue;
            }
            let value = record.value.unwrap_or_default();
            out.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    out
}

/// `(first offset, producer id)` of each aborted transaction listed.
fn aborted(partition: &fetch_response::PartitionData) -> Option<BTreeSet<(i64, i64)>> {
    partition.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect()
    })
}

/// ListOffsets latest of `topic`-0 at `isolation_level`.
async fn latest(broker: &Broker, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let response: ListOffsetsResponse = call(
        broker,
        ApiKey::ListOffsets,
        5,
        RequestKind::ListOffsets(request),
    )
    .await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

fn marker(producer: (i64, i16), coordinator_epoch: i32, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: producer.0,
        producer_epoch: producer.1,
        coordinator_epoch,
        commit,
    }
}

async fn mark(broker: &Broker, marker: TxnMarker, topic: &str) -> i16 {
    let answer = write_txn_markers(broker, marker, vec![(topic.to_owned(), 0)]).await;
    assert_eq!(answer.len(), 1);
    answer[0].1
}

#[tokio::test(flavor = "multi_thread")]
async fn txn_read_committed_stops_at_the_last_stable_offset_and_lists_aborted_transactions() {
    let dir = temp_dir("txn-partitions");
    let broker = open_unverified(dir.path()).await;
    common::create_topic(&broker, "t", 1).await;
    let a = producer_id(&broker).await;
    let b = producer_id(&broker).await;
    assert_ne!(a.0, b.0);

    // a's transaction at 0-1, a plain record at 2, b's transaction at 3.
    assert_eq!(
        produce(&broker, "t", Some((a, 0, true)), &[b"a1", b"a2"]).await,
        Ok(0)
    );
    assert_eq!(produce(&broker, "t", None, &[b"plain"]).await, Ok(2));
    assert_eq!(
        produce(&broker, "t", Some((b, 0, true)), &[b"b1"]).await,
        Ok(3)
    );
    // While a's transaction is open nothing is stable: read_committed reads nothing.
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (4, 0)
    );
    assert_eq!(consumed(&committed, true), Vec::<String>::new());
    assert_eq!(aborted(&committed), Some(BTreeSet::new()));
    let uncommitted = fetch(&broker, "t", 0, false).await;
    assert_eq!(uncommitted.last_stable_offset, 0);
    assert_eq!(aborted(&uncommitted), None);
    assert_eq!(consumed(&uncommitted, false), ["a1", "a2", "plain", "b1"]);
    assert_eq!(
        (latest(&broker, "t", 1).await, latest(&broker, "t", 0).await),
        (0, 4)
    );

    // Abort a (and a partition that does not exist): the marker lands at 4, b holds the LSO at 3.
    let answer = write_txn_markers(
        &broker,
        marker(a, 0, false),
        vec![("t".to_owned(), 0), ("nope".to_owned(), 0)],
    )
    .await;
    assert_eq!(
        answer,
        vec![
            (("t".to_owned(), 0), 0),
            (("nope".to_owned(), 0), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (5, 3)
    );
    assert_eq!(aborted(&committed), Some(BTreeSet::from([(0, a.0)])));
    assert_eq!(consumed(&committed, true), ["plain"]);
    assert_eq!(latest(&broker, "t", 1).await, 3);

    // Commit b: everything is stable; the consumer sees b's record, still not a's.
    assert_eq!(mark(&broker, marker(b, 0, true), "t").await, 0);
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (6, 6)
    );
    assert_eq!(consumed(&committed, true), ["plain", "b1"]);
    // From past a's marker, a's aborted transaction is no longer listed.
    assert_eq!(
        aborted(&fetch(&broker, "t", 5, true).await),
        Some(BTreeSet::new())
    );
    // read_uncommitted sees every data record (control batches are the consumer's to skip).
    assert_eq!(
        consumed(&fetch(&broker, "t", 0, false).await, false),
        ["a1", "a2", "plain", "b1"]
    );

    // Stale markers are fenced: an older producer epoch, an older coordinator epoch.
    assert_eq!(
        mark(&broker, marker((a.0, a.1 - 1), 0, true), "t").await,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(mark(&broker, marker(b, 3, true), "t").await, 0);
    assert_eq!(
        mark(&broker, marker(b, 2, true), "t").await,
        TRANSACTION_COORDINATOR_FENCED
    );

    // A peer's markers over the quorum listener (as the coordinator on another broker sends
    // them): a's next transaction at 7 (after b's empty commit at 6), aborted by a peer.
    assert_eq!(
        produce(&broker, "t", Some((a, 2, true)), &[b"a3"]).await,
        Ok(7)
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let quorum = tokio::spawn(hdi_broker::server::serve_quorum(
        std::sync::Arc::clone(&broker.broker),
        listener,
    ));
    let mut peer = hdi_broker::cluster::rpc::Peer::new(addr);
    let request = hdi_broker::cluster::rpc::Request::WriteTxnMarkers(
        hdi_broker::cluster::rpc::WriteTxnMarkersRequest {
            from: 2,
            marker: marker(a, 1, false),
            partitions: vec![("t".to_owned(), 0)],
        },
    );
    let (answer, _) = peer
        .call::<Vec<((String, i32), i16)>>(&request, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(answer, vec![(("t".to_owned(), 0), 0)]);
    quorum.abort();
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(committed.last_stable_offset, 9);
    assert_eq!(
        aborted(&committed),
        Some(BTreeSet::from([(0, a.0), (7, a.0)]))
    );
    assert_eq!(consumed(&committed, true), ["plain", "b1"]);

    // b opens a transaction at 9 and the broker restarts: the state is rebuilt from the log.
    assert_eq!(
        produce(&broker, "t", Some((b, 1, true)), &[b"b2"]).await,
        Ok(9)
    );
    assert_eq!(produce(&broker, "t", None, &[b"after"]).await, Ok(10));
    broker.stop().await;
    let broker = open_unverified(dir.path()).await;
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (11, 9)
    );
    assert_eq!(
        aborted(&committed),
        Some(BTreeSet::from([(0, a.0), (7, a.0)]))
    );
    assert_eq!(consumed(&committed, true), ["plain", "b1"]);
    // The coordinator epoch seen for b survived too.
    assert_eq!(
        mark(&broker, marker(b, 2, true), "t").await,
        TRANSACTION_COORDINATOR_FENCED
    );
    assert_eq!(mark(&broker, marker(b, 3, true), "t").await, 0);
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(committed.last_stable_offset, 12);
    assert_eq!(consumed(&committed, true), ["plain", "b1", "b2", "after"]);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn txn_with_verification_a_batch_the_coordinator_does_not_know_is_refused() {
    let dir = temp_dir("txn-partitions-verified");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "t", 1).await;
    let a = producer_id(&broker).await;
    // Transactional id "tx" was never initialised: the coordinator knows no such producer
    // (once it has loaded: NOT_ENOUGH_REPLICAS, retriable, until then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let refused = loop {
        match produce(&broker, "t", Some((a, 0, true)), &[b"a1"]).await {
            Err(NOT_ENOUGH_REPLICAS) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    assert_eq!(refused, Err(INVALID_PRODUCER_ID_MAPPING));
    let committed = fetch(&broker, "t", 0, true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (0, 0)
    );
    // Plain batches are unaffected.
    assert_eq!(produce(&broker, "t", None, &[b"plain"]).await, Ok(0));
    assert_eq!(fetch(&broker, "t", 0, true).await.last_stable_offset, 1);
    broker.stop().await;
}
