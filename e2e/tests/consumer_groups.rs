//! Consumer groups end to end: a control plane, three node agents and a 3-broker Kafka cluster;
//! a real consumer (confluent-kafka, `e2e/clients/group_consumer.py`) commits offsets, and the
//! REST API and `hdictl group` list and describe exactly what it committed against the end
//! offsets; the lag after more records is exact; resets and deletes are refused while the
//! consumer is a member and work once it left (every `to`, a dry run changing nothing, a real
//! consumer resuming from a reset); the metrics endpoint shows the produce burst, and the
//! brokers' own Prometheus listeners (placed by the control plane) counted every record.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdi_api::{ConsumerGroup, ConsumerGroupResetOffsets, ConsumerGroupState, ErrorCode, ResetTo};
use hdi_e2e::{
    Fleet, PLAINTEXT_KAFKA_3, bootstrap_servers, client_command, client_script, test_python,
};
use serde_json::Value;

const WS: &str = "test";
const CLUSTER: &str = "pay";
const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// A running `group_consumer.py`: its JSON lines arrive on `lines`.
struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Member {
    /// Joins `group` on [`TOPIC`] and reads `count` records, committing them.
    fn start(bootstrap: &str, group: &str, count: usize) -> Member {
        let mut child = client_command(test_python())
            .arg(client_script("group_consumer.py"))
            .args(["--bootstrap", bootstrap, "--topic", TOPIC, "--group", group])
            .args(["--count", &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("group_consumer.py: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Member {
            child,
            stdin,
            lines,
        }
    }

    /// The next JSON line (waiting up to 90 s), which must say `ok`.
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(90))
            .expect("group_consumer.py said nothing in 90 s");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["ok"], true, "{line}");
        value
    }

    /// Leaves the group (closes stdin) and waits for the process to end.
    fn leave(mut self) {
        drop(self.stdin.take());
        assert_eq!(self.next()["closed"], true);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Writes `records` records `PREFIX-i` to [`TOPIC`] with `hdictl topic produce`, keyed (so that
/// every partition gets some).
fn produce(fleet: &Fleet, prefix: &str, records: usize) {
    let lines: Vec<String> = (0..records)
        .map(|i| format!("{prefix}-key-{i}:{prefix}-{i:05}"))
        .collect();
    let file = fleet.dir.path().join(format!("{prefix}.txt"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = fleet.hdictl_ok(&[
        "topic",
        "produce",
        CLUSTER,
        TOPIC,
        "--file",
        file.to_str().unwrap(),
        "--key-separator",
        ":",
    ]);
    assert!(
        out.contains(&format!("wrote {records} of {records}")),
        "{out}"
    );
}

/// The Prometheus exposition at `url` (with a bearer `token`), which must answer 200.
async fn metrics_text(url: &str, token: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap().error_for_status().unwrap();
    response.text().await.unwrap()
}

/// `(partition, committed, end, lag)` of a row.
type Row = (u32, Option<i64>, Option<i64>, Option<i64>);

/// The [`Row`]s of `group`.
fn rows(group: &ConsumerGroup) -> Vec<Row> {
    group
        .offsets
        .iter()
        .map(|o| {
            assert_eq!(o.topic, TOPIC);
            (o.partition, o.committed_offset, o.end_offset, o.lag)
        })
        .collect()
}

fn ends(group: &ConsumerGroup) -> Vec<i64> {
    group
        .offsets
        .iter()
        .map(|o| o.end_offset.unwrap())
        .collect()
}

fn committed(group: &ConsumerGroup) -> Vec<i64> {
    group
        .offsets
        .iter()
        .map(|o| o.committed_offset.unwrap())
        .collect()
}

fn reset(to: ResetTo) -> ConsumerGroupResetOffsets {
    ConsumerGroupResetOffsets {
        to,
        timestamp_ms: None,
        offset: None,
        topics: None,
        dry_run: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_through_rest_and_hdictl() {
    let fleet = Fleet::start_with_workspace("groups", 3).await;
    let api = fleet.api();
    let (cluster, _) = fleet.create_cluster(CLUSTER, PLAINTEXT_KAFKA_3);
    let bootstrap = bootstrap_servers(&cluster);
    fleet.hdictl_ok(&[
        "topic",
        "create",
        CLUSTER,
        TOPIC,
        "--partitions",
        "3",
        "--replication-factor",
        "3",
    ]);
    let list = api.consumer_groups_list(WS, CLUSTER, None).await.unwrap();
    assert!(list.items.is_empty(), "{list:?}");

    // 300 records; a consumer reads and commits all of them.
    produce(&fleet, "first", 300);
    let member = Member::start(&bootstrap, GROUP, 300);
    let report = member.next();
    assert_eq!(report["consumed"], 300, "{report}");
    // Records of the first burst are before this time, those of the next after it.
    std::thread::sleep(Duration::from_millis(1500));
    let between_ms = now_ms();
    std::thread::sleep(Duration::from_millis(1500));

    // List and describe show the member, its assignment and exactly what it committed.
    let list = api.consumer_groups_list(WS, CLUSTER, None).await.unwrap();
    assert_eq!(list.items.len(), 1, "{list:?}");
    let summary = &list.items[0];
    assert_eq!(summary.group_id, GROUP);
    assert_eq!(summary.state, ConsumerGroupState::Stable, "{summary:?}");
    assert_eq!(summary.protocol_type, "consumer");
    assert_eq!(summary.members, 1);
    assert!(summary.assignor.is_some(), "{summary:?}");
    assert_eq!(summary.total_lag, 0);
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(group.members.len(), 1, "{group:?}");
    let m = &group.members[0];
    assert_eq!(m.client_id, "hdi-e2e-group");
    assert!(m.client_host.contains("127.0.0.1"), "{m:?}");
    assert_eq!(m.assignment.len(), 1);
    assert_eq!(m.assignment[0].topic, TOPIC);
    assert_eq!(m.assignment[0].partitions, [0, 1, 2]);
    let from_client: Vec<Row> = report["committed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c[0], TOPIC);
            let offset = c[2].as_i64().unwrap();
            (
                u32::try_from(c[1].as_u64().unwrap()).unwrap(),
                Some(offset),
                Some(offset),
                Some(0),
            )
        })
        .collect();
    assert_eq!(
        rows(&group),
        from_client,
        "committed = what the consumer committed = the end offsets"
    );
    let first_ends = ends(&group);
    assert_eq!(first_ends.iter().sum::<i64>(), 300);
    assert!(
        first_ends.iter().all(|e| *e > 0),
        "keys spread: {first_ends:?}"
    );
    assert!(
        group
            .offsets
            .iter()
            .all(|o| o.member_id.as_deref() == Some(m.member_id.as_str()))
    );

    // The sampler has seen the cluster and the group before the next burst.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let metrics = api.cluster_metrics(WS, CLUSTER).await.unwrap();
        if metrics.groups.iter().any(|g| g.group_id == GROUP) && metrics.timestamps_ms.len() >= 2 {
            assert_eq!(metrics.interval_ms, 5_000, "the default interval");
            break;
        }
        assert!(Instant::now() < deadline, "never sampled: {metrics:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 50 more records: the lag is exactly 50, partition by partition end - committed.
    produce(&fleet, "second", 50);
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(group.total_lag, 50, "{group:?}");
    for (i, (_, committed, end, lag)) in rows(&group).into_iter().enumerate() {
        assert_eq!(committed, Some(first_ends[i]));
        assert_eq!(lag, Some(end.unwrap() - first_ends[i]));
    }
    let all_ends = ends(&group);
    assert_eq!(all_ends.iter().sum::<i64>(), 350);
    let list = api.consumer_groups_list(WS, CLUSTER, None).await.unwrap();
    assert_eq!(list.items[0].total_lag, 50);

    // The metrics show the burst as a positive rate, and the group's lag of 50.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let metrics = api.cluster_metrics(WS, CLUSTER).await.unwrap();
        let n = metrics.timestamps_ms.len();
        assert!(
            metrics.records_in_per_sec.len() == n && metrics.records_consumed_per_sec.len() == n
        );
        let burst = metrics
            .records_in_per_sec
            .iter()
            .flatten()
            .any(|r| *r > 0.0);
        let topic = metrics.topics.iter().find(|t| t.topic == TOPIC).unwrap();
        assert_eq!(topic.records_in_per_sec.len(), n);
        let topic_burst = topic.records_in_per_sec.iter().flatten().any(|r| *r > 0.0);
        let lag = metrics
            .groups
            .iter()
            .find(|g| g.group_id == GROUP)
            .and_then(|g| g.total_lag.last().copied().flatten());
        if burst && topic_burst && lag == Some(50) {
            break;
        }
        assert!(Instant::now() < deadline, "no burst in {metrics:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The control plane's Prometheus metrics carry the same lag, labelled as kafka-exporter's.
    let url = format!("{}/metrics", fleet.control_plane.url);
    let text = metrics_text(&url, Some(&fleet.secrets.admin_token)).await;
    let series = format!(
        "hdi_kafka_consumergroup_lag{{workspace=\"{WS}\",cluster=\"{CLUSTER}\",consumergroup=\"{GROUP}\"}} 50"
    );
    assert!(text.lines().any(|l| l == series), "no {series} in\n{text}");

    // Every broker serves Prometheus metrics on the port the control plane placed (its agent has
    // no metrics token: on loopback, open); the leaders counted each of the 350 records once.
    let cluster = api.cluster_get(WS, CLUSTER).await.unwrap();
    let brokers: Vec<_> = cluster
        .status
        .workloads
        .iter()
        .filter(|w| w.role == "broker")
        .collect();
    assert_eq!(brokers.len(), 3, "{cluster:?}");
    let mut messages_in = 0.0;
    for broker in brokers {
        let address = broker.metrics_address.as_deref().unwrap();
        assert_ne!(address, broker.address);
        let text = metrics_text(&format!("http://{address}/metrics"), None).await;
        assert!(
            text.contains("kafka_controller_kafkacontroller_activecontrollercount"),
            "{text}"
        );
        let series =
            format!("kafka_server_brokertopicmetrics_messagesin_total{{topic=\"{TOPIC}\"}} ");
        messages_in += text
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0.0, |v| v.parse::<f64>().unwrap());
    }
    assert_eq!(messages_in, 350.0);

    // While the consumer is a member: reset and delete are refused (REST and hdictl).
    let error = api
        .consumer_group_reset_offsets(WS, CLUSTER, GROUP, &reset(ResetTo::Earliest))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409), "{error}");
    assert_eq!(error.code(), Some(ErrorCode::GroupNotEmpty), "{error}");
    let error = api
        .consumer_group_delete(WS, CLUSTER, GROUP)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::GroupNotEmpty), "{error}");
    let err = fleet.hdictl_fails(&["group", "reset-offsets", CLUSTER, GROUP, "--to-latest"]);
    assert!(err.contains("group_not_empty"), "{err}");
    let err = fleet.hdictl_fails(&["group", "delete", CLUSTER, GROUP]);
    assert!(err.contains("group_not_empty"), "{err}");

    // hdictl's views while it is active.
    let table = fleet.hdictl_ok(&["group", "list", CLUSTER]);
    assert!(
        table.contains("GROUP") && table.contains(GROUP) && table.contains("Stable"),
        "{table}"
    );
    let table = fleet.hdictl_ok(&["group", "describe", CLUSTER, GROUP]);
    assert!(
        table.contains("LOG-END-OFFSET") && table.contains("hdi-e2e-group"),
        "{table}"
    );
    assert!(table.contains("total lag:    50"), "{table}");
    let json: Value = fleet.hdictl_json(&["group", "describe", CLUSTER, GROUP, "-o", "json"]);
    assert_eq!(json["total_lag"], 50, "{json:#}");
    assert_eq!(json["state"], "Stable");
    let yaml = fleet.hdictl_ok(&["group", "list", CLUSTER, "-o", "yaml"]);
    assert!(yaml.contains(&format!("group_id: {GROUP}")), "{yaml}");

    // The consumer leaves: the group is Empty and keeps its offsets.
    member.leave();
    let deadline = Instant::now() + Duration::from_secs(30);
    let group = loop {
        let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
        if group.members.is_empty() {
            break group;
        }
        assert!(Instant::now() < deadline, "{group:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(group.state, ConsumerGroupState::Empty, "{group:?}");
    assert_eq!(committed(&group), first_ends);

    // A dry run answers the plan and commits nothing.
    let plan = api
        .consumer_group_reset_offsets(
            WS,
            CLUSTER,
            GROUP,
            &ConsumerGroupResetOffsets {
                dry_run: true,
                ..reset(ResetTo::Earliest)
            },
        )
        .await
        .unwrap();
    assert!(plan.dry_run);
    let planned: Vec<(u32, Option<i64>, i64)> = plan
        .offsets
        .iter()
        .map(|o| (o.partition, o.previous_offset, o.new_offset))
        .collect();
    assert_eq!(
        planned,
        (0..3)
            .map(|p| (p, Some(first_ends[p as usize]), 0))
            .collect::<Vec<_>>()
    );
    let out = fleet.hdictl_ok(&[
        "group",
        "reset-offsets",
        CLUSTER,
        GROUP,
        "--to-earliest",
        "--dry-run",
    ]);
    assert!(out.contains("NEW-OFFSET"), "{out}");
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), first_ends, "a dry run changes nothing");

    // Earliest: every partition from 0, the lag is every record.
    let done = api
        .consumer_group_reset_offsets(WS, CLUSTER, GROUP, &reset(ResetTo::Earliest))
        .await
        .unwrap();
    assert!(!done.dry_run);
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), [0, 0, 0]);
    assert_eq!(group.total_lag, 350);

    // Latest: the ends.
    api.consumer_group_reset_offsets(WS, CLUSTER, GROUP, &reset(ResetTo::Latest))
        .await
        .unwrap();
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), all_ends);
    assert_eq!(group.total_lag, 0);

    // A time between the bursts: exactly where the first burst ended, partition by partition
    // (through hdictl's --to-datetime, RFC 3339 in UTC).
    let datetime = chrono::DateTime::from_timestamp_millis(between_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = fleet.hdictl_ok(&[
        "group",
        "reset-offsets",
        CLUSTER,
        GROUP,
        "--to-datetime",
        &datetime,
        "--topic",
        TOPIC,
        "-o",
        "json",
    ]);
    let answered: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answered["dry_run"], false, "{answered:#}");
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), first_ends, "reset to {datetime}");
    assert_eq!(group.total_lag, 50);
    // A time after every record: the end.
    api.consumer_group_reset_offsets(
        WS,
        CLUSTER,
        GROUP,
        &ConsumerGroupResetOffsets {
            timestamp_ms: Some(now_ms() + 3_600_000),
            ..reset(ResetTo::Timestamp)
        },
    )
    .await
    .unwrap();
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), all_ends);

    // An offset, clamped to each partition's end; a real consumer then resumes from it.
    let done = api
        .consumer_group_reset_offsets(
            WS,
            CLUSTER,
            GROUP,
            &ConsumerGroupResetOffsets {
                offset: Some(100),
                topics: Some(vec![TOPIC.to_owned()]),
                ..reset(ResetTo::Offset)
            },
        )
        .await
        .unwrap();
    let expected: Vec<i64> = all_ends.iter().map(|e| (*e).min(100)).collect();
    assert_eq!(
        done.offsets
            .iter()
            .map(|o| o.new_offset)
            .collect::<Vec<_>>(),
        expected
    );
    let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
    assert_eq!(committed(&group), expected);
    let remaining: i64 = all_ends.iter().zip(&expected).map(|(e, c)| e - c).sum();
    assert_eq!(group.total_lag, remaining);
    let member = Member::start(&bootstrap, GROUP, usize::try_from(remaining).unwrap());
    let report = member.next();
    assert_eq!(report["consumed"], remaining, "{report}");
    let resumed: Vec<i64> = report["committed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[2].as_i64().unwrap())
        .collect();
    assert_eq!(
        resumed, all_ends,
        "the consumer resumed from the reset offsets"
    );
    member.leave();

    // Bad requests name their field; an unknown topic too.
    let error = api
        .consumer_group_reset_offsets(
            WS,
            CLUSTER,
            GROUP,
            &ConsumerGroupResetOffsets {
                topics: Some(vec!["nope".to_owned()]),
                ..reset(ResetTo::Latest)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidField), "{error}");

    // Delete: then it is gone (404 over REST, not_found through hdictl) and no longer listed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let group = api.consumer_group_get(WS, CLUSTER, GROUP).await.unwrap();
        if group.members.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{group:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = fleet.hdictl_ok(&["group", "delete", CLUSTER, GROUP]);
    assert!(out.contains("deleted"), "{out}");
    let error = api
        .consumer_group_get(WS, CLUSTER, GROUP)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404), "{error}");
    let err = fleet.hdictl_fails(&["group", "describe", CLUSTER, GROUP]);
    assert!(err.contains("not_found"), "{err}");
    let err = fleet.hdictl_fails(&["group", "delete", CLUSTER, GROUP]);
    assert!(err.contains("not_found"), "{err}");
    let error = api
        .consumer_group_reset_offsets(WS, CLUSTER, "never-seen", &reset(ResetTo::Latest))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404), "{error}");
    let list = api.consumer_groups_list(WS, CLUSTER, None).await.unwrap();
    assert!(list.items.iter().all(|g| g.group_id != GROUP), "{list:?}");
}
