//! A small client of a driver's job API and cluster view, used by the control plane's job
//! service and reconcilers.
//!
//! Every call has its own deadline; a driver that does not answer in time is
//! [`DriverError::Unreachable`], one that answers with a [`Problem`] is [`DriverError::Refused`]
//! with the problem's members.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::cluster::ClusterView;
use crate::job::{JobDefinition, JobList, JobStatus, Preview, ProgressList, ValidateRequest};
use crate::paths;
use crate::problem::Problem;
use crate::progress::Progress;
use hdi_stdx::secret::Secret;

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

/// What a submission did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The driver created and started the job.
    Created,
    /// The driver already had this exact definition.
    Unchanged,
}

/// A client for one driver.
#[derive(Clone, Debug)]
pub struct DriverClient {
    http: reqwest::Client,
    base: String,
    credential: Secret,
    status_timeout: Duration,
}

impl DriverClient {
    /// A client for the driver at `base_url` (`http://host:port`), sharing the connection pool
    /// of `http` and presenting the cluster's `credential`; reads time out after
    /// [`STATUS_TIMEOUT`].
    pub fn new(http: reqwest::Client, base_url: &str, credential: Secret) -> DriverClient {
        DriverClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            credential,
            status_timeout: STATUS_TIMEOUT,
        }
    }

    /// The same client with reads (status, lists, progress, preview, the cluster view) timing
    /// out after `timeout`.
    #[must_use]
    pub fn with_status_timeout(mut self, timeout: Duration) -> DriverClient {
        self.status_timeout = timeout;
        self
    }

    /// A connection pool for driver clients (redirects are not followed: the credential goes
    /// to the driver's address only).
    pub fn pool() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(STATUS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    }

    /// `POST /v1/jobs/validate`.
    ///
    /// # Errors
    /// [`DriverError::Refused`] with the SQL error, or a transport or protocol error.
    pub async fn validate(&self, body: &ValidateRequest) -> Result<(), DriverError> {
        self.send(Method::POST, paths::VALIDATE, Some(body), SUBMIT_TIMEOUT)
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
                &paths::with_id(paths::JOB, id),
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
    /// A transport, protocol or refusal error; a protocol error when a job's id is not a UUID.
    pub async fn jobs_list(&self) -> Result<Vec<JobStatus<Uuid>>, DriverError> {
        self.get::<JobList<Uuid>>(paths::JOBS).await.map(|b| b.jobs)
    }

    /// `GET /v1/jobs/{id}`; `None` when the driver does not have it.
    ///
    /// # Errors
    /// A transport, protocol or refusal error other than 404.
    pub async fn job_get(&self, id: Uuid) -> Result<Option<JobStatus<Uuid>>, DriverError> {
        match self.get(&paths::with_id(paths::JOB, id)).await {
            Ok(job) => Ok(Some(job)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /v1/jobs/{id}/progress?limit=N`, oldest first.
    ///
    /// # Errors
    /// As [`DriverClient::jobs_list`]; 404 is [`DriverError::Refused`].
    pub async fn job_progress(&self, id: Uuid, limit: u32) -> Result<Vec<Progress>, DriverError> {
        self.get::<ProgressList>(&format!(
            "{}?limit={limit}",
            paths::with_id(paths::JOB_PROGRESS, id)
        ))
        .await
        .map(|b| b.progress)
    }

    /// `GET /v1/jobs/{id}/preview?limit=N`.
    ///
    /// # Errors
    /// As [`DriverClient::jobs_list`]; 404 is [`DriverError::Refused`].
    pub async fn job_preview(&self, id: Uuid, limit: u32) -> Result<Preview, DriverError> {
        self.get(&format!(
            "{}?limit={limit}",
            paths::with_id(paths::JOB_PREVIEW, id)
        ))
        .await
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
                &paths::with_id(paths::JOB, id),
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

    /// `GET /v1/cluster`: the driver's live workers.
    ///
    /// # Errors
    /// A transport, protocol or refusal error.
    pub async fn cluster(&self) -> Result<ClusterView, DriverError> {
        self.get(paths::CLUSTER).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DriverError> {
        let (_, bytes) = self
            .send(Method::GET, path, None::<&()>, self.status_timeout)
            .await?;
        serde_json::from_slice(&bytes).map_err(|_| DriverError::Protocol {
            url: format!("{}{path}", self.base),
            status: 200,
            body: snippet(&bytes),
        })
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), DriverError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .timeout(timeout)
            .bearer_auth(self.credential.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |error: reqwest::Error| DriverError::Unreachable {
            url: url.clone(),
            reason: hdi_stdx::error_chain(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?.to_vec();
        if status.is_success() {
            return Ok((status, bytes));
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) if !problem.code.is_empty() => Err(DriverError::Refused {
                status: status.as_u16(),
                code: problem.code,
                detail: if problem.detail.is_empty() {
                    problem.title
                } else {
                    problem.detail
                },
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
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned()
}
