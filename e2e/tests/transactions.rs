//! Transactions (KIP-98) against a real three-broker `hdi-broker` cluster, driven by
//! `e2e/clients/txn_suite.py` (confluent-kafka's transactional producer and read_committed
//! consumers): committed and aborted transactions, the transaction coordinator's broker SIGKILLed
//! in the middle of a transaction and again right after a commit was accepted, a fenced zombie,
//! and consume-transform-produce with `send_offsets_to_transaction`. Every committed record must
//! be read exactly once by a read_committed consumer, no aborted or fenced one ever, and the
//! group's committed offsets must be exactly those sent with committed transactions.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdi_e2e::{BrokerCluster, TempDir, client_command, client_script, test_python};

#[test]
fn transactions_survive_the_coordinator_being_killed() {
    let dir = TempDir::new("transactions");
    let mut cluster = BrokerCluster::start("txn", dir.path());
    let stderr_path = dir.path().join("txn_suite.stderr");
    let mut suite = client_command(test_python())
        .arg(client_script("txn_suite.py"))
        .args(["--bootstrap", &cluster.bootstrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = suite.stdin.take().unwrap();
    let stdout = BufReader::new(suite.stdout.take().unwrap());
    let started = Instant::now();
    let mut kills = 0;
    let mut summary = serde_json::Value::Null;
    for line in stdout.lines() {
        let line = line.unwrap();
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value["event"] == "kill-coordinator" {
            // The controller coordinates every transactional id.
            let coordinator = wait_for(|| cluster.controller());
            eprintln!(
                "killing broker {} (the coordinator) at {:.1?}",
                coordinator + 1,
                started.elapsed()
            );
            cluster.kill(coordinator);
            kills += 1;
            // Coordination moves to a survivor (a new Raft term) before the client goes on, and
            // the killed broker comes back as a follower.
            let successor = wait_for(|| cluster.controller().filter(|c| *c != coordinator));
            eprintln!(
                "broker {} coordinates at {:.1?}",
                successor + 1,
                started.elapsed()
            );
            writeln!(stdin, "go").unwrap();
            stdin.flush().unwrap();
            cluster.restart(coordinator);
        } else {
            summary = value;
        }
    }
    let status = suite.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    eprintln!("txn_suite: {summary} ({:.1?})", started.elapsed());
    assert!(
        status.success() && summary["ok"] == true,
        "txn_suite failed ({status}): {summary}\n{stderr}"
    );
    assert_eq!(kills, 2);
    assert_eq!(summary["missing"], 0);
    assert_eq!(summary["duplicated"], 0);
    assert_eq!(summary["visible_aborted"], 0);
    assert_eq!(summary["zombie_fenced"], true);
    assert_eq!(summary["ctp_committed_offsets"], 60);
}

/// Retries `f` until it answers (for up to 30 s).
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "no answer in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}
