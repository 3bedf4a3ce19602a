//! The agent's main loop: one closed [`Event`] enum, handled one event at a time.
//!
//! The agent first enrols: it exchanges the shared bootstrap token (`--token-file`) once for the
//! node's own credential, kept in `<data-dir>/node-credential` (0600), which every other call
//! presents (see [`Credentials`]). It registers (again after every start, and whenever the
//! control plane forgets it),
//! then heartbeats every interval with the applied assignment generation and the state of every
//! workload. Every poll interval it fetches the node's workload assignment and hands it to the
//! [`Supervisor`] (a 404 means "nothing assigned yet"); events of the workload processes arrive as
//! [`Event::Workload`]. An unreachable control plane is retried forever (the node's workloads keep
//! running meanwhile, from the persisted assignment: the control plane is not on the data path); a
//! refused bootstrap token is fatal, because retrying cannot fix it; a refused node credential
//! (revoked) is dropped and the agent enrols again.
//!
//! On SIGTERM or SIGINT the agent exits and leaves its workloads running; the next agent adopts
//! them.

use std::time::Duration;

use anyhow::Context;
use hdi_api::{Client, ClientError, NodeHeartbeat, NodeRegistration};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::AgentConfig;
use crate::identity::{self, Identity};
use crate::inventory;
use crate::supervisor::{self, Supervisor, SupervisorConfig};

/// How often a persisting failure to reach the control plane is logged again.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long one assignment fetch may take, so a hung control plane cannot stall the loop.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that can happen to the agent.
#[derive(Debug)]
enum Event {
    /// Time to register (if not registered) or heartbeat.
    Tick,
    /// Time to fetch the workload assignment.
    Poll,
    /// Something happened to a workload process.
    Workload(supervisor::Event),
    /// A signal asked the agent to stop.
    Shutdown(&'static str),
}

/// Whether the control plane currently knows this node.
#[derive(Debug, PartialEq, Eq)]
enum Registration {
    Unregistered,
    Registered,
}

/// Runs the agent until SIGTERM or SIGINT.
///
/// # Errors
/// When the data directory cannot be used or the control plane refuses the agent's token.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let config = &config;
    let _lock = identity::lock_data_dir(&config.data_dir)?;
    let identity = identity::load_or_create(&config.data_dir, config.name.as_deref())?;
    let mut credentials = Credentials::load(config)?;
    tracing::info!(node = %identity.id, name = %identity.name, fault_domain = config.fault_domain,
        control_plane = %config.control_plane, "hdi-node-agent starting");

    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut supervisor = Supervisor::start(SupervisorConfig {
        data_dir: config.data_dir.clone(),
        bin_dir: config.bin_dir.clone(),
        storage_dir: config.storage_dir.clone(),
        stop_timeout: supervisor::STOP_TIMEOUT,
        isolation: config.isolation,
        metrics_token: config
            .metrics
            .as_ref()
            .and_then(|(_, token)| token.clone())
            .map(hdi_stdx::secret::Secret::new),
    })?;
    let metrics = std::sync::Arc::new(crate::metrics::AgentMetrics::new());
    if let Some((addr, token)) = &config.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
        let local = listener.local_addr()?;
        let scraped = std::sync::Arc::clone(&metrics);
        let source: hdi_http_serve::metrics::Source =
            std::sync::Arc::new(move || scraped.exposition());
        let router = hdi_http_serve::metrics::router(source, token.clone());
        // Ends with the runtime, when `run` returns.
        tokio::spawn(async move {
            let served = hdi_http_serve::serve(
                listener,
                router,
                hdi_http_serve::Limits::with_request_timeout(Duration::from_secs(10)),
                std::future::pending(),
            )
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
        tracing::info!("metrics on http://{local}/metrics");
    }
    let mut ticks = tokio::time::interval(config.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = tokio::time::interval(config.poll_interval);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registration = Registration::Unregistered;
    // When the last retryable failure was logged; `None` while the control plane answers.
    let mut last_warned: Option<tokio::time::Instant> = None;
    // The same, for fetching the assignment.
    let mut last_poll_warned: Option<tokio::time::Instant> = None;

    loop {
        let event = tokio::select! {
            event = supervisor.next_event() => Event::Workload(event),
            _ = ticks.tick() => Event::Tick,
            _ = polls.tick() => Event::Poll,
            _ = term.recv() => Event::Shutdown("SIGTERM"),
            _ = int.recv() => Event::Shutdown("SIGINT"),
        };
        match event {
            Event::Shutdown(signal) => {
                // Workloads keep serving; the next agent adopts them.
                tracing::info!(
                    signal,
                    "hdi-node-agent stopping; its workloads keep running"
                );
                return Ok(());
            }
            Event::Workload(event) => supervisor.handle(event),
            Event::Poll => match poll(&mut credentials, &identity, &mut supervisor).await {
                Ok(()) => {
                    if last_poll_warned.take().is_some() {
                        tracing::info!("workload assignment reachable again");
                    }
                }
                Err(error) => {
                    let now = tokio::time::Instant::now();
                    if last_poll_warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                        last_poll_warned = Some(now);
                        tracing::warn!(
                            "{error:#}; running the last applied assignment (generation {}) meanwhile",
                            supervisor.applied_generation()
                        );
                    }
                }
            },
            Event::Tick => {
                let outcome = tick(
                    &mut credentials,
                    config,
                    &identity,
                    &supervisor,
                    &mut registration,
                )
                .await;
                metrics.heartbeat(outcome.is_ok());
                metrics.workloads(&supervisor.statuses(), supervisor.applied_generation());
                match outcome {
                    Ok(()) => {
                        if last_warned.take().is_some() {
                            tracing::info!("control plane reachable again");
                        }
                    }
                    Err(TickError::Fatal(error)) => return Err(error),
                    Err(TickError::Retry(error) | TickError::Refused(error)) => {
                        // Log the first failure, then at most every 30 s, so an outage does not flood the log.
                        let now = tokio::time::Instant::now();
                        if last_warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                            last_warned = Some(now);
                            tracing::warn!(
                                "{error:#}; retrying every {}",
                                humantime::format_duration(config.heartbeat_interval)
                            );
                        }
                    }
                }
            }
        }
    }
}

enum TickError {
    /// Retrying cannot help (e.g. the bootstrap token is refused).
    Fatal(anyhow::Error),
    /// Retry on the next tick.
    Retry(anyhow::Error),
    /// The node's credential is refused (revoked): enrol again.
    Refused(anyhow::Error),
}

/// The agent's credentials: the bootstrap token (`--token-file`, good only for enrolling) and,
/// once enrolled, the node's own credential, kept in `<data-dir>/node-credential` (0600) and
/// presented on every other call. A refused node credential (revoked by an admin) is forgotten
/// and the agent enrols again; a node that has a credential the agent lost is refused
/// enrolment (`node_credential_exists`) until an admin revokes it.
struct Credentials {
    url: String,
    bootstrap: Client,
    node: Option<Client>,
    file: std::path::PathBuf,
}

impl Credentials {
    fn load(config: &AgentConfig) -> anyhow::Result<Credentials> {
        let file = config.data_dir.join("node-credential");
        let node = if file.exists() {
            let secret =
                hdi_stdx::secret::read_secret_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(Client::new(
                &config.control_plane,
                Some(secret.expose().to_owned()),
            )?)
        } else {
            None
        };
        Ok(Credentials {
            url: config.control_plane.clone(),
            bootstrap: Client::new(&config.control_plane, Some(config.token.clone()))?,
            node,
            file,
        })
    }

    /// The client presenting the node's credential, enrolling first if there is none.
    async fn client(&mut self, id: uuid::Uuid) -> Result<&Client, TickError> {
        if self.node.is_none() {
            let issued = match self.bootstrap.agent_enrol(id).await {
                Ok(issued) => issued,
                Err(error) => {
                    return Err(match error.status() {
                        Some(401 | 403) => TickError::Fatal(anyhow::Error::new(error).context(
                            "enrolment refused: the control plane refused this agent's token (check --token-file)",
                        )),
                        Some(409) => TickError::Fatal(anyhow::Error::new(error).context(
                            "enrolment refused: this node has a credential this agent does not hold",
                        )),
                        _ => TickError::Retry(anyhow::Error::new(error).context("enrolment failed")),
                    });
                }
            };
            hdi_stdx::secret::write_secret_file(&self.file, &issued.credential).map_err(|e| {
                TickError::Fatal(anyhow::Error::new(e).context(format!(
                    "cannot keep the node credential in {}",
                    self.file.display()
                )))
            })?;
            tracing::info!(
                "enrolled: the node's own credential is kept in {}",
                self.file.display()
            );
            let client = Client::new(&self.url, Some(issued.credential))
                .map_err(|e| TickError::Fatal(anyhow::Error::new(e)))?;
            self.node = Some(client);
        }
        self.node
            .as_ref()
            .ok_or_else(|| TickError::Retry(anyhow::anyhow!("not enrolled")))
    }

    /// Forgets a refused node credential (the next call enrols again).
    fn forget(&mut self) {
        tracing::warn!(
            "the control plane refused the node's credential (revoked?): enrolling again"
        );
        self.node = None;
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Fetches the assignment and applies it. A 404 means nothing is assigned yet (or the endpoint
/// is not deployed yet): the supervisor keeps what it runs.
async fn poll(
    credentials: &mut Credentials,
    identity: &Identity,
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    let client = match credentials.client(identity.id).await {
        Ok(client) => client,
        Err(TickError::Fatal(error) | TickError::Retry(error) | TickError::Refused(error)) => {
            return Err(error);
        }
    };
    let fetched = tokio::time::timeout(POLL_TIMEOUT, client.agent_workloads(identity.id))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "fetching the workload assignment timed out after {}",
                humantime::format_duration(POLL_TIMEOUT)
            )
        })?;
    match fetched {
        Ok(assignment) => {
            supervisor.apply(assignment);
            Ok(())
        }
        Err(error) if error.status() == Some(404) => {
            tracing::debug!("no workload assignment for this node yet");
            Ok(())
        }
        Err(error) if error.status() == Some(401) => {
            credentials.forget();
            Err(anyhow::Error::new(error).context("the node's credential was refused"))
        }
        Err(error) => {
            Err(anyhow::Error::new(error).context("cannot fetch the workload assignment"))
        }
    }
}

async fn tick(
    credentials: &mut Credentials,
    config: &AgentConfig,
    identity: &Identity,
    supervisor: &Supervisor,
    registration: &mut Registration,
) -> Result<(), TickError> {
    let client = credentials.client(identity.id).await?;
    let outcome = tick_with(client, config, identity, supervisor, registration).await;
    if let Err(TickError::Refused(error)) = outcome {
        credentials.forget();
        return Err(TickError::Retry(
            error.context("the node's credential was refused; enrolling again"),
        ));
    }
    outcome
}

async fn tick_with(
    client: &Client,
    config: &AgentConfig,
    identity: &Identity,
    supervisor: &Supervisor,
    registration: &mut Registration,
) -> Result<(), TickError> {
    let capacity = inventory::capacity(&config.data_dir, config.cpu_millis, config.memory_bytes);
    if *registration == Registration::Registered {
        let heartbeat = NodeHeartbeat {
            capacity,
            applied_generation: supervisor.applied_generation(),
            workloads: supervisor.statuses(),
        };
        match client.agent_heartbeat(identity.id, &heartbeat).await {
            Ok(()) => return Ok(()),
            Err(error) if error.status() == Some(404) => {
                tracing::warn!("the control plane does not know this node; registering again");
                *registration = Registration::Unregistered;
            }
            Err(error) => return Err(classify(error, "heartbeat failed")),
        }
    }
    let request = NodeRegistration {
        name: identity.name.clone(),
        fault_domain: config.fault_domain,
        address: config.address.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        capacity,
    };
    let node = client
        .agent_register(identity.id, &request)
        .await
        .map_err(|e| classify(e, "registration failed"))?;
    tracing::info!(node = %node.id, name = %node.name, incarnation = node.incarnation, "registered with the control plane");
    *registration = Registration::Registered;
    Ok(())
}

fn classify(error: ClientError, what: &str) -> TickError {
    match error.status() {
        Some(401) => TickError::Refused(anyhow::Error::new(error).context(what.to_owned())),
        Some(403) => TickError::Fatal(anyhow::Error::new(error).context(format!(
            "{what}: the control plane refused this agent's credential"
        ))),
        // A registration the control plane rejects as invalid will be rejected again: stop.
        Some(400) | Some(409) => {
            TickError::Fatal(anyhow::Error::new(error).context(what.to_owned()))
        }
        _ => TickError::Retry(anyhow::Error::new(error).context(what.to_owned())),
    }
}
