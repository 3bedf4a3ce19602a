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

use common::{ADMIN, AGENT, app, call, expect};

fn registration(name: &str, fault_domain: u32) -> Value {
    json!({
        "name": name, "fault_domain": fault_domain, "address": "127.0.0.1", "agent_version": "0.1.0",
        "capacity": {"cpu_millis": 2000, "memory_bytes": 1_u64 << 30, "disk_bytes": 1_u64 << 34}
    })
}

/// Enrols node `id` with the bootstrap token; its own credential.
async fn enrol(app: &axum::Router, id: &str) -> String {
    let reply = expect(
        app,
        "POST",
        &format!("/v1/agent/nodes/{id}/credential"),
        Some(AGENT),
        None,
        StatusCode::CREATED,
    )
    .await;
    reply.body["credential"].as_str().unwrap().to_owned()
}

const ID_A: &str = "6f1c1d2e-0000-4000-8000-00000000000a";
const ID_B: &str = "6f1c1d2e-0000-4000-8000-00000000000b";

#[sqlx::test(migrations = "../migrations")]
async fn register_list_and_readiness(pool: PgPool) {
    let app = app(pool, Duration::from_millis(700)).await;
    let a = enrol(&app, ID_A).await;
    let reply = expect(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(a.as_str()),
        Some(registration("node-a", 1)),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply.body["incarnation"], 1);
    assert_eq!(reply.body["status"], "Ready");

    let list = expect(&app, "GET", "/v1/nodes", Some(ADMIN), None, StatusCode::OK).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["fault_domain"], 1);
    assert!(list.body.get("next_page_token").is_none());

    // Silent past the timeout: NotReady. A heartbeat brings it back.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let node = call(&app, "GET", &format!("/v1/nodes/{ID_A}"), Some(ADMIN), None).await;
    assert_eq!(node.body["status"], "NotReady", "{}", node.body);
    let capacity = json!({"capacity": {"cpu_millis": 1000, "memory_bytes": 1024, "disk_bytes": 5}});
    expect(
        &app,
        "POST",
        &format!("/v1/agent/nodes/{ID_A}/heartbeat"),
        Some(a.as_str()),
        Some(capacity),
        StatusCode::NO_CONTENT,
    )
    .await;
    let node = call(&app, "GET", &format!("/v1/nodes/{ID_A}"), Some(ADMIN), None).await;
    assert_eq!(node.body["status"], "Ready");
    assert_eq!(node.body["capacity"]["disk_bytes"], 5);

    // A restarted agent re-registers under the same id: a new incarnation of the same node.
    let again = call(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(a.as_str()),
        Some(registration("node-a", 1)),
    )
    .await;
    assert_eq!(again.body["incarnation"], 2);
    assert_eq!(again.body["registered_at"], reply.body["registered_at"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_input_gets_problem_documents(pool: PgPool) {
    let app = app(pool, Duration::from_secs(10)).await;
    let a = enrol(&app, ID_A).await;
    let b = enrol(&app, ID_B).await;
    call(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_A}"),
        Some(a.as_str()),
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
            Some(b.as_str()),
            Some(registration("node-a", 0)),
            StatusCode::CONFLICT,
            "node_name_taken",
            None,
        ),
        (
            "bad name",
            node_b.clone(),
            Some(b.as_str()),
            Some(registration("Node_B", 0)),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("name"),
        ),
        (
            "missing field",
            node_b.clone(),
            Some(b.as_str()),
            Some(json!({"name": "node-b"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            None,
        ),
        (
            "negative number",
            node_b.clone(),
            Some(b.as_str()),
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
            Some(b.as_str()),
            Some(registration("node-b", 0)),
            StatusCode::BAD_REQUEST,
            "invalid_path",
            None,
        ),
        (
            "unknown heartbeat",
            format!("{node_b}/heartbeat"),
            Some(b.as_str()),
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
            Some(a.as_str()),
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
        let credential = enrol(&app, &id).await;
        expect(
            &app,
            "PUT",
            &format!("/v1/agent/nodes/{id}"),
            Some(credential.as_str()),
            Some(registration(&format!("n{}", 4 - i), i)),
            StatusCode::OK,
        )
        .await;
    }
    let mut names = Vec::new();
    let mut uri = "/v1/nodes?page_size=2".to_owned();
    let mut pages = 0;
    loop {
        let page = expect(&app, "GET", &uri, Some(ADMIN), None, StatusCode::OK).await;
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
    let ready = expect(&app, "GET", "/readyz", None, None, StatusCode::OK).await;
    assert_eq!(ready.body["database"], "ok");
    // With the pool closed the database is unreachable: not ready, and why.
    pool.close().await;
    let ready = expect(
        &app,
        "GET",
        "/readyz",
        None,
        None,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(ready.body["status"], "not_ready");
    let spec = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(spec.body["info"]["title"], "hdi control plane");
}

#[sqlx::test(migrations = "../migrations")]
async fn each_agent_acts_for_its_own_node_only(pool: PgPool) {
    let app = app(pool, Duration::from_secs(10)).await;
    let a = enrol(&app, ID_A).await;
    let b = enrol(&app, ID_B).await;
    assert_ne!(a, b);
    for (id, credential) in [(ID_A, &a), (ID_B, &b)] {
        let name = if id == ID_A { "node-a" } else { "node-b" };
        expect(
            &app,
            "PUT",
            &format!("/v1/agent/nodes/{id}"),
            Some(credential.as_str()),
            Some(registration(name, 1)),
            StatusCode::OK,
        )
        .await;
    }
    let workloads = |id: &str| format!("/v1/agent/nodes/{id}/workloads");
    // A's credential reads A's assignment, not B's; nor can it heartbeat or re-register as B.
    let own = call(&app, "GET", &workloads(ID_A), Some(a.as_str()), None).await;
    assert_ne!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    assert_ne!(own.status, StatusCode::UNAUTHORIZED, "{}", own.body);
    expect(
        &app,
        "GET",
        &workloads(ID_B),
        Some(a.as_str()),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    let beat = json!({"capacity": {"cpu_millis": 1, "memory_bytes": 1, "disk_bytes": 1}});
    expect(
        &app,
        "POST",
        &format!("/v1/agent/nodes/{ID_B}/heartbeat"),
        Some(a.as_str()),
        Some(beat),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        &app,
        "PUT",
        &format!("/v1/agent/nodes/{ID_B}"),
        Some(a.as_str()),
        Some(registration("node-b", 7)),
        StatusCode::FORBIDDEN,
    )
    .await;
    // The bootstrap token enrols, nothing else; and only once per node.
    expect(
        &app,
        "GET",
        &workloads(ID_A),
        Some(AGENT),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let again = expect(
        &app,
        "POST",
        &format!("/v1/agent/nodes/{ID_A}/credential"),
        Some(AGENT),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(again.body["code"], "node_credential_exists");
    // A user's token cannot enrol.
    expect(
        &app,
        "POST",
        "/v1/agent/nodes/6f1c1d2e-0000-4000-8000-0000000000cc/credential",
        Some(ADMIN),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A platform admin revokes A's credential: it stops working; A enrols again.
    let revoke = format!("/v1/nodes/{ID_A}/credential");
    let reply = call(&app, "DELETE", &revoke, Some(AGENT), None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "agents cannot revoke"
    );
    expect(
        &app,
        "DELETE",
        &revoke,
        Some(ADMIN),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(
        &app,
        "DELETE",
        &revoke,
        Some(ADMIN),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &app,
        "GET",
        &workloads(ID_A),
        Some(a.as_str()),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let renewed = enrol(&app, ID_A).await;
    assert_ne!(renewed, a);
    let reply = call(&app, "GET", &workloads(ID_A), Some(renewed.as_str()), None).await;
    assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    // B was never affected.
    let reply = call(&app, "GET", &workloads(ID_B), Some(b.as_str()), None).await;
    assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}
