//! `GET /v1/nodes[/{id}]`: registered nodes, for people; and the node wire conversions.

use axum::Json;
use axum::extract::State;
use hdi_api::{Node, NodeCapacity, NodeList, NodeStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AdminCaller, ApiPath, ApiQuery, Caller};
use crate::AppState;
use crate::model::{Capacity, NodeHealth, NodeId, NodeRecord};
use crate::service::PageRequest;

/// Paging of a list call.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// Lists registered nodes with their readiness, ordered by name.
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes", params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of nodes", body = NodeList),
        (status = 400, description = "Bad paging parameters"),
        (status = 403, description = "Not a platform admin")))]
pub async fn nodes_list(
    _caller: AdminCaller,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<NodeList>, ApiError> {
    let timeout = state.service.config().node_ready_timeout;
    let page = state
        .service
        .nodes_list(PageRequest {
            page_size: params.page_size,
            page_token: params.page_token,
        })
        .await?;
    Ok(Json(NodeList {
        items: page
            .items
            .iter()
            .map(|record| node_to_wire(record, timeout))
            .collect(),
        next_page_token: page.next_page_token,
    }))
}

/// One node.
#[utoipa::path(get, path = "/v1/nodes/{id}", tag = "nodes",
    params(("id" = Uuid, Path, description = "Node id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The node", body = Node),
        (status = 403, description = "Not a platform admin"),
        (status = 404, description = "No such node")))]
pub async fn node_get(
    _caller: AdminCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Node>, ApiError> {
    let record = state.service.node_get(NodeId::from_uuid(id)).await?;
    Ok(Json(node_to_wire(
        &record,
        state.service.config().node_ready_timeout,
    )))
}

/// Revokes a node agent's credential: its calls are refused until it enrols again with the
/// bootstrap token (platform admins only).
#[utoipa::path(delete, path = "/v1/nodes/{id}/credential", tag = "nodes",
    params(("id" = Uuid, Path, description = "Node id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not a platform admin"),
        (status = 404, description = "The node has no credential")))]
pub async fn node_credential_revoke(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .service
        .node_credential_revoke(&caller, NodeId::from_uuid(id))
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub(super) fn node_to_wire(record: &NodeRecord, timeout: std::time::Duration) -> Node {
    Node {
        id: record.id.into_uuid(),
        name: record.spec.name.clone(),
        fault_domain: record.spec.fault_domain,
        address: record.spec.address.clone(),
        agent_version: record.spec.agent_version.clone(),
        capacity: capacity_to_wire(record.spec.capacity),
        status: match record.health(timeout) {
            NodeHealth::Ready => NodeStatus::Ready,
            NodeHealth::NotReady => NodeStatus::NotReady,
        },
        registered_at: record.registered_at,
        last_heartbeat_at: record.last_heartbeat_at,
        heartbeat_age_seconds: record.heartbeat_age.as_secs_f64(),
        incarnation: record.incarnation,
    }
}

pub(super) fn capacity_to_wire(capacity: Capacity) -> NodeCapacity {
    NodeCapacity {
        cpu_millis: capacity.cpu_millis,
        memory_bytes: capacity.memory_bytes,
        disk_bytes: capacity.disk_bytes,
    }
}

pub(super) fn capacity_from_wire(capacity: NodeCapacity) -> Capacity {
    Capacity {
        cpu_millis: capacity.cpu_millis,
        memory_bytes: capacity.memory_bytes,
        disk_bytes: capacity.disk_bytes,
    }
}
