//! Rows of `operations`: the progress of each accepted cluster change.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, to_u64};
use crate::model::{
    ClusterId, LinkOperationResult, OperationId, OperationKind, OperationRecord, OperationState,
    OperationStep, ReplicationLinkId, WorkspaceId,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct OperationRow {
    id: Uuid,
    workspace_id: Uuid,
    workspace: Option<String>,
    cluster_id: Uuid,
    cluster_name: String,
    kind: String,
    state: String,
    target_generation: i64,
    steps: Json<Vec<OperationStep>>,
    error_code: Option<String>,
    error_detail: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    link_id: Option<Uuid>,
    link_name: Option<String>,
    result: Option<Json<LinkOperationResult>>,
}

/// `sqlx::query_as!` of [`OperationRow`] with its one column list; the tail (`WHERE …`) and the
/// arguments follow.
macro_rules! select_operations {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            OperationRow,
            r#"SELECT o.id, o.workspace_id, w.name AS "workspace?", o.cluster_id, o.cluster_name, o.kind,
                 o.state, o.target_generation, o.steps AS "steps: Json<Vec<OperationStep>>",
                 o.error_code, o.error_detail, o.created_by, o.created_at, o.updated_at, o.finished_at,
                 o.link_id, o.link_name, o.result AS "result: Json<LinkOperationResult>"
               FROM operations o LEFT JOIN workspaces w ON w.id = o.workspace_id "# + $tail
            $(, $arg)*
        )
    };
}

impl TryFrom<OperationRow> for OperationRecord {
    type Error = StoreError;

    fn try_from(row: OperationRow) -> Result<OperationRecord, StoreError> {
        Ok(OperationRecord {
            id: OperationId::from_uuid(row.id),
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            workspace: row.workspace.unwrap_or_default(),
            cluster_id: ClusterId::from_uuid(row.cluster_id),
            cluster_name: row.cluster_name,
            kind: OperationKind::parse(&row.kind).ok_or_else(|| StoreError::Corrupt {
                column: "operations.kind",
                value: row.kind.clone(),
            })?,
            state: OperationState::parse(&row.state).ok_or_else(|| StoreError::Corrupt {
                column: "operations.state",
                value: row.state.clone(),
            })?,
            target_generation: to_u64(row.target_generation, "operations.target_generation")?,
            steps: row.steps.0,
            error_code: row.error_code,
            error_detail: row.error_detail,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            link: row.link_id.map(|id| {
                (
                    ReplicationLinkId::from_uuid(id),
                    row.link_name.unwrap_or_default(),
                )
            }),
            result: row.result.map(|r| r.0),
        })
    }
}

/// An operation to start together with a spec change.
#[derive(Clone, Debug)]
pub struct NewOperation {
    /// Identity.
    pub id: OperationId,
    /// Kind.
    pub kind: OperationKind,
    /// Who asked.
    pub created_by: String,
}

impl Store {
    /// Operations by state, `(state, count)` (the `hdi_operations` metric); a plain query as
    /// [`Store::clusters_count_by_state`].
    ///
    /// # Errors
    /// When the database fails.
    pub async fn operations_count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT state, count(*) FROM operations GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("operations_count_by_state"))
    }
    /// One operation.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn operation_get(
        &self,
        id: OperationId,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let row = select_operations!("WHERE o.id = $1", id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("operation_get"))?;
        row.map(OperationRecord::try_from).transpose()
    }

    /// The running operation of a cluster (not of a link on it), if any.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn operation_running(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let row = select_operations!(
            "WHERE o.cluster_id = $1 AND o.state = 'Running' AND o.link_id IS NULL",
            cluster_id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("operation_running"))?;
        row.map(OperationRecord::try_from).transpose()
    }

    /// The newest operation of a cluster (not of a link on it), if any.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn operation_latest(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let row = select_operations!(
            "WHERE o.cluster_id = $1 AND o.link_id IS NULL ORDER BY o.created_at DESC, o.id LIMIT 1",
            cluster_id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("operation_latest"))?;
        row.map(OperationRecord::try_from).transpose()
    }

    /// The newest cluster operation id (not a link's) of each of `cluster_ids` that has one:
    /// `(cluster, operation)`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn operations_latest_ids(
        &self,
        cluster_ids: &[ClusterId],
    ) -> Result<Vec<(ClusterId, OperationId)>, StoreError> {
        let rows = sqlx::query!(
            "SELECT DISTINCT ON (cluster_id) cluster_id, id FROM operations \
             WHERE cluster_id = ANY($1) AND link_id IS NULL ORDER BY cluster_id, created_at DESC, id",
            &cluster_ids
                .iter()
                .map(|id| id.into_uuid())
                .collect::<Vec<_>>()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("operations_latest_ids"))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    ClusterId::from_uuid(row.cluster_id),
                    OperationId::from_uuid(row.id),
                )
            })
            .collect())
    }

    /// Up to `limit` operations of a workspace, newest first, older than the operation `before`.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn operations_list(
        &self,
        workspace_id: WorkspaceId,
        before: Option<OperationId>,
        limit: u32,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let rows = select_operations!(
            "WHERE o.workspace_id = $1 AND ($2::uuid IS NULL OR (o.created_at, o.id) < (SELECT created_at, id FROM operations WHERE id = $2)) ORDER BY o.created_at DESC, o.id DESC LIMIT $3",
            workspace_id.into_uuid(),
            before.map(OperationId::into_uuid),
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("operations_list"))?;
        rows.into_iter().map(OperationRecord::try_from).collect()
    }

    /// The running operation of a replication link, if any.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn link_operation_running(
        &self,
        link_id: ReplicationLinkId,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let row = select_operations!(
            "WHERE o.link_id = $1 AND o.state = 'Running'",
            link_id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("link_operation_running"))?;
        row.map(OperationRecord::try_from).transpose()
    }

    /// Ends a running operation with what it measured.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn operation_set_result(
        &self,
        id: OperationId,
        result: &LinkOperationResult,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE operations SET result = $2, updated_at = now() WHERE id = $1",
            id.into_uuid(),
            Json(result) as _
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("operation_set_result"))?;
        Ok(())
    }

    /// Replaces the steps of a running operation.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn operation_set_steps(
        &self,
        id: OperationId,
        steps: &[OperationStep],
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE operations SET steps = $2, updated_at = now() WHERE id = $1 AND state = 'Running'",
            id.into_uuid(),
            Json(steps) as _
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("operation_set_steps"))?;
        Ok(())
    }

    /// Ends a running operation.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn operation_finish(
        &self,
        id: OperationId,
        state: OperationState,
        steps: &[OperationStep],
        error: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE operations SET state = $2, steps = $3, error_code = $4, error_detail = $5, \
             updated_at = now(), finished_at = now() WHERE id = $1 AND state = 'Running'",
            id.into_uuid(),
            state.as_str(),
            Json(steps) as _,
            error.map(|e| e.0),
            error.map(|e| e.1)
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("operation_finish"))?;
        Ok(())
    }
}
