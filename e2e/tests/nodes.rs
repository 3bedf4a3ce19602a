//! Node agents against a real control plane and PostgreSQL: enrolment (a credential per node,
//! revoked and renewed), registration, readiness after SIGKILL, identity across restarts, hdictl
//! output, and agents outliving a control-plane crash.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_api::NodeStatus;
use hdi_e2e::{ControlPlane, Secrets, TempDir, eventually, fresh_database, hdictl, start_agent};

async fn statuses(api: &hdi_api::Client) -> Option<Vec<(String, NodeStatus)>> {
    let nodes = api.nodes_list_all().await.ok()?;
    Some(nodes.into_iter().map(|n| (n.name, n.status)).collect())
}

/// The contract with default timings: an agent killed with SIGKILL shows NotReady within
/// 15 s, and Ready again (same identity) once restarted on the same data directory.
#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_agent_goes_not_ready_and_comes_back_as_the_same_node() {
    let dir = TempDir::new("nodes");
    let secrets = Secrets::create(dir.path());
    let cp = ControlPlane::start(&fresh_database().await, &secrets, "127.0.0.1:0", "10s");
    let api = cp.admin(&secrets);
    let mut agents: Vec<_> = (0..3)
        .map(|d| {
            start_agent(
                &cp.url,
                &secrets.agent_token_file,
                &format!("node-{d}"),
                d,
                &dir.path().join(format!("node-{d}")),
                "2s",
            )
        })
        .collect();

    let all_ready = |want: usize| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let s = statuses(&api).await?;
                (s.len() == 3
                    && s.iter().filter(|(_, st)| *st == NodeStatus::Ready).count() == want)
                    .then_some(s)
            }
        }
    };
    eventually("3 Ready nodes", Duration::from_secs(20), all_ready(3))
        .await
        .unwrap();
    let before = api.nodes_list_all().await.unwrap();
    let node1 = before.iter().find(|n| n.name == "node-1").unwrap().clone();
    assert_eq!(
        before.iter().map(|n| n.fault_domain).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    // hdictl, through a context file, shows the same fleet.
    let config = dir.path().join("hdictl.json");
    std::fs::write(
        &config,
        serde_json::json!({"current_context": "t", "contexts": {"t": {"api_url": cp.url, "token": secrets.admin_token}}}).to_string(),
    )
    .unwrap();
    let (ok, table, err) = hdictl(&config, &["node", "list"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("NAME")
            && rows[0].contains("STATUS")
            && rows[0].contains("FAULT-DOMAIN"),
        "{table}"
    );
    assert_eq!(rows.len(), 4, "{table}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.split_whitespace().nth(1) == Some("Ready")),
        "{table}"
    );
    let (ok, json, err) = hdictl(&config, &["node", "list", "-o", "json"]);
    assert!(ok, "{err}");
    let listed: Vec<hdi_api::Node> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        listed.iter().map(|n| n.id).collect::<Vec<_>>(),
        before.iter().map(|n| n.id).collect::<Vec<_>>()
    );
    let (ok, version, _) = hdictl(&config, &["version"]);
    assert!(ok && version.contains("control plane 0.1.0"), "{version}");

    // Each agent enrolled: its own credential, 0600, differing from the others'. Revoked by
    // an admin, node-2's credential stops working and its agent enrols again, staying Ready.
    let credential = |d: u32| {
        let path = dir.path().join(format!("node-{d}/node-credential"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        std::fs::read_to_string(path).unwrap()
    };
    let old = credential(2);
    assert!(old != credential(0) && old != credential(1));
    let (ok, _, err) = hdictl(&config, &["node", "revoke-credential", "node-2"]);
    assert!(ok && err.contains("revoked"), "{err}");
    agents[2]
        .wait_for_line("enrolling again", Duration::from_secs(15))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while agents[2]
        .lines()
        .iter()
        .filter(|l| l.contains("enrolled:"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node-2 did not enrol again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(credential(2), old);
    eventually(
        "node-2 Ready after re-enrolling",
        Duration::from_secs(15),
        all_ready(3),
    )
    .await
    .unwrap();

    // SIGKILL node-1: NotReady within 15 s; the others stay Ready.
    agents[1].kill9();
    let (after_kill, took) = eventually("node-1 NotReady", Duration::from_secs(15), || {
        let api = api.clone();
        async move {
            let s = statuses(&api).await?;
            s.iter()
                .any(|(n, st)| n == "node-1" && *st == NodeStatus::NotReady)
                .then_some(s)
        }
    })
    .await
    .unwrap();
    eprintln!("node-1 NotReady {took:?} after SIGKILL");
    assert_eq!(
        after_kill
            .iter()
            .filter(|(_, st)| *st == NodeStatus::Ready)
            .count(),
        2,
        "{after_kill:?}"
    );
    let (ok, table, _) = hdictl(&config, &["node", "list"]);
    assert!(
        ok && table
            .lines()
            .any(|l| l.starts_with("node-1") && l.contains("NotReady")),
        "{table}"
    );

    // Restart on the same data directory: the same node, Ready again, one more incarnation.
    agents[1] = start_agent(
        &cp.url,
        &secrets.agent_token_file,
        "node-1",
        1,
        &dir.path().join("node-1"),
        "2s",
    );
    eventually("node-1 Ready again", Duration::from_secs(15), all_ready(3))
        .await
        .unwrap();
    let after = api.nodes_list_all().await.unwrap();
    assert_eq!(after.len(), 3);
    let again = after.iter().find(|n| n.name == "node-1").unwrap();
    assert_eq!(again.id, node1.id);
    assert_eq!(again.incarnation, node1.incarnation + 1);
    assert_eq!(again.registered_at, node1.registered_at);

    // A second agent on the same data directory refuses to start.
    let mut twin = start_agent(
        &cp.url,
        &secrets.agent_token_file,
        "node-1",
        1,
        &dir.path().join("node-1"),
        "2s",
    );
    let status = twin.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    assert!(
        twin.lines()
            .iter()
            .any(|l| l.contains("another hdi-node-agent is running")),
        "{:?}",
        twin.lines()
    );

    // SIGTERM stops an agent cleanly.
    for agent in &mut agents {
        assert!(agent.terminate(Duration::from_secs(10)).unwrap().success());
    }
}

/// Agents keep retrying while the control plane is down (SIGKILL) and heartbeat again, as the same
/// nodes, once it is back on the same address.
#[tokio::test(flavor = "multi_thread")]
async fn agents_outlive_a_control_plane_crash() {
    let dir = TempDir::new("cp-crash");
    let secrets = Secrets::create(dir.path());
    let database = fresh_database().await;
    // An address of its own (not port 0): the control plane comes back on it after the kill.
    let mut cp = ControlPlane::start(&database, &secrets, &hdi_e2e::ports::loopback(), "2s");
    let addr = cp.listen_addr();
    let _agents: Vec<_> = (0..2)
        .map(|d| {
            start_agent(
                &cp.url,
                &secrets.agent_token_file,
                &format!("n{d}"),
                d,
                &dir.path().join(format!("n{d}")),
                "300ms",
            )
        })
        .collect();
    let api = cp.admin(&secrets);
    let ready = || {
        let api = api.clone();
        async move {
            let s = statuses(&api).await?;
            (s.len() == 2 && s.iter().all(|(_, st)| *st == NodeStatus::Ready)).then_some(())
        }
    };
    eventually("2 Ready nodes", Duration::from_secs(20), ready)
        .await
        .unwrap();
    let ids: Vec<_> = api
        .nodes_list_all()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();

    cp.proc.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cp = ControlPlane::start(&database, &secrets, &addr, "2s");
    let api = cp.admin(&secrets);
    let ready = || {
        let api = api.clone();
        async move {
            let nodes = api.nodes_list_all().await.ok()?;
            (nodes.len() == 2
                && nodes
                    .iter()
                    .all(|n| n.status == NodeStatus::Ready && n.heartbeat_age_seconds < 1.0))
            .then_some(nodes)
        }
    };
    let (nodes, _) = eventually(
        "heartbeats after the restart",
        Duration::from_secs(20),
        ready,
    )
    .await
    .unwrap();
    assert_eq!(nodes.into_iter().map(|n| n.id).collect::<Vec<_>>(), ids);
}
