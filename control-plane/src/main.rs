//! `hdi-control-plane`: the control-plane binary. Parses flags, connects to PostgreSQL, serves the
//! REST API until SIGTERM or SIGINT. Start-up failures print one line naming the problem and exit 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hdi_control_plane::config::{Cli, Command, OperatorFlags, ServeConfig, redact_url};
use hdi_control_plane::provision::Provisioner;
use hdi_control_plane::provision::kubernetes::KubernetesProvisioner;
use hdi_control_plane::provision::local::LocalProvisioner;
use hdi_control_plane::reconcile::{JobReconciler, LinkReconciler, Reconciler, ReconcilerConfig};
use hdi_control_plane::sampler::Sampler;
use hdi_control_plane::service::{Service, ServiceConfig};
use hdi_control_plane::store::Store;
use hdi_control_plane::{AppState, auth, http};
use hdi_k8s::apply::Applier;
use tokio::sync::Notify;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", http::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Operator(flags) => {
            init_tracing();
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|runtime| runtime.block_on(operator(flags)));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("hdi-control-plane operator: error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(flags) => {
            init_tracing();
            let result = flags
                .resolve()
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()
                        .context("cannot start the async runtime")?
                        .block_on(serve(config))
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("hdi-control-plane: error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `hdi-control-plane operator`: the controllers, until SIGTERM or SIGINT.
async fn operator(flags: OperatorFlags) -> anyhow::Result<()> {
    let store = Store::connect(&flags.database_url, flags.database_connect_timeout)
        .await
        .with_context(|| format!("database {}", redact_url(&flags.database_url)))?;
    let service = Service::new(
        store,
        ServiceConfig {
            node_ready_timeout: flags.node_ready_timeout,
        },
        Arc::new(Notify::new()),
    );
    let client = kube::Client::try_default().await.context(
        "cannot reach the Kubernetes API (KUBECONFIG or the in-cluster service account)",
    )?;
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
        tracing::info!("stopping the operator");
    };
    hdi_control_plane::operator::run(
        Arc::new(service),
        client,
        flags.resync.max(Duration::from_secs(1)),
        stop,
    )
    .await
    .map_err(|e| anyhow::anyhow!("operator: {}", http::error::error_chain(&e)))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url, config.database_connect_timeout)
        .await
        .with_context(|| format!("database {}", redact_url(&config.database_url)))?;
    let poke = Arc::new(Notify::new());
    let service = Service::new(
        store.clone(),
        ServiceConfig {
            node_ready_timeout: config.node_ready_timeout,
        },
        poke.clone(),
    );
    service
        .auth_start(config.tokens.clone(), &config.admin_token)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot set up authentication: {}",
                http::error::error_chain(&e)
            )
        })?;
    let local = LocalProvisioner::new(
        store.clone(),
        config.workload_ports.clone(),
        config.node_ready_timeout,
    );
    match config.kubernetes.clone() {
        None => run(config, store, service, poke, local).await,
        Some(settings) => {
            let client = kube::Client::try_default().await.context(
                "cannot reach the Kubernetes API (KUBECONFIG or the in-cluster service account)",
            )?;
            let provisioner = KubernetesProvisioner::new(
                local,
                store.clone(),
                Applier::new(client),
                settings,
                config.workload_ports.clone(),
            );
            run(config, store, service, poke, provisioner).await
        }
    }
}

/// Runs the reconcilers with `provisioner` and serves the API until a signal.
async fn run<P: Provisioner>(
    config: ServeConfig,
    store: Store,
    service: Service,
    poke: Arc<Notify>,
    provisioner: P,
) -> anyhow::Result<()> {
    let job_reconciler = JobReconciler::new(
        store.clone(),
        config.reconcile_interval.max(Duration::from_secs(2)),
    );
    let link_reconciler = LinkReconciler::new(
        store.clone(),
        config
            .reconcile_interval
            .clamp(Duration::from_millis(300), Duration::from_secs(2)),
        Duration::from_secs(5),
        config.operation_timeout,
    );
    let sampler_store = store.clone();
    let reconciler = Reconciler::new(
        store,
        provisioner,
        ReconcilerConfig {
            interval: config.reconcile_interval,
            lease: (config.reconcile_interval * 10).max(Duration::from_secs(10)),
            probe_timeout: Duration::from_secs(2),
            operation_timeout: config.operation_timeout,
            // Pods take longer to appear than agents to answer (scheduling, volumes, images).
            capacity_grace: if config.kubernetes.is_some() {
                Duration::from_secs(300)
            } else {
                (config.node_ready_timeout * 3).max(Duration::from_secs(15))
            },
            authority_settle: config.node_ready_timeout * 2,
        },
        poke,
    );
    let stop = Arc::new(Notify::new());
    let stop_jobs = Arc::new(Notify::new());
    let stop_links = Arc::new(Notify::new());
    let reconciling = if config.reconciler {
        let metrics = service.metrics();
        let jobs = tokio::spawn(job_reconciler.run(stop_jobs.clone(), metrics.clone()));
        let clusters = tokio::spawn(reconciler.run(stop.clone(), metrics.clone()));
        let links = tokio::spawn(link_reconciler.run(stop_links.clone(), metrics));
        Some((clusters, jobs, links))
    } else {
        tracing::info!("--no-reconciler: serving the API only");
        None
    };
    // The sampler answers this process's own `GET .../metrics`: it runs wherever the API is
    // served, reconciler or not.
    let stop_sampler = Arc::new(Notify::new());
    let sampling = config.metrics_interval.map(|interval| {
        let sampler = Sampler::new(sampler_store, service.series(), interval);
        tokio::spawn(sampler.run(stop_sampler.clone()))
    });
    let state = AppState {
        service: Arc::new(service),
        auth: Arc::new(auth::Authenticator::new(&config.agent_token)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(
        version = hdi_api::VERSION,
        "hdi-control-plane listening on http://{local}"
    );
    hdi_http_serve::serve(
        listener,
        http::router(state),
        hdi_http_serve::Limits {
            header_timeout: config.http_header_timeout,
            ..hdi_http_serve::Limits::with_request_timeout(Duration::from_secs(60))
        },
        shutdown_signal(),
    )
    .await
    .context("HTTP server failed")?;
    stop.notify_one();
    stop_jobs.notify_one();
    stop_links.notify_one();
    stop_sampler.notify_one();
    if let Some(sampling) = sampling {
        let _ = tokio::time::timeout(Duration::from_secs(5), sampling).await;
    }
    if let Some((clusters, jobs, links)) = reconciling {
        let _ = tokio::time::timeout(Duration::from_secs(5), clusters).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), jobs).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), links).await;
    }
    tracing::info!("hdi-control-plane stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
