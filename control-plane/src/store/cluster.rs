//! Rows of `clusters`: desired specs, observed status and the reconcilers' leases.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{NewOperation, Store, StoreError, os_id, to_u64};
use hdi_stdx::secret::Secret;

use crate::model::{
    ClusterAccess, ClusterId, ClusterRecord, ClusterSpec, ClusterState, ClusterStatusDoc, K8sOwner,
    Kind, OperationId, OperationRecord, WorkspaceId,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct ClusterRow {
    id: Uuid,
    workspace_id: Uuid,
    workspace: String,
    name: String,
    kind: String,
    spec: Json<ClusterSpec>,
    generation: i64,
    deleting: bool,
    state: String,
    observed_generation: i64,
    status: Json<ClusterStatusDoc>,
    voters: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    k8s_owner: Option<Json<K8sOwner>>,
}

/// `sqlx::query_as!` of [`ClusterRow`] with its one column list; the tail (`WHERE …`) and the
/// arguments follow.
macro_rules! select_clusters {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ClusterRow,
            r#"SELECT c.id, c.workspace_id, w.name AS workspace, c.name, c.kind,
                 c.spec AS "spec: Json<ClusterSpec>", c.generation, c.deleting, c.state,
                 c.observed_generation, c.status AS "status: Json<ClusterStatusDoc>", c.voters,
                 c.created_at, c.updated_at, c.k8s_owner AS "k8s_owner: Json<K8sOwner>"
               FROM clusters c JOIN workspaces w ON w.id = c.workspace_id "# + $tail
            $(, $arg)*
        )
    };
}

impl TryFrom<ClusterRow> for ClusterRecord {
    type Error = StoreError;

    fn try_from(row: ClusterRow) -> Result<ClusterRecord, StoreError> {
        let kind = match row.kind.as_str() {
            "kafka" => Kind::Kafka,
            "spark" => Kind::Spark,
            other => {
                return Err(StoreError::Corrupt {
                    column: "clusters.kind",
                    value: other.to_owned(),
                });
            }
        };
        let state = ClusterState::parse(&row.state).ok_or_else(|| StoreError::Corrupt {
            column: "clusters.state",
            value: row.state.clone(),
        })?;
        Ok(ClusterRecord {
            id: ClusterId::from_uuid(row.id),
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            workspace: row.workspace,
            name: row.name,
            kind,
            spec: row.spec.0,
            generation: to_u64(row.generation, "clusters.generation")?,
            deleting: row.deleting,
            state,
            observed_generation: to_u64(row.observed_generation, "clusters.observed_generation")?,
            status: row.status.0,
            voters: u32::try_from(row.voters).map_err(|_| StoreError::Corrupt {
                column: "clusters.voters",
                value: row.voters.to_string(),
            })?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            k8s_owner: row.k8s_owner.map(|owner| owner.0),
        })
    }
}

/// Why a spec change was not stored.
#[derive(Debug)]
pub enum SpecChange {
    /// Stored.
    Done(Box<(ClusterRecord, OperationRecord)>),
    /// Another operation on the cluster is running.
    Busy(Box<OperationRecord>),
    /// The cluster changed (or went) since it was read.
    Stale,
}

impl Store {
    /// Clusters by observed state, `(state, count)` (the `hdi_clusters` metric). A plain query,
    /// not a macro: its shape cannot drift and it keeps `.sqlx/` unchanged.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn clusters_count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT state, count(*) FROM clusters GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("clusters_count_by_state"))
    }
    /// A cluster by workspace and name.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn cluster_get(
        &self,
        workspace_id: WorkspaceId,
        name: &str,
    ) -> Result<Option<ClusterRecord>, StoreError> {
        let row = select_clusters!(
            "WHERE c.workspace_id = $1 AND c.name = $2",
            workspace_id.into_uuid(),
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("cluster_get"))?;
        row.map(ClusterRecord::try_from).transpose()
    }

    /// A cluster by id.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn cluster_get_by_id(
        &self,
        id: ClusterId,
    ) -> Result<Option<ClusterRecord>, StoreError> {
        let row = select_clusters!("WHERE c.id = $1", id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("cluster_get_by_id"))?;
        row.map(ClusterRecord::try_from).transpose()
    }

    /// What a cluster's processes get and the control plane presents to them (its workspace
    /// and credential); `None` for an unknown cluster.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_access(&self, id: ClusterId) -> Result<Option<ClusterAccess>, StoreError> {
        let row = sqlx::query!(
            "SELECT c.workspace_id, c.credential, c.os_uid, w.os_gid \
             FROM clusters c JOIN workspaces w ON w.id = c.workspace_id WHERE c.id = $1",
            id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("cluster_access"))?;
        row.map(|row| {
            Ok(ClusterAccess {
                workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                credential: Secret::new(row.credential),
                os_uid: os_id(row.os_uid, "clusters.os_uid")?,
                workspace_gid: os_id(row.os_gid, "workspaces.os_gid")?,
            })
        })
        .transpose()
    }

    /// Every Kafka cluster that serves clients (Running or Resizing, not being deleted), by id:
    /// what the metrics sampler reads.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn kafka_clusters_serving(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        let rows = select_clusters!(
            "WHERE c.kind = 'kafka' AND c.state IN ('Running', 'Resizing') AND NOT c.deleting \
             ORDER BY c.id"
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("kafka_clusters_serving"))?;
        rows.into_iter().map(ClusterRecord::try_from).collect()
    }

    /// Up to `limit` clusters of a workspace by name after `after`.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn clusters_list(
        &self,
        workspace_id: WorkspaceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClusterRecord>, StoreError> {
        let rows = select_clusters!(
            "WHERE c.workspace_id = $1 AND ($2::text IS NULL OR c.name > $2) ORDER BY c.name LIMIT $3",
            workspace_id.into_uuid(),
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("clusters_list"))?;
        rows.into_iter().map(ClusterRecord::try_from).collect()
    }

    /// Inserts a cluster and its create operation in one transaction. `None` when a cluster of
    /// that name already exists (the caller reads it and decides).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_insert(
        &self,
        workspace_id: WorkspaceId,
        name: &str,
        kind: Kind,
        spec: &ClusterSpec,
        operation: &NewOperation,
        k8s_owner: Option<&K8sOwner>,
    ) -> Result<Option<(ClusterRecord, OperationRecord)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        let id = ClusterId::new_v4();
        let inserted = sqlx::query!(
            "INSERT INTO clusters (id, workspace_id, name, kind, spec, k8s_owner) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, name) DO NOTHING",
            id.into_uuid(),
            workspace_id.into_uuid(),
            name,
            kind.as_str(),
            Json(spec) as _,
            k8s_owner.map(Json) as _
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("cluster_insert"))?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query!(
            "INSERT INTO operations (id, workspace_id, cluster_id, cluster_name, kind, target_generation, created_by) \
             VALUES ($1, $2, $3, $4, $5, 1, $6)",
            operation.id.into_uuid(),
            workspace_id.into_uuid(),
            id.into_uuid(),
            name,
            operation.kind.as_str(),
            operation.created_by
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("operation_insert"))?;
        tx.commit().await.map_err(query_error("commit"))?;
        let cluster = self
            .cluster_get_by_id(id)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "clusters.id",
                value: id.to_string(),
            })?;
        let op = self
            .operation_get(operation.id)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "operations.id",
                value: operation.id.to_string(),
            })?;
        Ok(Some((cluster, op)))
    }

    /// Sets the custom resource that owns a cluster (a recreated `HdiCluster` has a new uid).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_set_k8s_owner(
        &self,
        cluster_id: ClusterId,
        owner: &K8sOwner,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE clusters SET k8s_owner = $2 WHERE id = $1",
            cluster_id.into_uuid(),
            Json(owner) as _
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("cluster_set_k8s_owner"))?;
        Ok(())
    }

    /// Replaces a cluster's spec (or marks it deleting) if its generation is still `generation`,
    /// bumping the generation and starting `operation`. With `supersede`, a running operation is
    /// failed as superseded first (DELETE wins over a stuck change).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_change(
        &self,
        cluster_id: ClusterId,
        generation: u64,
        spec: &ClusterSpec,
        deleting: bool,
        operation: &NewOperation,
        supersede: bool,
    ) -> Result<SpecChange, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        let generation = i64::try_from(generation).map_err(|_| StoreError::Corrupt {
            column: "clusters.generation",
            value: generation.to_string(),
        })?;
        let locked = sqlx::query!(
            "SELECT generation, name, workspace_id FROM clusters WHERE id = $1 FOR UPDATE",
            cluster_id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("cluster_lock"))?;
        let Some(locked) = locked else {
            return Ok(SpecChange::Stale);
        };
        let (current, name, workspace_id) = (locked.generation, locked.name, locked.workspace_id);
        if current != generation {
            return Ok(SpecChange::Stale);
        }
        let running = sqlx::query_scalar!(
            "SELECT id FROM operations WHERE cluster_id = $1 AND state = 'Running' AND link_id IS NULL",
            cluster_id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("operation_running"))?;
        if let Some(running) = running {
            if supersede {
                sqlx::query!(
                    "UPDATE operations SET state = 'Failed', error_code = $3, \
                     error_detail = $2, updated_at = now(), finished_at = now() WHERE id = $1",
                    running,
                    format!("superseded by operation {}", operation.id),
                    crate::model::ErrorCode::Superseded.as_str()
                )
                .execute(&mut *tx)
                .await
                .map_err(query_error("operation_supersede"))?;
            } else {
                drop(tx);
                let op = self
                    .operation_get(OperationId::from_uuid(running))
                    .await?
                    .ok_or(StoreError::Corrupt {
                        column: "operations.id",
                        value: running.to_string(),
                    })?;
                return Ok(SpecChange::Busy(Box::new(op)));
            }
        }
        // Desired state only: `state` is the reconcilers' (the API shows a pending change as
        // Resizing or Deleting until they catch up).
        sqlx::query!(
            "UPDATE clusters SET spec = $2, generation = generation + 1, deleting = $3, updated_at = now() \
             WHERE id = $1",
            cluster_id.into_uuid(),
            Json(spec) as _,
            deleting
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("cluster_change"))?;
        sqlx::query!(
            "INSERT INTO operations (id, workspace_id, cluster_id, cluster_name, kind, target_generation, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            operation.id.into_uuid(),
            workspace_id,
            cluster_id.into_uuid(),
            name,
            operation.kind.as_str(),
            current + 1,
            operation.created_by
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("operation_insert"))?;
        tx.commit().await.map_err(query_error("commit"))?;
        let cluster = self.cluster_get_by_id(cluster_id).await?;
        let op = self.operation_get(operation.id).await?;
        match (cluster, op) {
            (Some(cluster), Some(op)) => Ok(SpecChange::Done(Box::new((cluster, op)))),
            _ => Ok(SpecChange::Stale),
        }
    }

    /// Records what a reconciler observed.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    ///
    /// Only if the spec is still at `planned_generation` (a pass that planned an older spec writes
    /// nothing); returns whether it wrote.
    pub async fn cluster_set_observed(
        &self,
        cluster_id: ClusterId,
        planned_generation: u64,
        state: ClusterState,
        observed_generation: u64,
        status: &ClusterStatusDoc,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE clusters SET state = $2, observed_generation = $3, status = $4, reconciled_at = now() \
             WHERE id = $1 AND generation = $5",
            cluster_id.into_uuid(),
            state.as_str(),
            i64::try_from(observed_generation).unwrap_or(i64::MAX),
            Json(status) as _,
            i64::try_from(planned_generation).unwrap_or(i64::MAX)
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("cluster_set_observed"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Renews `owner`'s lease on one cluster just before acting on it; `false` when another
    /// control plane holds it now (the pass skips the cluster).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_renew_lease(
        &self,
        cluster_id: ClusterId,
        owner: Uuid,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query!(
            "UPDATE clusters SET lease_owner = $2, lease_until = now() + make_interval(secs => $3) \
             WHERE id = $1 AND (lease_owner = $2 OR lease_owner IS NULL OR lease_until < now())",
            cluster_id.into_uuid(),
            owner,
            lease.as_secs_f64()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("cluster_renew_lease"))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Fixes the size of a Kafka cluster's voter set (only the first time).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_set_voters(
        &self,
        cluster_id: ClusterId,
        voters: u32,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE clusters SET voters = $2 WHERE id = $1 AND voters = 0",
            cluster_id.into_uuid(),
            i32::try_from(voters).unwrap_or(i32::MAX)
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("cluster_set_voters"))?;
        Ok(())
    }

    /// Deletes a cluster row whose workloads are all gone, finishing its delete operation.
    /// Returns `false` while workloads remain.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_remove(&self, cluster_id: ClusterId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        let locked = sqlx::query_scalar!(
            "SELECT id FROM clusters WHERE id = $1 AND deleting FOR UPDATE",
            cluster_id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("cluster_remove_lock"))?;
        if locked.is_none() {
            return Ok(false);
        }
        let remaining = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM workloads WHERE cluster_id = $1"#,
            cluster_id.into_uuid()
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error("cluster_remove_count"))?;
        if remaining > 0 {
            return Ok(false);
        }
        sqlx::query!(
            "UPDATE operations SET state = 'Succeeded', updated_at = now(), finished_at = now(), \
             steps = steps || jsonb_build_array(jsonb_build_object('name', 'remove the cluster record', \
             'state', 'Done', 'detail', NULL, 'started_at', now())) \
             WHERE cluster_id = $1 AND state = 'Running' AND link_id IS NULL",
            cluster_id.into_uuid()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("cluster_remove_operation"))?;
        // Operations of links on the cluster end with it (the links go with the cluster row).
        sqlx::query!(
            "UPDATE operations SET state = 'Failed', error_code = $2, \
             error_detail = 'the target cluster of the link was deleted', updated_at = now(), \
             finished_at = now() WHERE cluster_id = $1 AND state = 'Running' AND link_id IS NOT NULL",
            cluster_id.into_uuid(),
            crate::model::ErrorCode::Superseded.as_str()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("cluster_remove_link_operations"))?;
        let deleted = sqlx::query!(
            "DELETE FROM clusters WHERE id = $1 AND deleting",
            cluster_id.into_uuid()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("cluster_remove"))?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await.map_err(query_error("commit"))?;
        Ok(true)
    }

    /// Takes (or renews) the reconcile lease of up to `limit` clusters for `owner`: clusters whose
    /// lease is free or expired, or already `owner`'s. Several control planes share the work this
    /// way without reconciling one cluster twice at once.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn clusters_claim(
        &self,
        owner: Uuid,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ClusterId>, StoreError> {
        let ids = sqlx::query_scalar!(
            "UPDATE clusters SET lease_owner = $1, lease_until = now() + make_interval(secs => $2) \
             WHERE id IN (SELECT id FROM clusters \
                          WHERE lease_owner IS NULL OR lease_owner = $1 OR lease_until < now() \
                          ORDER BY reconciled_at NULLS FIRST LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
            owner,
            lease.as_secs_f64(),
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("clusters_claim"))?;
        Ok(ids.into_iter().map(ClusterId::from_uuid).collect())
    }

    /// Gives up `owner`'s leases (at shutdown), so another control plane takes over at once.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn clusters_release(&self, owner: Uuid) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE clusters SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            owner
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("clusters_release"))?;
        Ok(())
    }
}
