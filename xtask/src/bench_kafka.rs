//! `cargo xtask bench broker --kafka`: hdi-broker against Apache Kafka 4.3.1 itself (KRaft, one
//! combined broker+controller node, from Maven Central jars: `crate::apache_kafka`), in the same
//! run, on the same machine, each run on a fresh broker in a fresh directory, both without an
//! fsync per message (Kafka's default `log.flush.interval.messages`; hdi's `--flush-messages 0`).
//!
//! Two generators drive both brokers, so neither side is measured only by our own tool:
//! `hdi-kafka-perf` (librdkafka) and Kafka's `ProducerPerformance`/`ConsumerPerformance` (the
//! Java client), with the same producer settings (batches up to 1 MB after at most 5 ms, no
//! compression).
//!
//! - **Throughput**: 100 B and 1 KiB records, acks=1 and acks=all, 1 partition: produce and
//!   consume MB/s, produce p50/p99 at saturation, broker CPU seconds per GB produced and
//!   consumed (`/proc/<pid>/stat`), peak RSS (`VmHWM`).
//! - **Latency at fixed offered rates**: 1 KiB records, acks=all, at 25%, 50% and 90% of the
//!   slower broker's peak (hdi-kafka-perf, from the throughput part): produce p50/p99/p99.9 by
//!   both generators, and end-to-end p50/p99 (`hdi-kafka-perf mirror-lag` pointed at the same
//!   cluster: each record timed from its send to a consumer's receipt, acks=1).
//!
//! - **How cost grows**: 1 KiB records, acks=1, topics of 1, 12 and 1,000 partitions, by 1 and
//!   by 50 concurrent producers: aggregate MB/s, the worst producer's p99, broker CPU per GB.
//!
//! Every broker first takes 200 MB through a warm-up topic (a fresh JVM runs interpreted until
//! its JIT has compiled the hot paths); peak RSS includes it, CPU per GB does not.
//!
//! Client and broker share the machine's 2 cores: a client that costs more CPU leaves its broker
//! less, which is why each figure is given for both generators. Not part of `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::Context as _;

use crate::bench::{Figures, Peer, free_port, perf, produce_then_consume, start, stop};

const CLUSTER_ID: &str = "hdiBenchKafkaPeer0000w";

/// The broker a run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Hdi,
    Kafka,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Hdi => "hdi-broker",
            Side::Kafka => "Apache Kafka",
        }
    }
}

/// The client a run is driven with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Generator {
    Librdkafka,
    Java,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::Librdkafka => "hdi-kafka-perf (librdkafka)",
            Generator::Java => "Kafka's ProducerPerformance/ConsumerPerformance (Java client)",
        }
    }
}

/// A started broker: its process id, address, and what stops it.
struct Running {
    pid: u32,
    bootstrap: String,
    dir: PathBuf,
    hdi: Option<Child>,
    kafka: Option<crate::apache_kafka::Cluster>,
}

impl Running {
    fn start(side: Side, release: &Path, lib: &Path) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "hdi-bench-vs-kafka-{}-{}",
            match side {
                Side::Hdi => "hdi",
                Side::Kafka => "kafka",
            },
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // The previous run's data is still being written back: flush it first, or this run pays
        // for the last one.
        crate::util::run("sync", &mut std::process::Command::new("sync"))?;
        std::fs::create_dir_all(&dir)?;
        let running = match side {
            Side::Hdi => {
                let port = free_port()?;
                let child = start(Peer::Hdi, release, None, &dir, port)?;
                Running {
                    pid: child.id(),
                    bootstrap: format!("127.0.0.1:{port}"),
                    dir,
                    hdi: Some(child),
                    kafka: None,
                }
            }
            Side::Kafka => {
                let cluster = crate::apache_kafka::Cluster::start(lib, &dir, CLUSTER_ID, 1, "")?;
                Running {
                    pid: cluster.nodes[0].pid().context("no Kafka process")?,
                    bootstrap: cluster.bootstrap(),
                    dir,
                    hdi: None,
                    kafka: Some(cluster),
                }
            }
        };
        running.warm_up(release)?;
        Ok(running)
    }

    /// 200 MB through a `warm-up` topic (produced acks=1, then consumed) before anything is
    /// measured: a fresh JVM interprets its code until the JIT has compiled the hot paths, and
    /// a benchmark should show Kafka as it runs in production, not in its first seconds.
    fn warm_up(&self, release: &Path) -> anyhow::Result<()> {
        let records = "200000";
        perf(
            release,
            &self.bootstrap,
            &["create-topic", "--topic", "warm-up"],
        )?;
        perf(
            release,
            &self.bootstrap,
            &[
                "produce",
                "--topic",
                "warm-up",
                "--records",
                records,
                "--record-size",
                "1024",
            ],
        )?;
        perf(
            release,
            &self.bootstrap,
            &["consume", "--topic", "warm-up", "--records", records],
        )?;
        Ok(())
    }

    /// One hdi-kafka-perf command, or its equivalent with Kafka's tools.
    fn call(
        &self,
        generator: Generator,
        release: &Path,
        lib: &Path,
        args: &[&str],
    ) -> anyhow::Result<serde_json::Value> {
        match (generator, args.first().copied()) {
            (Generator::Java, Some("produce" | "consume")) => {
                let properties = self.dir.join("client.properties");
                if !properties.exists() {
                    // hdi-kafka-perf's fetch sizes.
                    std::fs::write(
                        &properties,
                        "max.partition.fetch.bytes=10485760\nfetch.max.bytes=52428800\n",
                    )?;
                }
                crate::apache_kafka::tool_call(lib, &self.bootstrap, &properties, args)
            }
            _ => perf(release, &self.bootstrap, args),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.hdi.take() {
            stop(&mut child, &self.dir);
        }
        // The cluster stops itself when dropped; then its directory goes.
        self.kafka.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the comparison and prints it.
pub fn run(release: &Path, records: u64) -> anyhow::Result<()> {
    let lib = crate::apache_kafka::jars()?;
    let mut throughput = Vec::new();
    for generator in [Generator::Librdkafka, Generator::Java] {
        for size in [100usize, 1024] {
            for acks in ["1", "all"] {
                let mut pair = [Figures::default(), Figures::default()];
                // Alternate which side goes first, so that neither always runs on a warmer
                // machine.
                let order = if (size == 100) == (acks == "1") {
                    [Side::Hdi, Side::Kafka]
                } else {
                    [Side::Kafka, Side::Hdi]
                };
                for side in order {
                    eprintln!(
                        "xtask bench: {records} records of {size} B, acks={acks}, {}, {}",
                        side.name(),
                        generator.name()
                    );
                    let running = Running::start(side, release, &lib)?;
                    let figures = produce_then_consume(running.pid, records, size, acks, |args| {
                        running.call(generator, release, &lib, args)
                    })
                    .with_context(|| format!("{} {size} B acks={acks}", side.name()))?;
                    pair[usize::from(side == Side::Kafka)] = figures;
                }
                throughput.push((generator, size, acks, pair));
            }
        }
    }
    print_throughput(&throughput, records);
    // The slower side's peak, 1 KiB acks=all, by hdi-kafka-perf.
    let peak = throughput
        .iter()
        .find(|(g, size, acks, _)| *g == Generator::Librdkafka && *size == 1024 && *acks == "all")
        .map(|(_, _, _, pair)| pair[0].produce_rec_s.min(pair[1].produce_rec_s))
        .context("no 1 KiB acks=all run")?;
    let mut latency = Vec::new();
    for percent in [25u64, 50, 90] {
        let rate = ((peak * percent as f64 / 100.0) as u64).max(100);
        let mut pair = Vec::new();
        for side in [Side::Hdi, Side::Kafka] {
            eprintln!(
                "xtask bench: {rate} records/s of 1 KiB ({percent}% of the slower peak), {}",
                side.name()
            );
            pair.push(
                fixed_rate(side, release, &lib, rate)
                    .with_context(|| format!("{} at {rate} records/s", side.name()))?,
            );
        }
        latency.push((percent, rate, pair));
    }
    print_latency(&latency, peak);
    let scaled = scaling(release, &lib, records)?;
    print_scaling(&scaled, records);
    Ok(())
}

/// Latencies at one offered rate on a fresh broker.
#[derive(Default, Debug)]
struct Latency {
    /// (p50, p99, p99.9) of produce acknowledgements, by hdi-kafka-perf and by Kafka's tool.
    produce: [(f64, f64, f64); 2],
    /// (p50, p99) from send to a consumer's receipt.
    end_to_end: (f64, f64),
    /// Records the end-to-end consumer received of those sent.
    received: (u64, u64),
}

/// Ten seconds of 1 KiB records at `rate` per second, acks=all, by each generator, then the
/// end-to-end run at the same rate.
fn fixed_rate(side: Side, release: &Path, lib: &Path, rate: u64) -> anyhow::Result<Latency> {
    let running = Running::start(side, release, lib)?;
    let mut latency = Latency::default();
    let (records, rate_text) = ((rate * 10).to_string(), rate.to_string());
    for (i, generator) in [Generator::Librdkafka, Generator::Java]
        .into_iter()
        .enumerate()
    {
        let topic = format!("fixed-{i}");
        running.call(
            generator,
            release,
            lib,
            &["create-topic", "--topic", &topic],
        )?;
        let produced = running.call(
            generator,
            release,
            lib,
            &[
                "produce",
                "--topic",
                &topic,
                "--records",
                &records,
                "--record-size",
                "1024",
                "--acks",
                "all",
                "--rate",
                &rate_text,
            ],
        )?;
        let get = |field: &str| produced[field].as_f64().unwrap_or(f64::NAN);
        latency.produce[i] = (get("p50_ms"), get("p99_ms"), get("p999_ms"));
    }
    running.call(
        Generator::Librdkafka,
        release,
        lib,
        &["create-topic", "--topic", "e2e"],
    )?;
    let lag = perf(
        release,
        &running.bootstrap,
        &[
            "mirror-lag",
            "--topic",
            "e2e",
            "--mirror-bootstrap",
            &running.bootstrap,
            "--partitions",
            "1",
            "--rate",
            &rate_text,
            "--seconds",
            "10",
            "--record-size",
            "1024",
        ],
    )?;
    latency.end_to_end = (
        lag["p50_ms"].as_f64().unwrap_or(f64::NAN),
        lag["p99_ms"].as_f64().unwrap_or(f64::NAN),
    );
    latency.received = (
        lag["mirrored"].as_u64().unwrap_or(0),
        lag["sent"].as_u64().unwrap_or(0),
    );
    Ok(latency)
}

type ThroughputRow = (Generator, usize, &'static str, [Figures; 2]);

fn print_throughput(rows: &[ThroughputRow], records: u64) {
    println!(
        "\nhdi-broker vs Apache Kafka 4.3.1: {records} records per run, 1 partition, one node each, no fsync per message"
    );
    type Metric = (&'static str, fn(&Figures) -> f64, bool);
    let metrics: [Metric; 8] = [
        ("produce MB/s", |f| f.produce_mb_s, true),
        ("produce p50 ms", |f| f.p50_ms, false),
        ("produce p99 ms", |f| f.p99_ms, false),
        ("consume MB/s", |f| f.consume_mb_s, true),
        ("produce CPU s/GB", |f| f.produce_cpu_s_per_gb, false),
        ("consume CPU s/GB", |f| f.consume_cpu_s_per_gb, false),
        (
            "client prod CPU s/GB",
            |f| f.client_produce_cpu_s_per_gb,
            false,
        ),
        ("peak RSS MB", |f| f.peak_rss_mb, false),
    ];
    for (generator, size, acks, pair) in rows {
        println!("\n{size} B records, acks={acks}, {}", generator.name());
        println!(
            "{:<22}{:>14}{:>14}   hdi's advantage (>1 is better for hdi)",
            "", "hdi-broker", "Apache Kafka"
        );
        for (name, get, higher_better) in &metrics {
            let (hdi, kafka) = (get(&pair[0]), get(&pair[1]));
            let ratio = if *higher_better {
                hdi / kafka.max(f64::MIN_POSITIVE)
            } else {
                kafka / hdi.max(f64::MIN_POSITIVE)
            };
            println!("{name:<22}{hdi:>14.2}{kafka:>14.2}   {ratio:>6.2}x");
        }
    }
}

fn print_latency(rows: &[(u64, u64, Vec<Latency>)], peak: f64) {
    println!(
        "\nLatency at fixed offered rates: 1 KiB records, acks=all (end-to-end: acks=1), 10 s each; the slower peak was {peak:.0} records/s"
    );
    println!(
        "{:<34}{:>24}{:>24}{:>10}",
        "", "hdi-broker", "Apache Kafka", "p99 ratio"
    );
    for (percent, rate, pair) in rows {
        let (hdi, kafka) = (&pair[0], &pair[1]);
        println!("{percent}% of peak = {rate} records/s");
        for (i, name) in [
            "produce p50/p99/p99.9, librdkafka",
            "produce p50/p99/p99.9, Java",
        ]
        .iter()
        .enumerate()
        {
            let cell = |l: &Latency| {
                let (a, b, c) = l.produce[i];
                format!("{a:.2}/{b:.2}/{c:.2}")
            };
            let ratio = hdi.produce[i].1 / kafka.produce[i].1;
            println!(
                "  {name:<32}{:>24}{:>24}{ratio:>9.2}x",
                cell(hdi),
                cell(kafka)
            );
        }
        let cell = |l: &Latency| {
            format!(
                "{:.2}/{:.2} ({}/{})",
                l.end_to_end.0, l.end_to_end.1, l.received.0, l.received.1
            )
        };
        println!(
            "  {:<32}{:>24}{:>24}{:>9.2}x",
            "end-to-end p50/p99 (received)",
            cell(hdi),
            cell(kafka),
            hdi.end_to_end.1 / kafka.end_to_end.1
        );
    }
    println!("(p99 ratio: hdi / Kafka; the target at 50% load is <= 0.50)");
}

/// Three nodes of one side, started in a fresh directory.
enum Three {
    Hdi(crate::bench_cluster::Brokers),
    Kafka(crate::apache_kafka::Cluster, PathBuf),
}

impl Three {
    fn start(side: Side, release: &Path, lib: &Path) -> anyhow::Result<Self> {
        crate::util::run("sync", &mut std::process::Command::new("sync"))?;
        Ok(match side {
            Side::Hdi => Three::Hdi(crate::bench_cluster::Brokers::start(release)?),
            Side::Kafka => {
                let dir = std::env::temp_dir()
                    .join(format!("hdi-bench-vs-kafka-3-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)?;
                let cluster = crate::apache_kafka::Cluster::start(lib, &dir, CLUSTER_ID, 3, "")?;
                Three::Kafka(cluster, dir)
            }
        })
    }

    fn bootstrap(&self) -> String {
        match self {
            Three::Hdi(brokers) => brokers.bootstrap(),
            Three::Kafka(cluster, _) => cluster.bootstrap(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Three::Hdi(brokers) => brokers.children.iter().flatten().map(Child::id).collect(),
            Three::Kafka(cluster, _) => cluster.nodes.iter().filter_map(|n| n.pid()).collect(),
        }
    }

    /// SIGKILL of node `id` (1-based, as the leader is reported).
    fn kill(&mut self, id: i64) -> anyhow::Result<()> {
        let index = usize::try_from(id - 1).context("bad node id")?;
        match self {
            Three::Hdi(brokers) => brokers.kill(index),
            Three::Kafka(cluster, _) => {
                cluster.nodes.get_mut(index).context("no such node")?.kill()
            }
        }
        Ok(())
    }

    fn restart(&mut self, id: i64) -> anyhow::Result<()> {
        let index = usize::try_from(id - 1).context("bad node id")?;
        match self {
            Three::Hdi(brokers) => brokers.spawn(index),
            Three::Kafka(cluster, _) => cluster.restart(index),
        }
    }
}

impl Drop for Three {
    fn drop(&mut self) {
        if let Three::Kafka(cluster, dir) = self {
            // Stop the nodes before their directory goes.
            for node in &mut cluster.nodes {
                node.kill();
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One side's 3-node figures.
#[derive(Default, Debug)]
struct ClusterFigures {
    /// By generator (librdkafka, Java): produce MB/s, p50, p99, p99.9.
    produce: [(f64, f64, f64, f64); 2],
    consume_mb_s: f64,
    /// Every node's CPU seconds per GB produced (librdkafka run), summed.
    produce_cpu_s_per_gb: f64,
    /// Every node's peak RSS, summed.
    rss_mb: f64,
    failovers_ms: Vec<f64>,
}

/// `--kafka --cluster`: three nodes each (RF=3, `min.insync.replicas=2`, acks=all, 1 KiB
/// records, 1 partition): produce by both generators, consume, CPU, RSS, then `faults` SIGKILLs
/// of the partition leader, each timed to the first acks=all write acknowledged after it
/// (`hdi-kafka-perf probe`), the killed node restarted and back in the ISR before the next.
pub fn run_cluster(release: &Path, records: u64, faults: usize) -> anyhow::Result<()> {
    let lib = crate::apache_kafka::jars()?;
    let mut all = Vec::new();
    for side in [Side::Hdi, Side::Kafka] {
        eprintln!("xtask bench: 3 nodes of {}", side.name());
        all.push(
            cluster_side(side, release, &lib, records, faults)
                .with_context(|| format!("3 nodes of {}", side.name()))?,
        );
    }
    let (hdi, kafka) = (&all[0], &all[1]);
    println!(
        "\n3 nodes each on one machine: 1 partition, RF=3, min.insync.replicas=2, acks=all, 1 KiB records, {records} records per run"
    );
    println!(
        "{:<44}{:>14}{:>14}   hdi's advantage (>1 is better for hdi)",
        "", "hdi-broker", "Apache Kafka"
    );
    let row = |name: &str, h: f64, k: f64, higher_better: bool| {
        let ratio = if higher_better {
            h / k.max(f64::MIN_POSITIVE)
        } else {
            k / h.max(f64::MIN_POSITIVE)
        };
        println!("{name:<44}{h:>14.2}{k:>14.2}   {ratio:>6.2}x");
    };
    for (i, generator) in ["librdkafka", "Java"].iter().enumerate() {
        let (h, k) = (hdi.produce[i], kafka.produce[i]);
        row(&format!("produce MB/s ({generator})"), h.0, k.0, true);
        row(&format!("produce p50 ms ({generator})"), h.1, k.1, false);
        row(&format!("produce p99 ms ({generator})"), h.2, k.2, false);
        row(&format!("produce p99.9 ms ({generator})"), h.3, k.3, false);
    }
    row(
        "consume MB/s (librdkafka)",
        hdi.consume_mb_s,
        kafka.consume_mb_s,
        true,
    );
    row(
        "produce CPU s/GB, 3 nodes",
        hdi.produce_cpu_s_per_gb,
        kafka.produce_cpu_s_per_gb,
        false,
    );
    row("peak RSS MB, 3 nodes", hdi.rss_mb, kafka.rss_mb, false);
    let p = crate::bench_cluster::percentile;
    row(
        &format!("failover p50 ms ({} leader kills)", hdi.failovers_ms.len()),
        p(&hdi.failovers_ms, 0.5),
        p(&kafka.failovers_ms, 0.5),
        false,
    );
    row(
        "failover max ms",
        p(&hdi.failovers_ms, 1.0),
        p(&kafka.failovers_ms, 1.0),
        false,
    );
    Ok(())
}

fn cluster_side(
    side: Side,
    release: &Path,
    lib: &Path,
    records: u64,
    faults: usize,
) -> anyhow::Result<ClusterFigures> {
    let mut three = Three::start(side, release, lib)?;
    let bootstrap = three.bootstrap();
    let mut figures = ClusterFigures::default();
    for topic in ["perf", "perf-java"] {
        crate::bench_cluster::create_replicated(
            release,
            &bootstrap,
            topic,
            std::time::Duration::from_secs(90),
        )?;
    }
    crate::bench_cluster::wait_whole(release, &bootstrap)?;
    let records_text = records.to_string();
    let properties = std::env::temp_dir().join(format!(
        "hdi-bench-vs-kafka-client-{}.properties",
        std::process::id()
    ));
    std::fs::write(
        &properties,
        "max.partition.fetch.bytes=10485760\nfetch.max.bytes=52428800\n",
    )?;
    let cpu = |pids: &[u32]| -> f64 {
        pids.iter()
            .map(|p| crate::bench::cpu_seconds(*p).unwrap_or(0.0))
            .sum()
    };
    for (i, topic) in ["perf", "perf-java"].into_iter().enumerate() {
        let args = [
            "produce",
            "--topic",
            topic,
            "--records",
            &records_text,
            "--record-size",
            "1024",
            "--acks",
            "all",
        ];
        let pids = three.pids();
        let before = cpu(&pids);
        let produced = if i == 0 {
            perf(release, &bootstrap, &args)?
        } else {
            crate::apache_kafka::tool_call(lib, &bootstrap, &properties, &args)?
        };
        if i == 0 {
            figures.produce_cpu_s_per_gb = (cpu(&pids) - before) / (records as f64 * 1024.0 / 1e9);
        }
        let get = |field: &str| produced[field].as_f64().unwrap_or(f64::NAN);
        figures.produce[i] = (
            get("mb_per_s"),
            get("p50_ms"),
            get("p99_ms"),
            get("p999_ms"),
        );
    }
    let consumed = perf(
        release,
        &bootstrap,
        &["consume", "--topic", "perf", "--records", &records_text],
    )?;
    figures.consume_mb_s = consumed["mb_per_s"].as_f64().unwrap_or(f64::NAN);
    figures.rss_mb = three
        .pids()
        .iter()
        .map(|p| crate::bench::peak_rss_mb(*p))
        .sum();
    let _ = std::fs::remove_file(&properties);
    for n in 0..faults {
        let victim = crate::bench_cluster::wait_whole(release, &bootstrap)?;
        let started = std::time::Instant::now();
        three.kill(victim)?;
        perf(release, &bootstrap, &["probe", "--topic", "perf"])?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "  failover {}/{faults}: killed node {victim}, first acknowledged produce after {ms:.0} ms",
            n + 1
        );
        figures.failovers_ms.push(ms);
        three.restart(victim)?;
    }
    crate::bench_cluster::wait_whole(release, &bootstrap)?;
    Ok(figures)
}

/// One scaling run's figures: aggregate produce MB/s over the wall time, the worst producer's
/// p99, and the broker's CPU seconds per GB.
#[derive(Default, Debug, Clone, Copy)]
struct Scale {
    mb_s: f64,
    worst_p99_ms: f64,
    cpu_s_per_gb: f64,
}

/// How cost grows: 1 KiB records, acks=1, to a topic of 1, 12 and 1,000 partitions, by 1 and by
/// 50 concurrent producers (hdi-kafka-perf processes, `records / producers` each), a fresh
/// broker per run.
fn scaling(
    release: &Path,
    lib: &Path,
    records: u64,
) -> anyhow::Result<Vec<(u32, u64, [Scale; 2])>> {
    let mut rows = Vec::new();
    for partitions in [1u32, 12, 1000] {
        for producers in [1u64, 50] {
            let mut pair = [Scale::default(); 2];
            for side in [Side::Hdi, Side::Kafka] {
                eprintln!(
                    "xtask bench: {partitions} partitions, {producers} producers, {}",
                    side.name()
                );
                let running = Running::start(side, release, lib)?;
                let partitions_text = partitions.to_string();
                perf(
                    release,
                    &running.bootstrap,
                    &[
                        "create-topic",
                        "--topic",
                        "scale",
                        "--partitions",
                        &partitions_text,
                    ],
                )?;
                let each = (records / producers).max(1);
                let each_text = each.to_string();
                let cpu0 = crate::bench::cpu_seconds(running.pid)?;
                let started = std::time::Instant::now();
                let children = (0..producers)
                    .map(|_| {
                        std::process::Command::new(release.join("hdi-kafka-perf"))
                            .args(["--bootstrap", &running.bootstrap])
                            .args([
                                "produce",
                                "--topic",
                                "scale",
                                "--records",
                                &each_text,
                                "--record-size",
                                "1024",
                            ])
                            .stdout(std::process::Stdio::piped())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .context("hdi-kafka-perf")
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut worst = 0f64;
                for child in children {
                    let out = child.wait_with_output()?;
                    anyhow::ensure!(out.status.success(), "a producer failed");
                    let text = String::from_utf8_lossy(&out.stdout);
                    let value: serde_json::Value =
                        serde_json::from_str(text.lines().last().unwrap_or(""))
                            .context("hdi-kafka-perf output")?;
                    worst = worst.max(value["p99_ms"].as_f64().unwrap_or(f64::NAN));
                }
                let seconds = started.elapsed().as_secs_f64();
                let gb = (each * producers) as f64 * 1024.0 / 1e9;
                pair[usize::from(side == Side::Kafka)] = Scale {
                    mb_s: gb * 1e3 / seconds,
                    worst_p99_ms: worst,
                    cpu_s_per_gb: (crate::bench::cpu_seconds(running.pid)? - cpu0) / gb,
                };
            }
            rows.push((partitions, producers, pair));
        }
    }
    Ok(rows)
}

fn print_scaling(rows: &[(u32, u64, [Scale; 2])], records: u64) {
    println!(
        "\nHow cost grows: {records} records of 1 KiB per run, acks=1, hdi-kafka-perf processes; MB/s over the wall time, the worst producer's p99"
    );
    println!(
        "{:<26}{:>22}{:>22}{:>22}",
        "partitions x producers", "MB/s hdi / Kafka", "p99 ms hdi / Kafka", "CPU s/GB hdi / Kafka"
    );
    for (partitions, producers, [hdi, kafka]) in rows {
        println!(
            "{:<26}{:>22}{:>22}{:>22}",
            format!("{partitions} x {producers}"),
            format!("{:.1} / {:.1}", hdi.mb_s, kafka.mb_s),
            format!("{:.1} / {:.1}", hdi.worst_p99_ms, kafka.worst_p99_ms),
            format!("{:.2} / {:.2}", hdi.cpu_s_per_gb, kafka.cpu_s_per_gb),
        );
    }
}
