//! Followers fetch in fetch sessions (KIP-227), on a three-broker `hdi-broker` cluster of real
//! processes, measured by the leaders' replica-fetch counters (`hdi_replica_fetch_*` on
//! `--metrics-listen`):
//!
//! - with 200 partitions (RF 3) idle after warm-up, replica fetches list almost no partition
//!   and are incremental; while five partitions take acks=all writes, fetches list about those
//!   five, the high watermarks reach every acknowledged record, and the 195 idle partitions stay
//!   in sync (no ISR shrink) for over three times `--replica-lag-time-max`;
//! - a SIGKILLed follower and then a SIGKILLed leader come back, every partition's ISR is whole
//!   again, fetches are incremental again (sessions re-established), and no acknowledged record
//!   is lost;
//! - with 1,000 idle partitions, the bytes per replica fetch and the brokers' CPU with and
//!   without sessions (`--replica-fetch-sessions false`), printed.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hdi_e2e::{BrokerCluster, TempDir, kcat};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "sessions";
/// The partitions that take writes; the others stay idle.
const ACTIVE: i32 = 5;
/// `--replica-lag-time-max` of these brokers.
const LAG_MAX: Duration = Duration::from_secs(2);

/// A cluster whose brokers serve metrics on `metrics[i]`, with or without follower sessions.
fn start(name: &'static str, dir: &TempDir, sessions: bool) -> (BrokerCluster, Vec<String>) {
    let metrics: Vec<String> = (0..3).map(|_| hdi_e2e::ports::loopback()).collect();
    let addresses = metrics.clone();
    let cluster = BrokerCluster::start_with(name, dir.path(), move |i, _| {
        vec![
            "--metrics-listen".into(),
            addresses[i].clone(),
            "--replica-lag-time-max".into(),
            format!("{}ms", LAG_MAX.as_millis()),
            "--replica-fetch-sessions".into(),
            sessions.to_string(),
        ]
    });
    (cluster, metrics)
}

fn connect(address: &str) -> Option<Connection> {
    let stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    Some(Connection::new(stream, "hdi-e2e-sessions", 1 << 26))
}

fn create_topic(cluster: &BrokerCluster, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(partitions)
                .with_replication_factor(3),
        ])
        .with_timeout_ms(60_000);
    let response = connect(&cluster.address(0))
        .unwrap()
        .call(&request, 5)
        .unwrap();
    for topic in &response.topics {
        assert_eq!(topic.error_code, 0, "{topic:?}");
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The partitions of the topic whose ISR is not all three brokers (or, with `preferred`, whose
/// leader is not their preferred replica), as a live broker says, or `None` when none answers in
/// full.
fn partitions_out_of_sync(
    cluster: &BrokerCluster,
    partitions: i32,
    preferred: bool,
) -> Option<Vec<i32>> {
    for i in (0..3).filter(|i| cluster.procs[*i].is_some()) {
        let Some(mut connection) = connect(&cluster.address(i)) else {
            continue;
        };
        let Ok(metadata) = connection.call(&MetadataRequest::default().with_topics(None), 12)
        else {
            continue;
        };
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == TOPIC))?;
        if topic.partitions.len() != partitions as usize {
            return None;
        }
        return Some(
            topic
                .partitions
                .iter()
                .filter(|p| {
                    p.isr_nodes.len() != 3
                        || p.leader_id.0 < 0
                        || (preferred && p.replica_nodes.first() != Some(&p.leader_id))
                })
                .map(|p| p.partition_index)
                .collect(),
        );
    }
    None
}

/// Waits until every partition's ISR is whole and (`preferred`) led by its preferred replica.
fn wait_in_sync(cluster: &BrokerCluster, partitions: i32, preferred: bool, timeout: Duration) {
    wait_until("every ISR whole", timeout, || {
        partitions_out_of_sync(cluster, partitions, preferred).filter(Vec::is_empty)
    });
}

/// One broker's `/metrics` text.
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The replica-fetch counters summed over the live brokers.
#[derive(Clone, Copy, Debug, Default)]
struct Fetches {
    requests: f64,
    incremental: f64,
    partitions: f64,
    request_bytes: f64,
    response_bytes: f64,
    isr_shrinks: f64,
}

impl Fetches {
    fn read(cluster: &BrokerCluster, metrics: &[String]) -> Fetches {
        let mut sum = Fetches::default();
        for (i, address) in metrics.iter().enumerate() {
            if cluster.procs[i].is_none() {
                continue;
            }
            let text = scrape(address);
            sum.requests += value(&text, "hdi_replica_fetch_requests_total");
            sum.incremental += value(&text, "hdi_replica_fetch_incremental_requests_total");
            sum.partitions += value(&text, "hdi_replica_fetch_partitions_total");
            sum.request_bytes += value(&text, "hdi_replica_fetch_request_bytes_total");
            sum.response_bytes += value(&text, "hdi_replica_fetch_response_bytes_total");
            sum.isr_shrinks += value(&text, "kafka_server_replicamanager_isrshrinks_total");
        }
        sum
    }

    /// Per fetch between `self` and `later`: (fetches, partitions listed, request bytes,
    /// response bytes, incremental share).
    fn per_fetch(&self, later: &Fetches) -> (f64, f64, f64, f64, f64) {
        let n = (later.requests - self.requests).max(1.0);
        (
            later.requests - self.requests,
            (later.partitions - self.partitions) / n,
            (later.request_bytes - self.request_bytes) / n,
            (later.response_bytes - self.response_bytes) / n,
            (later.incremental - self.incremental) / n,
        )
    }
}

/// Waits until every follower fetches from both other brokers: in sessions (six sessions cached
/// over the cluster) or, without, with full fetches of every partition (a third of `partitions`
/// per fetch over a second). A new partition is in sync at once (its ISR is all its replicas),
/// before its followers first fetch it.
fn wait_fetching(cluster: &BrokerCluster, metrics: &[String], sessions: bool, partitions: i32) {
    wait_until("followers fetching", Duration::from_secs(300), || {
        if sessions {
            let cached: f64 = metrics
                .iter()
                .map(|m| {
                    value(
                        &scrape(m),
                        "kafka_server_fetchsessioncache_numincrementalfetchsessions",
                    )
                })
                .sum();
            return (cached == 6.0).then_some(());
        }
        let before = Fetches::read(cluster, metrics);
        std::thread::sleep(Duration::from_secs(1));
        let (_, per_fetch, ..) = before.per_fetch(&Fetches::read(cluster, metrics));
        (per_fetch >= f64::from(partitions / 3)).then_some(())
    });
}

/// Produces `count` records `tag-N` to `partition` with acks=all through kcat; returns them if
/// kcat says every one was acknowledged.
fn produce(
    cluster: &BrokerCluster,
    partition: i32,
    tag: &str,
    count: usize,
) -> Option<Vec<String>> {
    let records: Vec<String> = (0..count).map(|n| format!("{tag}-{n}")).collect();
    let input = records.join("\n") + "\n";
    let (ok, _, _) = kcat(
        &cluster.bootstrap(),
        &[
            "-P",
            "-t",
            TOPIC,
            "-p",
            &partition.to_string(),
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=20000",
        ],
        Some(input.as_bytes()),
    );
    ok.then_some(records)
}

/// One round of writes to every active partition; the acknowledged records go to `acked`.
fn produce_round(cluster: &BrokerCluster, round: &str, acked: &mut BTreeSet<String>) -> usize {
    let mut failed = 0;
    for partition in 0..ACTIVE {
        match produce(cluster, partition, &format!("{round}-p{partition}"), 20) {
            Some(records) => acked.extend(records),
            None => failed += 1,
        }
    }
    failed
}

/// Process CPU seconds (user + system) of broker `i`, from `/proc`.
fn cpu_seconds(cluster: &BrokerCluster, i: usize) -> f64 {
    let pid = cluster.procs[i].as_ref().unwrap().pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: state is field 3; utime 14, stime 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // Linux's USER_HZ is 100 on every platform Rust targets here.
    ticks / 100.0
}

#[test]
fn followers_send_only_active_partitions_and_idle_ones_stay_in_sync_through_kills() {
    const PARTITIONS: i32 = 200;
    let dir = TempDir::new("replica-fetch-sessions");
    let (mut cluster, metrics) = start("rfs", &dir, true);
    create_topic(&cluster, PARTITIONS);
    wait_in_sync(&cluster, PARTITIONS, false, Duration::from_secs(120));
    wait_fetching(&cluster, &metrics, true, PARTITIONS);
    let in_sync_since = Instant::now();

    // Idle, after warm-up: incremental fetches listing (almost) nothing.
    std::thread::sleep(Duration::from_secs(2));
    let before = Fetches::read(&cluster, &metrics);
    std::thread::sleep(Duration::from_secs(5));
    let idle = Fetches::read(&cluster, &metrics);
    let (fetches, partitions, request_bytes, response_bytes, incremental) = before.per_fetch(&idle);
    eprintln!(
        "idle, {PARTITIONS} partitions: {fetches} fetches, {partitions:.2} partitions, \
         {request_bytes:.0} request bytes, {response_bytes:.0} response bytes per fetch, \
         {:.0}% incremental",
        incremental * 100.0
    );
    assert!(fetches >= 6.0, "{fetches} replica fetches in 5 s");
    assert!(incremental > 0.9, "{incremental}");
    assert!(partitions < 1.0, "{partitions} partitions per idle fetch");

    // Writes to five partitions: fetches list about those, and the high watermark follows.
    let mut acked = BTreeSet::new();
    let before = Fetches::read(&cluster, &metrics);
    for round in 0..5 {
        assert_eq!(
            produce_round(&cluster, &format!("warm{round}"), &mut acked),
            0
        );
    }
    let active = Fetches::read(&cluster, &metrics);
    let (fetches, partitions, request_bytes, response_bytes, _) = before.per_fetch(&active);
    eprintln!(
        "{ACTIVE} active partitions: {fetches} fetches, {partitions:.2} partitions, \
         {request_bytes:.0} request bytes, {response_bytes:.0} response bytes per fetch"
    );
    assert!(
        partitions > 0.0 && partitions <= f64::from(ACTIVE) + 1.0,
        "{partitions}"
    );
    for partition in 0..ACTIVE {
        let leader = cluster.leader(TOPIC, partition).unwrap();
        let (_, hw) =
            hdi_e2e::partition_bytes_from(&cluster.address(leader), TOPIC, partition, 0).unwrap();
        assert_eq!(hw, 100, "partition {partition}'s high watermark");
    }

    // Idle partitions, never listed since the session opened, stay in sync.
    let idle_for = LAG_MAX * 3 + Duration::from_secs(1);
    std::thread::sleep(idle_for.saturating_sub(in_sync_since.elapsed()));
    assert_eq!(
        partitions_out_of_sync(&cluster, PARTITIONS, false),
        Some(vec![]),
        "after {:?} in sync",
        in_sync_since.elapsed()
    );
    assert_eq!(Fetches::read(&cluster, &metrics).isr_shrinks, 0.0);

    // A follower of partition 0 is SIGKILLed, written around, and comes back.
    let leader = cluster.leader(TOPIC, 0).unwrap();
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    for round in 0..3 {
        produce_round(&cluster, &format!("follower-down{round}"), &mut acked);
    }
    cluster.restart(follower);
    wait_in_sync(&cluster, PARTITIONS, false, Duration::from_secs(120));
    produce_round(&cluster, "follower-back", &mut acked);

    // The leader of partition 0 is SIGKILLed, written around, and comes back.
    let leader = cluster.leader(TOPIC, 0).unwrap();
    cluster.kill(leader);
    for round in 0..3 {
        produce_round(&cluster, &format!("leader-down{round}"), &mut acked);
    }
    cluster.restart(leader);
    // Once leadership is back on the preferred replicas (the controller moves it back).
    wait_in_sync(&cluster, PARTITIONS, true, Duration::from_secs(120));

    // Sessions are back: idle fetches are incremental and list (almost) nothing again.
    std::thread::sleep(Duration::from_secs(2));
    let before = Fetches::read(&cluster, &metrics);
    std::thread::sleep(Duration::from_secs(4));
    let after = Fetches::read(&cluster, &metrics);
    let (fetches, partitions, _, _, incremental) = before.per_fetch(&after);
    eprintln!(
        "after the kills: {fetches} fetches, {partitions:.2} partitions per fetch, {:.0}% incremental",
        incremental * 100.0
    );
    assert!(incremental > 0.9, "{incremental}");
    assert!(partitions < 1.0, "{partitions}");

    // No acknowledged record lost.
    let (ok, out, err) = kcat(
        &cluster.bootstrap(),
        &["-C", "-t", TOPIC, "-o", "beginning", "-e", "-q"],
        None,
    );
    assert!(ok, "{err}");
    let read: BTreeSet<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_owned)
        .collect();
    let lost: Vec<&String> = acked.difference(&read).collect();
    eprintln!("{} acknowledged, {} read", acked.len(), read.len());
    assert!(acked.len() >= 500, "{}", acked.len());
    assert!(
        lost.is_empty(),
        "{} lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// Bytes per replica fetch and broker CPU with 1,000 idle partitions, with and without sessions.
#[test]
fn a_thousand_idle_partitions_cost_less_with_sessions() {
    const PARTITIONS: i32 = 1000;
    const WINDOW: Duration = Duration::from_secs(10);
    let mut request_bytes_by_mode = Vec::new();
    for sessions in [false, true] {
        let dir = TempDir::new("replica-fetch-idle");
        let (cluster, metrics) = start("rfs-idle", &dir, sessions);
        create_topic(&cluster, PARTITIONS);
        wait_in_sync(&cluster, PARTITIONS, true, Duration::from_secs(300));
        wait_fetching(&cluster, &metrics, sessions, PARTITIONS);
        std::thread::sleep(Duration::from_secs(3));
        let before = Fetches::read(&cluster, &metrics);
        let cpu_before: Vec<f64> = (0..3).map(|i| cpu_seconds(&cluster, i)).collect();
        std::thread::sleep(WINDOW);
        let after = Fetches::read(&cluster, &metrics);
        let cpu: Vec<f64> = (0..3)
            .map(|i| (cpu_seconds(&cluster, i) - cpu_before[i]) / WINDOW.as_secs_f64() * 100.0)
            .collect();
        let (fetches, partitions, request_bytes, response_bytes, incremental) =
            before.per_fetch(&after);
        eprintln!(
            "{PARTITIONS} idle partitions, sessions {sessions}: {:.1} fetches/s, \
             {partitions:.1} partitions, {request_bytes:.0} request bytes, \
             {response_bytes:.0} response bytes per fetch, {:.0}% incremental; \
             broker CPU {:.1}% {:.1}% {:.1}% (of one core)",
            fetches / WINDOW.as_secs_f64(),
            incremental * 100.0,
            cpu[0],
            cpu[1],
            cpu[2]
        );
        let logged = |what: &str| -> usize {
            cluster
                .procs
                .iter()
                .flatten()
                .map(|p| p.lines().iter().filter(|l| l.contains(what)).count())
                .sum()
        };
        eprintln!(
            "  sessions opened {}, refused {}",
            logged("replica fetch session opened"),
            logged("replica fetch session refused")
        );
        request_bytes_by_mode.push(request_bytes + response_bytes);
        drop(cluster);
    }
    let (full, incremental) = (request_bytes_by_mode[0], request_bytes_by_mode[1]);
    assert!(
        incremental * 20.0 < full,
        "{incremental} bytes per fetch with sessions, {full} without"
    );
}
