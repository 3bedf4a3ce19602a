//! `hdi-node-agent`: the daemon on every node. It keeps the node's identity in its data directory,
//! registers with the control plane, heartbeats its inventory and the state of its workloads, and
//! supervises the data-plane processes assigned to the node (`hdi-broker`, `hdi-executor`, found in
//! `--bin-dir`). It runs those processes; it never links data-plane crates.
//!
//! Start-up failures and a control plane that refuses the agent's token print one line naming the
//! problem and exit 1.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hdi_node_agent::{agent, config};

fn main() -> ExitCode {
    let flags = config::Flags::parse();
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
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(agent::run(config))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("hdi-node-agent: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
