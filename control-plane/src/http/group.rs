//! Consumer groups of Kafka clusters over REST
//! (`/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups`), with their wire conversions. The
//! service answers synchronously through the Kafka protocol: list and describe `200`, reset
//! offsets `200` with the new offsets, delete `204`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api as api;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::kafka_admin::GroupMember;
use crate::service::{GroupView, PageRequest, ResetInput, ResetKind};

fn partition(p: i32) -> u32 {
    u32::try_from(p).unwrap_or_default()
}

fn member_to_wire(member: GroupMember) -> api::ConsumerGroupMember {
    let mut assignment: Vec<api::TopicPartitions> = Vec::new();
    for (topic, p) in member.assignment {
        match assignment.last_mut() {
            Some(last) if last.topic == topic => last.partitions.push(partition(p)),
            _ => assignment.push(api::TopicPartitions {
                topic,
                partitions: vec![partition(p)],
            }),
        }
    }
    api::ConsumerGroupMember {
        member_id: member.member_id,
        group_instance_id: member.group_instance_id,
        client_id: member.client_id,
        client_host: member.client_host,
        assignment,
    }
}

fn group_to_wire(view: GroupView) -> api::ConsumerGroup {
    let assignor = view.assignor();
    let description = view.description;
    api::ConsumerGroup {
        group_id: description.group_id,
        state: api::ConsumerGroupState::from_kafka(&description.state),
        protocol_type: description.protocol_type,
        assignor,
        coordinator: u32::try_from(description.coordinator).ok(),
        members: description
            .members
            .into_iter()
            .map(member_to_wire)
            .collect(),
        offsets: view
            .offsets
            .into_iter()
            .map(|row| api::ConsumerGroupOffset {
                topic: row.topic,
                partition: partition(row.partition),
                committed_offset: row.committed,
                end_offset: row.end,
                lag: row.lag,
                metadata: row.metadata,
                member_id: row.member_id,
            })
            .collect(),
        total_lag: view.total_lag,
    }
}

/// Lists a Kafka cluster's consumer groups by id, with their state, members and total lag.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups", tag = "consumer-groups",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of consumer groups", body = api::ConsumerGroupList),
        (status = 400, description = "Bad paging parameters, or not a Kafka cluster (`not_a_kafka_cluster`)"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn consumer_groups_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::ConsumerGroupList>, ApiError> {
    let page = PageRequest {
        page_size: params.page_size,
        page_token: params.page_token,
    };
    let (items, next) = state
        .service
        .groups_list(&caller, &ws, &cluster, page)
        .await?;
    Ok(Json(api::ConsumerGroupList {
        items: items
            .into_iter()
            .map(|g| api::ConsumerGroupSummary {
                group_id: g.group_id,
                state: api::ConsumerGroupState::from_kafka(&g.state),
                protocol_type: g.protocol_type,
                assignor: g.assignor,
                members: u32::try_from(g.members).unwrap_or(u32::MAX),
                total_lag: g.total_lag,
            })
            .collect(),
        next_page_token: next,
    }))
}

/// One consumer group: members with their assignments, and per partition the committed offset,
/// the end offset and the lag.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}", tag = "consumer-groups",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("group" = String, Path, description = "Group id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The group", body = api::ConsumerGroup),
        (status = 400, description = "An invalid group id (`field`: `group`), or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace, cluster or group"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn consumer_group_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, group)): ApiPath<(String, String, String)>,
) -> Result<Json<api::ConsumerGroup>, ApiError> {
    let view = state
        .service
        .group_get(&caller, &ws, &cluster, &group)
        .await?;
    Ok(Json(group_to_wire(view)))
}

/// Moves a consumer group's committed offsets to the earliest or latest offsets, a time or an
/// offset (or, with `dry_run`, only says where they would go). Only while the group has no
/// members.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets", tag = "consumer-groups",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("group" = String, Path, description = "Group id")),
    request_body = api::ConsumerGroupResetOffsets,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new offsets (committed unless `dry_run`)", body = api::ConsumerGroupOffsetsReset),
        (status = 400, description = "An invalid field (`field`: `group`, `timestamp_ms`, `offset`, `topics`), or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this (operator)"),
        (status = 404, description = "No such workspace, cluster or group"),
        (status = 409, description = "`group_not_empty`: the group has active members; or `cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn consumer_group_reset_offsets(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, group)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<api::ConsumerGroupResetOffsets>,
) -> Result<Json<api::ConsumerGroupOffsetsReset>, ApiError> {
    let input = ResetInput {
        to: match body.to {
            api::ResetTo::Earliest => ResetKind::Earliest,
            api::ResetTo::Latest => ResetKind::Latest,
            api::ResetTo::Timestamp => ResetKind::Timestamp,
            api::ResetTo::Offset => ResetKind::Offset,
        },
        timestamp_ms: body.timestamp_ms,
        offset: body.offset,
        topics: body.topics,
        dry_run: body.dry_run,
    };
    let dry_run = input.dry_run;
    let rows = state
        .service
        .group_reset_offsets(&caller, &ws, &cluster, &group, input)
        .await?;
    Ok(Json(api::ConsumerGroupOffsetsReset {
        group_id: group,
        dry_run,
        offsets: rows
            .into_iter()
            .map(|(topic, p, previous, new)| api::PartitionOffsetReset {
                topic,
                partition: partition(p),
                previous_offset: previous,
                new_offset: new,
            })
            .collect(),
    }))
}

/// Deletes a consumer group (its committed offsets). Only while it has no members.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}", tag = "consumer-groups",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("group" = String, Path, description = "Group id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "An invalid group id, or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this (operator)"),
        (status = 404, description = "No such workspace, cluster or group"),
        (status = 409, description = "`group_not_empty`: the group has active members; or `cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn consumer_group_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, group)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .group_delete(&caller, &ws, &cluster, &group)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
