//! Replication links over REST, in process (no brokers run: the link reconciler's work is
//! end to end in `e2e/tests/replication_links.rs`): create, update, list, show and delete;
//! every refusal with its status and code; the operations' state machine (pause, resume,
//! promote, failover, reverse) with 202 and a visible operation; roles and audit events; the
//! link reconciler's step detail when the target cannot be reached.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{ADMIN, Reply, call, expect};
use hdi_control_plane::model::{
    ClusterState, ClusterStatusDoc, LinkState, OperationId, OperationState,
};
use hdi_control_plane::reconcile::LinkReconciler;
use hdi_control_plane::store::Store;
use serde_json::{Value, json};
use sqlx::PgPool;

const LINKS: &str = "/v1/workspaces/ws/replication-links";

struct Fixture {
    app: axum::Router,
    store: Store,
    pool: PgPool,
}

impl Fixture {
    /// Workspace `ws`; Kafka clusters `a` (brokers in fault domain 0), `b` (1), `c` (0),
    /// `secured` (SCRAM, 0) and `fresh` (not placed); a Spark cluster `spark`. (A source a link
    /// cannot log in to, `link_source_unsupported`, cannot be made: the API gives every SASL
    /// cluster a SCRAM mechanism.)
    async fn new(pool: PgPool) -> Fixture {
        let app = common::app(pool.clone(), Duration::from_secs(10)).await;
        let store = Store::from_pool(pool.clone());
        expect(
            &app,
            "POST",
            "/v1/workspaces",
            Some(ADMIN),
            Some(json!({"name": "ws"})),
            StatusCode::CREATED,
        )
        .await;
        let plaintext = json!({"tls": false, "authentication": [], "authorization": false});
        let clusters = [
            ("a", "kafka", plaintext.clone()),
            ("b", "kafka", plaintext.clone()),
            ("c", "kafka", plaintext.clone()),
            ("fresh", "kafka", plaintext.clone()),
            (
                "secured",
                "kafka",
                json!({"tls": true, "authentication": ["SCRAM-SHA-512"], "authorization": true}),
            ),
            ("spark", "spark", Value::Null),
        ];
        for (name, kind, security) in clusters {
            let role = if kind == "kafka" {
                "broker"
            } else {
                "executor"
            };
            let mut spec = json!({"kind": kind, "node_pools": [{"name": "pool", "role": role, "replicas": 1}]});
            if !security.is_null() {
                spec["security"] = security;
            }
            expect(
                &app,
                "PUT",
                &format!("/v1/workspaces/ws/clusters/{name}"),
                Some(ADMIN),
                Some(spec),
                StatusCode::ACCEPTED,
            )
            .await;
        }
        let fixture = Fixture { app, store, pool };
        let n0 = fixture.node("n0", 0).await;
        let n1 = fixture.node("n1", 1).await;
        for (cluster, node) in [("a", n0), ("b", n1), ("c", n0), ("secured", n0)] {
            fixture.place(cluster, node).await;
        }
        fixture
    }

    async fn node(&self, name: &str, fault_domain: i32) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO nodes (id, name, fault_domain, address, agent_version, cpu_millis,
                                memory_bytes, disk_bytes)
             VALUES ($1, $2, $3, '127.0.0.1', 'test', 1000, 1000, 1000)",
        )
        .bind(id)
        .bind(name)
        .bind(fault_domain)
        .execute(&self.pool)
        .await
        .unwrap();
        id
    }

    /// One broker of `cluster` on `node`.
    async fn place(&self, cluster: &str, node: uuid::Uuid) {
        self.place_ordinal(cluster, node, 0).await;
    }

    /// Broker `ordinal` of `cluster` on `node`.
    async fn place_ordinal(&self, cluster: &str, node: uuid::Uuid, ordinal: i32) {
        let ws = self.store.workspace_get("ws").await.unwrap().unwrap();
        let record = self
            .store
            .cluster_get(ws.id, cluster)
            .await
            .unwrap()
            .unwrap();
        sqlx::query(
            "INSERT INTO workloads (id, cluster_id, node_id, name, role, ordinal, spec, cpu_millis,
                                    memory_bytes)
             VALUES ($1, $2, $3, $4, 'broker', $6, $5, 1, 1)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(record.id.into_uuid())
        .bind(node)
        .bind(format!("{cluster}-broker-{ordinal}"))
        .bind(json!({"kind": "broker", "broker_id": 1, "kafka_port": 9092, "quorum_port": 9093, "voters": [], "rack": "0"}))
        .bind(ordinal)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        call(&self.app, method, uri, Some(ADMIN), body).await
    }

    async fn put(&self, name: &str, body: Value) -> Reply {
        self.call("PUT", &format!("{LINKS}/{name}"), Some(body))
            .await
    }

    async fn post(&self, name: &str, action: &str) -> Reply {
        self.call("POST", &format!("{LINKS}/{name}/{action}"), None)
            .await
    }

    /// Ends operation `op` (the body of a 202) as the link reconciler would.
    async fn finish(&self, op: &Reply, then: Option<LinkState>, name: &str) {
        let id: OperationId = op.body["id"].as_str().unwrap().parse().unwrap();
        self.store
            .operation_finish(id, OperationState::Succeeded, &[], None)
            .await
            .unwrap();
        if let Some(state) = then {
            let ws = self.store.workspace_get("ws").await.unwrap().unwrap();
            let link = self.store.link_get(ws.id, name).await.unwrap().unwrap();
            self.store.link_set_state(link.id, state).await.unwrap();
        }
    }
}

fn link(source: &str, target: &str) -> Value {
    json!({"source_cluster": source, "target_cluster": target, "topics": ["orders", "pay*"], "groups": ["app*"]})
}

fn refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
}

#[sqlx::test(migrations = "../migrations")]
async fn links_are_created_listed_shown_updated_and_deleted(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let created = f.put("dr", link("a", "b")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["state"], "mirroring");
    assert_eq!(created.body["source_cluster"], "a");
    assert_eq!(created.body["target_cluster"], "b");
    assert_eq!(created.body["sync_configs"], true);
    assert_eq!(created.body["applied"], false, "nothing applied it yet");
    assert!(
        created.body.get("source_user").is_none(),
        "a PLAINTEXT source needs no user"
    );

    // The same spec again changes nothing; other filters replace the old ones.
    let same = f.put("dr", link("a", "b")).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    let mut wider = link("a", "b");
    wider["topics_exclude"] = json!(["pay-internal*"]);
    let updated = f.put("dr", wider).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["topics_exclude"], json!(["pay-internal*"]));

    // A secured source: the link reads it as its own Kafka user.
    let secured = f.put("vault", link("secured", "b")).await;
    assert_eq!(secured.status, StatusCode::CREATED, "{}", secured.body);
    assert_eq!(secured.body["source_user"], "hdi-link-vault");

    let list = f.call("GET", LINKS, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dr", "vault"]);
    let page = f.call("GET", &format!("{LINKS}?page_size=1"), None).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["next_page_token"], "dr");
    let rest = f
        .call("GET", &format!("{LINKS}?page_size=1&page_token=dr"), None)
        .await;
    assert_eq!(rest.body["items"][0]["name"], "vault");
    assert!(rest.body.get("next_page_token").is_none());

    // Status is read from the target: b serves nothing here, which the status says.
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["status"]["observed"], false, "{}", shown.body);
    assert!(shown.body["status"]["error"].as_str().is_some());
    let lag = f.call("GET", &format!("{LINKS}/dr/lag"), None).await;
    assert_eq!(lag.status, StatusCode::OK, "{}", lag.body);
    assert_eq!(lag.body["partitions_reported"], false);
    assert!(lag.body.get("warnings").is_none(), "{}", lag.body);
    // A resize that puts the target in the source's fault domain is reported.
    let n0: uuid::Uuid = sqlx::query_scalar("SELECT id FROM nodes WHERE name = 'n0'")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    f.place_ordinal("b", n0, 1).await;
    let lag = f.call("GET", &format!("{LINKS}/dr/lag"), None).await;
    let warning = lag.body["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("fault domain(s) 0"), "{}", lag.body);

    // The source of a link cannot be deleted; a target can, and takes its links with it.
    let delete_cluster = f.call("DELETE", "/v1/workspaces/ws/clusters/a", None).await;
    refused(&delete_cluster, StatusCode::CONFLICT, "cluster_has_links");
    let delete_target = f.call("DELETE", "/v1/workspaces/ws/clusters/b", None).await;
    assert_eq!(
        delete_target.status,
        StatusCode::ACCEPTED,
        "{}",
        delete_target.body
    );

    // Deleted (the target never served, so nothing is asked of it); gone afterwards.
    let deleted = f.call("DELETE", &format!("{LINKS}/dr"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = f.call("GET", &format!("{LINKS}/dr"), None).await;
    refused(&gone, StatusCode::NOT_FOUND, "not_found");
    let again = f.call("DELETE", &format!("{LINKS}/dr"), None).await;
    refused(&again, StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = "../migrations")]
async fn link_definitions_are_validated(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let field = |reply: &Reply, name: &str| {
        refused(reply, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(reply.body["field"], name, "{}", reply.body);
    };
    field(&f.put("bad.name", link("a", "b")).await, "name");
    let mut body = link("a", "b");
    body["topics"] = json!([]);
    field(&f.put("dr", body).await, "topics");
    let mut body = link("a", "b");
    body["topics"] = json!(["orders", "a,b"]);
    field(&f.put("dr", body).await, "topics[1]");
    let mut body = link("a", "b");
    body["topics_exclude"] = json!(["x*y"]);
    field(&f.put("dr", body).await, "topics_exclude[0]");
    let mut body = link("a", "b");
    body["groups"] = json!(["with space"]);
    field(&f.put("dr", body).await, "groups[0]");
    let mut body = link("a", "b");
    body["sync_configs"] = json!(false);
    field(&f.put("dr", body).await, "sync_configs");
    field(&f.put("dr", link("a", "a")).await, "target_cluster");
    let mut body = link("a", "b");
    body["surprise"] = json!(1);
    refused(
        &f.put("dr", body).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );

    refused(
        &f.put("dr", link("nowhere", "b")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    refused(
        &f.put("dr", link("a", "spark")).await,
        StatusCode::BAD_REQUEST,
        "not_a_kafka_cluster",
    );
    // Placement: a pair shares no fault domain, and both must be placed to know.
    refused(
        &f.put("dr", link("a", "c")).await,
        StatusCode::CONFLICT,
        "link_fault_domains_overlap",
    );
    refused(
        &f.put("dr", link("a", "fresh")).await,
        StatusCode::CONFLICT,
        "cluster_not_ready",
    );
    // A link's clusters never change.
    assert_eq!(
        f.put("dr", link("a", "b")).await.status,
        StatusCode::CREATED
    );
    field(&f.put("dr", link("b", "a")).await, "source_cluster");
    let list = f.call("GET", LINKS, None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "refusals store nothing"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn link_operations_follow_the_state_machine(pool: PgPool) {
    let f = Fixture::new(pool).await;
    assert_eq!(
        f.put("dr", link("a", "b")).await.status,
        StatusCode::CREATED
    );
    refused(
        &f.post("dr", "resume").await,
        StatusCode::CONFLICT,
        "link_not_paused",
    );
    refused(
        &f.post("dr", "reverse").await,
        StatusCode::CONFLICT,
        "link_not_stopped",
    );
    refused(
        &f.post("nope", "pause").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Pause: 202, an operation on the target cluster naming the link.
    let pause = f.post("dr", "pause").await;
    assert_eq!(pause.status, StatusCode::ACCEPTED, "{}", pause.body);
    assert_eq!(pause.body["kind"], "link_pause");
    assert_eq!(pause.body["link"], "dr");
    assert_eq!(pause.body["cluster"], "b");
    assert_eq!(pause.body["state"], "Running");
    let id = pause.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pause.location.as_deref(),
        Some(format!("/v1/operations/{id}").as_str())
    );
    let op = f.call("GET", &format!("/v1/operations/{id}"), None).await;
    assert_eq!(op.status, StatusCode::OK);
    assert_eq!(op.body["link"], "dr");
    // One operation per link at a time; none of this blocks the cluster's own operations.
    refused(
        &f.post("dr", "pause").await,
        StatusCode::CONFLICT,
        "operation_in_progress",
    );
    refused(
        &f.post("dr", "promote").await,
        StatusCode::CONFLICT,
        "operation_in_progress",
    );
    refused(
        &f.call("DELETE", &format!("{LINKS}/dr"), None).await,
        StatusCode::CONFLICT,
        "operation_in_progress",
    );
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.body["state"], "paused");
    assert_eq!(shown.body["operation"], id.as_str());
    let cluster = f.call("GET", "/v1/workspaces/ws/clusters/b", None).await;
    assert_ne!(cluster.body["status"]["last_operation"], id.as_str());
    f.finish(&pause, None, "dr").await;

    // Paused: no promote, no failover (resume first), no second pause.
    refused(
        &f.post("dr", "promote").await,
        StatusCode::CONFLICT,
        "link_paused",
    );
    refused(
        &f.post("dr", "failover").await,
        StatusCode::CONFLICT,
        "link_paused",
    );
    refused(
        &f.post("dr", "pause").await,
        StatusCode::CONFLICT,
        "link_paused",
    );
    let resume = f.post("dr", "resume").await;
    assert_eq!(resume.status, StatusCode::ACCEPTED, "{}", resume.body);
    assert_eq!(resume.body["kind"], "link_resume");
    f.finish(&resume, None, "dr").await;

    // Promote once; twice is refused while it runs and after it ended.
    let promote = f.post("dr", "promote").await;
    assert_eq!(promote.status, StatusCode::ACCEPTED, "{}", promote.body);
    assert_eq!(promote.body["kind"], "link_promote");
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.body["state"], "promoting");
    refused(
        &f.post("dr", "promote").await,
        StatusCode::CONFLICT,
        "operation_in_progress",
    );
    // A promote whose operation failed (timed out) leaves the link promoting: it may be asked
    // again.
    f.finish(&promote, None, "dr").await;
    let promote = f.post("dr", "promote").await;
    assert_eq!(promote.status, StatusCode::ACCEPTED, "{}", promote.body);
    f.finish(&promote, Some(LinkState::Promoted), "dr").await;
    refused(
        &f.post("dr", "promote").await,
        StatusCode::CONFLICT,
        "link_stopped",
    );
    refused(
        &f.post("dr", "pause").await,
        StatusCode::CONFLICT,
        "link_stopped",
    );
    refused(
        &f.post("dr", "resume").await,
        StatusCode::CONFLICT,
        "link_stopped",
    );
    let mut other = link("a", "b");
    other["topics"] = json!(["else"]);
    refused(
        &f.put("dr", other).await,
        StatusCode::CONFLICT,
        "link_stopped",
    );

    // A promoted link may still fail over, then be reversed.
    let failover = f.post("dr", "failover").await;
    assert_eq!(failover.status, StatusCode::ACCEPTED, "{}", failover.body);
    f.finish(&failover, Some(LinkState::FailedOver), "dr").await;
    refused(
        &f.post("dr", "failover").await,
        StatusCode::CONFLICT,
        "link_stopped",
    );
    let reverse = f.post("dr", "reverse").await;
    assert_eq!(reverse.status, StatusCode::ACCEPTED, "{}", reverse.body);
    assert_eq!(reverse.body["kind"], "link_reverse");
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.body["state"], "reversing");
    refused(
        &f.post("dr", "reverse").await,
        StatusCode::CONFLICT,
        "operation_in_progress",
    );

    // The operations stay listed with the workspace's.
    let ops = f
        .call("GET", "/v1/workspaces/ws/operations?page_size=500", None)
        .await;
    let kinds: Vec<&str> = ops.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["link"] == "dr")
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "link_reverse",
            "link_failover",
            "link_promote",
            "link_promote",
            "link_resume",
            "link_pause"
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn viewers_read_links_operators_change_them_and_all_is_audited(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let mut tokens = Vec::new();
    for (user, role) in [
        ("vera", Some("viewer")),
        ("otto", Some("operator")),
        ("sam", None),
    ] {
        let made = f
            .call(
                "POST",
                "/v1/users",
                Some(json!({"username": user, "password": "correct horse battery staple"})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        if let Some(role) = role {
            let bound = f
                .call(
                    "PUT",
                    &format!("/v1/workspaces/ws/role-bindings/{user}"),
                    Some(json!({"role": role})),
                )
                .await;
            assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
        }
        let token = call(
            &f.app,
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"grant_type": "password", "username": user, "password": "correct horse battery staple"})),
        )
        .await;
        tokens.push(token.body["access_token"].as_str().unwrap().to_owned());
    }
    let (vera, otto, sam) = (&tokens[0], &tokens[1], &tokens[2]);

    let created = call(
        &f.app,
        "PUT",
        &format!("{LINKS}/dr"),
        Some(otto),
        Some(link("a", "b")),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for uri in [
        LINKS.to_owned(),
        format!("{LINKS}/dr"),
        format!("{LINKS}/dr/lag"),
    ] {
        let read = call(&f.app, "GET", &uri, Some(vera), None).await;
        assert_eq!(read.status, StatusCode::OK, "{uri}: {}", read.body);
        let hidden = call(&f.app, "GET", &uri, Some(sam), None).await;
        refused(&hidden, StatusCode::NOT_FOUND, "not_found");
    }
    refused(
        &call(
            &f.app,
            "PUT",
            &format!("{LINKS}/dr"),
            Some(vera),
            Some(link("a", "b")),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for action in ["pause", "resume", "promote", "failover", "reverse"] {
        let reply = call(
            &f.app,
            "POST",
            &format!("{LINKS}/dr/{action}"),
            Some(vera),
            None,
        )
        .await;
        refused(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    refused(
        &call(&f.app, "DELETE", &format!("{LINKS}/dr"), Some(vera), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let paused = call(
        &f.app,
        "POST",
        &format!("{LINKS}/dr/pause"),
        Some(otto),
        None,
    )
    .await;
    assert_eq!(paused.status, StatusCode::ACCEPTED, "{}", paused.body);
    assert_eq!(paused.body["created_by"], "otto");
    refused(
        &f.put("dr2", link("a", "c")).await,
        StatusCode::CONFLICT,
        "link_fault_domains_overlap",
    );

    let audit = expect(
        &f.app,
        "GET",
        "/v1/audit-events?page_size=500",
        Some(ADMIN),
        None,
        StatusCode::OK,
    )
    .await;
    let events: Vec<(String, String, String, String)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["resource"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (actor, action, resource, outcome) in [
        (
            "otto",
            "replication_link.put",
            "workspaces/ws/replication-links/dr",
            "accepted",
        ),
        (
            "vera",
            "replication_link.put",
            "workspaces/ws/replication-links/dr",
            "forbidden",
        ),
        (
            "vera",
            "replication_link.promote",
            "workspaces/ws/replication-links/dr",
            "forbidden",
        ),
        (
            "vera",
            "replication_link.delete",
            "workspaces/ws/replication-links/dr",
            "forbidden",
        ),
        (
            "otto",
            "replication_link.pause",
            "workspaces/ws/replication-links/dr",
            "accepted",
        ),
        (
            "admin",
            "replication_link.put",
            "workspaces/ws/replication-links/dr2",
            "link_fault_domains_overlap",
        ),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.0 == actor && e.1 == action && e.2 == resource && e.3 == outcome),
            "missing audit event {actor} {action} {resource} {outcome}: {events:#?}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_link_reconciler_shows_why_an_operation_waits(pool: PgPool) {
    let f = Fixture::new(pool).await;
    // Both clusters "Running" at an address where nothing listens.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let ws = f.store.workspace_get("ws").await.unwrap().unwrap();
    for name in ["a", "b"] {
        let cluster = f.store.cluster_get(ws.id, name).await.unwrap().unwrap();
        let status = ClusterStatusDoc {
            bootstrap_servers: Some(dead.clone()),
            ..ClusterStatusDoc::default()
        };
        let written = f
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
    assert_eq!(
        f.put("dr", link("a", "b")).await.status,
        StatusCode::CREATED
    );
    let pause = f.post("dr", "pause").await;
    assert_eq!(pause.status, StatusCode::ACCEPTED, "{}", pause.body);
    let reconciler = LinkReconciler::new(
        f.store.clone(),
        Duration::from_millis(300),
        Duration::from_secs(1),
        Duration::from_secs(600),
    );
    reconciler.pass().await.unwrap();
    let id = pause.body["id"].as_str().unwrap();
    let op = f.call("GET", &format!("/v1/operations/{id}"), None).await;
    assert_eq!(op.body["state"], "Running", "{}", op.body);
    let step = &op.body["steps"][0];
    assert_eq!(step["name"], "pause mirroring on b", "{}", op.body);
    assert!(
        step["detail"].as_str().unwrap_or_default().contains(&dead),
        "the step says what cannot be reached: {}",
        op.body
    );
    // The status says the same, and the link is not applied.
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.body["status"]["observed"], false, "{}", shown.body);
    assert_eq!(shown.body["applied"], false);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_promote_that_times_out_before_its_target_was_told_mirrors_again(pool: PgPool) {
    let f = Fixture::new(pool).await;
    // Both clusters "Running" at an address where nothing listens: the source is never fenced.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let ws = f.store.workspace_get("ws").await.unwrap().unwrap();
    for name in ["a", "b"] {
        let cluster = f.store.cluster_get(ws.id, name).await.unwrap().unwrap();
        let status = ClusterStatusDoc {
            bootstrap_servers: Some(dead.clone()),
            ..ClusterStatusDoc::default()
        };
        assert!(
            f.store
                .cluster_set_observed(
                    cluster.id,
                    cluster.generation,
                    ClusterState::Running,
                    cluster.generation,
                    &status,
                )
                .await
                .unwrap()
        );
    }
    assert_eq!(
        f.put("dr", link("a", "b")).await.status,
        StatusCode::CREATED
    );
    let promote = f.post("dr", "promote").await;
    assert_eq!(promote.status, StatusCode::ACCEPTED, "{}", promote.body);
    // An operation timeout of zero: the first pass finds it overdue.
    let reconciler = LinkReconciler::new(
        f.store.clone(),
        Duration::from_millis(300),
        Duration::from_millis(300),
        Duration::ZERO,
    );
    reconciler.pass().await.unwrap();
    let id = promote.body["id"].as_str().unwrap();
    let op = f.call("GET", &format!("/v1/operations/{id}"), None).await;
    assert_eq!(op.body["state"], "Failed", "{}", op.body);
    assert_eq!(op.body["error"]["code"], "timed_out", "{}", op.body);
    // Left promoting, the next pass would tell the target to promote an unfenced pair.
    let shown = f.call("GET", &format!("{LINKS}/dr"), None).await;
    assert_eq!(shown.body["state"], "mirroring", "{}", shown.body);
}
