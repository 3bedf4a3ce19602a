//! Streaming SQL jobs of Spark clusters over REST (`/v1/workspaces/{ws}/clusters/{cluster}/jobs`),
//! with their wire conversions. Submission answers `201` with the job and its `Location`; status,
//! progress and preview come live from the cluster's executor driver.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hdi_api as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::model::JobRunState;
use crate::service::{JobInput, JobView, PageRequest};

/// How many progress documents or preview rows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// At most this many (1-1000, default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn state_to_wire(state: JobRunState) -> api::JobState {
    match state {
        JobRunState::Pending => api::JobState::Pending,
        JobRunState::Running => api::JobState::Running,
        JobRunState::Stopped => api::JobState::Stopped,
        JobRunState::Failed => api::JobState::Failed,
        JobRunState::Completed => api::JobState::Completed,
        JobRunState::Unknown => api::JobState::Unknown,
    }
}

fn job_to_wire(view: JobView) -> api::Job {
    let JobView { job, status } = view;
    api::Job {
        id: job.id.into_uuid(),
        name: job.name,
        cluster: job.cluster,
        kafka_cluster: job.kafka_cluster,
        sql: job.sql,
        created_at: job.created_at,
        created_by: job.created_by,
        status: api::JobStatus {
            state: state_to_wire(status.state),
            error: status
                .error
                .map(|(code, detail)| api::JobError { code, detail }),
            batches_committed: status.batches_committed,
            last_progress: status.last_progress.map(progress_to_wire),
        },
    }
}

/// Submits a streaming SQL job to a Running Spark cluster: its driver validates the SQL, the job
/// is stored, then started on the driver (or later, by the job reconciler).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per user, 24 h) get the first answer instead of acting twice")),
    request_body = api::JobCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Submitted; `Location` names the job", body = api::Job,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "An invalid field (`name`, `sql`, `kafka_cluster`), `invalid_sql` (with `sql_code`, `line`, `column` from the executor) or `not_a_spark_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "`job_exists`, `cluster_not_ready`, or `idempotency_key_in_use`"),
        (status = 422, description = "`idempotency_key_reused`: the Idempotency-Key was used for a different request"),
        (status = 502, description = "The driver answered with an error (`driver_error`)"),
        (status = 503, description = "The driver cannot be reached (`driver_unavailable`)")))]
pub async fn job_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::JobCreate>,
) -> Result<Response, ApiError> {
    let input = JobInput {
        name: body.name,
        sql: body.sql,
        kafka_cluster: body.kafka_cluster,
    };
    let view = state
        .service
        .job_submit(&caller, &ws, &cluster, input)
        .await?;
    let location = format!(
        "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{}",
        view.job.id
    );
    let mut response = (StatusCode::CREATED, Json(job_to_wire(view))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Lists a Spark cluster's jobs by name, with their live status.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of jobs; a status is `Unknown` while the driver does not answer", body = api::JobList),
        (status = 400, description = "Bad paging parameters, or `not_a_spark_cluster`"),
        (status = 404, description = "No such workspace or cluster")))]
pub async fn jobs_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::JobList>, ApiError> {
    let page = PageRequest {
        page_size: params.page_size,
        page_token: params.page_token,
    };
    let (items, next) = state
        .service
        .jobs_list(&caller, &ws, &cluster, page)
        .await?;
    Ok(Json(api::JobList {
        items: items.into_iter().map(job_to_wire).collect(),
        next_page_token: next,
    }))
}

/// One job, by id or name, with its live status.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"),
           ("job" = String, Path, description = "Job id or name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = api::Job),
        (status = 400, description = "`not_a_spark_cluster`"),
        (status = 404, description = "No such workspace, cluster or job")))]
pub async fn job_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, job)): ApiPath<(String, String, String)>,
) -> Result<Json<api::Job>, ApiError> {
    let view = state.service.job_get(&caller, &ws, &cluster, &job).await?;
    Ok(Json(job_to_wire(view)))
}

/// The latest micro-batch progress documents of a job, oldest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/progress", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"),
           ("job" = String, Path, description = "Job id or name"), LimitParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Progress documents (none while the job is Pending)", body = api::JobProgressList),
        (status = 400, description = "A bad `limit`, or `not_a_spark_cluster`"),
        (status = 404, description = "No such workspace, cluster or job"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "The driver answered with an error (`driver_error`)"),
        (status = 503, description = "The driver cannot be reached (`driver_unavailable`)")))]
pub async fn job_progress(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, job)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> Result<Json<api::JobProgressList>, ApiError> {
    let progress = state
        .service
        .job_progress(&caller, &ws, &cluster, &job, params.limit)
        .await?;
    Ok(Json(api::JobProgressList {
        progress: progress.into_iter().map(progress_to_wire).collect(),
    }))
}

/// The latest rows a job wrote.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/preview", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"),
           ("job" = String, Path, description = "Job id or name"), LimitParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Columns and rows (none while the job is Pending)", body = api::JobPreview),
        (status = 400, description = "A bad `limit`, or `not_a_spark_cluster`"),
        (status = 404, description = "No such workspace, cluster or job"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "The driver answered with an error (`driver_error`)"),
        (status = 503, description = "The driver cannot be reached (`driver_unavailable`)")))]
pub async fn job_preview(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, job)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> Result<Json<api::JobPreview>, ApiError> {
    let preview = state
        .service
        .job_preview(&caller, &ws, &cluster, &job, params.limit)
        .await?;
    Ok(Json(api::JobPreview {
        columns: preview.columns,
        rows: preview.rows,
    }))
}

/// Stops and deletes a job (by id or name) with its checkpoint.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}", tag = "jobs",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Spark cluster name"),
           ("job" = String, Path, description = "Job id or name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted; the driver stops the job now or when the job reconciler reaches it"),
        (status = 400, description = "`not_a_spark_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace, cluster or job")))]
pub async fn job_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, job)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .job_delete(&caller, &ws, &cluster, &job)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A progress document as the driver wrote it, read as the wire type (members it lacks take
/// their defaults; members the wire type does not name are dropped). A document that does not
/// read at all (a member of another type: a driver of another version) is logged, not hidden:
/// the answer then carries an empty progress for that batch.
/// The driver's progress document as the API's: the same fields, minus the job's id and name
/// (the URL names the job).
fn progress_to_wire(p: crate::driver::Progress) -> api::JobProgress {
    let d = p.duration_ms;
    api::JobProgress {
        batch_id: p.batch_id,
        timestamp: p.timestamp,
        num_input_rows: p.num_input_rows,
        input_rows_per_second: p.input_rows_per_second,
        processed_rows_per_second: p.processed_rows_per_second,
        duration_ms: api::JobBatchDurations {
            trigger_execution: d.trigger_execution,
            latest_offset: d.latest_offset,
            wal_commit: d.wal_commit,
            execution: d.execution,
            get_batch: d.get_batch,
            state_merge: d.state_merge,
            query_planning: d.query_planning,
            add_batch: d.add_batch,
            commit: d.commit,
        },
        event_time: api::JobEventTime {
            min: p.event_time.min,
            max: p.event_time.max,
            watermark: p.event_time.watermark,
        },
        state_operators: p
            .state_operators
            .into_iter()
            .map(|s| api::JobStateOperator {
                num_rows_total: s.num_rows_total,
                num_rows_updated: s.num_rows_updated,
                memory_used_bytes: s.memory_used_bytes,
                num_rows_dropped_by_watermark: s.num_rows_dropped_by_watermark,
                num_state_partitions: s.num_state_partitions,
                partition_owners: s.partition_owners,
            })
            .collect(),
        sources: p
            .sources
            .into_iter()
            .map(|s| api::JobSourceProgress {
                description: s.description,
                start_offset: s.start_offset,
                end_offset: s.end_offset,
                num_input_rows: s.num_input_rows,
                malformed_rows: s.malformed_rows,
            })
            .collect(),
        sink: api::JobSinkProgress {
            description: p.sink.description,
            num_output_rows: p.sink.num_output_rows,
        },
    }
}
