//! Replication links over REST (`/v1/workspaces/{ws}/replication-links[/{name}[/lag|/promote|
//! /failover|/reverse|/pause|/resume]]`), with their wire conversions: the stored link, its
//! live status merged per topic from the target's per-partition reports, and the operations
//! that move it (202 with `Location: /v1/operations/{id}`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hdi_api as api;

use super::cluster::operation_to_wire;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::model::{
    self, LinkFilters, LinkState, MirrorPartition, OperationKind, OperationRecord,
    ReplicationLinkRecord, state_rank,
};
use crate::service::{LinkInput, LinkStatusView, PageRequest};

fn state_to_wire(state: LinkState) -> api::ReplicationLinkState {
    match state {
        LinkState::Mirroring => api::ReplicationLinkState::Mirroring,
        LinkState::Paused => api::ReplicationLinkState::Paused,
        LinkState::Promoting => api::ReplicationLinkState::Promoting,
        LinkState::Promoted => api::ReplicationLinkState::Promoted,
        LinkState::FailingOver => api::ReplicationLinkState::FailingOver,
        LinkState::FailedOver => api::ReplicationLinkState::FailedOver,
        LinkState::Reversing => api::ReplicationLinkState::Reversing,
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn partition_to_wire(p: &MirrorPartition) -> api::MirrorPartitionStatus {
    api::MirrorPartitionStatus {
        partition: p.partition,
        state: p.state.clone(),
        reason: p.reason.clone(),
        log_end: p.log_end,
        source_end: p.source_end,
        lag_records: p.lag_records,
        lag_bytes: p.lag_bytes,
        lag_seconds: p.lag_ms.map(seconds),
        stop_offset: p.stop_offset,
        loss_records: p.loss_records,
        loss_seconds: p.loss_ms.map(seconds),
        quarantined: p.quarantined,
    }
}

/// The status as the wire shows it: partitions grouped per topic (a topic's state is its worst
/// partition's), sums of lag, and the RPO estimate (the largest lag in seconds).
pub(super) fn status_to_wire(view: &LinkStatusView) -> api::ReplicationLinkStatus {
    let mut topics: BTreeMap<&str, Vec<&MirrorPartition>> = BTreeMap::new();
    for p in &view.partitions {
        topics.entry(p.topic.as_str()).or_default().push(p);
    }
    let topics: Vec<api::MirrorTopicStatus> = topics
        .into_iter()
        .map(|(topic, partitions)| api::MirrorTopicStatus {
            topic: topic.to_owned(),
            state: partitions
                .iter()
                .map(|p| p.state.as_str())
                .max_by_key(|s| state_rank(s))
                .unwrap_or("")
                .to_owned(),
            lag_records: partitions.iter().filter_map(|p| p.lag_records).sum(),
            lag_bytes: partitions.iter().filter_map(|p| p.lag_bytes).sum(),
            lag_seconds: seconds(
                partitions
                    .iter()
                    .filter_map(|p| p.lag_ms)
                    .max()
                    .unwrap_or(0),
            ),
            partitions: partitions.iter().map(|p| partition_to_wire(p)).collect(),
        })
        .collect();
    let reported = view.partitions_reported;
    api::ReplicationLinkStatus {
        observed: view.observed,
        error: view.error.clone(),
        defined: view.defined,
        data_plane_state: view.data_plane_state.clone(),
        data_plane_status: view.data_plane_status.clone(),
        partitions_reported: reported,
        lag_records: reported.then(|| view.partitions.iter().filter_map(|p| p.lag_records).sum()),
        lag_bytes: reported.then(|| view.partitions.iter().filter_map(|p| p.lag_bytes).sum()),
        rpo_seconds: reported.then(|| {
            seconds(
                view.partitions
                    .iter()
                    .filter_map(|p| p.lag_ms)
                    .max()
                    .unwrap_or(0),
            )
        }),
        topics,
        warnings: view.warnings.clone(),
    }
}

pub(super) fn result_to_wire(result: &model::LinkOperationResult) -> api::LinkOperationResult {
    api::LinkOperationResult {
        partitions: result
            .partitions
            .iter()
            .map(|p| api::PartitionStop {
                topic: p.topic.clone(),
                partition: p.partition,
                stop_offset: p.stop_offset,
                loss_records: p.loss_records,
                loss_ms: p.loss_ms,
                quarantined: p.quarantined,
            })
            .collect(),
        loss_records: result.loss_records,
        loss_ms: result.loss_ms,
        quarantined_records: result.quarantined_records,
    }
}

fn link_to_wire(
    workspace: &str,
    link: &ReplicationLinkRecord,
    status: Option<&LinkStatusView>,
    operation: Option<&OperationRecord>,
) -> api::ReplicationLink {
    api::ReplicationLink {
        name: link.name.clone(),
        workspace: workspace.to_owned(),
        source_cluster: link.source_cluster.clone(),
        target_cluster: link.target_cluster.clone(),
        topics: link.filters.topics.clone(),
        topics_exclude: link.filters.topics_exclude.clone(),
        groups: link.filters.groups.clone(),
        groups_exclude: link.filters.groups_exclude.clone(),
        sync_configs: link.sync_configs,
        state: state_to_wire(link.state),
        applied: link.applied_generation >= link.generation,
        source_user: link.source_user.clone(),
        operation: operation.map(|op| op.id.into_uuid()),
        created_by: link.created_by.clone(),
        created_at: link.created_at,
        updated_at: link.updated_at,
        status: status.map(status_to_wire),
    }
}

/// Creates a replication link, or replaces its filters.
#[utoipa::path(put, path = "/v1/workspaces/{ws}/replication-links/{name}", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name (letters, digits, '-', '_')")),
    request_body = api::ReplicationLinkSpec,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated (or unchanged)", body = api::ReplicationLink),
        (status = 201, description = "Created; the link reconciler defines it on the target", body = api::ReplicationLink),
        (status = 400, description = "An invalid field (`name`, `topics[i]`, `topics_exclude[i]`, `groups[i]`, `groups_exclude[i]`, `sync_configs`, `source_cluster`, `target_cluster`), `not_a_kafka_cluster` or `link_source_unsupported`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "`cluster_not_ready` (brokers not placed), `cluster_deleting`, `link_fault_domains_overlap`, `link_stopped`, `operation_in_progress` or `concurrent_change`")))]
pub async fn link_put(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::ReplicationLinkSpec>,
) -> Result<(StatusCode, Json<api::ReplicationLink>), ApiError> {
    let input = LinkInput {
        source_cluster: body.source_cluster,
        target_cluster: body.target_cluster,
        filters: LinkFilters {
            topics: body.topics,
            topics_exclude: body.topics_exclude,
            groups: body.groups,
            groups_exclude: body.groups_exclude,
        },
        sync_configs: body.sync_configs,
    };
    let (link, created) = state.service.link_put(&caller, &ws, &name, input).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(link_to_wire(&ws, &link, None, None))))
}

/// A workspace's replication links by name (without live status).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/replication-links", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of links", body = api::ReplicationLinkList),
        (status = 400, description = "Bad paging parameters"),
        (status = 404, description = "No such workspace")))]
pub async fn links_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::ReplicationLinkList>, ApiError> {
    let page = PageRequest {
        page_size: params.page_size,
        page_token: params.page_token,
    };
    let (items, next) = state.service.links_list(&caller, &ws, page).await?;
    Ok(Json(api::ReplicationLinkList {
        items: items
            .iter()
            .map(|l| link_to_wire(&ws, l, None, None))
            .collect(),
        next_page_token: next,
    }))
}

/// One replication link with its status read from the target's brokers now: state, per-topic
/// and per-partition lag, RPO estimate, the brokers' status text.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/replication-links/{name}", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The link; `status.observed` is false when the target cannot be read", body = api::ReplicationLink),
        (status = 404, description = "No such workspace or link")))]
pub async fn link_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Json<api::ReplicationLink>, ApiError> {
    let (link, status, op) = state.service.link_get(&caller, &ws, &name).await?;
    Ok(Json(link_to_wire(&ws, &link, Some(&status), op.as_ref())))
}

/// A replication link's lag only (the status of `GET` of the link).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/replication-links/{name}/lag", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The status", body = api::ReplicationLinkStatus),
        (status = 404, description = "No such workspace or link")))]
pub async fn link_lag(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Json<api::ReplicationLinkStatus>, ApiError> {
    let (_, status, _) = state.service.link_get(&caller, &ws, &name).await?;
    Ok(Json(status_to_wire(&status)))
}

/// Deletes a replication link: from the target's brokers (refused while it still feeds mirror
/// topics: promote or fail it over first), its Kafka user from the source, and the record.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/replication-links/{name}", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`link_has_mirrors` (promote or fail over first), `operation_in_progress` or `cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The target cannot be reached (`cluster_unreachable`)")))]
pub async fn link_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.link_delete(&caller, &ws, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn operation(
    state: &AppState,
    caller: &crate::auth::Identity,
    ws: &str,
    name: &str,
    kind: OperationKind,
) -> Result<Response, ApiError> {
    let op = state.service.link_operation(caller, ws, name, kind).await?;
    let mut response = (StatusCode::ACCEPTED, Json(operation_to_wire(&op))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/operations/{}", op.id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Planned switchover: the source's topics stop taking writes (with ACLs enforced there), the
/// target copies to zero lag, syncs group offsets a last time and stops mirroring; its topics
/// become writable. The link ends `promoted`.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/replication-links/{name}/promote", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The operation (`Location: /v1/operations/{id}`)", body = api::Operation),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`operation_in_progress`, `link_paused` or `link_stopped` (promoted already)")))]
pub async fn link_promote(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    operation(&state, &caller, &ws, &name, OperationKind::LinkPromote).await
}

/// Forced failover: every mirror partition stops at once at the target's high watermark; the
/// operation's result records the stop offsets and the loss bound (records, ms). The link ends
/// `failed_over`.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/replication-links/{name}/failover", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The operation (`Location: /v1/operations/{id}`)", body = api::Operation),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`operation_in_progress`, `link_paused` (resume first) or `link_stopped` (failed over already)")))]
pub async fn link_failover(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    operation(&state, &caller, &ws, &name, OperationKind::LinkFailover).await
}

/// Reverse after a promote or failover: the old source mirrors the old target (its diverged
/// records moved to `<topic>.quarantine` first), the old link is removed, and the link's
/// source and target swap. The link ends `mirroring`, the other way round.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/replication-links/{name}/reverse", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The operation (`Location: /v1/operations/{id}`)", body = api::Operation),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`operation_in_progress` or `link_not_stopped` (promote or fail over first)")))]
pub async fn link_reverse(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    operation(&state, &caller, &ws, &name, OperationKind::LinkReverse).await
}

/// Pauses mirroring (the target stops fetching; `resume` carries on from where it stopped).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/replication-links/{name}/pause", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The operation (`Location: /v1/operations/{id}`)", body = api::Operation),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`operation_in_progress`, `link_paused` (paused already) or `link_stopped`")))]
pub async fn link_pause(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    operation(&state, &caller, &ws, &name, OperationKind::LinkPause).await
}

/// Resumes a paused link.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/replication-links/{name}/resume", tag = "replication-links",
    params(("ws" = String, Path, description = "Workspace name"),
           ("name" = String, Path, description = "Link name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The operation (`Location: /v1/operations/{id}`)", body = api::Operation),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or link"),
        (status = 409, description = "`operation_in_progress`, `link_not_paused` or `link_stopped`")))]
pub async fn link_resume(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    operation(&state, &caller, &ws, &name, OperationKind::LinkResume).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic: &str, index: i32, state: &str, lag: u64, ms: u64) -> MirrorPartition {
        MirrorPartition {
            topic: topic.into(),
            partition: index,
            state: state.into(),
            lag_records: Some(lag),
            lag_bytes: Some(lag * 100),
            lag_ms: Some(ms),
            ..MirrorPartition::default()
        }
    }

    #[test]
    fn status_groups_partitions_per_topic_with_the_worst_state_and_the_rpo() {
        let view = LinkStatusView {
            observed: true,
            defined: true,
            partitions_reported: true,
            partitions: vec![
                partition("orders", 0, "active", 3, 40),
                partition("orders", 1, "source_unavailable", 7, 2500),
                partition("pay", 0, "active", 0, 0),
            ],
            ..LinkStatusView::default()
        };
        let wire = status_to_wire(&view);
        assert_eq!(wire.lag_records, Some(10));
        assert_eq!(wire.lag_bytes, Some(1000));
        assert_eq!(wire.rpo_seconds, Some(2.5));
        assert_eq!(wire.topics.len(), 2);
        assert_eq!(wire.topics[0].topic, "orders");
        assert_eq!(wire.topics[0].state, "source_unavailable");
        assert_eq!(wire.topics[0].lag_records, 10);
        assert_eq!(wire.topics[0].partitions[1].lag_seconds, Some(2.5));
        assert_eq!(wire.topics[1].state, "active");
        // Without per-partition reports there are no lag figures, not zeros.
        let bare = status_to_wire(&LinkStatusView {
            observed: true,
            ..LinkStatusView::default()
        });
        assert_eq!((bare.lag_records, bare.rpo_seconds), (None, None));
    }
}
