//! Topics end to end: a control plane, three node agents and a 3-broker Kafka cluster; topics
//! created, described, grown and deleted through `hdictl` and REST (the Kafka admin protocol
//! behind them), records written with `hdictl topic produce` and read back with kcat and
//! `hdictl topic consume` in a consumer group.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use hdi_api::TopicPatch;
use hdi_e2e::{Fleet, PLAINTEXT_KAFKA_3, bootstrap_servers, kcat_consume_all};
use serde_json::Value;

/// `hdictl topic create pay NAME --partitions PARTITIONS --replication-factor RF`.
fn topic_create<'a>(name: &'a str, partitions: &'a str, rf: &'a str) -> [&'a str; 8] {
    [
        "topic",
        "create",
        "pay",
        name,
        "--partitions",
        partitions,
        "--replication-factor",
        rf,
    ]
}

/// JSON lines of `hdictl topic consume -o json`: `{partition: [(offset, value)]}`.
fn by_partition(out: &str) -> BTreeMap<i64, Vec<(i64, String)>> {
    let mut partitions: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for line in out.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        partitions
            .entry(record["partition"].as_i64().unwrap())
            .or_default()
            .push((
                record["offset"].as_i64().unwrap(),
                record["value"].as_str().unwrap().to_owned(),
            ));
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_through_hdictl_and_rest() {
    let fleet = Fleet::start_with_workspace("topics", 3).await;
    let api = fleet.api();
    let (cluster, _) = fleet.create_cluster("pay", PLAINTEXT_KAFKA_3);
    let bootstrap = bootstrap_servers(&cluster);

    // Create with RF=3 and a config; describe shows three replicas per partition and the config.
    let out = fleet.hdictl_ok(
        &[
            topic_create("payments", "6", "3").as_slice(),
            &["--topic-config", "retention.ms=3600000"],
        ]
        .concat(),
    );
    assert!(out.contains("retention.ms=3600000"), "{out}");
    let topic: Value = fleet.hdictl_json(&["topic", "describe", "pay", "payments", "-o", "json"]);
    let partitions = topic["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 6, "{topic:#}");
    for p in partitions {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 3, "{topic:#}");
        assert!(
            p["leader"].is_u64(),
            "every partition has a leader: {topic:#}"
        );
    }
    assert_eq!(topic["replication_factor"], 3);
    assert_eq!(topic["configs"]["retention.ms"], "3600000", "{topic:#}");
    assert_eq!(topic["default_configs"]["cleanup.policy"], "delete");
    let table = fleet.hdictl_ok(&["topic", "describe", "pay", "payments"]);
    assert!(
        table.contains("config:       retention.ms=3600000"),
        "{table}"
    );
    assert!(table.contains("PARTITION"), "{table}");

    // Produce 1,000 lines from a file with hdictl.
    let records: Vec<String> = (0..1000).map(|i| format!("payment-{i:04}")).collect();
    let input = fleet.dir.path().join("payments.txt");
    std::fs::write(&input, records.join("\n") + "\n").unwrap();
    let out = fleet.hdictl_ok(&[
        "topic",
        "produce",
        "pay",
        "payments",
        "--file",
        input.to_str().unwrap(),
    ]);
    assert!(out.contains("wrote 1000 of 1000 records"), "{out}");

    // kcat at the bootstrap address reads them all.
    assert_eq!(
        kcat_consume_all(&bootstrap, "payments"),
        records,
        "kcat reads exactly what was written"
    );

    // hdictl in group g1 reads them all, in order within each partition, and commits.
    let out = fleet.hdictl_ok(&[
        "topic",
        "consume",
        "pay",
        "payments",
        "--from-beginning",
        "--max",
        "1000",
        "--group",
        "g1",
        "--timeout",
        "30s",
        "-o",
        "json",
    ]);
    let partitions = by_partition(&out);
    let mut all: Vec<String> = Vec::new();
    for (partition, records) in &partitions {
        let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
        let values: Vec<&String> = records.iter().map(|r| &r.1).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets of partition {partition} in order: {offsets:?}"
        );
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "values of partition {partition} in production order"
        );
        all.extend(records.iter().map(|r| r.1.clone()));
    }
    all.sort();
    assert_eq!(all, records, "hdictl consume reads all 1000 once");

    // The group's committed offsets: nothing new now; later records, exactly those.
    // `hdictl topic consume pay payments --group g1 MORE`.
    let consume_g1 = |more: &[&str]| {
        fleet.hdictl_ok(
            &[
                &["topic", "consume", "pay", "payments", "--group", "g1"],
                more,
            ]
            .concat(),
        )
    };
    let out = consume_g1(&["--timeout", "5s"]);
    assert_eq!(out, "", "a second consume in g1 gets nothing new");
    let more = fleet.dir.path().join("more.txt");
    std::fs::write(&more, "late-1\nlate-2\nlate-3\n").unwrap();
    fleet.hdictl_ok(&[
        "topic",
        "produce",
        "pay",
        "payments",
        "--file",
        more.to_str().unwrap(),
    ]);
    let out = consume_g1(&["--max", "3", "--timeout", "30s"]);
    let mut late: Vec<&str> = out.lines().collect();
    late.sort_unstable();
    assert_eq!(
        late,
        ["late-1", "late-2", "late-3"],
        "g1 resumes where it left"
    );

    // Errors name the problem and exit non-zero.
    let err = fleet.hdictl_fails(&topic_create("payments", "6", "3"));
    assert!(err.contains("topic_exists"), "{err}");
    let err = fleet.hdictl_fails(&topic_create("wide", "1", "5"));
    assert!(err.contains("replication_factor"), "{err}");
    let err = fleet.hdictl_fails(&["topic", "create", "pay", "bad/name"]);
    assert!(
        err.contains("invalid_field") && err.contains("name"),
        "{err}"
    );
    let err = fleet.hdictl_fails(&["topic", "create", "pay", "t2", "-c", "retention=1"]);
    assert!(err.contains("configs.retention"), "{err}");
    let err = fleet.hdictl_fails(&["topic", "describe", "nope", "payments"]);
    assert!(err.contains("not_found"), "{err}");

    // REST: grow 6 -> 8 partitions; a shrink is refused naming the field.
    let grown = api
        .topic_patch(
            "test",
            "pay",
            "payments",
            &TopicPatch {
                partitions: Some(8),
                configs: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(grown.partitions.len(), 8, "{grown:?}");
    assert!(grown.partitions.iter().all(|p| p.replicas.len() == 3));
    let error = api
        .topic_patch(
            "test",
            "pay",
            "payments",
            &TopicPatch {
                partitions: Some(4),
                configs: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    match &error {
        hdi_api::ClientError::Api { problem } => {
            assert_eq!(problem.field.as_deref(), Some("partitions"), "{problem:?}");
        }
        other => panic!("{other:?}"),
    }
    // Configs: reset retention.ms to its default.
    let reset = api
        .topic_patch(
            "test",
            "pay",
            "payments",
            &TopicPatch {
                partitions: None,
                configs: Some(BTreeMap::from([("retention.ms".to_owned(), None)])),
            },
        )
        .await
        .unwrap();
    assert_eq!(reset.configs, Some(BTreeMap::new()), "{reset:?}");

    // -o yaml, and the list.
    let yaml = fleet.hdictl_ok(&["topic", "list", "pay", "-o", "yaml"]);
    assert!(yaml.contains("name: payments"), "{yaml}");
    assert!(yaml.contains("replication_factor: 3"), "{yaml}");
    let table = fleet.hdictl_ok(&["topic", "list", "pay"]);
    assert!(table.contains("payments"), "{table}");

    // Delete, then it is gone: 404 over REST, not_found through hdictl.
    let out = fleet.hdictl_ok(&["topic", "delete", "pay", "payments"]);
    assert!(out.contains("deleted"), "{out}");
    let error = api.topic_get("test", "pay", "payments").await.unwrap_err();
    assert_eq!(error.status(), Some(404), "{error}");
    let err = fleet.hdictl_fails(&["topic", "describe", "pay", "payments"]);
    assert!(err.contains("not_found"), "{err}");
    let err = fleet.hdictl_fails(&["topic", "delete", "pay", "payments"]);
    assert!(err.contains("not_found"), "{err}");
}
