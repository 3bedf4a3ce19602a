//! `cargo xtask bench broker`: the same load generator (`hdi-kafka-perf`, on librdkafka) against
//! `hdi-broker` and, in the same run, against tansu (its persistent sqlite engine and its memory
//! engine), printing each figure for every broker and hdi's ratio to the peer.
//!
//! Per run (record size × acks × broker) a fresh broker in a fresh directory: create a
//! 1-partition topic, produce N records, consume them, and read the broker's CPU time
//! (`/proc/<pid>/stat`) and peak RSS (`VmHWM`). Release builds; not part of `cargo xtask test`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::util::{cargo_build, run, target_dir, wait_for};

/// Flags of `cargo xtask bench broker`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark (`broker`, `control-plane`, `executor` or `georep`).
    what: String,
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Skip the tansu peer (hdi figures only, no ratios).
    #[arg(long)]
    skip_tansu: bool,
    /// Benchmark a 3-broker cluster (RF=3, acks=all, failover) against a single broker.
    #[arg(long)]
    cluster: bool,
    /// Against Apache Kafka itself (`broker`): one node each, both generators (hdi-kafka-perf
    /// and Kafka's own tools), throughput and latency at fixed offered rates; with `--cluster`,
    /// three nodes each and leader failover (`bench_kafka`).
    #[arg(long)]
    kafka: bool,
    /// Compare PLAINTEXT with SASL_SSL/SCRAM-SHA-512 on one broker (`broker`).
    #[arg(long)]
    security: bool,
    /// The log cleaner (`broker`): GB cleaned per CPU-second and append p50/p99 with and
    /// without a clean running, on a log of `--compaction-mib` MiB (hdi-log's `clean_bench`);
    /// then a release broker's produce p50/p99/p99.9 (acks=all, fixed rate) with and without
    /// its cleaner cleaning a compacted topic of that size (`bench_compaction`).
    #[arg(long)]
    compaction: bool,
    /// Offered rate of `--compaction`'s produce-latency windows, records/s of 100 B.
    #[arg(long, default_value_t = 5000)]
    compaction_rate: u64,
    /// Length of each of `--compaction`'s produce-latency windows, in seconds.
    #[arg(long, default_value_t = 20)]
    compaction_seconds: u64,
    /// The broker's `--log-cleaner-io-max-bytes-per-second` in `--compaction` (0: unlimited,
    /// the broker's default, which cleans 512 MiB in about a second: too short for a window).
    #[arg(long, default_value_t = 32 << 20)]
    compaction_cleaner_io: u64,
    /// Transactions (`broker`): records/s of an idempotent acks=all producer in transactions
    /// of 100 records against the same producer without transactions, on one fresh broker.
    #[arg(long)]
    transactions: bool,
    /// Log size of `--compaction`, in MiB.
    #[arg(long, default_value_t = 512)]
    compaction_mib: u64,
    /// Leader kills in the failover part of `--cluster`.
    #[arg(long, default_value_t = 20)]
    faults: usize,
    /// Clusters created per kind (`control-plane`).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// JSON events in the data set (`executor`).
    #[arg(long, default_value_t = 5_000_000)]
    events: u64,
    /// Distinct accounts (`executor`).
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Files the events are split into (`executor`).
    #[arg(long, default_value_t = 50)]
    files: u64,
    /// Files read per micro-batch (`executor`).
    #[arg(long, default_value_t = 5)]
    max_files_per_trigger: u64,
    /// Skip Spark (`executor`: hdi figures only, no ratios).
    #[arg(long)]
    skip_spark: bool,
    /// Skip the Kafka part (`executor`).
    #[arg(long)]
    skip_kafka: bool,
    /// Skip hdi-executor (`executor`: Spark figures only).
    #[arg(long)]
    skip_hdi: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    Hdi,
    TansuSqlite,
    TansuMemory,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Hdi => "hdi-broker",
            Peer::TansuSqlite => "tansu-sqlite",
            Peer::TansuMemory => "tansu-memory",
        }
    }
}

#[derive(Default, Clone)]
pub(crate) struct Figures {
    pub(crate) produce_mb_s: f64,
    pub(crate) produce_rec_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) consume_mb_s: f64,
    pub(crate) produce_cpu_s_per_gb: f64,
    pub(crate) consume_cpu_s_per_gb: f64,
    /// CPU seconds per GB of the client (hdi-kafka-perf) that produced.
    pub(crate) client_produce_cpu_s_per_gb: f64,
    /// CPU seconds per GB of the client that consumed.
    pub(crate) client_consume_cpu_s_per_gb: f64,
    pub(crate) peak_rss_mb: f64,
}

/// Runs the benchmark.
pub fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    crate::tools::ensure_build_dependencies()?;
    if args.what == "control-plane" {
        run(
            "cargo build --release",
            &mut cargo_build(
                &[
                    "hdi-control-plane",
                    "hdi-node-agent",
                    "hdi-broker",
                    "hdi-executor",
                    "hdi-kafka-perf",
                ],
                true,
            ),
        )?;
        return crate::bench_control_plane::run(&target_dir()?.join("release"), args.runs);
    }
    if args.what == "executor" {
        return crate::bench_executor::run_bench(&crate::bench_executor::Options {
            events: args.events,
            accounts: args.accounts,
            files: args.files,
            max_files_per_trigger: args.max_files_per_trigger,
            skip_spark: args.skip_spark,
            skip_kafka: args.skip_kafka,
            skip_hdi: args.skip_hdi,
        });
    }
    if args.what == "kubernetes" {
        return crate::bench_kubernetes::run_bench();
    }
    if args.what == "georep" {
        run(
            "cargo build --release",
            &mut cargo_build(&["hdi-broker", "hdi-kafka-perf"], true),
        )?;
        return crate::bench_georep::run(&target_dir()?.join("release"), args.records);
    }
    if args.what != "broker" {
        bail!(
            "unknown benchmark {:?}: try `cargo xtask bench broker`, `cargo xtask bench control-plane`, `cargo xtask bench executor`, `cargo xtask bench georep` or `cargo xtask bench kubernetes`",
            args.what
        );
    }
    if args.compaction {
        run_compaction(args.compaction_mib)?;
        run(
            "cargo build --release",
            &mut cargo_build(&["hdi-broker", "hdi-kafka-perf"], true),
        )?;
        return crate::bench_compaction::run(
            &target_dir()?.join("release"),
            &crate::bench_compaction::Options {
                mib: args.compaction_mib,
                rate: args.compaction_rate,
                seconds: args.compaction_seconds,
                cleaner_io: args.compaction_cleaner_io,
            },
        );
    }
    run(
        "cargo build --release",
        &mut cargo_build(&["hdi-broker", "hdi-kafka-perf"], true),
    )?;
    let release = target_dir()?.join("release");
    if args.cluster && args.kafka {
        return crate::bench_kafka::run_cluster(&release, args.records, args.faults);
    }
    if args.cluster {
        return crate::bench_cluster::run(&release, args.records, args.faults);
    }
    if args.security {
        return crate::bench_security::run(&release, args.records);
    }
    if args.kafka {
        return crate::bench_kafka::run(&release, args.records);
    }
    if args.transactions {
        return run_transactions(&release, args.records);
    }
    let tansu = if args.skip_tansu {
        None
    } else {
        Some(ensure_tansu()?)
    };
    let mut peers = vec![Peer::Hdi];
    if tansu.is_some() {
        peers.extend([Peer::TansuSqlite, Peer::TansuMemory]);
    }
    let mut table = Vec::new();
    for size in [100usize, 1024] {
        for acks in ["1", "all"] {
            let mut row = Vec::new();
            for peer in &peers {
                eprintln!(
                    "xtask bench: {} records of {size} B, acks={acks}, {}",
                    args.records,
                    peer.name()
                );
                let figures = one_run(*peer, &release, tansu.as_deref(), size, acks, args.records)
                    .with_context(|| format!("{} {size} B acks={acks}", peer.name()))?;
                row.push((*peer, figures));
            }
            table.push((size, acks, row));
        }
    }
    print_table(&table, args.records);
    Ok(())
}

/// `bench broker --compaction`: hdi-log's cleaner benchmark in release; prints its JSON line.
fn run_compaction(mib: u64) -> anyhow::Result<()> {
    eprintln!("xtask bench: compaction of a {mib} MiB log (1 KiB records, 100 000 keys)");
    let (text, errors, usage) = output_with_usage(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "run",
                "--release",
                "-q",
                "-p",
                "hdi-log",
                "--example",
                "clean_bench",
                "--",
            ])
            .arg(mib.to_string()),
    )?;
    if usage.code != Some(0) {
        bail!("clean_bench failed: {errors}");
    }
    let line = text.lines().last().unwrap_or("");
    let figures: serde_json::Value = serde_json::from_str(line).context("clean_bench output")?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(())
}

/// Producers per side in `--transactions`'s parallel rows (each its own transactional id).
const TXN_PARALLEL_PRODUCERS: u64 = 4;

/// A row of `--transactions`: record size, producers per side, plain records/s, transactional
/// records/s, transactions/s.
type TxnRow = (usize, u64, f64, f64, f64);

/// `--transactions`: on one fresh broker, `records` records of 100 B and of 1 KiB, produced
/// idempotently with acks=all to a 1-partition topic without transactions and then in
/// transactions of 100 records (each run its own topic, same broker), alternating twice so a
/// warming machine favours neither; the best of each. Once by one producer on each side (the
/// issue's target: transactional ≥ 80% of plain) and once by [`TXN_PARALLEL_PRODUCERS`] on each
/// side. hdi-kafka-perf flushes before each commit with librdkafka's own flush: rdkafka's
/// `commit_transaction` would add 100 ms of polling to every transaction (see its
/// `flush_now`).
fn run_transactions(release: &Path, records: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hdi-bench-txn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut child = start(Peer::Hdi, release, None, &dir, port)?;
    let bootstrap = format!("127.0.0.1:{port}");
    let result = (|| -> anyhow::Result<Vec<TxnRow>> {
        let mut rows = Vec::new();
        let records_text = records.to_string();
        for producers in [1, TXN_PARALLEL_PRODUCERS] {
            let producers_text = producers.to_string();
            for size in [100usize, 1024] {
                let size_text = size.to_string();
                let (mut plain, mut txn, mut txn_per_s) = (0f64, 0f64, 0f64);
                for round in 0..2 {
                    for (kind, per_txn) in [("plain", "0"), ("txn", "100")] {
                        let topic = format!("{kind}-{size}-{producers}p-{round}");
                        perf(release, &bootstrap, &["create-topic", "--topic", &topic])?;
                        let figures = perf(
                            release,
                            &bootstrap,
                            &[
                                "txn-produce",
                                "--topic",
                                &topic,
                                "--records",
                                &records_text,
                                "--record-size",
                                &size_text,
                                "--txn-records",
                                per_txn,
                                "--producers",
                                &producers_text,
                            ],
                        )?;
                        let rate = figures["records_per_s"].as_f64().unwrap_or(0.0);
                        eprintln!(
                            "  {size} B {kind} x{producers} round {round}: {rate:.0} records/s"
                        );
                        if kind == "plain" {
                            plain = plain.max(rate);
                        } else if rate > txn {
                            txn = rate;
                            txn_per_s = figures["transactions_per_s"].as_f64().unwrap_or(0.0);
                        }
                    }
                }
                rows.push((size, producers, plain, txn, txn_per_s));
            }
        }
        Ok(rows)
    })();
    stop(&mut child, &dir);
    let rows = result?;
    println!(
        "\nhdi-broker transactions: {records} records per run, 1 partition, idempotent acks=all (hdi-kafka-perf on librdkafka), transactions of 100 records; the same number of producers on each side"
    );
    println!(
        "{:>8} {:>10} {:>16} {:>16} {:>10} {:>8}",
        "size", "producers", "plain rec/s", "txn rec/s", "txn/s", "ratio"
    );
    for (size, producers, plain, txn, txn_per_s) in rows {
        let ratio = if plain > 0.0 { txn / plain } else { 0.0 };
        println!(
            "{size:>7}B {producers:>10} {plain:>16.0} {txn:>16.0} {txn_per_s:>10.0} {ratio:>7.2}x{}",
            if ratio >= 0.8 { "" } else { "  (target 0.80)" }
        );
    }
    Ok(())
}

fn ensure_tansu() -> anyhow::Result<PathBuf> {
    let root = target_dir()?.join("bench-tools/tansu");
    let bin = root.join("bin/tansu");
    if !bin.exists() {
        eprintln!(
            "xtask bench: installing tansu 0.6.0 with its sqlite engine (a release build, about 15 minutes)"
        );
        run(
            "cargo install tansu",
            Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args([
                    "install",
                    "tansu",
                    "--version",
                    "0.6.0",
                    "--locked",
                    "--features",
                    "dynostore,libsql",
                    "--root",
                ])
                .arg(&root),
        )?;
    }
    Ok(bin)
}

/// A port for a process to bind, from the race-free allocator (see `hdi_test_support::ports`).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(hdi_test_support::ports::take_one()?)
}

pub(crate) fn start(
    peer: Peer,
    release: &Path,
    tansu: Option<&Path>,
    dir: &Path,
    port: u16,
) -> anyhow::Result<Child> {
    let mut command = match peer {
        Peer::Hdi => {
            let mut c = Command::new(release.join("hdi-broker"));
            c.args(["--node-id", "1", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--data-dir")
                .arg(dir.join("data"));
            c
        }
        Peer::TansuSqlite | Peer::TansuMemory => {
            let url = format!("tcp://127.0.0.1:{port}");
            let engine = if peer == Peer::TansuSqlite {
                "sqlite://tansu.db"
            } else {
                "memory://tansu/"
            };
            let mut c = Command::new(tansu.context("tansu is not installed")?);
            c.args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                engine,
            ]);
            c
        }
    };
    spawn_broker(&mut command, dir, port, Duration::from_secs(60))
}

/// Starts a broker `command` in `dir` (output appended to `dir/broker.log`) and waits up to
/// `timeout` until it accepts connections on `port`.
pub(crate) fn spawn_broker(
    command: &mut Command,
    dir: &Path,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))?;
    let child = command
        .current_dir(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    wait_for("the broker to accept connections", timeout, || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    })
    .with_context(|| crate::util::tail(&dir.join("broker.log"), 20))?;
    Ok(child)
}

pub(crate) fn perf(
    release: &Path,
    bootstrap: &str,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let (text, errors, usage) = output_with_usage(
        Command::new(release.join("hdi-kafka-perf"))
            .args(["--bootstrap", bootstrap])
            .args(args),
    )?;
    if usage.code != Some(0) {
        bail!("hdi-kafka-perf {args:?} failed: {errors}");
    }
    let mut value: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or("")).context("hdi-kafka-perf output")?;
    // What the client itself spent: on a machine it shares with the broker, its CPU is the
    // broker's to lose.
    if let Some(object) = value.as_object_mut() {
        object.insert("client_cpu_seconds".into(), usage.cpu_seconds.into());
    }
    Ok(value)
}

/// Runs a command to its end, answering its stdout, its stderr and what it used (from `wait4`).
pub(crate) fn output_with_usage(
    command: &mut Command,
) -> anyhow::Result<(String, String, crate::sys::ChildUsage)> {
    use std::io::Read as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("{:?}", command.get_program()))?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    // stderr is read beside stdout, so a chatty client never blocks on a full pipe.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut text = String::new();
    let read = stdout.read_to_string(&mut text);
    let errors = errors.join().unwrap_or_default();
    // Reaped whatever the read did, so no client is left behind.
    let usage = crate::sys::wait_with_usage(child.id())?;
    read?;
    Ok((text, errors, usage))
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let hz: f64 = crate::util::output("getconf CLK_TCK", Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()
        .unwrap_or(100.0);
    Ok(ticks / hz)
}

pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn one_run(
    peer: Peer,
    release: &Path,
    tansu: Option<&Path>,
    size: usize,
    acks: &str,
    records: u64,
) -> anyhow::Result<Figures> {
    let dir =
        std::env::temp_dir().join(format!("hdi-bench-{}-{}", peer.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut child = start(peer, release, tansu, &dir, port)?;
    let bootstrap = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let result = produce_then_consume(child.id(), records, size, acks, |args| {
        perf(release, &bootstrap, args)
    });
    eprintln!("  done in {:.1}s", started.elapsed().as_secs_f64());
    stop(&mut child, &dir);
    result
}

/// Creates topic `perf`, produces `records` records of `size` bytes with `acks` and consumes
/// them all, through `call` (`hdi-kafka-perf` with its arguments); the broker `pid`'s CPU is
/// measured for each half.
pub(crate) fn produce_then_consume(
    pid: u32,
    records: u64,
    size: usize,
    acks: &str,
    call: impl Fn(&[&str]) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<Figures> {
    call(&["create-topic", "--topic", "perf"])?;
    let cpu0 = cpu_seconds(pid)?;
    let (records_text, size_text) = (records.to_string(), size.to_string());
    let produced = call(&[
        "produce",
        "--topic",
        "perf",
        "--records",
        &records_text,
        "--record-size",
        &size_text,
        "--acks",
        acks,
    ])?;
    let cpu1 = cpu_seconds(pid)?;
    let consumed = call(&["consume", "--topic", "perf", "--records", &records_text])?;
    let cpu2 = cpu_seconds(pid)?;
    let gb = records as f64 * size as f64 / 1e9;
    Ok(Figures {
        produce_mb_s: produced["mb_per_s"].as_f64().unwrap_or(0.0),
        produce_rec_s: produced["records_per_s"].as_f64().unwrap_or(0.0),
        p50_ms: produced["p50_ms"].as_f64().unwrap_or(0.0),
        p99_ms: produced["p99_ms"].as_f64().unwrap_or(0.0),
        consume_mb_s: consumed["mb_per_s"].as_f64().unwrap_or(0.0),
        produce_cpu_s_per_gb: (cpu1 - cpu0) / gb,
        consume_cpu_s_per_gb: (cpu2 - cpu1) / gb,
        client_produce_cpu_s_per_gb: produced["client_cpu_seconds"].as_f64().unwrap_or(0.0) / gb,
        client_consume_cpu_s_per_gb: consumed["client_cpu_seconds"].as_f64().unwrap_or(0.0) / gb,
        peak_rss_mb: peak_rss_mb(pid),
    })
}

/// Stops a bench broker (SIGTERM, then SIGKILL after 20 s) and removes its directory.
pub(crate) fn stop(child: &mut std::process::Child, dir: &Path) {
    crate::sys::signal(child.id(), libc::SIGTERM);
    let _ = wait_for("the broker to stop", Duration::from_secs(20), || {
        child.try_wait().ok().flatten()
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// One row of results: record size, acks, and each broker's figures.
type Row<'a> = (usize, &'a str, Vec<(Peer, Figures)>);

fn print_table(table: &[Row<'_>], records: u64) {
    println!(
        "\nhdi-broker vs tansu: {records} records per run, 1 partition, same generator (hdi-kafka-perf on librdkafka)"
    );
    type Metric = (&'static str, fn(&Figures) -> f64, bool);
    let metrics: [Metric; 8] = [
        ("produce MB/s", |f| f.produce_mb_s, true),
        ("produce records/s", |f| f.produce_rec_s, true),
        ("produce p50 ms", |f| f.p50_ms, false),
        ("produce p99 ms", |f| f.p99_ms, false),
        ("consume MB/s", |f| f.consume_mb_s, true),
        ("produce CPU s/GB", |f| f.produce_cpu_s_per_gb, false),
        ("consume CPU s/GB", |f| f.consume_cpu_s_per_gb, false),
        ("peak RSS MB", |f| f.peak_rss_mb, false),
    ];
    for (size, acks, row) in table {
        println!("\n{size} B records, acks={acks}");
        let header: Vec<String> = row
            .iter()
            .map(|(p, _)| format!("{:>14}", p.name()))
            .collect();
        println!(
            "{:<20}{}   ratios (hdi / peer; higher is better for hdi)",
            "",
            header.join("")
        );
        for (name, get, higher_better) in &metrics {
            let values: Vec<f64> = row.iter().map(|(_, f)| get(f)).collect();
            let cells: Vec<String> = values.iter().map(|v| format!("{v:>14.2}")).collect();
            let hdi = values[0];
            let ratios: Vec<String> = row
                .iter()
                .zip(&values)
                .skip(1)
                .map(|((peer, _), v)| {
                    let ratio = if *higher_better { hdi / v } else { v / hdi };
                    format!("{}: {ratio:.2}x", peer.name())
                })
                .collect();
            println!("{name:<20}{}   {}", cells.join(""), ratios.join("  "));
        }
    }
}
