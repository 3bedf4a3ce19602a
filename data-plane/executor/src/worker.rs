//! The worker: serves `GET /healthz`, tasks (`POST /v1/tasks`), the state partitions it owns
//! (`POST /v1/state`, see [`crate::stateful`]) and its Prometheus metrics (`GET /metrics`,
//! [`crate::metrics::WorkerMetrics`]) on its listen address, and registers with the
//! driver, then heartbeats it every second (`PUT /v1/workers/{id}`, the same call).
//!
//! Every endpoint but `/healthz` requires the cluster credential ([`crate::credential`]), and the
//! worker sends it to the driver. A task names the files it reads by name inside the source
//! directory the worker resolves itself, in its files root ([`crate::sandbox`]).
//!
//! Errors answer [`hdi_executor_api::Problem`] documents: a request it cannot read (400) or state
//! it does not hold (409) says why; a task or state partition that fails answers a generic 500
//! and its cause goes to the worker's log.
//!
//! The worker picks a random incarnation at start, so the driver can tell a restarted worker from
//! a live one. An unreachable driver (or one answering 5xx) is retried forever and logged at most
//! every 30 s; a driver that refuses the registration (4xx) stops the worker, since retrying the
//! same request cannot fix it.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use hdi_executor_api::{Problem, WorkerRegistration, paths};
use hdi_stdx::secret::Secret;
use reqwest::StatusCode;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::metrics::{Outcome, TaskCounters, WorkerMetrics};
use crate::process::{StopSignals, bind, lock_data_dir};
use crate::sandbox::FilesRoot;
use crate::stateful::{ApplyError, StateRequest, StateStore, emitted_schema};
use crate::task::{TaskContext, TaskRequest};

/// How often the worker heartbeats the driver.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long one heartbeat may take before it counts as failed.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a persisting failure to reach the driver is logged again.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The worker's resolved configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's id in its cluster.
    pub id: NonZeroU32,
    /// Where to serve HTTP, `host:port` (port 0 picks a free one). The bound address is what the
    /// worker reports to the driver.
    pub listen: String,
    /// The driver's address, `host:port`.
    pub driver: String,
    /// The data directory (created if missing, locked while running).
    pub data_dir: PathBuf,
    /// The cluster credential: required of every caller but `/healthz`'s, sent to the driver.
    pub credential: Secret,
    /// Where jobs' file connectors resolve paths.
    pub files_root: PathBuf,
}

struct WorkerState {
    id: NonZeroU32,
    /// Whether the driver accepted the latest heartbeat.
    registered: AtomicBool,
    /// Cached plans and Kafka consumers for the tasks it runs.
    tasks: TaskContext,
    /// The state partitions it owns.
    states: Arc<StateStore>,
    /// What `GET /metrics` serves.
    metrics: WorkerMetrics,
}

/// Runs the worker until SIGTERM or SIGINT.
///
/// # Errors
/// When the data directory cannot be locked, the address cannot be bound, serving fails, or the
/// driver refuses the registration.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config.data_dir)?;
    let mut signals = StopSignals::watch()?;
    let (listener, local) = bind(&config.listen).await?;
    let files = FilesRoot::confined(&config.files_root).context("--files-root")?;
    let state = Arc::new(WorkerState {
        id: config.id,
        registered: AtomicBool::new(false),
        tasks: TaskContext::new(files),
        states: Arc::default(),
        metrics: WorkerMetrics::new(),
    });
    let incarnation = Uuid::new_v4();
    tracing::info!(worker = config.id, %incarnation, driver = %config.driver,
        "hdi-executor worker listening on {local}; registering with the driver");

    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    // A task may run two minutes (the driver's deadline) and a state request carries a
    // partition's snapshot: five minutes per request.
    let server = tokio::spawn(hdi_http_serve::serve(
        listener,
        router(Arc::clone(&state)).layer(axum::middleware::from_fn_with_state(
            Arc::new(config.credential.clone()),
            crate::credential::require,
        )),
        hdi_http_serve::Limits::with_request_timeout(Duration::from_secs(300)),
        async move {
            let _ = stopped.await;
        },
    ));
    let outcome = heartbeat(&config, &state, local, incarnation, &mut signals).await;
    let _ = stop_server.send(());
    let served = server.await.context("the HTTP server task failed")?;
    outcome?;
    served.context("the HTTP server failed")?;
    tracing::info!(worker = config.id, "hdi-executor worker stopped");
    Ok(())
}

fn router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/tasks", axum::routing::post(run_task))
        // A state request carries a partition's partial rows and, when it moved, its snapshot.
        .route(
            "/v1/state",
            axum::routing::post(apply_state).layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .with_state(state)
}

/// `POST /v1/tasks`: runs one task of a batch (a JSON [`TaskRequest`]) and answers its output
/// ([`crate::task::TaskOutput::encode`]); a failure answers a generic 500 and logs its cause.
async fn run_task(State(state): State<Arc<WorkerState>>, body: axum::body::Bytes) -> Response {
    let active = state.metrics.task_started();
    let request: TaskRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            active.finish(Outcome::Failed, None);
            return invalid_body(format!("not a task: {error}"));
        }
    };
    let result = async {
        let job = state.tasks.prepared(&request).await?;
        let output = crate::task::run_task(&job, &state.tasks.pool, &request).await?;
        let meta = &output.meta;
        let counters = TaskCounters {
            input_rows: meta.input_rows,
            malformed_rows: meta.malformed_rows,
            late_rows: meta.late_rows,
            fetch_ms: meta.fetch_ms,
            decode_ms: meta.decode_ms,
            execute_ms: meta.execute_ms,
        };
        let schema = output
            .batches
            .first()
            .map_or_else(|| Arc::clone(&job.plan.task_output_schema), |b| b.schema());
        output.encode(&schema).map(|bytes| (bytes, counters))
    }
    .await;
    match result {
        Ok((bytes, counters)) => {
            active.finish(Outcome::Succeeded, Some(counters));
            (StatusCode::OK, bytes).into_response()
        }
        Err(error) => {
            active.finish(Outcome::Failed, None);
            tracing::warn!(job = %request.job_id, batch = request.batch_id, "task failed: {error:#}");
            failed(state.id, "the task failed")
        }
    }
}

/// `400 invalid_body`: the request cannot be read (the caller's fault, so it learns why).
fn invalid_body(detail: String) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_body", detail).into_response()
}

/// `500 internal` for a fault already logged: the caller learns which worker to look at.
fn failed(worker: NonZeroU32, what: &str) -> Response {
    Problem::internal(format!("{what}; see worker {worker}'s log")).into_response()
}

/// The largest state request a worker takes (partials and a snapshot of one partition).
const STATE_BODY_LIMIT: usize = 1 << 30;

/// `POST /v1/state`: applies one state partition's share of a batch
/// ([`crate::stateful::StateRequest::encode`]) and answers [`crate::stateful::StateReply::encode`]; `409` when it
/// does not hold the base state and no snapshot came with the request, `400` for a request it
/// cannot read, `500` when applying fails.
async fn apply_state(State(state): State<Arc<WorkerState>>, body: axum::body::Bytes) -> Response {
    let started = std::time::Instant::now();
    let (response, outcome, snapshot_bytes) = apply_state_counted(&state, &body).await;
    state
        .metrics
        .state_request(outcome, started.elapsed().as_secs_f64(), snapshot_bytes);
    state.metrics.set_partitions(state.states.partitions());
    response
}

/// [`apply_state`]'s answer, how it ended and the bytes of the snapshot it answered.
async fn apply_state_counted(state: &WorkerState, body: &[u8]) -> (Response, Outcome, u64) {
    let request = match StateRequest::decode(body) {
        Ok(request) => Arc::new(request),
        Err(error) => {
            let response = invalid_body(format!("not a state request: {error:#}"));
            return (response, Outcome::Failed, 0);
        }
    };
    let h = &request.header;
    let job = match state
        .tasks
        .prepared_job(&h.job_id, &h.script, h.bootstrap.as_deref())
        .await
    {
        Ok(job) => job,
        Err(error) => {
            tracing::warn!(job = %h.job_id, batch = h.batch_id, "cannot plan the job: {error:#}");
            return (failed(state.id, "cannot plan the job"), Outcome::Failed, 0);
        }
    };
    let states = Arc::clone(&state.states);
    let applied = {
        let request = Arc::clone(&request);
        let job = Arc::clone(&job);
        tokio::task::spawn_blocking(move || states.apply(&job.plan, &request)).await
    };
    let reply = match applied {
        Ok(Ok(reply)) => reply,
        Ok(Err(missing @ ApplyError::Missing { .. })) => {
            let problem = Problem::new(StatusCode::CONFLICT, "state_missing", missing.to_string());
            return (problem.into_response(), Outcome::Missing, 0);
        }
        Ok(Err(ApplyError::Failed(error))) => {
            tracing::warn!(job = %h.job_id, batch = h.batch_id, partition = h.partition,
                "state partition failed: {error:#}");
            return (
                failed(state.id, "the state partition failed"),
                Outcome::Failed,
                0,
            );
        }
        Err(error) => {
            tracing::error!(job = %h.job_id, batch = h.batch_id, partition = h.partition,
                "state partition panicked: {error}");
            return (
                failed(state.id, "the state partition failed"),
                Outcome::Failed,
                0,
            );
        }
    };
    let snapshot_bytes = reply.snapshot.len() as u64;
    match reply.encode(&emitted_schema(&job.plan)) {
        Ok(bytes) => (
            (StatusCode::OK, bytes).into_response(),
            Outcome::Succeeded,
            snapshot_bytes,
        ),
        Err(error) => {
            tracing::warn!(job = %h.job_id, batch = h.batch_id, partition = h.partition,
                "cannot encode the state reply: {error:#}");
            let response = failed(state.id, "the state partition failed");
            (response, Outcome::Failed, 0)
        }
    }
}

/// `GET /metrics`: the worker's Prometheus metrics, behind the credential like its other routes.
async fn metrics(State(state): State<Arc<WorkerState>>) -> Response {
    state.metrics.set_partitions(state.states.partitions());
    state
        .metrics
        .set_registered(state.registered.load(Ordering::Relaxed));
    hdi_http_serve::metrics::exposition_response(state.metrics.exposition())
}

async fn healthz(State(state): State<Arc<WorkerState>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "status": "ok",
        "role": "worker",
        "id": state.id.get(),
        "registered": state.registered.load(Ordering::Relaxed),
    }))
}

/// Heartbeats the driver until a stop signal (`Ok`) or a refused registration (`Err`).
async fn heartbeat(
    config: &WorkerConfig,
    state: &WorkerState,
    local: SocketAddr,
    incarnation: Uuid,
    signals: &mut StopSignals,
) -> anyhow::Result<()> {
    let client = crate::credential::client(
        &config.credential,
        reqwest::Client::builder()
            .timeout(HEARTBEAT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none()),
    )?;
    let url = format!(
        "http://{}{}",
        config.driver,
        paths::with_id(paths::WORKER, config.id)
    );
    let body = WorkerRegistration {
        address: local.to_string(),
        incarnation,
    };
    let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ever_registered = false;
    // When the last failure was logged; `None` while the driver answers.
    let mut last_warned: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            name = signals.recv() => {
                tracing::info!("{name}: stopping");
                return Ok(());
            }
        }
        let sent = tokio::select! {
            sent = client.put(&url).json(&body).send() => sent,
            name = signals.recv() => {
                tracing::info!("{name}: stopping");
                return Ok(());
            }
        };
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                if !state.registered.swap(true, Ordering::Relaxed) {
                    if ever_registered {
                        tracing::info!(driver = %config.driver, "registered with the driver again");
                    } else {
                        tracing::info!(worker = config.id, driver = %config.driver,
                            "hdi-executor worker ready on {local}");
                        ever_registered = true;
                    }
                }
                last_warned = None;
                continue;
            }
            Ok(response) if is_refusal(response.status()) => {
                let status = response.status();
                let detail = response.text().await.unwrap_or_default();
                anyhow::bail!(
                    "the driver at {} refused worker {}'s registration: {status}: {detail}",
                    config.driver,
                    config.id
                );
            }
            Ok(response) => format!("the driver answered {}", response.status()),
            Err(error) => format!("{:#}", anyhow::Error::from(error)),
        };
        let was_registered = state.registered.swap(false, Ordering::Relaxed);
        if was_registered || last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(driver = %config.driver,
                "cannot reach the driver (retrying every {}s): {failure}",
                HEARTBEAT_INTERVAL.as_secs());
            last_warned = Some(Instant::now());
        }
    }
}

/// A 4xx other than a timeout or rate limit: the driver will refuse the same request again.
fn is_refusal(status: StatusCode) -> bool {
    status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}
