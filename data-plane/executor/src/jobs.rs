//! The driver's jobs: their definitions (kept in `<data-dir>/jobs/<id>/job.json`, so a restarted
//! driver resumes every job from its checkpoint in `<data-dir>/jobs/<id>/checkpoint`), the running
//! queries, the job API, and the runner that sends tasks to workers.
//!
//! The job API's routes and documents are [`hdi_executor_api`]'s (see its crate doc): errors are
//! its [`Problem`], SQL errors with `line` and `column`; an internal fault answers a generic
//! detail and logs its cause.
//!
//! Tasks go to the live workers round-robin at each batch (so a worker that joins or leaves
//! changes the next batch's assignment); a task whose worker fails is retried on another. State
//! partitions go to their owners (`POST /v1/state`, see [`crate::stateful`]).

use datafusion::arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use hdi_executor_api::{
    Acknowledged, JobDefinition, JobList, JobStatus, Preview, Problem, ProgressList,
    ValidateRequest, paths,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::query::{
    Query, QueryConfig, QueryHandle, QueryState, StateCallError, TaskRunner, validate,
};
use crate::sandbox::{FilesRoot, JobScope, KafkaScope};
use crate::sink::write_atomic;
use crate::source::ConsumerPool;
use crate::sql::JobError;
use crate::stateful::{StateReply, StateRequest};
use crate::task::{TaskOutput, TaskRequest};
use hdi_stdx::secret::Secret;

/// A job's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDef {
    /// Id (chosen by the control plane).
    pub id: String,
    /// Name.
    pub name: String,
    /// The script.
    pub sql: String,
    /// Default Kafka cluster.
    pub bootstrap_servers: Option<String>,
    /// The Kafka clusters its tables may name (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kafka: Option<Vec<String>>,
    /// When it was submitted (RFC 3339).
    pub submitted_at: String,
    /// How to reach secured Kafka clusters (kept with the definition, in the driver's data
    /// directory, so a restarted driver reaches them again).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kafka_access: std::collections::BTreeMap<String, hdi_executor_api::KafkaProperties>,
}

impl JobDef {
    /// The definition as the control plane sends it.
    fn definition(&self) -> JobDefinition {
        JobDefinition {
            name: self.name.clone(),
            sql: self.sql.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            allowed_kafka: self.allowed_kafka.clone(),
            kafka_access: self.kafka_access.clone(),
        }
    }
}

struct Entry {
    def: JobDef,
    handle: Arc<QueryHandle>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The driver's jobs.
pub struct JobManager {
    dir: PathBuf,
    files: FilesRoot,
    runner: Arc<dyn TaskRunner>,
    pool: Arc<ConsumerPool>,
    jobs: Mutex<BTreeMap<String, Entry>>,
    /// Counted by every job's committed batches; `GET /metrics`.
    metrics: Arc<crate::metrics::ExecutorMetrics>,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl JobManager {
    /// Opens `<data_dir>/jobs` and starts every job defined there.
    pub fn open(
        data_dir: &std::path::Path,
        files: FilesRoot,
        runner: Arc<dyn TaskRunner>,
    ) -> anyhow::Result<Arc<JobManager>> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let manager = Arc::new(JobManager {
            dir: dir.clone(),
            files,
            runner,
            pool: ConsumerPool::shared(),
            jobs: Mutex::new(BTreeMap::new()),
            metrics: Arc::default(),
        });
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path().join("job.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match serde_json::from_slice::<JobDef>(&bytes) {
                Ok(def) => {
                    tracing::info!(job = %def.id, name = %def.name, "resuming job");
                    manager.start(def);
                }
                Err(error) => tracing::warn!("ignoring {}: {error}", path.display()),
            }
        }
        Ok(manager)
    }

    /// What a job may touch: this driver's files root and the Kafka clusters it was given.
    fn scope(&self, allowed_kafka: Option<&[String]>) -> JobScope {
        JobScope {
            files: self.files.clone(),
            kafka: allowed_kafka.map_or_else(KafkaScope::any, |clusters| {
                KafkaScope::only(clusters.iter().map(String::as_str))
            }),
        }
    }

    /// Validates a job's SQL within its scope, as a submission would run it.
    async fn check(
        &self,
        sql: &str,
        bootstrap_servers: Option<&str>,
        allowed_kafka: Option<&[String]>,
    ) -> Result<(), Problem> {
        validate(
            sql,
            bootstrap_servers,
            &self.scope(allowed_kafka),
            &self.pool,
        )
        .await?;
        Ok(())
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `def` and adds it to the jobs.
    fn start(self: &Arc<Self>, def: JobDef) {
        let entry = self.entry(def);
        self.jobs().insert(entry.def.id.clone(), entry);
    }

    /// Starts running `def`; the caller adds the entry to the jobs.
    fn entry(self: &Arc<Self>, def: JobDef) -> Entry {
        crate::kafka_access::register(&def.kafka_access);
        let handle = Arc::new(QueryHandle::counted(Arc::clone(&self.metrics)));
        let (stop, stop_rx) = watch::channel(false);
        let config = QueryConfig {
            id: def.id.clone(),
            name: def.name.clone(),
            script: def.sql.clone(),
            bootstrap: def.bootstrap_servers.clone(),
            checkpoint: self.dir.join(&def.id).join("checkpoint"),
            scope: self.scope(def.allowed_kafka.as_deref()),
        };
        let runner = Arc::clone(&self.runner);
        let pool = Arc::clone(&self.pool);
        let query_handle = Arc::clone(&handle);
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match Query::start(
                    config.clone(),
                    Arc::clone(&runner),
                    Arc::clone(&pool),
                    Arc::clone(&query_handle),
                )
                .await
                {
                    Ok(query) => {
                        let state = query.run(stop_rx.clone()).await;
                        tracing::info!(job = %config.id, ?state, "job ended");
                        return;
                    }
                    Err(error) if error.code == "kafka_unavailable" || error.code == "internal" => {
                        // The cluster may come back: keep trying.
                        tracing::warn!(job = %config.id, "cannot start the job yet: {error}");
                        query_handle
                            .status
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .error = Some(crate::query::ErrorView {
                            code: error.code.into(),
                            detail: error.message.clone(),
                        });
                        let mut stop = stop_rx.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop.changed() => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(15));
                    }
                    Err(error) => {
                        tracing::error!(job = %config.id, "the job cannot run: {error}");
                        let mut status = query_handle
                            .status
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        status.state = QueryState::Failed;
                        status.error = Some(crate::query::ErrorView {
                            code: error.code.into(),
                            detail: error.message.clone(),
                        });
                        return;
                    }
                }
            }
        });
        Entry {
            def,
            handle,
            stop,
            task,
        }
    }

    fn status(entry: &Entry) -> JobStatus {
        let status = entry
            .handle
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        JobStatus {
            id: entry.def.id.clone(),
            name: entry.def.name.clone(),
            sql: entry.def.sql.clone(),
            state: status.state,
            error: status.error,
            batches_committed: status.batches_committed,
            last_progress: entry.handle.recent(1).pop(),
            submitted_at: entry.def.submitted_at.clone(),
            definition_digest: Some(entry.def.definition().digest()),
        }
    }

    /// Stops every job (driver shutdown).
    pub async fn stop_all(&self) {
        let tasks: Vec<_> = {
            let mut jobs = self.jobs();
            std::mem::take(&mut *jobs)
                .into_values()
                .map(|e| {
                    let _ = e.stop.send(true);
                    e.task
                })
                .collect()
        };
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The job API's routes.
pub fn router(manager: Arc<JobManager>) -> Router {
    Router::new()
        .route(paths::VALIDATE, post(validate_job))
        .route(paths::JOBS, get(list_jobs))
        .route(paths::JOB, get(get_job).put(put_job).delete(delete_job))
        .route(paths::JOB_PROGRESS, get(job_progress))
        .route(paths::JOB_PREVIEW, get(job_preview))
        .route("/metrics", get(metrics))
        .with_state(manager)
}

/// A refused job: `503` for faults that may pass (Kafka unavailable, internal), else `400`,
/// with the script position when known.
impl From<JobError> for Problem {
    fn from(error: JobError) -> Problem {
        let status = if error.code == "kafka_unavailable" || error.code == "internal" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        let position = |n: Option<u64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Problem::new(status, error.code, error.message)
            .at(position(error.line), position(error.column))
    }
}

/// `500 internal` for a fault of this driver: the cause goes to the log, not to the caller.
fn internal(job: &str, what: &str, error: &dyn std::fmt::Display) -> Problem {
    tracing::error!(job, "{what}: {error}");
    Problem::internal(format!("{what}; see the driver's log"))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not valid: {e}"),
        )
    })
}

async fn validate_job(
    State(manager): State<Arc<JobManager>>,
    bytes: Bytes,
) -> Result<axum::Json<Acknowledged>, Problem> {
    let request: ValidateRequest = body(&bytes)?;
    crate::kafka_access::register(&request.kafka_access);
    manager
        .check(
            &request.sql,
            request.bootstrap_servers.as_deref(),
            request.allowed_kafka.as_deref(),
        )
        .await?;
    Ok(axum::Json(Acknowledged::OK))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn put_job(
    State(manager): State<Arc<JobManager>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    if !valid_id(&id) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "a job id is 1-64 letters, digits, '-' or '_'",
        ));
    }
    let request: JobDefinition = body(&bytes)?;
    // The newest credentials win, also for a job already running (a PUT of the same job).
    crate::kafka_access::register(&request.kafka_access);
    if let Some(entry) = manager.jobs().get_mut(&id) {
        let held = entry.def.definition();
        if !held.same_job(&request) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "job_conflict",
                format!("job {id} exists with another definition"),
            ));
        }
        if held != request {
            // The same job with other access (rotated credentials or CA certificates, another
            // set of the workspace's clusters): kept with the job, so a restarted driver uses
            // it too. Credentials reach the connections the query opens from now on; the
            // allowed clusters are checked when the job next starts (the running query keeps
            // the scope it was started with).
            let mut def = entry.def.clone();
            def.allowed_kafka = request.allowed_kafka;
            def.kafka_access = request.kafka_access;
            let json =
                serde_json::to_vec(&def).map_err(|e| internal(&id, "cannot save the job", &e))?;
            write_atomic(&manager.dir.join(&id).join("job.json"), &json)
                .map_err(|e| internal(&id, "cannot save the job", &format!("{e:#}")))?;
            tracing::info!(job = %id, "job's Kafka access updated");
            entry.def = def;
        }
        return Ok((StatusCode::OK, axum::Json(JobManager::status(entry))).into_response());
    }
    manager
        .check(
            &request.sql,
            request.bootstrap_servers.as_deref(),
            request.allowed_kafka.as_deref(),
        )
        .await?;
    let def = JobDef {
        id: id.clone(),
        name: request.name,
        sql: request.sql,
        bootstrap_servers: request.bootstrap_servers,
        allowed_kafka: request.allowed_kafka,
        kafka_access: request.kafka_access,
        submitted_at: crate::query::rfc3339_ms(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
        ),
    };
    // Check, write and start under the jobs lock: a concurrent PUT of the same id with another
    // definition must neither overwrite job.json nor start a second query.
    let mut jobs = manager.jobs();
    if jobs.contains_key(&id) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "job_conflict",
            format!("job {id} was just created"),
        ));
    }
    let dir = manager.dir.join(&id);
    let unsaved = |e: &dyn std::fmt::Display| internal(&id, "cannot save the job", e);
    std::fs::create_dir_all(&dir).map_err(|e| unsaved(&format!("{}: {e}", dir.display())))?;
    let json = serde_json::to_vec(&def).map_err(|e| unsaved(&e))?;
    write_atomic(&dir.join("job.json"), &json).map_err(|e| unsaved(&format!("{e:#}")))?;
    tracing::info!(job = %id, name = %def.name, "job submitted");
    let entry = manager.entry(def);
    let status = JobManager::status(&entry);
    jobs.insert(id, entry);
    drop(jobs);
    Ok((StatusCode::CREATED, axum::Json(status)).into_response())
}

async fn list_jobs(State(manager): State<Arc<JobManager>>) -> axum::Json<JobList> {
    let jobs = manager.jobs().values().map(JobManager::status).collect();
    axum::Json(JobList { jobs })
}

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "job_not_found",
        format!("no job {id}"),
    )
}

async fn get_job(
    State(manager): State<Arc<JobManager>>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobStatus>, Problem> {
    let jobs = manager.jobs();
    let entry = jobs.get(&id).ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(JobManager::status(entry)))
}

async fn job_progress(
    State(manager): State<Arc<JobManager>>,
    Path(id): Path<String>,
    UrlQuery(limit): UrlQuery<Limit>,
) -> Result<axum::Json<ProgressList>, Problem> {
    let jobs = manager.jobs();
    let entry = jobs.get(&id).ok_or_else(|| not_found(&id))?;
    let progress = entry
        .handle
        .recent(limit.limit.unwrap_or(20).clamp(1, 1000));
    Ok(axum::Json(ProgressList { progress }))
}

async fn job_preview(
    State(manager): State<Arc<JobManager>>,
    Path(id): Path<String>,
    UrlQuery(limit): UrlQuery<Limit>,
) -> Result<axum::Json<Preview>, Problem> {
    let sink = {
        let jobs = manager.jobs();
        let entry = jobs.get(&id).ok_or_else(|| not_found(&id))?;
        entry
            .handle
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    let rows = sink
        .as_ref()
        .and_then(|s| {
            s.preview()
                .map(|m| m.rows(limit.limit.unwrap_or(20).clamp(1, 1000)))
        })
        .unwrap_or_default();
    Ok(axum::Json(Preview::of(rows)))
}

/// `GET /metrics`: the jobs' Prometheus metrics (`crate::metrics`), behind the credential as
/// every route but `/healthz`.
async fn metrics(State(manager): State<Arc<JobManager>>) -> axum::response::Response {
    hdi_http_serve::metrics::exposition_response(manager.metrics.exposition())
}

async fn delete_job(
    State(manager): State<Arc<JobManager>>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let entry = manager.jobs().remove(&id).ok_or_else(|| not_found(&id))?;
    let _ = entry.stop.send(true);
    entry.task.abort();
    let _ = entry.task.await;
    manager.metrics.forget(&id, &entry.def.name);
    let dir = manager.dir.join(&id);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        return Err(internal(
            &id,
            "cannot remove the job's directory",
            &format!("{}: {error}", dir.display()),
        ));
    }
    tracing::info!(job = %id, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Sends tasks to the live workers.
pub struct ClusterRunner {
    workers: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    client: reqwest::Client,
    next: AtomicUsize,
}

impl std::fmt::Debug for ClusterRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRunner").finish_non_exhaustive()
    }
}

/// How long a task may run on a worker.
const TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a task waits for a worker to appear.
const NO_WORKER_WAIT: Duration = Duration::from_secs(60);

impl ClusterRunner {
    /// A runner over the workers `workers` lists (addresses, in id order), calling them with the
    /// cluster credential.
    pub fn new(
        credential: &Secret,
        workers: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    ) -> anyhow::Result<ClusterRunner> {
        Ok(ClusterRunner {
            workers,
            client: crate::credential::client(
                credential,
                reqwest::Client::builder()
                    .timeout(TASK_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none()),
            )?,
            next: AtomicUsize::new(0),
        })
    }

    async fn run_task(&self, request: TaskRequest) -> anyhow::Result<TaskOutput> {
        let body = serde_json::to_vec(&request)?;
        let waiting_since = Instant::now();
        let mut attempts = 0;
        loop {
            let workers = (self.workers)();
            if workers.is_empty() {
                if waiting_since.elapsed() > NO_WORKER_WAIT {
                    bail!("no worker has been live for {NO_WORKER_WAIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let worker = &workers[n % workers.len()];
            let url = format!("http://{worker}/v1/tasks");
            let outcome = async {
                let response = self.client.post(&url).body(body.clone()).send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                if !status.is_success() {
                    bail!("worker {worker} answered {status}: {}", refusal(&bytes));
                }
                TaskOutput::decode(&bytes)
            }
            .await;
            match outcome {
                Ok(output) => return Ok(output),
                Err(error) => {
                    attempts += 1;
                    tracing::warn!(%worker, batch = request.batch_id, attempts, "task failed, retrying on another worker: {error:#}");
                    if attempts >= 10 {
                        return Err(error.context(format!(
                            "a task of batch {} failed {attempts} times",
                            request.batch_id
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(200 * attempts)).await;
                }
            }
        }
    }
}

impl TaskRunner for ClusterRunner {
    fn run(&self, request: TaskRequest) -> BoxFuture<'_, anyhow::Result<TaskOutput>> {
        Box::pin(self.run_task(request))
    }

    fn state_workers(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let waiting_since = Instant::now();
            loop {
                let workers = (self.workers)();
                if !workers.is_empty() {
                    return Ok(workers);
                }
                if waiting_since.elapsed() > NO_WORKER_WAIT {
                    bail!("no worker has been live for {NO_WORKER_WAIT:?}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    fn run_state(
        &self,
        worker: String,
        request: Arc<StateRequest>,
        schema: SchemaRef,
    ) -> BoxFuture<'_, Result<StateReply, StateCallError>> {
        Box::pin(async move {
            let body = request.encode(&schema).map_err(StateCallError::Failed)?;
            let url = format!("http://{worker}/v1/state");
            let response = self
                .client
                .post(&url)
                .body(body)
                .send()
                .await
                .map_err(|e| StateCallError::Failed(e.into()))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| StateCallError::Failed(e.into()))?;
            if status == reqwest::StatusCode::CONFLICT {
                return Err(StateCallError::Missing(refusal(&bytes)));
            }
            if !status.is_success() {
                return Err(StateCallError::Failed(anyhow::anyhow!(
                    "worker {worker} answered {status}: {}",
                    refusal(&bytes)
                )));
            }
            StateReply::decode(&bytes).map_err(StateCallError::Failed)
        })
    }
}

/// What a worker's error answer says: its problem's detail (the body as text if it is not one).
fn refusal(body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) if !problem.code.is_empty() => problem.detail,
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}
