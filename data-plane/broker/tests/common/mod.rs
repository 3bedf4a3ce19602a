//! Shared helpers of the broker's integration tests: a broker in a temporary directory, request
//! framing and checked response decoding with `hdi-kafka-client`'s wire layer, a typed
//! in-process call (as a principal too), Produce requests, and the fuzz tests' generator.
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use hdi_broker::broker::Broker;
use hdi_broker::config::Flags;
use hdi_broker::security::SecurityProtocol;
use hdi_broker::server::{Session, handle_session_frame};
use hdi_kafka_client::wire;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestKind, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// A fresh, empty directory for one test, removed when dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("hdi-broker-test-{tag}-"))
        .tempdir()
        .unwrap()
}

/// xorshift64: the same cases every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// An in-process single-node broker with its background tasks; [`TestBroker::stop`] stops it
/// (Raft included) before the same directory is opened again.
pub struct TestBroker {
    /// The broker.
    pub broker: Arc<Broker>,
    tasks: tokio::task::JoinSet<()>,
}

impl std::ops::Deref for TestBroker {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl TestBroker {
    /// Stops the tasks and the Raft node, and flushes.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.broker.cluster.raft.shutdown().await.unwrap();
        self.broker.flush_all();
    }
}

/// A broker over `dir`, as `hdi-broker --node-id 1 --listen 127.0.0.1:9092` would open it, once
/// it serves (registered and unfenced in its one-member cluster).
pub async fn open(dir: &Path) -> TestBroker {
    open_with(dir, &[]).await
}

/// [`open`] with more flags.
pub async fn open_with(dir: &Path, extra: &[&str]) -> TestBroker {
    let mut args = vec![
        "hdi-broker",
        "--node-id",
        "1",
        "--listen",
        "127.0.0.1:9092",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let flags = Flags::parse_from(args);
    let broker = Broker::open(flags.resolve().unwrap(), String::new())
        .await
        .unwrap();
    let tasks = broker.start_tasks();
    assert!(
        broker
            .wait_until_unfenced(std::time::Duration::from_secs(20))
            .await
    );
    TestBroker { broker, tasks }
}

/// A request frame body (without the length prefix).
pub fn frame(key: ApiKey, version: i16, correlation_id: i32, request: &RequestKind) -> Bytes {
    let frame = wire::encode_request_with(
        key,
        version,
        correlation_id,
        Some("hdi-broker-test"),
        |buf| request.encode(buf, version),
    )
    .unwrap();
    frame.freeze().slice(4..)
}

/// The client address handed to `handle_frame`.
pub fn peer() -> std::net::SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// A string field.
pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// A session authenticated as `principal` on a SASL_SSL listener.
pub fn session(principal: &str) -> Session {
    Session::authenticated(SecurityProtocol::SaslSsl, principal)
}

/// Sends one request through `handle_frame` and decodes its response.
pub async fn call<T: Decodable>(
    broker: &Broker,
    key: ApiKey,
    version: i16,
    request: RequestKind,
) -> T {
    call_as(broker, &mut Session::plaintext(), key, version, request).await
}

/// [`call`] on a connection's `session` (an authenticated principal, for ACL tests).
pub async fn call_as<T: Decodable>(
    broker: &Broker,
    session: &mut Session,
    key: ApiKey,
    version: i16,
    request: RequestKind,
) -> T {
    let response = handle_session_frame(broker, session, frame(key, version, 5, &request), peer())
        .await
        .unwrap()
        .unwrap();
    let size = wire::response_size(
        key,
        [response[0], response[1], response[2], response[3]],
        usize::MAX,
    )
    .unwrap();
    assert_eq!(size, response.len() - 4);
    wire::decode_response_as(key, response.slice(4..), version, 5).unwrap()
}

/// A topic name.
pub fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A Produce request (acks 1) of one record with `payload` and `timestamp` to partition 0 of
/// `topic`.
pub fn produce_request(topic: &str, timestamp: i64, payload: &[u8]) -> RequestKind {
    let batch = hdi_log::batch::build_batch(0, timestamp, &[payload]);
    RequestKind::Produce(
        ProduceRequest::default()
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
            ]),
    )
}

/// Produces one record with `payload` and `timestamp` to partition 0 of `topic` and checks it
/// was accepted.
pub async fn produce(broker: &Broker, topic: &str, timestamp: i64, payload: &[u8]) {
    let request = produce_request(topic, timestamp, payload);
    let response: ProduceResponse = call(broker, ApiKey::Produce, 7, request).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// Creates a topic with replication factor 1 through the metadata quorum.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    broker
        .cluster
        .create_topic(
            hdi_broker::cluster::topics::NewTopic {
                name: topic.to_owned(),
                partitions,
                replication_factor: 1,
                assignments: None,
                configs: Default::default(),
            },
            1,
            false,
        )
        .await
        .unwrap();
    // Wait until the replicas exist locally.
    for _ in 0..200 {
        if (0..partitions).all(|p| broker.replicas.get(topic, p).is_some_and(|r| r.is_leader())) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("topic {topic} has no local leaders");
}
