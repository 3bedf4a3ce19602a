//! The Java Kafka client (kafka-clients 4.4 from Maven Central) against real `hdi-broker`
//! processes: the programs of `e2e/clients/java/hdi/compat/` make their own assertions and end
//! with a JSON line (`hdi_e2e::java_run`). An idempotent producer across a partition leader's
//! SIGKILL in a three-broker RF=3 cluster with min.insync.replicas=2 (exactly once and in order
//! per partition); consumer groups with the cooperative-sticky assignor (3 members join and
//! leave, every record consumed once, no partition owned twice, commits resume) and static
//! membership (a restart within the session timeout triggers no rebalance); the admin client
//! (topics, configs, partitions, reassignments, log dirs, deleteRecords, listOffsets) against
//! the cluster; and every topic config of the client at Kafka's default accepted, unsupported
//! values refused with INVALID_CONFIG and a message.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_e2e::{Broker, BrokerCluster, TempDir, java_program, java_result, java_run};

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
