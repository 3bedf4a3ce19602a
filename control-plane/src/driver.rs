//! A small client for the job API of an executor driver (`hdi-executor driver`), used by the job
//! service and the job reconciler.
//!
//! The driver owns running jobs; the control plane only submits (`PUT /v1/jobs/{id}`, idempotent
//! for an identical definition), lists, reads, validates and deletes them. Progress and preview
//! documents are passed through as opaque JSON. Every call has its own deadline; a driver that
//! does not answer in time is [`DriverError::Unreachable`], one that answers with a problem
//! document is [`DriverError::Refused`] with the problem's fields.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Deadline of status reads (a page of jobs shows `Unknown` rather than hang).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of validation and submission (planning SQL may look at Kafka).
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No HTTP answer in time (connection refused, timeout, ...).
    #[error("the driver at {url} cannot be reached: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport failure, for people.
        reason: String,
    },
    /// The driver answered with an error status and a problem document.
    #[error("the driver refused ({status} {code}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The problem's stable code, e.g. `sql_error`, `job_not_found`.
        code: String,
        /// The problem's detail.
        detail: String,
        /// 1-based line of a SQL error, when known.
        line: Option<u32>,
        /// 1-based column of a SQL error, when known.
        column: Option<u32>,
    },
    /// The driver answered something this client cannot read.
    #[error("unexpected answer from the driver at {url} (HTTP {status}): {body}")]
    Protocol {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl DriverError {
    /// Whether the driver answered 404 (unknown job).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DriverError::Refused { status: 404, .. })
    }
}

/// A job definition as the driver takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobDefinition {
    /// Name.
    pub name: String,
    /// SQL text.
    pub sql: String,
    /// Kafka bootstrap servers, `host:port,host:port`.
    pub bootstrap_servers: Option<String>,
}

/// An error a job stopped with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DriverJobError {
    /// Stable code.
    #[serde(default)]
    pub code: String,
    /// For people.
    #[serde(default)]
    pub detail: String,
}

/// A job as the driver reports it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DriverJob {
    /// The control plane's job id.
    pub id: Uuid,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `running`, `stopped`, `failed` or `completed`.
    #[serde(default)]
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<DriverJobError>,
    /// Micro-batches committed so far.
    #[serde(default)]
    pub batches_committed: u64,
    /// The last progress document.
    #[serde(default)]
    pub last_progress: Option<serde_json::Value>,
    /// When the driver got it.
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
}

/// What a submission did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The driver created and started the job.
    Created,
    /// The driver already had this exact definition.
    Unchanged,
}

/// Rows of a job's output.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DriverPreview {
    /// Column names in order.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows as objects keyed by column.
    #[serde(default)]
    pub rows: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct JobsBody {
    jobs: Vec<DriverJob>,
}

#[derive(Deserialize)]
struct ProgressBody {
    progress: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    column: Option<u32>,
}

/// A client for one driver's job API.
#[derive(Clone, Debug)]
pub struct DriverClient {
    http: reqwest::Client,
    base: String,
}

impl DriverClient {
    /// A client for the driver whose job API is at `base_url` (`http://host:port`), sharing the
    /// connection pool of `http`.
    pub fn new(http: reqwest::Client, base_url: &str) -> DriverClient {
        DriverClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A connection pool for driver clients.
    pub fn pool() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(STATUS_TIMEOUT)
            .build()
            .unwrap_or_default()
    }

    /// `POST /v1/jobs/validate`.
    ///
    /// # Errors
    /// [`DriverError::Refused`] with the SQL error, or a transport or protocol error.
    pub async fn validate(
        &self,
        sql: &str,
        bootstrap_servers: Option<&str>,
    ) -> Result<(), DriverError> {
        let body = serde_json::json!({"sql": sql, "bootstrap_servers": bootstrap_servers});
        self.send(
            Method::POST,
            "/v1/jobs/validate",
            Some(&body),
            SUBMIT_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    /// `PUT /v1/jobs/{id}`: creates and starts the job, or finds the identical one there.
    ///
    /// # Errors
    /// [`DriverError::Refused`] (`job_conflict`, SQL errors), or a transport or protocol error.
    pub async fn job_put(
        &self,
        id: Uuid,
        definition: &JobDefinition,
    ) -> Result<Submitted, DriverError> {
        let (status, _) = self
            .send(
                Method::PUT,
                &format!("/v1/jobs/{id}"),
                Some(definition),
                SUBMIT_TIMEOUT,
            )
            .await?;
        Ok(if status == StatusCode::CREATED {
            Submitted::Created
        } else {
            Submitted::Unchanged
        })
    }

    /// `GET /v1/jobs`.
    ///
    /// # Errors
    /// A transport, protocol or refusal error.
    pub async fn jobs_list(&self) -> Result<Vec<DriverJob>, DriverError> {
        let (_, bytes) = self
            .send(Method::GET, "/v1/jobs", None::<&()>, STATUS_TIMEOUT)
            .await?;
        self.decode::<JobsBody>("/v1/jobs", &bytes).map(|b| b.jobs)
    }

    /// `GET /v1/jobs/{id}`; `None` when the driver does not have it.
    ///
    /// # Errors
    /// A transport, protocol or refusal error other than 404.
    pub async fn job_get(&self, id: Uuid) -> Result<Option<DriverJob>, DriverError> {
        let path = format!("/v1/jobs/{id}");
        match self
            .send(Method::GET, &path, None::<&()>, STATUS_TIMEOUT)
            .await
        {
            Ok((_, bytes)) => self.decode(&path, &bytes).map(Some),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /v1/jobs/{id}/progress?limit=N`, oldest first.
    ///
    /// # Errors
    /// As [`DriverClient::jobs_list`]; 404 is [`DriverError::Refused`].
    pub async fn job_progress(
        &self,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, DriverError> {
        let path = format!("/v1/jobs/{id}/progress?limit={limit}");
        let (_, bytes) = self
            .send(Method::GET, &path, None::<&()>, STATUS_TIMEOUT)
            .await?;
        self.decode::<ProgressBody>(&path, &bytes)
            .map(|b| b.progress)
    }

    /// `GET /v1/jobs/{id}/preview?limit=N`.
    ///
    /// # Errors
    /// As [`DriverClient::jobs_list`]; 404 is [`DriverError::Refused`].
    pub async fn job_preview(&self, id: Uuid, limit: u32) -> Result<DriverPreview, DriverError> {
        let path = format!("/v1/jobs/{id}/preview?limit={limit}");
        let (_, bytes) = self
            .send(Method::GET, &path, None::<&()>, STATUS_TIMEOUT)
            .await?;
        self.decode(&path, &bytes)
    }

    /// `DELETE /v1/jobs/{id}`: stops the job and removes it and its checkpoint; `false` when the
    /// driver did not have it.
    ///
    /// # Errors
    /// A transport, protocol or refusal error other than 404.
    pub async fn job_delete(&self, id: Uuid) -> Result<bool, DriverError> {
        match self
            .send(
                Method::DELETE,
                &format!("/v1/jobs/{id}"),
                None::<&()>,
                SUBMIT_TIMEOUT,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(StatusCode, bytes::Bytes), DriverError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |error: reqwest::Error| DriverError::Unreachable {
            url: url.clone(),
            reason: crate::error_chain(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        match serde_json::from_slice::<ProblemBody>(&bytes) {
            Ok(problem) if !problem.code.is_empty() => Err(DriverError::Refused {
                status: status.as_u16(),
                code: problem.code,
                detail: problem.detail.or(problem.title).unwrap_or_default(),
                line: problem.line,
                column: problem.column,
            }),
            _ => Err(DriverError::Protocol {
                url,
                status: status.as_u16(),
                body: snippet(&bytes),
            }),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        bytes: &[u8],
    ) -> Result<T, DriverError> {
        serde_json::from_slice(bytes).map_err(|_| DriverError::Protocol {
            url: format!("{}{path}", self.base),
            status: 200,
            body: snippet(bytes),
        })
    }
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned()
}
