//! High availability of the control plane, end to end: PostgreSQL stopped or SIGKILLed in the
//! middle of operations (nothing acknowledged is lost, the control plane rides it out, the
//! brokers keep serving), and two control planes on one database (no double work; one SIGKILLed
//! mid-delete, the other finishes once its lease expires).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hdi_api::{Client, ClusterKind, ClusterSpec, ClusterState, NodePool, OperationState, PoolRole};
use hdi_e2e::{
    Fleet, PrivatePostgres, count_rows, eventually, kcat_consume_all, kcat_produce, start_agent,
    wait_ready_nodes, wait_step, wait_succeeded,
};
use uuid::Uuid;

fn spec(kind: ClusterKind, replicas: u32) -> ClusterSpec {
    let (name, role) = match kind {
        ClusterKind::Kafka => ("brokers", PoolRole::Broker),
        ClusterKind::Spark => ("executors", PoolRole::Executor),
    };
    ClusterSpec {
        kind,
        version: None,
        node_pools: vec![NodePool {
            name: name.into(),
            role,
            replicas,
            size: "small".into(),
            storage_gib: 10,
        }],
        config: Default::default(),
        deletion_protection: false,
        // Failover, not client security, is under test: clients speak PLAINTEXT.
        security: (kind == ClusterKind::Kafka).then(hdi_api::KafkaSecurity::plaintext),
    }
}

async fn query_pairs(database_url: &str, sql: &str) -> Vec<(String, Option<String>)> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

async fn is_ready(api: &Client) -> bool {
    api.readiness()
        .await
        .is_ok_and(|r| r.status == "ready" && r.database == "ok")
}

/// Waits (up to 30 s) until `/readyz` reports ready again; returns how long that took.
async fn ready_again(api: &Client) -> Duration {
    eventually("/readyz ready again", Duration::from_secs(30), || async {
        is_ready(api).await.then_some(())
    })
    .await
    .unwrap()
    .1
}

/// Keeps the database down until `outage` has lasted `length`, checking every 250 ms that the
/// control plane process is still alive.
async fn ride_out(fleet: &mut Fleet, outage: Instant, length: Duration) {
    while outage.elapsed() < length {
        assert!(
            fleet.control_plane.proc.is_running(),
            "the control plane exited {:?} into the database outage",
            outage.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_stopped_mid_operation_loses_nothing_acknowledged() {
    let started = Instant::now();
    let pg = PrivatePostgres::new();
    let db = pg.create_database("hdi").await;
    let mut fleet = Fleet::start_with_database("pgha", 3, db.clone());
    let api = fleet.api();
    wait_ready_nodes(&api, 3).await;
    api.workspace_create("test").await.unwrap();
    assert!(is_ready(&api).await);

    // 1. PostgreSQL SIGKILLed (postmaster and backends) while the create operation runs.
    let create = api
        .cluster_put("test", "pay", &spec(ClusterKind::Kafka, 3))
        .await
        .unwrap();
    let seen = wait_step(&api, create.id, "").await;
    pg.kill9();
    let outage = Instant::now();
    eprintln!("PostgreSQL SIGKILLed at steps {seen:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = api.cluster_get("test", "pay").await;
    assert!(
        during.is_err(),
        "the cluster read cannot succeed without its database: {during:?}"
    );
    assert!(!is_ready(&api).await, "/readyz reports the database outage");
    ride_out(&mut fleet, outage, Duration::from_secs(5)).await;
    pg.start();
    let back = ready_again(&api).await;
    eprintln!("control plane ready {back:?} after PostgreSQL restarted (crash recovery)");
    assert!(
        fleet.control_plane.proc.is_running(),
        "the control plane survives the outage"
    );
    let done = wait_succeeded(&api, create.id).await;
    eprintln!(
        "create converged {:.1}s after the outage began; steps {:?}",
        outage.elapsed().as_secs_f64(),
        done.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let pay = api.cluster_get("test", "pay").await.unwrap();
    assert_eq!(pay.status.state, ClusterState::Running, "{pay:#?}");
    assert_eq!(pay.status.workloads.len(), 3, "{pay:#?}");
    assert_eq!(count_rows(&db, "SELECT count(*) FROM workloads").await, 3);
    let bootstrap = pay.status.endpoints.bootstrap_servers.clone().unwrap();
    let before: Vec<String> = (0..100).map(|i| format!("before-{i:03}")).collect();
    kcat_produce(&bootstrap, "before", &before);
    let broker_pids: BTreeSet<u32> = fleet.workload_processes().iter().map(|p| p.0).collect();
    assert_eq!(broker_pids.len(), 3);

    // 2. A Spark create acknowledged with 202; once its workloads are placed (its first step),
    // PostgreSQL is stopped (fast shutdown) while the operation runs. (A placement still in
    // flight at the outage: see the ignored test below.)
    let etl = api
        .cluster_put("test", "etl", &spec(ClusterKind::Spark, 1))
        .await
        .unwrap();
    assert_eq!(etl.state, OperationState::Running);
    let seen = wait_step(&api, etl.id, "").await;
    pg.stop();
    let outage = Instant::now();
    eprintln!("PostgreSQL stopped at steps {seen:?}");
    // Static stability: the brokers serve without the database (and so without a usable control
    // plane).
    let during: Vec<String> = (0..300).map(|i| format!("during-{i:03}")).collect();
    kcat_produce(&bootstrap, "during", &during);
    let mut expected = during.clone();
    expected.sort();
    assert_eq!(kcat_consume_all(&bootstrap, "during"), expected);
    eprintln!(
        "produced and consumed 300 records {:.1}s into the outage",
        outage.elapsed().as_secs_f64()
    );
    assert!(!is_ready(&api).await);
    ride_out(&mut fleet, outage, Duration::from_secs(5)).await;
    pg.start();
    ready_again(&api).await;
    wait_succeeded(&api, etl.id).await;
    eprintln!(
        "Spark create converged {:.1}s after the outage began",
        outage.elapsed().as_secs_f64()
    );
    assert!(
        fleet.control_plane.proc.is_running(),
        "the control plane survives"
    );

    // Everything acknowledged before the outages is there.
    let workspaces = api.workspaces_list(None).await.unwrap();
    assert!(
        workspaces.items.iter().any(|w| w.name == "test"),
        "{workspaces:?}"
    );
    let etl_cluster = api.cluster_get("test", "etl").await.unwrap();
    assert_eq!(etl_cluster.status.state, ClusterState::Running);
    assert_eq!(etl_cluster.status.workloads.len(), 2, "{etl_cluster:#?}");
    let pay = api.cluster_get("test", "pay").await.unwrap();
    assert_eq!(pay.status.state, ClusterState::Running, "{pay:#?}");
    assert_eq!(pay.status.workloads.len(), 3);
    assert!(
        pay.status.workloads.iter().all(|w| w.restarts == 0),
        "the brokers were not restarted: {pay:#?}"
    );
    let create_again = api.operation_get(create.id).await.unwrap();
    assert_eq!(create_again.state, OperationState::Succeeded);
    let ops = api.operations_list("test", None).await.unwrap();
    let ids: BTreeSet<Uuid> = ops.items.iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([create.id, etl.id]),
        "both operations, once"
    );
    assert_eq!(count_rows(&db, "SELECT count(*) FROM clusters").await, 2);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM workloads").await, 5);
    let now_pids: BTreeSet<u32> = fleet
        .workload_processes()
        .iter()
        .filter(|p| p.1.contains("hdi-broker"))
        .map(|p| p.0)
        .collect();
    assert_eq!(
        now_pids, broker_pids,
        "the same broker processes throughout"
    );
    let mut before_sorted = before.clone();
    before_sorted.sort();
    assert_eq!(kcat_consume_all(&bootstrap, "before"), before_sorted);
    assert_eq!(kcat_consume_all(&bootstrap, "during"), expected);

    // 3. Static stability with both gone: PostgreSQL stopped and the control plane SIGKILLed.
    pg.stop();
    fleet.control_plane.proc.kill9();
    let dark: Vec<String> = (0..300).map(|i| format!("dark-{i:03}")).collect();
    kcat_produce(&bootstrap, "dark", &dark);
    let mut dark_sorted = dark.clone();
    dark_sorted.sort();
    assert_eq!(kcat_consume_all(&bootstrap, "dark"), dark_sorted);
    pg.start();
    fleet.restart_control_plane();
    let api = fleet.api();
    eventually(
        "pay Running after both came back",
        Duration::from_secs(30),
        || async {
            let pay = api.cluster_get("test", "pay").await.ok()?;
            (pay.status.state == ClusterState::Running).then_some(())
        },
    )
    .await
    .unwrap();
    eprintln!("test took {:.1}s", started.elapsed().as_secs_f64());
}

/// An operation acknowledged (202) just before the outage, its placement in flight when the
/// database goes down, must still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_acknowledged_right_before_a_postgres_outage_converges() {
    let started = Instant::now();
    let pg = PrivatePostgres::new();
    let db = pg.create_database("hdi").await;
    // The agents heartbeat at their default interval (2 s), as in production.
    let mut fleet = Fleet::start_with_database("pgack", 0, db.clone());
    for i in 0..3 {
        let agent = start_agent(
            &fleet.control_plane.url,
            &fleet.secrets.agent_token_file,
            &format!("node-{i}"),
            i,
            &fleet.agent_dir(i),
            "2s",
        );
        fleet.agents.push(agent);
    }
    let api = fleet.api();
    wait_ready_nodes(&api, 3).await;
    api.workspace_create("test").await.unwrap();

    // Hold the control plane's placement lock, so that the create is acknowledged and its
    // placement is in flight (waiting on the lock) when PostgreSQL goes down.
    use sqlx::Connection as _;
    let mut holder = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('hdi.placement'))")
        .execute(&mut holder)
        .await
        .unwrap();
    let etl = api
        .cluster_put("test", "etl", &spec(ClusterKind::Spark, 1))
        .await
        .unwrap();
    assert_eq!(etl.state, OperationState::Running, "acknowledged: {etl:?}");
    eventually(
        "the placement waiting on its lock",
        Duration::from_secs(30),
        || async {
            let pool = sqlx::PgPool::connect(&db).await.ok()?;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            pool.close().await;
            (waiting > 0).then_some(())
        },
    )
    .await
    .unwrap();
    pg.stop();
    drop(holder);
    let outage = Instant::now();
    ride_out(&mut fleet, outage, Duration::from_secs(5)).await;
    pg.start();
    ready_again(&api).await;
    let done = api
        .operation_wait(etl.id, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    if done.state != OperationState::Succeeded {
        // What became of the cluster (level-triggered: does it converge anyway?).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cluster = api.cluster_get("test", "etl").await;
        panic!(
            "the create acknowledged before the outage ended {:?}: {done:#?}\n\
             the cluster 10 s later: {cluster:#?}",
            done.state
        );
    }
    let cluster = api.cluster_get("test", "etl").await.unwrap();
    assert_eq!(cluster.status.state, ClusterState::Running, "{cluster:#?}");
    assert_eq!(cluster.status.workloads.len(), 2, "{cluster:#?}");
    assert!(fleet.control_plane.proc.is_running());
    eprintln!("test took {:.1}s", started.elapsed().as_secs_f64());
}

/// A log line without its ANSI colour sequences (`ESC [ ... m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The reconciler owner id a control plane printed at start-up.
fn owner_of(lines: &[String]) -> String {
    let line = lines
        .iter()
        .map(|l| plain(l))
        .find(|l| l.contains("reconciler started") && l.contains("owner="))
        .expect("a 'reconciler started' line");
    line.split("owner=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Names of clusters a control plane logged placing workloads for.
fn placed_clusters(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| plain(l))
        .filter(|l| l.contains("workloads placed"))
        .filter_map(|l| {
            l.split("cluster=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_on_one_database_do_no_double_work() {
    let started = Instant::now();
    let mut fleet = Fleet::start("twocp", 3).await;
    let mut second = Fleet::start_control_plane(
        &fleet.database_url,
        &fleet.secrets,
        "127.0.0.1:0",
        &fleet.workload_ports,
    );
    let apis = [fleet.api(), second.admin(&fleet.secrets)];
    wait_ready_nodes(&apis[1], 3).await;
    apis[1].workspace_create("test").await.unwrap();

    // Three creates through alternating control planes, all at once.
    let clusters = [
        ("a", ClusterKind::Kafka, 3, 3),
        ("b", ClusterKind::Kafka, 3, 3),
        ("c", ClusterKind::Spark, 2, 3),
    ];
    let mut ops = Vec::new();
    for (i, (name, kind, replicas, _)) in clusters.iter().enumerate() {
        let op = apis[i % 2]
            .cluster_put("test", name, &spec(*kind, *replicas))
            .await
            .unwrap();
        ops.push(op.id);
    }
    for (i, op) in ops.iter().enumerate() {
        // Each waited for through the other control plane than the one that took it.
        let done = wait_succeeded(&apis[(i + 1) % 2], *op).await;
        let names: Vec<&str> = done.steps.iter().map(|s| s.name.as_str()).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "each step once in {}: {names:?}",
            clusters[i].0
        );
        eprintln!("{}: {names:?}", clusters[i].0);
    }
    let db = fleet.database_url.clone();
    for (name, _, _, workloads) in &clusters {
        let cluster = apis[0].cluster_get("test", name).await.unwrap();
        assert_eq!(cluster.status.state, ClusterState::Running, "{cluster:#?}");
        assert_eq!(cluster.status.workloads.len(), *workloads, "{cluster:#?}");
    }
    assert_eq!(count_rows(&db, "SELECT count(*) FROM workloads").await, 9);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM operations").await, 3);

    // Exactly one process per workload (and none that is no workload's).
    let names = query_pairs(
        &db,
        "SELECT w.name, c.name FROM workloads w JOIN clusters c ON c.id = w.cluster_id",
    )
    .await;
    let procs = fleet.workload_processes();
    for (name, _) in &names {
        let needle = format!("/workloads/{name}/");
        let running: Vec<&(u32, String)> = procs.iter().filter(|p| p.1.contains(&needle)).collect();
        assert_eq!(running.len(), 1, "processes of {name}: {running:?}");
    }
    assert_eq!(procs.len(), 9, "{procs:#?}");
    assert_eq!(
        procs.iter().filter(|p| p.1.contains("hdi-broker")).count(),
        6
    );

    // Each cluster was placed by one control plane only.
    let owners = [
        owner_of(&fleet.control_plane.proc.lines()),
        owner_of(&second.proc.lines()),
    ];
    let placed = [
        placed_clusters(&fleet.control_plane.proc.lines()),
        placed_clusters(&second.proc.lines()),
    ];
    assert!(
        placed[0].is_disjoint(&placed[1]),
        "a cluster placed by both control planes: {placed:?}"
    );
    let leases: BTreeMap<String, Option<String>> = query_pairs(
        &db,
        "SELECT name, lease_owner::text FROM clusters ORDER BY name",
    )
    .await
    .into_iter()
    .collect();
    eprintln!("owners {owners:?}; leases {leases:?}; placed {placed:?}");

    // SIGKILL the control plane holding b's lease while b's delete runs; the other finishes.
    let holder = leases["b"].clone().expect("b is leased");
    let victim = owners.iter().position(|o| *o == holder).unwrap();
    let survivor = 1 - victim;
    let of_b: Vec<String> = names
        .iter()
        .filter(|(_, cluster)| cluster.as_deref() == Some("b"))
        .map(|(name, _)| format!("/workloads/{name}/"))
        .collect();
    assert_eq!(of_b.len(), 3);
    let pids_before: BTreeSet<u32> = procs
        .iter()
        .filter(|p| !of_b.iter().any(|needle| p.1.contains(needle)))
        .map(|p| p.0)
        .collect();
    assert_eq!(pids_before.len(), 6);
    let delete = apis[victim].cluster_delete("test", "b").await.unwrap();
    let seen = wait_step(&apis[victim], delete.id, "").await;
    if victim == 0 {
        fleet.control_plane.proc.kill9();
    } else {
        second.proc.kill9();
    }
    let killed = Instant::now();
    eprintln!("killed control plane {victim} (lease holder of b) at steps {seen:?}");
    if victim == 0 {
        // The agents talked to the killed one: point them at the survivor (they adopt their
        // workloads, which never stopped).
        let url = second.url.clone();
        for i in 0..3 {
            fleet.agents[i].kill9();
            fleet.agents[i] = fleet.start_agent(u32::try_from(i).unwrap(), &url);
        }
    }
    let done = wait_succeeded(&apis[survivor], delete.id).await;
    let took = killed.elapsed();
    eprintln!(
        "the survivor finished the delete {:.1}s after the kill; steps {:?}",
        took.as_secs_f64(),
        done.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(
        took < Duration::from_secs(45),
        "the lease (10 s) should pass to the survivor long before: {took:?}"
    );
    let gone = apis[survivor].cluster_get("test", "b").await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    eventually("b's processes gone", Duration::from_secs(20), || async {
        (fleet.workload_processes().len() == 6).then_some(())
    })
    .await
    .unwrap();
    let pids_after: BTreeSet<u32> = fleet.workload_processes().iter().map(|p| p.0).collect();
    assert_eq!(
        pids_after, pids_before,
        "a and c keep their processes across the takeover"
    );
    assert_eq!(count_rows(&db, "SELECT count(*) FROM workloads").await, 6);
    assert_eq!(count_rows(&db, "SELECT count(*) FROM clusters").await, 2);
    for name in ["a", "c"] {
        let cluster = apis[survivor].cluster_get("test", name).await.unwrap();
        assert_eq!(cluster.status.state, ClusterState::Running, "{cluster:#?}");
    }
    eprintln!("test took {:.1}s", started.elapsed().as_secs_f64());
}
