//! Protocol details real clients depend on: JoinGroup before v7 never sends a null
//! protocol_name; ListOffsets by time answers with a non-negative timestamp; Fetch with
//! min_bytes 0 answers at once; a deleted topic never comes back, and no topic name is special.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdi_broker::config::Flags;
use hdi_broker::server::{Broker, handle_frame};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let flags = Flags::parse_from([
        "hdi-broker",
        "--node-id",
        "1",
        "--listen",
        "127.0.0.1:9092",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    Broker::open(flags.resolve().unwrap()).unwrap()
}

fn temp(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hdi-broker-sem-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn call<T: Decodable>(broker: &Broker, key: ApiKey, version: i16, request: RequestKind) -> T {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(5)
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let response = handle_frame(broker, buf.freeze(), "127.0.0.1:1".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut body = response.slice(4..);
    ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    T::decode(&mut body, version).unwrap()
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

async fn produce(broker: &Broker, topic: &str, timestamp: i64) {
    let batch = hdi_log::batch::build_batch(0, timestamp, &[b"v"]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
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
        call(broker, ApiKey::Produce, 7, RequestKind::Produce(request)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn join_group_before_v7_never_sends_a_null_protocol_name() {
    let dir = temp("join");
    let broker = open(&dir);
    for version in [4i16, 5, 6] {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range")),
            ]);
        let response: JoinGroupResponse = call(
            &broker,
            ApiKey::JoinGroup,
            version,
            RequestKind::JoinGroup(request),
        )
        .await;
        assert_eq!(response.error_code, 79, "MEMBER_ID_REQUIRED");
        assert!(
            response.protocol_name.is_some(),
            "v{version}: protocol_name must not be null"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_by_time_answers_with_a_timestamp() {
    let dir = temp("times");
    let broker = open(&dir);
    broker
        .topics
        .create("t", 1, Default::default(), false)
        .unwrap();
    produce(&broker, "t", 1_000).await;
    produce(&broker, "t", 2_000).await;
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(1_500),
            ]),
    ]);
    let response: ListOffsetsResponse = call(
        &broker,
        ApiKey::ListOffsets,
        5,
        RequestKind::ListOffsets(request),
    )
    .await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!((partition.offset, partition.timestamp), (1, 2_000));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_v0_with_no_topics_lists_every_topic() {
    let dir = temp("metadata");
    let broker = open(&dir);
    broker
        .topics
        .create("a", 1, Default::default(), false)
        .unwrap();
    broker
        .topics
        .create("b", 2, Default::default(), false)
        .unwrap();
    let all = MetadataRequest::default().with_topics(Some(Vec::new()));
    let response: MetadataResponse = call(
        &broker,
        ApiKey::Metadata,
        0,
        RequestKind::Metadata(all.clone()),
    )
    .await;
    assert_eq!(response.topics.len(), 2, "v0: empty list = all topics");
    let response: MetadataResponse =
        call(&broker, ApiKey::Metadata, 1, RequestKind::Metadata(all)).await;
    assert_eq!(response.topics.len(), 0, "v1+: empty list = no topics");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_with_min_bytes_zero_answers_at_once() {
    let dir = temp("minbytes");
    let broker = open(&dir);
    broker
        .topics
        .create("t", 1, Default::default(), false)
        .unwrap();
    let request = FetchRequest::default()
        .with_max_wait_ms(5_000)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let started = Instant::now();
    let _: FetchResponse = call(&broker, ApiKey::Fetch, 11, RequestKind::Fetch(request)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_topics_stay_deleted_and_no_name_is_special() {
    let dir = temp("delete");
    {
        let broker = open(&dir);
        broker
            .topics
            .create("gone", 1, Default::default(), false)
            .unwrap();
        broker
            .topics
            .create("orders.deleting", 1, Default::default(), false)
            .unwrap();
        produce(&broker, "gone", 1).await;
        produce(&broker, "orders.deleting", 1).await;
        broker.topics.delete("gone").unwrap();
        // Re-created with the same name: empty, not the old data.
        broker
            .topics
            .create("gone", 1, Default::default(), false)
            .unwrap();
        assert_eq!(
            broker
                .topics
                .get("gone")
                .unwrap()
                .partition(0)
                .unwrap()
                .offsets(),
            (0, 0)
        );
        broker.topics.delete("gone").unwrap();
    }
    let broker = open(&dir);
    assert!(
        broker.topics.get("gone").is_none(),
        "a deleted topic came back after a restart"
    );
    let kept = broker
        .topics
        .get("orders.deleting")
        .expect("a topic whose name ends in .deleting survives a restart");
    assert_eq!(kept.partition(0).unwrap().offsets(), (0, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}
