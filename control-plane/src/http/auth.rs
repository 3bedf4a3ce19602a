//! Authentication and authorization over REST: the JWKS, token exchange, users, API tokens and
//! workspace role bindings, with their wire conversions.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hdi_api as api;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::auth::Role;
use crate::auth::jwt::ALGORITHM;
use crate::model::{RoleBindingRecord, UserRecord};
use crate::service::{Grant, PageRequest};

/// The public keys access tokens are signed with (no authentication).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The JSON Web Key Set", body = api::Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<api::Jwks>, ApiError> {
    Ok(Json(jwks_document(&state)?))
}

/// The JSON Web Key Set the control plane's tokens verify against (also what secured brokers
/// get for OAUTHBEARER).
pub(super) fn jwks_document(state: &AppState) -> Result<api::Jwks, ApiError> {
    let keys = state.service.jwks()?;
    Ok(api::Jwks {
        keys: keys
            .into_iter()
            .map(|k| api::Jwk {
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                x: k.x,
                kid: k.kid,
                alg: ALGORITHM.to_owned(),
                key_use: "sig".to_owned(),
            })
            .collect(),
    })
}

/// Exchanges a username and password, or an API token, for a short-lived access token (a JWT
/// signed by the control plane; no authentication).
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = api::TokenRequest,
    responses(
        (status = 200, description = "An access token", body = api::TokenResponse),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "`invalid_credentials`: unknown user, wrong password, or unknown or expired API token"),
        (status = 429, description = "`rate_limited`: too many failed logins of the username, or too many logins at once; retry after `Retry-After` seconds")))]
pub async fn token(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<api::TokenRequest>,
) -> Result<Response, ApiError> {
    let grant = match body {
        api::TokenRequest::Password { username, password } => {
            Grant::Password { username, password }
        }
        api::TokenRequest::ApiToken { token } => Grant::ApiToken { token },
    };
    let issued = state.service.token_issue(grant).await?;
    let body = api::TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: issued.expires_in,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Creates a user (platform admins only).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = api::UserCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = api::User),
        (status = 400, description = "Invalid username or password"),
        (status = 403, description = "Not a platform admin"),
        (status = 409, description = "The username is taken")))]
pub async fn user_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<api::UserCreate>,
) -> Result<(StatusCode, Json<api::User>), ApiError> {
    let user = state
        .service
        .user_create(&caller, &body.username, &body.password)
        .await?;
    Ok((StatusCode::CREATED, Json(user_to_wire(&user))))
}

/// Lists users by name (platform admins only).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = api::UserList),
        (status = 403, description = "Not a platform admin")))]
pub async fn users_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::UserList>, ApiError> {
    let (items, next) = state
        .service
        .users_list(
            &caller,
            PageRequest {
                page_size: params.page_size,
                page_token: params.page_token,
            },
        )
        .await?;
    Ok(Json(api::UserList {
        items: items.iter().map(user_to_wire).collect(),
        next_page_token: next,
    }))
}

/// Deletes a user with its API tokens and role bindings; its access tokens stop working at once
/// (platform admins only; the built-in `admin` cannot be deleted).
#[utoipa::path(delete, path = "/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Username")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not a platform admin"),
        (status = 404, description = "No such user"),
        (status = 409, description = "The built-in admin")))]
pub async fn user_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.service.user_delete(&caller, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an API token for a user (platform admins, or the user for themself). The secret is
/// in this answer only.
#[utoipa::path(post, path = "/v1/users/{username}/api-tokens", tag = "users",
    params(("username" = String, Path, description = "Username")),
    request_body = api::ApiTokenCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `token` is the secret", body = api::ApiTokenCreated),
        (status = 400, description = "Invalid name or lifetime"),
        (status = 403, description = "Another user's, and not a platform admin"),
        (status = 404, description = "No such user"),
        (status = 409, description = "The user has a token of that name")))]
pub async fn api_token_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<api::ApiTokenCreate>,
) -> Result<Response, ApiError> {
    let created = state
        .service
        .api_token_create(&caller, &username, &body.name, body.expires_in_days)
        .await?;
    let body = api::ApiTokenCreated {
        id: created.record.id,
        name: created.record.name,
        username,
        token: created.secret,
        created_at: created.record.created_at,
        expires_at: created.record.expires_at,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

/// Lists a user's API tokens (platform admins, or the user for themself); never their secrets.
#[utoipa::path(get, path = "/v1/users/{username}/api-tokens", tag = "users",
    params(("username" = String, Path, description = "Username")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens, by name", body = api::ApiTokenList),
        (status = 403, description = "Another user's, and not a platform admin"),
        (status = 404, description = "No such user")))]
pub async fn api_tokens_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<api::ApiTokenList>, ApiError> {
    let tokens = state.service.api_tokens_list(&caller, &username).await?;
    Ok(Json(api::ApiTokenList {
        items: tokens
            .into_iter()
            .map(|t| api::ApiToken {
                id: t.id,
                name: t.name,
                created_at: t.created_at,
                expires_at: t.expires_at,
                last_used_at: t.last_used_at,
            })
            .collect(),
    }))
}

/// Revokes a user's API token (platform admins, or the user for themself): it stops working at
/// once.
#[utoipa::path(delete, path = "/v1/users/{username}/api-tokens/{name}", tag = "users",
    params(
        ("username" = String, Path, description = "Username"),
        ("name" = String, Path, description = "Token name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Another user's, and not a platform admin"),
        (status = 404, description = "No such user or token")))]
pub async fn api_token_revoke(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((username, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .api_token_revoke(&caller, &username, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a workspace's role bindings (platform admins and the workspace's admins).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/role-bindings", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The bindings", body = api::RoleBindingList),
        (status = 403, description = "Not an admin of the workspace"),
        (status = 404, description = "No such workspace")))]
pub async fn role_bindings_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<api::RoleBindingList>, ApiError> {
    let items = state.service.role_bindings_list(&caller, &ws).await?;
    Ok(Json(api::RoleBindingList {
        items: items.iter().map(binding_to_wire).collect(),
    }))
}

/// Grants a user a role in the workspace, replacing its previous one (platform admins and the
/// workspace's admins).
#[utoipa::path(put, path = "/v1/workspaces/{ws}/role-bindings/{username}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace name"), ("username" = String, Path, description = "Username")),
    request_body = api::RoleBindingPut,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The binding", body = api::RoleBinding),
        (status = 403, description = "Not an admin of the workspace"),
        (status = 404, description = "No such workspace or user")))]
pub async fn role_binding_put(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, username)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::RoleBindingPut>,
) -> Result<Json<api::RoleBinding>, ApiError> {
    let record = state
        .service
        .role_binding_put(&caller, &ws, &username, role_from_wire(body.role))
        .await?;
    Ok(Json(binding_to_wire(&record)))
}

/// Removes a user's role in the workspace (platform admins and the workspace's admins).
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/role-bindings/{username}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace name"), ("username" = String, Path, description = "Username")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin of the workspace"),
        (status = 404, description = "No such workspace, user or binding")))]
pub async fn role_binding_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .role_binding_delete(&caller, &ws, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_to_wire(user: &UserRecord) -> api::User {
    api::User {
        id: user.id.into_uuid(),
        username: user.username.clone(),
        platform_admin: user.platform_admin,
        created_at: user.created_at,
    }
}

fn role_from_wire(role: api::Role) -> Role {
    match role {
        api::Role::Viewer => Role::Viewer,
        api::Role::Operator => Role::Operator,
        api::Role::Admin => Role::Admin,
    }
}

fn role_to_wire(role: Role) -> api::Role {
    match role {
        Role::Viewer => api::Role::Viewer,
        Role::Operator => api::Role::Operator,
        Role::Admin => api::Role::Admin,
    }
}

fn binding_to_wire(record: &RoleBindingRecord) -> api::RoleBinding {
    api::RoleBinding {
        workspace: record.workspace.clone(),
        username: record.username.clone(),
        role: role_to_wire(record.role),
        created_at: record.created_at,
    }
}
