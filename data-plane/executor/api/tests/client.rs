//! The client against the fake driver: each call's request and what it makes of the answer
//! (statuses, problems with line and column, 404s, a driver that is down).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_executor_api::fake::{FakeDriver, Seen};
use hdi_executor_api::{
    DriverClient, DriverError, JobDefinition, Preview, Problem, Progress, QueryState, StatusCode,
    Submitted, ValidateRequest, WorkerView,
};
use hdi_stdx::secret::Secret;
use serde_json::{Value, json};
use uuid::Uuid;

const CREDENTIAL: &str = "0123456789abcdef0123456789abcdef";

fn client(driver: &FakeDriver) -> DriverClient {
    DriverClient::new(DriverClient::pool(), driver.url(), Secret::new(CREDENTIAL))
}

fn validate(sql: &str, bootstrap: Option<&str>) -> ValidateRequest {
    ValidateRequest {
        sql: sql.into(),
        bootstrap_servers: bootstrap.map(str::to_owned),
        allowed_kafka: Some(vec!["k:9092".into()]),
        kafka_access: Default::default(),
    }
}

fn progress(batch: u64) -> Progress {
    Progress {
        batch_id: batch,
        num_input_rows: 10 * batch,
        ..Progress::default()
    }
}

#[tokio::test]
async fn every_call_sends_its_request_and_reads_its_answer() {
    let driver = FakeDriver::start().await.unwrap();
    driver.state().credential = Some(CREDENTIAL.into());
    driver.state().progress = (1..=3).map(progress).collect();
    driver.state().preview = Preview::of(vec![json!({"k": "a", "n": 1}), json!({"k": "b"})]);
    let client = client(&driver);
    let id = Uuid::from_u128(7);
    let definition = JobDefinition {
        name: "clicks".into(),
        sql: "SELECT 1".into(),
        bootstrap_servers: None,
        allowed_kafka: None,
        kafka_access: Default::default(),
    };

    client
        .validate(&validate("SELECT 1", Some("k:9092")))
        .await
        .unwrap();
    assert_eq!(
        client.job_put(id, &definition).await.unwrap(),
        Submitted::Created
    );
    assert_eq!(
        client.job_put(id, &definition).await.unwrap(),
        Submitted::Unchanged
    );
    let jobs = client.jobs_list().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].id, jobs[0].state), (id, QueryState::Running));
    let job = client.job_get(id).await.unwrap().unwrap();
    assert_eq!(job.batches_committed, 3);
    assert_eq!(job.last_progress, Some(progress(3)));
    assert_eq!(client.job_get(Uuid::nil()).await.unwrap(), None);
    let batches: Vec<u64> = client
        .job_progress(id, 2)
        .await
        .unwrap()
        .iter()
        .map(|p| p.batch_id)
        .collect();
    assert_eq!(batches, [2, 3]);
    let preview = client.job_preview(id, 1).await.unwrap();
    assert_eq!(preview.columns, ["k", "n"]);
    assert_eq!(preview.rows, [json!({"k": "a", "n": 1})]);
    assert!(client.job_delete(id).await.unwrap());
    assert!(!client.job_delete(id).await.unwrap());
    assert!(client.job_progress(id, 2).await.unwrap_err().is_not_found());
    let worker = WorkerView {
        id: 1,
        address: "127.0.0.1:7078".into(),
        last_seen_ms: 5,
        incarnation: Uuid::from_u128(9),
    };
    driver.state().workers = vec![worker.clone()];
    assert_eq!(client.cluster().await.unwrap().workers, [worker]);

    let body = json!({"name": "clicks", "sql": "SELECT 1", "bootstrap_servers": null});
    assert_eq!(
        driver.requests(),
        [
            Seen::new(
                "POST",
                "/v1/jobs/validate",
                json!({"sql": "SELECT 1", "bootstrap_servers": "k:9092", "allowed_kafka": ["k:9092"]})
            ),
            Seen::new("PUT", &format!("/v1/jobs/{id}"), body.clone()),
            Seen::new("PUT", &format!("/v1/jobs/{id}"), body),
            Seen::new("GET", "/v1/jobs", Value::Null),
            Seen::new("GET", &format!("/v1/jobs/{id}"), Value::Null),
            Seen::new("GET", &format!("/v1/jobs/{}", Uuid::nil()), Value::Null),
            Seen::new(
                "GET",
                &format!("/v1/jobs/{id}/progress?limit=2"),
                Value::Null
            ),
            Seen::new(
                "GET",
                &format!("/v1/jobs/{id}/preview?limit=1"),
                Value::Null
            ),
            Seen::new("DELETE", &format!("/v1/jobs/{id}"), Value::Null),
            Seen::new("DELETE", &format!("/v1/jobs/{id}"), Value::Null),
            Seen::new(
                "GET",
                &format!("/v1/jobs/{id}/progress?limit=2"),
                Value::Null
            ),
            Seen::new("GET", "/v1/cluster", Value::Null),
        ]
    );
}

#[tokio::test]
async fn refusals_carry_the_problem_and_transport_failures_are_unreachable() {
    let driver = FakeDriver::start().await.unwrap();
    driver.state().validate_error = Some(
        Problem::new(StatusCode::BAD_REQUEST, "unknown_column", "no column x").at(Some(2), Some(8)),
    );
    match client(&driver).validate(&validate("SELECT x", None)).await {
        Err(DriverError::Refused {
            status,
            code,
            detail,
            line,
            column,
        }) => assert_eq!(
            (status, code.as_str(), detail.as_str(), line, column),
            (400, "unknown_column", "no column x", Some(2), Some(8))
        ),
        other => panic!("{other:?}"),
    }

    let url = driver.url().to_owned();
    drop(driver);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let down = DriverClient::new(DriverClient::pool(), &url, Secret::new(CREDENTIAL));
    assert!(
        matches!(down.jobs_list().await, Err(DriverError::Unreachable { .. })),
        "a stopped driver is unreachable"
    );
}

#[tokio::test]
async fn the_client_presents_its_credential_and_a_wrong_one_is_refused() {
    let driver = FakeDriver::start().await.unwrap();
    driver.state().credential = Some(CREDENTIAL.into());
    client(&driver).jobs_list().await.unwrap();
    let wrong = DriverClient::new(
        DriverClient::pool(),
        driver.url(),
        Secret::new("another-credential-of-32-characters"),
    );
    assert!(matches!(
        wrong.jobs_list().await,
        Err(DriverError::Refused { status: 401, .. })
    ));
    assert_eq!(
        driver.state().bearers,
        [
            Some(CREDENTIAL.to_owned()),
            Some("another-credential-of-32-characters".to_owned())
        ]
    );
}
