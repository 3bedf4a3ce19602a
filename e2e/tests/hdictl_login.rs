//! `hdictl login` end to end: a user made by the platform admin logs in with a password on stdin;
//! the saved context (mode 0600, no password) works for what the user's role allows and nothing
//! more, and a stronger role takes effect without logging in again.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdi_api::{OperationState, Role};
use hdi_e2e::{Fleet, bin, hdictl};

const PASSWORD: &str = "correct-horse-battery-staple";

/// `hdictl --config CONFIG ARGS` with `stdin` fed; returns (success, stdout, stderr).
fn hdictl_stdin(config: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(bin("hdictl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdictl_login_with_a_password_and_roles() {
    let started = Instant::now();
    let fleet = Fleet::start_ready("login", 2).await;
    let admin = fleet.api();
    admin.workspace_create("test").await.unwrap();
    admin.workspace_create("other").await.unwrap();
    admin.user_create("alice", PASSWORD).await.unwrap();
    admin
        .role_binding_put("test", "alice", Role::Viewer)
        .await
        .unwrap();

    let config = fleet.dir.path().join("alice").join("config.json");
    let url = fleet.control_plane.url.clone();

    // A wrong password: refused, nothing saved.
    // `hdictl -w test login` as alice, the password on stdin.
    let login = |stdin: &str| {
        hdictl_stdin(
            &config,
            &[
                "-w",
                "test",
                "login",
                "--url",
                &url,
                "--username",
                "alice",
                "--password-stdin",
            ],
            stdin,
        )
    };
    let (ok, out, err) = login("not-the-password\n");
    assert!(!ok, "a wrong password must be refused: {out}");
    assert!(err.contains("invalid_credentials"), "{err}");
    assert!(!config.exists(), "nothing saved after a refused login");

    let (ok, out, err) = login(&format!("{PASSWORD}\n"));
    assert!(ok, "login: {err}\n{out}");

    // The file: 0600, an API token and a cached access token, never the password.
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config mode {mode:o}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(PASSWORD), "the password is stored: {text}");
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ctx = &saved["contexts"][saved["current_context"].as_str().unwrap()];
    assert_eq!(ctx["api_url"], url.as_str(), "{saved:#}");
    assert_eq!(ctx["workspace"], "test", "{saved:#}");
    assert!(ctx["api_token"].is_string(), "{saved:#}");
    assert!(ctx["access_token"].is_string(), "{saved:#}");
    assert!(ctx.get("token").is_none(), "{saved:#}");

    // Viewer: reads work, changes are forbidden, other workspaces do not exist.
    let (ok, out, err) = hdictl(&config, &["cluster", "list"]);
    assert!(ok, "viewer lists clusters: {err}\n{out}");
    let (ok, out, err) = hdictl(
        &config,
        &[
            "cluster",
            "create",
            "nope",
            "--kind",
            "kafka",
            "--brokers",
            "1",
            "--no-wait",
        ],
    );
    assert!(!ok, "a viewer cannot create: {out}");
    assert!(err.contains("forbidden"), "{err}");
    // The same refusal over REST with the user's cached access token: 403.
    let as_alice = hdi_api::Client::new(
        &url,
        Some(
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&config).unwrap())
                .unwrap()["contexts"][saved["current_context"].as_str().unwrap()]["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    )
    .unwrap();
    let refused = as_alice
        .cluster_delete("test", "nope")
        .await
        .expect_err("a viewer cannot delete");
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert_eq!(
        refused.code(),
        Some(hdi_api::ErrorCode::Forbidden),
        "{refused}"
    );
    let (ok, out, err) = hdictl(&config, &["-w", "other", "cluster", "list"]);
    assert!(!ok, "unbound workspace: {out}");
    assert!(err.contains("not_found"), "{err}");
    assert_eq!(
        admin.clusters_list("test", None).await.unwrap().items.len(),
        0,
        "the refused create made nothing"
    );

    // Operator: the same login creates a Spark cluster.
    admin
        .role_binding_put("test", "alice", Role::Operator)
        .await
        .unwrap();
    let (ok, out, err) = hdictl(
        &config,
        &[
            "cluster",
            "create",
            "etl",
            "--kind",
            "spark",
            "--executors",
            "1",
            "--no-wait",
        ],
    );
    assert!(ok, "an operator creates: {err}\n{out}");
    let cluster = admin.cluster_get("test", "etl").await.unwrap();
    let op_id = cluster.status.last_operation.unwrap();
    assert!(out.contains(&op_id.to_string()), "{out}");
    let op = admin
        .operation_wait(op_id, Duration::from_secs(90), |_| {})
        .await
        .unwrap();
    assert_eq!(op.state, OperationState::Succeeded, "{op:#?}");
    assert_eq!(op.created_by, "alice", "operations record the username");
    let audit = admin.audit_list(None).await.unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "cluster.create" && e.actor == "alice"),
        "{audit:#?}"
    );
    // Her API tokens: the login's, expiring; she revokes it and the context's token is refused.
    let (ok, out, err) = hdictl(&config, &["token", "list", "--user", "alice"]);
    assert!(ok, "token list: {err}\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("hdictl-"))
        .unwrap_or_else(|| panic!("no hdictl token listed:\n{out}"));
    assert!(
        !line.contains("never  "),
        "the login's token expires: {line}"
    );
    let name = line.split_whitespace().next().unwrap().to_owned();
    let (ok, _, err) = hdictl(&config, &["token", "list", "--user", "admin"]);
    assert!(!ok && err.contains("forbidden"), "{err}");
    let (ok, out, err) = hdictl(&config, &["token", "revoke", &name, "--user", "alice"]);
    assert!(ok, "token revoke: {err}\n{out}");
    let api_token = saved["contexts"][saved["current_context"].as_str().unwrap()]["api_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchanged = hdi_api::Client::new(&url, None)
        .unwrap()
        .token_exchange(&hdi_api::TokenRequest::ApiToken { token: api_token })
        .await
        .expect_err("a revoked API token is refused");
    assert_eq!(exchanged.status(), Some(401), "{exchanged}");
    eprintln!("test took {:.1}s", started.elapsed().as_secs_f64());
}
