//! The Java tools built on Kafka (4.3.1 from Maven Central, `e2e/clients/java-ecosystem/pom.xml`)
//! against real `hdi-broker` processes:
//!
//! - **Kafka Connect** in distributed mode on a three-broker cluster, its config, offset and
//!   status topics created by Connect with three replicas and `cleanup.policy=compact` (checked
//!   with DescribeConfigs), a FileStreamSource connector feeding a topic and a FileStreamSink
//!   connector writing it out, both created through the REST API: the sink file holds every line
//!   of the source file exactly once and in order. The worker is SIGKILLed once it is quiescent
//!   (every line in the sink, then three offset-flush intervals idle), restarted, finds both
//!   connectors in its config topic without being told again, and carries on from its stored
//!   offsets: lines appended after the restart reach the sink, and the sink is still every line
//!   exactly once (at-least-once would allow duplicates only of what was not yet flushed and
//!   committed when the worker died; at a quiescent kill that is nothing, so the check is exact).
//! - **MirrorMaker 2** in dedicated mode between two one-broker clusters A and B: a topic of A
//!   arrives on B as `A.<topic>` (records written before and while MirrorMaker runs), its
//!   internal topics are compacted where Kafka's are, offset syncs and checkpoints flow, and a
//!   consumer group's offsets committed on A are translated onto B
//!   (`sync.group.offsets.enabled`: on B, for every partition, above 0 and never past A's).
//! - **Kafka Streams**: a word count (`hdi.ecosystem.WordCount`) with
//!   `processing.guarantee=exactly_once_v2`, a state store whose changelog hdi-broker keeps
//!   compacted, and its cache off (every count is emitted), on a three-broker cluster with the
//!   leader of an input partition SIGKILLed while the input is part read: the output read with
//!   `read_committed` holds, for each word, exactly the counts 1, 2, ..., its total, in order
//!   (a record processed twice would repeat a count, one lost would skip one).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use hdi_e2e::{
    Broker, BrokerCluster, ConnectWorker, TempDir, ecosystem_run, kcat_consume_all, kcat_produce,
    mirror_maker,
};

/// The lines of the Connect test's source file, from `first` to `last` (1-based).
fn source_lines(first: usize, last: usize) -> Vec<String> {
    (first..=last)
        .map(|i| format!("line {i:05} of the file source"))
        .collect()
}

/// The lines of `path` (none while it does not exist).
fn file_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Appends `lines` to `path`, one a line.
fn append_lines(path: &std::path::Path, lines: &[String]) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
    file.sync_all().unwrap();
}

/// Whether a connector and each of its tasks report RUNNING in `GET /connectors/<name>/status`.
fn connector_running(worker: &ConnectWorker, name: &str) -> bool {
    let Some((200, body)) = worker.http("GET", &format!("/connectors/{name}/status"), None) else {
        return false;
    };
    let Ok(status) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
    status["connector"]["state"] == "RUNNING"
        && !tasks.is_empty()
        && tasks.iter().all(|t| t["state"] == "RUNNING")
}

/// The names `GET /connectors` lists, sorted.
fn connectors(worker: &ConnectWorker) -> Vec<String> {
    let (status, body) = worker.http("GET", "/connectors", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = serde_json::from_str(&body).unwrap();
    names.sort();
    names
}

/// Creates connector `name` with `config` through `POST /connectors` (201 Created).
fn create_connector(worker: &ConnectWorker, name: &str, config: serde_json::Value) {
    let body = serde_json::json!({ "name": name, "config": config }).to_string();
    let (status, answer) = worker.http("POST", "/connectors", Some(&body)).unwrap();
    assert_eq!(status, 201, "POST /connectors {name}: {answer}");
}

#[test]
fn connect_distributed_file_source_to_sink_exactly_and_resumes_after_worker_sigkill() {
    let dir = TempDir::new("connect");
    let cluster = BrokerCluster::start("connect", dir.path());
    let bootstrap = cluster.bootstrap();
    let source = dir.path().join("source.txt");
    let sink = dir.path().join("sink.txt");
    let topic = "connect-lines";
    append_lines(&source, &source_lines(1, 2000));

    let mut worker = ConnectWorker::start(&dir.path().join("worker"), &bootstrap, "hdi-connect", 3);
    // Connect created its three topics compacted (and checked it itself, with DescribeConfigs).
    let policies = ecosystem_run(
        dir.path(),
        "Check",
        &[
            "cleanup-policy",
            &bootstrap,
            "connect-configs",
            "connect-offsets",
            "connect-status",
        ],
        Duration::from_secs(60),
    );
    for internal in ["connect-configs", "connect-offsets", "connect-status"] {
        assert_eq!(
            policies["cleanup_policy"][internal], "compact",
            "{policies}"
        );
    }

    create_connector(
        &worker,
        "file-source",
        serde_json::json!({
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": source.to_str().unwrap(),
            "topic": topic,
            // The worker creates the topic: one partition, so the sink sees the file's order.
            "topic.creation.default.partitions": "1",
            "topic.creation.default.replication.factor": "3",
        }),
    );
    create_connector(
        &worker,
        "file-sink",
        serde_json::json!({
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "file": sink.to_str().unwrap(),
            "topics": topic,
        }),
    );
    worker.wait_until("both connectors RUNNING", Duration::from_secs(120), |w| {
        connector_running(w, "file-source") && connector_running(w, "file-sink")
    });
    let expected = source_lines(1, 2000);
    worker.wait_until(
        "the 2000 source lines in the sink file",
        Duration::from_secs(120),
        |_| file_lines(&sink).len() >= expected.len(),
    );
    // Quiescent: three offset-flush intervals (1 s each) with nothing to move.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(file_lines(&sink), expected, "sink before the SIGKILL");

    let mut worker = worker.kill_and_restart();
    eprintln!("SIGKILLed and restarted the Connect worker");
    // The connectors come back from the config topic, not from us.
    assert_eq!(connectors(&worker), ["file-sink", "file-source"]);
    worker.wait_until(
        "both connectors RUNNING after the restart",
        Duration::from_secs(120),
        |w| connector_running(w, "file-source") && connector_running(w, "file-sink"),
    );
    append_lines(&source, &source_lines(2001, 3000));
    let expected = source_lines(1, 3000);
    worker.wait_until(
        "the 3000 source lines in the sink file",
        Duration::from_secs(120),
        |_| file_lines(&sink).len() >= expected.len(),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        file_lines(&sink),
        expected,
        "sink after the restart: each line exactly once, in order"
    );
    let ends = ecosystem_run(
        dir.path(),
        "Check",
        &["end-offsets", &bootstrap, topic],
        Duration::from_secs(60),
    );
    assert_eq!(ends["end_offsets"][format!("{topic}-0")], 3000, "{ends}");
}

/// Polls `check` every 500 ms until it returns `Some`; fails after `timeout` with the last
/// value it saw.
fn poll<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(value) => {
                eprintln!("{what} ({:.1}s)", started.elapsed().as_secs_f64());
                return value;
            }
            Err(last) => assert!(
                started.elapsed() < timeout,
                "no {what} within {timeout:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn mirror_maker_2_mirrors_a_topic_and_translates_group_offsets_between_two_clusters() {
    let dir = TempDir::new("mm2");
    let a = Broker::start(&dir.path().join("a"), None, &[]);
    let b = Broker::start(&dir.path().join("b"), None, &[]);
    let (a_bootstrap, b_bootstrap) = (a.bootstrap.clone(), b.bootstrap.clone());
    let topic = "orders";
    let group = "orders-app";
    ecosystem_run(
        dir.path(),
        "Check",
        &["create-topic", &a_bootstrap, topic, "3", "1"],
        Duration::from_secs(60),
    );
    let before: Vec<String> = (0..300).map(|i| format!("order {i:04}")).collect();
    kcat_produce(&a_bootstrap, topic, &before);
    // The group has read everything so far on A.
    let committed = ecosystem_run(
        dir.path(),
        "Check",
        &["commit", &a_bootstrap, group, topic],
        Duration::from_secs(60),
    );

    let mut mm2 = mirror_maker(
        &dir.path().join("mm2"),
        &format!(
            "clusters=A,B\n\
A.bootstrap.servers={a_bootstrap}\n\
B.bootstrap.servers={b_bootstrap}\n\
A->B.enabled=true\n\
A->B.topics={topic}\n\
A->B.groups={group}\n\
B->A.enabled=false\n\
tasks.max=2\n\
replication.factor=1\n\
checkpoints.topic.replication.factor=1\n\
heartbeats.topic.replication.factor=1\n\
offset-syncs.topic.replication.factor=1\n\
offset.storage.replication.factor=1\n\
status.storage.replication.factor=1\n\
config.storage.replication.factor=1\n\
sync.group.offsets.enabled=true\n\
sync.group.offsets.interval.seconds=1\n\
emit.checkpoints.interval.seconds=1\n\
emit.heartbeats.interval.seconds=1\n\
refresh.topics.interval.seconds=1\n\
refresh.groups.interval.seconds=1\n\
offset.lag.max=0\n"
        ),
        "B",
    );
    let mirrored = format!("A.{topic}");
    let mut expected = before.clone();
    expected.sort();
    poll("the 300 records on B", Duration::from_secs(180), || {
        assert!(mm2.is_running(), "MirrorMaker exited");
        let (ok, out, err) = hdi_e2e::kcat(&b_bootstrap, &["-L", "-t", &mirrored], None);
        if !ok || !String::from_utf8_lossy(&out).contains("partition 2") {
            return Err(format!("{mirrored} not on B yet: {err}"));
        }
        let got = kcat_consume_all(&b_bootstrap, &mirrored);
        (got == expected)
            .then_some(())
            .ok_or(format!("{} records", got.len()))
    });
    // Records written while MirrorMaker runs follow.
    let during: Vec<String> = (300..500).map(|i| format!("order {i:04}")).collect();
    kcat_produce(&a_bootstrap, topic, &during);
    let mut expected: Vec<String> = before.iter().chain(&during).cloned().collect();
    expected.sort();
    poll("the 500 records on B", Duration::from_secs(120), || {
        let got = kcat_consume_all(&b_bootstrap, &mirrored);
        (got == expected)
            .then_some(())
            .ok_or(format!("{} records", got.len()))
    });
    // MirrorMaker translates a group's offset through the offset syncs before it: the offset on
    // B may stay behind the one committed on A when no sync fell exactly on it (Kafka's
    // contract: a translated offset never passes the committed one, so nothing is skipped),
    // and it is there for every partition.
    let translated = poll(
        "the group's offsets translated onto B",
        Duration::from_secs(120),
        || {
            let offsets = ecosystem_run(
                dir.path(),
                "Check",
                &["group-offsets", &b_bootstrap, group],
                Duration::from_secs(60),
            );
            let all = (0..3).all(|p| {
                let on_b = offsets["offsets"][format!("{mirrored}-{p}")].as_i64();
                let on_a = committed["committed"][format!("{topic}-{p}")].as_i64();
                matches!((on_b, on_a), (Some(b), Some(a)) if 0 < b && b <= a)
            });
            all.then_some(offsets.clone()).ok_or(offsets.to_string())
        },
    );
    eprintln!("translated: {translated}");
    // MirrorMaker's own topics: offset syncs on A, checkpoints and heartbeats on B, Connect's
    // config/offset/status topics of the A->B flow on B; the compacted ones compacted.
    let on_a = ecosystem_run(
        dir.path(),
        "Check",
        &[
            "cleanup-policy",
            &a_bootstrap,
            "mm2-offset-syncs.B.internal",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        on_a["cleanup_policy"]["mm2-offset-syncs.B.internal"], "compact",
        "{on_a}"
    );
    let internal_b = [
        "A.checkpoints.internal",
        "mm2-configs.A.internal",
        "mm2-offsets.A.internal",
        "mm2-status.A.internal",
    ];
    let mut args = vec!["cleanup-policy", b_bootstrap.as_str()];
    args.extend(internal_b);
    let on_b = ecosystem_run(dir.path(), "Check", &args, Duration::from_secs(60));
    for internal in internal_b {
        assert_eq!(on_b["cleanup_policy"][internal], "compact", "{on_b}");
    }
    let checkpoints = kcat_consume_all(&b_bootstrap, "A.checkpoints.internal");
    assert!(!checkpoints.is_empty(), "no checkpoints on B");
    let heartbeats = kcat_consume_all(&b_bootstrap, "heartbeats");
    assert!(!heartbeats.is_empty(), "no heartbeats on B");
}

#[test]
fn kafka_streams_exactly_once_word_count_survives_a_broker_sigkill() {
    let dir = TempDir::new("streams");
    let mut cluster = BrokerCluster::start("streams", dir.path());
    let bootstrap = cluster.bootstrap();
    let (input, output, app, lines) = ("streams-lines", "streams-counts", "hdi-wordcount", "20000");
    ecosystem_run(
        dir.path(),
        "WordCount",
        &["produce", &bootstrap, input, output, lines],
        Duration::from_secs(120),
    );
    let state = dir.path().join("streams-state");
    let mut streams = hdi_e2e::ecosystem_program(
        dir.path(),
        "WordCount",
        &[
            "run",
            &bootstrap,
            app,
            input,
            output,
            state.to_str().unwrap(),
        ],
    );
    streams
        .wait_for_line("-> RUNNING", Duration::from_secs(120))
        .unwrap();
    // Mid-run: 2000 of the 20000 input records read (re-reads after aborts count too), not all.
    let processed_at_kill = poll(
        "2000 input records processed",
        Duration::from_secs(120),
        || {
            assert!(streams.is_running(), "the Streams application exited");
            let processed = streams
                .lines()
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("processed ")?.trim().parse::<u64>().ok())
                .unwrap_or(0);
            (processed >= 2000)
                .then_some(processed)
                .ok_or(format!("{processed}"))
        },
    );
    let victim = cluster.leader(input, 0).unwrap();
    cluster.kill(victim);
    eprintln!(
        "SIGKILLed broker {} (leader of {input}-0) with {processed_at_kill} input records processed",
        victim + 1
    );
    assert!(
        processed_at_kill < 20000,
        "the input was all processed before the kill: nothing was tested"
    );
    let verdict = ecosystem_run(
        dir.path(),
        "WordCount",
        &["verify", &bootstrap, output, lines, "240"],
        Duration::from_secs(300),
    );
    assert!(streams.is_running(), "the Streams application exited");
    cluster.restart(victim);
    eprintln!("verdict: {verdict}");
    // The store's changelog is compacted.
    let changelog = format!("{app}-word-counts-changelog");
    let policy = ecosystem_run(
        dir.path(),
        "Check",
        &["cleanup-policy", &bootstrap, &changelog],
        Duration::from_secs(60),
    );
    assert_eq!(policy["cleanup_policy"][&changelog], "compact", "{policy}");
}
