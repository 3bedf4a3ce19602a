//! `hdictl job` end to end against a real control plane (`--no-reconciler`, so the Spark cluster
//! stays as the test marks it: Running, its job API at a fake driver) and a fake executor driver
//! inside the test (`hdi_executor_api::fake`: the driver's job API on 127.0.0.1, recording every
//! request). Submit from a file (name from the stem, Kafka bootstrap servers passed on), list,
//! show, progress and preview tables, an invalid SQL pointed at by line and column, stop.
#![allow(clippy::unwrap_used, reason = "tests")]

use hdi_e2e::{ControlPlane, Secrets, TempDir, fresh_database, hdictl};
use hdi_executor_api::fake::FakeDriver;
use hdi_executor_api::{
    Durations, EventTime, Preview, Problem, Progress, SinkProgress, StateOperator, StatusCode,
};
use serde_json::{Value, json};

const SQL: &str = "CREATE TABLE clicks (user_id BIGINT, ts TIMESTAMP)\n  WITH (topic = 'clicks');\nINSERT INTO counts SELECT count(*) AS n FROM clicks;\n";

fn progress(batch: u64) -> Progress {
    Progress {
        id: "q".into(),
        name: "clicks".into(),
        batch_id: batch,
        timestamp: "2025-01-01T00:00:00Z".into(),
        num_input_rows: 1000 + batch,
        input_rows_per_second: 10.0,
        processed_rows_per_second: 250.5,
        duration_ms: Durations {
            trigger_execution: 40 + batch,
            ..Durations::default()
        },
        event_time: EventTime {
            watermark: Some("2025-01-01T00:00:30Z".into()),
            ..EventTime::default()
        },
        state_operators: vec![StateOperator {
            num_rows_total: 12,
            num_rows_updated: 2,
            memory_used_bytes: 1024,
            num_rows_dropped_by_watermark: 4,
            ..StateOperator::default()
        }],
        sources: Vec::new(),
        sink: SinkProgress {
            description: "kafka[counts]".into(),
            num_output_rows: 6,
        },
    }
}

/// The fake driver: every job has committed two batches; its preview has two rows.
async fn fake_driver() -> FakeDriver {
    let driver = FakeDriver::start().await.unwrap();
    driver.state().progress = vec![progress(1), progress(2)];
    driver.state().preview = Preview {
        columns: vec!["user_id".into(), "n".into()],
        rows: vec![json!({"user_id": 7, "n": 3}), json!({"user_id": 9, "n": 1})],
    };
    driver
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
        let mut spec: hdi_api::ClusterSpec = serde_json::from_value(json!({
            "kind": kind, "node_pools": [{"name": "pool", "role": role, "replicas": 1}]
        }))
        .unwrap();
        if name == "kafka" {
            // No brokers run here: a secured cluster would never get its jobs' user.
            spec.security = Some(hdi_api::KafkaSecurity::plaintext());
        }
        api.cluster_put("test", name, &spec).await.unwrap();
    }
    let driver = fake_driver().await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    for (name, status) in [
        ("spark", json!({"job_api": driver.url()})),
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
        let d = driver.state();
        let put = &d.requests[1];
        assert_eq!(put.method, "PUT");
        assert_eq!(
            put.body,
            json!({"name": "clicks", "sql": SQL, "bootstrap_servers": "127.0.0.1:19092",
                "allowed_kafka": ["127.0.0.1:19092"]})
        );
        put.uri.trim_start_matches("/v1/jobs/").to_owned()
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
        let d = driver.state();
        let paths: Vec<&str> = d.requests.iter().map(|r| r.uri.as_str()).collect();
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
    driver.state().validate_error = Some(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unknown_column",
            "column \"n\" not found",
        )
        .at(Some(3), Some(31)),
    );
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
    driver.state().validate_error = None;

    // Stop deletes it here and on the driver.
    let (ok, out, err) = run(&config, &["job", "stop", "spark", "clicks"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("job clicks stopped and deleted from cluster spark"),
        "{out}"
    );
    assert!(driver.state().jobs.is_empty());
    let (ok, _, err) = run(&config, &["job", "show", "spark", "clicks"]).await;
    assert!(!ok);
    assert!(err.contains("not_found"), "{err}");
    // Errors come in the style of every command: not a Spark cluster.
    let (ok, _, err) = run(&config, &["job", "list", "kafka"]).await;
    assert!(!ok);
    assert!(err.contains("not_a_spark_cluster"), "{err}");
}
