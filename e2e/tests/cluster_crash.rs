//! Crash safety and static stability of the cluster lifecycle: the control plane is SIGKILLed at
//! each step of create, resize and delete and restarted; every operation converges and nothing is
//! orphaned (no process, data directory or row). 100 identical PUTs at once make one cluster. With
//! the control plane and the node agents gone, the brokers keep serving.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_api::{ClusterKind, ClusterPatch, ClusterSpec, NodePool, NodePoolPatch, PoolRole};
use hdi_e2e::{
    Fleet, count_rows, eventually, kcat_consume_all, kcat_produce, wait_step, wait_succeeded,
};
use uuid::Uuid;

fn kafka_spec(brokers: u32) -> ClusterSpec {
    ClusterSpec {
        kind: ClusterKind::Kafka,
        version: None,
        node_pools: vec![NodePool {
            name: "brokers".into(),
            role: PoolRole::Broker,
            replicas: brokers,
            size: "small".into(),
            storage_gib: 10,
        }],
        config: Default::default(),
        deletion_protection: false,
        // Crash safety, not client security, is under test: clients speak PLAINTEXT.
        security: Some(hdi_api::KafkaSecurity::plaintext()),
    }
}

async fn ready_fleet(tag: &str) -> Fleet {
    let fleet = Fleet::start_ready(tag, 3).await;
    fleet.api().workspace_create("test").await.unwrap();
    fleet
}

/// Waits until the operation shows a step whose name starts with `prefix`, then SIGKILLs the
/// control plane, restarts it, and returns the steps seen before the kill.
async fn kill_at_step(fleet: &mut Fleet, op: Uuid, prefix: &str) -> Vec<String> {
    let steps = wait_step(&fleet.api(), op, prefix).await;
    fleet.control_plane.proc.kill9();
    fleet.restart_control_plane();
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_at_every_step_converges_without_orphans() {
    let mut fleet = ready_fleet("crash").await;
    let api = fleet.api();

    // Create: killed right after the PUT is accepted, then again once brokers are placed.
    let op = api
        .cluster_put("test", "pay", &kafka_spec(3))
        .await
        .unwrap();
    fleet.control_plane.proc.kill9();
    fleet.restart_control_plane();
    kill_at_step(&mut fleet, op.id, "place brokers").await;
    wait_succeeded(&fleet.api(), op.id).await;
    let api = fleet.api();
    let cluster = api.cluster_get("test", "pay").await.unwrap();
    assert_eq!(cluster.status.state, hdi_api::ClusterState::Running);
    assert_eq!(cluster.status.workloads.len(), 3, "placed once, not twice");
    let bootstrap = cluster.status.endpoints.bootstrap_servers.clone().unwrap();
    let records: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    kcat_produce(&bootstrap, "events", &records);

    // Resize out: killed while the new broker starts.
    let patch = |n: u32, drain: bool| ClusterPatch {
        node_pools: Some(vec![NodePoolPatch {
            name: "brokers".into(),
            replicas: n,
        }]),
        deletion_protection: None,
        drain,
    };
    let op = api
        .cluster_patch("test", "pay", &patch(4, false))
        .await
        .unwrap();
    kill_at_step(&mut fleet, op.id, "place brokers 4").await;
    wait_succeeded(&fleet.api(), op.id).await;
    let api = fleet.api();
    assert_eq!(
        api.cluster_get("test", "pay")
            .await
            .unwrap()
            .status
            .workloads
            .len(),
        4
    );

    // Resize in with drain: killed while partitions move.
    let op = api
        .cluster_patch("test", "pay", &patch(3, true))
        .await
        .unwrap();
    let seen = kill_at_step(&mut fleet, op.id, "").await;
    assert!(!seen.is_empty());
    wait_succeeded(&fleet.api(), op.id).await;
    let api = fleet.api();
    let cluster = api.cluster_get("test", "pay").await.unwrap();
    assert_eq!(cluster.status.workloads.len(), 3, "{cluster:#?}");
    assert_eq!(
        kcat_consume_all(&bootstrap, "events").len(),
        200,
        "nothing acknowledged is lost"
    );

    // Delete: killed while the workloads stop.
    let op = api.cluster_delete("test", "pay").await.unwrap();
    kill_at_step(&mut fleet, op.id, "stop the workloads").await;
    wait_succeeded(&fleet.api(), op.id).await;
    let api = fleet.api();
    let gone = api.cluster_get("test", "pay").await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    eventually(
        "no broker process left",
        Duration::from_secs(20),
        || async { fleet.workload_processes().is_empty().then_some(()) },
    )
    .await
    .unwrap();
    for node in 0..3 {
        let left = fleet.workload_data(node);
        assert!(left.is_empty(), "data left on node-{node}: {left:?}");
    }
    let db = fleet.database_url.clone();
    assert_eq!(count_rows(&db, "SELECT count(*) FROM clusters").await, 0);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM workloads").await, 0);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM ports").await, 0);
    assert_eq!(
        count_rows(
            &db,
            "SELECT count(*) FROM operations WHERE state = 'Running'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_identical_puts_make_one_cluster_and_brokers_serve_without_the_control_plane() {
    let mut fleet = ready_fleet("puts").await;
    let api = fleet.api();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.cluster_put("test", "one", &kafka_spec(3)).await
        }));
    }
    let mut ops = std::collections::BTreeSet::new();
    for task in tasks {
        let op = task.await.unwrap().unwrap();
        ops.insert(op.id);
    }
    assert_eq!(
        ops.len(),
        1,
        "every PUT answers with the one create operation: {ops:?}"
    );
    let db = fleet.database_url.clone();
    assert_eq!(count_rows(&db, "SELECT count(*) FROM clusters").await, 1);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM operations").await, 1);
    let op = *ops.iter().next().unwrap();
    wait_succeeded(&fleet.api(), op).await;
    let cluster = api.cluster_get("test", "one").await.unwrap();
    let bootstrap = cluster.status.endpoints.bootstrap_servers.clone().unwrap();

    // Static stability: control plane and agents SIGKILLed; the brokers keep serving.
    fleet.control_plane.proc.kill9();
    for agent in &mut fleet.agents {
        agent.kill9();
    }
    // Without a control plane.
    let records: Vec<String> = (0..500).map(|i| format!("s{i}")).collect();
    kcat_produce(&bootstrap, "static", &records);
    assert_eq!(kcat_consume_all(&bootstrap, "static").len(), 500);
    assert_eq!(
        fleet.workload_processes().len(),
        3,
        "the brokers outlive their agents"
    );

    // Everything back: the agents adopt their brokers (no restart), the cluster stays Running.
    fleet.restart_control_plane();
    let url = fleet.control_plane.url.clone();
    for i in 0..3 {
        fleet.agents[i] = fleet.start_agent(u32::try_from(i).unwrap(), &url);
    }
    let api = fleet.api();
    eventually(
        "the cluster Running again",
        Duration::from_secs(60),
        || async {
            let c = api.cluster_get("test", "one").await.ok()?;
            (c.status.state == hdi_api::ClusterState::Running
                && c.status
                    .workloads
                    .iter()
                    .all(|w| w.state == "Running" && w.restarts == 0))
            .then_some(())
        },
    )
    .await
    .unwrap();
}
