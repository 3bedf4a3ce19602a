//! The portal's browser sessions and `GET /v1/me`, in-process (axum `oneshot`) against a real
//! PostgreSQL database per test: login sets an HttpOnly SameSite cookie that authenticates every
//! endpoint, unsafe methods need the CSRF header and this origin, logout and expiry end the
//! session, a forged or stale cookie is 401, and `/v1/me` answers roles as the server enforces
//! them.
//!
//! Needs `DATABASE_URL` (set by `cargo xtask test`).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, Reply};

const PASSWORD: &str = "correct horse battery staple";

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    common::request(app, method, uri, headers, body).await
}

/// Creates `username` with [`PASSWORD`].
async fn user(app: &axum::Router, username: &str) {
    let reply = common::call(
        app,
        "POST",
        "/v1/users",
        Some(ADMIN),
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// Logs `username` in: the `hdi_session=...` pair to send back as `Cookie`.
async fn login(app: &axum::Router, username: &str) -> (String, Reply) {
    let answer = send(
        app,
        "POST",
        "/v1/auth/session",
        &[],
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let set_cookie = answer.set_cookie.clone().unwrap();
    let pair = set_cookie.split(';').next().unwrap().trim().to_owned();
    (pair, answer)
}

#[sqlx::test(migrations = "../migrations")]
async fn login_sets_a_strict_http_only_cookie_that_authenticates(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    user(&app, "vera").await;

    // A wrong password: 401 invalid_credentials, no cookie, audited.
    let wrong = send(
        &app,
        "POST",
        "/v1/auth/session",
        &[],
        Some(json!({"username": "vera", "password": "not the password"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["code"], "invalid_credentials");
    assert!(wrong.set_cookie.is_none());

    let (cookie, answer) = login(&app, "vera").await;
    let set_cookie = answer.set_cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(cookie.starts_with("hdi_session=hdis_"), "{cookie}");
    assert_eq!(answer.body["username"], "vera");
    assert_eq!(answer.body["platform_admin"], false);
    assert_eq!(answer.body["workspaces"], json!([]));

    // Only the digest is stored.
    let secret = cookie.trim_start_matches("hdi_session=");
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT secret_sha256 FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, secret.as_bytes());

    // The cookie authenticates reads, with other cookies around it.
    let mixed = format!("theme=dark; {cookie}; other=1");
    let me = send(&app, "GET", "/v1/me", &[("cookie", &mixed)], None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["username"], "vera");

    // Behind an HTTPS proxy the cookie is Secure.
    let secure = send(
        &app,
        "POST",
        "/v1/auth/session",
        &[("x-forwarded-proto", "https")],
        Some(json!({"username": "vera", "password": PASSWORD})),
    )
    .await;
    assert!(secure.set_cookie.unwrap().contains("; Secure"));

    // A forged cookie, and no credentials at all: 401.
    let forged = send(
        &app,
        "GET",
        "/v1/me",
        &[("cookie", "hdi_session=hdis_forged")],
        None,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.body["code"], "unauthorized");
    let none = send(&app, "GET", "/v1/me", &[], None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations")]
async fn unsafe_methods_need_the_csrf_header_and_this_origin(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let (cookie, _) = {
        // The platform admin has no password: make a second admin-capable user instead.
        user(&app, "wanda").await;
        let created = send(
            &app,
            "POST",
            "/v1/workspaces",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(json!({"name": "team"})),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let bound = send(
            &app,
            "PUT",
            "/v1/workspaces/team/role-bindings/wanda",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            Some(json!({"role": "operator"})),
        )
        .await;
        assert!(bound.status.is_success(), "{}", bound.body);
        login(&app, "wanda").await
    };
    let cluster = json!({"kind": "kafka", "node_pools": [{"name": "brokers", "role": "broker", "replicas": 1}]});
    let uri = "/v1/workspaces/team/clusters/k1";

    // No custom header: refused before anything happens.
    let bare = send(
        &app,
        "PUT",
        uri,
        &[("cookie", &cookie)],
        Some(cluster.clone()),
    )
    .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN, "{}", bare.body);
    assert_eq!(bare.body["code"], "csrf_failed");
    // The header, but from another origin: refused.
    let cross = send(
        &app,
        "PUT",
        uri,
        &[
            ("cookie", &cookie),
            ("x-hdi-requested-by", "portal"),
            ("host", "127.0.0.1:7420"),
            ("origin", "http://evil.example"),
        ],
        Some(cluster.clone()),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(cross.body["code"], "csrf_failed");
    // Marked cross-site by the browser: refused.
    let site = send(
        &app,
        "PUT",
        uri,
        &[
            ("cookie", &cookie),
            ("x-hdi-requested-by", "portal"),
            ("sec-fetch-site", "cross-site"),
        ],
        Some(cluster.clone()),
    )
    .await;
    assert_eq!(site.status, StatusCode::FORBIDDEN);
    let listed = send(
        &app,
        "GET",
        "/v1/workspaces/team/clusters",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"], json!([]), "nothing was created");

    // Same origin with the header: accepted, as the operator it is.
    let ok = send(
        &app,
        "PUT",
        uri,
        &[
            ("cookie", &cookie),
            ("x-hdi-requested-by", "portal"),
            ("host", "127.0.0.1:7420"),
            ("origin", "http://127.0.0.1:7420"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(cluster.clone()),
    )
    .await;
    assert!(ok.status.is_success(), "{}", ok.body);

    // A bearer token needs no CSRF header (not a browser's ambient credential).
    let bearer = send(
        &app,
        "DELETE",
        uri,
        &[("authorization", &format!("Bearer {ADMIN}"))],
        None,
    )
    .await;
    assert!(bearer.status.is_success(), "{}", bearer.body);
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_and_expiry_end_the_session(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    user(&app, "lou").await;
    let (cookie, _) = login(&app, "lou").await;
    let (other, _) = login(&app, "lou").await;

    // Logout needs the CSRF header too (it is a DELETE).
    let bare = send(
        &app,
        "DELETE",
        "/v1/auth/session",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    let out = send(
        &app,
        "DELETE",
        "/v1/auth/session",
        &[("cookie", &cookie), ("x-hdi-requested-by", "portal")],
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    let after = send(&app, "GET", "/v1/me", &[("cookie", &cookie)], None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the session ended");
    assert_eq!(after.body["detail"], "the session has ended; log in again");

    // The other session lives on until it is idle too long or too old.
    let alive = send(&app, "GET", "/v1/me", &[("cookie", &other)], None).await;
    assert_eq!(alive.status, StatusCode::OK);
    sqlx::query("UPDATE sessions SET last_used_at = now() - interval '31 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    let idle = send(&app, "GET", "/v1/me", &[("cookie", &other)], None).await;
    assert_eq!(idle.status, StatusCode::UNAUTHORIZED, "idle for 31 minutes");
    let (third, _) = login(&app, "lou").await;
    let remaining: (i64,) = sqlx::query_as("SELECT count(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(remaining.0, 1, "a login sweeps the ended sessions");
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let expired = send(&app, "GET", "/v1/me", &[("cookie", &third)], None).await;
    assert_eq!(
        expired.status,
        StatusCode::UNAUTHORIZED,
        "past its 12 hours"
    );

    // Deleting the user ends its sessions.
    let (fourth, _) = login(&app, "lou").await;
    let deleted = common::call(&app, "DELETE", "/v1/users/lou", Some(ADMIN), None).await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let gone = send(&app, "GET", "/v1/me", &[("cookie", &fourth)], None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);

    // Logins and logouts are audited.
    let audit = common::call(
        &app,
        "GET",
        "/v1/audit-events?page_size=100",
        Some(ADMIN),
        None,
    )
    .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"auth.session"), "{actions:?}");
    assert!(actions.contains(&"auth.logout"), "{actions:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn me_answers_the_roles_the_server_enforces(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    // The built-in admin has no password: it signs in to the portal with its API token.
    let token_login = send(
        &app,
        "POST",
        "/v1/auth/session",
        &[],
        Some(json!({"api_token": ADMIN})),
    )
    .await;
    assert_eq!(token_login.status, StatusCode::OK, "{}", token_login.body);
    assert_eq!(token_login.body["platform_admin"], true);
    let cookie = token_login.set_cookie.unwrap();
    let pair = cookie.split(';').next().unwrap();
    let nodes = send(&app, "GET", "/v1/nodes", &[("cookie", pair)], None).await;
    assert_eq!(
        nodes.status,
        StatusCode::OK,
        "a platform admin's page: {}",
        nodes.body
    );
    let wrong = send(
        &app,
        "POST",
        "/v1/auth/session",
        &[],
        Some(json!({"api_token": "hdi_not-a-token"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["code"], "invalid_credentials");
    let both = send(
        &app,
        "POST",
        "/v1/auth/session",
        &[],
        Some(json!({"api_token": ADMIN, "password": "x"})),
    )
    .await;
    assert_eq!(
        both.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );

    let admin = common::call(&app, "GET", "/v1/me", Some(ADMIN), None).await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(admin.body["username"], "admin");
    assert_eq!(admin.body["platform_admin"], true);

    for ws in ["alpha", "beta", "gamma"] {
        let created = common::call(
            &app,
            "POST",
            "/v1/workspaces",
            Some(ADMIN),
            Some(json!({"name": ws})),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    user(&app, "val").await;
    for (ws, role) in [("beta", "viewer"), ("alpha", "operator")] {
        let bound = common::call(
            &app,
            "PUT",
            &format!("/v1/workspaces/{ws}/role-bindings/val"),
            Some(ADMIN),
            Some(json!({"role": role})),
        )
        .await;
        assert!(bound.status.is_success(), "{}", bound.body);
    }
    let (cookie, answer) = login(&app, "val").await;
    let expected = json!([
        {"workspace": "alpha", "role": "operator"},
        {"workspace": "beta", "role": "viewer"},
    ]);
    assert_eq!(answer.body["workspaces"], expected);
    let me = send(&app, "GET", "/v1/me", &[("cookie", &cookie)], None).await;
    assert_eq!(me.body["workspaces"], expected);
    assert_eq!(me.body["platform_admin"], false);

    // What /v1/me says is what the server does: a viewer of beta cannot create there (403),
    // gamma, where val has no role, does not exist for it (404).
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-hdi-requested-by", "portal"),
    ];
    let cluster = json!({"kind": "kafka", "node_pools": [{"name": "brokers", "role": "broker", "replicas": 1}]});
    let viewer = send(
        &app,
        "PUT",
        "/v1/workspaces/beta/clusters/k",
        &headers,
        Some(cluster.clone()),
    )
    .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer.body["code"], "forbidden");
    let stranger = send(&app, "GET", "/v1/workspaces/gamma/clusters", &headers, None).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let operator = send(
        &app,
        "PUT",
        "/v1/workspaces/alpha/clusters/k",
        &headers,
        Some(cluster),
    )
    .await;
    assert!(operator.status.is_success(), "{}", operator.body);
}
