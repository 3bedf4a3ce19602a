//! `KafkaAdmin` against a real single-node `hdi-broker` process.
//!
//! Needs the broker binary next to this test's target directory: `cargo build -p hdi-broker`
//! first (the test says so when it is missing).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdi_control_plane::kafka_admin::{AdminError, KafkaAdmin};
use hdi_test_support::ports;

/// A broker process, SIGKILLed and its data directory removed when dropped.
struct Broker {
    child: Child,
    // Removed on drop, after the broker is killed.
    _data_dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn broker_binary() -> PathBuf {
    // target/debug/deps/kafka_admin-<hash> → target/debug/hdi-broker
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let binary = dir.join(format!("hdi-broker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} not found: run `cargo build -p hdi-broker` first",
        binary.display()
    );
    binary
}

fn start_broker() -> Broker {
    let addr = ports::loopback();
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(broker_binary())
        .args(["--node-id", "1", "--data-dir"])
        .arg(data_dir.path())
        .args(["--listen", &addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let broker = Broker {
        child,
        _data_dir: data_dir,
        addr,
    };
    // Read the log until EOF (so the broker never blocks on a full pipe); report readiness.
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("hdi-broker ready on") {
                let _ = ready_tx.send(());
            }
            if std::env::var_os("HDI_TEST_BROKER_LOG").is_some() {
                eprintln!("broker: {line}");
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("hdi-broker did not report ready within 15 s");
    broker
}

fn kafka_name(result: Result<impl std::fmt::Debug, AdminError>) -> String {
    match result {
        Err(AdminError::Kafka { name, .. }) => name,
        other => panic!("expected a Kafka error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_against_a_real_broker() {
    let broker = start_broker();
    let unreachable = ports::loopback();
    // The first bootstrap address refuses connections: the second is used.
    let admin = KafkaAdmin::new(
        vec![unreachable, broker.addr.clone()],
        Duration::from_secs(5),
    );

    let metadata = admin.metadata().await.unwrap();
    assert_eq!(metadata.controller_id, 1);
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(metadata.brokers[0].id, 1);
    assert_eq!(metadata.brokers[0].address(), broker.addr);
    assert!(metadata.cluster_id.is_some());

    admin
        .create_topic(
            "orders",
            3,
            1,
            vec![("retention.ms".to_owned(), "3600000".to_owned())],
        )
        .await
        .unwrap();
    let metadata = admin.metadata().await.unwrap();
    let topic = metadata.topic("orders").unwrap();
    assert!(topic.topic_id.is_some());
    assert!(topic.error.is_none());
    assert_eq!(topic.partitions.len(), 3);
    for (i, p) in topic.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert_eq!(p.leader, 1);
        assert_eq!(p.replicas, [1]);
        assert_eq!(p.isr, [1]);
        assert!(p.offline.is_empty());
    }
    let configs = admin.describe_topic_configs("orders").await.unwrap();
    let config = |configs: &[hdi_control_plane::kafka_admin::TopicConfigEntry], key: &str| {
        configs
            .iter()
            .find(|c| c.name == key)
            .map(|c| (c.value.clone(), c.explicit))
    };
    assert_eq!(
        config(&configs, "retention.ms"),
        Some(("3600000".to_owned(), true)),
        "{configs:?}"
    );
    assert_eq!(
        config(&configs, "cleanup.policy"),
        Some(("delete".to_owned(), false)),
        "defaults are reported as such: {configs:?}"
    );
    // IncrementalAlterConfigs: set one key, reset another to its default.
    admin
        .alter_topic_configs(
            "orders",
            vec![
                ("retention.bytes".to_owned(), Some("1048576".to_owned())),
                ("retention.ms".to_owned(), None),
            ],
        )
        .await
        .unwrap();
    let configs = admin.describe_topic_configs("orders").await.unwrap();
    assert_eq!(
        config(&configs, "retention.bytes"),
        Some(("1048576".to_owned(), true))
    );
    assert_eq!(config(&configs, "retention.ms").map(|c| c.1), Some(false));
    assert_eq!(
        kafka_name(
            admin
                .alter_topic_configs(
                    "orders",
                    vec![("retention.ms".to_owned(), Some("soon".to_owned()))]
                )
                .await
        ),
        "INVALID_CONFIG"
    );

    assert_eq!(
        kafka_name(admin.create_topic("orders", 3, 1, Vec::new()).await),
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        kafka_name(admin.create_topic("wide", 1, 3, Vec::new()).await),
        "INVALID_REPLICATION_FACTOR"
    );
    assert_eq!(
        kafka_name(admin.describe_topic_configs("missing").await),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    admin.create_partitions("orders", 5).await.unwrap();
    let metadata = admin.metadata().await.unwrap();
    assert_eq!(metadata.topic("orders").unwrap().partitions.len(), 5);
    assert_eq!(
        kafka_name(admin.create_partitions("orders", 2).await),
        "INVALID_PARTITIONS"
    );

    assert_eq!(
        admin.list_partition_reassignments().await.unwrap(),
        Vec::new()
    );
    // Reassigning onto the replica it already has is accepted and completes at once; onto a
    // broker that does not exist is refused.
    assert_eq!(
        admin
            .alter_partition_reassignments(vec![("orders".to_owned(), 0, vec![1])])
            .await
            .unwrap(),
        vec![("orders".to_owned(), 0)]
    );
    match admin
        .alter_partition_reassignments(vec![
            ("orders".to_owned(), 1, vec![7]),
            ("orders".to_owned(), 2, vec![1]),
        ])
        .await
    {
        Err(AdminError::Kafka {
            api, name, message, ..
        }) => {
            assert_eq!(api, "AlterPartitionReassignments");
            assert_eq!(name, "INVALID_REPLICA_ASSIGNMENT");
            let message = message.unwrap();
            assert!(message.starts_with("orders-1: "), "{message}");
            assert!(
                message.contains("1 other partition(s) accepted"),
                "{message}"
            );
        }
        other => panic!("expected INVALID_REPLICA_ASSIGNMENT, got {other:?}"),
    }
    assert_eq!(
        admin.list_partition_reassignments().await.unwrap(),
        Vec::new()
    );

    // Users' quotas: set, read back (only `user=<name>` entities), changed and removed.
    assert!(admin.describe_user_quotas().await.unwrap().is_empty());
    admin
        .alter_user_quotas(&[
            (
                "app".to_owned(),
                vec![
                    ("producer_byte_rate".to_owned(), Some(1_048_576.0)),
                    ("request_percentage".to_owned(), Some(50.0)),
                ],
            ),
            (
                "batch".to_owned(),
                vec![("consumer_byte_rate".to_owned(), Some(2_000_000.0))],
            ),
        ])
        .await
        .unwrap();
    let quotas = admin.describe_user_quotas().await.unwrap();
    assert_eq!(
        quotas.keys().map(String::as_str).collect::<Vec<_>>(),
        ["app", "batch"]
    );
    assert_eq!(quotas["app"]["producer_byte_rate"], 1_048_576.0);
    assert_eq!(quotas["app"]["request_percentage"], 50.0);
    assert_eq!(quotas["batch"]["consumer_byte_rate"], 2_000_000.0);
    admin
        .alter_user_quotas(&[
            (
                "app".to_owned(),
                vec![("request_percentage".to_owned(), None)],
            ),
            (
                "batch".to_owned(),
                vec![("consumer_byte_rate".to_owned(), None)],
            ),
        ])
        .await
        .unwrap();
    let quotas = admin.describe_user_quotas().await.unwrap();
    assert_eq!(quotas.len(), 1, "{quotas:?}");
    assert_eq!(
        quotas["app"].keys().map(String::as_str).collect::<Vec<_>>(),
        ["producer_byte_rate"]
    );
    // A value Kafka refuses is the broker's error, named.
    assert_eq!(
        kafka_name(
            admin
                .alter_user_quotas(&[(
                    "app".to_owned(),
                    vec![("request_percentage".to_owned(), Some(0.5))],
                )])
                .await
        ),
        "INVALID_REQUEST"
    );

    admin.delete_topic("orders").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.metadata().await.unwrap().topic("orders").is_some() {
        assert!(Instant::now() < deadline, "topic still listed after delete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kafka_name(admin.delete_topic("orders").await),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    drop(broker);
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_connect_error_quickly() {
    let addrs = vec![ports::loopback(), ports::loopback()];
    let admin = KafkaAdmin::new(addrs.clone(), Duration::from_secs(5));
    let started = Instant::now();
    match admin.metadata().await {
        Err(AdminError::Connect { addrs: tried, .. }) => assert_eq!(tried, addrs),
        other => panic!("expected a Connect error, got {other:?}"),
    }
    match admin.create_topic("t", 1, 1, Vec::new()).await {
        Err(AdminError::Connect { .. }) => {}
        other => panic!("expected a Connect error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_silent_broker_is_a_timeout() {
    // Connections are accepted (by the kernel's backlog) but never answered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let admin = KafkaAdmin::new(vec![addr], Duration::from_millis(300));
    let started = Instant::now();
    match admin.metadata().await {
        Err(AdminError::Timeout { api, .. }) => assert_eq!(api, "Metadata"),
        other => panic!("expected a Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(listener);
}

/// The control plane's copy of the broker's topic config keys (`KNOWN_CONFIGS`, which refuses an
/// unknown key before it reaches the cluster) equals what a real broker describes for a topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_topic_configs_are_the_brokers() {
    let broker = start_broker();
    let admin = KafkaAdmin::new(vec![broker.addr.clone()], Duration::from_secs(5));
    admin
        .create_topic("configs", 1, 1, Vec::new())
        .await
        .unwrap();
    let mut described: Vec<String> = admin
        .describe_topic_configs("configs")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    described.sort();
    let mut known: Vec<&str> = hdi_control_plane::service::KNOWN_CONFIGS.to_vec();
    known.sort_unstable();
    assert_eq!(
        described, known,
        "service::topic::KNOWN_CONFIGS differs from the broker's topic configs"
    );
}
