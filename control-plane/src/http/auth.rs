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

/// Logs in to the portal with a username and password, or with an API token (the built-in
/// platform admin has only its token; no authentication): sets the
/// `hdi_session` cookie (HttpOnly, SameSite=Strict, Path=/; Secure behind an HTTPS proxy) and
/// answers who the caller is. The session ends after 12 hours, after 30 minutes unused, or at
/// logout. Requests authenticated by the cookie that change something must carry the
/// `X-HDI-Requested-By` header and come from this origin (`403 csrf_failed`). Scripts and
/// `hdictl` use bearer tokens instead.
#[utoipa::path(post, path = "/v1/auth/session", tag = "auth", request_body = api::SessionCreate,
    responses(
        (status = 200, description = "Logged in", body = api::Me,
            headers(("Set-Cookie" = String, description = "`hdi_session=<secret>; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`"))),
        (status = 400, description = "Malformed request"),
        (status = 401, description = "`invalid_credentials`: unknown user, wrong password, or unknown or expired API token"),
        (status = 429, description = "`rate_limited`: too many failed logins of the username, or too many logins at once; retry after `Retry-After` seconds")))]
pub async fn session_create(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<api::SessionCreate>,
) -> Result<Response, ApiError> {
    let grant = match body {
        api::SessionCreate::Password { username, password } => {
            Grant::Password { username, password }
        }
        api::SessionCreate::ApiToken { api_token } => Grant::ApiToken { token: api_token },
    };
    let (secret, identity) = state.service.session_create(grant).await?;
    let me = me_document(&state, &identity).await?;
    let max_age = crate::service::SESSION_LIFETIME.as_secs();
    let cookie = session_cookie(&headers, &secret, max_age);
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(me),
    )
        .into_response())
}

/// Logs out: ends the session of the request's `hdi_session` cookie and clears the cookie.
#[utoipa::path(delete, path = "/v1/auth/session", tag = "auth",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out (the cookie is cleared)"),
        (status = 403, description = "`csrf_failed`: a cookie-authenticated request without `X-HDI-Requested-By`, or from another origin")))]
pub async fn session_delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = super::extract::session_cookie(&headers) {
        state.service.session_end(&caller, secret).await?;
    }
    let cookie = session_cookie(&headers, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Who the caller is: username, whether a platform admin, and its role in each workspace. What
/// a client shows its controls from; the server still checks every call.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "The caller", body = api::Me)))]
pub async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<api::Me>, ApiError> {
    Ok(Json(me_document(&state, &caller).await?))
}

async fn me_document(
    state: &AppState,
    caller: &crate::auth::Identity,
) -> Result<api::Me, ApiError> {
    let bindings = state.service.me(caller).await?;
    Ok(api::Me {
        username: caller.username.clone(),
        platform_admin: caller.platform_admin,
        workspaces: bindings
            .iter()
            .map(|b| api::WorkspaceRole {
                workspace: b.workspace.clone(),
                role: role_to_wire(b.role),
            })
            .collect(),
    })
}

/// The `Set-Cookie` value of the session cookie (`max_age` 0 clears it). `Secure` when the
/// request came through an HTTPS proxy (`X-Forwarded-Proto: https`), so the browser never sends
/// it in clear there.
fn session_cookie(headers: &axum::http::HeaderMap, secret: &str, max_age: u64) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    format!(
        "{}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        super::extract::SESSION_COOKIE,
        if https { "; Secure" } else { "" }
    )
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

/// The OAuth 2.0 token endpoint for the client-credentials grant (RFC 6749 §4.4): a service (or
/// a Kafka client: the Java client's `OAuthBearerLoginCallbackHandler`, librdkafka's
/// `sasl.oauthbearer.method=oidc`) gets an access token for OAUTHBEARER with its username as
/// client id and one of its API tokens as client secret. Errors are RFC 6749's JSON (what OAuth
/// clients parse), except 429 and server faults, which are problem documents as elsewhere.
#[utoipa::path(post, path = "/v1/auth/oauth2/token", tag = "auth",
    request_body(content = api::ClientCredentialsRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token", body = api::TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope`", body = api::OAuthError),
        (status = 401, description = "`invalid_client`: no client authentication, an unknown user, or a secret that is not an unexpired API token of that user", body = api::OAuthError,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"hdi\"` when the client used HTTP Basic"))),
        (status = 429, description = "`rate_limited`: retry after `Retry-After` seconds")))]
pub async fn oauth2_token(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let request = match oauth2::parse(&headers, &body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let basic = request.basic;
    let grant = Grant::ClientCredentials {
        client_id: request.client_id,
        client_secret: request.client_secret,
    };
    match state.service.token_issue(grant).await {
        Ok(issued) => {
            let body = api::TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
            };
            (
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::PRAGMA, "no-cache"),
                ],
                Json(body),
            )
                .into_response()
        }
        Err(crate::service::ServiceError::InvalidCredentials) => oauth2::OAuthFailure {
            code: api::OAuthErrorCode::InvalidClient,
            description: "unknown client, or the secret is not an unexpired API token of that user"
                .to_owned(),
            basic,
        }
        .into_response(),
        Err(other) => ApiError::from(other).into_response(),
    }
}

/// Parsing of the token endpoint's form and client authentication (pure, unit-tested).
mod oauth2 {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use base64::Engine as _;
    use hdi_api as api;

    /// The longest body or parameter the endpoint reads.
    const MAX_BODY: usize = 8 * 1024;

    /// A well-formed client-credentials request.
    #[derive(PartialEq, Eq)]
    pub(super) struct Request {
        pub client_id: String,
        pub client_secret: String,
        /// The client authenticated with HTTP Basic (a 401 then carries `WWW-Authenticate`).
        pub basic: bool,
    }

    impl std::fmt::Debug for Request {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Request")
                .field("client_id", &self.client_id)
                .field("basic", &self.basic)
                .finish_non_exhaustive()
        }
    }

    /// An RFC 6749 §5.2 error answer.
    #[derive(Debug)]
    pub(super) struct OAuthFailure {
        pub code: api::OAuthErrorCode,
        pub description: String,
        pub basic: bool,
    }

    fn invalid(code: api::OAuthErrorCode, description: impl Into<String>) -> OAuthFailure {
        OAuthFailure {
            code,
            description: description.into(),
            basic: false,
        }
    }

    impl IntoResponse for OAuthFailure {
        fn into_response(self) -> Response {
            let status = if self.code == api::OAuthErrorCode::InvalidClient {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            let body = api::OAuthError {
                error: self.code,
                error_description: self.description,
            };
            let mut response = (
                status,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::PRAGMA, "no-cache"),
                ],
                axum::Json(body),
            )
                .into_response();
            if self.basic && status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"hdi\""),
                );
            }
            response
        }
    }

    /// The client id and secret of `Authorization: Basic`, each form-urlencoded (RFC 6749
    /// §2.3.1); `None` without such a header.
    fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthFailure> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let malformed = || OAuthFailure {
            code: api::OAuthErrorCode::InvalidClient,
            description: "the Authorization header is not `Basic` with base64 of `id:secret`"
                .to_owned(),
            basic: true,
        };
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_BODY {
            return Err(malformed());
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        let unescape = |part: &str| -> String {
            form_urlencoded::parse(format!("v={part}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(Some((unescape(id), unescape(secret))))
    }

    /// Reads the form and the client's authentication.
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Request, OAuthFailure> {
        use api::OAuthErrorCode::{
            InvalidClient, InvalidRequest, InvalidScope, UnsupportedGrantType,
        };
        let form_typed = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_typed {
            return Err(invalid(
                InvalidRequest,
                "send the parameters as Content-Type: application/x-www-form-urlencoded",
            ));
        }
        if body.len() > MAX_BODY {
            return Err(invalid(InvalidRequest, "the body is too long"));
        }
        let mut grant_type = None;
        let mut client_id = None;
        let mut client_secret = None;
        let mut scope = None;
        for (name, value) in form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "grant_type" => &mut grant_type,
                "client_id" => &mut client_id,
                "client_secret" => &mut client_secret,
                "scope" => &mut scope,
                // RFC 6749 §3.2: unknown parameters are ignored.
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(invalid(
                    InvalidRequest,
                    format!("`{name}` is given more than once"),
                ));
            }
        }
        match grant_type.as_deref() {
            None | Some("") => return Err(invalid(InvalidRequest, "`grant_type` is missing")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(invalid(
                    UnsupportedGrantType,
                    format!(
                        "`grant_type` {:?} is not supported; use `client_credentials`",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        if scope.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            return Err(invalid(
                InvalidScope,
                "scopes are not supported: an access token carries its user's roles; send no `scope`",
            ));
        }
        let basic = basic_credentials(headers)?;
        let in_body = client_id.is_some() || client_secret.is_some();
        let (client_id, client_secret, basic) = match (basic, in_body) {
            (Some(_), true) => {
                return Err(invalid(
                    InvalidRequest,
                    "the client authenticates with HTTP Basic or with `client_id` and `client_secret` in the body, not both",
                ));
            }
            (Some((id, secret)), false) => (id, secret, true),
            (None, _) => match (client_id, client_secret) {
                (Some(id), Some(secret)) => (id, secret, false),
                _ => {
                    return Err(invalid(
                        InvalidClient,
                        "no client authentication: send `Authorization: Basic` with the username and an API token, or `client_id` and `client_secret`",
                    ));
                }
            },
        };
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(OAuthFailure {
                code: InvalidClient,
                description: "the client id and secret must not be empty".to_owned(),
                basic,
            });
        }
        Ok(Request {
            client_id,
            client_secret,
            basic,
        })
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, reason = "tests")]
        use super::*;
        use api::OAuthErrorCode as C;

        fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k, v.parse().unwrap());
            }
            h
        }

        fn form() -> (header::HeaderName, &'static str) {
            (header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        }

        fn code(result: Result<Request, OAuthFailure>) -> C {
            result.unwrap_err().code
        }

        #[test]
        fn basic_and_body_credentials_are_read() {
            // Java URL-encodes the id and secret before base64; librdkafka does not.
            let basic = base64::engine::general_purpose::STANDARD.encode("svc%2Bone:s%3Acret+x");
            let h = headers(&[form(), (header::AUTHORIZATION, &format!("Basic {basic}"))]);
            let r = parse(&h, b"grant_type=client_credentials").unwrap();
            assert_eq!(
                (r.client_id.as_str(), r.client_secret.as_str(), r.basic),
                ("svc+one", "s:cret x", true)
            );
            let h = headers(&[form()]);
            let r = parse(
                &h,
                b"grant_type=client_credentials&client_id=alice&client_secret=hdi_x&extra=1",
            )
            .unwrap();
            assert_eq!(
                (r.client_id.as_str(), r.client_secret.as_str(), r.basic),
                ("alice", "hdi_x", false)
            );
            assert!(!format!("{r:?}").contains("hdi_x"));
        }

        #[test]
        fn bad_requests_get_rfc_6749_codes() {
            let body = b"grant_type=client_credentials&client_id=a&client_secret=b";
            // Not a form.
            let json = headers(&[(header::CONTENT_TYPE, "application/json")]);
            assert_eq!(code(parse(&json, body)), C::InvalidRequest);
            let h = headers(&[form()]);
            assert_eq!(
                code(parse(&h, b"client_id=a&client_secret=b")),
                C::InvalidRequest
            );
            assert_eq!(
                code(parse(
                    &h,
                    b"grant_type=password&client_id=a&client_secret=b"
                )),
                C::UnsupportedGrantType
            );
            assert_eq!(
                code(parse(
                    &h,
                    b"grant_type=client_credentials&grant_type=client_credentials&client_id=a&client_secret=b"
                )),
                C::InvalidRequest
            );
            assert_eq!(
                code(parse(
                    &h,
                    b"grant_type=client_credentials&scope=kafka&client_id=a&client_secret=b"
                )),
                C::InvalidScope
            );
            assert_eq!(
                code(parse(&h, b"grant_type=client_credentials&client_id=a")),
                C::InvalidClient
            );
            assert_eq!(
                code(parse(
                    &h,
                    b"grant_type=client_credentials&client_id=&client_secret=b"
                )),
                C::InvalidClient
            );
            // Two ways of authenticating at once.
            let basic = base64::engine::general_purpose::STANDARD.encode("a:b");
            let both = headers(&[form(), (header::AUTHORIZATION, &format!("Basic {basic}"))]);
            assert_eq!(code(parse(&both, body)), C::InvalidRequest);
            // A Bearer header is not client authentication.
            let bearer = headers(&[form(), (header::AUTHORIZATION, "Bearer x.y.z")]);
            let failure = parse(&bearer, b"grant_type=client_credentials").unwrap_err();
            assert_eq!((failure.code, failure.basic), (C::InvalidClient, true));
            let garbage = headers(&[form(), (header::AUTHORIZATION, "Basic !!!")]);
            assert_eq!(
                code(parse(&garbage, b"grant_type=client_credentials")),
                C::InvalidClient
            );
        }
    }
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
        id: created.record.id.into_uuid(),
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
                id: t.id.into_uuid(),
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
