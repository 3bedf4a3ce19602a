//! `hdictl job` end to end against a real control plane (`--no-reconciler`, so the Spark cluster
//! stays as the test marks it: Running, its job API at a fake driver) and a fake executor driver
//! inside the test: a minimal HTTP/1.1 server on 127.0.0.1 that implements the driver's job API
//! contract and records every request. Submit from a file (name from the stem, Kafka bootstrap
//! servers passed on), list, show, progress and preview tables, an invalid SQL pointed at by line
//! and column, stop.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hdi_e2e::{ControlPlane, Secrets, TempDir, fresh_database, hdictl};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

const SQL: &str = "CREATE TABLE clicks (user_id BIGINT, ts TIMESTAMP)\n  WITH (topic = 'clicks');\nINSERT INTO counts SELECT count(*) AS n FROM clicks;\n";

#[derive(Default)]
struct Driver {
    jobs: BTreeMap<String, Value>,
    /// (method, path, body) of every request.
    requests: Vec<(String, String, Value)>,
    validate_error: Option<Value>,
}

type Shared = Arc<Mutex<Driver>>;

fn progress(batch: u64) -> Value {
    json!({
        "id": "q", "name": "clicks", "batch_id": batch, "timestamp": "2025-01-01T00:00:00Z",
        "num_input_rows": 1000 + batch, "input_rows_per_second": 10.0,
        "processed_rows_per_second": 250.5, "duration_ms": {"trigger_execution": 40 + batch},
        "event_time": {"watermark": "2025-01-01T00:00:30Z"},
        "state_operators": [{"num_rows_total": 12, "num_rows_updated": 2,
                             "memory_used_bytes": 1024, "num_rows_dropped_by_watermark": 4}],
        "sources": [], "sink": {"description": "kafka[counts]", "num_output_rows": 6}
    })
}

/// The driver's answer to one request: status and JSON body (`Null`: none).
fn answer(driver: &Shared, method: &str, target: &str, body: Value) -> (u16, Value) {
    let mut d = driver.lock().unwrap();
    d.requests
        .push((method.to_owned(), target.to_owned(), body.clone()));
    let (path, _) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let missing = (
        404,
        json!({"code": "job_not_found", "detail": "no such job"}),
    );
    match (method, parts.as_slice()) {
        ("POST", ["v1", "jobs", "validate"]) => match d.validate_error.clone() {
            Some(problem) => (400, problem),
            None => (200, json!({"ok": true})),
        },
        ("PUT", ["v1", "jobs", id]) => {
            let job = json!({
                "id": id, "name": body["name"], "sql": body["sql"], "state": "running",
                "error": null, "batches_committed": 2, "last_progress": progress(2),
                "submitted_at": "2025-01-01T00:00:00Z"
            });
            d.jobs.insert((*id).to_owned(), job.clone());
            (201, job)
        }
        ("GET", ["v1", "jobs"]) => (
            200,
            json!({"jobs": d.jobs.values().cloned().collect::<Vec<_>>()}),
        ),
        ("GET", ["v1", "jobs", id]) => d.jobs.get(*id).map_or(missing, |j| (200, j.clone())),
        ("GET", ["v1", "jobs", _, "progress"]) => {
            (200, json!({"progress": [progress(1), progress(2)]}))
        }
        ("GET", ["v1", "jobs", _, "preview"]) => (
            200,
            json!({"columns": ["user_id", "n"], "rows": [{"user_id": 7, "n": 3}, {"user_id": 9, "n": 1}]}),
        ),
        ("DELETE", ["v1", "jobs", id]) => match d.jobs.remove(*id) {
            Some(_) => (204, Value::Null),
            None => missing,
        },
        _ => (
            404,
            json!({"code": "not_found", "detail": "no such endpoint"}),
        ),
    }
}

/// Serves one connection: one request, one answer, then close.
async fn serve(driver: Shared, stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, reply) = answer(&driver, &method, &target, body);
    let text = if reply.is_null() {
        String::new()
    } else {
        reply.to_string()
    };
    let kind = if status >= 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        text.len()
    );
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

async fn fake_driver() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let driver = shared.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(driver.clone(), stream));
        }
    });
    (url, shared)
}

/// Runs hdictl off the runtime's threads (the fake driver answers on them meanwhile).
async fn run(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hdictl(&config, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdictl_runs_jobs_on_a_spark_cluster() {
    let database_url = fresh_database().await;
    let dir = TempDir::new("jobs");
    let secrets = Secrets::create(dir.path());
    let cp = ControlPlane::start_with(&database_url, &secrets, "127.0.0.1:0", &["--no-reconciler"]);
    let api = cp.admin(&secrets);
    api.workspace_create("test").await.unwrap();
    for (name, kind, role) in [("spark", "spark", "executor"), ("kafka", "kafka", "broker")] {
        let spec = serde_json::from_value(json!({
            "kind": kind, "node_pools": [{"name": "pool", "role": role, "replicas": 1}]
        }))
        .unwrap();
        api.cluster_put("test", name, &spec).await.unwrap();
    }
    let (driver_url, driver) = fake_driver().await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    for (name, status) in [
        ("spark", json!({"job_api": driver_url})),
        ("kafka", json!({"bootstrap_servers": "127.0.0.1:19092"})),
    ] {
        sqlx::query("UPDATE clusters SET state = 'Running', status = $2::jsonb WHERE name = $1")
            .bind(name)
            .bind(status.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let config = dir.path().join("hdictl.json");
    std::fs::write(
        &config,
        json!({
            "current_context": "test",
            "contexts": {"test": {"api_url": cp.url, "token": secrets.admin_token, "workspace": "test"}}
        })
        .to_string(),
    )
    .unwrap();
    let file = dir.path().join("clicks.sql");
    std::fs::write(&file, SQL).unwrap();
    let file = file.to_str().unwrap();

    // Submit: the name is the file's stem; the Kafka cluster's bootstrap servers reach the driver.
    let (ok, out, err) = run(
        &config,
        &[
            "job",
            "submit",
            "spark",
            "--file",
            file,
            "--kafka-cluster",
            "kafka",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("job clicks submitted to cluster spark"),
        "{err}"
    );
    assert!(out.contains("state:       Running"), "{out}");
    let id = {
        let d = driver.lock().unwrap();
        let (method, path, body) = &d.requests[1];
        assert_eq!(method, "PUT");
        assert_eq!(
            body,
            &json!({"name": "clicks", "sql": SQL, "bootstrap_servers": "127.0.0.1:19092"})
        );
        path.trim_start_matches("/v1/jobs/").to_owned()
    };

    let (ok, out, err) = run(&config, &["-o", "json", "job", "list", "spark"]).await;
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"]["state"], "Running");
    assert_eq!(list[0]["kafka_cluster"], "kafka");
    let (ok, out, err) = run(&config, &["job", "list", "spark"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("NAME "), "{out}");
    assert!(out.contains("clicks") && out.contains("250.5"), "{out}");

    // Show by id: state, last batch, SQL.
    let (ok, out, err) = run(&config, &["job", "show", "spark", &id]).await;
    assert!(ok, "{err}");
    assert!(out.contains("name:        clicks"), "{out}");
    assert!(
        out.contains("last batch:  2 (1002 input rows, 250.5 rows/s, 42ms"),
        "{out}"
    );
    assert!(out.contains("  INSERT INTO counts SELECT"), "{out}");

    let (ok, out, err) = run(
        &config,
        &["job", "progress", "spark", "clicks", "--limit", "2"],
    )
    .await;
    assert!(ok, "{err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "BATCH",
                "INPUT-ROWS",
                "ROWS/S",
                "DURATION",
                "WATERMARK",
                "STATE-ROWS",
                "LATE-DROPPED",
                "OUTPUT-ROWS"
            ],
            vec![
                "1",
                "1001",
                "250.5",
                "41ms",
                "2025-01-01T00:00:30Z",
                "12",
                "4",
                "6"
            ],
            vec![
                "2",
                "1002",
                "250.5",
                "42ms",
                "2025-01-01T00:00:30Z",
                "12",
                "4",
                "6"
            ],
        ]
    );
    let (ok, out, err) = run(
        &config,
        &["job", "preview", "spark", "clicks", "--limit", "5"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "USER_ID   N\n7         3\n9         1\n");
    {
        let d = driver.lock().unwrap();
        let paths: Vec<&str> = d.requests.iter().map(|r| r.1.as_str()).collect();
        assert!(
            paths.contains(&format!("/v1/jobs/{id}/progress?limit=2").as_str()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&format!("/v1/jobs/{id}/preview?limit=5").as_str()),
            "{paths:?}"
        );
    }

    // Invalid SQL: the executor's code and position, with the line it points at; exit non-zero.
    driver.lock().unwrap().validate_error = Some(json!({
        "title": "Bad Request", "status": 400, "code": "unknown_column",
        "detail": "column \"n\" not found", "line": 3, "column": 31
    }));
    let (ok, out, err) = run(
        &config,
        &["job", "submit", "spark", "--file", file, "--name", "broken"],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "invalid SQL (unknown_column) at {file}:3:31: column \"n\" not found"
        )),
        "{err}"
    );
    assert!(
        err.contains(" 3 | INSERT INTO counts SELECT count(*) AS n FROM clicks;"),
        "{err}"
    );
    assert!(err.contains(&format!("   | {}^", " ".repeat(30))), "{err}");
    driver.lock().unwrap().validate_error = None;

    // Stop deletes it here and on the driver.
    let (ok, out, err) = run(&config, &["job", "stop", "spark", "clicks"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("job clicks stopped and deleted from cluster spark"),
        "{out}"
    );
    assert!(driver.lock().unwrap().jobs.is_empty());
    let (ok, _, err) = run(&config, &["job", "show", "spark", "clicks"]).await;
    assert!(!ok);
    assert!(err.contains("not_found"), "{err}");
    // Errors come in the style of every command: not a Spark cluster.
    let (ok, _, err) = run(&config, &["job", "list", "kafka"]).await;
    assert!(!ok);
    assert!(err.contains("not_a_spark_cluster"), "{err}");
}
