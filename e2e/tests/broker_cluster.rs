//! A three-broker `hdi-broker` cluster under real faults, driven by `e2e/clients/fault_suite.py`
//! (confluent-kafka): SIGKILL of partition leaders and of the controller, SIGTERM (controlled
//! shutdown, which must move leadership away first), SIGSTOP past the
//! session timeout, network partitions through per-link proxies, and a partitioned leader killed
//! while it holds writes it could not replicate. The checker requires no acknowledged record
//! lost, no duplicate within one producer epoch (librdkafka re-sends possibly written batches at
//! new sequence numbers after it bumps its epoch, librdkafka issue #4953: those copies are
//! counted apart, as no broker can recognise them), no record seen by a consumer that later
//! disappears, and byte-identical replicas; the same checker must catch a deliberately broken
//! broker (acks=all answered before replication). With two of three brokers down, acks=all
//! writes are not acknowledged and committed data is still read from the survivor. A fourth
//! broker joins a running cluster and a broker is drained onto it by partition reassignment under
//! traffic, with and without a replication throttle.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Instant;

use hdi_e2e::{TempDir, bin, client_command, client_script, ports, test_python};

/// Runs the fault suite with `args`; returns its JSON summary and whether it passed.
fn fault_suite(tag: &str, args: &[&str]) -> (serde_json::Value, bool) {
    let dir = TempDir::new(tag);
    let started = Instant::now();
    // Every port the suite binds (brokers, quorum listeners, link proxies: 20 for four brokers),
    // taken from the race-free allocator: port-0 ports could be taken before a broker binds them.
    let ports: Vec<String> = ports::take(32)
        .unwrap()
        .iter()
        .map(u16::to_string)
        .collect();
    let out = client_command(test_python())
        .env("HDI_TEST_PORTS", ports.join(","))
        .arg(client_script("fault_suite.py"))
        .arg("--broker-bin")
        .arg(bin("hdi-broker"))
        .arg("--work-dir")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(summary) = last.and_then(|l| serde_json::from_str(l).ok()) else {
        panic!("fault suite printed no summary\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    eprintln!("{tag}: {summary} ({:.0?})", started.elapsed());
    if !out.status.success() {
        let logs: String = (1..=3)
            .map(|i| {
                let log = std::fs::read_to_string(dir.path().join(format!("broker-{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                format!(
                    "--- broker-{i}.log (last 40 lines)\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        eprintln!("stderr:\n{stderr}\n{logs}");
    }
    (summary, out.status.success())
}

#[test]
fn twenty_faults_lose_no_acknowledged_write() {
    let (summary, ok) = fault_suite("faults", &["--faults", "20"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["faults"], 20);
    assert_eq!(summary["lost"], 0);
    // Every duplicate is a pair of copies under different producer epochs (the client's).
    assert_eq!(summary["duplicates_same_epoch"], 0, "{summary}");
    assert_eq!(
        summary["duplicates"], summary["duplicates_across_epochs"],
        "{summary}"
    );
    assert_eq!(summary["vanished"], 0);
    assert!(summary["acked"].as_u64().unwrap() > 10_000, "{summary}");
}

#[test]
fn the_checker_catches_a_broker_that_acks_before_replicating() {
    let (summary, ok) = fault_suite("broken", &["--faults", "3", "--expect-loss"]);
    assert!(ok, "the checker did not notice lost writes: {summary}");
}

#[test]
fn with_two_of_three_brokers_down_acks_all_writes_are_not_acknowledged() {
    let (summary, ok) = fault_suite("minority", &["--scenario", "minority"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["acked_during"], 0);
    assert_eq!(summary["read_from_survivor"], 3000);
}

#[test]
fn a_new_broker_joins_and_a_drained_broker_hands_its_replicas_over_under_traffic() {
    let (summary, ok) = fault_suite("reassign", &["--scenario", "reassign"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["drained_dirs_left"], 0);
    assert_eq!(
        summary["log_dir_partitions_broker_4"], 3,
        "DescribeLogDirs of the new broker"
    );
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["seen_ongoing"], true, "{summary}");
}

#[test]
fn a_throttled_reassignment_moves_no_faster_than_its_rate() {
    let (summary, ok) = fault_suite(
        "throttle",
        &[
            "--scenario",
            "reassign",
            "--throttle",
            "30000",
            "--preload-seconds",
            "5",
        ],
    );
    assert!(ok, "{summary}");
    assert!(
        summary["reassign_seconds"].as_f64().unwrap()
            >= summary["throttle_floor_seconds"].as_f64().unwrap()
    );
}
