//! `Idempotency-Key` on POSTs, in-process against a real PostgreSQL database per test: a retry
//! replays the first answer, a reused key with another body is refused, keys are per user.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::ADMIN;

/// A POST as the platform admin, with `Idempotency-Key` when given: the status, the body and
/// `Idempotent-Replayed`.
async fn post(
    app: &axum::Router,
    uri: &str,
    key: Option<&str>,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let authorization = format!("Bearer {ADMIN}");
    let mut headers = vec![("authorization", authorization.as_str())];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let reply = common::request(app, "POST", uri, &headers, Some(body)).await;
    (reply.status, reply.body, reply.replayed)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retried_post_gets_the_first_answer(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let (status, first, replayed) = post(
        &app,
        "/v1/workspaces",
        Some("create-ws-1"),
        json!({"name": "pay"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);
    // The retry: same answer, marked replayed, and still one workspace.
    let (status, again, replayed) = post(
        &app,
        "/v1/workspaces",
        Some("create-ws-1"),
        json!({"name": "pay"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first);
    assert_eq!(replayed.as_deref(), Some("true"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // Without a key the second create is a conflict, as always.
    let (status, body, _) = post(&app, "/v1/workspaces", None, json!({"name": "pay"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "workspace_exists");
    // The key with another body is refused and creates nothing.
    let (status, body, _) = post(
        &app,
        "/v1/workspaces",
        Some("create-ws-1"),
        json!({"name": "other"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");
    // A refusal is an answer too: replayed, not re-run.
    let (status, body, _) = post(
        &app,
        "/v1/workspaces",
        Some("bad-name"),
        json!({"name": "Not A Label"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, replayed) = post(
        &app,
        "/v1/workspaces",
        Some("bad-name"),
        json!({"name": "Not A Label"}),
    )
    .await;
    assert_eq!(
        (status, replayed.as_deref()),
        (StatusCode::BAD_REQUEST, Some("true"))
    );
    // A malformed key names the header.
    let (status, body, _) = post(
        &app,
        "/v1/workspaces",
        Some(&"k".repeat(300)),
        json!({"name": "x1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "Idempotency-Key");
    // Concurrent first requests with one key: one creates, the others replay or wait.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            post(
                &app,
                "/v1/workspaces",
                Some("burst"),
                json!({"name": "burst"}),
            )
            .await
            .0
        }));
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE name = 'burst'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
