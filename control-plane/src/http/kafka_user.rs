//! Kafka users of secured Kafka clusters over REST
//! (`/v1/workspaces/{ws}/clusters/{cluster}/kafka-users[/{name}[/rotate]]`), with their wire
//! conversions. Create and rotate answer the new password, once; ACLs and quotas are applied
//! before the answer (and kept by the reconciler).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api as api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;
use crate::model::{KafkaAclSpec, KafkaQuotaSpec, KafkaUserRecord};

/// The wire spelling of a unit enum (its serde name).
fn spelling<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

/// The enum a stored spelling names (stored values were written from the enum).
fn parse<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn acl_from_wire(acl: api::KafkaAcl) -> KafkaAclSpec {
    KafkaAclSpec {
        resource_type: spelling(&acl.resource_type),
        resource_name: acl.resource_name,
        pattern: spelling(&acl.pattern),
        operations: acl.operations.iter().map(spelling).collect(),
        permission: spelling(&acl.permission),
    }
}

fn acl_to_wire(acl: &KafkaAclSpec) -> Option<api::KafkaAcl> {
    Some(api::KafkaAcl {
        resource_type: parse(&acl.resource_type)?,
        resource_name: acl.resource_name.clone(),
        pattern: parse(&acl.pattern)?,
        operations: acl.operations.iter().filter_map(|o| parse(o)).collect(),
        permission: parse(&acl.permission)?,
    })
}

fn quotas_from_wire(quotas: api::KafkaQuotas) -> KafkaQuotaSpec {
    KafkaQuotaSpec {
        producer_byte_rate: quotas.producer_byte_rate,
        consumer_byte_rate: quotas.consumer_byte_rate,
        request_percentage: quotas.request_percentage,
    }
}

fn quotas_to_wire(quotas: &KafkaQuotaSpec) -> api::KafkaQuotas {
    api::KafkaQuotas {
        producer_byte_rate: quotas.producer_byte_rate,
        consumer_byte_rate: quotas.consumer_byte_rate,
        request_percentage: quotas.request_percentage,
    }
}

fn user_to_wire(cluster: &str, user: &KafkaUserRecord) -> api::KafkaUser {
    api::KafkaUser {
        name: user.name.clone(),
        cluster: cluster.to_owned(),
        mechanism: user.mechanism.clone(),
        acls: user.acls.iter().filter_map(acl_to_wire).collect(),
        quotas: quotas_to_wire(&user.quotas),
        state: if user.applied_generation >= user.generation {
            api::KafkaUserState::Applied
        } else {
            api::KafkaUserState::Pending
        },
        created_by: user.created_by.clone(),
        created_at: user.created_at,
        password_set_at: user.password_set_at,
    }
}

/// Creates a Kafka user: its SCRAM credential is set on the cluster and its ACLs applied; the
/// answer holds the password, shown this once.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per user, 24 h) get the first answer instead of acting twice")),
    request_body = api::KafkaUserCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the password is in the answer only", body = api::KafkaUserCredential),
        (status = 400, description = "An invalid field (`name`, `acls[i].<field>`, `quotas.<key>`), `not_a_kafka_cluster` or `kafka_users_unsupported`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "`kafka_user_exists` or `cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn kafka_user_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::KafkaUserCreate>,
) -> Result<(StatusCode, Json<api::KafkaUserCredential>), ApiError> {
    let acls = body.acls.into_iter().map(acl_from_wire).collect();
    let quotas = quotas_from_wire(body.quotas);
    let (user, password) = state
        .service
        .kafka_user_create(&caller, &ws, &cluster, &body.name, acls, quotas)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::KafkaUserCredential {
            user: user_to_wire(&cluster, &user),
            password,
        }),
    ))
}

/// A Kafka cluster's users by name (never their passwords).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The users", body = api::KafkaUserList),
        (status = 400, description = "`not_a_kafka_cluster`"),
        (status = 403, description = "The caller has no role in the workspace"),
        (status = 404, description = "No such workspace or cluster")))]
pub async fn kafka_users_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
) -> Result<Json<api::KafkaUserList>, ApiError> {
    let users = state
        .service
        .kafka_users_list(&caller, &ws, &cluster)
        .await?;
    Ok(Json(api::KafkaUserList {
        items: users.iter().map(|u| user_to_wire(&cluster, u)).collect(),
    }))
}

/// One Kafka user.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("name" = String, Path, description = "Kafka user name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = api::KafkaUser),
        (status = 400, description = "`not_a_kafka_cluster`"),
        (status = 403, description = "The caller has no role in the workspace"),
        (status = 404, description = "No such workspace, cluster or user")))]
pub async fn kafka_user_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, name)): ApiPath<(String, String, String)>,
) -> Result<Json<api::KafkaUser>, ApiError> {
    let user = state
        .service
        .kafka_user_get(&caller, &ws, &cluster, &name)
        .await?;
    Ok(Json(user_to_wire(&cluster, &user)))
}

/// Replaces a Kafka user's ACLs, its quotas or both; answers once the cluster has them.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("name" = String, Path, description = "Kafka user name")),
    request_body = api::KafkaUserPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user with its new ACLs and quotas", body = api::KafkaUser),
        (status = 400, description = "An invalid field (`acls[i].<field>`, `quotas.<key>`), `not_a_kafka_cluster` or `kafka_users_unsupported`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace, cluster or user"),
        (status = 409, description = "`cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn kafka_user_patch(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, name)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<api::KafkaUserPatch>,
) -> Result<Json<api::KafkaUser>, ApiError> {
    let acls = body
        .acls
        .map(|acls| acls.into_iter().map(acl_from_wire).collect());
    let quotas = body.quotas.map(quotas_from_wire);
    let user = state
        .service
        .kafka_user_update(&caller, &ws, &cluster, &name, acls, quotas)
        .await?;
    Ok(Json(user_to_wire(&cluster, &user)))
}

/// Deletes a Kafka user: its credential and ACLs leave the cluster.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("name" = String, Path, description = "Kafka user name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`not_a_kafka_cluster` or `kafka_users_unsupported`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace, cluster or user"),
        (status = 409, description = "`cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn kafka_user_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, name)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .kafka_user_delete(&caller, &ws, &cluster, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a Kafka user a new password (the old one stops working); the answer holds it, shown
/// this once.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}/rotate", tag = "kafka-users",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("name" = String, Path, description = "Kafka user name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per user, 24 h) get the first answer instead of acting twice")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new password, in the answer only", body = api::KafkaUserCredential),
        (status = 400, description = "`not_a_kafka_cluster` or `kafka_users_unsupported`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace, cluster or user"),
        (status = 409, description = "`cluster_not_ready`"),
        (status = 502, description = "Kafka answered with an error (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn kafka_user_rotate(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, name)): ApiPath<(String, String, String)>,
) -> Result<Json<api::KafkaUserCredential>, ApiError> {
    let (user, password) = state
        .service
        .kafka_user_rotate(&caller, &ws, &cluster, &name)
        .await?;
    Ok(Json(api::KafkaUserCredential {
        user: user_to_wire(&cluster, &user),
        password,
    }))
}
