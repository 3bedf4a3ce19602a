//! Topics of Kafka clusters over REST (`/v1/workspaces/{ws}/clusters/{cluster}/topics`), with
//! their wire conversions. The service answers synchronously through the Kafka admin protocol:
//! create is `201` with the topic, patch `200`, delete `204`; no operation is involved.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api as api;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::service::{PageRequest, TopicInput, TopicPatchInput, TopicView};

fn ids(list: &[i32]) -> Vec<u32> {
    list.iter()
        .filter_map(|id| u32::try_from(*id).ok())
        .collect()
}

fn topic_to_wire(view: TopicView) -> api::Topic {
    let replication_factor = view.replication_factor();
    let (configs, default_configs) = match view.configs {
        Some(c) => (Some(c.explicit), Some(c.defaults)),
        None => (None, None),
    };
    api::Topic {
        name: view.name,
        topic_id: view.topic_id,
        partitions: view
            .partitions
            .iter()
            .map(|p| api::PartitionState {
                partition: u32::try_from(p.partition).unwrap_or_default(),
                leader: u32::try_from(p.leader).ok(),
                replicas: ids(&p.replicas),
                isr: ids(&p.isr),
                offline: ids(&p.offline),
                start_offset: view.offsets.get(&p.partition).and_then(|o| o.0),
                end_offset: view.offsets.get(&p.partition).and_then(|o| o.1),
            })
            .collect(),
        replication_factor,
        configs,
        default_configs,
    }
}

/// Lists a Kafka cluster's topics by name.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of topics (without configs)", body = api::TopicList),
        (status = 400, description = "Bad paging parameters, or not a Kafka cluster (`not_a_kafka_cluster`)"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn topics_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::TopicList>, ApiError> {
    let page = PageRequest {
        page_size: params.page_size,
        page_token: params.page_token,
    };
    let (items, next) = state
        .service
        .topics_list(&caller, &ws, &cluster, page)
        .await?;
    Ok(Json(api::TopicList {
        items: items.into_iter().map(topic_to_wire).collect(),
        next_page_token: next,
    }))
}

/// Creates a topic through the Kafka admin protocol; answers once the cluster shows it.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per user, 24 h) get the first answer instead of acting twice")),
    request_body = api::TopicCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = api::Topic),
        (status = 400, description = "An invalid field (`field` names it: `name`, `partitions`, `replication_factor`, `configs.<key>`), `not_a_kafka_cluster` or `policy_violation`"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "`topic_exists`, `cluster_not_ready`, or `idempotency_key_in_use`"),
        (status = 422, description = "`idempotency_key_reused`: the Idempotency-Key was used for a different request"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn topic_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::TopicCreate>,
) -> Result<(StatusCode, Json<api::Topic>), ApiError> {
    let input = TopicInput {
        name: body.name,
        partitions: body.partitions,
        replication_factor: body.replication_factor,
        configs: body.configs,
    };
    let view = state
        .service
        .topic_create(&caller, &ws, &cluster, input)
        .await?;
    Ok((StatusCode::CREATED, Json(topic_to_wire(view))))
}

/// One topic with its partitions (leader, replicas, ISR) and configs.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("topic" = String, Path, description = "Topic name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The topic", body = api::Topic),
        (status = 400, description = "An invalid topic name, or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace, cluster or topic"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn topic_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, topic)): ApiPath<(String, String, String)>,
) -> Result<Json<api::Topic>, ApiError> {
    let view = state
        .service
        .topic_get(&caller, &ws, &cluster, &topic)
        .await?;
    Ok(Json(topic_to_wire(view)))
}

/// Adds partitions (never removes them) and sets or resets configs.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("topic" = String, Path, description = "Topic name")),
    request_body = api::TopicPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The topic after the change", body = api::Topic),
        (status = 400, description = "An invalid field (`partitions`, also for a shrink; `configs.<key>`), or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace, cluster or topic"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn topic_patch(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, topic)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<api::TopicPatch>,
) -> Result<Json<api::Topic>, ApiError> {
    let patch = TopicPatchInput {
        partitions: body.partitions,
        configs: body.configs,
    };
    let view = state
        .service
        .topic_patch(&caller, &ws, &cluster, &topic, patch)
        .await?;
    Ok(Json(topic_to_wire(view)))
}

/// Deletes a topic and its data; answers once the cluster no longer shows it.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("topic" = String, Path, description = "Topic name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "An invalid topic name, or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace, cluster or topic"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn topic_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, topic)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .topic_delete(&caller, &ws, &cluster, &topic)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
