//! The REST API on axum: routes, OpenAPI document, and the wire/domain conversions.
//!
//! Handlers are a few lines each: extract input (rejections become problem documents), call one
//! [`crate::service::Service`] method, convert the result to an `hdi-api` type. Only this module
//! knows axum. Each handler is registered once, in [`routes`], with axum and with the OpenAPI
//! document at the same time (utoipa-axum's `routes!`), so the two cannot drift. The document is
//! checked in at `openapi/hdi.json` (a test fails when it is stale; `cargo xtask codegen`
//! rewrites it).

mod agent;
mod auth;
pub(crate) mod cluster;
mod cluster_metrics;
mod doc;
pub mod error;
mod extract;
mod group;
mod health;
mod idempotency;
mod job;
mod kafka_user;
mod link;
mod metrics;
mod node;
mod portal;
mod record;
mod topic;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hdi_api::ErrorCode;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify as _, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use doc::CommonResponses;
use error::ApiError;

/// What the OpenAPI document says besides its operations, which [`routes`] adds.
#[derive(OpenApi)]
#[openapi(
    info(title = "hdi control plane", description = "Kafka and Spark clusters as a service."),
    components(schemas(hdi_api::Problem)),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "nodes", description = "Registered node agents"),
        (name = "agent", description = "Endpoints for node agents (the bootstrap token to enrol, then the node's own credential)"),
        (name = "workspaces", description = "Tenants"),
        (name = "clusters", description = "Kafka and Spark clusters"),
        (name = "topics", description = "Topics of Kafka clusters, through the Kafka admin protocol"),
        (name = "consumer-groups", description = "Consumer groups of Kafka clusters: members, committed offsets, lag; reset offsets and delete"),
        (name = "kafka-users", description = "Kafka users (SCRAM principals) of secured Kafka clusters and their ACLs"),
        (name = "replication-links", description = "Geo-replication pairs: a source Kafka cluster mirrored into a target with identical offsets, and their switchover, failover and reverse"),
        (name = "jobs", description = "Streaming SQL jobs of Spark clusters, run by their executor driver"),
        (name = "operations", description = "Long-running mutations"),
        (name = "audit", description = "Who changed what"),
        (name = "auth", description = "Access tokens and the keys that sign them"),
        (name = "users", description = "Users and their API tokens"),
    )
)]
struct ApiDoc;

/// Every route of the API with its operation in the document: one `routes!` per path.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::token))
        .routes(routes!(auth::session_create, auth::session_delete))
        .routes(routes!(auth::me))
        .routes(routes!(auth::oauth2_token))
        .routes(routes!(auth::user_create, auth::users_list))
        .routes(routes!(auth::user_delete))
        .routes(routes!(auth::api_token_create, auth::api_tokens_list))
        .routes(routes!(auth::api_token_revoke))
        .routes(routes!(auth::role_bindings_list))
        .routes(routes!(auth::role_binding_put, auth::role_binding_delete))
        .routes(routes!(node::nodes_list))
        .routes(routes!(node::node_get))
        .routes(routes!(node::node_credential_revoke))
        .routes(routes!(agent::agent_node_enrol))
        .routes(routes!(agent::agent_node_register))
        .routes(routes!(agent::agent_node_heartbeat))
        .routes(routes!(agent::agent_node_workloads))
        .routes(routes!(cluster::capabilities))
        .routes(routes!(cluster::workspace_create, cluster::workspaces_list))
        .routes(routes!(cluster::workspace_get))
        .routes(routes!(cluster::clusters_list))
        .routes(routes!(
            cluster::cluster_get,
            cluster::cluster_put,
            cluster::cluster_patch,
            cluster::cluster_delete
        ))
        .routes(routes!(topic::topics_list, topic::topic_create))
        .routes(routes!(
            topic::topic_get,
            topic::topic_patch,
            topic::topic_delete
        ))
        .routes(routes!(record::records_tail, record::record_produce))
        .routes(routes!(group::consumer_groups_list))
        .routes(routes!(
            group::consumer_group_get,
            group::consumer_group_delete
        ))
        .routes(routes!(group::consumer_group_reset_offsets))
        .routes(routes!(cluster_metrics::cluster_metrics))
        .routes(routes!(
            kafka_user::kafka_users_list,
            kafka_user::kafka_user_create
        ))
        .routes(routes!(
            kafka_user::kafka_user_get,
            kafka_user::kafka_user_patch,
            kafka_user::kafka_user_delete
        ))
        .routes(routes!(kafka_user::kafka_user_rotate))
        .routes(routes!(link::links_list))
        .routes(routes!(link::link_get, link::link_put, link::link_delete))
        .routes(routes!(link::link_lag))
        .routes(routes!(link::link_promote))
        .routes(routes!(link::link_failover))
        .routes(routes!(link::link_reverse))
        .routes(routes!(link::link_pause))
        .routes(routes!(link::link_resume))
        .routes(routes!(cluster::cluster_certificates_rotate))
        .routes(routes!(cluster::cluster_authorities_rotate))
        .routes(routes!(job::jobs_list, job::job_create))
        .routes(routes!(job::job_get, job::job_delete))
        .routes(routes!(job::job_progress))
        .routes(routes!(job::job_preview))
        .routes(routes!(cluster::operations_list))
        .routes(routes!(cluster::operation_get))
        .routes(routes!(cluster::audit_list))
}

/// Completes the document collected from the routes with what every operation shares.
fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    BearerAuth.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    doc.info.version = hdi_api::VERSION.to_owned();
    doc
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The portal's session (`POST /v1/auth/session`): every endpoint a bearer token opens
        // also takes it, and then unsafe methods need `X-HDI-Requested-By` (CSRF).
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "hdi_session",
                    "The portal's session cookie, set by POST /v1/auth/session; accepted wherever a user's bearer token is. Requests that change something must also send X-HDI-Requested-By and come from this origin.",
                ),
            )),
        );
    }
}

/// The OpenAPI description of the REST API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    finish(routes().into_openapi())
}

fn to_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut json = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

/// The OpenAPI document as pretty JSON with a trailing newline, exactly as checked in.
pub fn openapi_json() -> String {
    to_json(&openapi())
}

/// The whole HTTP application: the documented [`routes`], and `/openapi.json` serving their
/// document.
pub fn router(state: AppState) -> Router {
    let (router, doc) = routes().split_for_parts();
    let json = to_json(&finish(doc));
    router
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], json) }),
        )
        .route("/metrics", get(metrics::metrics))
        // Requests by matched route template (`crate::metrics`); the fallback is not counted.
        .route_layer(axum::middleware::from_fn_with_state(
            state.service.metrics().http.clone(),
            hdi_http_serve::metrics::HttpMetrics::track,
        ))
        // Pages and files of the web portal; anything else is the API's not-found problem.
        .fallback(portal::fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
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
