//! Authentication and authorization in-process (axum `oneshot`) against a real PostgreSQL database
//! per test: the JWKS, token exchange, forged and broken tokens, roles per workspace, audit actors.
//!
//! Needs `DATABASE_URL` (set by `cargo xtask test`); `#[sqlx::test]` creates and migrates a fresh
//! database for each test.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hdi_control_plane::auth::jwt::{KeyMaterial, TokenKeys};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, AGENT, Reply, settings};
const PASSWORD: &str = "correct horse battery staple";

/// [`common::request`] with the `Authorization` header's whole value, when given.
async fn call_raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    common::request(app, method, uri, &headers, body).await
}

/// [`common::call`] with a bearer token.
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    common::call(app, method, uri, Some(token), body).await
}

/// [`call`], asserting the reply's status (the message names the request and the reply).
async fn expect(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Reply {
    common::expect(app, method, uri, Some(token), body, status).await
}

async fn login(app: &axum::Router, username: &str, password: &str) -> Reply {
    call_raw(
        app,
        "POST",
        "/v1/auth/token",
        None,
        Some(json!({"grant_type": "password", "username": username, "password": password})),
    )
    .await
}

async fn user_with_token(app: &axum::Router, username: &str) -> (String, String) {
    let created = expect(
        app,
        "POST",
        "/v1/users",
        ADMIN,
        Some(json!({"username": username, "password": PASSWORD})),
        StatusCode::CREATED,
    )
    .await;
    let reply = login(app, username, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        reply.body["access_token"].as_str().unwrap().to_owned(),
    )
}

fn spec(replicas: u32) -> Value {
    json!({"kind": "kafka", "node_pools": [{"name": "brokers", "role": "broker", "replicas": replicas}]})
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn active_key(pool: &PgPool) -> KeyMaterial {
    let (kid, private_pkcs8, public): (String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_key, public_key FROM signing_keys WHERE active")
            .fetch_one(pool)
            .await
            .unwrap();
    KeyMaterial {
        kid,
        private_pkcs8,
        public,
    }
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn jwks_and_token_exchange(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let jwks = call_raw(&app, "GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{}", jwks.body);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    assert_eq!(x.len(), 32);
    assert!(key.get("d").is_none(), "no private part");
    let kid = key["kid"].as_str().unwrap().to_owned();

    // Password exchange: claims as documented.
    let (alice_id, token) = user_with_token(&app, "alice").await;
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(claims["iss"], "hdi-control-plane");
    assert_eq!(claims["aud"], "hdi-api");
    assert_eq!(claims["sub"], alice_id.as_str());
    assert_eq!(claims["name"], "alice");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].is_string());
    let reply = login(&app, "alice", PASSWORD).await;
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    let me = expect(&app, "GET", "/v1/workspaces", &token, None, StatusCode::OK).await;
    assert_eq!(me.body["items"], json!([]));

    // Wrong password and unknown user: the same answer.
    let wrong = login(&app, "alice", "not the password!").await;
    let unknown = login(&app, "nobody", "not the password!").await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert_eq!(reply.body["code"], "invalid_credentials");
    }
    assert_eq!(wrong.body, unknown.body);
    // The built-in admin has no password.
    let admin = login(&app, "admin", ADMIN).await;
    assert_eq!(admin.status, StatusCode::UNAUTHORIZED);

    // API-token exchange: the admin token file's secret, and a token a user made for themself.
    let exchange = |token: String| {
        let app = app.clone();
        async move {
            call_raw(
                &app,
                "POST",
                "/v1/auth/token",
                None,
                Some(json!({"grant_type": "api_token", "token": token})),
            )
            .await
        }
    };
    let admin_jwt = exchange(ADMIN.to_owned()).await;
    assert_eq!(admin_jwt.status, StatusCode::OK, "{}", admin_jwt.body);
    let admin_jwt = admin_jwt.body["access_token"].as_str().unwrap().to_owned();
    expect(&app, "GET", "/v1/nodes", &admin_jwt, None, StatusCode::OK).await;
    let made = expect(
        &app,
        "POST",
        "/v1/users/alice/api-tokens",
        &token,
        Some(json!({"name": "ci", "expires_in_days": 30})),
        StatusCode::CREATED,
    )
    .await;
    let secret = made.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hdi_"));
    assert!(made.body["expires_at"].is_string());
    let via_secret = exchange(secret.clone()).await;
    assert_eq!(via_secret.status, StatusCode::OK);
    let direct = call(&app, "GET", "/v1/workspaces", &secret, None).await;
    assert_eq!(direct.status, StatusCode::OK, "API token as a bearer");
    // Not for another user, and the same name twice conflicts.
    expect(
        &app,
        "POST",
        "/v1/users/admin/api-tokens",
        &token,
        Some(json!({"name": "steal"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    let again = expect(
        &app,
        "POST",
        "/v1/users/alice/api-tokens",
        &token,
        Some(json!({"name": "ci"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(again.body["code"], "api_token_exists");
    // Every token expires: one made without a lifetime lives 90 days.
    let default = expect(
        &app,
        "POST",
        "/v1/users/alice/api-tokens",
        &token,
        Some(json!({"name": "laptop"})),
        StatusCode::CREATED,
    )
    .await;
    let expires: chrono::DateTime<chrono::Utc> = default.body["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.0).contains(&days), "{days}");
    let laptop = default.body["token"].as_str().unwrap().to_owned();
    // Listing: names, times, never secrets; the user's own or, for platform admins, anyone's.
    let listed = expect(
        &app,
        "GET",
        "/v1/users/alice/api-tokens",
        &token,
        None,
        StatusCode::OK,
    )
    .await;
    let items = listed.body["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ci", "laptop"]);
    assert!(
        items[0]["last_used_at"].is_string(),
        "ci was used: {}",
        listed.body
    );
    assert!(items[1].get("last_used_at").is_none());
    assert!(!listed.body.to_string().contains(&laptop));
    assert!(!listed.body.to_string().contains("hdi_"));
    assert_eq!(
        call(&app, "GET", "/v1/users/admin/api-tokens", &token, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "GET", "/v1/users/alice/api-tokens", ADMIN, None)
            .await
            .status,
        StatusCode::OK
    );
    // Revoking: at once, audited; a second time is 404.
    assert_eq!(exchange(laptop.clone()).await.status, StatusCode::OK);
    expect(
        &app,
        "DELETE",
        "/v1/users/alice/api-tokens/laptop",
        &token,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        exchange(laptop.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/v1/workspaces", &laptop, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    expect(
        &app,
        "DELETE",
        "/v1/users/alice/api-tokens/laptop",
        &token,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        call(&app, "DELETE", "/v1/users/admin/api-tokens/x", &token, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'api_token.revoke' AND outcome = 'accepted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Expired API tokens stop working, for exchange and as bearer.
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE name = 'ci'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        exchange(secret.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    expect(
        &app,
        "GET",
        "/v1/workspaces",
        &secret,
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let garbage = exchange("hdi_nope".into()).await;
    assert_eq!(garbage.body["code"], "invalid_credentials");
    let malformed = call_raw(
        &app,
        "POST",
        "/v1/auth/token",
        None,
        Some(json!({"grant_type": "client_credentials"})),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    // Users: only platform admins manage them; passwords have a minimum length.
    let short = expect(
        &app,
        "POST",
        "/v1/users",
        ADMIN,
        Some(json!({"username": "bob", "password": "short"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(short.body["field"], "password");
    expect(
        &app,
        "POST",
        "/v1/users",
        &token,
        Some(json!({"username": "bob", "password": PASSWORD})),
        StatusCode::FORBIDDEN,
    )
    .await;
    let listed = call(&app, "GET", "/v1/users", ADMIN, None).await;
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert_eq!(
        call(&app, "GET", "/v1/users", &token, None).await.status,
        StatusCode::FORBIDDEN
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn forged_and_broken_tokens_are_refused(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let (alice_id, valid) = user_with_token(&app, "alice").await;
    let (bob_id, bob_token) = user_with_token(&app, "bob").await;
    let admin_id: String =
        sqlx::query_scalar("SELECT id::text FROM users WHERE username = 'admin'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let key = active_key(&pool).await;
    let ours = EncodingKey::from_ed_der(&key.private_pkcs8);
    let other = KeyMaterial::generate().unwrap();
    let theirs = EncodingKey::from_ed_der(&other.private_pkcs8);
    let ed = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        header
    };
    let claims = |patch: Value| {
        let mut base = json!({
            "iss": "hdi-control-plane", "aud": "hdi-api", "sub": alice_id, "name": "alice",
            "iat": now(), "exp": now() + 600, "jti": "j"
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    };
    let kid = Some(key.kid.as_str());

    // Control: a token we sign ourselves with the right claims works.
    let control = sign(&ed(kid), &claims(json!({})), &ours);
    assert_eq!(
        call(&app, "GET", "/v1/workspaces", &control, None)
            .await
            .status,
        StatusCode::OK
    );

    let mut parts = valid.split('.');
    let (vh, vp, vs) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&vp).unwrap()).unwrap();
    let mut as_admin = payload.clone();
    as_admin["sub"] = json!(admin_id);
    as_admin["name"] = json!("admin");
    let mut longer = payload.clone();
    longer["exp"] = json!(now() + 86_400 * 365);

    let hs = |secret: &[u8], kid: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        sign(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(secret),
        )
    };
    let none_header = |kid: &str| b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));

    let forged: Vec<(&str, String)> = vec![
        (
            "signed by another Ed25519 key under our kid",
            sign(&ed(kid), &claims(json!({})), &theirs),
        ),
        (
            "signed by another key under its own kid",
            sign(&ed(Some(&other.kid)), &claims(json!({})), &theirs),
        ),
        (
            "alg none, no signature",
            format!("{}.{vp}.", none_header(&key.kid)),
        ),
        (
            "alg none with the original signature",
            format!("{}.{vp}.{vs}", none_header(&key.kid)),
        ),
        (
            "alg NONE",
            format!("{}.{vp}.", b64(&json!({"alg": "NONE", "kid": key.kid}))),
        ),
        (
            "HS256 keyed with the public key bytes",
            hs(&key.public, kid),
        ),
        (
            "HS256 keyed with the JWK x string",
            hs(URL_SAFE_NO_PAD.encode(&key.public).as_bytes(), kid),
        ),
        ("HS512 keyed with the public key bytes", {
            let mut header = Header::new(Algorithm::HS512);
            header.kid = kid.map(str::to_owned);
            sign(
                &header,
                &claims(json!({})),
                &EncodingKey::from_secret(&key.public),
            )
        }),
        (
            "RS256 header on our signature",
            format!(
                "{}.{vp}.{vs}",
                b64(&json!({"alg": "RS256", "typ": "JWT", "kid": key.kid}))
            ),
        ),
        (
            "ES256 header on our signature",
            format!(
                "{}.{vp}.{vs}",
                b64(&json!({"alg": "ES256", "typ": "JWT", "kid": key.kid}))
            ),
        ),
        (
            "unknown kid",
            sign(&ed(Some("no-such-key")), &claims(json!({})), &ours),
        ),
        ("missing kid", sign(&ed(None), &claims(json!({})), &ours)),
        (
            "expired",
            sign(
                &ed(kid),
                &claims(json!({"iat": now() - 7200, "exp": now() - 3600})),
                &ours,
            ),
        ),
        (
            "nbf in the future",
            sign(&ed(kid), &claims(json!({"nbf": now() + 3600})), &ours),
        ),
        (
            "wrong aud",
            sign(&ed(kid), &claims(json!({"aud": "other-api"})), &ours),
        ),
        (
            "aud list without ours",
            sign(&ed(kid), &claims(json!({"aud": ["other-api"]})), &ours),
        ),
        (
            "wrong iss",
            sign(
                &ed(kid),
                &claims(json!({"iss": "https://evil.example"})),
                &ours,
            ),
        ),
        (
            "missing exp",
            sign(&ed(kid), &claims(json!({"exp": null})), &ours),
        ),
        (
            "missing iss",
            sign(&ed(kid), &claims(json!({"iss": null})), &ours),
        ),
        (
            "missing aud",
            sign(&ed(kid), &claims(json!({"aud": null})), &ours),
        ),
        (
            "missing sub",
            sign(&ed(kid), &claims(json!({"sub": null})), &ours),
        ),
        (
            "sub not a user id",
            sign(&ed(kid), &claims(json!({"sub": "admin"})), &ours),
        ),
        (
            "sub of no user",
            sign(
                &ed(kid),
                &claims(json!({"sub": uuid::Uuid::new_v4().to_string()})),
                &ours,
            ),
        ),
        (
            "exp as a string",
            sign(&ed(kid), &claims(json!({"exp": "never"})), &ours),
        ),
        ("truncated", valid[..valid.len() - 5].to_owned()),
        ("signature cut off", format!("{vh}.{vp}.")),
        ("garbage base64", "!!!.@@@.###".to_owned()),
        (
            "garbage JSON",
            format!(
                "{}.{}.{vs}",
                URL_SAFE_NO_PAD.encode("{"),
                URL_SAFE_NO_PAD.encode("[")
            ),
        ),
        ("extra segment", format!("{valid}.AAAA")),
        ("two segments", format!("{vh}.{vp}")),
        (
            "tampered payload: another user",
            format!("{vh}.{}.{vs}", b64(&as_admin)),
        ),
        (
            "tampered payload: longer life",
            format!("{vh}.{}.{vs}", b64(&longer)),
        ),
        (
            "signature of another token",
            format!("{vh}.{vp}.{}", bob_token.rsplit('.').next().unwrap()),
        ),
        ("agent token used as a user", AGENT.to_owned()),
        (
            "unknown API token",
            "hdi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("admin token with a trailing character", format!("{ADMIN}x")),
    ];
    assert!(forged.len() >= 20);
    for (case, token) in &forged {
        let reply = call(&app, "GET", "/v1/workspaces", token, None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "unauthorized", "{case}");
    }

    // Broken Authorization headers around a valid token.
    let headers = [
        String::new(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("BEARER {valid}"),
        format!("bEaReR {valid}"),
        format!("Bearer:{valid}"),
        format!("Bearer{valid}"),
        format!("Basic {valid}"),
        format!("Token {valid}"),
        valid.clone(),
    ];
    for header in &headers {
        let reply = call_raw(&app, "GET", "/v1/workspaces", Some(header), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "header {header:?}");
    }
    let none = call_raw(&app, "GET", "/v1/workspaces", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    // User credentials on agent endpoints, and the agent token on user endpoints.
    let agent_uri = "/v1/agent/nodes/6f1c1d2e-0000-4000-8000-00000000000a/workloads";
    for token in [valid.as_str(), ADMIN, control.as_str()] {
        let reply = call(&app, "GET", agent_uri, token, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
    }
    for uri in ["/v1/nodes", "/v1/audit-events", "/v1/users"] {
        let reply = call(&app, "GET", uri, AGENT, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
    }

    // A deleted user's still-unexpired token stops working at once.
    assert_eq!(
        call(&app, "GET", "/v1/workspaces", &bob_token, None)
            .await
            .status,
        StatusCode::OK
    );
    expect(
        &app,
        "DELETE",
        "/v1/users/bob",
        ADMIN,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let reply = call(&app, "GET", "/v1/workspaces", &bob_token, None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "deleted user {bob_id}"
    );
    expect(
        &app,
        "DELETE",
        "/v1/users/admin",
        ADMIN,
        None,
        StatusCode::CONFLICT,
    )
    .await;

    // The valid token still works after all that.
    assert_eq!(
        call(&app, "GET", "/v1/workspaces", &valid, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn roles_decide_what_each_user_may_do(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let (_, viewer) = user_with_token(&app, "vera").await;
    let (_, operator) = user_with_token(&app, "otto").await;
    let (_, stranger) = user_with_token(&app, "sam").await;
    let (_, owner) = user_with_token(&app, "wanda").await;

    // Wanda creates the workspace and so is its admin; she grants the others their roles.
    expect(
        &app,
        "POST",
        "/v1/workspaces",
        &owner,
        Some(json!({"name": "team"})),
        StatusCode::CREATED,
    )
    .await;
    for (user, role) in [("vera", "viewer"), ("otto", "operator")] {
        let reply = expect(
            &app,
            "PUT",
            &format!("/v1/workspaces/team/role-bindings/{user}"),
            &owner,
            Some(json!({"role": role})),
            StatusCode::OK,
        )
        .await;
        assert_eq!(reply.body["role"], role);
    }
    let bindings = call(
        &app,
        "GET",
        "/v1/workspaces/team/role-bindings",
        &owner,
        None,
    )
    .await;
    let roles: Vec<(String, String)> = bindings.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["username"].as_str().unwrap().to_owned(),
                b["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("otto".to_owned(), "operator".to_owned()),
            ("vera".to_owned(), "viewer".to_owned()),
            ("wanda".to_owned(), "admin".to_owned())
        ]
    );

    // The operator creates a cluster; the viewer reads it but cannot change it.
    let cluster = "/v1/workspaces/team/clusters/events";
    let put = expect(
        &app,
        "PUT",
        cluster,
        &operator,
        Some(spec(3)),
        StatusCode::ACCEPTED,
    )
    .await;
    let op_id = put.body["id"].as_str().unwrap().to_owned();
    assert_eq!(put.body["created_by"], "otto");
    expect(&app, "GET", cluster, &viewer, None, StatusCode::OK).await;
    expect(
        &app,
        "GET",
        "/v1/workspaces/team/operations",
        &viewer,
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &app,
        "GET",
        &format!("/v1/operations/{op_id}"),
        &viewer,
        None,
        StatusCode::OK,
    )
    .await;
    let writes = [
        ("PUT", cluster.to_owned(), Some(spec(4))),
        (
            "PATCH",
            cluster.to_owned(),
            Some(json!({"node_pools": [{"name": "brokers", "replicas": 4}]})),
        ),
        ("DELETE", cluster.to_owned(), None),
        (
            "PUT",
            "/v1/workspaces/team/clusters/other".to_owned(),
            Some(spec(3)),
        ),
        (
            "POST",
            format!("{cluster}/topics"),
            Some(json!({"name": "t", "partitions": 1, "replication_factor": 1})),
        ),
        ("DELETE", format!("{cluster}/topics/t"), None),
        (
            "PUT",
            "/v1/workspaces/team/role-bindings/sam".to_owned(),
            Some(json!({"role": "admin"})),
        ),
        (
            "PUT",
            "/v1/workspaces/team/role-bindings/vera".to_owned(),
            Some(json!({"role": "admin"})),
        ),
        (
            "DELETE",
            "/v1/workspaces/team/role-bindings/otto".to_owned(),
            None,
        ),
    ];
    for (method, uri, body) in &writes {
        let reply = call(&app, method, uri, &viewer, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "viewer {method} {uri}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "forbidden");
        let needed = if uri.contains("role-bindings") {
            "admin"
        } else {
            "operator"
        };
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("needs the {needed} role")),
            "{detail}"
        );
    }
    // The operator may not manage role bindings either.
    expect(
        &app,
        "PUT",
        "/v1/workspaces/team/role-bindings/sam",
        &operator,
        Some(json!({"role": "viewer"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    // Platform-only endpoints.
    for uri in ["/v1/nodes", "/v1/audit-events", "/v1/users"] {
        let reply = call(&app, "GET", uri, &owner, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri}");
    }

    // Someone without a role sees nothing of the workspace: 404, never 403.
    let hidden = [
        ("GET", "/v1/workspaces/team".to_owned(), None),
        ("GET", "/v1/workspaces/team/clusters".to_owned(), None),
        ("GET", cluster.to_owned(), None),
        ("PUT", cluster.to_owned(), Some(spec(3))),
        ("DELETE", cluster.to_owned(), None),
        ("GET", "/v1/workspaces/team/operations".to_owned(), None),
        ("GET", format!("/v1/operations/{op_id}"), None),
        ("GET", "/v1/workspaces/team/role-bindings".to_owned(), None),
    ];
    for (method, uri, body) in &hidden {
        let reply = call(&app, method, uri, &stranger, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "stranger {method} {uri}: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], "not_found");
    }
    expect(
        &app,
        "POST",
        "/v1/workspaces",
        &stranger,
        Some(json!({"name": "mine"})),
        StatusCode::CREATED,
    )
    .await;
    let listed = call(&app, "GET", "/v1/workspaces", &stranger, None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["name"], "mine");
    let all = call(&app, "GET", "/v1/workspaces", ADMIN, None).await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        2,
        "platform admin sees all"
    );

    // Revocation is immediate: the viewer's same token no longer sees the workspace.
    expect(
        &app,
        "DELETE",
        "/v1/workspaces/team/role-bindings/vera",
        &owner,
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(&app, "GET", cluster, &viewer, None, StatusCode::NOT_FOUND).await;
    // Promotion too: the operator made admin may now manage bindings.
    expect(
        &app,
        "PUT",
        "/v1/workspaces/team/role-bindings/otto",
        ADMIN,
        Some(json!({"role": "admin"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &app,
        "PUT",
        "/v1/workspaces/team/role-bindings/vera",
        &operator,
        Some(json!({"role": "viewer"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &app,
        "PUT",
        "/v1/workspaces/team/role-bindings/nobody",
        &operator,
        Some(json!({"role": "viewer"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &app,
        "PUT",
        "/v1/workspaces/team/role-bindings/vera",
        &operator,
        Some(json!({"role": "owner"})),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Audit events name the user, for accepted and refused mutations alike.
    let audit = expect(
        &app,
        "GET",
        "/v1/audit-events?page_size=500",
        ADMIN,
        None,
        StatusCode::OK,
    )
    .await;
    let events: Vec<(String, String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("wanda", "workspace.create", "accepted"),
        ("wanda", "role_binding.put", "accepted"),
        ("otto", "cluster.create", "accepted"),
        ("vera", "cluster.resize", "forbidden"),
        ("vera", "cluster.delete", "forbidden"),
        ("vera", "role_binding.put", "forbidden"),
        ("vera", "topic.create", "forbidden"),
        ("vera", "topic.delete", "forbidden"),
        ("sam", "cluster.delete", "not_found"),
        ("admin", "user.create", "accepted"),
        ("wanda", "role_binding.delete", "accepted"),
    ] {
        assert!(
            events
                .iter()
                .any(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()) == want),
            "{want:?} missing from {events:?}"
        );
    }
    assert!(!events.iter().any(|(actor, _, _)| actor.is_empty()));
}

#[sqlx::test(migrations = "../migrations")]
async fn control_planes_starting_together_share_one_key(pool: PgPool) {
    let mut starts = Vec::new();
    for _ in 0..4 {
        let pool = pool.clone();
        starts.push(tokio::spawn(async move {
            common::service(pool, Duration::from_secs(10))
                .await
                .jwks()
                .unwrap()
        }));
    }
    let mut kids = Vec::new();
    for start in starts {
        kids.push(start.await.unwrap()[0].kid.clone());
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "{kids:?}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let admins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE username = 'admin' AND platform_admin",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(admins, 1);
    // A token signed by one control plane verifies at another (same database).
    let a = common::service(pool.clone(), Duration::from_secs(10)).await;
    let b = common::service(pool.clone(), Duration::from_secs(10)).await;
    let issued = a
        .token_issue(hdi_control_plane::service::Grant::ApiToken {
            token: ADMIN.to_owned(),
        })
        .await
        .unwrap();
    let who = b.authenticate(&issued.access_token).await.unwrap();
    assert_eq!(who.username, "admin");
    assert!(who.platform_admin);
    // The keys in force can verify tokens of a rotated-out key too (unit-tested in jwt.rs);
    // here: a second start does not replace the key.
    let key = active_key(&pool).await;
    let keys = TokenKeys::new(settings(), &key, &[]).unwrap();
    assert_eq!(keys.jwks()[0].kid, kids[0]);
}
