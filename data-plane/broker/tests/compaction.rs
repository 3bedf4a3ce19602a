//! Log compaction end to end in one broker: a topic created by CreateTopics with
//! `cleanup.policy=compact` refuses keyless records (INVALID_RECORD), its log is cleaned by the
//! broker's cleaner task, and a consumer fetching from offset 0 reads the compacted view: the
//! latest value of every key, offsets going forward with gaps, a fetch at a cleaned-away offset
//! answering the next batch. DescribeConfigs shows the compaction configs with Kafka's defaults.
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
    assert_eq!(response.results[0].error_code, 0, "{:?}", response.results[0].error_message);
    assert_eq!(configs.get("cleanup.policy").map(String::as_str), Some("compact"), "{configs:?}");
    assert_eq!(configs["delete.retention.ms"], "86400000");
    assert_eq!(configs["min.compaction.lag.ms"], "0");
    assert_eq!(configs["max.compaction.lag.ms"], "9223372036854775807");
    assert_eq!(configs["min.cleanable.dirty.ratio"], "0.01");
    broker.stop().await;
}
