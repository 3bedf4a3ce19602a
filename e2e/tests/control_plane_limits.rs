//! The control plane under hostile load, as the security review reproduced it: a client
//! trickling a request header is cut at the header timeout; 300 concurrent wrong-password logins
//! are answered (401 or 429, never queued into argon2 hashes) while the control plane's memory
//! stays under 512 MB and it still answers; a username that fails repeatedly backs off with
//! `Retry-After`, even for the right password, and logs in once the wait is over; refusals are
//! audited.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use hdi_e2e::{ControlPlane, Secrets, TempDir, fresh_database};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PASSWORD: &str = "victim-password-0123";

/// One HTTP/1.1 request on a new connection; returns the status and the raw answer.
async fn request(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A password login (`POST /v1/auth/token`) on a new connection; returns the status and the raw
/// answer.
async fn login(address: &str, username: &str, password: &str) -> (u16, String) {
    let body =
        serde_json::json!({"grant_type": "password", "username": username, "password": password})
            .to_string();
    request(address, "POST", "/v1/auth/token", &body).await
}

/// The largest resident set the process has had, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_login_floods_are_bounded() {
    let dir = TempDir::new("limits");
    let secrets = Secrets::create(dir.path());
    let cp = ControlPlane::start_with(
        &fresh_database().await,
        &secrets,
        "127.0.0.1:0",
        &["--http-header-timeout", "1s"],
    );
    let address = cp.url.trim_start_matches("http://").to_owned();
    cp.admin(&secrets)
        .user_create("victim", PASSWORD)
        .await
        .unwrap();

    // A trickled header: one line every 200 ms; the connection is closed after about 1 s.
    let stream = TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"X-a: b\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 256];
        while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {}
    })
    .await;
    trickle.abort();
    assert!(
        closed.is_ok(),
        "a trickling client held its connection 10 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // 300 concurrent wrong passwords, for 300 names and for the real user.
    let flood_started = Instant::now();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let address = address.clone();
            let username = if i % 3 == 0 {
                "victim".to_owned()
            } else {
                format!("nobody{i}")
            };
            tokio::spawn(async move { login(&address, &username, "wrong-password-000").await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        if status == 429 {
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: "),
                "{answer}"
            );
            assert!(answer.contains("rate_limited"), "{answer}");
        }
        *statuses.entry(status).or_default() += 1;
    }
    let flood = flood_started.elapsed();
    eprintln!("300 concurrent wrong logins: {statuses:?} in {flood:?}");
    assert_eq!(
        statuses
            .keys()
            .copied()
            .filter(|s| *s != 401 && *s != 429)
            .count(),
        0,
        "{statuses:?}"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    let rss = peak_rss(cp.proc.pid());
    eprintln!("control plane peak RSS: {} MiB", rss >> 20);
    assert!(rss < 512 << 20, "peak RSS {} MiB", rss >> 20);
    let (status, _) = request(&address, "GET", "/healthz", "").await;
    assert_eq!(status, 200);

    // Another user backs off after five failures, then logs in once the wait is over.
    cp.admin(&secrets)
        .user_create("carol", PASSWORD)
        .await
        .unwrap();
    for _ in 0..5 {
        let (status, answer) = login(&address, "carol", "wrong-password-000").await;
        assert_eq!(status, 401, "{answer}");
    }
    let (status, answer) = login(&address, "carol", PASSWORD).await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = login(&address, "carol", PASSWORD).await;
    assert_eq!(status, 200, "{answer}");
    let audit = cp.admin(&secrets).audit_list(None).await.unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "auth.token" && e.outcome == "rate_limited"),
        "lockouts are audited"
    );
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "auth.token" && e.outcome == "invalid_credentials"),
        "failed logins are audited"
    );
}
