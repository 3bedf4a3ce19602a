//! Rows of `idempotency_keys`: the stored first answer of each (caller, Idempotency-Key).

use super::{Store, StoreError};

/// A stored answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// What a new request with a key finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is new (or expired, or abandoned): this request serves it.
    Claimed,
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// Replay this answer.
    Done(StoredResponse),
}

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Claims `(scope, key)` for a request whose hash is `request_hash`. Keys older than 24 h,
    /// and claims whose request has not finished within 60 s (a crashed control plane), are
    /// taken over.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
    ) -> Result<KeyClaim, StoreError> {
        let claimed = sqlx::query!(
            "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, status = NULL, \
               content_type = NULL, location = NULL, body = NULL, created_at = now() \
             WHERE idempotency_keys.created_at < now() - interval '24 hours' \
                OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at < now() - interval '60 seconds')",
            scope,
            key,
            request_hash
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("idempotency_claim"))?;
        if claimed.rows_affected() == 1 {
            return Ok(KeyClaim::Claimed);
        }
        let row = sqlx::query!(
            "SELECT request_hash, status, content_type, location, body FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
            scope,
            key
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("idempotency_read"))?;
        let Some(row) = row else {
            // Removed in between (an abandoned claim): claim again next time.
            return Ok(KeyClaim::InProgress);
        };
        if row.request_hash != request_hash {
            return Ok(KeyClaim::Mismatch);
        }
        Ok(match row.status.and_then(|s| u16::try_from(s).ok()) {
            None => KeyClaim::InProgress,
            Some(status) => KeyClaim::Done(StoredResponse {
                status,
                content_type: row.content_type,
                location: row.location,
                body: row.body.unwrap_or_default(),
            }),
        })
    }

    /// Stores the answer of a claimed key.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE idempotency_keys SET status = $3, content_type = $4, location = $5, body = $6 \
             WHERE scope = $1 AND key = $2",
            scope,
            key,
            i32::from(response.status),
            response.content_type,
            response.location,
            response.body
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("idempotency_complete"))?;
        Ok(())
    }

    /// Forgets a claimed key whose request failed with a server error (a retry runs again).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
            scope,
            key
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("idempotency_abandon"))?;
        Ok(())
    }
}
