//! `hdi-executor`: runs one process of an executor cluster.
//!
//! `hdi-executor driver --listen HOST:PORT --data-dir DIR [--worker-timeout 5s]` or
//! `hdi-executor worker --id N --listen HOST:PORT --driver HOST:PORT --data-dir DIR`.
//! Logs one line containing `hdi-executor <role> ready on <addr>` when ready; stops cleanly
//! (exit 0) on SIGTERM or SIGINT. Bad flags exit 2 with clap's message; start-up failures print
//! one line naming the problem and exit 1.

use std::io::IsTerminal as _;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use hdi_executor::driver::{self, DriverConfig};
use hdi_executor::process::parse_host_port;
use hdi_executor::worker::{self, WorkerConfig};

/// The hdi executor: a driver and its workers.
#[derive(Debug, Parser)]
#[command(name = "hdi-executor", version)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Run the cluster's driver: keeps the membership of its workers.
    Driver(DriverFlags),
    /// Run a worker: registers with the driver and heartbeats it.
    Worker(WorkerFlags),
}

#[derive(Debug, Args)]
struct DriverFlags {
    /// Where to serve HTTP (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    listen: String,
    /// The data directory; created if missing and locked while running.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Drop a worker not heard from for this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    worker_timeout: Duration,
}

#[derive(Debug, Args)]
struct WorkerFlags {
    /// This worker's id in its cluster (1 or more).
    #[arg(long, value_name = "N")]
    id: NonZeroU32,
    /// Where to serve HTTP (port 0 picks a free port); the bound address is reported to the driver.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    listen: String,
    /// The driver's address.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    driver: String,
    /// The data directory; created if missing and locked while running.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Err("must be more than 0".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (expected e.g. 5s, 500ms)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                match cli.role {
                    Role::Driver(flags) => {
                        driver::run(DriverConfig {
                            listen: flags.listen,
                            data_dir: flags.data_dir,
                            worker_timeout: flags.worker_timeout,
                        })
                        .await
                    }
                    Role::Worker(flags) => {
                        worker::run(WorkerConfig {
                            id: flags.id,
                            listen: flags.listen,
                            driver: flags.driver,
                            data_dir: flags.data_dir,
                        })
                        .await
                    }
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hdi-executor: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
