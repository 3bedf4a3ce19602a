//! Rows of `audit_events`: who asked for what, and whether it was accepted.

use super::{Store, StoreError};
use crate::model::AuditRecord;

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Appends an audit event.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn audit_insert(&self, event: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO audit_events (actor, action, resource, outcome, detail) VALUES ($1, $2, $3, $4, $5)",
            event.actor,
            event.action,
            event.resource,
            event.outcome,
            event.detail
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("audit_insert"))?;
        Ok(())
    }

    /// Up to `limit` audit events, newest first, below the id `before`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn audit_list(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query!(
            "SELECT id, at, actor, action, resource, outcome, detail FROM audit_events \
             WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            before,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("audit_list"))?;
        Ok(rows
            .into_iter()
            .map(|row| AuditRecord {
                id: row.id,
                at: row.at,
                actor: row.actor,
                action: row.action,
                resource: row.resource,
                outcome: row.outcome,
                detail: row.detail,
            })
            .collect())
    }
}
