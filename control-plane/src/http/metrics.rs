//! `GET /metrics`: the control plane's Prometheus metrics (`crate::metrics`), for a platform
//! admin's token or any user's API token (what a Prometheus server is given); never open.
//! Not in the OpenAPI document: it answers OpenMetrics text, not JSON.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::ApiError;
use super::extract::Caller;
use crate::AppState;
use crate::service::ServiceError;

/// The exposition, after the caller is checked.
pub async fn metrics(
    State(state): State<AppState>,
    Caller(identity): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let api_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::auth::bearer(Some(v)).ok())
        .is_some_and(|token| !crate::auth::is_jwt(token));
    if !identity.platform_admin && !api_token {
        return Err(ApiError::from(ServiceError::Forbidden {
            message: "GET /metrics needs a platform admin, or a user's API token".into(),
        }));
    }
    let text = state.service.metrics_exposition().await?;
    Ok(hdi_http_serve::metrics::exposition_response(text))
}
