//! Protocol details real clients depend on: JoinGroup before v7 never sends a null
//! protocol_name; ListOffsets by time answers with a non-negative timestamp; Fetch with
//! min_bytes 0 answers at once, a long poll waits `max_wait_ms`, is woken by an append (not by
//! polling) and honours `min_bytes`; a deleted topic never comes back, and no topic name is
//! special.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{call, name, open, produce, temp_dir as temp};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[tokio::test(flavor = "multi_thread")]
async fn join_group_before_v7_never_sends_a_null_protocol_name() {
    let dir = temp("join");
    let broker = open(dir.path()).await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_by_time_answers_with_a_timestamp() {
    let dir = temp("times");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "t", 1).await;
    produce(&broker, "t", 1_000, b"v").await;
    produce(&broker, "t", 2_000, b"v").await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_v0_with_no_topics_lists_every_topic() {
    let dir = temp("metadata");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "a", 1).await;
    common::create_topic(&broker, "b", 2).await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_with_min_bytes_zero_answers_at_once() {
    let dir = temp("minbytes");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "t", 1).await;
    let started = Instant::now();
    let _: FetchResponse = call(&broker, ApiKey::Fetch, 11, fetch_request("t", 5_000, 0)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_topics_stay_deleted_and_no_name_is_special() {
    let dir = temp("delete");
    {
        let broker = open(dir.path()).await;
        common::create_topic(&broker, "gone", 1).await;
        common::create_topic(&broker, "orders.deleting", 1).await;
        produce(&broker, "gone", 1, b"v").await;
        produce(&broker, "orders.deleting", 1, b"v").await;
        broker.cluster.delete_topic("gone").await.unwrap();
        // Re-created with the same name: empty, not the old data.
        common::create_topic(&broker, "gone", 1).await;
        assert_eq!(broker.replicas.get("gone", 0).unwrap().offsets(), (0, 0, 0));
        broker.cluster.delete_topic("gone").await.unwrap();
        broker.stop().await;
    }
    let broker = open(dir.path()).await;
    assert!(
        !broker.cluster.view().meta.topics.contains_key("gone"),
        "a deleted topic came back after a restart"
    );
    let kept = broker
        .replicas
        .get("orders.deleting", 0)
        .expect("a topic whose name ends in .deleting survives a restart");
    assert_eq!(kept.offsets(), (0, 1, 1));
}

/// A Fetch of partition 0 of `topic` from offset 0.
fn fetch_request(topic: &str, max_wait_ms: i32, min_bytes: i32) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    )
}

fn records_in(response: &FetchResponse) -> usize {
    response.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_waits_and_is_woken_by_an_append() {
    let dir = temp("poll");
    let broker = open(dir.path()).await;
    common::create_topic(&broker, "poll", 1).await;

    // Nothing to read: the answer comes after max_wait_ms, empty.
    let started = Instant::now();
    let empty: FetchResponse =
        call(&broker, ApiKey::Fetch, 11, fetch_request("poll", 400, 1)).await;
    let waited = started.elapsed();
    assert_eq!(records_in(&empty), 0);
    assert!(
        waited >= Duration::from_millis(380) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );

    // A long poll (10 s) is woken by an append 300 ms later.
    let waiter = {
        let broker = std::sync::Arc::clone(&broker.broker);
        tokio::spawn(async move {
            let started = Instant::now();
            let response: FetchResponse =
                call(&broker, ApiKey::Fetch, 11, fetch_request("poll", 10_000, 1)).await;
            (started.elapsed(), records_in(&response))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce(&broker, "poll", 0, b"wake up").await;
    let (took, bytes) = waiter.await.unwrap();
    assert!(bytes > 0);
    assert!(took < Duration::from_millis(1500), "woken after {took:?}");

    // min_bytes larger than what is there: held until max_wait_ms, then answered with what exists.
    let started = Instant::now();
    let response: FetchResponse = call(
        &broker,
        ApiKey::Fetch,
        11,
        fetch_request("poll", 500, 1 << 20),
    )
    .await;
    assert!(records_in(&response) > 0);
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
}
