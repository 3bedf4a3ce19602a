//! The `Idempotency-Key` middleware for `POST` requests.
//!
//! A `POST` with the header is served once per (user, key): the first answer (any status below
//! 500) is stored and replayed to every retry with the same method, path and body, marked
//! `Idempotent-Replayed: true`. The same key with a different request is `422
//! idempotency_key_reused`; a retry while the first request still runs is `409
//! idempotency_key_in_use`. Requests without the header, or whose caller does not authenticate
//! (the handler then answers 401), pass through untouched, and so do requests whose answer holds a
//! secret (`POST .../api-tokens`: the token must not be stored in the clear).

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hdi_api::ErrorCode;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::Caller;
use crate::AppState;
use crate::store::{KeyClaim, StoredResponse};

/// The header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Bodies larger than this are not buffered for idempotency (the handlers' own limit is lower).
const MAX_BODY: usize = 4 << 20;

/// The middleware; install with `axum::middleware::from_fn_with_state`.
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Answers that carry a secret (a new API token) are never stored for replay.
    if request.method() != Method::POST || request.uri().path().ends_with("/api-tokens") {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let Ok(key) = key.to_str().map(str::to_owned) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidField,
            "Idempotency-Key must be visible ASCII",
        )
        .with_field("Idempotency-Key")
        .into_response();
    };
    let (mut parts, body) = request.into_parts();
    let Ok(Caller(identity)) = Caller::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes: Bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                "the request body is too large",
            )
            .into_response();
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let hash = hasher.finalize().to_vec();
    match state
        .service
        .idempotency_claim(identity.user_id, &key, &hash)
        .await
    {
        Err(error) => ApiError::from(error).into_response(),
        Ok(KeyClaim::InProgress) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still being served; retry shortly",
        )
        .into_response(),
        Ok(KeyClaim::Mismatch) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request",
        )
        .with_field("Idempotency-Key")
        .into_response(),
        Ok(KeyClaim::Done(stored)) => replay(stored),
        Ok(KeyClaim::Claimed) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let status = response.status();
            if status.is_server_error() {
                if let Err(error) = state
                    .service
                    .idempotency_abandon(identity.user_id, &key)
                    .await
                {
                    tracing::warn!(error = %error, "cannot release an idempotency key");
                }
                return response;
            }
            let (head, body) = response.into_parts();
            let body = match to_bytes(body, MAX_BODY).await {
                Ok(body) => body,
                Err(_) => {
                    if let Err(error) = state
                        .service
                        .idempotency_abandon(identity.user_id, &key)
                        .await
                    {
                        tracing::warn!(error = %error, "cannot release an idempotency key");
                    }
                    return ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::Internal,
                        "the response could not be stored",
                    )
                    .into_response();
                }
            };
            let header_text = |name: header::HeaderName| {
                head.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let stored = StoredResponse {
                status: status.as_u16(),
                content_type: header_text(header::CONTENT_TYPE),
                location: header_text(header::LOCATION),
                body: body.to_vec(),
            };
            if let Err(error) = state
                .service
                .idempotency_complete(identity.user_id, &key, &stored)
                .await
            {
                tracing::warn!(error = %error, "cannot store an idempotent answer");
            }
            Response::from_parts(head, Body::from(body))
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
