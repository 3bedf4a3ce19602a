//! `cargo xtask chaos broker`: the long version of the broker fault suite
//! (`e2e/clients/fault_suite.py`) against release binaries: by default 200 faults (leader
//! SIGKILL, controller SIGKILL, SIGSTOP, network partitions, partitioned-leader kills), with the
//! same checker as CI. Prints the suite's JSON summary; fails when a check fails.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, run, target_dir};

/// Arguments of `cargo xtask chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// What to torture (`broker`).
    what: String,
    /// Number of faults.
    #[arg(long, default_value_t = 200)]
    faults: u32,
    /// Records per second the producer offers.
    #[arg(long, default_value_t = 3000)]
    rate: u32,
    /// Seed of the fault timings.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Runs the chaos suite.
///
/// # Errors
/// When the build, the tools or a check fail.
pub fn run_chaos(args: ChaosArgs) -> anyhow::Result<()> {
    if args.what != "broker" {
        bail!(
            "unknown chaos target {:?}: the only one is `broker`",
            args.what
        );
    }
    let target = target_dir()?;
    let tools = crate::tools::ensure(&target.join("test-tools"))?;
    run(
        "cargo build --release",
        cargo().args(["build", "--release", "-p", "hdi-broker"]),
    )?;
    let work = target.join("chaos-broker");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).context("cannot create the work directory")?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/clients/fault_suite.py");
    eprintln!(
        "xtask chaos: {} faults against 3 release brokers; logs in {}",
        args.faults,
        work.display()
    );
    // The suite's ports, race-free (see hdi-test-support's `ports`).
    let ports: Vec<String> = hdi_test_support::ports::take(32)
        .context("cannot allocate ports for the fault suite")?
        .iter()
        .map(u16::to_string)
        .collect();
    let status = Command::new(&tools.python)
        .arg(script)
        .arg("--broker-bin")
        .arg(target.join("release/hdi-broker"))
        .arg("--work-dir")
        .arg(&work)
        .args(["--faults", &args.faults.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .env_remove("LD_LIBRARY_PATH")
        .env("HDI_TEST_PORTS", ports.join(","))
        .status()
        .context("cannot run the fault suite")?;
    if !status.success() {
        bail!(
            "the fault suite failed ({status}); broker logs are in {}",
            work.display()
        );
    }
    Ok(())
}
