//! The REST API on axum: routes, OpenAPI document, and the wire/domain conversions.
//!
//! Handlers are a few lines each: extract input (rejections become problem documents), call one
//! [`crate::service::Service`] method, convert the result to an `hdi-api` type. Only this module
//! knows axum. The OpenAPI document is generated from these handlers and checked in at
//! `openapi/hdi.json` (a test fails when it is stale; `cargo xtask codegen` rewrites it).

mod agent;
pub mod error;
mod extract;
mod health;
mod node;

use axum::Router;
use axum::routing::{get, post, put};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use error::ApiError;

/// The OpenAPI description of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "hdi control plane", description = "Kafka and Spark clusters as a service."),
    paths(
        health::healthz,
        health::readyz,
        node::nodes_list,
        node::node_get,
        agent::agent_node_register,
        agent::agent_node_heartbeat,
    ),
    components(schemas(hdi_api::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "nodes", description = "Registered node agents"),
        (name = "agent", description = "Endpoints for node agents (agent token)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as pretty JSON with a trailing newline, exactly as checked in.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = hdi_api::VERSION.to_owned();
    let mut json = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], openapi_json()) }),
        )
        .route("/v1/nodes", get(node::nodes_list))
        .route("/v1/nodes/{id}", get(node::node_get))
        .route("/v1/agent/nodes/{id}", put(agent::agent_node_register))
        .route(
            "/v1/agent/nodes/{id}/heartbeat",
            post(agent::agent_node_heartbeat),
        )
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}
