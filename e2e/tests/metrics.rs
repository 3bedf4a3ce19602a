//! Prometheus metrics of real processes: a broker counts the Produce requests, bytes and records
//! of 200 records produced by kcat (and the bytes kcat reads back) under the names the JMX
//! exporter gives Kafka's MBeans, with its partition gauges; its `/metrics` wants the token
//! (401 without or with a wrong one), and a non-loopback `--metrics-listen` without a token
//! stops it at start-up. The control plane's `/metrics` is closed to anonymous callers (401) and
//! to a user's session token (403), open to the admin's API token, and counts requests by route
//! template.
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
}
