//! Cluster REST conventions in-process against a real PostgreSQL database per test (no
//! reconciler runs, so operations stay Running): `202` + `Location`, `ETag`/`If-Match`, one
//! running operation per cluster (`409` naming it), identical PUTs, deletion protection,
//! validation naming the field, pagination.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step should fail the test loudly"
)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{ADMIN, Reply};

/// [`common::request`] as the platform admin, with `If-Match` when given.
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let authorization = format!("Bearer {ADMIN}");
    let mut headers = vec![("authorization", authorization.as_str())];
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    common::request(app, method, uri, &headers, body).await
}

fn kafka(replicas: u32) -> Value {
    json!({"kind": "kafka", "node_pools": [{"name": "brokers", "role": "broker", "replicas": replicas}]})
}

#[sqlx::test(migrations = "../migrations")]
async fn cluster_mutations_follow_the_rest_conventions(pool: PgPool) {
    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let ws = call(
        &app,
        "POST",
        "/v1/workspaces",
        None,
        Some(json!({"name": "ws"})),
    )
    .await;
    assert_eq!(ws.status, StatusCode::CREATED);
    let uri = "/v1/workspaces/ws/clusters/pay";

    let created = call(&app, "PUT", uri, None, Some(kafka(3))).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    let op = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/v1/operations/{op}").as_str())
    );
    assert_eq!(created.body["kind"], "create");
    let etag = created.etag.clone().unwrap();

    // The same spec again changes nothing and points at the same operation.
    let again = call(&app, "PUT", uri, None, Some(kafka(3))).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["id"], op.as_str());
    assert_eq!(again.etag.as_deref(), Some(etag.as_str()));

    // A change while the create runs: 409 naming the running operation.
    let busy = call(&app, "PUT", uri, None, Some(kafka(4))).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.body["code"], "operation_in_progress");
    assert!(
        busy.body["detail"].as_str().unwrap().contains(&op),
        "{}",
        busy.body
    );
    let patch = json!({"node_pools": [{"name": "brokers", "replicas": 4}]});
    let busy = call(&app, "PATCH", uri, None, Some(patch.clone())).await;
    assert_eq!(busy.body["code"], "operation_in_progress");

    // If-Match: a stale tag is 412 and changes nothing.
    let stale = call(
        &app,
        "PATCH",
        uri,
        Some("\"not-the-tag\""),
        Some(patch.clone()),
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.body
    );
    assert_eq!(stale.body["code"], "precondition_failed");
    let got = call(&app, "GET", uri, None, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(got.body["generation"], 1);
    assert_eq!(got.body["status"]["state"], "Creating");
    assert_eq!(got.body["status"]["last_operation"], op.as_str());

    // Validation names the field.
    let bad = call(&app, "PUT", "/v1/workspaces/ws/clusters/bad", None, Some(json!({"kind": "kafka", "node_pools": [{"name": "brokers", "role": "executor", "replicas": 3}]}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["field"], "node_pools[0].role");
    let bad = call(&app, "PUT", "/v1/workspaces/ws/clusters/bad", None, Some(json!({"kind": "spark", "node_pools": [{"name": "x", "role": "executor", "replicas": 1, "size": "huge"}]}))).await;
    assert_eq!(bad.body["field"], "node_pools[0].size");
    let bad = call(
        &app,
        "PUT",
        "/v1/workspaces/ws/clusters/Bad_Name",
        None,
        Some(kafka(3)),
    )
    .await;
    assert_eq!(bad.body["field"], "name");
    let bad = call(
        &app,
        "PUT",
        "/v1/workspaces/nope/clusters/x",
        None,
        Some(kafka(3)),
    )
    .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);

    // Deletion protection: set by PUT of a new cluster, DELETE refused; DELETE supersedes a
    // running operation otherwise, with the matching If-Match.
    let mut protected = kafka(1);
    protected["deletion_protection"] = json!(true);
    let p = call(
        &app,
        "PUT",
        "/v1/workspaces/ws/clusters/keep",
        None,
        Some(protected),
    )
    .await;
    assert_eq!(p.status, StatusCode::ACCEPTED);
    let refused = call(
        &app,
        "DELETE",
        "/v1/workspaces/ws/clusters/keep",
        None,
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["code"], "deletion_protected");
    let deleted = call(&app, "DELETE", uri, Some(&etag), None).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    assert_eq!(deleted.body["kind"], "delete");
    let first = call(&app, "GET", &format!("/v1/operations/{op}"), None, None).await;
    assert_eq!(first.body["state"], "Failed");
    assert_eq!(first.body["error"]["code"], "superseded");
    let got = call(&app, "GET", uri, None, None).await;
    assert_eq!(got.body["status"]["state"], "Deleting");

    // Pages.
    for i in 0..5 {
        let r = call(
            &app,
            "PUT",
            &format!("/v1/workspaces/ws/clusters/c{i}"),
            None,
            Some(kafka(3)),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let uri = match &token {
            Some(t) => format!("/v1/workspaces/ws/clusters?page_size=3&page_token={t}"),
            None => "/v1/workspaces/ws/clusters?page_size=3".to_owned(),
        };
        let page = call(&app, "GET", &uri, None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page.body["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4", "keep", "pay"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn authority_rotation_trusts_both_then_signs_with_the_new_then_drops_the_old(pool: PgPool) {
    use hdi_control_plane::model::KafkaClientSecrets;
    use hdi_control_plane::store::{IssuedCertificate, RotationStep, Store};
    use hdi_pki::{Authority, Purpose};
    use hdi_stdx::secret::Secret;

    let app = common::app(pool.clone(), Duration::from_secs(10)).await;
    let store = Store::from_pool(pool.clone());
    let ws = call(
        &app,
        "POST",
        "/v1/workspaces",
        None,
        Some(json!({"name": "ws"})),
    )
    .await;
    assert_eq!(ws.status, StatusCode::CREATED);
    let uri = "/v1/workspaces/ws/clusters/pay";
    let created = call(&app, "PUT", uri, None, Some(kafka(3))).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    let rotate = format!("{uri}/rotate-authorities");

    // No broker placed yet: no authority to rotate.
    let early = call(&app, "POST", &rotate, None, Some(json!({}))).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.body["code"], "cluster_not_ready");

    // What the first assignment of a broker makes: the two authorities.
    let id = call(&app, "GET", uri, None, None).await.body["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(hdi_control_plane::model::ClusterId::from_uuid)
        .unwrap();
    let quorum = Authority::generate_for(&id.to_string(), Purpose::Quorum).unwrap();
    store
        .quorum_ca(id, (quorum.cert_pem.clone(), quorum.key_pem.clone()))
        .await
        .unwrap();
    let kafka_ca = Authority::generate_for(&id.to_string(), Purpose::Kafka).unwrap();
    store
        .kafka_secrets_make(
            id,
            &KafkaClientSecrets {
                ca_cert: kafka_ca.cert_pem.clone(),
                ca_trust: kafka_ca.cert_pem.clone(),
                ca_key: Secret::new(kafka_ca.key_pem.clone()),
                admin_password: Secret::new("pw"),
            },
        )
        .await
        .unwrap();

    // One broker with both certificates, issued by the current authorities.
    let node = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO nodes (id, name, fault_domain, address, agent_version, cpu_millis,
                            memory_bytes, disk_bytes)
         VALUES ($1, 'n1', 0, '127.0.0.1', 'test', 1000, 1000, 1000)",
    )
    .bind(node)
    .execute(&pool)
    .await
    .unwrap();
    let broker = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO workloads (id, cluster_id, node_id, name, role, ordinal, spec, cpu_millis,
                                memory_bytes, tls_cert, tls_key, tls_renew_at, kafka_cert,
                                kafka_key, kafka_renew_at)
         VALUES ($1, $2, $3, 'pay-broker-0', 'broker', 0, $4, 1, 1, 'q1', 'k',
                 now() + interval '60 days',
                 'c1', 'k', now() + interval '60 days')",
    )
    .bind(broker)
    .bind(id.into_uuid())
    .bind(node)
    .bind(
        json!({"kind": "broker", "broker_id": 1, "kafka_port": 9092, "quorum_port": 9093,
                 "voters": [], "rack": "0"}),
    )
    .execute(&pool)
    .await
    .unwrap();
    let broker = hdi_control_plane::model::WorkloadId::from_uuid(broker);

    for (body, field) in [
        (json!({"trust_period_seconds": 0}), "trust_period_seconds"),
        (
            json!({"trust_period_seconds": 40_000_000}),
            "trust_period_seconds",
        ),
    ] {
        let refused = call(&app, "POST", &rotate, None, Some(body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert_eq!(refused.body["field"], field, "{}", refused.body);
    }
    let unknown = call(&app, "POST", &rotate, None, Some(json!({"trust": 1}))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);

    // Trusting: both Kafka CAs are what clients must trust, for the default week.
    let before = chrono::Utc::now();
    let started = call(&app, "POST", &rotate, None, Some(json!({}))).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert_eq!(started.body["phase"], "trusting");
    let at: chrono::DateTime<chrono::Utc> = started.body["at"].as_str().unwrap().parse().unwrap();
    let week = (at - before).num_seconds();
    assert!((604_790..=604_810).contains(&week), "{week}");
    let bundle = started.body["ca_certificate"].as_str().unwrap().to_owned();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(
        bundle.starts_with(&kafka_ca.cert_pem),
        "the current CA first"
    );
    let again = call(&app, "POST", &rotate, None, Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["code"], "rotation_in_progress");
    let shown = call(&app, "GET", uri, None, None).await.body;
    assert_eq!(shown["status"]["authority_rotation"]["phase"], "trusting");
    assert_eq!(
        shown["status"]["endpoints"]["ca_certificate"],
        bundle.as_str()
    );
    let ca_of = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, Option<String>, String)>(
                "SELECT kafka_ca_cert, kafka_ca_key, kafka_ca_previous_cert, quorum_ca_cert
                 FROM clusters WHERE id = $1",
            )
            .bind(id.into_uuid())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // The current authority still signs until the trust period has passed.
    assert_eq!(
        store
            .authority_rotation_advance(id, Duration::ZERO)
            .await
            .unwrap(),
        None
    );
    assert_eq!(ca_of(&pool).await.0, kafka_ca.cert_pem);

    // Issuing: once its time has come and the broker's node has applied the assignment that
    // carries the new trust (the start gave it a new generation), the new authorities sign and
    // the broker's certificates are due.
    sqlx::query("UPDATE clusters SET ca_rotation_at = now() - interval '1 second' WHERE id = $1")
        .bind(id.into_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let (generation, applied) = sqlx::query_as::<_, (i64, i64)>(
        "SELECT workload_generation, applied_generation FROM nodes WHERE id = $1",
    )
    .bind(node)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((generation, applied), (1, 0));
    assert_eq!(
        store
            .authority_rotation_advance(id, Duration::ZERO)
            .await
            .unwrap(),
        None,
        "the node has not applied the new trust yet"
    );
    sqlx::query("UPDATE nodes SET applied_generation = workload_generation WHERE id = $1")
        .bind(node)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store
            .authority_rotation_advance(id, Duration::ZERO)
            .await
            .unwrap(),
        Some(RotationStep::Promoted(1))
    );
    let (cert, key, previous, quorum_cert) = ca_of(&pool).await;
    assert_eq!(previous.as_deref(), Some(kafka_ca.cert_pem.as_str()));
    assert_eq!(
        format!("{}{cert}", kafka_ca.cert_pem),
        bundle,
        "the new CA is the announced one"
    );
    assert_ne!(quorum_cert, quorum.cert_pem);
    let signer = Authority::from_pem(&cert, &key, Purpose::Kafka).unwrap();
    assert!(
        signer.cluster.starts_with(&format!("{id} (")),
        "{}",
        signer.cluster
    );
    let shown = call(&app, "GET", uri, None, None).await.body;
    assert_eq!(shown["status"]["authority_rotation"]["phase"], "issuing");
    assert_eq!(
        shown["status"]["endpoints"]["ca_certificate"],
        format!("{cert}{}", kafka_ca.cert_pem),
        "both still trusted, the signing one first"
    );

    // Not settling while a broker certificate is the old authorities': not when one signed by
    // them is stored after the switch (it was read before), nor when an operator makes all
    // due meanwhile.
    let not_yet = || async {
        assert_eq!(
            store
                .authority_rotation_advance(id, Duration::ZERO)
                .await
                .unwrap(),
            None
        );
    };
    not_yet().await;
    let issue = |cert: &'static str, replacing: &'static str, signer: String, kafka: bool| {
        let store = store.clone();
        async move {
            let issued = IssuedCertificate {
                cert,
                key: "k",
                renew_at: chrono::Utc::now() + chrono::Duration::days(60),
                replacing: Some(replacing),
                signer: &signer,
            };
            if kafka {
                store
                    .workload_kafka_tls_issue(broker, &issued)
                    .await
                    .unwrap();
            } else {
                store.workload_tls_issue(broker, &issued).await.unwrap();
            }
        }
    };
    issue("q2", "q1", quorum.cert_pem.clone(), false).await;
    issue("c2", "c1", kafka_ca.cert_pem.clone(), true).await;
    not_yet().await;
    issue("q3", "q2", quorum_cert.clone(), false).await;
    assert_eq!(store.cluster_certificates_due(id).await.unwrap(), 1);
    not_yet().await;
    issue("q4", "q3", quorum_cert.clone(), false).await;
    not_yet().await;
    issue("c3", "c2", cert.clone(), true).await;

    // Settling (no broker certificate predates the new authorities), then over once settled.
    assert_eq!(
        store
            .authority_rotation_advance(id, Duration::ZERO)
            .await
            .unwrap(),
        Some(RotationStep::Settling)
    );
    let long = Duration::from_secs(3600);
    assert_eq!(
        store.authority_rotation_advance(id, long).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .authority_rotation_advance(id, Duration::ZERO)
            .await
            .unwrap(),
        Some(RotationStep::Finished)
    );
    let shown = call(&app, "GET", uri, None, None).await.body;
    assert!(
        shown["status"].get("authority_rotation").is_none(),
        "{shown}"
    );
    assert_eq!(
        shown["status"]["endpoints"]["ca_certificate"],
        cert.as_str()
    );
    assert_eq!(ca_of(&pool).await.2, None);

    // And it can rotate again.
    let next = call(
        &app,
        "POST",
        &rotate,
        None,
        Some(json!({"trust_period_seconds": 60})),
    )
    .await;
    assert_eq!(next.status, StatusCode::ACCEPTED, "{}", next.body);
}
