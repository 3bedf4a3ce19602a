//! The REST API on axum: routes, OpenAPI document, and the wire/domain conversions.
//!
//! Handlers are a few lines each: extract input (rejections become problem documents), call one
//! [`crate::service::Service`] method, convert the result to an `hdi-api` type. Only this module
//! knows axum. The OpenAPI document is generated from these handlers and checked in at
//! `openapi/hdi.json` (a test fails when it is stale; `cargo xtask codegen` rewrites it).

mod agent;
mod auth;
mod cluster;
mod doc;
pub mod error;
mod extract;
mod health;
mod idempotency;
mod job;
mod node;
mod topic;

use axum::Router;
use axum::routing::{delete, get, post, put};
use hdi_api::ErrorCode;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use doc::ExtractorResponses;
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
        agent::agent_node_workloads,
        cluster::capabilities,
        cluster::workspace_create,
        cluster::workspaces_list,
        cluster::workspace_get,
        cluster::clusters_list,
        cluster::cluster_get,
        cluster::cluster_put,
        cluster::cluster_patch,
        cluster::cluster_delete,
        cluster::operations_list,
        cluster::operation_get,
        cluster::audit_list,
        auth::jwks,
        auth::token,
        auth::user_create,
        auth::users_list,
        auth::user_delete,
        auth::api_token_create,
        auth::role_bindings_list,
        auth::role_binding_put,
        auth::role_binding_delete,
        topic::topics_list,
        topic::topic_create,
        topic::topic_get,
        topic::topic_patch,
        topic::topic_delete,
        job::jobs_list,
        job::job_create,
        job::job_get,
        job::job_progress,
        job::job_preview,
        job::job_delete,
    ),
    components(schemas(hdi_api::Problem)),
    modifiers(&BearerAuth, &ExtractorResponses),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "nodes", description = "Registered node agents"),
        (name = "agent", description = "Endpoints for node agents (agent token)"),
        (name = "workspaces", description = "Tenants"),
        (name = "clusters", description = "Kafka and Spark clusters"),
        (name = "topics", description = "Topics of Kafka clusters, through the Kafka admin protocol"),
        (name = "jobs", description = "Streaming SQL jobs of Spark clusters, run by their executor driver"),
        (name = "operations", description = "Long-running mutations"),
        (name = "audit", description = "Who changed what"),
        (name = "auth", description = "Access tokens and the keys that sign them"),
        (name = "users", description = "Users and their API tokens"),
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
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/token", post(auth::token))
        .route("/v1/users", post(auth::user_create).get(auth::users_list))
        .route("/v1/users/{username}", delete(auth::user_delete))
        .route(
            "/v1/users/{username}/api-tokens",
            post(auth::api_token_create),
        )
        .route(
            "/v1/workspaces/{ws}/role-bindings",
            get(auth::role_bindings_list),
        )
        .route(
            "/v1/workspaces/{ws}/role-bindings/{username}",
            put(auth::role_binding_put).delete(auth::role_binding_delete),
        )
        .route("/v1/nodes", get(node::nodes_list))
        .route("/v1/nodes/{id}", get(node::node_get))
        .route("/v1/agent/nodes/{id}", put(agent::agent_node_register))
        .route(
            "/v1/agent/nodes/{id}/heartbeat",
            post(agent::agent_node_heartbeat),
        )
        .route(
            "/v1/agent/nodes/{id}/workloads",
            get(agent::agent_node_workloads),
        )
        .route("/v1/capabilities", get(cluster::capabilities))
        .route(
            "/v1/workspaces",
            post(cluster::workspace_create).get(cluster::workspaces_list),
        )
        .route("/v1/workspaces/{ws}", get(cluster::workspace_get))
        .route("/v1/workspaces/{ws}/clusters", get(cluster::clusters_list))
        .route(
            "/v1/workspaces/{ws}/clusters/{name}",
            get(cluster::cluster_get)
                .put(cluster::cluster_put)
                .patch(cluster::cluster_patch)
                .delete(cluster::cluster_delete),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/topics",
            get(topic::topics_list).post(topic::topic_create),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}",
            get(topic::topic_get)
                .patch(topic::topic_patch)
                .delete(topic::topic_delete),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/jobs",
            get(job::jobs_list).post(job::job_create),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}",
            get(job::job_get).delete(job::job_delete),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/progress",
            get(job::job_progress),
        )
        .route(
            "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/preview",
            get(job::job_preview),
        )
        .route(
            "/v1/workspaces/{ws}/operations",
            get(cluster::operations_list),
        )
        .route("/v1/operations/{id}", get(cluster::operation_get))
        .route("/v1/audit-events", get(cluster::audit_list))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .with_state(state)
}
