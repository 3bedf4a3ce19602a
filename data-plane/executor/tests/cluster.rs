//! The real `hdi-executor` binary as a driver and two workers on loopback: membership forms,
//! a SIGKILLed worker is dropped, malformed registrations are refused with problem documents, a
//! second process on a locked data directory, a worker whose driver refuses it and bad flags fail,
//! and SIGTERM stops cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_hdi-executor");

/// A running `hdi-executor`, its stderr read line by line on a thread (and echoed for failures).
struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
}

impl Process {
    fn start(name: &str, args: &[&str]) -> Process {
        let mut child = Command::new(BINARY)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start hdi-executor");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = channel();
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{prefix}] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// Waits for the `ready on <addr>` line; returns the address.
    fn ready(&mut self, timeout: Duration) -> String {
        let needle = "ready on ";
        let line = self.wait_for_line(needle, timeout);
        let after = &line[line.find(needle).unwrap() + needle.len()..];
        after
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .to_owned()
    }

    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no line with '{needle}' within {timeout:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: exited ({:?}) before a line with '{needle}'",
                    self.name,
                    self.child.try_wait()
                ),
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        #[allow(unsafe_code, reason = "kill(2) of our own child process")]
        // SAFETY: kill takes plain integers; the child is not yet reaped, so the pid is ours.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill {} failed", self.name);
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This test run's scratch directory (removed by the cluster test when it passes).
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("executor-cluster-{}", std::process::id()))
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the binary to completion (for failures that exit at once); returns status and stderr.
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let output = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

fn worker_ids(cluster: &Value) -> Vec<u64> {
    cluster["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| worker["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn driver_and_two_workers_form_a_cluster() {
    let ready_within = Duration::from_secs(10);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let driver_dir = fresh_dir("driver");
    let driver_dir_arg = driver_dir.to_str().unwrap();
    let mut driver = Process::start(
        "driver",
        &[
            "driver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            driver_dir_arg,
            "--worker-timeout",
            "2s",
        ],
    );
    let driver_addr = driver.ready(ready_within);
    let base = format!("http://{driver_addr}");
    assert_eq!(
        get_json(&client, &format!("{base}/healthz")).await,
        serde_json::json!({"status": "ok", "role": "driver"})
    );

    // A second driver on the same data directory fails at once, naming the problem.
    let (code, stderr) = run_to_exit(&[
        "driver",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        driver_dir_arg,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is in use by another hdi-executor"),
        "{stderr}"
    );

    let mut workers = Vec::new();
    let mut worker_addrs = Vec::new();
    for id in ["1", "2"] {
        let dir = fresh_dir(&format!("worker-{id}"));
        let mut worker = Process::start(
            &format!("worker-{id}"),
            &[
                "worker",
                "--id",
                id,
                "--listen",
                "127.0.0.1:0",
                "--driver",
                &driver_addr,
                "--data-dir",
                dir.to_str().unwrap(),
            ],
        );
        worker_addrs.push(worker.ready(ready_within));
        workers.push(worker);
    }

    let cluster = get_json(&client, &format!("{base}/v1/cluster")).await;
    assert_eq!(cluster["role"], "driver");
    assert!(cluster["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(worker_ids(&cluster), vec![1, 2], "{cluster}");
    for (worker, address) in cluster["workers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&worker_addrs)
    {
        assert_eq!(worker["address"].as_str().unwrap(), address);
        assert!(worker["last_seen_ms"].as_u64().unwrap() < 2_000, "{worker}");
        uuid::Uuid::parse_str(worker["incarnation"].as_str().unwrap()).unwrap();
    }
    assert_eq!(
        get_json(&client, &format!("http://{}/healthz", worker_addrs[0])).await,
        serde_json::json!({"status": "ok", "role": "worker", "id": 1, "registered": true})
    );

    // SIGKILL worker 2: the driver drops it after its 2 s timeout.
    workers[1].signal(libc::SIGKILL);
    workers[1].wait(Duration::from_secs(5));
    let killed_at = Instant::now();
    loop {
        let cluster = get_json(&client, &format!("{base}/v1/cluster")).await;
        if worker_ids(&cluster) == vec![1] {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(7),
            "worker 2 still listed 7 s after SIGKILL: {cluster}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver.wait_for_line("worker dropped", Duration::from_secs(5));

    // Malformed registrations: 400 problem documents naming the field.
    let incarnation = uuid::Uuid::new_v4();
    let good_body = format!(r#"{{"address":"127.0.0.1:9","incarnation":"{incarnation}"}}"#);
    for (path, body, field) in [
        ("/v1/workers/3", "{not json".to_owned(), "body"),
        (
            "/v1/workers/3",
            r#"{"address":"127.0.0.1:9"}"#.to_owned(),
            "incarnation",
        ),
        ("/v1/workers/0", good_body.clone(), "id"),
    ] {
        let response = client
            .put(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "about:blank", "{problem}");
        assert_eq!(problem["title"], "Bad Request", "{problem}");
        assert_eq!(problem["status"], 400, "{problem}");
        assert_eq!(problem["code"], "invalid_field", "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(problem["detail"].as_str().is_some(), "{problem}");
    }
    // Refused registrations changed nothing.
    let cluster = get_json(&client, &format!("{base}/v1/cluster")).await;
    assert_eq!(worker_ids(&cluster), vec![1], "{cluster}");

    // A worker pointed at something that is not a driver (here worker 1) is refused: exit 1.
    let dir = fresh_dir("worker-9");
    let (code, stderr) = run_to_exit(&[
        "worker",
        "--id",
        "9",
        "--listen",
        "127.0.0.1:0",
        "--driver",
        &worker_addrs[0],
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refused worker 9's registration: 404"),
        "{stderr}"
    );

    // SIGTERM stops a worker and the driver cleanly.
    workers[0].signal(libc::SIGTERM);
    assert_eq!(workers[0].wait(Duration::from_secs(5)).code(), Some(0));
    driver.signal(libc::SIGTERM);
    assert_eq!(driver.wait(Duration::from_secs(5)).code(), Some(0));
    drop(workers);
    let _ = std::fs::remove_dir_all(scratch());
}

#[test]
fn bad_flags_are_refused_by_name() {
    let dir = fresh_dir("flags");
    let dir = dir.to_str().unwrap();
    for (args, flag) in [
        (
            vec!["driver", "--listen", "nope", "--data-dir", dir],
            "--listen",
        ),
        (
            vec![
                "driver",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir,
                "--worker-timeout",
                "0s",
            ],
            "--worker-timeout",
        ),
        (
            vec![
                "worker",
                "--id",
                "0",
                "--listen",
                "127.0.0.1:0",
                "--driver",
                "h:1",
                "--data-dir",
                dir,
            ],
            "--id",
        ),
        (
            vec![
                "worker",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir,
            ],
            "--driver",
        ),
    ] {
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
