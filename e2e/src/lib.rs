//! `hdi-e2e`: a harness that starts the real hdi binaries (control plane, node agents, hdictl) as
//! processes talking over loopback, against a real PostgreSQL database per test.
//!
//! `cargo xtask test` builds the binaries and exports `DATABASE_URL` (a scratch server); each test
//! gets its own database on it. Processes are SIGKILLed when their handle drops, and their output
//! is printed when a test fails, so a failing test shows every log line of every process.
//!
//! Modules: `proc` (a started process), `postgres` (databases), `fleet` (control plane, agents,
//! hdictl, `Fleet`), `broker` (a single-node broker), `cluster` (a three-broker cluster whose
//! brokers can be killed, and a TCP proxy that can be cut), `clients` (Kafka client suites, kcat);
//! everything is re-exported here. `kube` (a real Kubernetes control plane: etcd, kube-apiserver,
//! optionally controller manager, scheduler and kwok nodes; binaries from `HDI_TEST_K8S_BIN`) is
//! public as a module, with its constants. Ports for processes that must know them before they
//! start come from [`ports`] (race-free across parallel tests). `java` runs the Java client suite
//! of `e2e/clients/java/hdi/compat/` (compiled once per content of its sources, with javac).
//!
//! Java tools from Maven Central: `kafka_ecosystem` (Kafka Connect, MirrorMaker 2 and the
//! `hdi.ecosystem` programs, on the jars of `e2e/clients/java-ecosystem/pom.xml`). `cargo xtask
//! test` copies every jar (`HDI_TEST_JAVA_LIB`, `HDI_TEST_JAVA_ECOSYSTEM_LIB`); no test
//! downloads anything.
#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed set-up step should fail the test loudly"
)]

mod broker;
mod clients;
mod cluster;
mod fleet;
pub mod hdi_on_kube;
mod java;
mod kafka_ecosystem;
pub mod kube;
pub mod kubelet;
mod postgres;
mod proc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

pub use crate::kube::{KubeControlPlane, KubeControlPlaneBuilder};
pub use broker::Broker;
pub use clients::{
    client_command, client_script, kcat, kcat_consume_all, kcat_env, kcat_oauth_plugin,
    kcat_produce, last_json_line, run_phase, served_certificate, test_node_path, test_python,
    tls_handshake, trusting,
};
pub use cluster::{BrokerCluster, Proxy, partition_bytes_from};
pub use fleet::{
    ControlPlane, Fleet, PLAINTEXT_KAFKA_3, Secrets, bootstrap_servers, hdictl, start_agent,
    wait_ready_nodes, wait_step, wait_succeeded,
};
pub use hdi_test_support::ports;
pub use hdi_test_support::procfs::{can_read_as, is_root, status_ids, workloads_isolated};
pub use java::{
    java_classes, java_ecosystem_lib, java_lib, java_program, java_result, java_run, javac_classes,
};
pub use kafka_ecosystem::{
    ConnectWorker, ecosystem_java, ecosystem_program, ecosystem_run, http_request, mirror_maker,
};
pub use postgres::{PrivatePostgres, count_rows, fresh_database, with_database};
pub use proc::{Proc, processes_under};

/// Path of a workspace binary in the target directory these tests were built into.
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in <target>/debug/deps/; binaries in <target>/debug/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// A fresh empty directory under the system temp dir (`hdi-e2e-<tag>-<random>`), removed on drop.
/// Mode 0711: others may pass through it but not list it, as the node agents' workloads must
/// when they run as their clusters' users.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates it.
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix(&format!("hdi-e2e-{tag}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok((value, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
