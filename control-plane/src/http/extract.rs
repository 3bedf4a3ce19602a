//! Extractors that turn malformed requests into problem documents instead of axum's plain-text
//! rejections, and that authenticate the caller.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hdi_api::ErrorCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::AppState;
use crate::auth::{self, Identity};
use crate::service::ServiceError;

/// A JSON body; a malformed one answers `400 invalid_body` (or `415 unsupported_media_type`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON with Content-Type: application/json",
            )),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidBody,
                rejection.body_text(),
            )),
        }
    }
}

/// Path parameters; a malformed one (e.g. an id that is not a UUID) answers `400 invalid_path`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidPath,
                    rejection.body_text(),
                )
            })
    }
}

/// Query parameters; malformed ones answer `400 invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidQuery,
                    rejection.body_text(),
                )
            })
    }
}

/// An authenticated user: a JWT of ours, or (when the bearer is not JWT-shaped) an API token.
/// What the user may do is decided by the service call it makes.
pub struct Caller(pub Identity);

/// An authenticated platform admin (anyone else gets `403 forbidden`).
pub struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(identity) = Caller::from_request_parts(parts, state).await?;
        crate::service::require_platform_admin(&identity).map_err(ApiError::from)?;
        Ok(AdminCaller)
    }
}

/// Proof that the caller holds the node agents' bootstrap token, or a cluster's enrolment token
/// (good for enrolling only): the cluster the enrolled node will belong to, for the latter.
pub struct AgentCaller(pub Option<crate::model::ClusterId>);

/// A node agent, by its own credential: the node it may act for.
pub struct NodeCaller(pub crate::model::NodeId);

impl NodeCaller {
    /// `forbidden` unless the caller is node `id`'s agent.
    ///
    /// # Errors
    /// [`ApiError`] 403 for another node.
    pub fn must_be(&self, id: crate::model::NodeId) -> Result<(), ApiError> {
        if self.0 == id {
            Ok(())
        } else {
            tracing::warn!(caller = %self.0, node = %id, "refused: an agent acting for another node");
            Err(ApiError::from(crate::service::ServiceError::Forbidden {
                message: "an agent's credential is good for its own node only".into(),
            }))
        }
    }
}

/// Checks the request's bearer token with `check`; a missing or refused token is logged and
/// answers 401, any other failure answers as the service error says.
async fn by_bearer<T>(
    parts: &Parts,
    check: impl AsyncFnOnce(&str) -> Result<T, ServiceError>,
) -> Result<T, ApiError> {
    let token = auth::bearer(header(parts)).map_err(|reason| {
        refuse(parts, &reason);
        ApiError::from(reason)
    })?;
    match check(token).await {
        Ok(found) => Ok(found),
        Err(ServiceError::Unauthenticated(reason)) => {
            refuse(parts, &reason);
            Err(ApiError::from(reason))
        }
        Err(other) => Err(ApiError::from(other)),
    }
}

fn refuse(parts: &Parts, reason: &dyn std::fmt::Display) {
    tracing::warn!(
        method = %parts.method,
        path = %parts.uri.path(),
        %reason,
        "refused request: 401 unauthorized"
    );
}

fn header(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or(""))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// A bearer token when the request has an `Authorization` header; else the portal's session
    /// cookie, with the CSRF check for methods that change something.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.get(AUTHORIZATION).is_none()
            && let Some(secret) = session_cookie(&parts.headers)
        {
            check_csrf(parts)?;
            return match state.service.session_authenticate(secret).await {
                Ok(identity) => Ok(Caller(identity)),
                Err(ServiceError::Unauthenticated(reason)) => {
                    refuse(parts, &reason);
                    Err(ApiError::from(reason))
                }
                Err(other) => Err(ApiError::from(other)),
            };
        }
        by_bearer(parts, async |token| state.service.authenticate(token).await)
            .await
            .map(Caller)
    }
}

/// The portal's session cookie: an opaque secret (its SHA-256 is stored), HttpOnly so scripts
/// never read it, SameSite=Strict so other sites' pages never send it.
pub const SESSION_COOKIE: &str = "hdi_session";
/// The header a cookie-authenticated request that changes something must carry (any non-empty
/// value; the portal sends `portal`). A cross-site form cannot set it, and a cross-site script
/// cannot send it without a CORS preflight this API never grants.
pub const CSRF_HEADER: &str = "x-hdi-requested-by";

/// The session secret of the request's `hdi_session` cookie, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, secret)| secret.trim())
        .filter(|secret| !secret.is_empty())
}

/// Refuses (`403 csrf_failed`) a cookie-authenticated request that changes something unless it
/// carries [`CSRF_HEADER`], comes from no other origin (`Origin`, when sent, names this host)
/// and is not marked cross-site by the browser (`Sec-Fetch-Site`).
fn check_csrf(parts: &Parts) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = &parts.headers;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let reason = if text(CSRF_HEADER).is_none_or(|v| v.trim().is_empty()) {
        Some(
            "a request authenticated by the session cookie that changes something must carry the X-HDI-Requested-By header",
        )
    } else if let Some(origin) = text("origin")
        && origin_authority(origin) != text("host")
    {
        Some("the request comes from another origin than this API's")
    } else if text("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
        Some("the browser marks the request as cross-site")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), reason, "refused request: 403 csrf_failed");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfFailed,
                reason,
            ))
        }
    }
}

/// `host[:port]` of an `Origin` header (`scheme://host[:port]`); `None` for `null` or garbage.
fn origin_authority(origin: &str) -> Option<&str> {
    origin
        .split_once("://")
        .map(|(_, authority)| authority)
        .filter(|authority| !authority.is_empty() && !authority.contains('/'))
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let reason = match state.auth.check_agent(header(parts)) {
            Ok(_) => return Ok(AgentCaller(None)),
            Err(reason) => reason,
        };
        // Not the shared bootstrap token: perhaps a cluster's enrolment token (Kubernetes pods).
        if let Ok(token) = auth::bearer(header(parts))
            && let Some(cluster) = state.service.cluster_by_enrolment_token(token).await?
        {
            return Ok(AgentCaller(Some(cluster)));
        }
        refuse(parts, &reason);
        Err(ApiError::from(reason))
    }
}

impl FromRequestParts<AppState> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        by_bearer(parts, async |token| {
            state.service.node_by_credential(token).await
        })
        .await
        .map(NodeCaller)
    }
}
