//! Prometheus metrics of real processes: a broker counts the Produce requests, bytes and records
//! of 200 records produced by kcat (and the bytes kcat reads back) under the names the JMX
//! exporter gives Kafka's MBeans, with its partition gauges; its `/metrics` wants the token
//! (401 without or with a wrong one), and a non-loopback `--metrics-listen` without a token
//! stops it at start-up. The control plane's `/metrics` is closed to anonymous callers (401) and
//! to a user's session token (403), open to the admin's API token, and counts requests by route
//! template; a node agent's loopback `/metrics` counts its heartbeats. An executor driver counts
//! the batches and rows of a job over kcat's records and its worker the tasks and records it
//! ran, both behind the cluster credential.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use hdi_e2e::{
    Broker, ControlPlane, Secrets, TempDir, bin, fresh_database, kcat_consume_all, kcat_produce,
};

/// `GET url` with an optional bearer token: status and body.
async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(url).timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the sample line starting with `series ` (exact labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_metrics_count_what_kcat_did() {
    let dir = TempDir::new("metrics-broker");
    let token = format!("m-{}", uuid::Uuid::new_v4().simple());
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let metrics_addr = hdi_e2e::ports::loopback();
    let mut broker = Broker::start(
        &dir.path().join("data"),
        None,
        &[
            "--default-partitions",
            "3",
            "--metrics-listen",
            &metrics_addr,
            "--metrics-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let url = format!("http://{metrics_addr}/metrics");

    let records: Vec<String> = (0..200).map(|i| format!("record-{i:04}")).collect();
    kcat_produce(&broker.bootstrap, "metered", &records);
    assert_eq!(kcat_consume_all(&broker.bootstrap, "metered").len(), 200);

    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    let (status, text) = get(&url, Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    let produce: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with(r#"kafka_network_requestmetrics_requests_total{request="Produce","#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(produce >= 1.0, "no Produce request counted:\n{text}");
    assert!(
        sample(
            &text,
            r#"kafka_network_requestmetrics_totaltime_seconds_count{request="Produce"}"#
        )
        .is_some_and(|n| n == produce),
        "Produce latencies do not match its count:\n{text}"
    );
    assert!(
        text.contains(r#"kafka_network_requestmetrics_requests_total{request="Metadata","#),
        "{text}"
    );
    let bytes_in = sample(
        &text,
        r#"kafka_server_brokertopicmetrics_bytesin_total{topic="metered"}"#,
    )
    .unwrap_or_else(|| panic!("no bytes in for the topic:\n{text}"));
    // 200 records of 11 bytes, in record batches (headers, per-record overhead).
    assert!(bytes_in >= 2_200.0, "bytes in {bytes_in}:\n{text}");
    assert_eq!(
        sample(
            &text,
            r#"kafka_server_brokertopicmetrics_messagesin_total{topic="metered"}"#
        ),
        Some(200.0),
        "{text}"
    );
    let bytes_out = sample(
        &text,
        r#"kafka_server_brokertopicmetrics_bytesout_total{topic="metered"}"#,
    )
    .unwrap_or(0.0);
    assert!(bytes_out >= 2_200.0, "bytes out {bytes_out}:\n{text}");

    let partitions = sample(&text, "kafka_server_replicamanager_partitioncount").unwrap();
    assert!(partitions >= 3.0, "{text}");
    assert_eq!(
        sample(&text, "kafka_server_replicamanager_leadercount"),
        Some(partitions),
        "a single broker leads all its partitions:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "kafka_server_replicamanager_underreplicatedpartitions"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "kafka_controller_kafkacontroller_activecontrollercount"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "kafka_controller_kafkacontroller_offlinepartitionscount"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "kafka_coordinator_group_groupmetadatamanager_numgroups"
        )
        .is_some(),
        "{text}"
    );
    broker.proc.terminate(Duration::from_secs(20)).unwrap();

    // No token and not loopback: refused at start-up, naming the flag.
    let out = Command::new(bin("hdi-broker"))
        .args(["--node-id", "1", "--listen", &hdi_e2e::ports::loopback()])
        .arg("--data-dir")
        .arg(dir.path().join("data-2"))
        .args(["--metrics-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--metrics-listen") && stderr.contains("--metrics-token-file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_metrics_need_a_token_and_count_requests() {
    let dir = TempDir::new("metrics-cp");
    let secrets = Secrets::create(dir.path());
    let cp = ControlPlane::start(&fresh_database().await, &secrets, "127.0.0.1:0", "5s");
    let url = format!("{}/metrics", cp.url);
    let admin = cp.admin(&secrets);
    admin
        .user_create("watcher", "watcher-password-01")
        .await
        .unwrap();

    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("admin-wrong")).await.0, 401);
    // A user's session token (a JWT, not an API token) of a non-admin: forbidden.
    let login = reqwest::Client::new()
        .post(format!("{}/v1/auth/token", cp.url))
        .json(&serde_json::json!({
            "grant_type": "password", "username": "watcher", "password": "watcher-password-01"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let jwt = login.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&url, Some(&jwt)).await.0, 403);

    for _ in 0..3 {
        let (status, _) = get(
            &format!("{}/v1/workspaces", cp.url),
            Some(&secrets.admin_token),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, text) = get(&url, Some(&secrets.admin_token)).await;
    assert_eq!(status, 200, "{text}");
    let workspaces = sample(
        &text,
        r#"http_server_requests_total{method="GET",route="/v1/workspaces",status="200"}"#,
    );
    assert_eq!(workspaces, Some(3.0), "{text}");
    assert!(
        text.contains(r#"http_server_requests_total{method="GET",route="/metrics",status="401"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_server_request_duration_seconds_count{method="GET",route="/v1/workspaces"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"hdi_reconciler_passes_total{reconciler="clusters",outcome="ok"}"#),
        "{text}"
    );
    // No path strings as labels: only templates.
    assert!(!text.contains("route=\"/v1/workspaces/"), "{text}");

    // A node agent with a loopback metrics listener counts its heartbeats.
    let agent_metrics = hdi_e2e::ports::loopback();
    let mut agent = hdi_e2e::Proc::spawn(
        "metrics-agent",
        Command::new(bin("hdi-node-agent"))
            .args([
                "--run-workloads-as",
                "agent-user",
                "--control-plane",
                &cp.url,
            ])
            .args(["--name", "metrics-agent", "--fault-domain", "1"])
            .args(["--heartbeat-interval", "300ms"])
            .args(["--metrics-listen", &agent_metrics])
            .arg("--data-dir")
            .arg(dir.path().join("agent"))
            .arg("--token-file")
            .arg(&secrets.agent_token_file)
            .env("RUST_LOG", "info"),
    );
    agent
        .wait_for_line("metrics on http://", Duration::from_secs(30))
        .unwrap();
    let agent_url = format!("http://{agent_metrics}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(&agent_url, None).await;
        assert_eq!(status, 200, "{text}");
        let ok = sample(&text, r#"hdi_agent_heartbeats_total{outcome="ok"}"#).unwrap_or(0.0);
        if ok >= 2.0 {
            assert!(
                text.contains(r#"hdi_agent_workloads{state="Running"} 0"#),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat counted:\n{text}\n{}",
            agent.lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_metrics_count_a_jobs_batches_and_rows() {
    let dir = TempDir::new("metrics-executor");
    let credential = "metrics-test-credential-0123456789abcdef";
    let credential_file = dir.path().join("credential");
    hdi_stdx::secret::write_secret_file(&credential_file, credential).unwrap();
    let cluster_args = |role_dir: &str| -> Vec<std::ffi::OsString> {
        vec![
            "--credential-file".into(),
            credential_file.clone().into(),
            "--files-root".into(),
            dir.path().join("files").into(),
            "--data-dir".into(),
            dir.path().join(role_dir).into(),
        ]
    };
    let broker = Broker::start(&dir.path().join("broker"), None, &[]);
    let records: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"account":"a{}","amount":{i}}}"#, i % 7))
        .collect();
    kcat_produce(&broker.bootstrap, "mtx", &records);

    let mut driver = hdi_e2e::Proc::spawn(
        "hdi-executor-driver",
        Command::new(bin("hdi-executor"))
            .args(["driver", "--listen", "127.0.0.1:0"])
            .args(cluster_args("driver"))
            .env("RUST_LOG", "info"),
    );
    let address = driver
        .wait_for_word_after("hdi-executor driver ready on ", Duration::from_secs(30))
        .unwrap();
    let mut worker = hdi_e2e::Proc::spawn(
        "hdi-executor-worker-1",
        Command::new(bin("hdi-executor"))
            .args([
                "worker",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--driver",
                &address,
            ])
            .args(cluster_args("worker-1"))
            .env("RUST_LOG", "info"),
    );
    let worker_address = worker
        .wait_for_word_after("worker listening on ", Duration::from_secs(30))
        .unwrap()
        .trim_end_matches(';')
        .to_owned();

    let sql = "CREATE TABLE tx (account TEXT, amount DOUBLE)
           WITH (connector = 'kafka', topic = 'mtx', starting_offsets = 'earliest');
         CREATE TABLE preview WITH (connector = 'memory');
         SET trigger = 'available_now';
         INSERT INTO preview SELECT account, amount FROM tx WHERE amount >= 60;";
    let client = reqwest::Client::new();
    let put = client
        .put(format!("http://{address}/v1/jobs/counted"))
        .bearer_auth(credential)
        .json(&serde_json::json!({"name": "counted", "sql": sql, "bootstrap_servers": broker.bootstrap}))
        .send()
        .await
        .unwrap();
    let status = put.status().as_u16();
    assert_eq!(status, 201, "{}", put.text().await.unwrap());
    let url = format!("http://{address}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (status, text) = get(&url, Some(credential)).await;
        assert_eq!(status, 200, "{text}");
        let input = sample(
            &text,
            r#"hdi_executor_input_rows_total{job="counted",name="counted"}"#,
        );
        if input == Some(100.0) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job's 100 input rows were never counted:\n{text}\n{}",
            driver.lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        sample(
            &text,
            r#"hdi_executor_output_rows_total{job="counted",name="counted"}"#
        ),
        Some(40.0),
        "{text}"
    );
    let batches = sample(
        &text,
        r#"hdi_executor_batches_total{job="counted",name="counted"}"#,
    )
    .unwrap_or(0.0);
    assert!(batches >= 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"hdi_executor_batch_duration_seconds_count{job="counted",name="counted"}"#
        ),
        Some(batches),
        "{text}"
    );
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong")).await.0, 401);

    // The worker ran the job's tasks: it read the 100 records, none is still running.
    let worker_url = format!("http://{worker_address}/metrics");
    let (status, text) = get(&worker_url, Some(credential)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        sample(&text, "hdi_executor_worker_task_input_rows_total"),
        Some(100.0),
        "{text}\n{}",
        worker.lines().join("\n")
    );
    let tasks = sample(
        &text,
        r#"hdi_executor_worker_tasks_total{outcome="succeeded"}"#,
    )
    .unwrap_or(0.0);
    assert!(tasks >= 1.0, "{text}");
    assert_eq!(
        sample(&text, "hdi_executor_worker_task_duration_seconds_count"),
        Some(tasks),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hdi_executor_worker_active_tasks"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hdi_executor_worker_registered"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(get(&worker_url, None).await.0, 401);
    assert_eq!(get(&worker_url, Some("wrong")).await.0, 401);
}
