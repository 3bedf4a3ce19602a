//! Replication links end to end: two secured Kafka clusters of one broker each, on two node
//! agents in different fault domains, joined by `hdictl link create`. The control plane makes
//! the link's read-only Kafka user on the source (its password goes to the target's brokers
//! only), the target mirrors the source's topic at the same offsets, `hdictl link lag` reaches
//! 0, a produce to the mirror and the deletion of a link that feeds mirrors are refused; pause
//! holds the mirror back while its lag stays true, resume catches up; promote fences the
//! source (its writes are denied), stops the mirror at zero lag with the group's offsets
//! copied, and the target takes writes, with the group resuming where it committed on the
//! source. Reverse makes the old source the mirror (nothing to quarantine); promote and reverse
//! again complete the round trip A -> B -> A; a forced failover reports a loss bound of 0;
//! the stopped link is deleted.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_e2e::Fleet;
use serde_json::Value;

/// Writes `lines` to `topic` of `cluster` with `hdictl topic produce` (as the admin, over
/// OAUTHBEARER); whether it succeeded, and stderr.
fn produce(fleet: &Fleet, cluster: &str, topic: &str, lines: &[String]) -> (bool, String) {
    let file = fleet
        .dir
        .path()
        .join(format!("records-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, _, err) = fleet.hdictl(&[
        "topic",
        "produce",
        cluster,
        topic,
        "--file",
        file.to_str().unwrap(),
    ]);
    (ok, err)
}

/// `max` record values of `topic` of `cluster`, from the beginning or the group's offsets.
fn consume(
    fleet: &Fleet,
    cluster: &str,
    topic: &str,
    max: usize,
    group: Option<&str>,
) -> Vec<String> {
    let max = max.to_string();
    let mut args = vec![
        "topic",
        "consume",
        cluster,
        topic,
        "--from-beginning",
        "--max",
        &max,
    ];
    args.extend(["--timeout", "30s"]);
    if let Some(group) = group {
        args.extend(["--group", group]);
    }
    fleet.hdictl_ok(&args).lines().map(str::to_owned).collect()
}

fn records(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("order-{i:04}")).collect()
}

/// Polls `hdictl link lag dr -o json` until `done` holds (60 s); the last status.
fn wait_lag(fleet: &Fleet, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lag = fleet.hdictl_json(&["link", "lag", "dr", "-o", "json"]);
        if done(&lag) {
            return lag;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {lag:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The one mirror partition of the status.
fn partition(lag: &Value) -> &Value {
    &lag["topics"][0]["partitions"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_mirrors_pauses_resumes_and_promotes_through_hdictl() {
    let mut fleet = Fleet::start_with_workspace("links", 2).await;
    let (a, _) = fleet.create_cluster("a", &["--kind", "kafka", "--brokers", "1"]);
    let (b, _) = fleet.create_cluster("b", &["--kind", "kafka", "--brokers", "1"]);
    let domain = |c: &Value| {
        c["status"]["workloads"][0]["fault_domain"]
            .as_u64()
            .unwrap()
    };
    assert_ne!(domain(&a), domain(&b), "the pair is in two fault domains");
    assert_eq!(a["status"]["endpoints"]["security_protocol"], "SASL_SSL");

    fleet.hdictl_ok(&["topic", "create", "a", "orders", "-p", "1", "-r", "1"]);
    let (ok, err) = produce(&fleet, "a", "orders", &records(0..100));
    assert!(ok, "{err}");
    // A consumer group reads 60 of them on the source and commits.
    assert_eq!(
        consume(&fleet, "a", "orders", 60, Some("app")),
        records(0..60)
    );

    // The link: a read-only user on A, the target holds it once create returns.
    let link = fleet.hdictl_json(&[
        "link", "create", "dr", "--source", "a", "--target", "b", "--topics", "orders", "--groups",
        "app", "-o", "json",
    ]);
    assert_eq!(link["source_user"], "hdi-link-dr", "{link:#}");
    assert_eq!(link["status"]["defined"], true, "{link:#}");
    let users = fleet.hdictl_ok(&["link", "list"]);
    assert!(
        users.contains("dr") && users.contains("mirroring"),
        "{users}"
    );

    // Lag reaches 0 and the mirror holds the same records at the same offsets.
    let lag = wait_lag(&fleet, "mirror caught up", |l| {
        partition(l)["log_end"] == 100 && l["lag_records"] == 0
    });
    assert_eq!(lag["topics"][0]["topic"], "orders", "{lag:#}");
    assert_eq!(partition(&lag)["source_end"], 100, "{lag:#}");
    assert_eq!(lag["data_plane_status"], "ok", "{lag:#}");
    assert_eq!(consume(&fleet, "b", "orders", 100, None), records(0..100));
    let table = fleet.hdictl_ok(&["link", "lag", "dr"]);
    assert!(table.contains("orders") && table.contains("RPO"), "{table}");

    // The mirror is read-only; a link that feeds it cannot be deleted.
    let (ok, err) = produce(&fleet, "b", "orders", &records(900..901));
    assert!(!ok, "a produce to a mirror must fail");
    assert!(err.contains("InvalidTopic"), "{err}");
    let err = fleet.hdictl_fails(&["link", "delete", "dr"]);
    assert!(err.contains("link_has_mirrors"), "{err}");

    // Pause: new records stay on A, and the lag says how many.
    let paused = fleet.hdictl_ok(&["link", "pause", "dr"]);
    assert!(paused.contains("Succeeded"), "{paused}");
    let (ok, err) = produce(&fleet, "a", "orders", &records(100..110));
    assert!(ok, "{err}");
    let lag = wait_lag(&fleet, "paused lag", |l| partition(l)["lag_records"] == 10);
    assert_eq!(partition(&lag)["state"], "paused", "{lag:#}");
    assert_eq!(partition(&lag)["log_end"], 100, "{lag:#}");
    let err = fleet.hdictl_fails(&["link", "promote", "dr"]);
    assert!(err.contains("link_paused"), "{err}");

    // Resume: caught up again.
    fleet.hdictl_ok(&["link", "resume", "dr"]);
    wait_lag(&fleet, "resumed", |l| {
        partition(l)["log_end"] == 110 && l["lag_records"] == 0
    });

    // Promote: visible steps, stopped at 110 with nothing lost.
    let op = fleet.hdictl_json(&["link", "promote", "dr", "-o", "json"]);
    assert_eq!(op["state"], "Succeeded", "{op:#}");
    assert_eq!(op["kind"], "link_promote");
    let steps: Vec<&str> = op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 5, "{op:#}");
    assert!(steps[0].starts_with("stop writes on a"), "{steps:?}");
    assert_eq!(steps[4], "topics writable");
    assert_eq!(op["result"]["partitions"][0]["stop_offset"], 110, "{op:#}");
    assert_eq!(op["result"]["loss_records"], 0, "{op:#}");
    let shown = fleet.hdictl_json(&["link", "show", "dr", "-o", "json"]);
    assert_eq!(shown["state"], "promoted", "{shown:#}");
    let err = fleet.hdictl_fails(&["link", "promote", "dr"]);
    assert!(err.contains("link_stopped"), "{err}");

    // A is fenced; B takes writes, and the group resumes there at its committed offset.
    let (ok, _) = produce(&fleet, "a", "orders", &records(500..501));
    assert!(!ok, "the old primary must refuse writes after a switchover");
    let (ok, err) = produce(&fleet, "b", "orders", &records(110..115));
    assert!(ok, "{err}");
    assert_eq!(
        consume(&fleet, "b", "orders", 55, Some("app")),
        records(60..115)
    );

    // Reverse: A becomes the mirror of B (nothing diverged: A took no write once fenced, so
    // nothing is quarantined) and the pair swaps.
    let op = fleet.hdictl_json(&["link", "reverse", "dr", "-o", "json"]);
    assert_eq!(op["state"], "Succeeded", "{op:#}");
    assert_eq!(op["result"]["quarantined_records"], 0, "{op:#}");
    let shown = fleet.hdictl_json(&["link", "show", "dr", "-o", "json"]);
    let pair = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        [
            pair(&shown, "source_cluster"),
            pair(&shown, "target_cluster"),
            pair(&shown, "state")
        ],
        ["b", "a", "mirroring"],
        "{shown:#}"
    );
    let (ok, err) = produce(&fleet, "b", "orders", &records(115..120));
    assert!(ok, "{err}");
    wait_lag(&fleet, "A mirrors B", |l| {
        partition(l)["log_end"] == 120 && l["lag_records"] == 0
    });
    assert_eq!(consume(&fleet, "a", "orders", 120, None), records(0..120));

    // And back: promoting A again is the round trip A -> B -> A.
    let op = fleet.hdictl_json(&["link", "promote", "dr", "-o", "json"]);
    assert_eq!(op["state"], "Succeeded", "{op:#}");
    assert_eq!(op["result"]["partitions"][0]["stop_offset"], 120, "{op:#}");
    let (ok, err) = produce(&fleet, "a", "orders", &records(120..121));
    assert!(ok, "{err}");
    let (ok, _) = produce(&fleet, "b", "orders", &records(600..601));
    assert!(!ok, "B is fenced once A took over again");
    let fence = op["steps"][0]["detail"].as_str().unwrap_or_default();
    assert!(fence.contains("hdi.read.only=true on 1 topic"), "{op:#}");

    // Reverse again (B mirrors A: the round trip is complete), then a forced failover to B:
    // nothing was left behind, so the loss bound is 0.
    let op = fleet.hdictl_json(&["link", "reverse", "dr", "-o", "json"]);
    assert_eq!(op["state"], "Succeeded", "{op:#}");
    wait_lag(&fleet, "B mirrors A again", |l| {
        partition(l)["log_end"] == 121 && l["lag_records"] == 0
    });
    // The forced failover by the break-glass path: the control plane is down, hdictl talks to
    // B's brokers as a Kafka user allowed to alter B's cluster configs (made beforehand, its
    // client configuration kept aside).
    let dir = fleet.dir.path().to_owned();
    let operator_pw = dir.join("dr-operator.pw");
    fleet.hdictl_ok(&[
        "kafka-user",
        "create",
        "b",
        "dr-operator",
        "--allow",
        "cluster:kafka-cluster:alter_configs,describe_configs,describe",
        "--password-file",
        operator_pw.to_str().unwrap(),
    ]);
    let conf = fleet.hdictl_ok(&[
        "cluster",
        "client-config",
        "b",
        "--user",
        "dr-operator",
        "--password-file",
        operator_pw.to_str().unwrap(),
        "--ca-file",
        dir.join("b-ca.pem").to_str().unwrap(),
    ]);
    let conf_path = dir.join("dr-operator.conf");
    std::fs::write(&conf_path, conf).unwrap();
    fleet.control_plane.proc.kill9();
    let out = fleet.hdictl_json(&[
        "link",
        "failover",
        "dr",
        "--break-glass",
        "--client-config",
        conf_path.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out["partitions"][0]["state"], "stopped", "{out:#}");
    assert_eq!(out["partitions"][0]["stop_offset"], 121, "{out:#}");
    assert_eq!(out["loss_records"], 0, "{out:#}");
    // Back, the control plane records what the brokers did.
    fleet.restart_control_plane();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = fleet.hdictl_json(&["link", "show", "dr", "-o", "json"]);
        if shown["state"] == "failed_over" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (ok, err) = produce(&fleet, "b", "orders", &records(121..122));
    assert!(ok, "{err}");

    // A stopped link can be deleted; its fence of the old primary goes with it.
    fleet.hdictl_ok(&["link", "delete", "dr"]);
    assert_eq!(
        fleet.hdictl_json(&["link", "list", "-o", "json"]),
        Value::Array(vec![])
    );
    let (ok, err) = produce(&fleet, "a", "orders", &records(122..123));
    assert!(ok, "{err}");
}
