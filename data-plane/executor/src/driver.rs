//! The driver: the one process of a cluster that knows its workers.
//!
//! It serves HTTP on its listen address:
//! - `GET /v1/cluster` — the live workers, in id order;
//! - `PUT /v1/workers/{id}` — a worker's registration and heartbeat (the same call), body
//!   `{"address":"host:port","incarnation":"<uuid>"}`;
//! - `GET /healthz`.
//!
//! Every endpoint but `/healthz` (the job API's too) requires the cluster credential
//! ([`crate::credential`]).
//!
//! The documents are [`hdi_executor_api`]'s. A background ticker drops workers not heard from
//! within `--worker-timeout`. Malformed requests answer its [`Problem`] with a stable `code` and
//! the `field` at fault.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use hdi_executor_api::{Acknowledged, ClusterView, Problem, WorkerRegistration, WorkerView, paths};
use hdi_stdx::secret::Secret;
use uuid::Uuid;

use crate::cluster::{Membership, Registration, WorkerId};
use crate::process::{StopSignals, bind, lock_data_dir, parse_host_port};
use crate::sandbox::FilesRoot;

/// The driver's resolved configuration.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where to serve HTTP, `host:port` (port 0 picks a free one).
    pub listen: String,
    /// The data directory (created if missing, locked while running).
    pub data_dir: PathBuf,
    /// How long a silent worker stays a member.
    pub worker_timeout: Duration,
    /// The cluster credential every caller but `/healthz`'s must present.
    pub credential: Secret,
    /// Where jobs' file connectors resolve paths.
    pub files_root: PathBuf,
}

/// A request field the driver refuses, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field at fault (`body` when the body is not a JSON object).
    pub field: &'static str,
    /// Why, for people.
    pub detail: String,
}

impl InvalidField {
    fn new(field: &'static str, detail: impl Into<String>) -> InvalidField {
        InvalidField {
            field,
            detail: detail.into(),
        }
    }
}

/// Parses a registration body, naming the field at fault when it is malformed (which a derived
/// `Deserialize` would not).
///
/// # Errors
/// [`InvalidField`] for a body that is not a JSON object, or a missing or malformed field.
pub fn parse_registration(body: &[u8]) -> Result<WorkerRegistration, InvalidField> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| InvalidField::new("body", format!("body is not JSON: {error}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| InvalidField::new("body", "body must be a JSON object"))?;
    let address = match object.get("address") {
        Some(serde_json::Value::String(address)) => {
            parse_host_port(address).map_err(|why| InvalidField::new("address", why))?
        }
        Some(_) => return Err(InvalidField::new("address", "address must be a string")),
        None => return Err(InvalidField::new("address", "address is required")),
    };
    let incarnation = match object.get("incarnation") {
        Some(serde_json::Value::String(text)) => Uuid::parse_str(text).map_err(|error| {
            InvalidField::new("incarnation", format!("incarnation is not a UUID: {error}"))
        })?,
        Some(_) => {
            return Err(InvalidField::new(
                "incarnation",
                "incarnation must be a UUID string",
            ));
        }
        None => return Err(InvalidField::new("incarnation", "incarnation is required")),
    };
    Ok(WorkerRegistration {
        address,
        incarnation,
    })
}

/// Parses the `{id}` of `/v1/workers/{id}`: a positive 32-bit integer.
///
/// # Errors
/// [`InvalidField`] naming `id`.
pub fn parse_worker_id(text: &str) -> Result<WorkerId, InvalidField> {
    text.parse::<NonZeroU32>().map_err(|_| {
        InvalidField::new(
            "id",
            format!(
                "worker id must be an integer from 1 to {}, got '{text}'",
                u32::MAX
            ),
        )
    })
}

impl From<InvalidField> for Problem {
    fn from(error: InvalidField) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_field", error.detail).with_field(error.field)
    }
}

struct DriverState {
    membership: Mutex<Membership>,
    started_at: String,
}

impl DriverState {
    fn membership(&self) -> MutexGuard<'_, Membership> {
        // The membership stays consistent whatever panicked while holding it: each call is one
        // map operation.
        self.membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the driver until SIGTERM or SIGINT.
///
/// # Errors
/// When the data directory cannot be locked, the address cannot be bound, or serving fails.
pub async fn run(config: DriverConfig) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config.data_dir)?;
    let mut signals = StopSignals::watch()?;
    let (listener, local) = bind(&config.listen).await?;
    let state = Arc::new(DriverState {
        membership: Mutex::new(Membership::new(config.worker_timeout)),
        started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    });
    let files = FilesRoot::confined(&config.files_root).context("--files-root")?;
    let expiry = tokio::spawn(expire_workers(Arc::clone(&state)));
    let members = Arc::clone(&state);
    let runner = crate::jobs::ClusterRunner::new(
        &config.credential,
        Arc::new(move || {
            members
                .membership()
                .workers(Instant::now())
                .into_iter()
                .map(|w| w.address)
                .collect()
        }),
    )?;
    let jobs = crate::jobs::JobManager::open(&config.data_dir, files, Arc::new(runner))?;
    tracing::info!(
        worker_timeout = %humantime::format_duration(config.worker_timeout),
        data_dir = %config.data_dir.display(),
        "hdi-executor driver ready on {local}"
    );
    let served = hdi_http_serve::serve(
        listener,
        router(state)
            .merge(crate::jobs::router(Arc::clone(&jobs)))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(config.credential.clone()),
                crate::credential::require,
            )),
        hdi_http_serve::Limits::with_request_timeout(Duration::from_secs(60)),
        async move {
            let name = signals.recv().await;
            tracing::info!("{name}: stopping");
        },
    )
    .await;
    expiry.abort();
    jobs.stop_all().await;
    served.context("the HTTP server failed")?;
    tracing::info!("hdi-executor driver stopped");
    Ok(())
}

/// The driver's routes.
fn router(state: Arc<DriverState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(paths::CLUSTER, get(cluster))
        .route(paths::WORKER, put(register))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such resource or endpoint",
            )
        })
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok", "role": "driver"}))
}

async fn cluster(State(state): State<Arc<DriverState>>) -> axum::Json<ClusterView> {
    let now = Instant::now();
    let workers = state
        .membership()
        .workers(now)
        .into_iter()
        .map(|worker| WorkerView {
            id: worker.id.get(),
            address: worker.address,
            last_seen_ms: u64::try_from(worker.since_seen.as_millis()).unwrap_or(u64::MAX),
            incarnation: worker.incarnation,
        })
        .collect();
    axum::Json(ClusterView {
        role: "driver".into(),
        workers,
        started_at: state.started_at.clone(),
    })
}

async fn register(
    State(state): State<Arc<DriverState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Acknowledged>, Problem> {
    let id = parse_worker_id(&id)?;
    let registration = parse_registration(&body)?;
    let outcome = state.membership().register(
        id,
        &registration.address,
        registration.incarnation,
        Instant::now(),
    );
    let (address, incarnation) = (&registration.address, registration.incarnation);
    match outcome {
        Registration::Joined => {
            tracing::info!(worker = id, %address, %incarnation, "worker joined");
        }
        Registration::Restarted => {
            tracing::info!(worker = id, %address, %incarnation, "worker restarted (new incarnation)");
        }
        Registration::Renewed => {
            tracing::debug!(worker = id, "worker heartbeat");
        }
    }
    Ok(axum::Json(Acknowledged::OK))
}

/// Drops silent workers, checking several times per timeout so that one is dropped soon after
/// its timeout passes (listings never show it past the timeout anyway).
async fn expire_workers(state: Arc<DriverState>) {
    let timeout = state.membership().timeout();
    let period = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let expired = state.membership().expire(Instant::now());
        for worker in expired {
            tracing::warn!(
                worker = worker.id,
                address = %worker.address,
                incarnation = %worker.incarnation,
                "worker dropped: not heard from for {}",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(worker.since_seen.as_millis()).unwrap_or(u64::MAX)
                ))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_registration_parses() {
        let incarnation = Uuid::new_v4();
        let body = format!(r#"{{"address":"127.0.0.1:7078","incarnation":"{incarnation}"}}"#);
        assert_eq!(
            parse_registration(body.as_bytes()).unwrap(),
            WorkerRegistration {
                address: "127.0.0.1:7078".into(),
                incarnation
            }
        );
    }

    #[test]
    fn a_malformed_registration_names_its_field() {
        let uuid = Uuid::new_v4();
        let cases = [
            ("{not json".to_owned(), "body"),
            ("[1,2]".to_owned(), "body"),
            (format!(r#"{{"incarnation":"{uuid}"}}"#), "address"),
            (
                format!(r#"{{"address":7,"incarnation":"{uuid}"}}"#),
                "address",
            ),
            (
                format!(r#"{{"address":"nohost","incarnation":"{uuid}"}}"#),
                "address",
            ),
            (r#"{"address":"h:1"}"#.to_owned(), "incarnation"),
            (
                r#"{"address":"h:1","incarnation":"x"}"#.to_owned(),
                "incarnation",
            ),
            (
                r#"{"address":"h:1","incarnation":3}"#.to_owned(),
                "incarnation",
            ),
        ];
        for (body, field) in cases {
            let error = parse_registration(body.as_bytes()).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error:?}");
        }
    }

    #[test]
    fn worker_ids_are_positive() {
        assert_eq!(parse_worker_id("42").unwrap().get(), 42);
        for bad in ["0", "-1", "x", "4294967296", ""] {
            assert_eq!(parse_worker_id(bad).unwrap_err().field, "id", "{bad}");
        }
    }

    #[test]
    fn an_invalid_field_renders_as_a_problem() {
        let problem = Problem::from(InvalidField::new("id", "bad id"));
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Bad Request", "status": 400,
                "code": "invalid_field", "field": "id", "detail": "bad id"})
        );
    }
}
