//! Apache Kafka itself, the peer the broker benchmarks measure hdi-broker against: its jars from
//! Maven Central (`bench/kafka-server/pom.xml`: the KRaft broker and controller, Kafka's tools,
//! MirrorMaker 2, a log4j2 binding) copied once into `target/bench-tools/kafka-server/lib`;
//! KRaft clusters of one or three combined broker+controller nodes in fresh directories on
//! loopback; and Kafka's own load generators (`ProducerPerformance`, `ConsumerPerformance`) run
//! with hdi-kafka-perf's arguments and read back as its JSON fields, so one comparison can be
//! driven by either client.
//!
//! The nodes run as `bin/kafka-server-start.sh` runs them: `-Xms1g -Xmx1g` and Kafka's
//! `KAFKA_JVM_PERFORMANCE_OPTS` (G1, 20 ms pause target), with Kafka's defaults for everything
//! the benchmarks do not name. Durability is Kafka's default: no fsync per message
//! (`log.flush.interval.messages` unbounded), which is what hdi's bench brokers run with too
//! (`--flush-messages 0`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::util::wait_for;

/// Where Kafka's jars are: copied from Maven Central on first use.
pub fn jars() -> anyhow::Result<PathBuf> {
    crate::tools::maven_jars(
        &crate::util::repo_root().join("bench/kafka-server/pom.xml"),
        &crate::util::target_dir()?.join("bench-tools/kafka-server"),
        "Apache Kafka, its tools and MirrorMaker 2",
    )
}

const LOG4J2: &str = "rootLogger.level=INFO\n\
rootLogger.appenderRef.stdout.ref=STDOUT\n\
appender.stdout.type=Console\n\
appender.stdout.name=STDOUT\n\
appender.stdout.layout.type=PatternLayout\n\
appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n";

/// What the tools log: warnings and worse, to stderr, so their figures on stdout stay readable.
const LOG4J2_TOOLS: &str = "rootLogger.level=WARN\n\
rootLogger.appenderRef.stderr.ref=STDERR\n\
appender.stderr.type=Console\n\
appender.stderr.name=STDERR\n\
appender.stderr.target=SYSTEM_ERR\n\
appender.stderr.layout.type=PatternLayout\n\
appender.stderr.layout.pattern=[%d] %p %m (%c)%n\n";

/// `java -cp <lib>/*` in `dir`, logging through `dir/log4j2.properties` (written if missing:
/// INFO to stdout, as a server logs).
pub fn java(lib: &Path, dir: &Path) -> anyhow::Result<Command> {
    java_logging(lib, dir, "log4j2.properties", LOG4J2)
}

fn java_logging(lib: &Path, dir: &Path, file: &str, text: &str) -> anyhow::Result<Command> {
    let config = dir.join(file);
    if !config.exists() {
        std::fs::write(&config, text)?;
    }
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg(format!("-Dlog4j2.configurationFile={}", config.display()))
        .current_dir(dir);
    Ok(command)
}

/// What `bin/kafka-server-start.sh` gives the broker's JVM (`KAFKA_HEAP_OPTS` and
/// `KAFKA_JVM_PERFORMANCE_OPTS` of Kafka 4.x).
const SERVER_JVM: &[&str] = &[
    "-Xms1g",
    "-Xmx1g",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];

/// One node of a cluster: its process (None once killed), client port and directory.
pub struct Node {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, at once (a failover's fault).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A KRaft cluster whose nodes are all broker and controller; stopped (SIGTERM, then SIGKILL
/// after 30 s) when dropped. Its directory is the caller's.
pub struct Cluster {
    pub nodes: Vec<Node>,
    lib: PathBuf,
}

/// Starts the node whose `server.properties` is in `dir`, its output appended to `kafka.log`.
fn spawn(lib: &Path, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("kafka.log"))?;
    java(lib, dir)?
        .args(SERVER_JVM)
        .args(["kafka.Kafka", "server.properties"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("java kafka.Kafka")
}

impl Cluster {
    /// Formats and starts `count` nodes (1 or 3) under `dir/node-<id>` and waits until each
    /// accepts connections. `extra` is appended to every node's `server.properties`.
    pub fn start(
        lib: &Path,
        dir: &Path,
        cluster_id: &str,
        count: usize,
        extra: &str,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(count >= 1, "a cluster needs a node");
        let mut ports = Vec::new();
        for _ in 0..count {
            ports.push((crate::bench::free_port()?, crate::bench::free_port()?));
        }
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let replicas = count.min(3);
        let min_isr = if replicas >= 3 { 2 } else { 1 };
        let mut cluster = Cluster {
            nodes: Vec::new(),
            lib: lib.to_owned(),
        };
        for (i, (port, controller)) in ports.iter().copied().enumerate() {
            let id = i + 1;
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir)?;
            // One node: the 4.x quickstart's dynamic quorum (`format --standalone`); three: a
            // static voter set, which needs no flag at format time.
            let quorum = if count == 1 {
                format!("controller.quorum.bootstrap.servers=127.0.0.1:{controller}")
            } else {
                format!("controller.quorum.voters={voters}")
            };
            let properties = format!(
                "process.roles=broker,controller\n\
node.id={id}\n\
{quorum}\n\
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
controller.listener.names=CONTROLLER\n\
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
inter.broker.listener.name=PLAINTEXT\n\
log.dirs={}\n\
num.partitions=1\n\
auto.create.topics.enable=false\n\
default.replication.factor={replicas}\n\
min.insync.replicas={min_isr}\n\
offsets.topic.replication.factor={replicas}\n\
transaction.state.log.replication.factor={replicas}\n\
transaction.state.log.min.isr={min_isr}\n\
share.coordinator.state.topic.replication.factor={replicas}\n\
share.coordinator.state.topic.min.isr={min_isr}\n\
group.initial.rebalance.delay.ms=0\n\
{extra}",
                node_dir.join("data").display()
            );
            std::fs::write(node_dir.join("server.properties"), properties)?;
            let mut format = java(lib, &node_dir)?;
            format.args([
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                "server.properties",
            ]);
            if count == 1 {
                format.arg("--standalone");
            }
            crate::util::output("kafka StorageTool format", &mut format)?;
            let child = spawn(lib, &node_dir)?;
            cluster.nodes.push(Node {
                child: Some(child),
                port,
                dir: node_dir,
            });
        }
        for node in &cluster.nodes {
            wait_for(
                "Kafka to accept connections",
                Duration::from_secs(120),
                || {
                    std::net::TcpStream::connect(("127.0.0.1", node.port))
                        .ok()
                        .map(|_| ())
                },
            )
            .with_context(|| crate::util::tail(&node.dir.join("kafka.log"), 20))?;
        }
        Ok(cluster)
    }

    /// Starts node `index` again (after [`Node::kill`]), on its data.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(index).context("no such node")?;
        node.kill();
        node.child = Some(spawn(&self.lib, &node.dir)?);
        Ok(())
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The processes, for a caller that stops them itself.
    pub fn into_children(mut self) -> Vec<Child> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(|n| n.child.as_mut()) {
            if matches!(child.try_wait(), Ok(None)) {
                crate::sys::signal(child.id(), libc::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = wait_for("Kafka to stop", Duration::from_secs(30), || {
                    child.try_wait().ok().flatten()
                });
            }
            node.kill();
        }
    }
}

/// Runs one hdi-kafka-perf style command (`produce` or `consume`, with its `--topic`,
/// `--records`, `--record-size`, `--acks` and `--rate`) with Kafka's `ProducerPerformance` or
/// `ConsumerPerformance` instead, answering hdi-kafka-perf's JSON fields (`records_per_s`,
/// `mb_per_s`, `p50_ms`, `p99_ms`, `p999_ms`) plus `client_cpu_seconds`. The producer uses
/// hdi-kafka-perf's settings (batches up to 1 MB after at most 5 ms, no compression); the
/// `properties` file adds the caller's (security, fetch sizes).
pub fn tool_call(
    lib: &Path,
    bootstrap: &str,
    properties: &Path,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let value = |name: &str| -> Option<&str> {
        let at = args.iter().position(|a| *a == name)?;
        args.get(at + 1).copied()
    };
    let need = |name: &str| value(name).with_context(|| format!("no {name} in {args:?}"));
    let dir = properties.parent().unwrap_or(Path::new("."));
    let mut command = java_logging(lib, dir, "log4j2-tools.properties", LOG4J2_TOOLS)?;
    let producing = args.first() == Some(&"produce");
    if producing {
        let rate = value("--rate").unwrap_or("0");
        command.args([
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            need("--topic")?,
        ]);
        command.args(["--num-records", need("--records")?]);
        command.args(["--record-size", need("--record-size")?]);
        command.args(["--throughput", if rate == "0" { "-1" } else { rate }]);
        command.arg("--command-config").arg(properties);
        command.args([
            "--command-property",
            &format!("bootstrap.servers={bootstrap}"),
            &format!("acks={}", value("--acks").unwrap_or("1")),
            "linger.ms=5",
            "batch.size=1000000",
            "buffer.memory=268435456",
            "compression.type=none",
        ]);
    } else if args.first() == Some(&"consume") {
        command.args([
            "org.apache.kafka.tools.ConsumerPerformance",
            "--topic",
            need("--topic")?,
        ]);
        command.args(["--num-records", need("--records")?]);
        command.args(["--bootstrap-server", bootstrap, "--timeout", "60000"]);
        command.arg("--command-config").arg(properties);
    } else {
        anyhow::bail!("Kafka's tools do not run {args:?}");
    }
    let (text, errors, usage) = crate::bench::output_with_usage(&mut command)?;
    anyhow::ensure!(
        usage.code == Some(0),
        "Kafka's tool {args:?} exited with {:?}: {text}{errors}",
        usage.code
    );
    let size: f64 = need("--record-size")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024.0);
    let mut answer = if producing {
        parse_producer_performance(&text, size)
    } else {
        parse_consumer_performance(&text, size)
    }
    .with_context(|| format!("Kafka's tool {args:?} printed: {text}"))?;
    if let Some(object) = answer.as_object_mut() {
        object.insert("client_cpu_seconds".into(), usage.cpu_seconds.into());
    }
    Ok(answer)
}

/// `ProducerPerformance`'s summary line ("N records sent, R records/sec (M MB/sec), ..., P ms
/// 50th, Q ms 95th, S ms 99th, T ms 99.9th.") as hdi-kafka-perf's fields (MB = 10^6 bytes).
pub fn parse_producer_performance(text: &str, size: f64) -> anyhow::Result<serde_json::Value> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("records sent"))
        .context("no summary line")?;
    let field = |suffix: &str| -> anyhow::Result<f64> {
        line.split(", ")
            .find_map(|part| part.trim_end_matches('.').strip_suffix(suffix))
            .and_then(|number| number.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no \"{suffix}\" in {line:?}"))
    };
    // "R records/sec (M MB/sec)": Kafka's MB is 2^20 bytes, so the rate is taken in records.
    let records_per_s: f64 = line
        .split(", ")
        .find(|part| part.contains(" records/sec "))
        .and_then(|part| part.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no records/sec in {line:?}"))?;
    Ok(serde_json::json!({
        "records_per_s": records_per_s,
        "mb_per_s": records_per_s * size / 1e6,
        "p50_ms": field(" ms 50th")?,
        "p99_ms": field(" ms 99th")?,
        "p999_ms": field(" ms 99.9th")?,
    }))
}

/// `ConsumerPerformance`'s CSV line: the fetch rate (`fetch.nMsg.sec`, which leaves out the
/// consumer group's join) as MB/s (10^6 bytes).
pub fn parse_consumer_performance(text: &str, size: f64) -> anyhow::Result<serde_json::Value> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("start.time"));
    let header: Vec<&str> = lines
        .next()
        .context("no header")?
        .split(", ")
        .map(str::trim)
        .collect();
    let values: Vec<&str> = lines
        .next()
        .context("no figures")?
        .split(", ")
        .map(str::trim)
        .collect();
    let at = header
        .iter()
        .position(|h| *h == "fetch.nMsg.sec")
        .context("no fetch.nMsg.sec")?;
    let per_s: f64 = values
        .get(at)
        .and_then(|v| v.parse().ok())
        .context("fetch.nMsg.sec is not a number")?;
    Ok(serde_json::json!({ "records_per_s": per_s, "mb_per_s": per_s * size / 1e6 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_tools_summaries_are_read() -> anyhow::Result<()> {
        // What kafka-tools 4.3.1 printed on this machine.
        let produced = "Option --producer-props has been deprecated and will be removed in a future version.\n\
            1500000 records sent, 167149.543125 records/sec (163.23 MB/sec), 100.59 ms avg latency, \
            625.00 ms max latency, 109 ms 50th, 208 ms 95th, 569 ms 99th, 615 ms 99.9th.\n";
        let p = parse_producer_performance(produced, 1024.0)?;
        assert_eq!(p["records_per_s"].as_f64(), Some(167_149.543_125));
        assert!((p["mb_per_s"].as_f64().unwrap_or(0.0) - 171.161).abs() < 0.01);
        assert_eq!(p["p50_ms"].as_f64(), Some(109.0));
        assert_eq!(p["p99_ms"].as_f64(), Some(569.0));
        assert_eq!(p["p999_ms"].as_f64(), Some(615.0));
        let consumed = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
            2026-12-06 23:16:47:750, 2026-12-06 23:16:57:346, 1464.8438, 152.6515, 1500000, 156315.1313, 3894, 5702, 256.9000, 263065.5910\n";
        let c = parse_consumer_performance(consumed, 1024.0)?;
        assert_eq!(c["records_per_s"].as_f64(), Some(263_065.591));
        assert!(parse_producer_performance("no summary", 1024.0).is_err());
        assert!(parse_consumer_performance("start.time, x\n1, 2\n", 1024.0).is_err());
        Ok(())
    }
}
