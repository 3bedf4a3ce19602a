//! The checked-in OpenAPI document matches the code, and the router matches the document.
//!
//! `cargo xtask codegen` (or this test with `HDI_UPDATE_GENERATED=1`) rewrites `openapi/hdi.json`.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use hdi_control_plane::AppState;
use hdi_control_plane::auth::Authenticator;
use hdi_control_plane::service::{Service, ServiceConfig};
use hdi_control_plane::store::Store;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt as _;

#[test]
fn openapi_document_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/hdi.json");
    let generated = hdi_control_plane::http::openapi_json();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if generated == checked_in {
        return;
    }
    if std::env::var_os("HDI_UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    panic!("openapi/hdi.json is stale: run `cargo xtask codegen` and commit the result");
}

/// The router's routes are exactly the document's operations (plus `/openapi.json` and the
/// Prometheus `/metrics`, which answer no JSON): every
/// route is documented, and no documented path or method goes unrouted.
///
/// The router's paths are read from axum's `Debug` output of the router (axum lists no routes
/// otherwise); which methods each path takes is probed with requests: a method the path lacks
/// answers `405 method_not_allowed`, a path no route matches `404` from the fallback. The app
/// runs over a pool that never connects (no database needed): every probe is refused by an
/// extractor or fails on the database, never routed differently.
#[tokio::test]
async fn router_serves_exactly_the_documented_operations() {
    let doc: serde_json::Value =
        serde_json::from_str(&hdi_control_plane::http::openapi_json()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((path.clone(), method.to_uppercase()));
        }
    }
    documented.insert(("/openapi.json".to_owned(), "GET".to_owned()));
    documented.insert(("/metrics".to_owned(), "GET".to_owned()));

    let app = app();
    let routed_paths = router_paths(&app);
    assert!(
        routed_paths.contains("/openapi.json") && routed_paths.contains("/v1/nodes/{id}"),
        "cannot read the router's paths from its Debug output: {routed_paths:?}"
    );
    let documented_paths: BTreeSet<String> = documented.iter().map(|(p, _)| p.clone()).collect();
    let undocumented: Vec<_> = routed_paths.difference(&documented_paths).collect();
    let unrouted: Vec<_> = documented_paths.difference(&routed_paths).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "paths routed but not documented: {undocumented:?}; documented but not routed: {unrouted:?}"
    );

    let mut routed = BTreeSet::new();
    for path in &routed_paths {
        for method in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ] {
            let uri = concrete(path);
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let fallback = status == StatusCode::NOT_FOUND
                && String::from_utf8_lossy(&body).contains("no such resource or endpoint");
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED || fallback;
            if !unrouted {
                routed.insert((path.clone(), method.as_str().to_owned()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
}

/// The app over a pool that never connects.
fn app() -> axum::Router {
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://hdi@127.0.0.1:1/hdi")
        .unwrap();
    let service = Service::new(
        Store::from_pool(pool),
        ServiceConfig {
            node_ready_timeout: Duration::from_secs(10),
        },
        Arc::new(tokio::sync::Notify::new()),
    );
    hdi_control_plane::http::router(AppState {
        service: Arc::new(service),
        auth: Arc::new(Authenticator::new("agent-token-0123456789")),
    })
}

/// The paths in axum's `Debug` output of `app`: its `path_router`'s `route_id_to_path`, before
/// the `fallback_router` (whose `/` and catch-all are the fallback's, not routes).
fn router_paths(app: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{app:?}");
    let routes = debug.split("fallback_router").next().unwrap_or_default();
    routes
        .split(": \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|path| path.starts_with('/') && !path.contains("__private__"))
        .map(str::to_owned)
        .collect()
}

/// `path` with each `{param}` replaced by a value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn openapi_document_lists_every_error_code() {
    let doc: serde_json::Value =
        serde_json::from_str(&hdi_control_plane::http::openapi_json()).unwrap();
    let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    for code in hdi_api::ErrorCode::ALL {
        assert!(
            listed.contains(&code.as_str()),
            "{code} missing from {listed:?}"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
