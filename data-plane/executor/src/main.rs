//! `hdi-executor`: runs one process of an executor cluster.
//!
//! `hdi-executor driver --listen HOST:PORT --data-dir DIR --credential-file FILE --files-root DIR
//! [--worker-timeout 5s]`, `hdi-executor worker --id N --listen HOST:PORT --driver HOST:PORT
//! --data-dir DIR --credential-file FILE --files-root DIR`, or `hdi-executor run --sql FILE
//! --data-dir DIR [--files-root DIR]`.
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
use hdi_executor::credential;
use hdi_executor::driver::{self, DriverConfig};
use hdi_executor::process::parse_host_port;
use hdi_executor::sandbox::{FilesRoot, JobScope, KafkaScope};
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
    /// Run one job in this process (tasks in-process) and print its progress as JSON lines.
    Run(RunFlags),
}

#[derive(Debug, Args)]
struct RunFlags {
    /// The job script.
    #[arg(long, value_name = "FILE")]
    sql: PathBuf,
    /// Where the checkpoint goes (reused: a rerun resumes).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Threads running tasks.
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// The default Kafka cluster for tables without bootstrap_servers.
    #[arg(long, value_name = "HOST:PORT,...")]
    bootstrap_servers: Option<String>,
    /// Confine the job's file connectors to this directory (default: paths as written).
    #[arg(long, value_name = "DIR")]
    files_root: Option<PathBuf>,
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
    #[command(flatten)]
    cluster: ClusterFlags,
}

/// What the driver and the workers of a cluster share.
#[derive(Debug, Args)]
struct ClusterFlags {
    /// File holding the cluster credential (mode 0600): required of every caller, sent to peers.
    #[arg(long, value_name = "FILE")]
    credential_file: PathBuf,
    /// The directory jobs' file connectors resolve their paths in (created if missing).
    #[arg(long, value_name = "DIR")]
    files_root: PathBuf,
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
    #[command(flatten)]
    cluster: ClusterFlags,
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Err("must be more than 0".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (expected e.g. 5s, 500ms)")),
    }
}

/// `hdi-executor run`: one job, in-process, until it completes (available-now) or a signal.
async fn run_job(flags: RunFlags) -> anyhow::Result<()> {
    use std::sync::Arc;

    use hdi_executor::query::{LocalRunner, Query, QueryConfig, QueryHandle, QueryState};
    use hdi_executor::source::ConsumerPool;

    let script = std::fs::read_to_string(&flags.sql)
        .with_context(|| format!("cannot read {} (--sql)", flags.sql.display()))?;
    let files = match &flags.files_root {
        Some(dir) => FilesRoot::confined(dir).context("--files-root")?,
        None => FilesRoot::unconfined(),
    };
    let handle = Arc::new(QueryHandle::default());
    let config = QueryConfig {
        id: "local".into(),
        name: flags
            .sql
            .file_stem()
            .map_or_else(|| "job".into(), |s| s.to_string_lossy().into_owned()),
        script,
        bootstrap: flags.bootstrap_servers,
        checkpoint: flags.data_dir.join("checkpoint"),
        scope: JobScope {
            files: files.clone(),
            kafka: KafkaScope::any(),
        },
    };
    let query = Query::start(
        config,
        Arc::new(LocalRunner {
            context: Arc::new(hdi_executor::task::TaskContext::new(files.clone())),
            ..LocalRunner::default()
        }),
        ConsumerPool::shared(),
        Arc::clone(&handle),
    )
    .await
    .map_err(|e| match (e.line, e.column) {
        (Some(line), Some(column)) => anyhow::anyhow!(
            "{}:{line}:{column}: {} ({})",
            flags.sql.display(),
            e.message,
            e.code
        ),
        _ => anyhow::anyhow!("{}: {} ({})", flags.sql.display(), e.message, e.code),
    })?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut signals = hdi_executor::process::StopSignals::watch()?;
    tokio::spawn(async move {
        let _ = signals.recv().await;
        let _ = stop.send(true);
    });
    let started = std::time::Instant::now();
    let printer = {
        let handle = Arc::clone(&handle);
        tokio::spawn(async move {
            let mut printed: Option<u64> = None;
            loop {
                for progress in handle.recent(1000) {
                    if printed.is_none_or(|p| progress.batch_id > p) {
                        println!("{}", serde_json::to_string(&progress).unwrap_or_default());
                        printed = Some(progress.batch_id);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let state = query.run(stopped).await;
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    printer.abort();
    let progress = handle.recent(100_000);
    let status = handle.status.lock().map(|s| s.clone()).ok();
    println!(
        "{}",
        serde_json::json!({
            "done": true,
            "state": state,
            "batches": status.as_ref().map_or(0, |s| s.batches_committed),
            "input_rows": progress.iter().map(|p| p.num_input_rows).sum::<u64>(),
            "output_rows": progress.iter().map(|p| p.sink.num_output_rows).sum::<u64>(),
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "error": status.and_then(|s| s.error),
        })
    );
    if state == QueryState::Failed {
        anyhow::bail!("the job failed");
    }
    Ok(())
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
    let threads = match &cli.role {
        Role::Run(flags) => flags.workers.max(1),
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
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
                            credential: credential::read(&flags.cluster.credential_file)?,
                            files_root: flags.cluster.files_root,
                        })
                        .await
                    }
                    Role::Run(flags) => run_job(flags).await,
                    Role::Worker(flags) => {
                        worker::run(WorkerConfig {
                            id: flags.id,
                            listen: flags.listen,
                            driver: flags.driver,
                            data_dir: flags.data_dir,
                            credential: credential::read(&flags.cluster.credential_file)?,
                            files_root: flags.cluster.files_root,
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
