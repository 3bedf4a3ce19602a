//! Log compaction end to end in one broker: a topic created by CreateTopics with
//! `cleanup.policy=compact` refuses keyless records (INVALID_RECORD), its log is cleaned by the
//! broker's cleaner task, and a consumer fetching from offset 0 reads the compacted view: the
//! latest value of every key, offsets going forward with gaps, a fetch at a cleaned-away offset
//! answering the next batch. DescribeConfigs shows the compaction configs with Kafka's defaults.
//! And a real `hdi-broker` process SIGKILLed while its cleaner (throttled, so each clean takes a
//! while) is cleaning, twice: restarted on the same directory, it serves every acknowledged key's
//! latest value, offsets going forward.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{call, name, temp_dir};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const INVALID_RECORD: i16 = 87;

fn produce_batch(topic: &str, batch: Vec<u8>) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
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

fn fetch_from(topic: &str, offset: i64) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
    )
}

/// Everything a consumer reads from offset 0: `(offset, key, value)` and the first batch's
/// base offset.
async fn consume_all(
    broker: &hdi_broker::broker::Broker,
    topic: &str,
) -> (Vec<(i64, String, String)>, i64) {
    let mut out = Vec::new();
    let mut next = 0;
    let mut first_base = -1;
    loop {
        let response: FetchResponse =
            call(broker, ApiKey::Fetch, 11, fetch_from(topic, next)).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let bytes = partition.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return (out, first_base);
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = hdi_log::batch::validate(&bytes[at..], usize::MAX).unwrap();
            if first_base < 0 {
                first_base = header.base_offset;
            }
            let body = hdi_log::records::records_bytes(&bytes[at..], &header, &|_, _| {
                Err("compressed".to_owned())
            })
            .unwrap();
            for record in hdi_log::records::parse_records(&body, &header).unwrap() {
                assert!(out.last().is_none_or(|(o, _, _)| *o < record.offset));
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or(b"<null>")).into_owned();
                out.push((record.offset, text(record.key), text(record.value)));
            }
            next = header.last_offset() + 1;
            at += header.size();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_is_cleaned_and_consumers_read_the_latest_value_per_key() {
    let dir = temp_dir("compaction");
    let broker = common::open_with(dir.path(), &["--log-cleaner-backoff", "100ms"]).await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.to_owned()))
            .with_value(Some(StrBytes::from_string(v.to_owned())))
    };
    let request = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name("table"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                config("cleanup.policy", "compact"),
                config("segment.bytes", "1024"),
                config("min.cleanable.dirty.ratio", "0.01"),
            ]),
    ]);
    let response: CreateTopicsResponse = call(
        &broker,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(request),
    )
    .await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
    for _ in 0..200 {
        if broker
            .replicas
            .get("table", 0)
            .is_some_and(|r| r.is_leader())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A keyless record is refused, as Kafka refuses it.
    let keyless = hdi_log::batch::build_batch(0, 0, &[b"no key"]);
    let response: ProduceResponse =
        call(&broker, ApiKey::Produce, 7, produce_batch("table", keyless)).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        INVALID_RECORD
    );

    let mut latest = BTreeMap::new();
    let mut produced = 0;
    for round in 0..30 {
        for key in ["apple", "banana", "cherry"] {
            let value = format!("{key}-{round}");
            let value_or_tombstone = (key != "cherry" || round < 29).then_some(value.as_bytes());
            let batch = hdi_log::records::build_keyed_batch(
                0,
                1_000 + round,
                &[(Some(key.as_bytes()), value_or_tombstone)],
            );
            let response: ProduceResponse =
                call(&broker, ApiKey::Produce, 7, produce_batch("table", batch)).await;
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
            latest.insert(
                key.to_owned(),
                value_or_tombstone.map_or("<null>".to_owned(), |_| value.clone()),
            );
            produced += 1;
        }
    }

    let started = Instant::now();
    while broker
        .replicas
        .cleaner_stats
        .cleans
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cleaner never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (records, first_base) = consume_all(&broker, "table").await;
    assert!(
        records.len() < produced / 2,
        "{} of {produced} records left",
        records.len()
    );
    assert!(
        first_base > 0,
        "offset 0 was cleaned away; a fetch there answers the next batch"
    );
    let mut seen = BTreeMap::new();
    for (_, key, value) in &records {
        seen.insert(key.clone(), value.clone());
    }
    assert_eq!(
        seen, latest,
        "the compacted view holds the latest value of every key"
    );

    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_configuration_keys(None)
            .with_resource_name(StrBytes::from_static_str("table")),
    ]);
    let response: DescribeConfigsResponse = call(
        &broker,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(request),
    )
    .await;
    let configs: BTreeMap<String, String> = response.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        response.results[0].error_code, 0,
        "{:?}",
        response.results[0].error_message
    );
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact"),
        "{configs:?}"
    );
    assert_eq!(configs["delete.retention.ms"], "86400000");
    assert_eq!(configs["min.compaction.lag.ms"], "0");
    assert_eq!(configs["max.compaction.lag.ms"], "9223372036854775807");
    assert_eq!(configs["min.cleanable.dirty.ratio"], "0.01");
    broker.stop().await;
}

/// A real broker process (killed on drop).
struct Process {
    child: std::process::Child,
    addr: String,
    cleaned: std::sync::mpsc::Receiver<()>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_process(dir: &std::path::Path, addr: &str) -> Process {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hdi-broker"))
        .args(["--node-id", "1", "--listen", addr, "--data-dir"])
        .arg(dir)
        .args([
            "--log-cleaner-backoff",
            "50ms",
            "--log-cleaner-io-max-bytes-per-second",
            "400000",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.contains("ready on ") {
            break;
        }
    }
    let (tx, cleaned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("cleaned log") {
                let _ = tx.send(());
            }
        }
    });
    Process {
        child,
        addr: addr.to_owned(),
        cleaned,
    }
}

async fn connect(addr: &str) -> hdi_kafka_client::Connection {
    hdi_kafka_client::Connection::connect(addr, "compaction-test", 64 << 20)
        .await
        .unwrap()
}

/// The latest value of every key a consumer reads from offset 0 (retrying while the restarted
/// broker is not leading yet).
async fn latest_values(addr: &str) -> BTreeMap<String, String> {
    let started = Instant::now();
    'again: loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never readable"
        );
        let mut connection = connect(addr).await;
        let mut latest = BTreeMap::new();
        let mut next = 0;
        let mut last_offset = -1;
        loop {
            let RequestKind::Fetch(request) = fetch_from("table", next) else {
                unreachable!()
            };
            let response = connection.call(&request, 11).await.unwrap();
            let partition = &response.responses[0].partitions[0];
            if partition.error_code != 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'again;
            }
            let bytes = partition.records.clone().unwrap_or_default();
            if bytes.is_empty() {
                return latest;
            }
            let mut at = 0;
            while at < bytes.len() {
                let header = hdi_log::batch::validate(&bytes[at..], usize::MAX).unwrap();
                let body = hdi_log::records::records_bytes(&bytes[at..], &header, &|_, _| {
                    Err("compressed".to_owned())
                })
                .unwrap();
                for r in hdi_log::records::parse_records(&body, &header).unwrap() {
                    assert!(r.offset > last_offset, "offsets go forward");
                    last_offset = r.offset;
                    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    latest.insert(text(r.key.unwrap()), text(r.value.unwrap()));
                }
                next = header.last_offset() + 1;
                at += header.size();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_sigkilled_mid_clean_restarts_with_every_latest_value() {
    let dir = temp_dir("compaction-kill");
    let data = dir.path().join("broker");
    let addr = hdi_test_support::ports::loopback();
    let mut broker = start_process(&data, &addr);
    let mut connection = connect(&addr).await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.to_owned()))
            .with_value(Some(StrBytes::from_string(v.to_owned())))
    };
    let request = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name("table"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                config("cleanup.policy", "compact"),
                config("segment.bytes", "16384"),
                config("min.cleanable.dirty.ratio", "0.01"),
            ]),
    ]);
    let response = connection.call(&request, 5).await.unwrap();
    assert_eq!(response.topics[0].error_code, 0);
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut sequence = 0u64;
    for round in 0..2 {
        let mut connection = connect(&broker.addr).await;
        // Enough to fill many segments, then more while the cleaner works; killed at a random
        // moment after a clean finished, while the next one (of the newer data) runs.
        let produce_until = Instant::now() + Duration::from_secs(3);
        let mut cleans = 0;
        while Instant::now() < produce_until || cleans == 0 {
            assert!(
                Instant::now() < produce_until + Duration::from_secs(30),
                "no clean"
            );
            let key = format!("key-{}", sequence % 30);
            let value = format!("value-{sequence}-{}", "x".repeat(200));
            sequence += 1;
            let batch = hdi_log::records::build_keyed_batch(
                0,
                0,
                &[(Some(key.as_bytes()), Some(value.as_bytes()))],
            );
            let RequestKind::Produce(request) = produce_batch("table", batch) else {
                unreachable!()
            };
            let response = connection.call(&request, 7).await.unwrap();
            let code = response.responses[0].partition_responses[0].error_code;
            if code == 0 {
                acked.insert(key, value);
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            while broker.cleaned.try_recv().is_ok() {
                cleans += 1;
            }
        }
        let pause = Duration::from_millis(sequence * 7919 % 600);
        tokio::time::sleep(pause).await;
        broker.child.kill().unwrap(); // SIGKILL
        broker.child.wait().unwrap();
        eprintln!("round {round}: killed {pause:?} after producing ({cleans} cleans seen)");
        broker = start_process(&data, &addr);
        let latest = latest_values(&broker.addr).await;
        assert_eq!(
            latest, acked,
            "round {round}: the latest value of every key"
        );
    }
}

/// `min.compaction.lag.ms` above `max.compaction.lag.ms` is refused with Kafka's error
/// (INVALID_CONFIG) and message, on CreateTopics, AlterConfigs and IncrementalAlterConfigs
/// (there against the topic's other configs and the defaults).
#[tokio::test]
async fn a_min_compaction_lag_above_the_max_is_refused_everywhere() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::incremental_alter_configs_request as incremental;
    const INVALID_CONFIG: i16 = 40;
    const CONFLICT: &str =
        "conflict topic config setting min.compaction.lag.ms (2000) > max.compaction.lag.ms (1000)";
    let dir = temp_dir("compaction-lags");
    let broker = common::open_with(dir.path(), &[]).await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.to_owned()))
            .with_value(Some(StrBytes::from_string(v.to_owned())))
    };
    let create = |topic: &str, configs: Vec<CreatableTopicConfig>| {
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs),
        ]))
    };
    let response: CreateTopicsResponse = call(
        &broker,
        ApiKey::CreateTopics,
        5,
        create(
            "conflicting",
            vec![
                config("cleanup.policy", "compact"),
                config("min.compaction.lag.ms", "2000"),
                config("max.compaction.lag.ms", "1000"),
            ],
        ),
    )
    .await;
    let topic = &response.topics[0];
    assert_eq!(
        (
            topic.error_code,
            topic.error_message.as_ref().map(|m| m.as_str())
        ),
        (INVALID_CONFIG, Some(CONFLICT))
    );
    let response: CreateTopicsResponse = call(
        &broker,
        ApiKey::CreateTopics,
        5,
        create(
            "lagged",
            vec![
                config("cleanup.policy", "compact"),
                config("max.compaction.lag.ms", "1000"),
            ],
        ),
    )
    .await;
    assert_eq!(response.topics[0].error_code, 0);

    // AlterConfigs replaces the explicit configs: both lags given, in conflict.
    let alterable = |k: &str, v: &str| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.to_owned()))
            .with_value(Some(StrBytes::from_string(v.to_owned())))
    };
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("lagged"))
            .with_configs(vec![
                alterable("min.compaction.lag.ms", "2000"),
                alterable("max.compaction.lag.ms", "1000"),
            ]),
    ]);
    let response: AlterConfigsResponse = call(
        &broker,
        ApiKey::AlterConfigs,
        2,
        RequestKind::AlterConfigs(request),
    )
    .await;
    let result = &response.responses[0];
    assert_eq!(
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.as_str())
        ),
        (INVALID_CONFIG, Some(CONFLICT))
    );

    // IncrementalAlterConfigs sets only the min: the topic's max (1000) conflicts with it.
    let set = |k: &str, v: &str| {
        incremental::AlterableConfig::default()
            .with_name(StrBytes::from_string(k.to_owned()))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_string(v.to_owned())))
    };
    let incremental_request = |configs| {
        RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("lagged"))
                    .with_configs(configs),
            ]),
        )
    };
    let response: IncrementalAlterConfigsResponse = call(
        &broker,
        ApiKey::IncrementalAlterConfigs,
        1,
        incremental_request(vec![set("min.compaction.lag.ms", "2000")]),
    )
    .await;
    let result = &response.responses[0];
    assert_eq!(
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.as_str())
        ),
        (INVALID_CONFIG, Some(CONFLICT))
    );
    // Below the max it is taken.
    let response: IncrementalAlterConfigsResponse = call(
        &broker,
        ApiKey::IncrementalAlterConfigs,
        1,
        incremental_request(vec![set("min.compaction.lag.ms", "500")]),
    )
    .await;
    assert_eq!(response.responses[0].error_code, 0);
}
