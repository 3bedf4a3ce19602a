//! The checked-in OpenAPI document matches the code.
//!
//! `cargo xtask codegen` (or this test with `HDI_UPDATE_GENERATED=1`) rewrites `openapi/hdi.json`.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

use std::path::Path;

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

#[test]
fn openapi_document_describes_every_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&hdi_control_plane::http::openapi_json()).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/healthz",
        "/readyz",
        "/v1/nodes",
        "/v1/nodes/{id}",
        "/v1/agent/nodes/{id}",
        "/v1/agent/nodes/{id}/heartbeat",
    ] {
        assert!(
            paths.iter().any(|p| p.as_str() == path),
            "{path} missing from {paths:?}"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
