//! Set-up shared by the in-process API tests: the service over a test database, behind the real
//! router, with fixed admin and agent tokens.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test helpers; not every test binary uses every helper"
)]

use std::sync::Arc;
use std::time::Duration;

use hdi_control_plane::auth::jwt::TokenSettings;
use hdi_control_plane::service::{Service, ServiceConfig};
use hdi_control_plane::store::Store;
use hdi_control_plane::{AppState, auth::Authenticator, http};
use sqlx::PgPool;

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
