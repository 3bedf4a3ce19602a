//! Log compaction in a three-broker `hdi-broker` cluster of real processes: a compacted topic
//! with replication factor 3, tiny segments and an eager cleaner (`--log-cleaner-backoff 200ms`,
//! `min.cleanable.dirty.ratio=0.01`), keyed records and tombstones produced with acks=all.
//!
//! Every replica cleans its own copy (leader and followers alike, as in Kafka), so the test reads
//! each broker's segment files itself (whole batches only; a file swapped away mid-read is read
//! again) and checks, in order:
//! 1. every replica has cleaned: one record per key, its latest value, tombstones still there
//!    (inside `delete.retention.ms`), and the same surviving offsets on all three; a consumer of
//!    the leader reads exactly that;
//! 2. the leader is SIGKILLed; keys are overwritten twice on the new leader and cleaned, so the
//!    offsets the killed broker would fetch next are gaps on the new leader; a consumer of the new
//!    leader reads exactly the latest value of every key, tombstones included;
//! 3. the killed broker restarts and, as a follower, fetches across those gaps: its log ends
//!    with exactly the leader's records;
//! 4. past `delete.retention.ms` (and one more clean), tombstoned keys are gone from all three
//!    replicas and from the consumer's view, and the three replicas hold the same offsets.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_e2e::{BrokerCluster, TempDir};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "compacted";
const KEYS: usize = 200;
/// How long a tombstone stays after the cleaner first passed over it.
const DELETE_RETENTION: Duration = Duration::from_secs(30);

/// One record as stored: offset, key, value (`None`: a tombstone).
type Stored = (i64, String, Option<String>);

#[test]
fn compacted_topic_survives_a_leader_kill_with_replicas_agreeing() {
    let started = Instant::now();
    let dir = TempDir::new("compaction-cluster");
    let mut cluster = BrokerCluster::start_with("compact", dir.path(), |_, _| {
        vec!["--log-cleaner-backoff".into(), "200ms".into()]
    });
    create_topic(&cluster);
    let topic_dir = topic_dir_name(&cluster);
    let replica_dir = |i: usize| {
        dir.path()
            .join(format!("data-{}/replicas/{topic_dir}", i + 1))
    };
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();

    // Three rounds over every key: v1, v2, then a tombstone for every fifth key and v3 for
    // the next; then unique padding keys, so every round sits in closed (cleanable) segments.
    for round in 1..=2 {
        produce(
            &cluster,
            &mut model,
            (0..KEYS).map(|k| key_value(k, round)).collect(),
        );
    }
    produce(
        &cluster,
        &mut model,
        (0..KEYS)
            .filter(|k| k % 5 < 2)
            .map(|k| {
                if k % 5 == 0 {
                    (key(k), None)
                } else {
                    key_value(k, 3)
                }
            })
            .collect(),
    );
    // No cleaner can have passed over a tombstone before this: a tombstone seen before
    // `tombstones_written + DELETE_RETENTION` must still be there.
    let tombstones_written = Instant::now();
    produce(&cluster, &mut model, padding("a"));
    let deleted: Vec<String> = (0..KEYS).filter(|k| k % 5 == 0).map(key).collect();

    // 1. All three replicas cleaned: exactly one record per key, its latest; the same offsets.
    let logs = wait_until(
        "all three replicas cleaned",
        Duration::from_secs(90),
        || {
            let logs: Vec<Vec<Stored>> = (0..3).map(|i| read_log(&replica_dir(i))).collect();
            logs.iter()
                .all(|log| compacted_exactly(log, &model))
                .then_some(logs)
        },
    );
    let first_cleaned = Instant::now();
    assert_same_records(&logs, "after the first cleans");
    assert!(
        deleted.iter().all(|k| logs[0]
            .iter()
            .any(|(_, key, value)| key == k && value.is_none())),
        "tombstones must stay for delete.retention.ms"
    );
    let leader = wait_until("a leader", Duration::from_secs(30), || {
        cluster.leader(TOPIC, 0)
    });
    let consumed = consume(&cluster.address(leader));
    assert_eq!(consumed, logs[leader], "the leader's consumer view");
    let killed_end = logs[leader].last().unwrap().0 + 1;
    eprintln!(
        "first cleans on all three at {:.1?}; {} records survive of {killed_end} offsets",
        started.elapsed(),
        logs[leader].len()
    );

    // 2. SIGKILL the leader; overwrite keys twice on the new leader, so that the offsets from
    //    the killed broker's log end on are cleaned away there.
    cluster.kill(leader);
    let new_leader = wait_until("a new leader", Duration::from_secs(60), || {
        cluster.leader(TOPIC, 0).filter(|l| *l != leader)
    });
    eprintln!(
        "broker {} killed, broker {} leads at {:.1?}",
        leader + 1,
        new_leader + 1,
        started.elapsed()
    );
    for round in 4..=5 {
        produce(
            &cluster,
            &mut model,
            (0..KEYS)
                .filter(|k| k % 5 == 2)
                .map(|k| key_value(k, round))
                .collect(),
        );
    }
    produce(&cluster, &mut model, padding("b"));
    let live: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let logs = wait_until("both survivors cleaned", Duration::from_secs(90), || {
        let logs: Vec<Vec<Stored>> = live.iter().map(|i| read_log(&replica_dir(*i))).collect();
        logs.iter()
            .all(|log| compacted_exactly(log, &model))
            .then_some(logs)
    });
    assert_same_records(&logs, "survivors after the kill");
    let consumed = consume(&cluster.address(new_leader));
    assert_eq!(consumed, logs[0], "the new leader's consumer view");
    assert!(
        !consumed.iter().any(|(offset, _, _)| *offset == killed_end),
        "offset {killed_end} (the killed broker's next fetch) must be a gap on the new leader"
    );
    assert!(
        tombstones_written.elapsed() < DELETE_RETENTION,
        "too slow to see tombstones inside delete.retention.ms ({:.1?})",
        tombstones_written.elapsed()
    );
    assert!(
        deleted.iter().all(|k| consumed
            .iter()
            .any(|(_, key, value)| key == k && value.is_none())),
        "the new leader's consumer sees the tombstones inside delete.retention.ms"
    );

    // 3. The killed broker comes back as a follower and fetches from its log end: a gap.
    cluster.restart(leader);
    let leader_log = consume(&cluster.address(new_leader));
    wait_until(
        "the restarted follower to fetch across the gaps",
        Duration::from_secs(60),
        || {
            let log = read_log(&replica_dir(leader));
            let tail: Vec<&Stored> = log.iter().filter(|r| r.0 >= killed_end).collect();
            let expected: Vec<&Stored> = leader_log.iter().filter(|r| r.0 >= killed_end).collect();
            (tail == expected).then_some(())
        },
    );
    eprintln!(
        "broker {} caught up across the gaps at {:.1?}",
        leader + 1,
        started.elapsed()
    );

    // 4. Past delete.retention.ms, one more clean (more padding makes the logs dirty): the
    //    tombstones are gone on all three replicas, which hold the same offsets.
    let wait = (DELETE_RETENTION + Duration::from_secs(1)).saturating_sub(first_cleaned.elapsed());
    std::thread::sleep(wait);
    for deleted_key in &deleted {
        model.remove(deleted_key);
    }
    produce(&cluster, &mut model, padding("c"));
    let logs = wait_until(
        "tombstones removed on all three replicas",
        Duration::from_secs(90),
        || {
            let logs: Vec<Vec<Stored>> = (0..3).map(|i| read_log(&replica_dir(i))).collect();
            logs.iter()
                .all(|log| compacted_exactly(log, &model))
                .then_some(logs)
        },
    );
    assert_same_records(&logs, "after the tombstones expired");
    let current = wait_until("a leader", Duration::from_secs(30), || {
        cluster.leader(TOPIC, 0)
    });
    let consumed = consume(&cluster.address(current));
    assert_eq!(consumed, logs[current], "the consumer view at the end");
    assert!(
        consumed.iter().all(|(_, key, _)| !deleted.contains(key)),
        "tombstoned keys are gone"
    );
    eprintln!(
        "tombstones gone on all three at {:.1?}; {} records survive",
        started.elapsed(),
        consumed.len()
    );
}

/// Produces `records` with acks=all in batches of ten and records them in `model`.
fn produce(
    cluster: &BrokerCluster,
    model: &mut BTreeMap<String, Option<String>>,
    records: Vec<(String, Option<String>)>,
) {
    for chunk in records.chunks(10) {
        produce_acks_all(cluster, chunk);
        for (key, value) in chunk {
            model.insert(key.clone(), value.clone());
        }
    }
}

fn key(k: usize) -> String {
    format!("k-{k:04}")
}

fn key_value(k: usize, round: usize) -> (String, Option<String>) {
    (key(k), Some(format!("v{round}-{k}-{}", "x".repeat(40))))
}

/// 80 records under unique keys (`pad-<tag>-<n>`), about six segments' worth.
fn padding(tag: &str) -> Vec<(String, Option<String>)> {
    (0..80)
        .map(|n| (format!("pad-{tag}-{n:03}"), Some("p".repeat(200))))
        .collect()
}

/// Whether `log` holds exactly one record per key of `model`, its latest value, and nothing else.
fn compacted_exactly(log: &[Stored], model: &BTreeMap<String, Option<String>>) -> bool {
    let mut seen = BTreeMap::new();
    for (_, key, value) in log {
        if seen.insert(key.clone(), value.clone()).is_some() {
            return false;
        }
    }
    seen == *model
}

/// The replicas' surviving records are identical, up to the shortest log's end.
fn assert_same_records(logs: &[Vec<Stored>], when: &str) {
    let end = logs
        .iter()
        .map(|log| log.last().map_or(0, |r| r.0))
        .min()
        .unwrap();
    let upto: Vec<Vec<&Stored>> = logs
        .iter()
        .map(|log| log.iter().filter(|r| r.0 <= end).collect())
        .collect();
    for other in &upto[1..] {
        assert_eq!(&upto[0], other, "replicas differ {when}");
    }
}

fn connect(address: &str) -> Connection {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Connection::new(stream, "hdi-e2e-compaction", 1 << 26)
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn create_topic(cluster: &BrokerCluster) {
    let config = |name: &'static str, value: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(Some(StrBytes::from_string(value.to_owned())))
    };
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name())
                .with_num_partitions(1)
                .with_replication_factor(3)
                .with_configs(vec![
                    config("cleanup.policy", "compact"),
                    config("segment.bytes", "4096"),
                    config("min.cleanable.dirty.ratio", "0.01"),
                    config("min.compaction.lag.ms", "0"),
                    config(
                        "delete.retention.ms",
                        &DELETE_RETENTION.as_millis().to_string(),
                    ),
                ]),
        ])
        .with_timeout_ms(10_000);
    let response = connect(&cluster.address(0)).call(&request, 5).unwrap();
    for topic in &response.topics {
        assert_eq!(topic.error_code, 0, "{topic:?}");
    }
}

/// The name of the topic's partition-0 directory under `data-N/replicas/` (`<topic id>-0`).
fn topic_dir_name(cluster: &BrokerCluster) -> String {
    wait_until("the topic's id", Duration::from_secs(30), || {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name())),
        ]));
        let metadata = connect(&cluster.address(0)).call(&request, 12).ok()?;
        let topic = metadata.topics.first()?;
        (topic.error_code == 0 && !topic.topic_id.is_nil())
            .then(|| format!("{}-0", topic.topic_id.simple()))
    })
}

/// Produces `records` in one batch with acks=all to the current leader, retrying until it is
/// acknowledged (a leader change answers NOT_LEADER_OR_FOLLOWER or drops the connection).
fn produce_acks_all(cluster: &BrokerCluster, records: &[(String, Option<String>)]) {
    let pairs: Vec<hdi_log::records::KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.as_deref().map(str::as_bytes)))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch = Bytes::from(hdi_log::records::build_keyed_batch(0, now, &pairs));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    wait_until("an acks=all produce", Duration::from_secs(60), || {
        let leader = cluster.leader(TOPIC, 0)?;
        let stream = TcpStream::connect(cluster.address(leader)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .ok()?;
        let mut connection = Connection::new(stream, "hdi-e2e-compaction", 1 << 26);
        let response = connection.call(&request, 7).ok()?;
        let code = response
            .responses
            .first()?
            .partition_responses
            .first()?
            .error_code;
        (code == 0).then_some(())
    });
}

/// Every record of partition 0 read by a consumer of the broker at `address`, from offset 0 to
/// its high watermark (a compacted log's gaps skipped as Kafka's consumers do).
fn consume(address: &str) -> Vec<Stored> {
    wait_until("a consumer read", Duration::from_secs(30), || {
        let mut connection = connect(address);
        let mut out = Vec::new();
        let mut offset = 0i64;
        loop {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(8 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic_name())
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]);
            let response = connection.call(&request, 12).ok()?;
            let partition = response.responses.first()?.partitions.first()?;
            if partition.error_code != 0 {
                return None;
            }
            let bytes = partition.records.clone().unwrap_or_default();
            let (records, next) = parse_batches(&bytes, offset);
            out.extend(records);
            if next >= partition.high_watermark {
                return Some(out);
            }
            // An answer with no whole batch below the high watermark would loop forever.
            if next == offset {
                return None;
            }
            offset = next;
        }
    })
}

/// The records of a replica's segment files (in offset order), read from its directory: whole
/// batches only. A segment swapped away while it was read makes the whole read start again.
fn read_log(dir: &Path) -> Vec<Stored> {
    loop {
        let Ok(entries) = std::fs::read_dir(dir) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let mut segments: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let mut out = Vec::new();
        let mut complete = true;
        for segment in &segments {
            let Ok(bytes) = std::fs::read(segment) else {
                complete = false;
                break;
            };
            out.extend(parse_batches(&bytes, 0).0);
        }
        if complete {
            return out;
        }
    }
}

/// The records of the whole batches in `bytes` at offsets from `from` on, and the offset after
/// the last whole batch (`from` if none).
fn parse_batches(bytes: &[u8], from: i64) -> (Vec<Stored>, i64) {
    let mut out = Vec::new();
    let mut next = from;
    let mut at = 0usize;
    while let Ok(header) = hdi_log::batch::parse_header(&bytes[at..], 1 << 24) {
        let Some(batch) = bytes.get(at..at + header.size()) else {
            break;
        };
        if !header.is_control() {
            let body = hdi_log::records::records_bytes(batch, &header, &|codec, _| {
                Err(format!("codec {codec}"))
            })
            .unwrap();
            for record in hdi_log::records::parse_records(&body, &header).unwrap() {
                if record.offset >= from {
                    out.push((
                        record.offset,
                        String::from_utf8_lossy(record.key.unwrap_or_default()).into_owned(),
                        record
                            .value
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    ));
                }
            }
        }
        next = next.max(header.last_offset() + 1);
        at += header.size();
    }
    (out, next)
}

/// Retries `check` every 200 ms until it answers, failing the test after `timeout`.
fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
