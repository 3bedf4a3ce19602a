//! The Java Kafka client (kafka-clients 4.4 from Maven Central) against real `hdi-broker`
//! processes: the programs of `e2e/clients/java/hdi/compat/` make their own assertions and end
//! with a JSON line (`hdi_e2e::java_run`). An idempotent producer across a partition leader's
//! SIGKILL in a three-broker RF=3 cluster with min.insync.replicas=2 (exactly once and in order
//! per partition); consumer groups with the cooperative-sticky assignor (3 members join and
//! leave, every record consumed once, no partition owned twice, commits resume) and static
//! membership (a restart within the session timeout triggers no rebalance); the admin client
//! (topics, configs, partitions, reassignments, log dirs, deleteRecords, listOffsets) against
//! the cluster; every topic config of the client at Kafka's default accepted, unsupported
//! values refused with INVALID_CONFIG and a message; and ACLs created, described and deleted
//! over SASL SCRAM on a broker with an authorizer, enforced on a SCRAM user the client created.
//! Fetch sessions (KIP-227), which the Java consumer uses: a consumer of 12 partitions reads
//! everything once while the broker's metrics show its incremental fetch session.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
use hdi_e2e::{
    Broker, BrokerCluster, Proc, TempDir, bin, http_request, java_program, java_result, java_run,
    ports,
};

#[test]
fn idempotent_producer_is_exactly_once_and_in_order_across_a_leader_sigkill() {
    let dir = TempDir::new("java-idempotent");
    let mut cluster = BrokerCluster::start("java-idempotent", dir.path());
    let topic = "java-idempotent";
    let bootstrap = cluster.bootstrap();
    let mut java = java_program("Idempotent", &[&bootstrap, topic, "3", "30000"]);
    java.wait_for_line("acked 5000", Duration::from_secs(120))
        .unwrap();
    let leader = cluster.leader(topic, 0).unwrap();
    cluster.kill(leader);
    eprintln!("SIGKILLed broker {} (leader of {topic}-0)", leader + 1);
    java.wait_for_line("acked 20000", Duration::from_secs(120))
        .unwrap();
    cluster.restart(leader);
    let result = java_result(&mut java, Duration::from_secs(180));
    assert_eq!(result["records"], 30000, "{result}");
}

#[test]
fn cooperative_sticky_group_hands_partitions_over_without_overlap_and_resumes() {
    let dir = TempDir::new("java-cooperative");
    let broker = Broker::start(dir.path(), None, &[]);
    let result = java_run(
        "Groups",
        &[&broker.bootstrap, "java-cooperative", "cooperative"],
        Duration::from_secs(200),
    );
    assert!(result["records"].as_u64().unwrap() > 0, "{result}");
    assert!(result["resumed_records"].as_u64().unwrap() > 0, "{result}");
}

#[test]
fn static_member_restarting_within_its_session_timeout_causes_no_rebalance() {
    let dir = TempDir::new("java-static");
    let broker = Broker::start(dir.path(), None, &[]);
    let result = java_run(
        "Groups",
        &[&broker.bootstrap, "java-static", "static"],
        Duration::from_secs(120),
    );
    assert!(result["generation"].as_i64().unwrap() > 0, "{result}");
}

#[test]
fn admin_client_against_a_three_broker_cluster() {
    let dir = TempDir::new("java-admin");
    let cluster = BrokerCluster::start("java-admin", dir.path());
    java_run(
        "AdminSuite",
        &[&cluster.bootstrap(), "java-admin"],
        Duration::from_secs(200),
    );
}

#[test]
fn topic_configs_at_kafka_defaults_are_accepted_and_unsupported_ones_refused() {
    let dir = TempDir::new("java-topic-configs");
    let broker = Broker::start(dir.path(), None, &[]);
    let result = java_run(
        "TopicConfigs",
        &[&broker.bootstrap, "java-config"],
        Duration::from_secs(120),
    );
    assert_eq!(
        result["accepted_defaults"], result["client_keys"],
        "{result}"
    );
}

#[test]
fn acls_over_sasl_scram_are_created_enforced_and_deleted() {
    const ADMIN_PASSWORD: &str = "admin-secret-1";
    let dir = TempDir::new("java-acls");
    let admin =
        ScramCredential::from_password(ScramMechanism::Sha512, ADMIN_PASSWORD, 4096).unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, admin.to_line("admin", ScramMechanism::Sha512)).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listen = format!("127.0.0.1:{}", ports::take(1).unwrap()[0]);
    let mut broker = Proc::spawn(
        "hdi-broker",
        Command::new(bin("hdi-broker"))
            .args(["--node-id", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listener", &format!("SASL_PLAINTEXT://{listen}")])
            .args(["--sasl-mechanisms", "SCRAM-SHA-512"])
            .arg("--sasl-users-file")
            .arg(&users)
            .args(["--authorizer", "--super-users", "User:admin"])
            .args(["--auto-create-topics", "false"])
            .args(["--group-initial-rebalance-delay", "300ms"])
            .env("RUST_LOG", "info"),
    );
    broker
        .wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
        .unwrap();
    let result = java_run(
        "Acls",
        &[&listen, ADMIN_PASSWORD, "java-acl"],
        Duration::from_secs(120),
    );
    assert_eq!(result["read"], 10, "{result}");
}

/// The broker's value of a Prometheus series without labels (`name value`), from its loopback
/// metrics listener.
fn metric(addr: &str, name: &str) -> Option<f64> {
    let (status, text) = http_request(addr, "GET", "/metrics", None)?;
    if status != 200 {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_consumer_of_12_partitions_fetches_incrementally_in_a_session() {
    let dir = TempDir::new("java-fetch-sessions");
    let metrics = hdi_e2e::ports::loopback();
    let broker = Broker::start(dir.path(), None, &["--metrics-listen", &metrics]);
    let mut java = java_program(
        "FetchSessions",
        &[&broker.bootstrap, "java-fetch-sessions", "20000"],
    );
    // The most sessions and cached partitions seen while the consumer runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, metrics) = (std::sync::Arc::clone(&stop), metrics.clone());
        std::thread::spawn(move || {
            let (mut sessions, mut partitions) = (0f64, 0f64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = "kafka_server_fetchsessioncache_numincremental";
                sessions =
                    sessions.max(metric(&metrics, &format!("{name}fetchsessions")).unwrap_or(0.0));
                partitions = partitions
                    .max(metric(&metrics, &format!("{name}fetchpartitionscached")).unwrap_or(0.0));
                std::thread::sleep(Duration::from_millis(100));
            }
            (sessions, partitions)
        })
    };
    let result = java_result(&mut java, Duration::from_secs(150));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sessions, partitions) = watcher.join().unwrap();
    assert_eq!(result["records"], 20000, "{result}");
    assert!(sessions >= 1.0, "no fetch session seen");
    assert!(
        partitions >= 12.0,
        "the session cached {partitions} partitions"
    );
}
