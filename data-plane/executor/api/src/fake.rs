//! A fake driver for tests (feature `fake`): an axum server on 127.0.0.1 that answers the job API
//! and the cluster view on the driver's own route templates ([`paths`]) with this crate's
//! documents from a state the test sets, and records every request, so a test can assert exactly
//! what its client sent.
//!
//! It keeps jobs as statuses (a `PUT` of an existing id is `200` when name and SQL are the same,
//! else `409 job_conflict`); every job has the same progress history and preview, taken from the
//! state; a new job has committed as many batches as that history holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::cluster::WorkerView;
use crate::job::{
    Acknowledged, JobDefinition, JobList, JobStatus, Preview, ProgressList, QueryState,
    ValidateRequest,
};
use crate::{ClusterView, Problem, Progress, paths};

/// One request the fake got.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The JSON body (`Null` when there is none or it is not JSON).
    pub body: serde_json::Value,
}

impl Seen {
    /// A request as a test expects it.
    pub fn new(method: &str, uri: &str, body: serde_json::Value) -> Seen {
        Seen {
            method: method.to_owned(),
            uri: uri.to_owned(),
            body,
        }
    }
}

/// What the fake holds and answers; tests change it between calls.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Jobs by id.
    pub jobs: BTreeMap<String, JobStatus>,
    /// Every request, oldest first.
    pub requests: Vec<Seen>,
    /// When set, validation answers this problem.
    pub validate_error: Option<Problem>,
    /// When set, every `PUT` answers this problem.
    pub put_error: Option<Problem>,
    /// Every job's progress, oldest first.
    pub progress: Vec<Progress>,
    /// Every job's preview (its first `limit` rows are answered).
    pub preview: Preview,
    /// The live workers `GET /v1/cluster` lists.
    pub workers: Vec<WorkerView>,
    /// When set, a request without `Authorization: Bearer <credential>` answers `401` (it is
    /// still recorded).
    pub credential: Option<String>,
    /// The bearer token of every request, oldest first (`None` when it sent none).
    pub bearers: Vec<Option<String>>,
}

type Shared = Arc<Mutex<FakeState>>;

/// A running fake driver; it stops when dropped.
#[derive(Debug)]
pub struct FakeDriver {
    url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeDriver {
    /// Starts a fake driver on a free port of 127.0.0.1 (on the current tokio runtime).
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> std::io::Result<FakeDriver> {
        let state: Shared = Arc::default();
        let app = router(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeDriver { url, state, server })
    }

    /// Its base URL, `http://127.0.0.1:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// The requests since the last call, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state().requests)
    }
}

impl Drop for FakeDriver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

fn job_not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "job_not_found", "no such job").into_response()
}

fn invalid_body(error: &serde_json::Error) -> Response {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        format!("the body is not valid: {error}"),
    )
    .into_response()
}

/// Records every request (method, path and query, JSON body, bearer), then refuses it with
/// `401` when the state asks for a credential it did not present.
async fn record(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return invalid_request("the body could not be read");
    };
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    {
        let mut d = lock(&state);
        d.bearers.push(bearer.clone());
        d.requests.push(Seen {
            method: parts.method.as_str().to_owned(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
        if d.credential.is_some() && d.credential != bearer {
            return Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "no credential")
                .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid_request(detail: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_body", detail.to_owned()).into_response()
}

/// `?limit=N` of the progress and preview routes (20 when absent or not a number).
#[derive(Deserialize)]
struct Limit {
    limit: Option<String>,
}

impl Limit {
    fn get(&self) -> usize {
        self.limit
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20)
    }
}

/// The routes of [`paths`], as the driver registers them.
fn router(state: Shared) -> axum::Router {
    axum::Router::new()
        .route(paths::VALIDATE, post(validate))
        .route(paths::JOBS, get(list))
        .route(paths::JOB, get(get_one).put(put).delete(delete))
        .route(paths::JOB_PROGRESS, get(progress))
        .route(paths::JOB_PREVIEW, get(preview))
        .route(paths::CLUSTER, get(cluster))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such resource or endpoint",
            )
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .with_state(state)
}

async fn validate(State(state): State<Shared>, body: Bytes) -> Response {
    if let Err(error) = serde_json::from_slice::<ValidateRequest>(&body) {
        return invalid_body(&error);
    }
    match lock(&state).validate_error.clone() {
        Some(problem) => problem.into_response(),
        None => json(StatusCode::OK, &Acknowledged::OK),
    }
}

async fn put(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut d = lock(&state);
    if let Some(problem) = d.put_error.clone() {
        return problem.into_response();
    }
    let definition: JobDefinition = match serde_json::from_slice(&body) {
        Ok(definition) => definition,
        Err(error) => return invalid_body(&error),
    };
    let digest = definition.digest();
    if let Some(job) = d.jobs.get_mut(&id) {
        // As the driver: the same job with other access is updated in place.
        return if job.name == definition.name && job.sql == definition.sql {
            job.definition_digest = Some(digest);
            json(StatusCode::OK, job)
        } else {
            Problem::new(StatusCode::CONFLICT, "job_conflict", "other definition").into_response()
        };
    }
    let job = JobStatus {
        id: id.clone(),
        name: definition.name,
        sql: definition.sql,
        state: QueryState::Running,
        error: None,
        batches_committed: u64::try_from(d.progress.len()).unwrap_or(u64::MAX),
        last_progress: d.progress.last().cloned(),
        submitted_at: "2025-01-01T00:00:00Z".to_owned(),
        definition_digest: Some(digest),
    };
    d.jobs.insert(id, job.clone());
    json(StatusCode::CREATED, &job)
}

async fn list(State(state): State<Shared>) -> Response {
    let jobs = lock(&state).jobs.values().cloned().collect();
    json(StatusCode::OK, &JobList { jobs })
}

async fn get_one(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&state).jobs.get(&id) {
        Some(job) => json(StatusCode::OK, job),
        None => job_not_found(),
    }
}

async fn progress(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(limit): Query<Limit>,
) -> Response {
    let d = lock(&state);
    if !d.jobs.contains_key(&id) {
        return job_not_found();
    }
    let start = d.progress.len().saturating_sub(limit.get());
    json(
        StatusCode::OK,
        &ProgressList {
            progress: d.progress[start..].to_vec(),
        },
    )
}

async fn preview(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(limit): Query<Limit>,
) -> Response {
    let d = lock(&state);
    if !d.jobs.contains_key(&id) {
        return job_not_found();
    }
    let rows = d.preview.rows.iter().take(limit.get()).cloned().collect();
    json(
        StatusCode::OK,
        &Preview {
            columns: d.preview.columns.clone(),
            rows,
        },
    )
}

async fn delete(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&state).jobs.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => job_not_found(),
    }
}

async fn cluster(State(state): State<Shared>) -> Response {
    json(
        StatusCode::OK,
        &ClusterView {
            role: "driver".to_owned(),
            workers: lock(&state).workers.clone(),
            started_at: "2025-01-01T00:00:00Z".to_owned(),
        },
    )
}
