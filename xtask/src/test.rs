//! `cargo xtask test`: every check CI runs, on a fresh machine of this project's kind.
//!
//! Steps: install what tests need (idempotent), `cargo fmt --check`, clippy with `-D warnings`,
//! build every binary, the whole suite under cargo-nextest against a scratch PostgreSQL (its URL in
//! `DATABASE_URL`; freshness tests of generated files are part of the suite), then a smoke run of
//! `cargo xtask up` twice on one state directory. The scratch server is stopped even when a step
//! fails. Prints a duration per step.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::postgres::{Binaries, ScratchPostgres};
use crate::util::{cargo, run as run_command};

/// Flags of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (for a quick local run; CI never skips them).
    #[arg(long)]
    no_lint: bool,
    /// Arguments passed on to nextest (e.g. a test-name filter or `-E 'package(hdi-e2e)'`); skips the
    /// `up` smoke run.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    filter: Vec<String>,
}

struct Steps {
    done: Vec<(String, Duration)>,
}

impl Steps {
    fn run(&mut self, name: &str, step: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        eprintln!("\n==> {name}");
        let started = Instant::now();
        let result = step();
        self.done.push((name.to_owned(), started.elapsed()));
        result.with_context(|| format!("step '{name}'"))
    }

    fn report(&self) {
        eprintln!("\nxtask test: step durations");
        for (name, elapsed) in &self.done {
            eprintln!("  {:>7.1}s  {name}", elapsed.as_secs_f64());
        }
    }
}

/// Runs every check.
pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let mut steps = Steps { done: Vec::new() };
    let result = run_steps(&args, &mut steps);
    steps.report();
    result
}

fn run_steps(args: &TestArgs, steps: &mut Steps) -> anyhow::Result<()> {
    let mut postgres = None;
    steps.run("install test dependencies", || {
        postgres = Some(Binaries::find_or_install()?);
        Ok(())
    })?;
    let postgres = postgres.context("PostgreSQL binaries")?;
    if !args.no_lint {
        steps.run("cargo fmt --check", || {
            run_command("cargo fmt", cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        steps.run("cargo clippy", || {
            run_command(
                "cargo clippy",
                cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )
        })?;
    }
    steps.run("cargo build (binaries)", || {
        run_command(
            "cargo build",
            cargo().args(["build", "--workspace", "--bins", "--locked"]),
        )
    })?;
    let scratch = ScratchPostgres::start(&postgres)?;
    let database_url = scratch.server.url("postgres");
    steps.run("test suite", || {
        let mut command = if has_nextest() {
            let mut command = cargo();
            command.args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--profile",
                "ci",
                "--no-tests",
                "fail",
            ]);
            command
        } else {
            eprintln!("xtask: cargo-nextest not found; using cargo test");
            let mut command = cargo();
            command.args(["test", "--workspace", "--locked"]);
            command
        };
        command
            .args(&args.filter)
            .env("DATABASE_URL", &database_url);
        run_command("the test suite", &mut command)
    })?;
    if args.filter.is_empty() {
        steps.run("smoke: cargo xtask up, twice", smoke_up)?;
    }
    drop(scratch);
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

/// Runs `up --smoke` twice on one state directory with the debug binaries: the platform comes up
/// with three Ready nodes, and the second start finds the same node identities.
fn smoke_up() -> anyhow::Result<()> {
    let state = std::env::temp_dir().join(format!("hdi-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let first = smoke_once(&state)?;
    let second = smoke_once(&state)?;
    let _ = std::fs::remove_dir_all(&state);
    if first != second {
        bail!("node identities changed across restarts of up: {first:?} then {second:?}");
    }
    eprintln!(
        "xtask: up came up twice with the same 3 nodes: {}",
        first.join(", ")
    );
    Ok(())
}

fn smoke_once(state: &Path) -> anyhow::Result<Vec<String>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let xtask = std::env::current_exe().context("cannot find the xtask executable")?;
    let out = Command::new(xtask)
        .args([
            "up",
            "--debug",
            "--no-build",
            "--smoke",
            "--api-port",
            &port.to_string(),
            "--state-dir",
        ])
        .arg(state)
        .env("HDI_CONFIG", state.join("hdictl.json"))
        .output()
        .context("cannot run xtask up")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "xtask up --smoke failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    eprintln!("{stdout}");
    let ids = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("smoke: node "))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if ids.len() != 3 {
        bail!(
            "expected 3 'smoke: node' lines from up --smoke, got {}:\n{stdout}",
            ids.len()
        );
    }
    Ok(ids)
}

/// Installs Debian packages with apt-get (root needed), refreshing the package lists first.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if crate::sys::effective_uid() != 0 {
        bail!(
            "missing packages {packages:?}; install them (apt-get install {}) or run as root",
            packages.join(" ")
        );
    }
    run_command(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    run_command(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
