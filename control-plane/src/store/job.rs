//! Rows of `jobs`: the stored definitions of streaming SQL jobs on Spark clusters.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};
use hdi_stdx::secret::Secret;

use crate::model::{ClusterId, JobId, JobRecord, NewJob, SparkDriver, WorkspaceId};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct JobRow {
    id: Uuid,
    cluster_id: Uuid,
    cluster: String,
    name: String,
    sql: String,
    kafka_cluster: Option<String>,
    bootstrap_servers: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`JobRow`] with its one column list; the tail (`WHERE …`) and the
/// arguments follow.
macro_rules! select_jobs {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            JobRow,
            r#"SELECT j.id, j.cluster_id, c.name AS cluster, j.name, j.sql,
                 k.name AS "kafka_cluster?", k.status->>'bootstrap_servers' AS bootstrap_servers,
                 j.created_by, j.created_at
               FROM jobs j JOIN clusters c ON c.id = j.cluster_id
                 LEFT JOIN clusters k ON k.id = j.kafka_cluster_id "# + $tail
            $(, $arg)*
        )
    };
}

impl From<JobRow> for JobRecord {
    fn from(row: JobRow) -> JobRecord {
        JobRecord {
            id: JobId::from_uuid(row.id),
            cluster_id: ClusterId::from_uuid(row.cluster_id),
            cluster: row.cluster,
            name: row.name,
            sql: row.sql,
            kafka_cluster: row.kafka_cluster,
            bootstrap_servers: row.bootstrap_servers.filter(|b| !b.is_empty()),
            created_by: row.created_by,
            created_at: row.created_at,
        }
    }
}

impl Store {
    /// Inserts a job.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the cluster has a job of that name, else
    /// [`StoreError::Query`].
    pub async fn job_insert(&self, job: &NewJob) -> Result<JobRecord, StoreError> {
        let inserted = sqlx::query!(
            "INSERT INTO jobs (id, cluster_id, name, sql, kafka_cluster_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            job.id.into_uuid(),
            job.cluster_id.into_uuid(),
            job.name,
            job.sql,
            job.kafka_cluster_id.map(ClusterId::into_uuid),
            job.created_by
        )
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Conflict {
                    what: format!("job {:?}", job.name),
                });
            }
            Err(source) => {
                return Err(StoreError::Query {
                    context: "job_insert",
                    source,
                });
            }
        }
        self.job_get(job.cluster_id, job.id)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "jobs.id",
                value: job.id.to_string(),
            })
    }

    /// A job of a cluster by id.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn job_get(
        &self,
        cluster_id: ClusterId,
        id: JobId,
    ) -> Result<Option<JobRecord>, StoreError> {
        let row = select_jobs!(
            "WHERE j.cluster_id = $1 AND j.id = $2",
            cluster_id.into_uuid(),
            id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("job_get"))?;
        Ok(row.map(Into::into))
    }

    /// A job of a cluster by name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn job_get_by_name(
        &self,
        cluster_id: ClusterId,
        name: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let row = select_jobs!(
            "WHERE j.cluster_id = $1 AND j.name = $2",
            cluster_id.into_uuid(),
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("job_get_by_name"))?;
        Ok(row.map(Into::into))
    }

    /// Up to `limit` jobs of a cluster by name after `after`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn jobs_list(
        &self,
        cluster_id: ClusterId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = select_jobs!(
            "WHERE j.cluster_id = $1 AND ($2::text IS NULL OR j.name > $2) ORDER BY j.name LIMIT $3",
            cluster_id.into_uuid(),
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("jobs_list"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Every job of a cluster (for the job reconciler).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn jobs_of_cluster(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = select_jobs!(
            "WHERE j.cluster_id = $1 ORDER BY j.name",
            cluster_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("jobs_of_cluster"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a job; `false` when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn job_delete(&self, cluster_id: ClusterId, id: JobId) -> Result<bool, StoreError> {
        let deleted = sqlx::query!(
            "DELETE FROM jobs WHERE cluster_id = $1 AND id = $2",
            cluster_id.into_uuid(),
            id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("job_delete"))?;
        Ok(deleted.rows_affected() == 1)
    }

    /// The drivers of the Spark clusters that serve jobs: Running or Resizing, not being
    /// deleted, with a job API in their status.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn spark_drivers_serving(&self) -> Result<Vec<SparkDriver>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT c.id, c.workspace_id, c.name, c.status->>'job_api' AS "job_api!", c.credential,
                 coalesce(array(SELECT k.status->>'bootstrap_servers' FROM clusters k
                    WHERE k.workspace_id = c.workspace_id AND k.kind = 'kafka' AND NOT k.deleting
                      AND coalesce(k.status->>'bootstrap_servers', '') <> ''
                    ORDER BY k.id), '{}') AS "workspace_kafka!"
               FROM clusters c
               WHERE c.kind = 'spark' AND c.state IN ('Running', 'Resizing') AND NOT c.deleting
                 AND coalesce(c.status->>'job_api', '') <> ''
               ORDER BY c.id"#
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("spark_drivers_serving"))?;
        let mut drivers = Vec::with_capacity(rows.len());
        for row in rows {
            drivers.push(SparkDriver {
                cluster_id: ClusterId::from_uuid(row.id),
                cluster: row.name,
                job_api: row.job_api,
                credential: Secret::new(row.credential),
                workspace_kafka: row.workspace_kafka,
                kafka_access: self
                    .workspace_kafka_access(WorkspaceId::from_uuid(row.workspace_id))
                    .await?,
            });
        }
        Ok(drivers)
    }

    /// The bootstrap servers of a workspace's Kafka clusters that have them (not being deleted).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workspace_kafka(
        &self,
        workspace_id: WorkspaceId,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar!(
            r#"SELECT status->>'bootstrap_servers' AS "bootstrap!" FROM clusters
               WHERE workspace_id = $1 AND kind = 'kafka' AND NOT deleting
                 AND coalesce(status->>'bootstrap_servers', '') <> ''
               ORDER BY id"#,
            workspace_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("workspace_kafka"))
    }
}
