//! `cargo xtask bench kubernetes`: hdi on a real Kubernetes control plane (the binaries of
//! `cargo xtask kube-bin`), release binaries of hdi as pods on the test nodes that run them as
//! local processes: `kubectl apply` of an `HdiCluster` to `Ready`, 500 `HdiTopic`s reconciled,
//! and the operator's API requests at idle per resource and resync period. The measurement is
//! the ignored test `e2e/tests/kube_bench.rs`, run here with release binaries (the control
//! plane, the node agent and the broker: the measurement runs Kafka clusters only) against a
//! scratch PostgreSQL; it prints the figures and their targets.

use anyhow::Context as _;

use crate::postgres::{Durability, ScratchPostgres};
use crate::util::{cargo, run, target_dir};

/// Runs the measurement and prints it.
pub fn run_bench() -> anyhow::Result<()> {
    let k8s_bin = crate::kube_bin::ensure()?;
    let tools_dir = target_dir()?.join("test-tools");
    let tools = crate::tools::ensure(&tools_dir)?;
    let nextest = crate::tools::nextest(&tools_dir)
        .context("cargo-nextest is needed for `bench kubernetes` (cargo xtask test installs it)")?;
    run(
        "cargo build --release (hdi binaries)",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "hdi-control-plane",
            "-p",
            "hdi-node-agent",
            "-p",
            "hdi-broker",
            "--bins",
        ]),
    )?;
    let postgres = crate::postgres::find_or_install()?;
    let scratch = ScratchPostgres::start(&postgres, Durability::Scratch)?;
    let mut command = nextest.command();
    command
        .args([
            "run",
            "--release",
            "--locked",
            "-p",
            "hdi-e2e",
            "--test",
            "kube_bench",
            "--run-ignored",
            "only",
            "--no-capture",
        ])
        .env("DATABASE_URL", scratch.server.url("postgres"))
        .env("HDI_TEST_K8S_BIN", &k8s_bin)
        .env("HDI_TEST_PYTHON", &tools.python);
    run("the kubernetes measurement", &mut command)?;
    drop(scratch);
    Ok(())
}
