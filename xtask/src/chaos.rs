//! `cargo xtask chaos broker`: the long version of the broker fault suite
//! (`e2e/clients/fault_suite.py`) against release binaries: by default 200 faults (leader
//! SIGKILL, controller SIGKILL, SIGSTOP, network partitions, partitioned-leader kills), with the
//! same checker as CI. Prints the suite's JSON summary; fails when a check fails.
//!
//! `cargo xtask chaos georep`: the long version of the geo-replication fault rotation
//! (`e2e/tests/georep_chaos.rs`: kills of either cluster's partition leaders and controllers,
//! pause/resume, cuts of the link's connections), by default 100 faults, through `cargo xtask
//! test`; then the same test with a seeded bug (a mirror that rewrites a batch), which must
//! fail its checker. Prints the test's summary line.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{cargo, run, target_dir};

/// Arguments of `cargo xtask chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// What to torture (`broker` or `georep`).
    what: String,
    /// Number of faults (200 for `broker`, 100 for `georep`).
    #[arg(long)]
    faults: Option<u32>,
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
    match args.what.as_str() {
        "broker" => {}
        "georep" => return run_georep(args.faults.unwrap_or(100)),
        other => bail!("unknown chaos target {other:?}: `broker` or `georep`"),
    }
    let faults = args.faults.unwrap_or(200);
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
        faults,
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
        .args(["--faults", &faults.to_string()])
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

/// The geo-replication fault rotation with `faults` faults, then its seeded-bug run.
fn run_georep(faults: u32) -> anyhow::Result<()> {
    let test = |faults: u32, seeded: bool| {
        cargo()
            .args(["xtask", "test", "--no-lint", "-E", "binary(georep_chaos)"])
            .arg("--no-capture")
            .env("HDI_GEOREP_FAULTS", faults.to_string())
            .env("HDI_GEOREP_SEEDED_BUG", if seeded { "1" } else { "0" })
            .output()
            .context("cannot run cargo xtask test")
    };
    eprintln!("xtask chaos: {faults} faults against two clusters of 3 brokers and a link");
    let run = test(faults, false)?;
    let log =
        String::from_utf8_lossy(&run.stderr).into_owned() + &String::from_utf8_lossy(&run.stdout);
    if !run.status.success() {
        eprintln!("{log}");
        bail!("the geo-replication fault rotation failed");
    }
    let summary = log
        .lines()
        .find(|l| l.contains("georep chaos: "))
        .context("the test printed no summary")?;
    println!("{}", summary.trim());
    eprintln!("xtask chaos: the same with a seeded bug (a mirror that rewrites a batch)");
    let seeded = test(6, true)?;
    let log = String::from_utf8_lossy(&seeded.stderr).into_owned()
        + &String::from_utf8_lossy(&seeded.stdout);
    if seeded.status.success() || !log.contains("are not a prefix of the source") {
        eprintln!("{log}");
        bail!("the checker did not catch the seeded bug");
    }
    println!("seeded bug: caught by the checker (the mirror is not a prefix of its source)");
    Ok(())
}
