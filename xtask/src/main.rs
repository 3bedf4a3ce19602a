//! `cargo xtask`: the developer tasks of hdi, in Rust so they run wherever cargo does.
//!
//! - `up`: build the binaries, start a private PostgreSQL, the control plane and four node agents
//!   (the demo's primaries on three, its DR cluster on the fourth) on this machine, and keep them
//!   running until Ctrl-C or SIGTERM.
//! - `test`: everything CI runs: install test dependencies, fmt, clippy, the whole suite against a
//!   private PostgreSQL, and a smoke run of `up`.
//! - `codegen`: regenerate checked-in artifacts (`openapi/hdi.json`, the sqlx offline data in
//!   `.sqlx/`).
//! - `image`: the OCI image `hdi:<version>` of the release binaries, written as an image layout
//!   under `target/image/` without a container engine.
//! - `bench broker`: hdi-broker against tansu with one load generator, ratios printed;
//!   `bench broker --cluster`: a 3-broker RF=3 cluster against a single broker, with failover;
//!   `bench control-plane`: PUT-to-Running, a resize with a rebalance, and API latency over 1,000
//!   stored clusters; `bench executor`: hdi-executor against Spark Structured Streaming on one
//!   windowed query; `bench broker --security`: the cost of TLS and SASL; `bench georep`: cluster
//!   links against MirrorMaker 2; `bench kubernetes`: `HdiCluster` apply to Ready, 500 topics,
//!   the operator's idle API requests.
//! - `portal`: build the web portal (`portal/`: npm ci, API types from `openapi/hdi.json`, tsc,
//!   vite build into the checked-in `portal/dist/`, Vitest); a test fails when the checked-in
//!   build is stale.
//! - `kube-bin [--regenerate]`: build (once per machine and version, under `target/k8s/`) the
//!   real Kubernetes control plane the tests start: kube-apiserver, etcd,
//!   kube-controller-manager, kube-scheduler and kwok, from Go modules.
//! - `chaos broker`: the 200-fault version of the broker cluster fault suite; `chaos georep`:
//!   100 faults of the geo-replication rotation, then its seeded-bug run.

mod apache_kafka;
mod bench;
mod bench_cluster;
mod bench_compaction;
mod bench_control_plane;
mod bench_executor;
mod bench_georep;
mod bench_kafka;
mod bench_kubernetes;
mod bench_security;
mod chaos;
mod codegen;
mod image;
mod kube_bin;
mod portal;
mod postgres;
mod sys;
mod test;
#[cfg(test)]
mod tidy;
mod tools;
mod up;
mod util;

use std::process::ExitCode;
use std::sync::mpsc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Developer tasks of hdi")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring up the whole platform locally (private PostgreSQL, control plane, three node agents).
    Up(up::UpArgs),
    /// Run every check CI runs.
    Test(test::TestArgs),
    /// Regenerate checked-in generated files (OpenAPI document, sqlx offline data in `.sqlx/`).
    Codegen,
    /// Build the web portal (`portal/dist`, `portal/src/api/hdi.d.ts`) and run its unit tests.
    Portal,
    /// Write the OCI image `hdi:<version>` (an image layout in target/image) of the binaries.
    Image(image::ImageArgs),
    /// Benchmarks against named peers (`broker`: hdi-broker vs tansu; `control-plane`: cluster
    /// lifecycle times and API latency; `executor`: hdi-executor vs Spark Structured Streaming).
    Bench(bench::BenchArgs),
    /// The long fault suites (`broker`: 200 faults against a 3-broker cluster).
    Chaos(chaos::ChaosArgs),
    /// Build the Kubernetes control plane of the tests (kube-apiserver, etcd,
    /// kube-controller-manager, kube-scheduler, kwok) from Go modules, once per version; print
    /// its directory.
    KubeBin(kube_bin::KubeBinArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C and SIGTERM only send on this channel; each task decides how to stop what it started.
    let (tx, shutdown) = mpsc::channel::<()>();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = tx.send(());
    }) {
        eprintln!("xtask: error: cannot install the signal handler: {error}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Up(args) => up::run(args, &shutdown),
        Command::Test(args) => test::run(args),
        Command::Codegen => codegen::run_codegen(),
        Command::Portal => portal::run_portal(),
        Command::Image(args) => image::run(args),
        Command::Bench(args) => bench::run_bench(args),
        Command::Chaos(args) => chaos::run_chaos(args),
        Command::KubeBin(args) => kube_bin::run_kube_bin(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
