//! Endpoints for node agents: registration and heartbeats (agent token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api::{Node, NodeHeartbeat, NodeRegistration};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AgentCaller, ApiJson, ApiPath};
use super::node::{capacity_from_wire, node_to_wire};
use crate::AppState;
use crate::model::{NodeId, NodeSpec};

/// Registers a node agent (or re-registers it after a restart, keeping its identity).
#[utoipa::path(put, path = "/v1/agent/nodes/{id}", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id, chosen by the agent and kept in its data directory")),
    request_body = NodeRegistration,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Registered", body = Node),
        (status = 400, description = "Invalid registration", body = hdi_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid agent token", body = hdi_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another node has this name", body = hdi_api::Problem, content_type = "application/problem+json")))]
pub async fn agent_node_register(
    _caller: AgentCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(registration): ApiJson<NodeRegistration>,
) -> Result<Json<Node>, ApiError> {
    let spec = NodeSpec {
        name: registration.name,
        fault_domain: registration.fault_domain,
        address: registration.address,
        agent_version: registration.agent_version,
        capacity: capacity_from_wire(registration.capacity),
    };
    let record = state.service.node_register(NodeId(id), spec).await?;
    tracing::info!(node = %record.id, name = %record.spec.name, incarnation = record.incarnation, "node registered");
    Ok(Json(node_to_wire(
        &record,
        state.service.config().node_ready_timeout,
    )))
}

/// Records a node's heartbeat; `404` tells the agent to register again.
#[utoipa::path(post, path = "/v1/agent/nodes/{id}/heartbeat", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id")),
    request_body = NodeHeartbeat,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "No valid agent token", body = hdi_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown node: register first", body = hdi_api::Problem, content_type = "application/problem+json")))]
pub async fn agent_node_heartbeat(
    _caller: AgentCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(heartbeat): ApiJson<NodeHeartbeat>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .node_heartbeat(NodeId(id), capacity_from_wire(heartbeat.capacity))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
