//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api::{Health, Readiness};

use super::error::error_chain;
use crate::AppState;

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: hdi_api::VERSION.into(),
    })
}

/// Readiness: `200` when the database answers, `503` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready to serve", body = Readiness),
    (status = 503, description = "The database does not answer", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    match state.service.readiness().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready".into(),
                database: "ok".into(),
            }),
        ),
        Err(error) => {
            let reason = error_chain(&error);
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "not_ready".into(),
                    database: reason,
                }),
            )
        }
    }
}
