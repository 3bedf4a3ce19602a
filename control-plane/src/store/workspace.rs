//! Rows of `workspaces`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::{WorkspaceId, WorkspaceRecord};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct WorkspaceRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<WorkspaceRow> for WorkspaceRecord {
    fn from(row: WorkspaceRow) -> WorkspaceRecord {
        WorkspaceRecord {
            id: WorkspaceId::from_uuid(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

impl Store {
    /// Inserts a workspace.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken.
    pub async fn workspace_insert(&self, name: &str) -> Result<WorkspaceRecord, StoreError> {
        let row = sqlx::query_as!(
            WorkspaceRow,
            "INSERT INTO workspaces (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
            Uuid::new_v4(),
            name
        )
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => Ok(row.into()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::Conflict {
                    what: format!("workspace {name:?}"),
                })
            }
            Err(source) => Err(StoreError::Query {
                context: "workspace_insert",
                source,
            }),
        }
    }

    /// A workspace by name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workspace_get(&self, name: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        let row = sqlx::query_as!(
            WorkspaceRow,
            "SELECT id, name, created_at FROM workspaces WHERE name = $1",
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("workspace_get"))?;
        Ok(row.map(Into::into))
    }

    /// Up to `limit` workspaces by name after `after`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workspaces_list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        let rows = sqlx::query_as!(
            WorkspaceRow,
            "SELECT id, name, created_at FROM workspaces WHERE ($1::text IS NULL OR name > $1) \
             ORDER BY name LIMIT $2",
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("workspaces_list"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
