//! The Java Kafka client's transactions (kafka-clients 4.x, the classic protocol) against a real
//! three-broker `hdi-broker` cluster: `hdi.compat.Transactions` commits and aborts transactions,
//! keeps one open while this test SIGKILLs the transaction coordinator's broker (the controller)
//! and commits it through the next coordinator, is fenced as a zombie by a second instance, and
//! runs consume-transform-produce with `sendOffsetsToTransaction`; its read_committed consumer
//! must read every committed record exactly once and no aborted one.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use hdi_e2e::{BrokerCluster, TempDir, java_program, java_result};

#[test]
fn java_transactions_survive_the_coordinator_being_killed() {
    let dir = TempDir::new("java-transactions");
    let mut cluster = BrokerCluster::start("java-txn", dir.path());
    let signal = dir.path().join("coordinator-killed");
    let bootstrap = cluster.bootstrap();
    let mut java = java_program("Transactions", &[&bootstrap, signal.to_str().unwrap()]);
    java.wait_for_line("transaction open", Duration::from_secs(120))
        .unwrap();
    let coordinator = cluster.controller().unwrap();
    cluster.kill(coordinator);
    eprintln!("SIGKILLed broker {} (the coordinator)", coordinator + 1);
    // The client goes on once a survivor coordinates.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.controller().is_none_or(|c| c == coordinator) {
        assert!(Instant::now() < deadline, "no new coordinator in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&signal, "").unwrap();
    cluster.restart(coordinator);
    let result = java_result(&mut java, Duration::from_secs(240));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["missing"], 0, "{result}");
    assert_eq!(result["duplicated"], 0, "{result}");
    assert_eq!(result["visible_aborted"], 0, "{result}");
    assert_eq!(result["ctp_committed_offsets"], 60, "{result}");
    assert_eq!(result["zombie_fenced"], true, "{result}");
}
