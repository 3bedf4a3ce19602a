//! Streaming SQL jobs on Spark clusters: submit, list, show, progress, preview and delete.
//!
//! The job's definition is desired state, stored in PostgreSQL; the cluster's executor driver
//! runs it. A submission is validated by the driver first (so a SQL error is answered at once,
//! with its line and column), then stored, then sent to the driver; a failed send is not an
//! error, since the job reconciler (`reconcile::jobs`) sends every stored job a driver lacks.
//! Reads take the status live from the driver within [`crate::driver::STATUS_TIMEOUT`]: a job the
//! driver does not have is `Pending`, a driver that does not answer makes it `Unknown`. Deleting
//! removes the row, then asks the driver to stop the job (the reconciler finishes that if the
//! driver is away).

use std::collections::HashMap;

use super::node::{PageRequest, decode_page_token, encode_page_token, is_dns_label};
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::driver::{DriverClient, DriverError, DriverJob, JobDefinition, ValidateRequest};
use crate::model::{
    ClusterId, ClusterRecord, ClusterState, JobId, JobRecord, JobRunState, Kind, NewJob,
};
use crate::store::StoreError;

/// The longest job SQL accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 256 * 1024;
/// The largest page of jobs.
const MAX_PAGE: u32 = 500;
/// The default page of jobs.
const DEFAULT_PAGE: u32 = 100;
/// The most progress documents or preview rows one call returns.
const MAX_LIMIT: u32 = 1000;
/// The default number of progress documents or preview rows.
const DEFAULT_LIMIT: u32 = 20;

/// A job to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInput {
    /// Name.
    pub name: String,
    /// SQL text.
    pub sql: String,
    /// A Kafka cluster of the same workspace.
    pub kafka_cluster: Option<String>,
}

/// A job's live status.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatusView {
    /// State.
    pub state: JobRunState,
    /// `(code, detail)` of a failure.
    pub error: Option<(String, String)>,
    /// Micro-batches committed.
    pub batches_committed: u64,
    /// The last progress document.
    pub last_progress: Option<crate::driver::Progress>,
}

impl JobStatusView {
    fn of(state: JobRunState) -> JobStatusView {
        JobStatusView {
            state,
            error: None,
            batches_committed: 0,
            last_progress: None,
        }
    }

    fn from_driver(job: DriverJob) -> JobStatusView {
        JobStatusView {
            state: JobRunState::from_driver(job.state.as_str()),
            error: job.error.map(|e| (e.code, e.detail)),
            batches_committed: job.batches_committed,
            last_progress: job.last_progress,
        }
    }
}

/// A job with its live status.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// The stored definition.
    pub job: JobRecord,
    /// The driver's view.
    pub status: JobStatusView,
}

/// Rows a job wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPreview {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows keyed by column.
    pub rows: Vec<serde_json::Value>,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks a job's name and SQL.
///
/// # Errors
/// [`ServiceError::InvalidField`] naming `name` or `sql`.
pub fn validate_job(input: &JobInput) -> Result<(), ServiceError> {
    if !is_dns_label(&input.name) {
        return Err(invalid(
            "name",
            "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ));
    }
    if input.name.parse::<JobId>().is_ok() {
        return Err(invalid(
            "name",
            "must not be a UUID (jobs are addressed by name or id)",
        ));
    }
    if input.sql.trim().is_empty() {
        return Err(invalid("sql", "must not be empty"));
    }
    if input.sql.len() > MAX_SQL_BYTES {
        return Err(invalid(
            "sql",
            format!("must be at most {MAX_SQL_BYTES} bytes (256 KiB)"),
        ));
    }
    Ok(())
}

/// A `limit` query parameter, defaulted and bounded.
fn limit(value: Option<u32>) -> Result<u32, ServiceError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// Maps a failed driver call to the service's terms.
fn driver_error(cluster: &str, error: DriverError) -> ServiceError {
    match error {
        DriverError::Unreachable { .. } => ServiceError::Unreachable {
            code: ErrorCode::DriverUnavailable,
            message: format!("the driver of Spark cluster {cluster:?} cannot be reached: {error}"),
        },
        DriverError::Refused { .. } | DriverError::Protocol { .. } => ServiceError::Upstream {
            code: ErrorCode::DriverError,
            message: format!("the driver of Spark cluster {cluster:?} failed: {error}"),
        },
    }
}

/// Whether the driver's answer to a validation is the SQL's fault.
fn sql_error(error: DriverError, cluster: &str) -> ServiceError {
    match error {
        DriverError::Refused {
            status: 400,
            code,
            detail,
            line,
            column,
        } => ServiceError::InvalidSql {
            sql_code: code,
            message: detail,
            line,
            column,
        },
        other => driver_error(cluster, other),
    }
}

impl Service {
    /// The Spark cluster `cluster` of `workspace`, which must be Spark.
    async fn spark_cluster(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<ClusterRecord, ServiceError> {
        let ws = self.workspace_get_unchecked(workspace).await?;
        let record = self
            .store
            .cluster_get(ws.id, cluster)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("cluster {cluster:?} in workspace {workspace:?}"),
            })?;
        if record.kind != Kind::Spark {
            return Err(ServiceError::Refused {
                code: ErrorCode::NotASparkCluster,
                message: format!(
                    "cluster {cluster:?} is a {} cluster; jobs run on Spark clusters",
                    record.kind.as_str()
                ),
            });
        }
        Ok(record)
    }

    /// A client for the driver of a Spark cluster that serves jobs (Running or Resizing, not
    /// being deleted, its job API known).
    async fn serving_driver(&self, cluster: &ClusterRecord) -> Result<DriverClient, ServiceError> {
        let serving = matches!(
            cluster.state,
            ClusterState::Running | ClusterState::Resizing
        );
        match cluster.status.job_api.as_deref() {
            Some(url) if serving && !cluster.deleting => self.driver(cluster, url).await,
            _ => Err(ServiceError::Conflict {
                code: ErrorCode::ClusterNotReady,
                message: format!(
                    "cluster {:?} is {}{}; jobs can be run once it is Running",
                    cluster.name,
                    cluster.state.as_str(),
                    if cluster.deleting {
                        " (being deleted)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }

    /// A client for `cluster`'s driver at `job_api`, presenting the cluster's credential.
    async fn driver(
        &self,
        cluster: &ClusterRecord,
        job_api: &str,
    ) -> Result<DriverClient, ServiceError> {
        let access = self
            .store
            .cluster_access(cluster.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("cluster {:?}", cluster.name),
            })?;
        Ok(DriverClient::new(
            self.drivers.clone(),
            job_api,
            access.credential,
        ))
    }

    /// A job of `cluster` by id or name.
    async fn job_record(
        &self,
        cluster: &ClusterRecord,
        job: &str,
    ) -> Result<JobRecord, ServiceError> {
        let found = match job.parse::<JobId>() {
            Ok(id) => self.store.job_get(cluster.id, id).await?,
            Err(_) => self.store.job_get_by_name(cluster.id, job).await?,
        };
        found.ok_or_else(|| ServiceError::NotFound {
            what: format!("job {job:?} in cluster {:?}", cluster.name),
        })
    }

    /// The Kafka cluster a job names: its id and bootstrap servers.
    async fn job_kafka_cluster(
        &self,
        spark: &ClusterRecord,
        name: &str,
    ) -> Result<(ClusterId, String), ServiceError> {
        let kafka = self
            .store
            .cluster_get(spark.workspace_id, name)
            .await?
            .ok_or_else(|| {
                invalid(
                    "kafka_cluster",
                    format!(
                        "there is no cluster {name:?} in workspace {:?}",
                        spark.workspace
                    ),
                )
            })?;
        if kafka.kind != Kind::Kafka {
            return Err(invalid(
                "kafka_cluster",
                format!(
                    "cluster {name:?} is a {} cluster, not Kafka",
                    kafka.kind.as_str()
                ),
            ));
        }
        match kafka.status.bootstrap_servers.filter(|b| !b.is_empty()) {
            Some(bootstrap) if !kafka.deleting => Ok((kafka.id, bootstrap)),
            _ => Err(invalid(
                "kafka_cluster",
                format!(
                    "Kafka cluster {name:?} has no bootstrap servers yet (it is {})",
                    kafka.state.as_str()
                ),
            )),
        }
    }

    /// Refuses a job whose secured Kafka cluster its jobs cannot reach yet (the jobs' Kafka user
    /// is made on the cluster's first reconcile passes).
    async fn check_job_access(
        &self,
        workspace_id: crate::model::WorkspaceId,
        name: &str,
        bootstrap: &str,
        access: &std::collections::BTreeMap<String, hdi_executor_api::KafkaProperties>,
    ) -> Result<(), ServiceError> {
        let secured = self
            .store
            .cluster_get(workspace_id, name)
            .await?
            .is_some_and(|k| k.spec.security.is_some());
        if secured && !access.contains_key(bootstrap) {
            return Err(ServiceError::Conflict {
                code: ErrorCode::ClusterNotReady,
                message: format!(
                    "Kafka cluster {name:?} is secured and its jobs' Kafka user is not ready yet; try again shortly"
                ),
            });
        }
        Ok(())
    }

    /// A job's status from the driver (`Unknown` when the cluster has no job API or the driver
    /// does not answer; `Pending` when it does not have the job).
    async fn job_status(&self, cluster: &ClusterRecord, id: JobId) -> JobStatusView {
        let Some(url) = cluster.status.job_api.as_deref() else {
            return JobStatusView::of(JobRunState::Unknown);
        };
        let job = match self.driver(cluster, url).await {
            Ok(driver) => driver.job_get(id.into_uuid()).await,
            Err(error) => {
                tracing::warn!(cluster = %cluster.name, error = %error, "job status unknown");
                return JobStatusView::of(JobRunState::Unknown);
            }
        };
        match job {
            Ok(Some(job)) => JobStatusView::from_driver(job),
            Ok(None) => JobStatusView::of(JobRunState::Pending),
            Err(error) => {
                tracing::debug!(cluster = %cluster.name, job = %id, error = %error, "job status unknown");
                JobStatusView::of(JobRunState::Unknown)
            }
        }
    }

    /// Submits a job: validated by the driver, stored, then sent to the driver.
    ///
    /// # Errors
    /// `invalid_field` (`name`, `sql`, `kafka_cluster`), `invalid_sql`, `not_found`,
    /// `forbidden`, `not_a_spark_cluster`, `cluster_not_ready`, `job_exists`,
    /// `driver_unavailable`, `driver_error`.
    pub async fn job_submit(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        input: JobInput,
    ) -> Result<JobView, ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            validate_job(&input)?;
            let spark = self.spark_cluster(workspace, cluster).await?;
            let driver = self.serving_driver(&spark).await?;
            let kafka = match input.kafka_cluster.as_deref() {
                Some(name) => Some(self.job_kafka_cluster(&spark, name).await?),
                None => None,
            };
            let exists = || ServiceError::Conflict {
                code: ErrorCode::JobExists,
                message: format!("cluster {cluster:?} already has a job named {:?}", input.name),
            };
            if self
                .store
                .job_get_by_name(spark.id, &input.name)
                .await?
                .is_some()
            {
                return Err(exists());
            }
            let bootstrap = kafka.as_ref().map(|(_, b)| b.clone());
            // The job's tables may name only its workspace's Kafka clusters.
            let allowed_kafka = Some(self.store.workspace_kafka(spark.workspace_id).await?);
            let kafka_access =
                kafka_access(&self.store.workspace_kafka_access(spark.workspace_id).await?);
            if let (Some(name), Some(bootstrap)) = (input.kafka_cluster.as_deref(), &bootstrap) {
                self.check_job_access(spark.workspace_id, name, bootstrap, &kafka_access)
                    .await?;
            }
            driver
                .validate(&ValidateRequest {
                    sql: input.sql.clone(),
                    bootstrap_servers: bootstrap.clone(),
                    allowed_kafka: allowed_kafka.clone(),
                    kafka_access: kafka_access.clone(),
                })
                .await
                .map_err(|e| sql_error(e, cluster))?;
            let job = match self
                .store
                .job_insert(&NewJob {
                    id: JobId::new_v4(),
                    cluster_id: spark.id,
                    name: input.name.clone(),
                    sql: input.sql.clone(),
                    kafka_cluster_id: kafka.map(|(id, _)| id),
                    created_by: caller.username.clone(),
                })
                .await
            {
                Ok(job) => job,
                Err(StoreError::Conflict { .. }) => return Err(exists()),
                Err(other) => return Err(other.into()),
            };
            let definition = JobDefinition {
                name: job.name.clone(),
                sql: job.sql.clone(),
                bootstrap_servers: bootstrap,
                allowed_kafka,
                kafka_access,
            };
            if let Err(error) = driver.job_put(job.id.into_uuid(), &definition).await {
                // Stored is accepted: the job reconciler sends it once the driver takes it.
                tracing::warn!(cluster, job = %job.name, error = %error, "job stored but not yet on the driver");
            }
            let status = self.job_status(&spark, job.id).await;
            Ok(JobView { job, status })
        }
        .await;
        self.audited(
            &caller.username,
            "job.create",
            format!(
                "workspaces/{workspace}/clusters/{cluster}/jobs/{}",
                input.name
            ),
            result,
        )
        .await
    }

    /// A page of a cluster's jobs by name, with their live status (one call to the driver).
    ///
    /// # Errors
    /// `invalid_field` (paging), `not_found`, `forbidden`, `not_a_spark_cluster`.
    pub async fn jobs_list(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        page: PageRequest,
    ) -> Result<(Vec<JobView>, Option<String>), ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let size = match page.page_size {
            None => DEFAULT_PAGE,
            Some(size) if (1..=MAX_PAGE).contains(&size) => size,
            Some(_) => {
                return Err(invalid(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE}"),
                ));
            }
        };
        let after = page
            .page_token
            .as_deref()
            .map(decode_page_token)
            .transpose()?;
        let spark = self.spark_cluster(workspace, cluster).await?;
        let mut jobs = self
            .store
            .jobs_list(spark.id, after.as_deref(), size + 1)
            .await?;
        let next = if jobs.len() > size as usize {
            jobs.truncate(size as usize);
            jobs.last().map(|j| encode_page_token(&j.name))
        } else {
            None
        };
        let on_driver: Option<HashMap<JobId, DriverJob>> = match &spark.status.job_api {
            Some(url) if !jobs.is_empty() => {
                match self.driver(&spark, url).await?.jobs_list().await {
                    Ok(list) => Some(
                        list.into_iter()
                            .map(|j| (JobId::from_uuid(j.id), j))
                            .collect(),
                    ),
                    Err(error) => {
                        tracing::debug!(cluster, error = %error, "job statuses unknown");
                        None
                    }
                }
            }
            _ => None,
        };
        let views = jobs
            .into_iter()
            .map(|job| {
                let status = match &on_driver {
                    None => JobStatusView::of(JobRunState::Unknown),
                    Some(map) => map.get(&job.id).cloned().map_or(
                        JobStatusView::of(JobRunState::Pending),
                        JobStatusView::from_driver,
                    ),
                };
                JobView { job, status }
            })
            .collect();
        Ok((views, next))
    }

    /// One job (by id or name) with its live status.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `not_a_spark_cluster`.
    pub async fn job_get(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        job: &str,
    ) -> Result<JobView, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let spark = self.spark_cluster(workspace, cluster).await?;
        let job = self.job_record(&spark, job).await?;
        let status = self.job_status(&spark, job.id).await;
        Ok(JobView { job, status })
    }

    /// The last `limit` progress documents of a job, oldest first (none while it is not on the
    /// driver).
    ///
    /// # Errors
    /// `invalid_field` (`limit`), `not_found`, `forbidden`, `not_a_spark_cluster`,
    /// `cluster_not_ready`, `driver_unavailable`, `driver_error`.
    pub async fn job_progress(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        job: &str,
        limit_param: Option<u32>,
    ) -> Result<Vec<crate::driver::Progress>, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let limit = limit(limit_param)?;
        let spark = self.spark_cluster(workspace, cluster).await?;
        let job = self.job_record(&spark, job).await?;
        let driver = self.serving_driver(&spark).await?;
        match driver.job_progress(job.id.into_uuid(), limit).await {
            Ok(progress) => Ok(progress),
            Err(error) if error.is_not_found() => Ok(Vec::new()),
            Err(error) => Err(driver_error(cluster, error)),
        }
    }

    /// The latest `limit` rows a job wrote (none while it is not on the driver).
    ///
    /// # Errors
    /// As [`Service::job_progress`].
    pub async fn job_preview(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        job: &str,
        limit_param: Option<u32>,
    ) -> Result<JobPreview, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let limit = limit(limit_param)?;
        let spark = self.spark_cluster(workspace, cluster).await?;
        let job = self.job_record(&spark, job).await?;
        let driver = self.serving_driver(&spark).await?;
        match driver.job_preview(job.id.into_uuid(), limit).await {
            Ok(preview) => Ok(JobPreview {
                columns: preview.columns,
                rows: preview.rows,
            }),
            Err(error) if error.is_not_found() => Ok(JobPreview {
                columns: Vec::new(),
                rows: Vec::new(),
            }),
            Err(error) => Err(driver_error(cluster, error)),
        }
    }

    /// Deletes a job (by id or name): the row at once, the job on the driver best effort (the
    /// job reconciler stops it there if the driver is away now).
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `not_a_spark_cluster`.
    pub async fn job_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        job: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            let spark = self.spark_cluster(workspace, cluster).await?;
            let record = self.job_record(&spark, job).await?;
            if !self.store.job_delete(spark.id, record.id).await? {
                return Err(ServiceError::NotFound {
                    what: format!("job {job:?} in cluster {cluster:?}"),
                });
            }
            if let Some(url) = spark.status.job_api.as_deref()
                && let Err(error) = self
                    .driver(&spark, url)
                    .await?
                    .job_delete(record.id.into_uuid())
                    .await
            {
                tracing::warn!(cluster, job = %record.name, error = %error, "job deleted; the driver still has it until the job reconciler reaches it");
            }
            Ok(())
        }
        .await;
        self.audited(
            &caller.username,
            "job.delete",
            format!("workspaces/{workspace}/clusters/{cluster}/jobs/{job}"),
            result,
        )
        .await
    }
}

/// The librdkafka properties jobs need for each secured Kafka cluster of the workspace that
/// can be reached (its jobs' user exists).
pub fn kafka_access(
    clusters: &[crate::model::KafkaJobAccess],
) -> std::collections::BTreeMap<String, hdi_executor_api::KafkaProperties> {
    clusters
        .iter()
        .filter_map(|c| {
            let properties = c.properties()?;
            (!properties.is_empty()).then(|| {
                (
                    c.bootstrap.clone(),
                    hdi_executor_api::KafkaProperties(properties),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> JobInput {
        JobInput {
            name: "clicks-per-minute".into(),
            sql: "SELECT 1".into(),
            kafka_cluster: None,
        }
    }

    fn field(error: &ServiceError) -> Option<&str> {
        match error {
            ServiceError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate_job(&input()).is_ok());
        type Case = (fn(&mut JobInput), &'static str);
        let cases: [Case; 6] = [
            (|j| j.name = String::new(), "name"),
            (|j| j.name = "Upper".into(), "name"),
            (|j| j.name = "x".repeat(64), "name"),
            (|j| j.name = uuid::Uuid::nil().to_string(), "name"),
            (|j| j.sql = " \n".into(), "sql"),
            (|j| j.sql = "-".repeat(MAX_SQL_BYTES + 1), "sql"),
        ];
        for (change, expected) in cases {
            let mut job = input();
            change(&mut job);
            let error = validate_job(&job).expect_err(expected);
            assert_eq!(field(&error), Some(expected), "{error:?}");
        }
        let mut largest = input();
        largest.sql = "-".repeat(MAX_SQL_BYTES);
        assert!(validate_job(&largest).is_ok());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap_or_default(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(1000)).unwrap_or_default(), 1000);
        for bad in [0, 1001] {
            assert_eq!(field(&limit(Some(bad)).expect_err("bad")), Some("limit"));
        }
    }

    #[test]
    fn driver_errors_map_to_codes() {
        let refused = |status| DriverError::Refused {
            status,
            code: "unknown_column".into(),
            detail: "no column x".into(),
            line: Some(2),
            column: Some(8),
        };
        match sql_error(refused(400), "s") {
            ServiceError::InvalidSql {
                sql_code,
                line,
                column,
                ..
            } => assert_eq!(
                (sql_code.as_str(), line, column),
                ("unknown_column", Some(2), Some(8))
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sql_error(refused(500), "s"),
            ServiceError::Upstream {
                code: ErrorCode::DriverError,
                ..
            }
        ));
        let down = DriverError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        assert!(matches!(
            sql_error(down, "s"),
            ServiceError::Unreachable {
                code: ErrorCode::DriverUnavailable,
                ..
            }
        ));
    }
}
