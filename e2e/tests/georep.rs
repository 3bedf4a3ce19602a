//! Geo-replication's data path: two `hdi-broker` clusters (one broker each, real processes on
//! loopback), a cluster link defined on the secondary with the cluster-wide configs, mirror
//! topics created for the matching source topics (names, ids, partition counts), and every mirror
//! partition byte-identical to its source at the same offsets (keys, headers, timestamps,
//! several codecs, batches as kcat wrote them) while the source keeps taking records. A produce
//! to a mirror is refused with INVALID_TOPIC_EXCEPTION naming the link; a source topic created
//! later is mirrored too, and a source topic outside the filter is not.
#![allow(clippy::unwrap_used, reason = "test")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_e2e::{Broker, kcat};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, IncrementalAlterConfigsRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn connect(bootstrap: &str) -> Connection {
    let stream = std::net::TcpStream::connect(bootstrap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Connection::new(stream, "hdi-georep-test", 1 << 26)
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Sets (`Some`) or deletes (`None`) cluster-wide configs on `bootstrap`'s cluster.
fn cluster_configs(bootstrap: &str, changes: &[(&str, Option<&str>)]) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(
                changes
                    .iter()
                    .map(|(key, value)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string((*key).to_owned()))
                            .with_config_operation(if value.is_some() { 0 } else { 1 })
                            .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
                    })
                    .collect(),
            ),
    ]);
    let response = connect(bootstrap).call(&request, 0).unwrap();
    let result = &response.responses[0];
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Topic name → (topic id, partition count) on `bootstrap`'s cluster.
fn topics(bootstrap: &str) -> Vec<(String, String, usize)> {
    let response = connect(bootstrap)
        .call(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let mut out: Vec<(String, String, usize)> = response
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.topic_id.to_string(),
                t.partitions.len(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Every stored byte of a partition, batch after batch from offset 0, and its high watermark
/// (`None` while the partition answers an error, as a mirror not created yet does).
fn try_partition_bytes(bootstrap: &str, topic: &str, partition: i32) -> Option<(Vec<u8>, i64)> {
    let mut connection = connect(bootstrap);
    let mut bytes = Vec::new();
    let mut offset = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(64 << 20)
            .with_isolation_level(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(8 << 20),
                    ]),
            ]);
        let response = connection.call(&request, 11).unwrap();
        let answer = &response.responses[0].partitions[0];
        if answer.error_code != 0 {
            return None;
        }
        let records: Bytes = answer.records.clone().unwrap_or_default();
        if records.is_empty() {
            return Some((bytes, answer.high_watermark));
        }
        // Whole batches only; the next offset follows the last one.
        let mut at = 0;
        while at + 61 <= records.len() {
            let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
            let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
            if at + 12 + length > records.len() {
                break;
            }
            let last_delta =
                i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap()) as i64;
            offset = base + last_delta + 1;
            at += 12 + length;
        }
        bytes.extend_from_slice(&records[..at]);
        if offset >= answer.high_watermark {
            return Some((bytes, answer.high_watermark));
        }
    }
}

/// [`try_partition_bytes`] of a partition that must answer.
fn partition_bytes(bootstrap: &str, topic: &str, partition: i32) -> (Vec<u8>, i64) {
    try_partition_bytes(bootstrap, topic, partition)
        .unwrap_or_else(|| panic!("{topic}-{partition} on {bootstrap} answered an error"))
}

/// Waits until every partition of `topic` on `b` holds exactly `a`'s bytes; answers the record
/// count per partition.
fn wait_identical(a: &str, b: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ends = Vec::new();
        let mut same = true;
        for p in 0..partitions {
            let (source, source_hw) = partition_bytes(a, topic, p);
            let (mirror, mirror_hw) = try_partition_bytes(b, topic, p).unwrap_or((Vec::new(), -1));
            // The mirror is a prefix of the source at every moment.
            assert!(
                source.starts_with(&mirror),
                "{topic}-{p}: the mirror ({} bytes) is not a prefix of the source ({} bytes)",
                mirror.len(),
                source.len()
            );
            same &= source == mirror && source_hw == mirror_hw;
            ends.push(source_hw);
        }
        if same {
            return ends;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} was not mirrored within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn produce_lines(bootstrap: &str, topic: &str, codec: &str, from: usize, count: usize) {
    let input: String = (from..from + count)
        .map(|i| {
            format!(
                "card-{}:{{\"amount\":{i},\"pad\":\"{}\"}}\n",
                i % 17,
                "x".repeat(i % 300)
            )
        })
        .collect();
    let (ok, _, err) = kcat(
        bootstrap,
        &[
            "-P",
            "-t",
            topic,
            "-K",
            ":",
            "-H",
            "origin=a",
            "-H",
            &format!("codec={codec}"),
            "-z",
            codec,
            "-X",
            "acks=all",
            "-X",
            "linger.ms=5",
        ],
        Some(input.as_bytes()),
    );
    assert!(ok, "kcat produce to {topic}: {err}");
}

#[test]
fn a_link_mirrors_topics_byte_for_byte_at_the_same_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let a = Broker::start(&dir.path().join("a"), None, &["--default-partitions", "3"]);
    let b = Broker::start(&dir.path().join("b"), None, &["--default-partitions", "1"]);

    // On A: topics before the link exists, with records of several codecs.
    for (i, codec) in ["none", "gzip", "snappy", "lz4"].iter().enumerate() {
        produce_lines(&a.bootstrap, "orders", codec, i * 500, 500);
    }
    produce_lines(&a.bootstrap, "audit", "none", 0, 50);

    // A link without a source is refused, naming the missing key; a key that is not a link's
    // is refused too.
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.topics", Some("orders*"))]);
    assert_eq!(code, 40, "{message:?}"); // INVALID_CONFIG
    assert!(
        message
            .unwrap_or_default()
            .contains("hdi.link.dr.bootstrap.servers")
    );
    let (code, _) = cluster_configs(&b.bootstrap, &[("log.retention.ms", Some("1"))]);
    assert_eq!(code, 40);

    // The link: every topic of A whose name starts with "orders".
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.dr.bootstrap.servers", Some(&a.bootstrap)),
            ("hdi.link.dr.topics", Some("orders*")),
        ],
    );
    assert_eq!(code, 0, "{message:?}");

    // The mirror topic has the source's name, id and partition count, and the same bytes.
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    assert_eq!(ends.iter().sum::<i64>(), 2000);
    let on_a = topics(&a.bootstrap);
    let on_b = topics(&b.bootstrap);
    let orders_a = on_a.iter().find(|t| t.0 == "orders").unwrap();
    let orders_b = on_b.iter().find(|t| t.0 == "orders").unwrap();
    assert_eq!(orders_a, orders_b, "name, topic id and partitions");
    assert!(
        !on_b.iter().any(|t| t.0 == "audit"),
        "a topic outside the filter is not mirrored: {on_b:?}"
    );

    // Records keep flowing while the link runs.
    produce_lines(&a.bootstrap, "orders", "lz4", 2000, 1000);
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    assert_eq!(ends.iter().sum::<i64>(), 3000);

    // A source topic created later is found and mirrored.
    let started = Instant::now();
    produce_lines(&a.bootstrap, "orders-eu", "none", 0, 300);
    wait_identical(&a.bootstrap, &b.bootstrap, "orders-eu", 3);
    eprintln!("new topic mirrored in {:?}", started.elapsed());

    // The mirror is read-only: INVALID_TOPIC_EXCEPTION, naming the link.
    let batch = {
        let (records, _) = partition_bytes(&a.bootstrap, "orders", 0);
        Bytes::from(records)
    };
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    let response = connect(&b.bootstrap).call(&produce, 8).unwrap();
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 17, "INVALID_TOPIC_EXCEPTION");
    let message = answer
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("read-only mirror") && message.contains("\"dr\""),
        "{message}"
    );
    // Nothing was written.
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    assert_eq!(ends.iter().sum::<i64>(), 3000);

    // Deleting the link's source removes the link.
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.bootstrap.servers", None)]);
    assert_eq!(code, 0, "{message:?}");
}
