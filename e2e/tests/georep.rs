//! Geo-replication's data path: two `hdi-broker` clusters (one broker each, real processes on
//! loopback), a cluster link defined on the secondary with the cluster-wide configs, mirror
//! topics created for the matching source topics (names, ids, partition counts), and every mirror
//! partition byte-identical to its source at the same offsets (keys, headers, timestamps,
//! several codecs, batches as kcat wrote them) while the source keeps taking records. A produce
//! to a mirror is refused with INVALID_TOPIC_EXCEPTION naming the link; a source topic created
//! later is mirrored too, and a source topic outside the filter is not. Also: a secured source,
//! promote with consumers resuming on the mirror, failover, pause/resume, the loss a failover
//! reports, reverse with its quarantine and a round trip, and a seeded bug the byte checker
//! catches. Faults in rotation are `georep_chaos.rs`.
#![allow(clippy::unwrap_used, reason = "test")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_e2e::{Broker, kcat};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn connect(bootstrap: &str) -> Connection {
    try_connect(bootstrap).unwrap_or_else(|| panic!("cannot connect to {bootstrap}"))
}

/// A connection to the first address of `bootstrap`, if it answers.
fn try_connect(bootstrap: &str) -> Option<Connection> {
    let address = bootstrap.split(',').next()?;
    let stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    Some(Connection::new(stream, "hdi-georep-test", 1 << 26))
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Sets (`Some`) or deletes (`None`) cluster-wide configs on `bootstrap`'s cluster.
fn cluster_configs(bootstrap: &str, changes: &[(&str, Option<&str>)]) -> (i16, Option<String>) {
    alter_configs(bootstrap, 4, "", changes)
}

/// The cluster-wide configs of `bootstrap`'s cluster, as DescribeConfigs answers them.
fn cluster_wide_configs(
    bootstrap: &str,
) -> Vec<kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult> {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configuration_keys(None),
    ]);
    let mut response = connect(bootstrap).call(&request, 4).unwrap();
    response.results.remove(0).configs
}

/// `hdi.link.<link>.status` on `bootstrap`'s cluster.
fn link_status(bootstrap: &str, link: &str) -> String {
    cluster_wide_configs(bootstrap)
        .iter()
        .find(|c| c.name.as_str() == format!("hdi.link.{link}.status"))
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
        .unwrap_or_default()
}

/// Defines link `dr` on `mirror` from `source`, mirroring `topics`.
fn link(mirror: &str, source: &str, topics: &str) {
    let (code, message) = cluster_configs(
        mirror,
        &[
            ("hdi.link.dr.bootstrap.servers", Some(source)),
            ("hdi.link.dr.topics", Some(topics)),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
}

/// DeleteRecords: `topic`-`partition` starts at `offset` from now on.
fn delete_records(bootstrap: &str, topic: &str, partition: i32, offset: i64) {
    use kafka_protocol::messages::DeleteRecordsRequest;
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(10_000);
    let response = connect(bootstrap).call(&request, 2).unwrap();
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(answer.low_watermark, offset);
}

/// Sets (`Some`) or deletes (`None`) configs of a resource (2: a topic, 4: a broker).
fn alter_configs(
    bootstrap: &str,
    resource_type: i8,
    resource: &str,
    changes: &[(&str, Option<&str>)],
) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource.to_owned()))
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

/// A topic config's value (`None` when it is not set on the topic).
fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    described(bootstrap, topic, key, |source| source == 1)
}

/// A config of `topic` as DescribeConfigs shows it, if its source passes `source`.
fn described(
    bootstrap: &str,
    topic: &str,
    key: &str,
    source: impl Fn(i8) -> bool,
) -> Option<String> {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(None),
    ]);
    let response = connect(bootstrap).call(&request, 4).unwrap();
    response.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key && source(c.config_source))
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
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
    let address = bootstrap.split(',').next()?;
    hdi_e2e::partition_bytes_from(address, topic, partition, 0)
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
    link(&b.bootstrap, &a.bootstrap, "orders*");

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

    // A filter that matches nothing is a state the link's status names.
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.typo.bootstrap.servers", Some(&a.bootstrap)),
            ("hdi.link.typo.topics", Some("ordres*")),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link_status(&b.bootstrap, "typo").contains("matches none of the source's") {
        assert!(
            Instant::now() < deadline,
            "{}",
            link_status(&b.bootstrap, "typo")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, message) =
        cluster_configs(&b.bootstrap, &[("hdi.link.typo.bootstrap.servers", None)]);
    assert_eq!(code, 0, "{message:?}");

    // Records keep flowing while the link runs.
    produce_lines(&a.bootstrap, "orders", "lz4", 2000, 1000);
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    assert_eq!(ends.iter().sum::<i64>(), 3000);

    // A source topic created later is found and mirrored.
    let started = Instant::now();
    produce_lines(&a.bootstrap, "orders-eu", "none", 0, 300);
    wait_identical(&a.bootstrap, &b.bootstrap, "orders-eu", 3);
    eprintln!("new topic mirrored in {:?}", started.elapsed());

    // A source topic whose log starts inside a batch (DeleteRecords at any offset, before the
    // link finds it): the mirror starts with that whole batch and follows the source's start.
    produce_lines(&a.bootstrap, "cut-orders", "gzip", 0, 300);
    produce_lines(&a.bootstrap, "cut-orders", "gzip", 300, 300);
    let (bytes, _) = partition_bytes(&a.bootstrap, "cut-orders", 0);
    let first = 12 + i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let cut_at = i64::from_be_bytes(bytes[first..first + 8].try_into().unwrap()) + 1;
    delete_records(&a.bootstrap, "cut-orders", 0, cut_at);
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[("hdi.link.dr.topics", Some("orders*,cut-*"))],
    );
    assert_eq!(code, 0, "{message:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let source = hdi_e2e::partition_bytes_from(&a.bootstrap, "cut-orders", 0, cut_at);
        let mirror = hdi_e2e::partition_bytes_from(&b.bootstrap, "cut-orders", 0, cut_at);
        if mirror.is_some() && source == mirror {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a source starting inside a batch was not mirrored: {}",
            link_status(&b.bootstrap, "dr")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Synced configs follow the source; local ones stay B's; the synced ones, the partition
    // count and the records of a mirror cannot be changed on B.
    let (code, message) = alter_configs(
        &a.bootstrap,
        2,
        "orders",
        &[("retention.ms", Some("86400000"))],
    );
    assert_eq!(code, 0, "{message:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while topic_config(&b.bootstrap, "orders", "retention.ms").as_deref() != Some("86400000") {
        assert!(Instant::now() < deadline, "retention.ms was not synced");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, message) =
        alter_configs(&b.bootstrap, 2, "orders", &[("retention.ms", Some("1000"))]);
    assert_eq!(code, 44, "{message:?}"); // POLICY_VIOLATION
    assert!(message.unwrap_or_default().contains("\"dr\""));
    let (code, message) = alter_configs(
        &b.bootstrap,
        2,
        "orders",
        &[("segment.bytes", Some("1048576"))],
    );
    assert_eq!(code, 0, "{message:?}");
    {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        use kafka_protocol::messages::{CreatePartitionsRequest, DeleteRecordsRequest};
        let grow = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(name("orders"))
                    .with_count(6)
                    .with_assignments(None),
            ]);
        let refused = connect(&b.bootstrap).call(&grow, 1).unwrap();
        assert_eq!(refused.results[0].error_code, 44);
        let delete = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(name("orders"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(1),
                    ]),
            ]);
        let refused = connect(&b.bootstrap).call(&delete, 1).unwrap();
        assert_eq!(refused.topics[0].partitions[0].error_code, 44);
        // The source grows: the mirror follows, and mirrors the new partitions too.
        let grown = connect(&a.bootstrap).call(&grow, 1).unwrap();
        assert_eq!(grown.results[0].error_code, 0);
        produce_lines(&a.bootstrap, "orders", "none", 3000, 600);
        wait_identical(&a.bootstrap, &b.bootstrap, "orders", 6);
    }

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
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 6);
    assert_eq!(ends.iter().sum::<i64>(), 3600);

    // The link pointed at another cluster whose "orders" is another topic: nothing of it is
    // mixed into the mirror, and the link's status says why.
    let c = Broker::start(&dir.path().join("c"), None, &["--default-partitions", "6"]);
    produce_lines(&c.bootstrap, "orders", "none", 0, 400);
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[("hdi.link.dr.bootstrap.servers", Some(&c.bootstrap))],
    );
    assert_eq!(code, 0, "{message:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link_status(&b.bootstrap, "dr").contains("another topic id") {
        assert!(
            Instant::now() < deadline,
            "status: {}",
            link_status(&b.bootstrap, "dr")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    for p in 0..6 {
        assert_eq!(
            partition_bytes(&a.bootstrap, "orders", p),
            partition_bytes(&b.bootstrap, "orders", p),
            "orders-{p} took records of another cluster"
        );
    }

    // A link that still feeds mirror topics cannot be deleted.
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.bootstrap.servers", None)]);
    assert_eq!(code, 40, "{message:?}");
    assert!(
        message
            .unwrap_or_default()
            .contains("still feeds mirror topics")
    );
}

/// A source broker with a PLAINTEXT listener (the test's own, as the super user `ANONYMOUS`)
/// and a SASL_SSL listener (the link's), the authorizer on, and users `admin` and `mirror`.
struct SecuredSource {
    _proc: hdi_e2e::Proc,
    plain: String,
    sasl_ssl: String,
    ca_pem: String,
}

const MIRROR_PASSWORD: &str = "mirror-secret-1";

fn start_secured_source(dir: &std::path::Path) -> SecuredSource {
    use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
    use std::os::unix::fs::PermissionsExt as _;
    let private = |path: &std::path::Path, text: &str| {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = hdi_pki::Authority::generate_for("georep-source", hdi_pki::Purpose::Kafka).unwrap();
    let server = ca.issue_server(&["127.0.0.1".into()]).unwrap();
    std::fs::write(tls.join("ca.pem"), &ca.cert_pem).unwrap();
    std::fs::write(tls.join("cert.pem"), &server.cert_pem).unwrap();
    private(&tls.join("key.pem"), &server.key_pem);
    let mirror =
        ScramCredential::from_password(ScramMechanism::Sha512, MIRROR_PASSWORD, 4096).unwrap();
    let users = dir.join("users");
    private(&users, &mirror.to_line("mirror", ScramMechanism::Sha512));
    let ports = hdi_test_support::ports::take(2).unwrap();
    let (plain, sasl_ssl) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let mut proc = hdi_e2e::Proc::spawn(
        "hdi-broker",
        std::process::Command::new(hdi_e2e::bin("hdi-broker"))
            .args(["--node-id", "1", "--default-partitions", "3"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listener", &format!("PLAINTEXT://{plain}")])
            .args(["--listener", &format!("SASL_SSL://{sasl_ssl}")])
            .arg("--tls-dir")
            .arg(&tls)
            .arg("--sasl-users-file")
            .arg(&users)
            .args(["--authorizer", "--super-users", "User:ANONYMOUS"])
            .env("RUST_LOG", "info"),
    );
    proc.wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
        .unwrap();
    SecuredSource {
        _proc: proc,
        plain,
        sasl_ssl,
        ca_pem: ca.cert_pem.clone(),
    }
}

/// Read-only ACLs for `User:mirror`: describe and read topics starting with `orders`, describe
/// groups starting with `pay`.
fn grant_mirror_read(bootstrap: &str) {
    use kafka_protocol::messages::CreateAclsRequest;
    use kafka_protocol::messages::create_acls_request::AclCreation;
    let acl = |resource_type: i8, name: &str, operation: i8| {
        AclCreation::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_resource_pattern_type(4) // PREFIXED
            .with_principal(StrBytes::from_static_str("User:mirror"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(operation)
            .with_permission_type(3) // ALLOW
    };
    // Topic (2): DESCRIBE (8), READ (3); group (3): DESCRIBE (8).
    let request = CreateAclsRequest::default().with_creations(vec![
        acl(2, "orders", 8),
        acl(2, "orders", 3),
        acl(3, "pay", 8),
    ]);
    let response = connect(bootstrap).call(&request, 2).unwrap();
    for result in &response.results {
        assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    }
}

/// Commits `offsets` (partition → offset of topic `orders`) for `group` without a generation
/// (a group with no members), as an admin tool does.
fn commit(bootstrap: &str, group: &str, offsets: &[(i32, i64)]) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("orders"))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                ),
        ]);
    let response = connect(bootstrap).call(&request, 7).unwrap();
    for topic in &response.topics {
        for partition in &topic.partitions {
            assert_eq!(partition.error_code, 0, "commit {group} on {bootstrap}");
        }
    }
}

/// `group`'s committed offsets of topic `orders` by partition (-1 for none).
fn committed(bootstrap: &str, group: &str) -> Vec<(i32, i64)> {
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(None);
    let response = connect(bootstrap).call(&request, 7).unwrap();
    let mut out: Vec<(i32, i64)> = response
        .topics
        .iter()
        .filter(|t| t.name.as_str() == "orders")
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    out
}

fn wait_committed(bootstrap: &str, group: &str, want: &[(i32, i64)]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(bootstrap, group) != want {
        assert!(
            Instant::now() < deadline,
            "{group} on {bootstrap}: {:?}, want {want:?}",
            committed(bootstrap, group)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_link_reads_a_secured_source_with_a_read_only_user_and_copies_group_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_secured_source(&dir.path().join("a"));
    let b = Broker::start(&dir.path().join("b"), None, &["--default-partitions", "1"]);
    grant_mirror_read(&a.plain);
    produce_lines(&a.plain, "orders", "none", 0, 900);
    produce_lines(&a.plain, "audit", "none", 0, 10);
    let ends: Vec<i64> = (0..3)
        .map(|p| partition_bytes(&a.plain, "orders", p).1)
        .collect();
    // A group that consumed part of each partition on A.
    let halfway: Vec<(i32, i64)> = (0..3).map(|p| (p, ends[p as usize] / 2)).collect();
    commit(&a.plain, "payments", &halfway);
    commit(&a.plain, "audit-readers", &[(0, 1)]);

    // A wrong password: the link reaches nothing (its topic never appears), and says why in
    // the log rather than in a client's face.
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.bad.bootstrap.servers", Some(&a.sasl_ssl)),
            ("hdi.link.bad.topics", Some("audit")),
            ("hdi.link.bad.security.protocol", Some("SASL_SSL")),
            ("hdi.link.bad.sasl.mechanism", Some("SCRAM-SHA-512")),
            ("hdi.link.bad.sasl.username", Some("mirror")),
            ("hdi.link.bad.sasl.password", Some("wrong")),
            ("hdi.link.bad.ssl.ca.pem", Some(&a.ca_pem)),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    // SASL without a password, TLS without the CA, or a CA that is not one: refused, naming
    // the key.
    for (missing, want) in [
        ("hdi.link.dr.sasl.password", "hdi.link.dr.sasl.password"),
        ("hdi.link.dr.ssl.ca.pem", "hdi.link.dr.ssl.ca.pem"),
    ] {
        let all = [
            ("hdi.link.dr.bootstrap.servers", a.sasl_ssl.as_str()),
            ("hdi.link.dr.security.protocol", "SASL_SSL"),
            ("hdi.link.dr.sasl.mechanism", "SCRAM-SHA-512"),
            ("hdi.link.dr.sasl.username", "mirror"),
            ("hdi.link.dr.sasl.password", MIRROR_PASSWORD),
            ("hdi.link.dr.ssl.ca.pem", a.ca_pem.as_str()),
        ];
        let some: Vec<(&str, Option<&str>)> = all
            .iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| (*k, Some(*v)))
            .collect();
        let (code, message) = cluster_configs(&b.bootstrap, &some);
        assert_eq!(code, 40, "{message:?}");
        assert!(message.unwrap_or_default().contains(want));
    }
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.dr.bootstrap.servers", Some(&a.sasl_ssl)),
            ("hdi.link.dr.security.protocol", Some("SSL")),
            ("hdi.link.dr.ssl.ca.pem", Some("not a certificate")),
        ],
    );
    assert_eq!(code, 40, "{message:?}");

    // The link as it should be: SASL_SSL with SCRAM-SHA-512 as `mirror`, the source's CA, the
    // `orders` topic and the `pay*` groups.
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.dr.bootstrap.servers", Some(&a.sasl_ssl)),
            ("hdi.link.dr.topics", Some("orders")),
            ("hdi.link.dr.groups", Some("pay*")),
            ("hdi.link.dr.security.protocol", Some("SASL_SSL")),
            ("hdi.link.dr.sasl.mechanism", Some("SCRAM-SHA-512")),
            ("hdi.link.dr.sasl.username", Some("mirror")),
            ("hdi.link.dr.sasl.password", Some(MIRROR_PASSWORD)),
            ("hdi.link.dr.ssl.ca.pem", Some(&a.ca_pem)),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    wait_identical(&a.plain, &b.bootstrap, "orders", 3);
    // The group's offsets are copied (within the mirrored data); a group outside the filter
    // is not.
    wait_committed(&b.bootstrap, "payments", &halfway);
    assert!(committed(&b.bootstrap, "audit-readers").is_empty());
    // Moves on A follow on B...
    let further: Vec<(i32, i64)> = (0..3).map(|p| (p, ends[p as usize])).collect();
    commit(&a.plain, "payments", &further);
    wait_committed(&b.bootstrap, "payments", &further);
    // ...until a client commits for the group on B: then the group is B's.
    let local: Vec<(i32, i64)> = (0..3).map(|p| (p, 1)).collect();
    commit(&b.bootstrap, "payments", &local);
    commit(&a.plain, "payments", &halfway);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(committed(&b.bootstrap, "payments"), local);

    // The wrong password got nothing, and the password is never shown.
    assert!(
        !topics(&b.bootstrap).iter().any(|t| t.0 == "audit"),
        "a link with a wrong password mirrored something"
    );
    let configs = cluster_wide_configs(&b.bootstrap);
    let password = configs
        .iter()
        .find(|c| c.name.as_str() == "hdi.link.dr.sasl.password")
        .unwrap();
    assert!(password.is_sensitive && password.value.is_none());
    let bootstrap = configs
        .iter()
        .find(|c| c.name.as_str() == "hdi.link.dr.bootstrap.servers")
        .unwrap();
    assert_eq!(bootstrap.value.as_deref(), Some(a.sasl_ssl.as_str()));
    // Each link's status says what works and what does not, and why.
    assert_eq!(link_status(&b.bootstrap, "dr"), "ok");
    let bad = link_status(&b.bootstrap, "bad");
    assert!(
        bad.starts_with("discovery:") && bad.contains("SASL"),
        "{bad}"
    );
}

/// Produces one record to partition `partition` of `topic`; answers the error code.
fn produce_one(bootstrap: &str, topic: &str, partition: i32, value: &[u8]) -> i16 {
    // A v2 batch of one record, built by hand: base offset 0, no producer id, CRC-32C over
    // the attributes onwards.
    let record = {
        let mut body = vec![0u8]; // attributes
        body.push(0); // timestamp delta (varint 0)
        body.push(0); // offset delta
        body.push(1); // key length -1 (zigzag)
        body.push((value.len() as u8) << 1); // value length (zigzag, < 64)
        body.extend_from_slice(value);
        body.push(0); // headers count
        let mut record = vec![(body.len() as u8) << 1];
        record.extend_from_slice(&body);
        record
    };
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
    after_crc.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // max timestamp
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&1i32.to_be_bytes()); // records
    after_crc.extend_from_slice(&record);
    let crc = crc32c(&after_crc);
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&((4 + 1 + 4 + after_crc.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc.to_be_bytes());
    batch.extend_from_slice(&after_crc);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let response = connect(bootstrap).call(&produce, 8).unwrap();
    response.responses[0].partition_responses[0].error_code
}

/// CRC-32C (Castagnoli), bit by bit: test data is small.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Leader epochs of `topic`'s partitions on `bootstrap`'s cluster.
fn leader_epochs(bootstrap: &str, topic: &str) -> Vec<i32> {
    let response = connect(bootstrap)
        .call(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let mut epochs: Vec<(i32, i32)> = response
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_epoch))
        })
        .collect();
    epochs.sort();
    epochs.into_iter().map(|(_, e)| e).collect()
}

/// Produces `count` keyed records to `orders` with an idempotent kcat producer.
fn produce_idempotently(bootstrap: &str, prefix: &str, count: usize) {
    let input: String = (0..count)
        .map(|i| format!("k{}:{prefix}{i}\n", i % 13))
        .collect();
    let (ok, _, err) = kcat(
        bootstrap,
        &[
            "-P",
            "-t",
            "orders",
            "-K",
            ":",
            "-X",
            "enable.idempotence=true",
        ],
        Some(input.as_bytes()),
    );
    assert!(ok, "{err}");
}

/// A kcat consumer of `orders` on a cluster, from the beginning, running until dropped.
struct MirrorConsumer {
    child: std::process::Child,
    values: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl MirrorConsumer {
    fn start(bootstrap: &str) -> MirrorConsumer {
        use std::io::BufRead as _;
        let mut child = hdi_e2e::client_command("kcat")
            .args([
                "-b",
                bootstrap,
                "-C",
                "-t",
                "orders",
                "-o",
                "beginning",
                "-u",
            ])
            .args(["-f", "%s\n", "-q"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let values = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (out, seen) = (child.stdout.take().unwrap(), std::sync::Arc::clone(&values));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line);
            }
        });
        MirrorConsumer { child, values }
    }

    /// Waits until the consumer has printed `value`.
    fn wait_for(&self, value: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.values.lock().unwrap().iter().any(|v| v == value) {
            assert!(
                Instant::now() < deadline,
                "the consumer never got {value:?} ({} values)",
                self.values.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MirrorConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a produce to `topic` on `bootstrap` is accepted; answers how long it took.
fn wait_writable(bootstrap: &str, topic: &str) -> Duration {
    let started = Instant::now();
    loop {
        let code = produce_one(bootstrap, topic, 0, b"first write after the switch");
        if code == 0 {
            return started.elapsed();
        }
        assert!(
            code == 17 || code == 6,
            "produce to {topic} during the switch answered {code}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{topic} did not become writable in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn high_watermarks(bootstrap: &str, topic: &str) -> Vec<i64> {
    (0..3)
        .map(|p| partition_bytes(bootstrap, topic, p).1)
        .collect()
}

#[test]
fn promoting_a_link_makes_its_topics_writable_where_consumers_resume() {
    use kafka_protocol::messages::InitProducerIdRequest;
    let dir = tempfile::tempdir().unwrap();
    let a = Broker::start(&dir.path().join("a"), None, &["--default-partitions", "3"]);
    let b = Broker::start(&dir.path().join("b"), None, &["--default-partitions", "1"]);
    // Idempotent producers on A: its batches carry producer ids of A's broker 1, which is
    // numbered like B's.
    produce_idempotently(&a.bootstrap, "v", 900);
    let ends = high_watermarks(&a.bootstrap, "orders");
    let halfway: Vec<(i32, i64)> = (0..3).map(|p| (p, ends[p as usize] / 2)).collect();
    commit(&a.bootstrap, "payments", &halfway);
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.dr.bootstrap.servers", Some(&a.bootstrap)),
            ("hdi.link.dr.topics", Some("orders")),
            ("hdi.link.dr.groups", Some("pay*")),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    wait_committed(&b.bootstrap, "payments", &halfway);
    let source_epochs = leader_epochs(&a.bootstrap, "orders");

    // A consumer of the mirror, started before the switchover (librdkafka caches leader epochs,
    // KIP-320): it must go on across the epoch change and get B's own writes without a restart.
    let consumer = MirrorConsumer::start(&b.bootstrap);
    consumer.wait_for("v899", Duration::from_secs(30));

    // The switchover: A's producers are fenced first, then B catches up and takes over.
    let (code, message) = alter_configs(
        &a.bootstrap,
        2,
        "orders",
        &[("hdi.read.only", Some("true"))],
    );
    assert_eq!(code, 0, "{message:?}");
    assert_eq!(produce_one(&a.bootstrap, "orders", 1, b"late"), 17);
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("promote"))]);
    assert_eq!(code, 0, "{message:?}");
    let took = wait_writable(&b.bootstrap, "orders");
    eprintln!("planned switchover: orders writable on B after {took:?}");
    // Nothing was lost or added: B holds A's records and the one write since.
    let after = high_watermarks(&b.bootstrap, "orders");
    assert_eq!(after[0], ends[0] + 1);
    assert_eq!(&after[1..], &ends[1..]);
    for p in 1..3 {
        assert_eq!(
            partition_bytes(&a.bootstrap, "orders", p),
            partition_bytes(&b.bootstrap, "orders", p)
        );
    }
    // Consumers resume at exactly their committed offsets.
    assert_eq!(committed(&b.bootstrap, "payments"), halfway);
    // B writes in leader epochs above every epoch it copied.
    let epochs = leader_epochs(&b.bootstrap, "orders");
    assert!(
        epochs.iter().zip(&source_epochs).all(|(b, a)| b > a),
        "B's epochs {epochs:?}, A's {source_epochs:?}"
    );
    produce_idempotently(&b.bootstrap, "after", 100);
    consumer.wait_for("after99", Duration::from_secs(30));
    let total: i64 = high_watermarks(&b.bootstrap, "orders").iter().sum();
    assert_eq!(total, ends.iter().sum::<i64>() + 1 + 100);
    // Producer ids allocated on B are above every id copied from A.
    let init = connect(&b.bootstrap)
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .unwrap();
    assert_eq!(init.error_code, 0);
    assert!(init.producer_id.0 >> 56 >= 1, "{:?}", init.producer_id);
    // A no longer feeds B, and the link cannot go back to mirroring.
    let (code, message) = alter_configs(&a.bootstrap, 2, "orders", &[("hdi.read.only", None)]);
    assert_eq!(code, 0, "{message:?}");
    produce_lines(&a.bootstrap, "orders", "none", 0, 30);
    std::thread::sleep(Duration::from_secs(2));
    let still: i64 = high_watermarks(&b.bootstrap, "orders").iter().sum();
    assert_eq!(still, total);
    let (code, message) =
        cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("mirroring"))]);
    assert_eq!(code, 40, "{message:?}");
    // Its topics writable, the link can go (deleting its bootstrap servers removes it).
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.bootstrap.servers", None)]);
    assert_eq!(code, 0, "{message:?}");
}

#[test]
fn a_failover_keeps_what_was_copied_when_the_source_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&dir.path().join("a"), None, &["--default-partitions", "3"]);
    let b = Broker::start(&dir.path().join("b"), None, &["--default-partitions", "1"]);
    produce_lines(&a.bootstrap, "orders", "lz4", 0, 600);
    link(&b.bootstrap, &a.bootstrap, "orders");
    let ends = wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    let copied: Vec<Vec<u8>> = (0..3)
        .map(|p| partition_bytes(&b.bootstrap, "orders", p).0)
        .collect();
    a.proc.kill9();
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("failover"))]);
    assert_eq!(code, 0, "{message:?}");
    let took = wait_writable(&b.bootstrap, "orders");
    eprintln!("failover: orders writable on B after {took:?}");
    // What was copied is intact, and the new write follows it.
    for p in 0..3 {
        let (bytes, hw) = partition_bytes(&b.bootstrap, "orders", p);
        assert!(bytes.starts_with(&copied[p as usize]));
        assert_eq!(hw, ends[p as usize] + i64::from(p == 0));
    }
}

#[test]
fn the_checker_catches_a_mirror_that_rewrites_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let a = Broker::start(&dir.path().join("a"), None, &["--default-partitions", "1"]);
    let b = Broker::start(
        &dir.path().join("b"),
        None,
        &["--testing-mirror-rewrites-a-batch"],
    );
    let input: String = (0..300).map(|i| format!("{{\"amount\":{i}}}\n")).collect();
    let (ok, _, err) = kcat(
        &a.bootstrap,
        &["-P", "-t", "orders"],
        Some(input.as_bytes()),
    );
    assert!(ok, "{err}");
    link(&b.bootstrap, &a.bootstrap, "orders");
    // The broken mirror holds as many records, each batch with a valid CRC, yet the checker's
    // byte comparison finds it is not a prefix of its source.
    let (source, source_hw) = partition_bytes(&a.bootstrap, "orders", 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((mirror, hw)) = try_partition_bytes(&b.bootstrap, "orders", 0)
            && hw == source_hw
        {
            assert_eq!(mirror.len(), source.len());
            assert!(
                !source.starts_with(&mirror),
                "the checker missed the rewritten batch"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken mirror never caught up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `hdi.link.<link>.partitions` of every broker of `bootstrap`'s cluster, merged: one JSON
/// object per mirror partition (see `mirror::partitions_status`).
fn partitions_status(bootstrap: &str, link: &str) -> Vec<serde_json::Value> {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let metadata = connect(bootstrap)
        .call(
            &MetadataRequest::default().with_topics(Some(Vec::new())),
            12,
        )
        .unwrap();
    let mut out = Vec::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host.as_str(), broker.port);
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_string(broker.node_id.0.to_string()))
                .with_configuration_keys(Some(vec![StrBytes::from_string(format!(
                    "hdi.link.{link}.partitions"
                ))])),
        ]);
        let response = connect(&address).call(&request, 4).unwrap();
        for config in &response.results[0].configs {
            let value = config.value.as_ref().map(|v| v.to_string()).unwrap();
            let parsed: Vec<serde_json::Value> = serde_json::from_str(&value).unwrap();
            out.extend(parsed);
        }
    }
    out.sort_by_key(|p| (p["topic"].to_string(), p["partition"].as_i64()));
    out
}

/// Waits until `check` holds of the partitions' status of `link` on `bootstrap`.
fn wait_status(
    bootstrap: &str,
    link: &str,
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = partitions_status(bootstrap, link);
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s; last status {status:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sum(status: &[serde_json::Value], field: &str) -> i64 {
    status.iter().map(|p| p[field].as_i64().unwrap_or(0)).sum()
}

/// A partition's batches with their base offsets and leader epochs zeroed (what a move to the
/// quarantine topic rewrites), for comparing records wherever they are stored.
fn without_positions(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at + 12 <= out.len() {
        let length = i32::from_be_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        out[at..at + 8].fill(0);
        out[at + 12..at + 16].fill(0);
        at += 12 + length;
    }
    out
}

/// The batches of a partition's bytes (from offset 0) from the one at `offset` on.
fn from_offset(bytes: &[u8], offset: i64) -> &[u8] {
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        if base >= offset {
            break;
        }
        at += 12 + i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    &bytes[at.min(bytes.len())..]
}

/// The read-only `hdi.mirror.*` facts DescribeConfigs shows of a topic.
fn mirror_fact(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    described(bootstrap, topic, key, |_| true)
}

#[test]
fn pause_failover_with_a_measured_loss_then_reverse_quarantines_exactly_the_diverged_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Broker::start(&dir.path().join("a"), None, &["--default-partitions", "3"]);
    let b = Broker::start(&dir.path().join("b"), None, &["--default-partitions", "1"]);
    produce_lines(&a.bootstrap, "orders", "zstd", 0, 600);
    link(&b.bootstrap, &a.bootstrap, "orders");
    wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    let status = wait_status(&b.bootstrap, "dr", "active", |s| {
        s.len() == 3 && s.iter().all(|p| p["state"] == "active")
    });
    assert_eq!(sum(&status, "lag_records"), 0, "{status:#?}");

    // Paused: nothing is copied, and the lag shows what the source took meanwhile.
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("paused"))]);
    assert_eq!(code, 0, "{message:?}");
    wait_status(&b.bootstrap, "dr", "paused", |s| {
        s.iter().all(|p| p["state"] == "paused")
    });
    let held = high_watermarks(&b.bootstrap, "orders");
    produce_lines(&a.bootstrap, "orders", "zstd", 600, 90);
    let status = wait_status(&b.bootstrap, "dr", "lag while paused", |s| {
        sum(s, "lag_records") == 90
    });
    assert!(sum(&status, "lag_bytes") > 0, "{status:#?}");
    assert_eq!(high_watermarks(&b.bootstrap, "orders"), held);
    // Resumed: caught up.
    let (code, message) =
        cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("mirroring"))]);
    assert_eq!(code, 0, "{message:?}");
    wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);

    // A takes 45 records B does not copy, then dies; B fails over and counts them.
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("paused"))]);
    assert_eq!(code, 0, "{message:?}");
    wait_status(&b.bootstrap, "dr", "paused", |s| {
        s.iter().all(|p| p["state"] == "paused")
    });
    let stop_ends = high_watermarks(&b.bootstrap, "orders");
    produce_lines(&a.bootstrap, "orders", "zstd", 690, 45);
    wait_status(&b.bootstrap, "dr", "lag before the loss", |s| {
        sum(s, "lag_records") == 45
    });
    let a_logs: Vec<Vec<u8>> = (0..3)
        .map(|p| partition_bytes(&a.bootstrap, "orders", p).0)
        .collect();
    a.proc.kill9();
    wait_status(&b.bootstrap, "dr", "source unavailable", |s| {
        s.iter().all(|p| p["state"] == "source_unavailable")
    });
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.state", Some("failover"))]);
    assert_eq!(code, 0, "{message:?}");
    wait_writable(&b.bootstrap, "orders");
    let status = wait_status(&b.bootstrap, "dr", "stopped", |s| {
        s.len() == 3 && s.iter().all(|p| p["state"] == "stopped")
    });
    eprintln!("after failover: {status:#?}");
    // The loss reported is what A acknowledged and B lacks.
    assert_eq!(sum(&status, "loss_records"), 45, "{status:#?}");
    assert!(status.iter().any(|p| p["loss_ms"].as_i64().unwrap() > 0));
    let stops: Vec<i64> = status
        .iter()
        .map(|p| p["stop_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(stops, stop_ends);
    assert_eq!(
        mirror_fact(&b.bootstrap, "orders", "hdi.mirror.stop.offsets").unwrap(),
        format!("0:{},1:{},2:{}", stops[0], stops[1], stops[2])
    );
    // B takes writes of its own.
    produce_lines(&b.bootstrap, "orders", "none", 1000, 60);

    // A returns; a reverse link makes it B's mirror: its 45 diverged records go to quarantine.
    let a = Broker::start(
        &dir.path().join("a"),
        Some(&a.bootstrap),
        &["--default-partitions", "3"],
    );
    let (code, message) = cluster_configs(
        &a.bootstrap,
        &[
            ("hdi.link.back.bootstrap.servers", Some(&b.bootstrap)),
            ("hdi.link.back.topics", Some("orders")),
            ("hdi.link.back.reverse", Some("true")),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    let status = wait_status(&a.bootstrap, "back", "adopted", |s| {
        s.len() == 3 && s.iter().all(|p| p["state"] == "active")
    });
    assert_eq!(sum(&status, "quarantined"), 45, "{status:#?}");
    assert_eq!(
        mirror_fact(&a.bootstrap, "orders", "hdi.mirror.link").as_deref(),
        Some("back")
    );
    let ends = wait_identical(&b.bootstrap, &a.bootstrap, "orders", 3);
    // The quarantine holds exactly A's records past each stop offset (an independent count:
    // A's log before it died, less what B had).
    for p in 0..3 {
        let (quarantine, q_hw) = partition_bytes(&a.bootstrap, "orders.quarantine", p as i32);
        let diverged = from_offset(&a_logs[p], stops[p]);
        assert_eq!(
            without_positions(&quarantine),
            without_positions(diverged),
            "orders-{p}"
        );
        eprintln!(
            "orders-{p}: {q_hw} records in quarantine, {} now mirrored",
            ends[p]
        );
    }
    let total: i64 = (0..3)
        .map(|p| partition_bytes(&a.bootstrap, "orders.quarantine", p).1)
        .sum();
    assert_eq!(total, 45);
    // A is read-only while it mirrors, and follows B's new writes.
    assert_eq!(produce_one(&a.bootstrap, "orders", 0, b"no"), 17);
    produce_lines(&b.bootstrap, "orders", "lz4", 2000, 30);
    wait_identical(&b.bootstrap, &a.bootstrap, "orders", 3);

    // The round trip: A promoted again, B mirrors A through its own reverse link, nothing in
    // quarantine this time.
    let (code, message) =
        cluster_configs(&a.bootstrap, &[("hdi.link.back.state", Some("promote"))]);
    assert_eq!(code, 0, "{message:?}");
    wait_writable(&a.bootstrap, "orders");
    let (code, message) = cluster_configs(&b.bootstrap, &[("hdi.link.dr.bootstrap.servers", None)]);
    assert_eq!(code, 0, "{message:?}");
    let (code, message) = cluster_configs(
        &b.bootstrap,
        &[
            ("hdi.link.home.bootstrap.servers", Some(&a.bootstrap)),
            ("hdi.link.home.topics", Some("orders")),
            ("hdi.link.home.reverse", Some("true")),
        ],
    );
    assert_eq!(code, 0, "{message:?}");
    let status = wait_status(&b.bootstrap, "home", "adopted again", |s| {
        s.len() == 3 && s.iter().all(|p| p["state"] == "active")
    });
    assert_eq!(sum(&status, "quarantined"), 0, "{status:#?}");
    produce_lines(&a.bootstrap, "orders", "snappy", 3000, 30);
    wait_identical(&a.bootstrap, &b.bootstrap, "orders", 3);
    // A's promoted reverse link, still defined, adopts nothing again: A stays writable.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(mirror_fact(&a.bootstrap, "orders", "hdi.mirror.link"), None);
    assert_eq!(produce_one(&a.bootstrap, "orders", 0, b"still writable"), 0);
}
