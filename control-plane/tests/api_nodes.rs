//! The node API in-process (axum `oneshot`) against a real PostgreSQL database per test.
//!
//! Needs `DATABASE_URL` (set by `cargo xtask test`); `#[sqlx::test]` creates and migrates a fresh
//! database for each test.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]
#![allow(
    clippy::type_complexity,
    reason = "the table of bad-input cases reads best inline"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, AGENT, app, call};

fn registration(name: &str, fault_domain: u32) -> Value {
    json!({
        "name": name, "fault_domain": fault_domain, "address": "127.0.0.1", "agent_version": "0.1.0",
        "capacity": {"cpu_millis": 2000, "memory_bytes": 1_u64 << 30, "disk_bytes": 1_u64 << 34}
    })
}

const ID_A: &str = "6f1c1d2e-0000-4000-8000-00000000000a";
const ID_B: &str = "6f1c1d2e-0000-4000-8000-00000000000b";

#[sqlx::test(migrations = "../migrations")]
async fn register_list_and_readiness(pool: PgPool) {
    let app = app(pool, Duration::from_millis(700)).await;
    let reply = call(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(AGENT),
        Some(registration("node-a", 1)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["incarnation"], 1);
    assert_eq!(reply.body["status"], "Ready");

    let list = call(&app, "GET", "/v1/nodes", Some(ADMIN), None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["fault_domain"], 1);
    assert!(list.body.get("next_page_token").is_none());

    // Silent past the timeout: NotReady. A heartbeat brings it back.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let node = call(&app, "GET", &format!("/v1/nodes/{ID_A}"), Some(ADMIN), None).await;
    assert_eq!(node.body["status"], "NotReady", "{}", node.body);
    let capacity = json!({"capacity": {"cpu_millis": 1000, "memory_bytes": 1024, "disk_bytes": 5}});
    let beat = call(
        &app,
        "POST",
        &format!("/v1/agent/nodes/{ID_A}/heartbeat"),
        Some(AGENT),
        Some(capacity),
    )
    .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT);
    let node = call(&app, "GET", &format!("/v1/nodes/{ID_A}"), Some(ADMIN), None).await;
    assert_eq!(node.body["status"], "Ready");
    assert_eq!(node.body["capacity"]["disk_bytes"], 5);

    // A restarted agent re-registers under the same id: a new incarnation of the same node.
    let again = call(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(AGENT),
        Some(registration("node-a", 1)),
    )
    .await;
    assert_eq!(again.body["incarnation"], 2);
    assert_eq!(again.body["registered_at"], reply.body["registered_at"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_input_gets_problem_documents(pool: PgPool) {
    let app = app(pool, Duration::from_secs(10)).await;
    call(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(AGENT),
        Some(registration("node-a", 0)),
    )
    .await;
    let node_a = format!("/v1/agent/nodes/{ID_A}");
    let node_b = format!("/v1/agent/nodes/{ID_B}");
    let cases: Vec<(
        &str,
        String,
        Option<&str>,
        Option<Value>,
        StatusCode,
        &str,
        Option<&str>,
    )> = vec![
        (
            "name taken",
            node_b.clone(),
            Some(AGENT),
            Some(registration("node-a", 0)),
            StatusCode::CONFLICT,
            "node_name_taken",
            None,
        ),
        (
            "bad name",
            node_b.clone(),
            Some(AGENT),
            Some(registration("Node_B", 0)),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("name"),
        ),
        (
            "missing field",
            node_b.clone(),
            Some(AGENT),
            Some(json!({"name": "node-b"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            None,
        ),
        (
            "negative number",
            node_b.clone(),
            Some(AGENT),
            Some(
                json!({"name": "node-b", "fault_domain": -1, "address": "a", "agent_version": "1", "capacity": {"cpu_millis": 1, "memory_bytes": 1, "disk_bytes": 1}}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            None,
        ),
        (
            "bad uuid",
            "/v1/agent/nodes/not-a-uuid".into(),
            Some(AGENT),
            Some(registration("node-b", 0)),
            StatusCode::BAD_REQUEST,
            "invalid_path",
            None,
        ),
        (
            "unknown heartbeat",
            format!("{node_b}/heartbeat"),
            Some(AGENT),
            Some(json!({"capacity": {"cpu_millis": 1, "memory_bytes": 1, "disk_bytes": 1}})),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "no token",
            node_a.clone(),
            None,
            Some(registration("node-a", 0)),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        ),
        (
            "admin token on agent endpoint",
            node_a.clone(),
            Some(ADMIN),
            Some(registration("node-a", 0)),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        ),
        (
            "agent token on admin endpoint",
            "/v1/nodes".into(),
            Some(AGENT),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        ),
        (
            "wrong token",
            "/v1/nodes".into(),
            Some("guess-guess-guess-guess"),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        ),
        (
            "bad page size",
            "/v1/nodes?page_size=0".into(),
            Some(ADMIN),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("page_size"),
        ),
        (
            "bad page token",
            "/v1/nodes?page_token=zz".into(),
            Some(ADMIN),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("page_token"),
        ),
        (
            "non-numeric page size",
            "/v1/nodes?page_size=many".into(),
            Some(ADMIN),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "huge heartbeat capacity",
            format!("{node_a}/heartbeat"),
            Some(AGENT),
            Some(json!({"capacity": {"cpu_millis": 1, "memory_bytes": 1, "disk_bytes": u64::MAX}})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("capacity.disk_bytes"),
        ),
        (
            "unknown node",
            format!("/v1/nodes/{ID_B}"),
            Some(ADMIN),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "unknown route",
            "/v1/nope".into(),
            Some(ADMIN),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
    ];
    for (case, uri, token, body, status, code, field) in cases {
        let method = if uri.ends_with("heartbeat") {
            "POST"
        } else if body.is_some() {
            "PUT"
        } else {
            "GET"
        };
        let reply = call(&app, method, &uri, token, body).await;
        assert_eq!(reply.status, status, "case {case}: {}", reply.body);
        assert_eq!(
            reply.content_type, "application/problem+json",
            "case {case}"
        );
        assert_eq!(reply.body["code"], code, "case {case}: {}", reply.body);
        assert_eq!(reply.body["status"], status.as_u16(), "case {case}");
        assert_eq!(reply.body["field"].as_str(), field, "case {case}");
        assert_eq!(
            reply.www_authenticate.is_some(),
            status == StatusCode::UNAUTHORIZED,
            "case {case}"
        );
    }
    // Nothing above changed the registered node.
    let list = call(&app, "GET", "/v1/nodes", Some(ADMIN), None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["incarnation"], 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn lists_are_paginated_by_name(pool: PgPool) {
    let app = app(pool, Duration::from_secs(10)).await;
    for i in 0..5 {
        let id = format!("6f1c1d2e-0000-4000-8000-00000000010{i}");
        let reply = call(
            &app,
            "PUT",
            &format!("/v1/agent/nodes/{id}"),
            Some(AGENT),
            Some(registration(&format!("n{}", 4 - i), i)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let mut names = Vec::new();
    let mut uri = "/v1/nodes?page_size=2".to_owned();
    let mut pages = 0;
    loop {
        let page = call(&app, "GET", &uri, Some(ADMIN), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        names.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_owned()),
        );
        match page.body["next_page_token"].as_str() {
            Some(token) => uri = format!("/v1/nodes?page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["n0", "n1", "n2", "n3", "n4"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn health_and_readiness(pool: PgPool) {
    let app = app(pool.clone(), Duration::from_secs(10)).await;
    let health = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = call(&app, "GET", "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "ok");
    // With the pool closed the database is unreachable: not ready, and why.
    pool.close().await;
    let ready = call(&app, "GET", "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "not_ready");
    let spec = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(spec.body["info"]["title"], "hdi control plane");
}
