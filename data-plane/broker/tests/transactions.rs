//! The transaction coordinator over the wire (KIP-98), as a transactional producer drives it:
//! FindCoordinator for a transactional id, InitProducerId, AddPartitionsToTxn, transactional
//! Produce, EndTxn commit and abort (markers written, the last stable offset moves, aborted
//! transactions listed to read_committed fetches), fencing of an older producer instance,
//! TxnOffsetCommit whose offsets only show once committed (UNSTABLE_OFFSET_COMMIT meanwhile),
//! a transaction past its timeout aborted by the coordinator, DescribeTransactions and
//! ListTransactions, and all of it still there after a restart. Hanging transactions (KIP-890
//! part 1): a transactional batch the coordinator does not know of (a partition not added, a
//! zombie's after its transaction ended, a forged epoch) is refused and never holds the last
//! stable offset; DescribeProducers shows a partition's producers; a coordinator whose markers a
//! partition fenced stops writing them.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{call, name, open, s, temp_dir};
use hdi_broker::broker::Broker;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const CONCURRENT_TRANSACTIONS: i16 = 51;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

/// InitProducerId for `id`, retried while the coordinator loads or completes a transaction.
async fn init(broker: &Broker, id: &str, timeout_ms: i32) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = init_once(broker, id, timeout_ms, 4).await;
        match response.error_code {
            0 => return (response.producer_id.0, response.producer_epoch),
            COORDINATOR_LOAD_IN_PROGRESS | CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            code => panic!("InitProducerId {id}: {code}"),
        }
    }
}

async fn init_once(
    broker: &Broker,
    id: &str,
    timeout_ms: i32,
    version: i16,
) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(
        broker,
        ApiKey::InitProducerId,
        version,
        RequestKind::InitProducerId(request),
    )
    .await
}

/// AddPartitionsToTxn v3: the error code of each `(topic, partition)`, in order.
async fn add_partitions(
    broker: &Broker,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<i16> {
    let topics = partitions
        .iter()
        .map(|(topic, partition)| {
            AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![*partition])
        })
        .collect();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(topics);
    let response: AddPartitionsToTxnResponse = call(
        broker,
        ApiKey::AddPartitionsToTxn,
        3,
        RequestKind::AddPartitionsToTxn(request),
    )
    .await;
    partitions
        .iter()
        .map(|(topic, partition)| {
            response
                .results_by_topic_v3_and_below
                .iter()
                .find(|t| t.name.0.as_str() == *topic)
                .and_then(|t| {
                    t.results_by_partition
                        .iter()
                        .find(|p| p.partition_index == *partition)
                })
                .map(|p| p.partition_error_code)
                .unwrap()
        })
        .collect()
}

/// Produces `values` as one transactional batch of transactional id `id`'s `producer` from
/// `sequence` to `topic`-0.
async fn produce(
    broker: &Broker,
    (id, topic): (&str, &str),
    producer: (i64, i16),
    sequence: i32,
    values: &[&str],
) -> i16 {
    produce_batch(broker, (Some(id), topic), producer, sequence, values).await
}

/// Produces `values` as one batch of `producer` from `sequence` to `topic`-0: transactional
/// (of transactional id `id`) when `id` is given, else a plain idempotent batch.
async fn produce_batch(
    broker: &Broker,
    (id, topic): (Option<&str>, &str),
    producer: (i64, i16),
    sequence: i32,
    values: &[&str],
) -> i16 {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: id.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    let request = ProduceRequest::default()
        .with_transactional_id(id.map(txn_id))
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(buf.freeze())),
                ]),
        ]);
    let response: ProduceResponse =
        call(broker, ApiKey::Produce, 7, RequestKind::Produce(request)).await;
    response.responses[0].partition_responses[0].error_code
}

async fn end(broker: &Broker, id: &str, producer: (i64, i16), commit: bool, version: i16) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let response: EndTxnResponse = call(
        broker,
        ApiKey::EndTxn,
        version,
        RequestKind::EndTxn(request),
    )
    .await;
    response.error_code
}

async fn describe(broker: &Broker, id: &str) -> describe_transactions_response::TransactionState {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    let mut response: DescribeTransactionsResponse = call(
        broker,
        ApiKey::DescribeTransactions,
        0,
        RequestKind::DescribeTransactions(request),
    )
    .await;
    response.transaction_states.remove(0)
}

/// Waits until `id`'s transaction is in `state` (its markers written).
async fn wait_state(
    broker: &Broker,
    id: &str,
    state: &str,
) -> describe_transactions_response::TransactionState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let described = describe(broker, id).await;
        if described.transaction_state.as_str() == state {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stays {:?} (error {}), never {state}",
            described.transaction_state.as_str(),
            described.error_code
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A read_committed (or not) fetch of `topic`-0 from offset 0: the partition's answer.
async fn fetch(
    broker: &Broker,
    topic: &str,
    read_committed: bool,
) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut response: FetchResponse =
        call(broker, ApiKey::Fetch, 11, RequestKind::Fetch(request)).await;
    response.responses.remove(0).partitions.remove(0)
}

/// `(offset, value, is control)` of every record in a fetch answer; a control record's value
/// is its type (`COMMIT`, `ABORT`, from its key).
fn records(partition: &fetch_response::PartitionData) -> Vec<(i64, String, bool)> {
    let mut bytes = partition.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for r in set.records {
            let value = if r.control {
                match r.key.as_deref() {
                    Some([0, 0, 0, 0]) => "ABORT".to_owned(),
                    Some([0, 0, 0, 1]) => "COMMIT".to_owned(),
                    other => format!("{other:?}"),
                }
            } else {
                r.value
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default()
            };
            out.push((r.offset, value, r.control));
        }
    }
    out
}

/// DescribeProducers of `topic`-`partition`: its error code and producers.
async fn describe_producers(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> (i16, Vec<describe_producers_response::ProducerState>) {
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![partition]),
    ]);
    let mut response: DescribeProducersResponse = call(
        broker,
        ApiKey::DescribeProducers,
        0,
        RequestKind::DescribeProducers(request),
    )
    .await;
    let answer = response.topics.remove(0).partitions.remove(0);
    assert_eq!(answer.partition_index, partition);
    (answer.error_code, answer.active_producers)
}

/// `producer` with an epoch one above its own (no coordinator handed it out).
fn forged_epoch(producer: (i64, i16)) -> (i64, i16) {
    (producer.0, producer.1 + 1)
}

/// `(high watermark, last stable offset)` of `topic`-0.
async fn stable(broker: &Broker, topic: &str) -> (i64, i64) {
    let answer = fetch(broker, topic, true).await;
    (answer.high_watermark, answer.last_stable_offset)
}

async fn offset_fetch(broker: &Broker, group: &str, require_stable: bool) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name("in"))
                .with_partition_indexes(vec![0]),
        ]));
    let response: OffsetFetchResponse = call(
        broker,
        ApiKey::OffsetFetch,
        7,
        RequestKind::OffsetFetch(request),
    )
    .await;
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_abort_fence_and_time_out_over_the_wire() {
    let dir = temp_dir("transactions");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "t", 1).await;
    common::create_topic(&broker, "in", 1).await;

    // The coordinator of a transactional id is found like a group's (key type 1).
    let found: FindCoordinatorResponse = call(
        &broker,
        ApiKey::FindCoordinator,
        4,
        RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("tx")]),
        ),
    )
    .await;
    assert_eq!(
        (
            found.coordinators[0].error_code,
            found.coordinators[0].node_id.0
        ),
        (0, 1)
    );

    // A timeout over transaction.max.timeout.ms is refused.
    let refused = loop {
        let r = init_once(&broker, "tx", 900_001, 4).await;
        if r.error_code != COORDINATOR_LOAD_IN_PROGRESS {
            break r.error_code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused, INVALID_TRANSACTION_TIMEOUT);

    // A committed transaction.
    let producer = init(&broker, "tx", 60_000).await;
    assert_eq!(producer.1, 0);
    assert_eq!(
        add_partitions(&broker, "tx", producer, &[("t", 0), ("nope", 0)]).await,
        vec![OPERATION_NOT_ATTEMPTED, 3],
        "an unknown topic fails the request"
    );
    assert_eq!(
        add_partitions(&broker, "tx", producer, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(
        produce(&broker, ("tx", "t"), producer, 0, &["a", "b"]).await,
        0
    );
    let open_txn = fetch(&broker, "t", true).await;
    assert_eq!(
        (open_txn.high_watermark, open_txn.last_stable_offset),
        (2, 0),
        "an open transaction holds the last stable offset"
    );
    let described = describe(&broker, "tx").await;
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    assert_eq!(described.topics[0].partitions, vec![0]);
    assert_eq!(end(&broker, "tx", producer, true, 3).await, 0);
    let done = wait_state(&broker, "tx", "CompleteCommit").await;
    assert!(done.topics.is_empty());
    let committed = fetch(&broker, "t", true).await;
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (3, 3)
    );
    assert_eq!(
        records(&committed),
        vec![
            (0, "a".into(), false),
            (1, "b".into(), false),
            (2, "COMMIT".into(), true)
        ],
        "the records, then the commit marker"
    );
    // A retried EndTxn of the same outcome is answered; the other outcome is not.
    assert_eq!(end(&broker, "tx", producer, true, 3).await, 0);
    assert_ne!(end(&broker, "tx", producer, false, 3).await, 0);

    // An aborted one: read_committed fetches list it.
    assert_eq!(
        add_partitions(&broker, "tx", producer, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(produce(&broker, ("tx", "t"), producer, 2, &["x"]).await, 0);
    assert_eq!(end(&broker, "tx", producer, false, 3).await, 0);
    wait_state(&broker, "tx", "CompleteAbort").await;
    let aborted = fetch(&broker, "t", true).await;
    assert_eq!(aborted.last_stable_offset, 5);
    let listed: Vec<(i64, i64)> = aborted
        .aborted_transactions
        .unwrap_or_default()
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(listed, vec![(producer.0, 3)]);

    // ListTransactions filters by state and producer id.
    let list = |states: Vec<&str>, producers: Vec<i64>| {
        let request = ListTransactionsRequest::default()
            .with_state_filters(states.into_iter().map(s).collect())
            .with_producer_id_filters(producers.into_iter().map(ProducerId).collect());
        let broker = &broker;
        async move {
            let r: ListTransactionsResponse = call(
                broker,
                ApiKey::ListTransactions,
                1,
                RequestKind::ListTransactions(request),
            )
            .await;
            r
        }
    };
    let listed = list(vec!["CompleteAbort", "Bogus"], vec![]).await;
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(
        listed.transaction_states[0].transactional_id.0.as_str(),
        "tx"
    );
    assert_eq!(listed.unknown_state_filters, vec![s("Bogus")]);
    assert!(
        list(vec!["Ongoing"], vec![])
            .await
            .transaction_states
            .is_empty()
    );
    assert!(
        list(vec![], vec![producer.0 + 1])
            .await
            .transaction_states
            .is_empty()
    );

    // A second instance fences the first.
    let second = init(&broker, "tx", 60_000).await;
    assert_eq!(second, (producer.0, 1));
    assert_eq!(
        add_partitions(&broker, "tx", producer, &[("t", 0)]).await,
        vec![PRODUCER_FENCED]
    );
    assert_eq!(end(&broker, "tx", producer, true, 3).await, PRODUCER_FENCED);
    assert_eq!(
        end(&broker, "tx", producer, true, 1).await,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        add_partitions(&broker, "tx", (producer.0 + 1, 1), &[("t", 0)]).await,
        vec![INVALID_PRODUCER_ID_MAPPING]
    );

    // Offsets committed in a transaction: unstable until it commits.
    assert_eq!(
        add_partitions(&broker, "tx", second, &[("t", 0)]).await,
        vec![0]
    );
    let added: AddOffsetsToTxnResponse = call(
        &broker,
        ApiKey::AddOffsetsToTxn,
        3,
        RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id("tx"))
                .with_producer_id(ProducerId(second.0))
                .with_producer_epoch(second.1)
                .with_group_id(GroupId(s("g"))),
        ),
    )
    .await;
    assert_eq!(added.error_code, 0);
    let committed: TxnOffsetCommitResponse = call(
        &broker,
        ApiKey::TxnOffsetCommit,
        3,
        RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id("tx"))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(second.0))
                .with_producer_epoch(second.1)
                .with_generation_id(-1)
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(name("in"))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(5),
                        ]),
                ]),
        ),
    )
    .await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        offset_fetch(&broker, "g", true).await,
        (UNSTABLE_OFFSET_COMMIT, -1)
    );
    assert_eq!(offset_fetch(&broker, "g", false).await, (0, -1));
    assert_eq!(produce(&broker, ("tx", "t"), second, 0, &["y"]).await, 0);
    assert_eq!(end(&broker, "tx", second, true, 3).await, 0);
    wait_state(&broker, "tx", "CompleteCommit").await;
    assert_eq!(offset_fetch(&broker, "g", true).await, (0, 5));

    // A transaction past its timeout is aborted by the coordinator, its producer fenced.
    let short = init(&broker, "short", 1_000).await;
    assert_eq!(
        add_partitions(&broker, "short", short, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(
        produce(&broker, ("short", "t"), short, 0, &["late"]).await,
        0
    );
    let timed_out = wait_state(&broker, "short", "CompleteAbort").await;
    assert_eq!(
        timed_out.producer_epoch,
        short.1 + 1,
        "the zombie is fenced"
    );
    assert_eq!(end(&broker, "short", short, true, 3).await, PRODUCER_FENCED);
    let after = fetch(&broker, "t", true).await;
    assert_eq!(after.last_stable_offset, after.high_watermark);

    // A new instance while a transaction is open aborts it first.
    let third = init(&broker, "tx", 60_000).await;
    assert_eq!(
        add_partitions(&broker, "tx", third, &[("t", 0)]).await,
        vec![0]
    );
    assert_eq!(produce(&broker, ("tx", "t"), third, 0, &["open"]).await, 0);
    let first_try = init_once(&broker, "tx", 60_000, 4).await;
    assert_eq!(first_try.error_code, CONCURRENT_TRANSACTIONS);
    let fourth = init(&broker, "tx", 60_000).await;
    assert_eq!(
        fourth,
        (third.0, third.1 + 2),
        "fenced by the abort, then bumped"
    );
    assert_eq!(
        describe(&broker, "tx").await.transaction_state.as_str(),
        "Empty"
    );

    // Everything survives a restart (the quorum's log and snapshot).
    broker.stop().await;
    let broker = open(dir.path()).await;
    let described = wait_state(&broker, "tx", "Empty").await;
    assert_eq!((described.producer_id.0, described.producer_epoch), fourth);
    wait_state(&broker, "short", "CompleteAbort").await;
    assert_eq!(offset_fetch(&broker, "g", true).await, (0, 5));
    let fifth = init(&broker, "tx", 60_000).await;
    assert_eq!(fifth, (fourth.0, fourth.1 + 1));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_the_coordinator_does_not_know_never_open_a_transaction() {
    let dir = temp_dir("txn-verification");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "v", 1).await;
    let producer = init(&broker, "hv", 60_000).await;

    // InitProducerId with only one of producer id and epoch set is INVALID_REQUEST.
    for (id, epoch) in [(producer.0, -1), (-1, 0)] {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id("hv")))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        let response: InitProducerIdResponse = call(
            &broker,
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(request),
        )
        .await;
        assert_eq!(
            (response.error_code, response.producer_id.0),
            (INVALID_REQUEST, -1),
            "producer id {id}, epoch {epoch}"
        );
    }

    // A partition not added to the transaction: refused, nothing appended, nothing open.
    assert_eq!(
        produce(&broker, ("hv", "v"), producer, 0, &["stray"]).await,
        INVALID_TXN_STATE
    );
    assert_eq!(stable(&broker, "v").await, (0, 0));
    // A transactional id the coordinator does not know.
    assert_eq!(
        produce(&broker, ("nobody", "v"), producer, 0, &["stray"]).await,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(describe_producers(&broker, "v", 0).await, (0, vec![]));

    // Added: the first batch is verified, the next ones of the open transaction append as is.
    assert_eq!(
        add_partitions(&broker, "hv", producer, &[("v", 0)]).await,
        vec![0]
    );
    assert_eq!(produce(&broker, ("hv", "v"), producer, 0, &["a"]).await, 0);
    assert_eq!(produce(&broker, ("hv", "v"), producer, 1, &["b"]).await, 0);
    assert_eq!(stable(&broker, "v").await, (2, 0));

    // What a partition leader on another broker asks over the quorum listener.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let quorum = tokio::spawn(hdi_broker::server::serve_quorum(
        std::sync::Arc::clone(&broker.broker),
        listener,
    ));
    let mut peer = hdi_broker::cluster::rpc::Peer::new(addr);
    for (asked, partitions, want) in [
        (
            producer,
            vec![("v", 0), ("v", 1)],
            Ok(vec![0, INVALID_TXN_STATE]),
        ),
        (forged_epoch(producer), vec![("v", 0)], Err(PRODUCER_FENCED)),
        (
            (producer.0 + 1, producer.1),
            vec![("v", 0)],
            Err(INVALID_PRODUCER_ID_MAPPING),
        ),
    ] {
        let request = hdi_broker::cluster::rpc::Request::VerifyTxnPartitions(
            hdi_broker::cluster::rpc::VerifyTxnPartitionsRequest {
                from: 2,
                transactional_id: "hv".to_owned(),
                producer_id: asked.0,
                producer_epoch: asked.1,
                partitions: partitions
                    .iter()
                    .map(|(t, p)| ((*t).to_owned(), *p))
                    .collect(),
            },
        );
        let (answer, _) = peer
            .call::<Result<Vec<i16>, i16>>(&request, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(answer, want, "{asked:?} {partitions:?}");
    }
    quorum.abort();

    // A forged higher epoch (no coordinator handed it out) cannot raise the partition's epoch,
    // neither with a transactional batch nor a plain one.
    let forged = forged_epoch(producer);
    assert_eq!(
        produce(&broker, ("hv", "v"), forged, 0, &["forged"]).await,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_batch(&broker, (None, "v"), forged, 0, &["forged"]).await,
        INVALID_TXN_STATE
    );

    // DescribeProducers shows the open transaction (how operators find hanging ones).
    let (code, producers) = describe_producers(&broker, "v", 0).await;
    assert_eq!(code, 0);
    let state = producers
        .iter()
        .find(|p| p.producer_id.0 == producer.0)
        .unwrap();
    assert_eq!(
        (
            state.producer_epoch,
            state.last_sequence,
            state.current_txn_start_offset
        ),
        (i32::from(producer.1), 1, 0)
    );
    assert_eq!(
        describe_producers(&broker, "nope", 0).await.0,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // The abort's marker is written at the producer's epoch (the forgeries did not make it
    // stale) and ends the transaction on the partition.
    assert_eq!(end(&broker, "hv", producer, false, 3).await, 0);
    wait_state(&broker, "hv", "CompleteAbort").await;
    let aborted = fetch(&broker, "v", true).await;
    assert_eq!((aborted.high_watermark, aborted.last_stable_offset), (3, 3));
    assert_eq!(records(&aborted)[2], (2, "ABORT".into(), true));
    let (_, producers) = describe_producers(&broker, "v", 0).await;
    assert_eq!(producers[0].current_txn_start_offset, -1);
    assert!(producers[0].coordinator_epoch > 0);

    // A zombie's late batch of the aborted transaction (same epoch): refused, the last stable
    // offset is not pinned.
    assert_eq!(
        produce(&broker, ("hv", "v"), producer, 2, &["zombie"]).await,
        INVALID_TXN_STATE
    );
    assert_eq!(stable(&broker, "v").await, (3, 3));
    // After a new instance bumped the epoch, the old one is fenced.
    let second = init(&broker, "hv", 60_000).await;
    assert_eq!(second, (producer.0, producer.1 + 1));
    assert_eq!(
        produce(&broker, ("hv", "v"), producer, 2, &["zombie"]).await,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(stable(&broker, "v").await, (3, 3));

    // The new instance's transaction passes and commits.
    assert_eq!(
        add_partitions(&broker, "hv", second, &[("v", 0)]).await,
        vec![0]
    );
    assert_eq!(produce(&broker, ("hv", "v"), second, 0, &["c"]).await, 0);
    assert_eq!(end(&broker, "hv", second, true, 3).await, 0);
    wait_state(&broker, "hv", "CompleteCommit").await;
    assert_eq!(stable(&broker, "v").await, (5, 5));
    broker.stop().await;
}

/// A partition that saw a newer coordinator epoch fences the markers of a transaction: the
/// coordinator stops writing them (it used to retry every scan, forever, writing the marker
/// again to every other partition of the transaction each time).
#[tokio::test(flavor = "multi_thread")]
async fn fenced_markers_are_not_retried_at_the_same_coordinator_epoch() {
    let dir = temp_dir("txn-fenced-markers");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "fa", 1).await;
    common::create_topic(&broker, "fb", 1).await;
    let producer = init(&broker, "fz", 60_000).await;
    // Partition fa has seen a marker of this producer from a coordinator epoch far ahead.
    let ahead = hdi_broker::producers::TxnMarker {
        producer_id: producer.0,
        producer_epoch: producer.1,
        coordinator_epoch: 1_000_000,
        commit: false,
    };
    let written =
        hdi_broker::txn_markers::write_txn_markers(&broker, ahead, vec![("fa".to_owned(), 0)])
            .await;
    assert_eq!(written[0].1, 0);
    assert_eq!(
        add_partitions(&broker, "fz", producer, &[("fa", 0), ("fb", 0)]).await,
        vec![0, 0]
    );
    assert_eq!(produce(&broker, ("fz", "fa"), producer, 0, &["a"]).await, 0);
    assert_eq!(produce(&broker, ("fz", "fb"), producer, 0, &["b"]).await, 0);
    assert_eq!(end(&broker, "fz", producer, false, 3).await, 0);
    // fb takes its marker; fa refuses it as fenced, so the transaction stays PrepareAbort.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stable(&broker, "fb").await != (2, 2) {
        assert!(Instant::now() < deadline, "fb never got its marker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Ten scans later: no marker written again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stable(&broker, "fb").await, (2, 2));
    assert_eq!(
        describe(&broker, "fz").await.transaction_state.as_str(),
        "PrepareAbort"
    );
    broker.stop().await;
}
