//! Consumer groups and cluster metrics in-process, against a real PostgreSQL database per test:
//! the role checks (viewers read, operators reset and delete, no role is 404), validation before
//! any cluster is asked, clusters that cannot serve, the audit of refusals, and the metrics of a
//! cluster never sampled. (Against real brokers and consumers: `e2e/tests/consumer_groups.rs`.)
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, call, expect};

const GROUPS: &str = "/v1/workspaces/ws/clusters/kafka/consumer-groups";
const PASSWORD: &str = "correct horse battery staple";

/// A workspace `ws` with a (never placed, so Pending) Kafka cluster `kafka` and Spark cluster
/// `spark`, and users `vera` (viewer), `olga` (operator) and `nina` (no role): their tokens.
async fn fixture(pool: PgPool) -> (axum::Router, String, String, String) {
    let app = common::app(pool, Duration::from_secs(10)).await;
    expect(
        &app,
        "POST",
        "/v1/workspaces",
        Some(ADMIN),
        Some(json!({"name": "ws"})),
        StatusCode::CREATED,
    )
    .await;
    for (name, kind, role) in [("kafka", "kafka", "broker"), ("spark", "spark", "executor")] {
        let mut spec =
            json!({"kind": kind, "node_pools": [{"name": "pool", "role": role, "replicas": 1}]});
        if kind == "kafka" {
            spec["security"] = json!({"tls": false, "authentication": [], "authorization": false});
        }
        expect(
            &app,
            "PUT",
            &format!("/v1/workspaces/ws/clusters/{name}"),
            Some(ADMIN),
            Some(spec),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    let mut tokens = Vec::new();
    for (user, role) in [
        ("vera", Some("viewer")),
        ("olga", Some("operator")),
        ("nina", None),
    ] {
        expect(
            &app,
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"username": user, "password": PASSWORD})),
            StatusCode::CREATED,
        )
        .await;
        if let Some(role) = role {
            expect(
                &app,
                "PUT",
                &format!("/v1/workspaces/ws/role-bindings/{user}"),
                Some(ADMIN),
                Some(json!({ "role": role })),
                StatusCode::OK,
            )
            .await;
        }
        let token = call(
            &app,
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"grant_type": "password", "username": user, "password": PASSWORD})),
        )
        .await;
        assert_eq!(token.status, StatusCode::OK, "{}", token.body);
        tokens.push(token.body["access_token"].as_str().unwrap().to_owned());
    }
    let nina = tokens.pop().unwrap();
    let olga = tokens.pop().unwrap();
    let vera = tokens.pop().unwrap();
    (app, vera, olga, nina)
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

#[sqlx::test(migrations = "../migrations")]
async fn viewers_read_operators_reset_and_delete_and_refusals_are_audited(pool: PgPool) {
    let (app, vera, olga, nina) = fixture(pool).await;
    let reset = json!({"to": "earliest"});
    let one = format!("{GROUPS}/payments");
    let reset_uri = format!("{one}/reset-offsets");

    // A viewer passes the role check for reads: the Pending cluster is what refuses.
    for uri in [GROUPS, one.as_str()] {
        let reply = expect(&app, "GET", uri, Some(&vera), None, StatusCode::CONFLICT).await;
        assert_eq!(
            code(&reply.body),
            "cluster_not_ready",
            "{uri}: {}",
            reply.body
        );
    }
    // ...but not for changes.
    let reply = expect(
        &app,
        "POST",
        &reset_uri,
        Some(&vera),
        Some(reset.clone()),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&reply.body), "forbidden");
    let reply = expect(
        &app,
        "DELETE",
        &one,
        Some(&vera),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&reply.body), "forbidden");
    // Someone without a role sees no workspace at all.
    for (method, uri) in [("GET", GROUPS), ("DELETE", one.as_str())] {
        let reply = expect(&app, method, uri, Some(&nina), None, StatusCode::NOT_FOUND).await;
        assert_eq!(code(&reply.body), "not_found");
    }
    // An operator passes the role check; the cluster is not ready.
    let reply = expect(
        &app,
        "POST",
        &reset_uri,
        Some(&olga),
        Some(reset.clone()),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&reply.body), "cluster_not_ready", "{}", reply.body);
    let reply = expect(
        &app,
        "DELETE",
        &one,
        Some(&olga),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&reply.body), "cluster_not_ready");
    // A Spark cluster has no consumer groups.
    let reply = expect(
        &app,
        "GET",
        "/v1/workspaces/ws/clusters/spark/consumer-groups",
        Some(&vera),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code(&reply.body), "not_a_kafka_cluster");

    // Refusals of mutations are audited with their code; a refused dry run is not a mutation.
    expect(
        &app,
        "POST",
        &reset_uri,
        Some(&olga),
        Some(json!({"to": "latest", "dry_run": true})),
        StatusCode::CONFLICT,
    )
    .await;
    let audit = expect(
        &app,
        "GET",
        "/v1/audit-events",
        Some(ADMIN),
        None,
        StatusCode::OK,
    )
    .await;
    let mut events: Vec<(String, String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("consumer_group."))
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    let expected: Vec<(String, String, String)> = [
        ("nina", "consumer_group.delete", "not_found"),
        ("olga", "consumer_group.delete", "cluster_not_ready"),
        ("olga", "consumer_group.reset_offsets", "cluster_not_ready"),
        ("vera", "consumer_group.delete", "forbidden"),
        ("vera", "consumer_group.reset_offsets", "forbidden"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(events, expected, "{:#}", audit.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn resets_are_validated_with_field_names_before_any_cluster_is_asked(pool: PgPool) {
    let (app, _, olga, _) = fixture(pool).await;
    let uri = format!("{GROUPS}/payments/reset-offsets");
    for (body, field) in [
        (json!({"to": "offset"}), "offset"),
        (json!({"to": "offset", "offset": -1}), "offset"),
        (json!({"to": "latest", "offset": 5}), "offset"),
        (json!({"to": "timestamp"}), "timestamp_ms"),
        (json!({"to": "earliest", "timestamp_ms": 5}), "timestamp_ms"),
        (json!({"to": "earliest", "topics": []}), "topics"),
        (json!({"to": "earliest", "topics": ["bad/name"]}), "topics"),
    ] {
        let reply = expect(
            &app,
            "POST",
            &uri,
            Some(&olga),
            Some(body.clone()),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(code(&reply.body), "invalid_field", "{body}: {}", reply.body);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    // Unknown fields and targets are refused by the body's schema.
    for body in [
        json!({"to": "yesterday"}),
        json!({"to": "latest", "force": true}),
    ] {
        let reply = call(&app, "POST", &uri, Some(&olga), Some(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(code(&reply.body), "invalid_body", "{body}");
    }
    // A group id with a control character.
    let reply = expect(
        &app,
        "GET",
        &format!("{GROUPS}/a%0Ab"),
        Some(&olga),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(reply.body["field"], "group", "{}", reply.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_of_a_cluster_never_sampled_are_empty_series_for_viewers(pool: PgPool) {
    let (app, vera, _, nina) = fixture(pool).await;
    let uri = "/v1/workspaces/ws/clusters/kafka/metrics";
    let reply = expect(&app, "GET", uri, Some(&vera), None, StatusCode::OK).await;
    assert_eq!(reply.body["timestamps_ms"], json!([]), "{}", reply.body);
    assert_eq!(reply.body["topics"], json!([]));
    assert_eq!(reply.body["groups"], json!([]));
    assert_eq!(reply.body["interval_ms"], 0, "no sampler runs in-process");
    assert_eq!(reply.body["retention_ms"], 3_600_000);
    let reply = expect(
        &app,
        "GET",
        &format!("{uri}?since_ms=1700000000000"),
        Some(&vera),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply.body["timestamps_ms"], json!([]));
    let reply = expect(
        &app,
        "GET",
        "/v1/workspaces/ws/clusters/spark/metrics",
        Some(&vera),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code(&reply.body), "not_a_kafka_cluster");
    expect(&app, "GET", uri, Some(&nina), None, StatusCode::NOT_FOUND).await;
    expect(&app, "GET", uri, None, None, StatusCode::UNAUTHORIZED).await;
}
