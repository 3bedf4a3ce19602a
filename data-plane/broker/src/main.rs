//! `hdi-broker`: runs a single-node Kafka-compatible broker.
//!
//! `hdi-broker --node-id 1 --data-dir DIR --listen 127.0.0.1:9092 [--advertised-listener HOST:PORT]`.
//! Logs one line when ready; stops cleanly on SIGTERM or SIGINT (flushing every partition).
//! Start-up failures print one line naming the problem and exit 1.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use hdi_broker::config::Flags;
use hdi_broker::server::{Broker, serve};

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = flags
        .resolve()
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(config))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hdi-broker: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut config: hdi_broker::config::BrokerConfig) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    if config.advertised_port == 0 {
        // `--listen HOST:0` picked a free port: advertise the one we got.
        config.advertised_port = i32::from(local.port());
    }
    let data_dir = config.data_dir.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(config))
        .await
        .context("start-up task failed")?
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    tracing::info!(node_id = broker.config.node_id, cluster_id = %broker.cluster_id, "hdi-broker ready on {local}");
    let background = tokio::spawn(Arc::clone(&broker).background());
    let server = tokio::spawn(serve(Arc::clone(&broker), listener));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    server.abort();
    background.abort();
    tokio::task::spawn_blocking(move || broker.flush_all())
        .await
        .context("flush task failed")?;
    tracing::info!("hdi-broker stopped");
    Ok(())
}
