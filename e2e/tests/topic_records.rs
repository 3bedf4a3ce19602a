//! A topic's records through the control plane, end to end: a control plane, three node agents
//! and a 3-broker Kafka cluster; records written with kcat and `POST …/records`, read back
//! through `GET …/records` (server-sent events) from the earliest or latest offset, an offset or
//! a timestamp, filtered, bounded, and following a burst live; partition offsets in the topic;
//! batches kcat compressed with each of Kafka's codecs read in order.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdi_e2e::{Fleet, PLAINTEXT_KAFKA_3, bootstrap_servers, kcat_produce};
use serde_json::{Value, json};

/// The events of one tail: `(event, data)` in order, read until the `end` event (or `limit`).
async fn tail(url: &str, token: &str, query: &str, limit: Duration) -> Vec<(String, Value)> {
    let base = format!("{url}/v1/workspaces/test/clusters/pay/topics/cards");
    tail_url(&base, token, query, limit).await
}

/// [`tail`] of the topic at `base` (its URL).
async fn tail_url(base: &str, token: &str, query: &str, limit: Duration) -> Vec<(String, Value)> {
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("{base}/records?{query}"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let deadline = Instant::now() + limit;
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            panic!("the tail {query} did not end in {limit:?}: {events:?}");
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buffer.find("\n\n") {
            let block: String = buffer.drain(..at + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if name.is_empty() {
                continue; // a keep-alive comment
            }
            let value: Value = serde_json::from_str(&data).unwrap();
            let end = name == "end";
            events.push((name, value));
            if end {
                return events;
            }
        }
    }
}

/// [`tail`] of another topic of cluster `pay`, within 30 s.
async fn tail_topic(url: &str, token: &str, topic: &str, query: &str) -> Vec<(String, Value)> {
    let base = format!("{url}/v1/workspaces/test/clusters/pay/topics/{topic}");
    tail_url(&base, token, query, Duration::from_secs(30)).await
}

fn records(events: &[(String, Value)]) -> Vec<&Value> {
    events
        .iter()
        .filter(|(name, _)| name == "record")
        .map(|(_, v)| v)
        .collect()
}

fn end(events: &[(String, Value)]) -> &Value {
    let (name, value) = events.last().unwrap();
    assert_eq!(name, "end");
    value
}

/// Values by partition, in the order they came.
fn by_partition(records: &[&Value]) -> BTreeMap<u64, Vec<(i64, String)>> {
    let mut out: BTreeMap<u64, Vec<(i64, String)>> = BTreeMap::new();
    for r in records {
        out.entry(r["partition"].as_u64().unwrap())
            .or_default()
            .push((
                r["offset"].as_i64().unwrap(),
                r["value"].as_str().unwrap().to_owned(),
            ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_tailed_and_produced_through_the_api() {
    let fleet = Fleet::start_with_workspace("records", 3).await;
    let (cluster, _) = fleet.create_cluster("pay", PLAINTEXT_KAFKA_3);
    let bootstrap = bootstrap_servers(&cluster);
    let url = fleet.control_plane.url.clone();
    let token = fleet.secrets.admin_token.clone();
    fleet.hdictl_ok(&[
        "topic",
        "create",
        "pay",
        "cards",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
    ]);

    // 300 records with kcat; the topic shows its offsets per partition.
    let first: Vec<String> = (0..300).map(|i| format!("card-{i:04}")).collect();
    kcat_produce(&bootstrap, "cards", &first);
    let topic = fleet.api().topic_get("test", "pay", "cards").await.unwrap();
    let ends: i64 = topic.partitions.iter().map(|p| p.end_offset.unwrap()).sum();
    assert_eq!(ends, 300, "{topic:?}");
    assert!(
        topic.partitions.iter().all(|p| p.start_offset == Some(0)),
        "{topic:?}"
    );

    // From the earliest offset, not following: all 300, each partition in offset order, then
    // end_of_partitions.
    let events = tail(
        &url,
        &token,
        "from=earliest&follow=false&max_records=1000",
        Duration::from_secs(30),
    )
    .await;
    let got = records(&events);
    assert_eq!(got.len(), 300);
    assert_eq!(end(&events)["reason"], "end_of_partitions");
    assert_eq!(end(&events)["records"], 300);
    let partitions = by_partition(&got);
    let mut all = Vec::new();
    for (partition, rows) in &partitions {
        let offsets: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let expected: Vec<i64> = (0..i64::try_from(rows.len()).unwrap()).collect();
        assert_eq!(offsets, expected, "partition {partition} in order from 0");
        all.extend(rows.iter().map(|r| r.1.clone()));
    }
    all.sort();
    assert_eq!(all, first, "exactly the records written");

    // A filter on the value; a cap on records; one partition from an offset.
    let events = tail(
        &url,
        &token,
        "from=earliest&follow=false&value_contains=card-01",
        Duration::from_secs(30),
    )
    .await;
    let mut values: Vec<&str> = records(&events)
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    values.sort_unstable();
    let expected: Vec<String> = (100..200).map(|i| format!("card-{i:04}")).collect();
    assert_eq!(
        values,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(end(&events)["scanned"], 300, "{:?}", end(&events));
    let events = tail(
        &url,
        &token,
        "from=earliest&max_records=7",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records(&events).len(), 7);
    assert_eq!(end(&events)["reason"], "max_records");
    // kcat spreads unkeyed records as it likes (sticky batches): the partition with the most.
    let (fullest, in_fullest) = partitions
        .iter()
        .map(|(p, rows)| (*p, rows.len()))
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let from = in_fullest / 3;
    let events = tail(
        &url,
        &token,
        &format!("from=offset&offset={from}&partition={fullest}&follow=false"),
        Duration::from_secs(30),
    )
    .await;
    let got = records(&events);
    assert_eq!(
        got.len(),
        in_fullest - from,
        "partition {fullest} from offset {from}"
    );
    assert!(got.iter().all(|r| r["partition"] == fullest));
    assert_eq!(got[0]["offset"], from);

    // From a timestamp after every record: nothing until it ends by time.
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    let events = tail(
        &url,
        &token,
        &format!("from=timestamp&timestamp_ms={later}&max_seconds=2"),
        Duration::from_secs(30),
    )
    .await;
    assert!(records(&events).is_empty());
    assert_eq!(end(&events)["reason"], "max_seconds");

    // Live: a tail from the latest offset, then a burst of 1,000 written with kcat while it
    // runs: every record arrives, each partition in order.
    let live = tokio::spawn({
        let (url, token) = (url.clone(), token.clone());
        async move {
            tail(
                &url,
                &token,
                "from=latest&max_records=1000&max_seconds=60",
                Duration::from_secs(90),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burst: Vec<String> = (0..1000).map(|i| format!("burst-{i:04}")).collect();
    kcat_produce(&bootstrap, "cards", &burst);
    let events = live.await.unwrap();
    let got = records(&events);
    assert_eq!(end(&events)["reason"], "max_records", "{:?}", end(&events));
    let mut values: Vec<String> = Vec::new();
    for (partition, rows) in by_partition(&got) {
        assert!(
            rows.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "partition {partition} in order, no gap"
        );
        values.extend(rows.into_iter().map(|r| r.1));
    }
    values.sort();
    assert_eq!(values, burst, "every record of the burst, once");

    // Produce through the API: a keyed record lands where Kafka's partitioner puts it, with its
    // headers, and reads back.
    let produced: Value = reqwest::Client::new()
        .post(format!("{url}/v1/workspaces/test/clusters/pay/topics/cards/records"))
        .bearer_auth(&token)
        .json(&json!({"key": "acct-7", "value": "{\"amount\": 12.5}", "headers": {"source": "portal"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partition = hdi_kafka_client::partitioner::murmur2_partition(b"acct-7", 3);
    assert_eq!(produced["partition"], partition, "{produced}");
    let offset = produced["offset"].as_i64().unwrap();
    let events = tail(
        &url,
        &token,
        &format!("from=offset&offset={offset}&partition={partition}&max_records=1"),
        Duration::from_secs(30),
    )
    .await;
    let got = records(&events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["key"], "acct-7");
    assert_eq!(got[0]["value"], "{\"amount\": 12.5}");
    assert_eq!(
        got[0]["headers"],
        json!([{"key": "source", "value": "portal"}])
    );

    // Batches compressed by the producer (kcat's librdkafka, each codec in turn) read as any.
    fleet.hdictl_ok(&[
        "topic",
        "create",
        "pay",
        "zipped",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
    ]);
    let mut written = Vec::new();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let batch: Vec<String> = (0..20).map(|i| format!("{codec}-{i:02}")).collect();
        let input = batch.join("\n") + "\n";
        let (ok, _, err) = hdi_e2e::kcat(
            &bootstrap,
            &["-P", "-t", "zipped", "-X", "acks=all", "-z", codec],
            Some(input.as_bytes()),
        );
        assert!(ok, "kcat -z {codec}: {err}");
        written.extend(batch);
    }
    let events = tail_topic(
        &url,
        &token,
        "zipped",
        "from=earliest&follow=false&max_records=1000",
    )
    .await;
    let values: Vec<&str> = records(&events)
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, written, "every codec's records, in order");
    assert_eq!(end(&events)["reason"], "end_of_partitions");
    for (name, data) in &events {
        if name == "progress" {
            assert_eq!(data["skipped_compressed"], 0, "{data}");
        }
    }

    // Bad input: a clear problem naming the field.
    let bad = reqwest::Client::new()
        .get(format!(
            "{url}/v1/workspaces/test/clusters/pay/topics/cards/records?partition=9"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["field"], "partition", "{problem}");
    let bad = reqwest::Client::new()
        .get(format!(
            "{url}/v1/workspaces/test/clusters/pay/topics/cards/records?max_records=0"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let missing = reqwest::Client::new()
        .get(format!(
            "{url}/v1/workspaces/test/clusters/pay/topics/nope/records"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
