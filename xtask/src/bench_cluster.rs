//! `cargo xtask bench broker --cluster`: a three-broker hdi cluster (release build, one machine)
//! with replication factor 3, `min.insync.replicas=2` and `acks=all`, driven by the same generator
//! as the single-broker bench (`hdi-kafka-perf`, librdkafka, one partition):
//!
//! - produce throughput of 1 KiB records, and p50/p99/p99.9 latency (send to acknowledgement);
//! - the same latencies at half that rate;
//! - failover: SIGKILL the partition leader, then time until the first acks=all record is
//!   acknowledged by the new leader (`hdi-kafka-perf probe`), over 20 kills (the killed broker is
//!   restarted and back in the ISR before the next one).
//!
//! The named peer is a single `hdi-broker` (replication factor 1, acks=all) measured in the same
//! run with the same generator, so the ratio shows what replication costs. The targets
//! are printed next to the figures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util::wait_for;

/// Three release hdi-brokers on loopback in a fresh directory; killed and removed when dropped.
pub(crate) struct Brokers {
    dir: PathBuf,
    release: PathBuf,
    kafka: Vec<u16>,
    quorum: Vec<u16>,
    pub(crate) children: Vec<Option<Child>>,
}

impl Brokers {
    pub(crate) fn start(release: &Path) -> anyhow::Result<Brokers> {
        let dir = std::env::temp_dir().join(format!("hdi-bench-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut brokers = Brokers {
            dir,
            release: release.to_owned(),
            kafka: (0..3)
                .map(|_| super::bench::free_port())
                .collect::<Result<_, _>>()?,
            quorum: (0..3)
                .map(|_| super::bench::free_port())
                .collect::<Result<_, _>>()?,
            children: vec![None, None, None],
        };
        for i in 0..3 {
            brokers.spawn(i)?;
        }
        Ok(brokers)
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.kafka
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let quorum: Vec<String> = self
            .quorum
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{}@127.0.0.1:{p}", j + 1))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("broker-{}.log", i + 1)))?;
        let child = Command::new(self.release.join("hdi-broker"))
            .args(["--node-id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("broker-{}", i + 1)))
            .args(["--listen", &format!("127.0.0.1:{}", self.kafka[i])])
            .args(["--quorum-listen", &format!("127.0.0.1:{}", self.quorum[i])])
            .args(["--quorum", &quorum.join(",")])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start hdi-broker")?;
        self.children[i] = Some(child);
        Ok(())
    }

    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn perf(release: &Path, bootstrap: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    super::bench::perf(release, bootstrap, args)
}

/// Leader id and ISR size of `perf`'s partition 0.
pub(crate) fn leader(release: &Path, bootstrap: &str) -> anyhow::Result<(i64, usize)> {
    let v = perf(release, bootstrap, &["leader", "--topic", "perf"])?;
    Ok((
        v["leader"].as_i64().unwrap_or(-1),
        v["isr"].as_array().map_or(0, Vec::len),
    ))
}

/// Waits until `perf` has a leader and all 3 replicas in its ISR; answers the leader.
pub(crate) fn wait_whole(release: &Path, bootstrap: &str) -> anyhow::Result<i64> {
    wait_for(
        "a leader and a full ISR",
        Duration::from_secs(60),
        || match leader(release, bootstrap) {
            Ok((l, 3)) if l > 0 => Some(l),
            _ => None,
        },
    )
}

/// Creates `topic` with RF=3 and `min.insync.replicas=2`, retrying for up to `timeout` while the
/// cluster comes up.
pub(crate) fn create_replicated(
    release: &Path,
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for("the cluster to create the topic", timeout, || {
        let args = [
            "create-topic",
            "--topic",
            topic,
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ];
        perf(release, bootstrap, &args).ok().map(|_| ())
    })
}

/// Percentile of `values` (sorted copy).
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs the cluster benchmark.
///
/// # Errors
/// When a broker or the generator fails.
pub fn run(release: &Path, records: u64, faults: usize) -> anyhow::Result<()> {
    let size = "1024";
    eprintln!("xtask bench: single hdi-broker, RF=1, acks=all (the peer)");
    let single =
        super::bench::one_run(super::bench::Peer::Hdi, release, None, 1024, "all", records)?;
    eprintln!("xtask bench: 3 hdi-brokers, RF=3, min.insync.replicas=2, acks=all");
    let mut brokers = Brokers::start(release)?;
    let bootstrap = brokers.bootstrap();
    create_replicated(release, &bootstrap, "perf", Duration::from_secs(60))?;
    wait_whole(release, &bootstrap)?;
    // acks=all to the topic `perf`: at full speed, then at half the rate that reached.
    let produce = |records: u64, rate: Option<u64>| {
        let (records, rate) = (records.to_string(), rate.map(|r| r.to_string()));
        let mut args = vec![
            "produce",
            "--topic",
            "perf",
            "--records",
            &records,
            "--record-size",
            size,
            "--acks",
            "all",
        ];
        if let Some(rate) = &rate {
            args.extend(["--rate", rate]);
        }
        perf(release, &bootstrap, &args)
    };
    let full = produce(records, None)?;
    let half_rate = (full["records_per_s"].as_f64().unwrap_or(1000.0) / 2.0).max(1.0) as u64;
    let half = produce((half_rate * 10).min(records), Some(half_rate))?;
    let mut failovers = Vec::new();
    for n in 0..faults {
        let victim = wait_whole(release, &bootstrap)?;
        let index = usize::try_from(victim - 1).context("bad leader id")?;
        let started = Instant::now();
        brokers.kill(index);
        perf(release, &bootstrap, &["probe", "--topic", "perf"])?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "  failover {}/{faults}: killed broker {victim}, first acknowledged produce after {ms:.0} ms",
            n + 1
        );
        failovers.push(ms);
        brokers.spawn(index)?;
    }
    wait_whole(release, &bootstrap)?;
    let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    println!(
        "\nhdi-broker cluster: 3 brokers on one machine, 1 partition, RF=3, min.insync.replicas=2, acks=all, 1 KiB records, {records} records (generator: hdi-kafka-perf, librdkafka)"
    );
    println!(
        "{:<44} {:>12} {:>14} {:>8} {:>10}",
        "metric", "3 brokers", "1 broker RF=1", "ratio", "target"
    );
    let rows: [(&str, f64, f64, &str); 5] = [
        (
            "produce MB/s",
            f(&full, "mb_per_s"),
            single.produce_mb_s,
            ">= 150",
        ),
        (
            "produce p50 ms (full rate)",
            f(&full, "p50_ms"),
            single.p50_ms,
            "",
        ),
        (
            "produce p99 ms (full rate)",
            f(&full, "p99_ms"),
            single.p99_ms,
            "",
        ),
        ("produce p99.9 ms (full rate)", f(&full, "p999_ms"), 0.0, ""),
        (
            "produce records/s",
            f(&full, "records_per_s"),
            single.produce_rec_s,
            "",
        ),
    ];
    for (name, cluster, peer, target) in rows {
        let ratio = if peer > 0.0 {
            format!("{:.2}x", cluster / peer)
        } else {
            "-".into()
        };
        let peer = if peer > 0.0 {
            format!("{peer:.1}")
        } else {
            "-".into()
        };
        println!("{name:<44} {cluster:>12.1} {peer:>14} {ratio:>8} {target:>10}");
    }
    println!(
        "{:<44} {:>12.1} {:>14} {:>8} {:>10}",
        format!("produce p50 ms at half rate ({half_rate}/s)"),
        f(&half, "p50_ms"),
        "-",
        "-",
        ""
    );
    println!(
        "{:<44} {:>12.1} {:>14} {:>8} {:>10}",
        "produce p99 ms at half rate",
        f(&half, "p99_ms"),
        "-",
        "-",
        "< 20"
    );
    println!(
        "{:<44} {:>12.1} {:>14} {:>8} {:>10}",
        "produce p99.9 ms at half rate",
        f(&half, "p999_ms"),
        "-",
        "-",
        ""
    );
    println!(
        "{:<44} {:>12.0} {:>14} {:>8} {:>10}",
        format!("failover p50 ms ({} leader kills)", failovers.len()),
        percentile(&failovers, 0.5),
        "-",
        "-",
        ""
    );
    let max = failovers.iter().copied().fold(0.0, f64::max);
    println!(
        "{:<44} {:>12.0} {:>14} {:>8} {:>10}",
        "failover max ms", max, "-", "-", "< 5000"
    );
    if failovers.is_empty() {
        bail!("no failover measured");
    }
    Ok(())
}
