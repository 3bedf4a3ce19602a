//! `cargo xtask bench georep`: hdi's cluster links against the peer, Apache Kafka's
//! MirrorMaker 2, in the same run on this machine, with the same generator (`hdi-kafka-perf`, on
//! librdkafka, which speaks Kafka to both).
//!
//! - **hdi**: two release `hdi-broker`s (one node each, fresh directories, loopback) and a link
//!   `dr` on B (`hdi.link.dr.*` cluster configs) mirroring A's topics and the group
//!   `bench-group`. The forced failover runs on a second fresh pair (the first pair's link was
//!   promoted by then).
//! - **MirrorMaker 2**: two Apache Kafka 4.3.1 clusters (KRaft, one combined broker+controller
//!   node each, `StorageTool format --standalone`, fresh data directories, loopback, started as
//!   `kafka-server-start.sh` starts them: `-Xmx1g`, G1; `crate::apache_kafka`)
//!   and MirrorMaker 2 in dedicated mode (`org.apache.kafka.connect.mirror.MirrorMaker
//!   mm2.properties --clusters B`, `-Xmx1g`), all from Maven Central jars
//!   (`bench/kafka-server/pom.xml`, copied once into `target/bench-tools/kafka-server/lib`).
//!   Its settings: `A->B.enabled`, topics by regex, `DefaultReplicationPolicy` (B's copy of
//!   `orders` is `A.orders`), `tasks.max=4`, `sync.group.offsets.enabled=true`;
//!   `emit.checkpoints.interval.seconds` and `sync.group.offsets.interval.seconds` at their
//!   defaults (60 s); `refresh.topics.interval.seconds` **lowered from 600 s to 1 s** (its
//!   smallest, near hdi's 500 ms discovery; at the default a new topic waits ~300 s on average),
//!   `refresh.groups.interval.seconds` at its default (600 s: `bench-group` exists on A before
//!   MirrorMaker starts); producer and consumer settings at Connect's defaults.
//! - **Durability, both sides alike**: no fsync per message. Kafka runs with its defaults
//!   (`log.flush.interval.messages` unbounded: the OS writes back), hdi's bench broker with its
//!   default `--flush-messages 0` (leave it to the OS), as `crate::bench::start` starts it.
//!
//! The figures, each for both: mirror throughput (a backlog of 1 KiB records, 3 partitions,
//! written to A before mirroring starts: MB/s from the first record seen on B until B's end
//! offsets reach A's); lag p50/p99 at 10 MB/s and 50 MB/s offered (`mirror-lag`: records at a
//! steady rate on A, each timed until a consumer of B gets it); offsets identical (records at
//! 100 sampled offsets per partition read on both sides: same key, value and timestamp at the
//! same offset), on the backlog and on `trimmed`, a topic whose records below offset 4,000 were
//! deleted before mirroring started (DeleteRecords at a batch boundary, where retention cuts);
//! consumer-offset staleness (the group commits at the backlog's end on A; time
//! until B holds a translated offset for every partition, and how far behind A's commit it is);
//! new-topic discovery (topic created on A and one record written; time until B holds it);
//! planned switchover of a 100-partition topic right after 5 s at 10 MB/s (hdi: `promote`, then
//! the first write acknowledged on B; MirrorMaker has no switchover, so what a user does: stop
//! producing, wait until B's end offsets equal A's, then the first write acknowledged on B),
//! with its RPO (acknowledged records missing on B); forced failover at 10 MB/s (A SIGKILLed
//! 6 s into the load: records A acknowledged that B lacks, and for hdi the loss the link reports
//! once `failover` is set). About 5 minutes here (1M backlog records), most of it MirrorMaker's:
//! its group offsets take a minute to arrive.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{free_port, perf};

/// The group whose offsets both systems sync.
const GROUP: &str = "bench-group";
/// Offered rates of the lag runs, records of 1 KiB per second.
const RATES: [u64; 2] = [10_000, 50_000];
/// Seconds of each lag run.
const LAG_SECONDS: &str = "20";
/// MirrorMaker 2's topic filter (a regex) and hdi's (literals and prefixes).
const MM2_TOPICS: &str = "backlog|trimmed|lag|switch|loss|fresh-.*";
const HDI_TOPICS: &str = "backlog,trimmed,lag,switch,fresh-*";
/// Records per partition of `trimmed`, and the offset below which its records are deleted
/// before mirroring starts (as retention leaves a topic that has lived a while).
const TRIMMED: (u64, i64) = (10_000, 4_000);

/// Processes of one side and the directory they use; stopped and removed when dropped, so a
/// failed run leaves nothing behind.
struct Processes {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Processes {
    fn new(dir: PathBuf) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            children: Vec::new(),
        })
    }

    fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
    }

    /// SIGKILL, at once: the forced failover's fault.
    fn kill(&mut self, name: &str) {
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // SIGTERM to all at once (MirrorMaker first), SIGKILL to whatever still runs after 20 s.
        for (_, child) in self.children.iter_mut().rev() {
            if matches!(child.try_wait(), Ok(None)) {
                crate::sys::signal(child.id(), libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, child) in self.children.iter_mut().rev() {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("xtask bench: {name} ignored SIGTERM; killing it");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One lag run's answer.
struct Lag {
    rate: u64,
    p50_ms: f64,
    p99_ms: f64,
    mirrored: u64,
    sent: u64,
    /// What the consumer of the mirror received, from the first send to the last arrival.
    mirrored_mb_s: f64,
}

/// One system's figures.
#[derive(Default)]
struct Figures {
    backlog: i64,
    mirror_mb_s: f64,
    lags: Vec<Lag>,
    sampled: u64,
    identical: u64,
    same_end_partitions: u64,
    /// The same on `trimmed`.
    trimmed_sampled: u64,
    trimmed_identical: u64,
    group_ms: Option<f64>,
    group_behind: i64,
    discovery_ms: f64,
    switch_ms: f64,
    switch_acked: u64,
    switch_missing: u64,
    loss_acked: u64,
    loss_missing: u64,
    /// hdi only: what the link reports (records, milliseconds) and how long from the failover
    /// command until a write on B was acknowledged.
    loss_reported: Option<(i64, i64)>,
    failover_ms: Option<f64>,
}

/// How one system mirrors: where its clusters are and what it calls a topic on B.
struct Side<'a> {
    release: &'a Path,
    a: String,
    b: String,
    /// `A.` for MirrorMaker 2's default policy, empty for hdi.
    prefix: &'static str,
}

impl Side<'_> {
    fn mirror(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    fn on_a(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        perf(self.release, &self.a, args)
    }

    fn on_b(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        perf(self.release, &self.b, args)
    }

    fn end_offsets(&self, bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
        let answer = perf(self.release, bootstrap, &["end-offsets", "--topic", topic])?;
        answer["total"].as_i64().context("no total")
    }

    /// The records a topic holds (between its low and high watermarks).
    fn records(&self, bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
        let answer = perf(self.release, bootstrap, &["end-offsets", "--topic", topic])?;
        answer["records"].as_i64().context("no records")
    }

    /// B's end offsets of its copy of `topic`; -1 while it does not exist or has no leader yet
    /// (a topic just created answers NOT_LEADER for a moment).
    fn b_end(&self, topic: &str) -> anyhow::Result<i64> {
        Ok(self.end_offsets(&self.b, &self.mirror(topic)).unwrap_or(-1))
    }
}

/// Polls every `every` until `done` answers true; answers how long that took.
fn time_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if done()? {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < timeout, "{what} took over {timeout:?}");
        // Each poll starts a client process: not more often, or the polls take the cores the
        // brokers need.
        std::thread::sleep(every);
    }
}

const POLL: Duration = Duration::from_millis(100);

/// Runs the benchmark and prints its figures.
pub fn run(release: &Path, records: u64) -> anyhow::Result<()> {
    let lib = crate::apache_kafka::jars()?;
    let root = std::env::temp_dir().join(format!("hdi-bench-georep-{}", std::process::id()));
    eprintln!("xtask bench: hdi cluster link");
    let result = (|| -> anyhow::Result<(Figures, Figures)> {
        let hdi = run_hdi(release, &root.join("hdi"), records).context("hdi")?;
        eprintln!("xtask bench: MirrorMaker 2 between two Apache Kafka clusters");
        let mm2 = run_mm2(release, &lib, &root.join("mm2"), records).context("MirrorMaker 2")?;
        Ok((hdi, mm2))
    })();
    // Each side's processes are stopped and their directories removed as they finish.
    let _ = std::fs::remove_dir_all(&root);
    let (hdi, mm2) = result?;
    print(&hdi, &mm2);
    Ok(())
}

/// A release broker in `dir` (as the broker bench starts one).
fn start_hdi(processes: &mut Processes, name: &str, release: &Path) -> anyhow::Result<String> {
    let dir = processes.dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let child = crate::bench::start(crate::bench::Peer::Hdi, release, None, &dir, port)?;
    processes.children.push((name.to_owned(), child));
    Ok(format!("127.0.0.1:{port}"))
}

fn run_hdi(release: &Path, dir: &Path, records: u64) -> anyhow::Result<Figures> {
    let mut processes = Processes::new(dir.to_owned())?;
    let a = start_hdi(&mut processes, "a", release)?;
    let b = start_hdi(&mut processes, "b", release)?;
    let side = Side {
        release,
        a: a.clone(),
        b: b.clone(),
        prefix: "",
    };
    let mut figures = prepare(&side, records)?;
    let started = Instant::now();
    side.on_b(&[
        "cluster-config",
        "--set",
        &format!("hdi.link.dr.bootstrap.servers={a}"),
        "--set",
        &format!("hdi.link.dr.topics={HDI_TOPICS}"),
        "--set",
        &format!("hdi.link.dr.groups={GROUP}"),
    ])?;
    measure(&side, &mut figures, started)?;

    // A planned switchover: `promote` stops every partition of the link once it holds all of
    // A's; time until a write to the 100-partition topic is acknowledged on B.
    switchover(&side, &mut figures, || {
        side.on_b(&["cluster-config", "--set", "hdi.link.dr.state=promote"])?;
        first_write(&side, "switch")
    })?;

    // Forced failover, on a fresh pair.
    drop(processes);
    let mut processes = Processes::new(dir.to_owned())?;
    let a = start_hdi(&mut processes, "a", release)?;
    let b = start_hdi(&mut processes, "b", release)?;
    let side = Side {
        release,
        a: a.clone(),
        b,
        prefix: "",
    };
    side.on_a(&["create-topic", "--topic", "loss", "--partitions", "3"])?;
    side.on_b(&[
        "cluster-config",
        "--set",
        &format!("hdi.link.dr.bootstrap.servers={a}"),
        "--set",
        "hdi.link.dr.topics=loss",
    ])?;
    let pid = processes.pid("a").context("no broker a")?;
    forced_failover(&side, &mut processes, "a", pid, &mut figures, |side| {
        let started = Instant::now();
        side.on_b(&["cluster-config", "--set", "hdi.link.dr.state=failover"])?;
        first_write(side, "loss")?;
        let failover = started.elapsed();
        let mut reported = None;
        time_until(
            "the link's loss report",
            Duration::from_secs(30),
            POLL,
            || {
                let answer = side.on_b(&[
                    "broker-config",
                    "--broker",
                    "1",
                    "--key",
                    "hdi.link.dr.partitions",
                ])?;
                let partitions: serde_json::Value =
                    serde_json::from_str(answer["value"].as_str().unwrap_or("[]"))?;
                let partitions = partitions.as_array().cloned().unwrap_or_default();
                if partitions.len() == 3 && partitions.iter().all(|p| p["loss_records"].is_i64()) {
                    reported = Some((
                        partitions
                            .iter()
                            .filter_map(|p| p["loss_records"].as_i64())
                            .sum(),
                        partitions
                            .iter()
                            .filter_map(|p| p["loss_ms"].as_i64())
                            .max()
                            .unwrap_or(0),
                    ));
                    return Ok(true);
                }
                Ok(false)
            },
        )?;
        Ok((Some(failover), reported))
    })?;
    Ok(figures)
}

/// Polls writes (one acks=all record to partition 0 of B's `topic`) until one is acknowledged:
/// how long that took.
fn first_write(side: &Side<'_>, topic: &str) -> anyhow::Result<()> {
    let topic = side.mirror(topic);
    time_until("a write on B", Duration::from_secs(60), POLL, || {
        Ok(side
            .on_b(&["probe", "--topic", &topic, "--timeout-s", "1"])
            .is_ok())
    })
    .map(drop)
}

/// Topics and the backlog on A, and the group, before anything mirrors.
fn prepare(side: &Side<'_>, records: u64) -> anyhow::Result<Figures> {
    for (topic, partitions) in [
        ("backlog", "3"),
        ("trimmed", "3"),
        ("lag", "3"),
        ("switch", "100"),
    ] {
        // A broker that has just started may not take it yet.
        time_until("creating a topic", Duration::from_secs(60), POLL, || {
            Ok(side
                .on_a(&["create-topic", "--topic", topic, "--partitions", partitions])
                .is_ok())
        })?;
    }
    // The group exists on A from the start (MirrorMaker lists groups every 600 s).
    side.on_a(&["commit", "--group", GROUP, "--topic", "backlog"])?;
    eprintln!("xtask bench: {records} records of 1 KiB into the source");
    side.on_a(&[
        "produce-ids",
        "--topic",
        "backlog",
        "--partitions",
        "3",
        "--records",
        &records.to_string(),
    ])?;
    let backlog = side.end_offsets(&side.a, "backlog")?;
    anyhow::ensure!(backlog == records as i64, "A holds {backlog} of {records}");
    // In two writes, so that the cut falls between batches, as retention's does (it deletes
    // whole segments). (A cut inside a batch stalls hdi's mirror of that partition: the
    // source's answer starts at the batch, below the mirror's log start.)
    let (per_partition, cut) = TRIMMED;
    for (records, first) in [
        (cut as u64 * 3, 1u64 << 40),
        ((per_partition - cut as u64) * 3, (1 << 40) + cut as u64 * 3),
    ] {
        side.on_a(&[
            "produce-ids",
            "--topic",
            "trimmed",
            "--partitions",
            "3",
            "--records",
            &records.to_string(),
            "--first-id",
            &first.to_string(),
        ])?;
    }
    side.on_a(&[
        "delete-records",
        "--topic",
        "trimmed",
        "--before",
        &TRIMMED.1.to_string(),
    ])?;
    // The backlog is still being written back: flush it first, or the mirror pays for it.
    crate::util::run("sync", &mut Command::new("sync"))?;
    Ok(Figures {
        backlog,
        ..Figures::default()
    })
}

/// What both sides measure the same way once mirroring was started at `started`: throughput,
/// offsets, group offsets, lag, discovery.
fn measure(side: &Side<'_>, figures: &mut Figures, started: Instant) -> anyhow::Result<()> {
    eprintln!("xtask bench: mirroring the backlog");
    let backlog = figures.backlog;
    // From the first record seen on B (a link's or a connector's start-up is not throughput).
    let mut first: Option<(Instant, i64)> = None;
    time_until(
        "mirroring the backlog",
        Duration::from_secs(900),
        POLL,
        || {
            let end = side.b_end("backlog")?;
            if first.is_none() && end > 0 {
                first = Some((Instant::now(), end));
            }
            Ok(end >= backlog)
        },
    )?;
    let done = Instant::now();
    let (since, from) = match first {
        Some((at, count)) if count < backlog => (at, count),
        _ => (started, 0),
    };
    figures.mirror_mb_s =
        (backlog - from) as f64 * 1024.0 / 1e6 / done.duration_since(since).as_secs_f64();

    let compared = side.on_a(&[
        "compare",
        "--topic",
        "backlog",
        "--mirror-bootstrap",
        &side.b,
        "--mirror-topic",
        &side.mirror("backlog"),
        "--samples",
        "100",
    ])?;
    figures.sampled = compared["sampled"].as_u64().unwrap_or(0);
    figures.identical = compared["identical"].as_u64().unwrap_or(0);
    figures.same_end_partitions = compared["same_end_offsets"].as_u64().unwrap_or(0);
    let held = side.records(&side.a, "trimmed")?;
    if let Err(error) = time_until("mirroring trimmed", Duration::from_secs(60), POLL, || {
        Ok(side.records(&side.b, &side.mirror("trimmed")).unwrap_or(-1) >= held)
    }) {
        // Compared all the same: what B lacks counts as not identical.
        eprintln!("xtask bench: {error:#}");
    }
    let compared = side.on_a(&[
        "compare",
        "--topic",
        "trimmed",
        "--mirror-bootstrap",
        &side.b,
        "--mirror-topic",
        &side.mirror("trimmed"),
        "--samples",
        "100",
    ])?;
    figures.trimmed_sampled = compared["sampled"].as_u64().unwrap_or(0);
    figures.trimmed_identical = compared["identical"].as_u64().unwrap_or(0);

    // Group offsets: the group reads the whole backlog and commits on A; a poller watches B
    // while the lag runs go on (MirrorMaker's cadence is a minute).
    let before = committed(side.release, &side.b, &side.mirror("backlog"))?;
    let commit = side.on_a(&["commit", "--group", GROUP, "--topic", "backlog"])?;
    let committed_at = Instant::now();
    let wanted: Vec<i64> = commit["offsets"]
        .as_array()
        .context("no offsets")?
        .iter()
        .filter_map(serde_json::Value::as_i64)
        .collect();
    let poller = {
        let (release, b, topic) = (
            side.release.to_owned(),
            side.b.clone(),
            side.mirror("backlog"),
        );
        let every = if side.prefix.is_empty() {
            POLL
        } else {
            Duration::from_millis(500)
        };
        std::thread::spawn(move || -> anyhow::Result<(Duration, i64)> {
            loop {
                let now = committed(&release, &b, &topic)?;
                // Every partition holds a translation of the new commit (which is past every
                // earlier one).
                let moved = now.len() == wanted.len()
                    && now
                        .iter()
                        .enumerate()
                        .all(|(i, n)| *n > before.get(i).copied().unwrap_or(-1).max(0));
                if moved {
                    let behind = wanted.iter().zip(&now).map(|(w, n)| w - n).sum();
                    return Ok((committed_at.elapsed(), behind));
                }
                if committed_at.elapsed() > Duration::from_secs(200) {
                    bail!("no translated group offset on B after 200 s: {now:?}");
                }
                std::thread::sleep(every);
            }
        })
    };

    time_until(
        "the lag topic's mirror",
        Duration::from_secs(60),
        POLL,
        || Ok(side.b_end("lag")? >= 0),
    )?;
    for rate in RATES {
        eprintln!(
            "xtask bench: lag at {} MB/s offered",
            rate * 1024 / 1_000_000
        );
        let answer = side.on_a(&[
            "mirror-lag",
            "--topic",
            "lag",
            "--mirror-bootstrap",
            &side.b,
            "--mirror-topic",
            &side.mirror("lag"),
            "--rate",
            &rate.to_string(),
            "--seconds",
            LAG_SECONDS,
        ])?;
        figures.lags.push(Lag {
            rate,
            p50_ms: answer["p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99_ms: answer["p99_ms"].as_f64().unwrap_or(f64::NAN),
            mirrored: answer["mirrored"].as_u64().unwrap_or(0),
            sent: answer["sent"].as_u64().unwrap_or(0),
            mirrored_mb_s: answer["mirrored_mb_per_s"].as_f64().unwrap_or(f64::NAN),
        });
    }
    match poller.join() {
        Ok(Ok((after, behind))) => {
            figures.group_ms = Some(after.as_secs_f64() * 1000.0);
            figures.group_behind = behind;
        }
        Ok(Err(error)) => eprintln!("xtask bench: group offsets: {error:#}"),
        Err(_) => bail!("the group poller panicked"),
    }

    // Discovery: a new source topic that matches the filter, and one record in it.
    eprintln!("xtask bench: discovery");
    let started = Instant::now();
    side.on_a(&["create-topic", "--topic", "fresh-1"])?;
    side.on_a(&["probe", "--topic", "fresh-1"])?;
    time_until("discovery", Duration::from_secs(120), POLL, || {
        Ok(side.b_end("fresh-1")? >= 1)
    })?;
    figures.discovery_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(())
}

/// A group's committed offsets of a topic (empty while the topic does not exist).
fn committed(release: &Path, bootstrap: &str, topic: &str) -> anyhow::Result<Vec<i64>> {
    let answer = perf(
        release,
        bootstrap,
        &["committed", "--group", GROUP, "--topic", topic],
    )?;
    Ok(answer["offsets"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default())
}

/// 5 s at 10 MB/s into the 100-partition topic, then `switch` (which answers when B took a
/// write); the acknowledged records B lacks afterwards are the switchover's RPO.
fn switchover(
    side: &Side<'_>,
    figures: &mut Figures,
    switch: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    time_until(
        "the switch topic's mirror",
        Duration::from_secs(60),
        POLL,
        || Ok(side.b_end("switch")? >= 0),
    )?;
    eprintln!("xtask bench: planned switchover");
    let acked = std::env::temp_dir().join(format!(
        "hdi-bench-georep-switch-acked-{}",
        std::process::id()
    ));
    let acked_text = acked.display().to_string();
    let produced = side.on_a(&[
        "produce-ids",
        "--topic",
        "switch",
        "--partitions",
        "100",
        "--rate",
        "10000",
        "--seconds",
        "5",
        "--acked-file",
        &acked_text,
    ])?;
    let started = Instant::now();
    switch()?;
    figures.switch_ms = started.elapsed().as_secs_f64() * 1000.0;
    let missing = side.on_b(&[
        "missing",
        "--topic",
        &side.mirror("switch"),
        "--acked-file",
        &acked_text,
    ]);
    let _ = std::fs::remove_file(&acked);
    let missing = missing?;
    figures.switch_acked = produced["acked"].as_u64().unwrap_or(0);
    figures.switch_missing = missing["missing"].as_u64().unwrap_or(0);
    Ok(())
}

/// 10 MB/s into `loss` on A, which is SIGKILLed 6 s in; then `failover` (what B does about it,
/// answering how long until B took a write and the loss B reports); then the records A
/// acknowledged that B lacks.
fn forced_failover(
    side: &Side<'_>,
    processes: &mut Processes,
    a: &str,
    a_pid: u32,
    figures: &mut Figures,
    failover: impl FnOnce(&Side<'_>) -> anyhow::Result<(Option<Duration>, Option<(i64, i64)>)>,
) -> anyhow::Result<()> {
    time_until(
        "the loss topic's mirror",
        Duration::from_secs(60),
        POLL,
        || Ok(side.b_end("loss")? >= 0),
    )?;
    eprintln!("xtask bench: forced failover at 10 MB/s (SIGKILL of A's broker, pid {a_pid})");
    let acked = processes.dir.join("loss-acked");
    let log = std::fs::File::create(processes.dir.join("loss-producer.json"))?;
    let mut producer = Command::new(side.release.join("hdi-kafka-perf"))
        .args(["--bootstrap", &side.a, "produce-ids", "--topic", "loss"])
        .args(["--partitions", "3", "--rate", "10000", "--seconds", "10"])
        .args(["--message-timeout-ms", "3000", "--acked-file"])
        .arg(&acked)
        .stdout(log)
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .context("hdi-kafka-perf produce-ids")?;
    std::thread::sleep(Duration::from_secs(6));
    processes.kill(a);
    let status = producer.wait()?;
    anyhow::ensure!(status.success(), "produce-ids failed: {status}");
    let produced: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(processes.dir.join("loss-producer.json"))?
            .lines()
            .last()
            .unwrap_or(""),
    )?;
    let (failover_after, reported) = failover(side)?;
    let missing = side.on_b(&[
        "missing",
        "--topic",
        &side.mirror("loss"),
        "--acked-file",
        &acked.display().to_string(),
    ])?;
    figures.loss_acked = produced["acked"].as_u64().unwrap_or(0);
    figures.loss_missing = missing["missing"].as_u64().unwrap_or(0);
    figures.loss_reported = reported;
    figures.failover_ms = failover_after.map(|d| d.as_secs_f64() * 1000.0);
    Ok(())
}

/// Cluster ids of the two Kafka clusters (any 16 bytes, URL-safe base64).
const KAFKA_CLUSTER_IDS: [&str; 2] = ["808WB1O6S9OkoVQvrqcXBQ", "pcwaJH-RQoG6oux63Jz3WA"];

/// A one-node KRaft Kafka cluster (broker and controller in one JVM) in `dir/<name>`: formatted,
/// started, accepting connections; its process joins `processes`.
fn start_kafka(
    processes: &mut Processes,
    lib: &Path,
    name: &str,
    cluster_id: &str,
) -> anyhow::Result<String> {
    let cluster =
        crate::apache_kafka::Cluster::start(lib, &processes.dir.join(name), cluster_id, 1, "")?;
    let bootstrap = cluster.bootstrap();
    for child in cluster.into_children() {
        processes.children.push((format!("kafka-{name}"), child));
    }
    Ok(bootstrap)
}

fn run_mm2(release: &Path, lib: &Path, dir: &Path, records: u64) -> anyhow::Result<Figures> {
    let mut processes = Processes::new(dir.to_owned())?;
    let a = start_kafka(&mut processes, lib, "a", KAFKA_CLUSTER_IDS[0])?;
    let b = start_kafka(&mut processes, lib, "b", KAFKA_CLUSTER_IDS[1])?;
    let side = Side {
        release,
        a: a.clone(),
        b: b.clone(),
        prefix: "A.",
    };
    let mut figures = prepare(&side, records)?;
    side.on_a(&["create-topic", "--topic", "loss", "--partitions", "3"])?;
    let mm2 = processes.dir.join("mm2");
    std::fs::create_dir_all(&mm2)?;
    std::fs::write(
        mm2.join("mm2.properties"),
        format!(
            "clusters=A,B\n\
A.bootstrap.servers={a}\n\
B.bootstrap.servers={b}\n\
A->B.enabled=true\n\
A->B.topics={MM2_TOPICS}\n\
A->B.groups={GROUP}\n\
B->A.enabled=false\n\
tasks.max=4\n\
sync.group.offsets.enabled=true\n\
refresh.topics.interval.seconds=1\n\
replication.factor=1\n\
checkpoints.topic.replication.factor=1\n\
heartbeats.topic.replication.factor=1\n\
offset-syncs.topic.replication.factor=1\n\
offset.storage.replication.factor=1\n\
status.storage.replication.factor=1\n\
config.storage.replication.factor=1\n"
        ),
    )?;
    let log = std::fs::File::create(mm2.join("mm2.log"))?;
    let started = Instant::now();
    let child = crate::apache_kafka::java(lib, &mm2)?
        .args([
            "-Xmx1g",
            "org.apache.kafka.connect.mirror.MirrorMaker",
            "mm2.properties",
            "--clusters",
            "B",
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("java MirrorMaker")?;
    processes.children.push(("mirror-maker".to_owned(), child));
    let result = (|| {
        measure(&side, &mut figures, started)?;
        // No switchover in MirrorMaker: producers stop (the 5 s at 10 MB/s ended), B catches up,
        // then B's copy takes the first write.
        switchover(&side, &mut figures, || {
            let source = side.end_offsets(&side.a, "switch")?;
            time_until(
                "MirrorMaker's lag to reach 0",
                Duration::from_secs(120),
                POLL,
                || Ok(side.b_end("switch")? >= source),
            )?;
            first_write(&side, "switch")
        })?;
        let pid = processes.pid("kafka-a").context("no kafka a")?;
        forced_failover(
            &side,
            &mut processes,
            "kafka-a",
            pid,
            &mut figures,
            |side| {
                // Nothing to do but wait until MirrorMaker's last writes to B have landed.
                let mut last = -2;
                let mut stable_since = Instant::now();
                time_until("B to settle", Duration::from_secs(60), POLL, || {
                    let now = side.b_end("loss")?;
                    if now != last {
                        last = now;
                        stable_since = Instant::now();
                    }
                    Ok(stable_since.elapsed() > Duration::from_secs(3))
                })?;
                Ok((None, None))
            },
        )
    })();
    if result.is_err() {
        eprintln!("{}", crate::util::tail(&mm2.join("mm2.log"), 30));
    }
    result?;
    Ok(figures)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| format!("{v:.0}"))
}

/// The ratio as a target is phrased: `hdi / MM2` when higher is better, `MM2 / hdi` when lower
/// is.
fn ratio(hdi: f64, mm2: f64, higher_better: bool) -> String {
    let (value, label) = if higher_better {
        (hdi / mm2, "hdi/MM2")
    } else {
        (mm2 / hdi, "MM2/hdi")
    };
    if value.is_finite() {
        format!("{label} {value:.1}x")
    } else {
        "-".to_owned()
    }
}

fn row(figure: &str, hdi: &str, mm2: &str, ratio: &str, target: &str) {
    println!("{figure:<58}{hdi:>18}{mm2:>18}  {ratio:<18}{target}");
}

fn print(hdi: &Figures, mm2: &Figures) {
    println!(
        "\nhdi cluster link vs MirrorMaker 2 (Apache Kafka 4.3.1, dedicated mode): two one-node clusters each, this machine, same generator (hdi-kafka-perf on librdkafka)"
    );
    row("figure", "hdi", "MM2", "ratio", "target");
    row(
        &format!("mirror throughput, {} records of 1 KiB (MB/s)", hdi.backlog),
        &format!("{:.1}", hdi.mirror_mb_s),
        &format!("{:.1}", mm2.mirror_mb_s),
        &ratio(hdi.mirror_mb_s, mm2.mirror_mb_s, true),
        ">= 2x MM2",
    );
    for (h, m) in hdi.lags.iter().zip(&mm2.lags) {
        let mb = format!("{:.1}", h.rate as f64 * 1024.0 / 1e6);
        let target = if h.rate == RATES[0] {
            "p99 <= 100 ms"
        } else {
            ""
        };
        row(
            &format!("lag p50 at {mb} MB/s offered (ms)"),
            &format!("{:.1}", h.p50_ms),
            &format!("{:.1}", m.p50_ms),
            &ratio(h.p50_ms, m.p50_ms, false),
            "",
        );
        row(
            &format!("lag p99 at {mb} MB/s offered (ms)"),
            &format!("{:.1}", h.p99_ms),
            &format!("{:.1}", m.p99_ms),
            &ratio(h.p99_ms, m.p99_ms, false),
            target,
        );
        row(
            &format!("  records on B of sent (within {LAG_SECONDS} s + 15 s)"),
            &format!("{}/{}", h.mirrored, h.sent),
            &format!("{}/{}", m.mirrored, m.sent),
            "",
            "",
        );
        row(
            "  rate B delivered, first send to last arrival (MB/s)",
            &format!("{:.1}", h.mirrored_mb_s),
            &format!("{:.1}", m.mirrored_mb_s),
            "",
            "",
        );
    }
    let share = |identical: u64, sampled: u64| {
        if sampled == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.1}% ({identical}/{sampled})",
                identical as f64 * 100.0 / sampled as f64
            )
        }
    };
    row(
        "offsets identical: records at sampled backlog offsets",
        &share(hdi.identical, hdi.sampled),
        &share(mm2.identical, mm2.sampled),
        "",
        "100% (MM2: no)",
    );
    row(
        &format!(
            "  same, topic trimmed below offset {} before mirroring",
            TRIMMED.1
        ),
        &share(hdi.trimmed_identical, hdi.trimmed_sampled),
        &share(mm2.trimmed_identical, mm2.trimmed_sampled),
        "",
        "100% (MM2: no)",
    );
    row(
        "partitions with equal end offsets after the backlog",
        &format!("{}/3", hdi.same_end_partitions),
        &format!("{}/3", mm2.same_end_partitions),
        "",
        "",
    );
    row(
        "group offset on B after a commit on A (ms)",
        &ms(hdi.group_ms),
        &ms(mm2.group_ms),
        &match (hdi.group_ms, mm2.group_ms) {
            (Some(h), Some(m)) => ratio(h, m, false),
            _ => "-".to_owned(),
        },
        "<= 1000 (MM2: 60 s by default)",
    );
    row(
        "  records B's offset is behind A's commit",
        &hdi.group_behind.to_string(),
        &mm2.group_behind.to_string(),
        "",
        "0",
    );
    row(
        "new topic: created on A to its record on B (ms)",
        &format!("{:.0}", hdi.discovery_ms),
        &format!("{:.0}", mm2.discovery_ms),
        &ratio(hdi.discovery_ms, mm2.discovery_ms, false),
        "<= 2000 (MM2 refresh lowered to 1 s)",
    );
    row(
        "planned switchover, 100 partitions (ms)",
        &format!("{:.0}", hdi.switch_ms),
        &format!("{:.0}", mm2.switch_ms),
        &ratio(hdi.switch_ms, mm2.switch_ms, false),
        "<= 5000",
    );
    row(
        "  switchover RPO: acked records missing on B",
        &format!("{}/{}", hdi.switch_missing, hdi.switch_acked),
        &format!("{}/{}", mm2.switch_missing, mm2.switch_acked),
        "",
        "0",
    );
    row(
        "forced failover at 10 MB/s: acked by A, lacking on B",
        &format!("{}/{}", hdi.loss_missing, hdi.loss_acked),
        &format!("{}/{}", mm2.loss_missing, mm2.loss_acked),
        "",
        "",
    );
    row(
        "  loss the system reports (records; ms)",
        &hdi.loss_reported
            .map_or("none".to_owned(), |(r, m)| format!("{r}; {m}")),
        &mm2.loss_reported
            .map_or("none".to_owned(), |(r, m)| format!("{r}; {m}")),
        "",
        "= lacking",
    );
    row(
        "  failover command to first write on B (ms)",
        &ms(hdi.failover_ms),
        &ms(mm2.failover_ms),
        "",
        "<= 2000",
    );
}
