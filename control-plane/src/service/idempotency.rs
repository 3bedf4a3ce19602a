//! Idempotency keys on POSTs: a retried request with the same key gets the first answer.
//!
//! Keys are scoped per user (the same key from two users is two keys), must be 1-255 visible
//! ASCII characters, and are kept 24 hours. The HTTP layer decides which requests carry them.

use super::{Service, ServiceError};
use crate::model::UserId;
use crate::store::{KeyClaim, StoredResponse};

/// Checks an `Idempotency-Key` header value.
///
/// # Errors
/// [`ServiceError::InvalidField`] naming the header.
pub fn validate_idempotency_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServiceError::InvalidField {
            field: "Idempotency-Key".to_owned(),
            message: "must be 1-255 visible ASCII characters".to_owned(),
        });
    }
    Ok(())
}

fn scope(user: UserId) -> String {
    user.to_string()
}

impl Service {
    /// Claims a key for a request (identified by the hash of its method, path and body).
    ///
    /// # Errors
    /// `invalid_field` for a malformed key; store failures.
    pub async fn idempotency_claim(
        &self,
        user: UserId,
        key: &str,
        request_hash: &[u8],
    ) -> Result<KeyClaim, ServiceError> {
        validate_idempotency_key(key)?;
        Ok(self
            .store
            .idempotency_claim(&scope(user), key, request_hash)
            .await?)
    }

    /// Stores the answer for a claimed key.
    ///
    /// # Errors
    /// Store failures.
    pub async fn idempotency_complete(
        &self,
        user: UserId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), ServiceError> {
        Ok(self
            .store
            .idempotency_complete(&scope(user), key, response)
            .await?)
    }

    /// Releases a claimed key whose request failed on our side, so that a retry runs again.
    ///
    /// # Errors
    /// Store failures.
    pub async fn idempotency_abandon(&self, user: UserId, key: &str) -> Result<(), ServiceError> {
        Ok(self.store.idempotency_abandon(&scope(user), key).await?)
    }
}
