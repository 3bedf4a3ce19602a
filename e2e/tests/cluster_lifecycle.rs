//! Cluster lifecycle on the local fleet, end to end: a control plane, three node agents and the
//! brokers and executors they run, driven through `hdictl` and REST, checked with kcat and a
//! Kafka admin client at the bootstrap address.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;

use hdi_e2e::{
    Fleet, PLAINTEXT_KAFKA_3, bootstrap_servers, client_command, kcat_consume_all, kcat_produce,
    test_python,
};
use serde_json::Value;

fn show(fleet: &Fleet, name: &str) -> Value {
    fleet.hdictl_json(&["cluster", "show", name, "-o", "json"])
}

/// Runs `script` with the test venv's Python; returns its stdout, failing the test with its stderr
/// (after `what`) when it fails.
fn python(script: &str, what: &str) -> Vec<u8> {
    let out = client_command(test_python())
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Topic metadata through confluent-kafka's admin client: `{partition: replicas}`.
fn replicas(bootstrap: &str, topic: &str) -> Vec<Vec<i64>> {
    let script = format!(
        "import json\nfrom confluent_kafka.admin import AdminClient\n\
         a = AdminClient({{'bootstrap.servers': '{bootstrap}'}})\n\
         t = a.list_topics('{topic}', timeout=10).topics['{topic}']\n\
         print(json.dumps([t.partitions[p].replicas for p in sorted(t.partitions)]))\n"
    );
    serde_json::from_slice(&python(&script, "topic metadata")).unwrap()
}

fn create_topic(bootstrap: &str, topic: &str, partitions: u32, rf: u32) {
    let script = format!(
        "from confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({{'bootstrap.servers': '{bootstrap}'}})\n\
         for f in a.create_topics([NewTopic('{topic}', {partitions}, {rf})], request_timeout=15).values(): f.result()\n"
    );
    python(&script, "create topic");
}

fn workloads(cluster: &Value) -> Vec<Value> {
    cluster["status"]["workloads"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_spark_clusters_through_hdictl() {
    let fleet = Fleet::start_with_workspace("lifecycle", 3).await;
    let api = fleet.api();

    // Create: three brokers on three fault domains, Running only once they are one cluster.
    let (cluster, progress) = fleet.create_cluster("pay", PLAINTEXT_KAFKA_3);
    assert!(
        progress.contains("place brokers 1, 2, 3"),
        "progress shows the steps: {progress}"
    );
    let domains: BTreeSet<u64> = workloads(&cluster)
        .iter()
        .map(|w| w["fault_domain"].as_u64().unwrap())
        .collect();
    assert_eq!(domains.len(), 3, "one broker per fault domain: {cluster:#}");
    let bootstrap = bootstrap_servers(&cluster);

    // A topic with RF=3, written and read with kcat at the bootstrap address.
    create_topic(&bootstrap, "payments", 12, 3);
    let records: Vec<String> = (0..300).map(|i| format!("payment-{i:04}")).collect();
    kcat_produce(&bootstrap, "payments", &records);
    let mut expected = records.clone();
    expected.sort();
    assert_eq!(kcat_consume_all(&bootstrap, "payments"), expected);

    // Resize 3 -> 4: the new broker joins and partitions move onto it.
    fleet.hdictl_ok(&["cluster", "resize", "pay", "--brokers", "4"]);
    let cluster = show(&fleet, "pay");
    assert_eq!(cluster["status"]["state"], "Running", "{cluster:#}");
    assert_eq!(workloads(&cluster).len(), 4);
    let bootstrap4 = bootstrap_servers(&cluster);
    let placement = replicas(&bootstrap4, "payments");
    let on_four = placement.iter().filter(|r| r.contains(&4)).count();
    assert!(
        on_four >= 3,
        "broker 4 holds a share of the replicas after the rebalance: {placement:?}"
    );

    // Resize 4 -> 3 without drain is refused: broker 4 holds partitions.
    let (success, out, err) = fleet.hdictl(&["cluster", "resize", "pay", "--brokers", "3"]);
    assert!(
        !success,
        "scale-in over held partitions must be refused: {out}"
    );
    assert!(err.contains("brokers_hold_partitions"), "{err}");

    // With drain: partitions move off broker 4, then it stops and its data goes.
    fleet.hdictl_ok(&["cluster", "resize", "pay", "--brokers", "3", "--drain"]);
    let cluster = show(&fleet, "pay");
    assert_eq!(cluster["status"]["state"], "Running", "{cluster:#}");
    assert_eq!(workloads(&cluster).len(), 3, "{cluster:#}");
    let placement = replicas(&bootstrap, "payments");
    assert!(
        placement.iter().all(|r| !r.contains(&4) && r.len() == 3),
        "{placement:?}"
    );
    assert_eq!(
        kcat_consume_all(&bootstrap, "payments"),
        expected,
        "nothing lost across the resizes"
    );

    // Spark: a driver and two executors; resize 2 -> 3 -> 1.
    let (spark, _) = fleet.create_cluster("etl", &["--kind", "spark", "--executors", "2"]);
    assert_eq!(workloads(&spark).len(), 3);
    let job_api = spark["status"]["endpoints"]["job_api"]
        .as_str()
        .unwrap()
        .to_owned();
    // The driver answers only callers with the cluster's credential, which the agents wrote to
    // 0600 files beside the workloads (and never on a command line).
    let anonymous = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{job_api}/v1/cluster"))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");
    let credential = cluster_credential(&fleet);
    let members: Value = reqwest_get(&format!("{job_api}/v1/cluster"), &credential).await;
    assert_eq!(
        members["workers"].as_array().unwrap().len(),
        2,
        "{members:#}"
    );
    if fleet.isolated() {
        assert_tenants_apart(&fleet);
    }
    fleet.hdictl_ok(&["cluster", "resize", "etl", "--executors", "3"]);
    fleet.hdictl_ok(&["cluster", "resize", "etl", "--executors", "1"]);
    let spark = show(&fleet, "etl");
    assert_eq!(workloads(&spark).len(), 2, "{spark:#}");

    let listing = fleet.hdictl_ok(&["cluster", "list"]);
    assert!(
        listing.contains("pay") && listing.contains("etl"),
        "{listing}"
    );

    // Delete both: every process stops and every data directory goes.
    fleet.hdictl_ok(&["cluster", "delete", "pay"]);
    fleet.hdictl_ok(&["cluster", "delete", "etl"]);
    let (success, _, err) = fleet.hdictl(&["cluster", "show", "pay"]);
    assert!(!success && err.contains("not_found"), "{err}");
    let leftovers = fleet.workload_processes();
    assert!(leftovers.is_empty(), "processes left behind: {leftovers:?}");
    for node in 0..3 {
        let left = fleet.workload_data(node);
        assert!(left.is_empty(), "data left on node-{node}: {left:?}");
    }
    let audit = api.audit_list(None).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"cluster.create") && actions.contains(&"cluster.delete"),
        "{actions:?}"
    );
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.outcome == "brokers_hold_partitions"),
        "refusals are audited too"
    );
}

/// The credential file of the Spark cluster's workloads (one per workload, all the same), after
/// checking each is its owner's alone and appears in no process's arguments.
fn cluster_credential(fleet: &Fleet) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let mut found = Vec::new();
    for node in 0..3 {
        let Ok(entries) = std::fs::read_dir(fleet.agent_dir(node).join("workloads")) else {
            continue;
        };
        for entry in entries {
            let file = entry.unwrap().path().join("credential");
            if let Ok(meta) = std::fs::metadata(&file) {
                assert_eq!(
                    meta.permissions().mode() & 0o777,
                    0o600,
                    "{}",
                    file.display()
                );
                found.push(std::fs::read_to_string(&file).unwrap());
            }
        }
    }
    assert_eq!(found.len(), 3, "a driver and two workers");
    // The workspace's storage root, in the fleet's shared storage directory.
    let storage = fleet
        .agent_dir(0)
        .parent()
        .unwrap()
        .join("storage/workspaces");
    assert_eq!(
        std::fs::read_dir(&storage).unwrap().count(),
        1,
        "{}",
        storage.display()
    );
    assert!(found.iter().all(|c| c == &found[0] && c.len() >= 32));
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.contains(&found[0]));
    // The Kafka cluster's brokers run their quorum over mutual TLS.
    let fleet_dir = fleet.agent_dir(0).parent().unwrap().display().to_string();
    let brokers: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains("hdi-broker ") && l.contains(&fleet_dir))
        .collect();
    assert!(!brokers.is_empty(), "{ps}");
    assert!(
        brokers.iter().all(|l| l.contains("--quorum-tls-dir")),
        "{brokers:#?}"
    );
    found.swap_remove(0)
}

/// As root (with binaries other users can reach), the agents run each cluster's processes as the cluster's own user: the brokers of
/// `pay` as one user, the executors of `etl` as another, both with the workspace's group; the
/// workspace's storage root belongs to that group (`2770`); `pay`'s user cannot read the
/// executors' credential, and without the workspace's group no user can list the storage root.
fn assert_tenants_apart(fleet: &Fleet) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::os::unix::process::CommandExt as _;
    let users = |binary: &str| -> std::collections::BTreeSet<(u32, Vec<u32>)> {
        fleet
            .workload_processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(binary))
            .map(|(pid, _)| {
                let pid = pid.to_string();
                let uid = hdi_e2e::status_ids(&pid, "Uid");
                assert!(uid.iter().all(|u| *u == uid[0]), "{uid:?}");
                (uid[0], hdi_e2e::status_ids(&pid, "Groups"))
            })
            .collect()
    };
    let (brokers, executors) = (users("hdi-broker"), users("hdi-executor"));
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    assert_eq!(executors.len(), 1, "{executors:?}");
    let (broker_uid, broker_groups) = brokers.first().unwrap().clone();
    let (executor_uid, executor_groups) = executors.first().unwrap().clone();
    assert!(broker_uid >= 1_000_000 && executor_uid >= 1_000_000);
    assert_ne!(broker_uid, executor_uid, "two clusters, two users");
    assert_eq!(broker_groups, executor_groups, "one workspace, one group");
    let workspace_gid = broker_groups[0];
    let storage = fleet
        .agent_dir(0)
        .parent()
        .unwrap()
        .join("storage/workspaces");
    let root = std::fs::read_dir(&storage)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = std::fs::metadata(&root).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, workspace_gid));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2770);
    let credential = (0..3)
        .flat_map(|node| std::fs::read_dir(fleet.agent_dir(node).join("workloads")).unwrap())
        .map(|entry| entry.unwrap().path().join("credential"))
        .find(|file| file.exists())
        .unwrap();
    assert!(hdi_e2e::can_read_as(executor_uid, &credential));
    assert!(
        !hdi_e2e::can_read_as(broker_uid, &credential),
        "another cluster's user read the credential"
    );
    let listed = std::process::Command::new("ls")
        .arg(&root)
        .uid(broker_uid)
        .gid(broker_uid)
        .output()
        .unwrap();
    assert!(
        !listed.status.success(),
        "without the workspace's group, the root is closed"
    );
}

async fn reqwest_get(url: &str, credential: &str) -> Value {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", url, "-H"])
        .arg(format!("authorization: Bearer {credential}"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "GET {url}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_shortage_is_refused_with_the_reason() {
    let fleet = Fleet::start_with_workspace("shortage", 3).await;
    // 16 large brokers (2 cores each) do not fit on three 4-core nodes.
    let (success, out, err) = fleet.hdictl(&[
        "cluster",
        "create",
        "huge",
        "--kind",
        "kafka",
        "--security",
        "plaintext",
        "--brokers",
        "16",
        "--size",
        "large",
    ]);
    assert!(!success, "{out}");
    assert!(
        err.contains("insufficient_capacity") && err.contains("no ready node has room"),
        "{err}"
    );
    let cluster = show(&fleet, "huge");
    assert_eq!(cluster["status"]["state"], "Failed", "{cluster:#}");
    assert!(
        workloads(&cluster).is_empty(),
        "all or nothing: {cluster:#}"
    );
    fleet.hdictl_ok(&["cluster", "delete", "huge"]);
}
