//! Bad configuration is answered clearly: the control plane exits with one line naming the
//! problem (no panic, no trace); an agent with a wrong token is refused with 401 and both sides
//! say why.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use hdi_e2e::{
    ControlPlane, Proc, Secrets, TempDir, bin, fresh_database, start_agent, with_database,
};

/// A control plane with the secrets' token files unless `extra` names its own.
fn control_plane_with(database_url: &str, secrets: &Secrets, extra: &[&str]) -> Proc {
    let mut command = Command::new(bin("hdi-control-plane"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-connect-timeout",
            "3s",
        ])
        .args(extra);
    for (flag, file) in [
        ("--admin-token-file", &secrets.admin_token_file),
        ("--agent-token-file", &secrets.agent_token_file),
    ] {
        if !extra.contains(&flag) {
            command.arg(flag).arg(file);
        }
    }
    Proc::spawn(
        "hdi-control-plane",
        command.env("DATABASE_URL", database_url),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_database_urls_exit_with_one_line() {
    let dir = TempDir::new("bad-db");
    let secrets = Secrets::create(dir.path());
    let real = std::env::var("DATABASE_URL").unwrap();
    let cases = [
        (
            "not a URL",
            "definitely not a url".to_owned(),
            "invalid database URL",
        ),
        (
            "nothing listens",
            "postgres://postgres@127.0.0.1:9/hdi".to_owned(),
            "cannot connect to the database",
        ),
        (
            "missing database",
            with_database(&real, "no_such_database"),
            "cannot connect to the database",
        ),
    ];
    for (case, url, expected) in cases {
        let mut proc = control_plane_with(&url, &secrets, &[]);
        let (status, lines) = proc.wait_exit_lines(Duration::from_secs(20)).unwrap();
        assert!(!status.success(), "case {case}");
        assert_eq!(lines.len(), 1, "case {case}: {lines:#?}");
        assert!(
            lines[0].starts_with("hdi-control-plane: error: "),
            "case {case}: {}",
            lines[0]
        );
        assert!(lines[0].contains(expected), "case {case}: {}", lines[0]);
        assert!(!lines[0].contains("panicked"), "case {case}: {}", lines[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_exit_with_one_line_naming_the_flag() {
    let dir = TempDir::new("bad-flags");
    let secrets = Secrets::create(dir.path());
    let database = fresh_database().await;
    std::fs::write(dir.path().join("weak"), "short").unwrap();
    let weak = dir.path().join("weak").display().to_string();
    let cases = [
        (
            vec![
                "--admin-token-file".to_owned(),
                "/nonexistent/token".to_owned(),
            ],
            "cannot read --admin-token-file",
        ),
        (
            vec!["--agent-token-file".to_owned(), weak],
            "--agent-token-file",
        ),
        (
            vec!["--node-ready-timeout".to_owned(), "0s".to_owned()],
            "--node-ready-timeout must be greater than zero",
        ),
    ];
    for (extra, expected) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut proc = control_plane_with(&database, &secrets, &extra);
        let (status, lines) = proc.wait_exit_lines(Duration::from_secs(20)).unwrap();
        assert!(!status.success(), "{extra:?}");
        assert_eq!(lines.len(), 1, "{extra:?}: {lines:#?}");
        assert!(lines[0].contains(expected), "{extra:?}: {}", lines[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_with_a_wrong_token_is_refused_and_says_why() {
    let dir = TempDir::new("bad-token");
    let secrets = Secrets::create(dir.path());
    let mut cp = ControlPlane::start(&fresh_database().await, &secrets, "127.0.0.1:0", "10s");
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-agent-token").unwrap();
    let mut agent = start_agent(
        &cp.url,
        &wrong,
        "intruder",
        0,
        &dir.path().join("intruder"),
        "200ms",
    );
    let status = agent.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(!status.success());
    let agent_log = agent.lines().join("\n");
    assert!(
        agent_log.contains("refused this agent's token") && agent_log.contains("unauthorized"),
        "{agent_log}"
    );
    cp.proc
        .wait_for_line("refused request: 401 unauthorized", Duration::from_secs(5))
        .unwrap();
    let cp_log = cp.proc.lines().join("\n");
    assert!(
        cp_log.contains("does not match the Agent token"),
        "{cp_log}"
    );
    // Nothing was registered.
    assert!(
        cp.admin(&secrets)
            .nodes_list_all()
            .await
            .unwrap()
            .is_empty()
    );
}
