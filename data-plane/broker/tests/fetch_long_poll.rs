//! Fetch long-polls: with no data it waits `max_wait_ms`, and an append wakes it at once (no
//! polling interval); `min_bytes` holds the answer until enough data arrived.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdi_broker::config::Flags;
use hdi_broker::server::{Broker, handle_frame};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn frame(key: ApiKey, version: i16, request: &RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("poll"))
}

fn fetch_request(max_wait_ms: i32, min_bytes: i32) -> Bytes {
    let request = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    frame(ApiKey::Fetch, 11, &RequestKind::Fetch(request))
}

fn produce_request(payload: &[u8]) -> Bytes {
    let batch = hdi_log::batch::build_batch(0, 0, &[payload]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    frame(ApiKey::Produce, 7, &RequestKind::Produce(request))
}

fn records_in(response: Bytes) -> usize {
    let mut body = response.slice(4..);
    ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(11)).unwrap();
    let fetch = FetchResponse::decode(&mut body, 11).unwrap();
    fetch.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_waits_and_is_woken_by_an_append() {
    let dir = std::env::temp_dir().join(format!("hdi-broker-poll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let flags = Flags::parse_from([
        "hdi-broker",
        "--node-id",
        "1",
        "--listen",
        "127.0.0.1:9092",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let broker = Broker::open(flags.resolve().unwrap()).unwrap();
    broker
        .topics
        .create("poll", 1, Default::default(), false)
        .unwrap();
    let peer = "127.0.0.1:1".parse().unwrap();

    // Nothing to read: the answer comes after max_wait_ms, empty.
    let started = Instant::now();
    let empty = handle_frame(&broker, fetch_request(400, 1), peer)
        .await
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(records_in(empty), 0);
    assert!(
        waited >= Duration::from_millis(380) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );

    // A long poll (10 s) is woken by an append 300 ms later.
    let waiter = {
        let broker = std::sync::Arc::clone(&broker);
        tokio::spawn(async move {
            let started = Instant::now();
            let response = handle_frame(&broker, fetch_request(10_000, 1), peer)
                .await
                .unwrap()
                .unwrap();
            (started.elapsed(), records_in(response))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle_frame(&broker, produce_request(b"wake up"), peer)
        .await
        .unwrap()
        .unwrap();
    let (took, bytes) = waiter.await.unwrap();
    assert!(bytes > 0);
    assert!(took < Duration::from_millis(1500), "woken after {took:?}");

    // min_bytes larger than what is there: held until max_wait_ms, then answered with what exists.
    let started = Instant::now();
    let response = handle_frame(&broker, fetch_request(500, 1 << 20), peer)
        .await
        .unwrap()
        .unwrap();
    assert!(records_in(response) > 0);
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
