//! Geo-replication under a rotation of faults: two three-broker `hdi-broker` clusters (real
//! processes on loopback), a cluster link on B mirroring three of A's topics (one of six
//! partitions; every codec, keys and headers) under continuous produce, while faults rotate:
//! SIGKILL of A's partition leaders, of B's mirror leaders, of A's and of B's controllers,
//! pause/resume of the link, and cuts of the link's connections (A's brokers serve the link on a
//! SASL_PLAINTEXT listener advertised through a userspace proxy, so a cut leaves A's producers
//! alone). A checker reads both sides throughout: every mirror partition is always a
//! byte-identical prefix of its source, and identical once produce stops.
//!
//! `HDI_GEOREP_FAULTS` sets the number of faults (12 in `cargo xtask test`; `cargo xtask chaos
//! georep` runs 100).
#![allow(clippy::unwrap_used, reason = "test")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdi_e2e::{BrokerCluster, Proxy, kcat};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

const TOPICS: &[(&str, i32)] = &[("orders", 6), ("payments", 3), ("alerts", 3)];
const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];
const PASSWORD: &str = "mirror-password-for-chaos";

fn connect(address: &str) -> Option<Connection> {
    let stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    Some(Connection::new(stream, "hdi-georep-chaos", 1 << 26))
}

/// A partition's bytes from `from`, read from its leader in `cluster`.
fn leader_bytes(
    cluster: &BrokerCluster,
    topic: &str,
    partition: i32,
    from: i64,
) -> Option<(Vec<u8>, i64)> {
    let leader = cluster.leader(topic, partition)?;
    cluster.procs[leader].as_ref()?;
    hdi_e2e::partition_bytes_from(&cluster.address(leader), topic, partition, from)
}

/// Sets cluster-wide configs on `cluster`, asking each live broker until one accepts.
fn cluster_configs(cluster: &BrokerCluster, changes: &[(&str, &str)]) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(
                changes
                    .iter()
                    .map(|(key, value)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string((*key).to_owned()))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_string((*value).to_owned())))
                    })
                    .collect(),
            ),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for i in 0..3 {
            if cluster.procs[i].is_none() {
                continue;
            }
            if let Some(mut connection) = connect(&cluster.address(i))
                && let Ok(response) = connection.call(&request, 0)
                && response.responses[0].error_code == 0
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "cannot set {changes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the checker has verified: per partition, the offset up to which the mirror equals its
/// source.
struct Checker {
    verified: BTreeMap<(&'static str, i32), i64>,
    checks: u64,
}

impl Checker {
    /// Reads what each mirror partition holds past what was verified and checks that it is the
    /// source's bytes at the same offsets. Returns whether every partition could be read.
    fn check(&mut self, a: &BrokerCluster, b: &BrokerCluster) -> bool {
        let mut all = true;
        for (topic, partitions) in TOPICS {
            for p in 0..*partitions {
                let from = self.verified.get(&(*topic, p)).copied().unwrap_or(0);
                let Some((mirror, mirror_end)) = leader_bytes(b, topic, p, from) else {
                    all = false;
                    continue;
                };
                let Some((source, _)) = leader_bytes(a, topic, p, from) else {
                    all = false;
                    continue;
                };
                assert!(
                    source.starts_with(&mirror),
                    "{topic}-{p}: from offset {from}, the mirror's {} bytes are not a prefix of the source's {} bytes",
                    mirror.len(),
                    source.len()
                );
                self.verified.insert((topic, p), mirror_end);
                self.checks += 1;
            }
        }
        all
    }

    /// Whether every mirror partition holds exactly its source (same bytes, same end).
    fn identical(&mut self, a: &BrokerCluster, b: &BrokerCluster) -> bool {
        if !self.check(a, b) {
            return false;
        }
        TOPICS.iter().all(|(topic, partitions)| {
            (0..*partitions).all(|p| {
                let from = self.verified[&(*topic, p)];
                leader_bytes(a, topic, p, from).is_some_and(|(rest, _)| rest.is_empty())
            })
        })
    }
}

#[test]
fn mirrors_stay_byte_identical_prefixes_through_a_rotation_of_faults() {
    use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
    use std::os::unix::fs::PermissionsExt as _;
    let faults: usize = std::env::var("HDI_GEOREP_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    // The link's user on A.
    let users = dir.path().join("users");
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha512, PASSWORD, 4096).unwrap();
    std::fs::write(&users, credential.to_line("mirror", ScramMechanism::Sha512)).unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A serves the link on a second listener, advertised through a proxy per broker.
    let link_ports = hdi_e2e::ports::take(6).unwrap();
    let a = {
        let users = users.clone();
        let link_ports = link_ports.clone();
        BrokerCluster::start_with("a", &dir.path().join("a"), move |i, kafka| {
            vec![
                "--listener".into(),
                format!("PLAINTEXT://127.0.0.1:{kafka}"),
                "--listener".into(),
                format!(
                    "SASL_PLAINTEXT://127.0.0.1:{}/127.0.0.1:{}",
                    link_ports[i],
                    link_ports[3 + i]
                ),
                "--sasl-users-file".into(),
                users.display().to_string(),
            ]
        })
    };
    let proxies: Vec<Proxy> = (0..3)
        .map(|i| Proxy::start(link_ports[3 + i], format!("127.0.0.1:{}", link_ports[i])))
        .collect();
    let mut a = a;
    // `HDI_GEOREP_SEEDED_BUG=1`: B's brokers rewrite one byte of the first batch they mirror of
    // each partition 0 (a seeded bug this checker must catch; `cargo xtask chaos georep` runs
    // it and expects this test to fail).
    let seeded = std::env::var("HDI_GEOREP_SEEDED_BUG").is_ok_and(|v| v == "1");
    let mut b = BrokerCluster::start_with("b", &dir.path().join("b"), |_, _| {
        if seeded {
            vec!["--testing-mirror-rewrites-a-batch".into()]
        } else {
            Vec::new()
        }
    });
    {
        use kafka_protocol::messages::CreateTopicsRequest;
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        let request = CreateTopicsRequest::default()
            .with_topics(
                TOPICS
                    .iter()
                    .map(|(topic, partitions)| {
                        CreatableTopic::default()
                            .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                            .with_num_partitions(*partitions)
                            .with_replication_factor(3)
                    })
                    .collect(),
            )
            .with_timeout_ms(10_000);
        let response = connect(&a.address(0)).unwrap().call(&request, 5).unwrap();
        for topic in &response.topics {
            assert_eq!(topic.error_code, 0, "{topic:?}");
        }
    }
    let proxied: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", proxies[i].port))
        .collect();
    let topics: Vec<&str> = TOPICS.iter().map(|(t, _)| *t).collect();
    cluster_configs(
        &b,
        &[
            ("hdi.link.dr.bootstrap.servers", &proxied.join(",")),
            ("hdi.link.dr.topics", &topics.join(",")),
            ("hdi.link.dr.security.protocol", "SASL_PLAINTEXT"),
            ("hdi.link.dr.sasl.mechanism", "SCRAM-SHA-512"),
            ("hdi.link.dr.sasl.username", "mirror"),
            ("hdi.link.dr.sasl.password", PASSWORD),
        ],
    );

    // Continuous produce to A: every codec in turn, keys and headers.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (stop, sent, bootstrap) = (Arc::clone(&stop), Arc::clone(&sent), a.bootstrap());
        std::thread::spawn(move || {
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let topic = TOPICS[round % TOPICS.len()].0;
                let codec = CODECS[round % CODECS.len()];
                let input: String = (0..100)
                    .map(|i| format!("key-{}:{{\"round\":{round},\"i\":{i}}}\n", i % 13))
                    .collect();
                let (ok, _, _) = kcat(
                    &bootstrap,
                    &[
                        "-P",
                        "-t",
                        topic,
                        "-K",
                        ":",
                        "-z",
                        codec,
                        "-H",
                        &format!("round={round}"),
                        "-X",
                        "acks=all",
                        "-X",
                        "linger.ms=5",
                        "-X",
                        "message.timeout.ms=5000",
                    ],
                    Some(input.as_bytes()),
                );
                if ok {
                    sent.fetch_add(100, Ordering::Relaxed);
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut checker = Checker {
        verified: BTreeMap::new(),
        checks: 0,
    };
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checker.check(&a, &b) {
        assert!(
            Instant::now() < deadline,
            "the mirror topics never answered"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for fault in 0..faults {
        let (topic, partitions) = TOPICS[fault % TOPICS.len()];
        let partition = i32::try_from(fault).unwrap() % partitions;
        let kind = match fault % 6 {
            0 => "kill A's partition leader",
            1 => "kill B's mirror leader",
            2 => "kill A's controller",
            3 => "kill B's controller",
            4 => "pause and resume the link",
            _ => "cut the link's connections",
        };
        eprintln!("fault {fault}: {kind} ({topic}-{partition})");
        match fault % 6 {
            0..=3 => {
                let on_a = fault % 2 == 0;
                let cluster = if on_a { &mut a } else { &mut b };
                let victim = if fault % 6 < 2 {
                    cluster.leader(topic, partition)
                } else {
                    cluster.controller()
                };
                let Some(victim) = victim else {
                    continue;
                };
                cluster.kill(victim);
                std::thread::sleep(Duration::from_millis(1500));
                checker.check(&a, &b);
                let cluster = if on_a { &mut a } else { &mut b };
                cluster.restart(victim);
            }
            4 => {
                cluster_configs(&b, &[("hdi.link.dr.state", "paused")]);
                std::thread::sleep(Duration::from_millis(1500));
                checker.check(&a, &b);
                cluster_configs(&b, &[("hdi.link.dr.state", "mirroring")]);
            }
            _ => {
                for proxy in &proxies {
                    proxy.cut();
                }
                std::thread::sleep(Duration::from_secs(2));
                checker.check(&a, &b);
                for proxy in &proxies {
                    proxy.heal();
                }
            }
        }
        *tally.entry(kind).or_default() += 1;
        std::thread::sleep(Duration::from_millis(1000));
        checker.check(&a, &b);
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    // Once produce stops, every mirror partition catches up: byte-identical up to the same end.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !checker.identical(&a, &b) {
        assert!(
            Instant::now() < deadline,
            "the mirrors did not catch up after the faults"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mirrored: i64 = checker.verified.values().sum();
    let summary = serde_json::json!({
        "faults": tally,
        "prefix_checks": checker.checks,
        "records_acknowledged_by_a": sent.load(Ordering::Relaxed),
        "records_mirrored_identically": mirrored,
        "seconds": started.elapsed().as_secs(),
    });
    eprintln!("georep chaos: {summary}");
    assert_eq!(tally.values().sum::<usize>(), faults, "{summary}");
    assert!(
        mirrored >= i64::try_from(sent.load(Ordering::Relaxed)).unwrap(),
        "{summary}"
    );
}
