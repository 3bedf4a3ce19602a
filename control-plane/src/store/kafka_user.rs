//! Rows of `kafka_users` (the Kafka users of secured clusters and their ACLs) and the
//! secrets of secured Kafka clusters (`clusters.kafka_*`, `workloads.kafka_*`).

use chrono::{DateTime, Utc};
use hdi_stdx::secret::Secret;
use sqlx::types::Json;
use uuid::Uuid;

use super::{IssuedCertificate, Store, StoreError};
use crate::model::{
    ClusterId, KafkaAclSpec, KafkaClientSecrets, KafkaJobAccess, KafkaQuotaSpec, KafkaUserId,
    KafkaUserRecord, WorkloadId,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct UserRow {
    id: Uuid,
    cluster_id: Uuid,
    name: String,
    mechanism: String,
    acls: Json<Vec<KafkaAclSpec>>,
    quotas: Json<KafkaQuotaSpec>,
    generation: i64,
    applied_generation: i64,
    created_by: String,
    created_at: DateTime<Utc>,
    password_set_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for KafkaUserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<KafkaUserRecord, StoreError> {
        let count = |value: i64, column| {
            u64::try_from(value).map_err(|_| StoreError::Corrupt {
                column,
                value: value.to_string(),
            })
        };
        Ok(KafkaUserRecord {
            id: KafkaUserId::from_uuid(row.id),
            cluster_id: ClusterId::from_uuid(row.cluster_id),
            name: row.name,
            mechanism: row.mechanism,
            acls: row.acls.0,
            quotas: row.quotas.0,
            generation: count(row.generation, "kafka_users.generation")?,
            applied_generation: count(row.applied_generation, "kafka_users.applied_generation")?,
            created_by: row.created_by,
            created_at: row.created_at,
            password_set_at: row.password_set_at,
        })
    }
}

impl Store {
    /// Inserts a Kafka user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the cluster has a user of that name, else
    /// [`StoreError::Query`].
    pub async fn kafka_user_insert(
        &self,
        cluster_id: ClusterId,
        name: &str,
        mechanism: &str,
        acls: &[KafkaAclSpec],
        quotas: &KafkaQuotaSpec,
        created_by: &str,
    ) -> Result<KafkaUserRecord, StoreError> {
        let inserted = sqlx::query!(
            "INSERT INTO kafka_users (id, cluster_id, name, mechanism, acls, quotas, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            Uuid::new_v4(),
            cluster_id.into_uuid(),
            name,
            mechanism,
            Json(acls) as _,
            Json(quotas) as _,
            created_by
        )
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Conflict {
                    what: format!("Kafka user {name:?}"),
                });
            }
            Err(source) => {
                return Err(StoreError::Query {
                    context: "kafka_user_insert",
                    source,
                });
            }
        }
        self.kafka_user_get(cluster_id, name)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "kafka_users.name",
                value: name.to_owned(),
            })
    }

    /// A Kafka user by name.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn kafka_user_get(
        &self,
        cluster_id: ClusterId,
        name: &str,
    ) -> Result<Option<KafkaUserRecord>, StoreError> {
        sqlx::query_as!(
            UserRow,
            r#"SELECT id, cluster_id, name, mechanism, acls AS "acls: Json<Vec<KafkaAclSpec>>",
                      quotas AS "quotas: Json<KafkaQuotaSpec>", generation, applied_generation,
                      created_by, created_at, password_set_at
               FROM kafka_users WHERE cluster_id = $1 AND name = $2"#,
            cluster_id.into_uuid(),
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("kafka_user_get"))?
        .map(KafkaUserRecord::try_from)
        .transpose()
    }

    /// Every Kafka user of a cluster, by name.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn kafka_users_list(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Vec<KafkaUserRecord>, StoreError> {
        sqlx::query_as!(
            UserRow,
            r#"SELECT id, cluster_id, name, mechanism, acls AS "acls: Json<Vec<KafkaAclSpec>>",
                      quotas AS "quotas: Json<KafkaQuotaSpec>", generation, applied_generation,
                      created_by, created_at, password_set_at
               FROM kafka_users WHERE cluster_id = $1 ORDER BY name"#,
            cluster_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("kafka_users_list"))?
        .into_iter()
        .map(KafkaUserRecord::try_from)
        .collect()
    }

    /// Replaces a user's ACLs, its quotas or both (a new generation); whether it exists.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_user_update(
        &self,
        cluster_id: ClusterId,
        name: &str,
        acls: Option<&[KafkaAclSpec]>,
        quotas: Option<&KafkaQuotaSpec>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE kafka_users SET acls = coalesce($3, acls), quotas = coalesce($4, quotas),
                    generation = generation + 1
             WHERE cluster_id = $1 AND name = $2",
            cluster_id.into_uuid(),
            name,
            acls.map(Json) as _,
            quotas.map(Json) as _
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_user_update"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a new password's time; whether the user exists.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_user_password_set(
        &self,
        cluster_id: ClusterId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE kafka_users SET password_set_at = now() WHERE cluster_id = $1 AND name = $2",
            cluster_id.into_uuid(),
            name
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_user_password_set"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the cluster has the ACLs of `generation` (no effect once a newer one is
    /// recorded).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_user_applied(
        &self,
        id: KafkaUserId,
        generation: u64,
    ) -> Result<(), StoreError> {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        sqlx::query!(
            "UPDATE kafka_users SET applied_generation = $2
             WHERE id = $1 AND applied_generation < $2",
            id.into_uuid(),
            generation
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_user_applied"))?;
        Ok(())
    }

    /// Deletes a Kafka user; whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_user_delete(
        &self,
        cluster_id: ClusterId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM kafka_users WHERE cluster_id = $1 AND name = $2",
            cluster_id.into_uuid(),
            name
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_user_delete"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The names of the platform administrators.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn platform_admin_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar!("SELECT username FROM users WHERE platform_admin ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("platform_admin_names"))
    }

    /// Whether any Kafka cluster has a Kafka user of this name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_user_name_used(&self, name: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM kafka_users WHERE name = $1) AS "used!""#,
            name
        )
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("kafka_user_name_used"))
    }

    /// A secured Kafka cluster's CA and administrator password once made.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_client_secrets(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Option<KafkaClientSecrets>, StoreError> {
        let row = sqlx::query!(
            r#"SELECT kafka_ca_cert, kafka_ca_key, kafka_admin_password,
                      kafka_ca_trust
                 FROM clusters WHERE id = $1"#,
            cluster_id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("kafka_client_secrets"))?;
        Ok(row.and_then(|row| {
            Some(KafkaClientSecrets {
                ca_cert: row.kafka_ca_cert?,
                ca_trust: row.kafka_ca_trust?,
                ca_key: Secret::new(row.kafka_ca_key?),
                admin_password: Secret::new(row.kafka_admin_password?),
            })
        }))
    }

    /// A secured Kafka cluster's secrets: the stored ones, or `candidate`, stored, when it has
    /// none yet (control planes racing agree on one).
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn kafka_secrets_make(
        &self,
        cluster_id: ClusterId,
        candidate: &KafkaClientSecrets,
    ) -> Result<KafkaClientSecrets, StoreError> {
        sqlx::query!(
            "UPDATE clusters
             SET kafka_ca_cert = $2, kafka_ca_key = $3, kafka_admin_password = $4
             WHERE id = $1 AND kafka_ca_cert IS NULL",
            cluster_id.into_uuid(),
            candidate.ca_cert,
            candidate.ca_key.expose(),
            candidate.admin_password.expose()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_secrets_make"))?;
        self.kafka_client_secrets(cluster_id)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "clusters.kafka_ca_cert",
                value: "NULL after storing a CA".into(),
            })
    }

    /// The `hdi-jobs` password of a cluster and whether the cluster has its credential; makes
    /// and stores `candidate` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn kafka_jobs_login(
        &self,
        cluster_id: ClusterId,
        candidate: &str,
    ) -> Result<(Secret, bool), StoreError> {
        sqlx::query!(
            "UPDATE clusters SET kafka_jobs_password = $2
             WHERE id = $1 AND kafka_jobs_password IS NULL",
            cluster_id.into_uuid(),
            candidate
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_jobs_login_make"))?;
        let row = sqlx::query!(
            "SELECT kafka_jobs_password, kafka_jobs_ready FROM clusters WHERE id = $1",
            cluster_id.into_uuid()
        )
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("kafka_jobs_login"))?;
        let password = row.kafka_jobs_password.ok_or(StoreError::Corrupt {
            column: "clusters.kafka_jobs_password",
            value: "NULL after storing one".into(),
        })?;
        Ok((Secret::new(password), row.kafka_jobs_ready))
    }

    /// Records that the cluster has the `hdi-jobs` credential.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn kafka_jobs_ready(&self, cluster_id: ClusterId) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE clusters SET kafka_jobs_ready = true WHERE id = $1",
            cluster_id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("kafka_jobs_ready"))?;
        Ok(())
    }

    /// What jobs of a workspace need to reach each of its Kafka clusters with bootstrap
    /// servers: the servers, the cluster's security, its CA and the `hdi-jobs` password once the
    /// cluster has that credential.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workspace_kafka_access(
        &self,
        workspace_id: crate::model::WorkspaceId,
    ) -> Result<Vec<KafkaJobAccess>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT status->>'bootstrap_servers' AS "bootstrap!",
                      spec AS "spec: Json<crate::model::ClusterSpec>",
                      kafka_ca_trust,
                      CASE WHEN kafka_jobs_ready THEN kafka_jobs_password END AS jobs_password
               FROM clusters
               WHERE workspace_id = $1 AND kind = 'kafka' AND NOT deleting
                 AND coalesce(status->>'bootstrap_servers', '') <> ''
               ORDER BY id"#,
            workspace_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("workspace_kafka_access"))?;
        Ok(rows
            .into_iter()
            .map(|row| KafkaJobAccess {
                bootstrap: row.bootstrap,
                security: row.spec.0.security,
                ca_cert: row.kafka_ca_trust,
                jobs_password: row.jobs_password.map(Secret::new),
            })
            .collect())
    }

    /// Stores a broker workload's Kafka server certificate and key, unless another control plane
    /// stored one since `issued.replacing` was read.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workload_kafka_tls_issue(
        &self,
        id: WorkloadId,
        issued: &IssuedCertificate<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE workloads w SET kafka_cert = $2, kafka_key = $3,
                 kafka_renew_at = CASE
                   WHEN (SELECT c.kafka_ca_cert FROM clusters c WHERE c.id = w.cluster_id) = $6
                   THEN $4 ELSE to_timestamp(0) END
             WHERE w.id = $1 AND w.kafka_cert IS NOT DISTINCT FROM $5",
            id.into_uuid(),
            issued.cert,
            issued.key,
            issued.renew_at,
            issued.replacing,
            issued.signer
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("workload_kafka_tls_set"))?;
        Ok(())
    }
}
