//! Streaming SQL jobs in-process against a real PostgreSQL database per test and a fake executor
//! driver (`hdi_executor_api::fake`: the driver's job API on 127.0.0.1 inside the test, recording
//! every request it gets), so the tests assert exactly what the control plane sent. Submit, list, show, progress, preview, delete; validation (field names, not Spark, not
//! ready, unknown Kafka cluster, the driver's SQL errors with line and column, a driver that is
//! down); roles; the job reconciler resubmitting lost jobs and removing unknown ones.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use hdi_control_plane::model::{ClusterState, ClusterStatusDoc};
use hdi_control_plane::reconcile::JobReconciler;
use hdi_control_plane::store::Store;
use hdi_executor_api::fake::{FakeDriver, Seen};
use hdi_executor_api::{
    Durations, EventTime, JobStatus, Preview, Problem, Progress, QueryState, SinkProgress,
    SourceProgress, StateOperator,
};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, Reply, call, expect};

const BOOTSTRAP: &str = "127.0.0.1:19092,127.0.0.1:19093";
const SQL: &str = "CREATE SINK counts AS\nSELECT window_start, count(*) AS n\nFROM clicks GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)";

fn seen(method: &str, uri: &str, body: Value) -> Seen {
    Seen::new(method, uri, body)
}

fn progress(batch: u64) -> Progress {
    Progress {
        id: "q".into(),
        name: "clicks".into(),
        batch_id: batch,
        timestamp: "2025-01-01T00:00:00Z".into(),
        num_input_rows: 100 * batch,
        input_rows_per_second: 50.0,
        processed_rows_per_second: 75.5,
        duration_ms: Durations {
            trigger_execution: 120,
            ..Durations::default()
        },
        event_time: EventTime {
            min: Some("2025-01-01T00:00:00Z".into()),
            max: Some("2025-01-01T00:01:00Z".into()),
            watermark: Some("2025-01-01T00:00:30Z".into()),
        },
        state_operators: vec![StateOperator {
            num_rows_total: 7,
            num_rows_updated: 2,
            memory_used_bytes: 1024,
            num_rows_dropped_by_watermark: 1,
            ..StateOperator::default()
        }],
        sources: vec![SourceProgress {
            description: "kafka[clicks]".into(),
            start_offset: [("0".to_owned(), 0)].into(),
            end_offset: [("0".to_owned(), 100)].into(),
            num_input_rows: 100,
            malformed_rows: 0,
        }],
        sink: SinkProgress {
            description: "kafka[counts]".into(),
            num_output_rows: 3,
        },
    }
}

/// The fake driver: every job has committed three batches; its preview has two rows.
async fn fake_driver() -> FakeDriver {
    let driver = FakeDriver::start().await.unwrap();
    driver.state().progress = (1..=3).map(progress).collect();
    driver.state().preview = Preview {
        columns: vec!["window_start".into(), "n".into()],
        rows: (0..2)
            .map(|i| json!({"window_start": format!("00:0{i}"), "n": i}))
            .collect(),
    };
    driver
}

/// The app, its store, and a workspace `ws` with a Running Spark cluster `spark` whose job API is
/// the fake driver, a Running Kafka cluster `kafka`, and a Spark cluster `fresh` still Creating.
struct Fixture {
    app: axum::Router,
    store: Store,
    driver: FakeDriver,
}

impl Fixture {
    async fn new(pool: PgPool) -> Fixture {
        let app = common::app(pool.clone(), Duration::from_secs(10)).await;
        let store = Store::from_pool(pool);
        let driver = fake_driver().await;
        expect(
            &app,
            "POST",
            "/v1/workspaces",
            Some(ADMIN),
            Some(json!({"name": "ws"})),
            StatusCode::CREATED,
        )
        .await;
        for (name, kind, role) in [
            ("spark", "spark", "executor"),
            ("fresh", "spark", "executor"),
            ("kafka", "kafka", "broker"),
        ] {
            let mut spec = json!({"kind": kind, "node_pools": [{"name": "pool", "role": role, "replicas": 1}]});
            if kind == "kafka" {
                // No brokers run here: a secured cluster would never get its jobs' user.
                spec["security"] =
                    json!({"tls": false, "authentication": [], "authorization": false});
            }
            let uri = format!("/v1/workspaces/ws/clusters/{name}");
            expect(
                &app,
                "PUT",
                &uri,
                Some(ADMIN),
                Some(spec),
                StatusCode::ACCEPTED,
            )
            .await;
        }
        let fixture = Fixture { app, store, driver };
        fixture.set_job_api("spark", fixture.driver.url()).await;
        // The fake driver takes only the Spark cluster's credential, as a real one does.
        let ws = fixture.store.workspace_get("ws").await.unwrap().unwrap();
        let spark = fixture
            .store
            .cluster_get(ws.id, "spark")
            .await
            .unwrap()
            .unwrap();
        let access = fixture
            .store
            .cluster_access(spark.id)
            .await
            .unwrap()
            .unwrap();
        assert!(access.credential.expose().len() >= 32);
        fixture.driver.state().credential = Some(access.credential.expose().to_owned());
        let view = call(
            &fixture.app,
            "GET",
            "/v1/workspaces/ws/clusters/spark",
            Some(ADMIN),
            None,
        )
        .await;
        assert!(
            !view.body.to_string().contains(access.credential.expose()),
            "the API shows no credential"
        );
        fixture
            .set_status(
                "kafka",
                ClusterStatusDoc {
                    bootstrap_servers: Some(BOOTSTRAP.to_owned()),
                    ..ClusterStatusDoc::default()
                },
            )
            .await;
        fixture
    }

    /// Marks a cluster Running with `status`, as the reconciler would.
    async fn set_status(&self, name: &str, status: ClusterStatusDoc) {
        let ws = self.store.workspace_get("ws").await.unwrap().unwrap();
        let cluster = self.store.cluster_get(ws.id, name).await.unwrap().unwrap();
        let written = self
            .store
            .cluster_set_observed(
                cluster.id,
                cluster.generation,
                ClusterState::Running,
                cluster.generation,
                &status,
            )
            .await
            .unwrap();
        assert!(written);
    }

    /// Marks a Spark cluster Running with its driver's job API at `url`.
    async fn set_job_api(&self, name: &str, url: &str) {
        self.set_status(
            name,
            ClusterStatusDoc {
                job_api: Some(url.to_owned()),
                ..ClusterStatusDoc::default()
            },
        )
        .await;
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        call(&self.app, method, uri, Some(ADMIN), body).await
    }

    async fn submit(&self, name: &str, kafka: Option<&str>) -> Reply {
        let mut body = json!({"name": name, "sql": SQL});
        if let Some(kafka) = kafka {
            body["kafka_cluster"] = json!(kafka);
        }
        self.call("POST", JOBS, Some(body)).await
    }
}

const JOBS: &str = "/v1/workspaces/ws/clusters/spark/jobs";

/// A base URL where nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[sqlx::test(migrations = "../migrations")]
async fn jobs_are_submitted_listed_shown_and_deleted(pool: PgPool) {
    let f = Fixture::new(pool).await;

    let created = f.submit("clicks", Some("kafka")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.location.as_deref(),
        Some(format!("{JOBS}/{id}").as_str())
    );
    assert_eq!(created.body["name"], "clicks");
    assert_eq!(created.body["cluster"], "spark");
    assert_eq!(created.body["kafka_cluster"], "kafka");
    assert_eq!(created.body["sql"], SQL);
    assert_eq!(created.body["created_by"], "admin");
    assert_eq!(created.body["status"]["state"], "Running");
    assert_eq!(created.body["status"]["batches_committed"], 3);
    // Validate, then the idempotent PUT under the control plane's id, then the status read.
    assert_eq!(
        f.driver.requests(),
        [
            seen(
                "POST",
                "/v1/jobs/validate",
                json!({"sql": SQL, "bootstrap_servers": BOOTSTRAP, "allowed_kafka": [BOOTSTRAP]})
            ),
            seen(
                "PUT",
                &format!("/v1/jobs/{id}"),
                json!({"name": "clicks", "sql": SQL, "bootstrap_servers": BOOTSTRAP,
                    "allowed_kafka": [BOOTSTRAP]})
            ),
            seen("GET", &format!("/v1/jobs/{id}"), Value::Null),
        ]
    );

    // Without a Kafka cluster the driver gets `null` bootstrap servers.
    let plain = f.submit("plain", None).await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.body);
    assert!(plain.body.get("kafka_cluster").is_none(), "{}", plain.body);
    let plain_id = plain.body["id"].as_str().unwrap().to_owned();
    let sent = f.driver.requests();
    assert_eq!(
        sent[0].body,
        json!({"sql": SQL, "bootstrap_servers": null, "allowed_kafka": [BOOTSTRAP]})
    );
    assert_eq!(
        sent[1].body,
        json!({"name": "plain", "sql": SQL, "bootstrap_servers": null,
            "allowed_kafka": [BOOTSTRAP]})
    );

    let taken = f.submit("clicks", None).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert_eq!(taken.body["code"], "job_exists");
    assert!(
        f.driver.requests().is_empty(),
        "a duplicate never reaches the driver"
    );

    // The list: by name, one call to the driver for every status; pages.
    let list = f.call("GET", JOBS, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["clicks", "plain"]);
    assert_eq!(list.body["items"][0]["status"]["state"], "Running");
    assert_eq!(
        list.body["items"][0]["status"]["last_progress"]["batch_id"],
        3
    );
    assert_eq!(f.driver.requests(), [seen("GET", "/v1/jobs", Value::Null)]);
    let first = f.call("GET", &format!("{JOBS}?page_size=1"), None).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    let token = first.body["next_page_token"].as_str().unwrap().to_owned();
    let second = f
        .call(
            "GET",
            &format!("{JOBS}?page_size=1&page_token={token}"),
            None,
        )
        .await;
    assert_eq!(second.body["items"][0]["name"], "plain");
    assert!(second.body.get("next_page_token").is_none());
    f.driver.requests();

    // Show by name and by id.
    for key in ["clicks", id.as_str()] {
        let shown = f.call("GET", &format!("{JOBS}/{key}"), None).await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
        assert_eq!(shown.body["id"], id.as_str());
        assert_eq!(shown.body["status"]["state"], "Running");
    }
    let missing = f.call("GET", &format!("{JOBS}/nope"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    f.driver.requests();

    // Progress and preview are proxied with the limit.
    let progress = f
        .call("GET", &format!("{JOBS}/clicks/progress?limit=2"), None)
        .await;
    assert_eq!(progress.status, StatusCode::OK, "{}", progress.body);
    let batches: Vec<u64> = progress.body["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["batch_id"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [2, 3]);
    let preview = f
        .call("GET", &format!("{JOBS}/clicks/preview?limit=5"), None)
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["columns"], json!(["window_start", "n"]));
    assert_eq!(
        preview.body["rows"][1],
        json!({"window_start": "00:01", "n": 1})
    );
    assert_eq!(
        f.driver.requests(),
        [
            seen(
                "GET",
                &format!("/v1/jobs/{id}/progress?limit=2"),
                Value::Null
            ),
            seen(
                "GET",
                &format!("/v1/jobs/{id}/preview?limit=5"),
                Value::Null
            ),
        ]
    );
    let bad = f
        .call("GET", &format!("{JOBS}/clicks/progress?limit=0"), None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["field"], "limit");

    // Delete by name: the row, then the driver's job.
    let deleted = f.call("DELETE", &format!("{JOBS}/clicks"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(
        f.driver.requests(),
        [seen("DELETE", &format!("/v1/jobs/{id}"), Value::Null)]
    );
    assert_eq!(
        f.call("GET", &format!("{JOBS}/{id}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let again = f.call("DELETE", &format!("{JOBS}/clicks"), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.driver.state().jobs.keys().collect::<Vec<_>>(),
        [&plain_id]
    );

    // Every mutation and refusal is audited.
    let audit = f.call("GET", "/v1/audit-events", None).await;
    let events: Vec<(String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("job."))
        .map(|e| {
            (
                format!(
                    "{} {}",
                    e["action"].as_str().unwrap(),
                    e["resource"].as_str().unwrap()
                ),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let resource = "workspaces/ws/clusters/spark/jobs";
    let expected: Vec<(String, String)> = [
        ("job.delete", "clicks", "not_found"),
        ("job.delete", "clicks", "accepted"),
        ("job.create", "clicks", "job_exists"),
        ("job.create", "plain", "accepted"),
        ("job.create", "clicks", "accepted"),
    ]
    .iter()
    .map(|(a, n, o)| (format!("{a} {resource}/{n}"), (*o).to_owned()))
    .collect();
    assert_eq!(events, expected);
}

#[sqlx::test(migrations = "../migrations")]
async fn job_submissions_are_validated(pool: PgPool) {
    let f = Fixture::new(pool).await;
    type Case = (
        &'static str,
        Value,
        StatusCode,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "spark",
            json!({"name": "Bad_Name", "sql": SQL}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("name"),
        ),
        (
            "spark",
            json!({"name": "00000000-0000-0000-0000-000000000000", "sql": SQL}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("name"),
        ),
        (
            "spark",
            json!({"name": "j", "sql": "  "}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("sql"),
        ),
        (
            "spark",
            json!({"name": "j", "sql": "x".repeat(256 * 1024 + 1)}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("sql"),
        ),
        (
            "spark",
            json!({"name": "j", "sql": SQL, "kafka_cluster": "nope"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("kafka_cluster"),
        ),
        (
            "spark",
            json!({"name": "j", "sql": SQL, "kafka_cluster": "fresh"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some("kafka_cluster"),
        ),
        (
            "spark",
            json!({"name": "j", "sql": SQL, "extra": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            None,
        ),
        (
            "kafka",
            json!({"name": "j", "sql": SQL}),
            StatusCode::BAD_REQUEST,
            "not_a_spark_cluster",
            None,
        ),
        (
            "fresh",
            json!({"name": "j", "sql": SQL}),
            StatusCode::CONFLICT,
            "cluster_not_ready",
            None,
        ),
        (
            "ghost",
            json!({"name": "j", "sql": SQL}),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
    ];
    for (cluster, body, status, code, field) in cases {
        let uri = format!("/v1/workspaces/ws/clusters/{cluster}/jobs");
        let reply = f.call("POST", &uri, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{cluster} {body}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{cluster} {body}: {}", reply.body);
        assert_eq!(
            reply.body["field"].as_str(),
            field,
            "{cluster} {body}: {}",
            reply.body
        );
    }
    assert!(
        f.driver.requests().is_empty(),
        "nothing invalid reaches the driver"
    );

    // The driver's SQL error: 400 invalid_sql with its code, line and column; nothing stored.
    f.driver.state().validate_error = Some(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unknown_column",
            "column \"ts\" not found in clicks",
        )
        .at(Some(3), Some(41)),
    );
    let refused = f.submit("clicks", Some("kafka")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["code"], "invalid_sql");
    assert_eq!(refused.body["field"], "sql");
    assert_eq!(refused.body["sql_code"], "unknown_column");
    assert_eq!(refused.body["line"], 3);
    assert_eq!(refused.body["column"], 41);
    assert_eq!(refused.body["detail"], "column \"ts\" not found in clicks");
    let sent = f.driver.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].uri, "/v1/jobs/validate");
    let list = f.call("GET", JOBS, None).await;
    assert_eq!(list.body["items"], json!([]));

    // A driver that is down: 503 driver_unavailable, nothing stored.
    f.driver.state().validate_error = None;
    f.set_job_api("spark", &dead_url().await).await;
    let down = f.submit("clicks", None).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body
    );
    assert_eq!(down.body["code"], "driver_unavailable");
    assert_eq!(f.call("GET", JOBS, None).await.body["items"], json!([]));

    let audit = f.call("GET", "/v1/audit-events", None).await;
    let outcomes: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "job.create")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 11, "{outcomes:?}");
    assert_eq!(outcomes[..2], ["driver_unavailable", "invalid_sql"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn viewers_read_jobs_but_cannot_submit_or_delete(pool: PgPool) {
    let f = Fixture::new(pool).await;
    assert_eq!(f.submit("clicks", None).await.status, StatusCode::CREATED);
    let user = f
        .call(
            "POST",
            "/v1/users",
            Some(json!({"username": "vera", "password": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.body);
    let bound = f
        .call(
            "PUT",
            "/v1/workspaces/ws/role-bindings/vera",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
    let token = call(
        &f.app,
        "POST",
        "/v1/auth/token",
        Some(ADMIN),
        Some(json!({"grant_type": "password", "username": "vera", "password": "correct horse battery staple"})),
    )
    .await;
    let vera = token.body["access_token"].as_str().unwrap().to_owned();
    f.driver.requests();

    let body = json!({"name": "mine", "sql": SQL});
    let submit = expect(
        &f.app,
        "POST",
        JOBS,
        Some(&vera),
        Some(body),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(submit.body["code"], "forbidden");
    expect(
        &f.app,
        "DELETE",
        &format!("{JOBS}/clicks"),
        Some(&vera),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        f.driver.requests().is_empty(),
        "refused calls never reach the driver"
    );
    for uri in [
        JOBS.to_owned(),
        format!("{JOBS}/clicks"),
        format!("{JOBS}/clicks/progress"),
        format!("{JOBS}/clicks/preview"),
    ] {
        let reply = call(&f.app, "GET", &uri, Some(&vera), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
    }
    assert_eq!(f.driver.state().jobs.len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_job_reconciler_resubmits_lost_jobs_updates_changed_ones_and_removes_unknown_ones(
    pool: PgPool,
) {
    let f = Fixture::new(pool.clone()).await;
    let reconciler = JobReconciler::new(f.store.clone(), Duration::from_secs(1));
    let a = f.submit("a", Some("kafka")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A PUT that fails is not the submission's failure: the job is stored and Pending.
    f.driver.state().put_error = Some(Problem::internal("disk full"));
    let pending = f.submit("b", None).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    assert_eq!(pending.body["status"]["state"], "Pending");
    let b = pending.body["id"].as_str().unwrap().to_owned();
    f.driver.state().put_error = None;

    // The driver lost `a` (a new driver, a lost data dir) and runs a job nothing stores.
    let unknown = "6b1c3f0e-0000-4000-8000-000000000001";
    {
        let mut d = f.driver.state();
        d.jobs.remove(&a);
        d.jobs.insert(
            unknown.to_owned(),
            JobStatus {
                id: unknown.to_owned(),
                name: "stray".into(),
                sql: String::new(),
                state: QueryState::Running,
                error: None,
                batches_committed: 0,
                last_progress: None,
                submitted_at: String::new(),
                definition_digest: None,
            },
        );
    }
    f.driver.requests();
    let report = reconciler.pass().await.unwrap();
    assert_eq!(
        (
            report.drivers,
            report.submitted,
            report.removed,
            report.failed
        ),
        (1, 2, 1, 0),
        "{report:?}"
    );
    let mut sent = f.driver.requests();
    assert_eq!(sent.remove(0), seen("GET", "/v1/jobs", Value::Null));
    sent.sort_by(|x, y| x.uri.cmp(&y.uri));
    let mut expected = vec![
        seen(
            "PUT",
            &format!("/v1/jobs/{a}"),
            json!({"name": "a", "sql": SQL, "bootstrap_servers": BOOTSTRAP,
                "allowed_kafka": [BOOTSTRAP]}),
        ),
        seen(
            "PUT",
            &format!("/v1/jobs/{b}"),
            json!({"name": "b", "sql": SQL, "bootstrap_servers": null,
                "allowed_kafka": [BOOTSTRAP]}),
        ),
        seen("DELETE", &format!("/v1/jobs/{unknown}"), Value::Null),
    ];
    expected.sort_by(|x, y| x.uri.cmp(&y.uri));
    assert_eq!(sent, expected);

    // Converged: the next pass only lists.
    let report = reconciler.pass().await.unwrap();
    assert_eq!((report.submitted, report.removed), (0, 0), "{report:?}");
    assert_eq!(f.driver.requests(), [seen("GET", "/v1/jobs", Value::Null)]);
    let shown = f.call("GET", &format!("{JOBS}/b"), None).await;
    assert_eq!(shown.body["status"]["state"], "Running");

    // The driver holds another definition of `a` (its Kafka access changed since): it is put
    // again, as the control plane would send it now, and the driver updates it in place.
    f.driver.state().jobs.get_mut(&a).unwrap().definition_digest = Some("older".into());
    f.driver.requests();
    let report = reconciler.pass().await.unwrap();
    assert_eq!(
        (report.submitted, report.updated, report.removed),
        (0, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        f.driver.requests(),
        [
            seen("GET", "/v1/jobs", Value::Null),
            seen(
                "PUT",
                &format!("/v1/jobs/{a}"),
                json!({"name": "a", "sql": SQL, "bootstrap_servers": BOOTSTRAP,
                    "allowed_kafka": [BOOTSTRAP]}),
            ),
        ]
    );
    let report = reconciler.pass().await.unwrap();
    assert_eq!(report.updated, 0, "{report:?}");

    // A driver that is down is skipped, and its jobs show Unknown.
    f.set_job_api("spark", &dead_url().await).await;
    let report = reconciler.pass().await.unwrap();
    assert_eq!((report.drivers, report.unreachable), (1, 1), "{report:?}");
    let list = f.call("GET", JOBS, None).await;
    assert_eq!(list.body["items"][0]["status"]["state"], "Unknown");
    f.set_job_api("spark", f.driver.url()).await;

    // Deleting the Spark cluster deletes its jobs.
    let deleted = f
        .call("DELETE", "/v1/workspaces/ws/clusters/spark", None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    let ws = f.store.workspace_get("ws").await.unwrap().unwrap();
    let spark = f.store.cluster_get(ws.id, "spark").await.unwrap().unwrap();
    assert!(f.store.cluster_remove(spark.id).await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// A job naming a secured Kafka cluster is refused until the cluster has its jobs' Kafka user
/// (`hdi-jobs`, made by the reconciler), then reaches the driver with the librdkafka properties
/// that log in as that user; the API never shows them.
#[sqlx::test(migrations = "../migrations")]
async fn jobs_reach_a_secured_kafka_cluster_as_its_jobs_user(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let spec =
        json!({"kind": "kafka", "node_pools": [{"name": "pool", "role": "broker", "replicas": 1}]});
    let reply = f
        .call("PUT", "/v1/workspaces/ws/clusters/secure", Some(spec))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    f.set_status(
        "secure",
        ClusterStatusDoc {
            bootstrap_servers: Some("127.0.0.1:19400".to_owned()),
            ..ClusterStatusDoc::default()
        },
    )
    .await;
    let refused = f.submit("early", Some("secure")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["code"], "cluster_not_ready");

    // What the reconciler does once the brokers answer: secrets, then the jobs' user.
    let ws = f.store.workspace_get("ws").await.unwrap().unwrap();
    let secure = f.store.cluster_get(ws.id, "secure").await.unwrap().unwrap();
    let secrets = hdi_control_plane::model::KafkaClientSecrets {
        ca_cert: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
        ca_trust: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".into(),
        ca_key: hdi_stdx::secret::Secret::new("key"),
        admin_password: hdi_stdx::secret::Secret::new("admin-pw"),
    };
    f.store
        .kafka_secrets_make(secure.id, &secrets)
        .await
        .unwrap();
    let (password, ready) = f
        .store
        .kafka_jobs_login(secure.id, "jobs-pw")
        .await
        .unwrap();
    assert_eq!((password.expose(), ready), ("jobs-pw", false));
    let (again, _) = f.store.kafka_jobs_login(secure.id, "other").await.unwrap();
    assert_eq!(again.expose(), "jobs-pw", "the first password is kept");
    f.store.kafka_jobs_ready(secure.id).await.unwrap();

    let created = f.submit("late", Some("secure")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(
        !created.body.to_string().contains("jobs-pw"),
        "{}",
        created.body
    );
    let put = f
        .driver
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PUT")
        .unwrap();
    let access = &put.body["kafka_access"]["127.0.0.1:19400"];
    assert_eq!(access["security.protocol"], "SASL_SSL", "{}", put.body);
    assert_eq!(access["sasl.mechanisms"], "SCRAM-SHA-512");
    assert_eq!(access["sasl.username"], "hdi-jobs");
    assert_eq!(access["sasl.password"], "jobs-pw");
    assert_eq!(access["ssl.ca.pem"], secrets.ca_cert.as_str());
    // The PLAINTEXT cluster of the workspace needs nothing.
    assert!(
        put.body["kafka_access"].get(BOOTSTRAP).is_none(),
        "{}",
        put.body
    );
}
