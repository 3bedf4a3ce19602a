//! `cargo xtask test`: every check CI runs, on a fresh machine of this project's kind.
//!
//! Steps: install what tests need (idempotent; the Kubernetes binaries of `kube_bin` among them,
//! exported as `HDI_TEST_K8S_BIN`), `cargo fmt --check`, clippy with `-D warnings`,
//! build every binary, the OCI image of the debug binaries (`image`: built twice, inspected with
//! skopeo, unpacked with umoci, each binary run from its root file system; alone: `cargo xtask
//! image --debug --no-build --check`), the whole suite under cargo-nextest against a scratch
//! PostgreSQL (its URL in `DATABASE_URL`; freshness tests of generated files are part of the
//! suite), then a smoke run of `cargo xtask up` twice on one state directory. The scratch server
//! is stopped even when a step fails. Prints a duration per step.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::postgres::{Durability, ScratchPostgres};
use crate::util::{cargo, run as run_command, wait_for};

/// Flags of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (for a quick local run; CI never skips them).
    #[arg(long)]
    no_lint: bool,
    /// Arguments passed on to nextest (e.g. a test-name filter or `-E 'package(hdi-e2e)'`); skips the
    /// image check and the `up` smoke run.
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
    let mut tools = None;
    let mut nextest = None;
    let mut k8s_bin = None;
    steps.run("install test dependencies", || {
        postgres = Some(crate::postgres::find_or_install()?);
        let dir = crate::util::target_dir()?.join("test-tools");
        tools = Some(crate::tools::ensure(&dir)?);
        nextest = crate::tools::nextest(&dir);
        k8s_bin = Some(crate::kube_bin::ensure()?);
        Ok(())
    })?;
    let postgres = postgres.context("PostgreSQL binaries")?;
    let tools = tools.context("test tools")?;
    let k8s_bin = k8s_bin.context("Kubernetes binaries")?;
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
    if args.filter.is_empty() {
        steps.run(
            "image: build and run from its root file system",
            image_check,
        )?;
    }
    let scratch = ScratchPostgres::start(&postgres, Durability::Scratch)?;
    let database_url = scratch.server.url("postgres");
    steps.run("test suite", || {
        let mut command = if let Some(nextest) = &nextest {
            let mut command = nextest.command();
            command.args([
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
            eprintln!("xtask: cargo-nextest is missing (see the warning above); using cargo test");
            let mut command = cargo();
            command.args(["test", "--workspace", "--locked"]);
            command
        };
        command
            .args(&args.filter)
            .env("DATABASE_URL", &database_url)
            .env("HDI_TEST_PYTHON", &tools.python)
            .env("HDI_TEST_NODE_PATH", &tools.node_path)
            .env("HDI_TEST_JAVA_LIB", &tools.java_lib)
            .env("HDI_TEST_JAVA_ECOSYSTEM_LIB", &tools.java_ecosystem_lib)
            .env("HDI_TEST_HELM", &tools.helm)
            .env("HDI_TEST_KUBECTL", &tools.kubectl)
            .env("HDI_TEST_KUBERNETES_VALIDATE", &tools.kubernetes_validate)
            .env("HDI_TEST_K8S_BIN", &k8s_bin)
            .env("HDI_TEST_CHROMIUM", &tools.chromium);
        run_command("the test suite", &mut command)
    })?;
    if args.filter.is_empty() {
        steps.run("smoke: cargo xtask up, twice", smoke_up)?;
    }
    drop(scratch);
    Ok(())
}

/// `cargo xtask image --debug --check`, in a scratch directory: the image of the debug binaries,
/// built twice (same digest), inspected, unpacked, each binary run from its root file system.
fn image_check() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hdi-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin_dir = crate::util::target_dir()?.join("debug");
    let result = crate::image::check(&bin_dir, &dir.join("layout"), crate::image::Gzip::Fast);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs `cargo xtask up` twice on one state directory with the debug binaries, each time as a user
/// would: wait for it to be up, check `hdictl node list` through the context it wrote (4 Ready
/// nodes), send SIGTERM, and check that it exits cleanly leaving no process behind. The second run
/// must find the same node identities.
fn smoke_up() -> anyhow::Result<()> {
    let state = std::env::temp_dir().join(format!("hdi-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    let first = smoke_once(&state, 1)?;
    let second = smoke_once(&state, 2)?;
    let _ = std::fs::remove_dir_all(&state);
    if first != second {
        bail!("node identities changed across restarts of up: {first:?} then {second:?}");
    }
    eprintln!(
        "xtask: up came up twice with the same 4 nodes and stopped cleanly on SIGTERM: {}",
        first.join(", ")
    );
    Ok(())
}

fn smoke_once(state: &Path, round: u32) -> anyhow::Result<Vec<String>> {
    let target = crate::util::target_dir()?;
    // Not current_exe(): building the workspace may have replaced this very binary on disk.
    let xtask = target.join("debug/xtask");
    let hdictl = target.join("debug/hdictl");
    let port = hdi_test_support::ports::take_one()?;
    let config = state.join("hdictl.json");
    let log_path = state.join(format!("up-{round}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut up = Command::new(xtask)
        .args([
            "up",
            "--debug",
            "--no-build",
            "--api-port",
            &port.to_string(),
            "--state-dir",
        ])
        .arg(state)
        .env("HDI_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot run xtask up")?;
    let up_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let ready = wait_for(
        "xtask up to be ready",
        Duration::from_secs(180),
        || match up.try_wait() {
            Ok(Some(status)) => Some(Err(anyhow::anyhow!("xtask up exited ({status})"))),
            _ => up_log().contains("Press Ctrl-C").then_some(Ok(())),
        },
    );
    let checked = ready
        .and_then(|inner| inner)
        .and_then(|()| check_nodes(&hdictl, &config))
        .and_then(|ids| check_demo_jobs(&hdictl, &config).map(|()| ids))
        .and_then(|ids| check_demo_topic(&hdictl, &config, state).map(|()| ids))
        .and_then(|ids| check_demo_link(&hdictl, &config).map(|()| ids));
    crate::sys::signal(up.id(), libc::SIGTERM);
    let stopped = wait_for(
        "xtask up to stop after SIGTERM",
        Duration::from_secs(30),
        || up.try_wait().ok().flatten(),
    );
    let result = checked.and_then(|ids| {
        let status = stopped?;
        if !status.success() {
            bail!("xtask up exited with {status} after SIGTERM");
        }
        let leftovers = processes_mentioning(state);
        if !leftovers.is_empty() {
            bail!("processes left behind after SIGTERM: {leftovers:?}");
        }
        Ok(ids)
    });
    if result.is_err() {
        let _ = up.kill();
    }
    result.with_context(|| format!("xtask up output:\n{}", up_log()))
}

/// The demo jobs run: `hdictl job list demo-spark` shows card-generator and card-alerts Running,
/// each having committed batches (within a minute).
fn check_demo_jobs(hdictl: &Path, config: &Path) -> anyhow::Result<()> {
    let mut last = String::new();
    let done = wait_for(
        "the demo jobs to commit batches",
        Duration::from_secs(60),
        || {
            let json = crate::util::output(
                "hdictl job list demo-spark -o json",
                Command::new(hdictl).arg("--config").arg(config).args([
                    "job",
                    "list",
                    "demo-spark",
                    "-o",
                    "json",
                ]),
            )
            .ok()?;
            last = json.clone();
            let jobs: serde_json::Value = serde_json::from_str(&json).ok()?;
            let running = |name: &str| {
                jobs.as_array().is_some_and(|list| {
                    list.iter().any(|job| {
                        job["name"] == name
                            && job["status"]["state"] == "Running"
                            && job["status"]["batches_committed"].as_u64().unwrap_or(0) > 0
                    })
                })
            };
            (running("card-generator") && running("card-alerts")).then_some(())
        },
    );
    done.with_context(|| format!("hdictl job list demo-spark -o json:\n{last}"))?;
    eprintln!("xtask: the demo jobs card-generator and card-alerts are running");
    Ok(())
}

/// The demo's secured Kafka cluster serves its Kafka user `demo` what the generator job wrote
/// over SASL_SSL: `hdictl topic consume demo-kafka transactions --user demo` reads records.
fn check_demo_topic(hdictl: &Path, config: &Path, state: &Path) -> anyhow::Result<()> {
    let password = state.join("demo-kafka-demo.password");
    let out = crate::util::output(
        "hdictl topic consume demo-kafka transactions --user demo",
        Command::new(hdictl)
            .arg("--config")
            .arg(config)
            .args([
                "topic",
                "consume",
                "demo-kafka",
                "transactions",
                "--user",
                "demo",
            ])
            .arg("--password-file")
            .arg(&password)
            .args(["--from-beginning", "--max", "5", "--timeout", "20s"]),
    )?;
    if out.lines().count() != 5 {
        bail!("expected 5 transactions as Kafka user demo, read:\n{out}");
    }
    eprintln!("xtask: Kafka user demo reads the demo's transactions over SASL_SSL");
    Ok(())
}

/// The demo's replication link mirrors: `hdictl link show demo-dr -o json` reports all six
/// partitions of `transactions` and `alerts` active on demo-kafka-dr (within a minute).
fn check_demo_link(hdictl: &Path, config: &Path) -> anyhow::Result<()> {
    let mut last = String::new();
    let done = wait_for("the demo's link to mirror", Duration::from_secs(60), || {
        let json = crate::util::output(
            "hdictl link show demo-dr -o json",
            Command::new(hdictl)
                .arg("--config")
                .arg(config)
                .args(["link", "show", "demo-dr", "-o", "json"]),
        )
        .ok()?;
        last = json.clone();
        let link: serde_json::Value = serde_json::from_str(&json).ok()?;
        let active = link["status"]["topics"]
            .as_array()?
            .iter()
            .flat_map(|t| t["partitions"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["state"] == "active")
            .count();
        (active == 6).then_some(())
    });
    done.with_context(|| format!("hdictl link show demo-dr -o json:\n{last}"))?;
    eprintln!("xtask: link demo-dr mirrors transactions and alerts to demo-kafka-dr");
    Ok(())
}

/// `hdictl node list` shows 4 Ready nodes; returns `name id` of each.
fn check_nodes(hdictl: &Path, config: &Path) -> anyhow::Result<Vec<String>> {
    let table = crate::util::output(
        "hdictl node list",
        Command::new(hdictl)
            .arg("--config")
            .arg(config)
            .args(["node", "list"]),
    )?;
    eprint!("{table}");
    let ready = table
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some("Ready"))
        .count();
    if ready != 4 {
        bail!("hdictl node list shows {ready} Ready nodes, expected 4:\n{table}");
    }
    let clusters = crate::util::output(
        "hdictl cluster list",
        Command::new(hdictl)
            .arg("--config")
            .arg(config)
            .args(["cluster", "list"]),
    )?;
    eprint!("{clusters}");
    for demo in ["demo-kafka", "demo-spark", "demo-kafka-dr"] {
        let running = clusters.lines().any(|line| {
            let mut cells = line.split_whitespace();
            cells.next() == Some(demo) && cells.nth(1) == Some("Running")
        });
        if !running {
            bail!("hdictl cluster list does not show {demo} Running:\n{clusters}");
        }
    }
    let json = crate::util::output(
        "hdictl node list -o json",
        Command::new(hdictl)
            .arg("--config")
            .arg(config)
            .args(["node", "list", "-o", "json"]),
    )?;
    let nodes: serde_json::Value =
        serde_json::from_str(&json).context("hdictl -o json is not JSON")?;
    let ids = nodes
        .as_array()
        .context("hdictl -o json is not a list")?
        .iter()
        .map(|node| {
            format!(
                "{} {}",
                node["name"].as_str().unwrap_or("?"),
                node["id"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Ok(ids)
}

/// Process ids whose command line mentions `path` (our agents, control plane and PostgreSQL do).
fn processes_mentioning(path: &Path) -> Vec<String> {
    crate::util::pids_mentioning(path)
        .into_iter()
        .map(|(pid, cmdline)| format!("{pid}: {cmdline}"))
        .collect()
}
