//! A three-broker `hdi-broker` cluster of real processes on loopback whose brokers can be
//! SIGKILLed and restarted on their addresses, and a userspace TCP proxy whose connections can
//! be cut (a network fault between two processes, as the broker fault suite's proxy does).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::{Proc, bin, kcat};

/// Three brokers (node ids 1..=3, all voters), each with a Kafka listener and a quorum listener.
pub struct BrokerCluster {
    name: &'static str,
    dir: PathBuf,
    /// The Kafka listener ports, by broker index (node id - 1).
    pub kafka: Vec<u16>,
    quorum: Vec<u16>,
    extra: Vec<Vec<String>>,
    /// The running processes, by broker index (`None`: killed).
    pub procs: Vec<Option<Proc>>,
}

impl BrokerCluster {
    /// Starts the cluster in `dir` and waits until Metadata lists three brokers.
    pub fn start(name: &'static str, dir: &Path) -> BrokerCluster {
        BrokerCluster::start_with(name, dir, |_, _| Vec::new())
    }

    /// [`BrokerCluster::start`] with extra arguments per broker, from its index (0..3) and its
    /// Kafka port; arguments with `--listener` replace the default PLAINTEXT listener on that
    /// port.
    pub fn start_with(
        name: &'static str,
        dir: &Path,
        extra: impl Fn(usize, u16) -> Vec<String>,
    ) -> BrokerCluster {
        let taken = crate::ports::take(6).unwrap();
        let mut cluster = BrokerCluster {
            name,
            dir: dir.to_owned(),
            kafka: taken[..3].to_vec(),
            quorum: taken[3..].to_vec(),
            extra: (0..3).map(|i| extra(i, taken[i])).collect(),
            procs: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for proc in cluster.procs.iter_mut().flatten() {
            proc.wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, out, _) = kcat(&cluster.bootstrap(), &["-L"], None);
            if ok && String::from_utf8_lossy(&out).contains(" 3 brokers:") {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: three brokers never listed"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Starts broker `i` (again) on its addresses and data directory.
    pub fn spawn(&mut self, i: usize) {
        let voters: Vec<String> = (0..3)
            .map(|j| format!("{}@127.0.0.1:{}", j + 1, self.quorum[j]))
            .collect();
        let mut command = std::process::Command::new(bin("hdi-broker"));
        command
            .args(["--node-id", &(i + 1).to_string()])
            .args(["--quorum-listen", &format!("127.0.0.1:{}", self.quorum[i])])
            .args(["--quorum", &voters.join(",")])
            .args(["--default-partitions", "3"])
            .arg("--data-dir")
            .arg(self.dir.join(format!("data-{}", i + 1)))
            .env("RUST_LOG", "info");
        if !self.extra[i].iter().any(|a| a == "--listener") {
            command.args(["--listen", &format!("127.0.0.1:{}", self.kafka[i])]);
        }
        command.args(&self.extra[i]);
        self.procs[i] = Some(Proc::spawn(
            &format!("{}-broker-{}", self.name, i + 1),
            &mut command,
        ));
    }

    /// Restarts broker `i` and waits for its ready line.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        if let Some(proc) = self.procs[i].as_mut() {
            proc.wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
                .unwrap();
        }
    }

    /// The Kafka listeners, `host:port,…`.
    pub fn bootstrap(&self) -> String {
        self.kafka
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A live broker's Metadata for every topic, asked of any broker that answers.
    fn metadata(&self) -> Option<kafka_protocol::messages::MetadataResponse> {
        for (i, port) in self.kafka.iter().enumerate() {
            if self.procs[i].is_none() {
                continue;
            }
            let Ok(stream) = TcpStream::connect(("127.0.0.1", *port)) else {
                continue;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut connection = Connection::new(stream, "hdi-e2e-cluster", 1 << 26);
            if let Ok(metadata) = connection.call(&MetadataRequest::default().with_topics(None), 12)
            {
                return Some(metadata);
            }
        }
        None
    }

    /// The broker (index) leading `topic`-`partition`, asked of any live broker.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<usize> {
        let metadata = self.metadata()?;
        let leader = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .map(|p| p.leader_id.0)?;
        usize::try_from(leader - 1).ok().filter(|l| *l < 3)
    }

    /// The broker (index) the live brokers name controller.
    pub fn controller(&self) -> Option<usize> {
        let metadata = self.metadata()?;
        usize::try_from(metadata.controller_id.0 - 1)
            .ok()
            .filter(|c| *c < 3)
    }

    /// SIGKILLs broker `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut proc) = self.procs[i].take() {
            proc.kill9();
        }
    }

    /// The address of broker `i`'s Kafka listener.
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.kafka[i])
    }
}

/// The stored batches of `topic`-`partition` from the one holding offset `from` up to its
/// high watermark, read from the broker at `address` as a consumer, and that high watermark
/// (`None` while the partition answers an error or the broker does not answer).
pub fn partition_bytes_from(
    address: &str,
    topic: &str,
    partition: i32,
    from: i64,
) -> Option<(Vec<u8>, i64)> {
    let stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut connection = Connection::new(stream, "hdi-e2e-bytes", 1 << 26);
    let mut bytes = Vec::new();
    let mut offset = from;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(64 << 20)
            .with_isolation_level(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(8 << 20),
                    ]),
            ]);
        let response = connection.call(&request, 11).ok()?;
        let answer = response.responses.first()?.partitions.first()?;
        if answer.error_code != 0 {
            return None;
        }
        let records = answer.records.clone().unwrap_or_default();
        // Whole batches only; the next offset follows the last one.
        let mut at = 0;
        while at + 61 <= records.len() {
            let base = i64::from_be_bytes(records[at..at + 8].try_into().ok()?);
            let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().ok()?) as usize;
            if at + 12 + length > records.len() {
                break;
            }
            let last_delta = i64::from(i32::from_be_bytes(
                records[at + 23..at + 27].try_into().ok()?,
            ));
            // The first batch may start before `from` when the log starts inside it.
            assert!(
                base == offset || (at == 0 && offset == from && base < offset),
                "{topic}-{partition}: asked offset {offset}, got a batch at {base}"
            );
            offset = base + last_delta + 1;
            at += 12 + length;
        }
        bytes.extend_from_slice(&records[..at]);
        if at == 0 || offset >= answer.high_watermark {
            return Some((bytes, answer.high_watermark));
        }
    }
}

/// A TCP proxy from a loopback port to one address, whose connections can be cut.
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on `port` (loopback) and forwards every connection to `target`.
    pub fn start(port: u16, target: String) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, open2) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                if let Ok(mut open) = open2.lock() {
                    open.retain(|s| s.peer_addr().is_ok());
                    open.extend([c2.try_clone(), s2.try_clone()].into_iter().flatten());
                }
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Proxy { port, cut, open }
    }

    /// Closes every connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
