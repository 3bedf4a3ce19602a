//! Set-up shared by the in-process API tests: the service over a test database, behind the real
//! router, with fixed admin and agent tokens; and one way to call it ([`request`], [`call`]).
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test helpers; not every test binary uses every helper"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use hdi_control_plane::auth::jwt::TokenSettings;
use hdi_control_plane::service::{Service, ServiceConfig};
use hdi_control_plane::store::Store;
use hdi_control_plane::{AppState, auth::Authenticator, http};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt as _;

/// The platform admin's API token.
pub const ADMIN: &str = "admin-token-0123456789";
/// The node agents' token.
pub const AGENT: &str = "agent-token-0123456789";

/// The token settings of every test.
pub fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "hdi-control-plane".into(),
        audience: "hdi-api".into(),
        ttl: Duration::from_secs(900),
    }
}

/// A started service (signing key loaded, `admin` bootstrapped) over `pool`.
pub async fn service(pool: PgPool, node_ready_timeout: Duration) -> Service {
    let service = Service::new(
        Store::from_pool(pool),
        ServiceConfig { node_ready_timeout },
        Arc::new(tokio::sync::Notify::new()),
    );
    service.auth_start(settings(), ADMIN).await.unwrap();
    service
}

/// The whole HTTP application over `pool`.
pub async fn app(pool: PgPool, node_ready_timeout: Duration) -> axum::Router {
    http::router(AppState {
        service: Arc::new(service(pool, node_ready_timeout).await),
        auth: Arc::new(Authenticator::new(AGENT)),
    })
}

/// What a call answered: the status, the JSON body (`Null` when empty, a string when not JSON),
/// and the headers tests look at.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
    /// `Content-Type` (empty when absent).
    pub content_type: String,
    /// `ETag`.
    pub etag: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// `WWW-Authenticate`.
    pub www_authenticate: Option<String>,
    /// `Idempotent-Replayed`.
    pub replayed: Option<String>,
    /// `Set-Cookie`.
    pub set_cookie: Option<String>,
}

/// Sends `method uri` with `headers` (and `body` as JSON) through `app`.
pub async fn request(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    // In a block, so that no borrow of the response lives across the body's await.
    let [
        content_type,
        etag,
        location,
        www_authenticate,
        replayed,
        set_cookie,
    ] = {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        [
            header("content-type"),
            header("etag"),
            header("location"),
            header("www-authenticate"),
            header("idempotent-replayed"),
            header("set-cookie"),
        ]
    };
    let content_type = content_type.unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status,
        body,
        content_type,
        etag,
        location,
        www_authenticate,
        replayed,
        set_cookie,
    }
}

/// [`request`] with `Authorization: Bearer <token>` when a token is given.
pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    request(app, method, uri, &headers, body).await
}

/// [`call`], asserting the reply's status (the message names the request and the reply).
pub async fn expect(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    status: StatusCode,
) -> Reply {
    let reply = call(app, method, uri, token, body).await;
    assert_eq!(reply.status, status, "{method} {uri}: {}", reply.body);
    reply
}
