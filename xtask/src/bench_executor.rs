//! `cargo xtask bench executor`: `hdi-executor` against Spark Structured Streaming on the same
//! machine in the same run, on one query: a 1-minute tumbling-window sum/count per account with a
//! 10 s watermark, append mode, trigger available-now.
//!
//! - Data: newline-delimited JSON files generated here from a fixed seed (`--events` events over
//!   `--accounts` accounts in `--files` files; event time advances 1 ms per event, i.e. 1,000
//!   events per simulated second, with up to 4 s of disorder, so nothing is late), written once
//!   into `<target>/bench-data/` and reused. The generator also counts the (window, account) pairs:
//!   all of them, and those whose window closes under the final watermark (max event time − 10 s),
//!   which is what an append-mode query emits when the input ends.
//! - Validation: both engines run on a small data set (`foreachBatch` count for Spark, the
//!   blackhole sink's `output_rows` for hdi) and on the full one (hdi only) and their output rows
//!   are checked against those counts.
//! - Files: `hdi-executor run --sql JOB --data-dir DIR --workers 2` (release build) and
//!   `bench/spark/executor_bench.py` (pyspark [`PYSPARK_VERSION`] from PyPI in
//!   `<target>/bench-tools/pyspark-venv`, `local[2]`, 2 shuffle partitions, `noop` sink) three
//!   ways, so that no ratio rests on a setting that favours hdi: Structured Streaming with
//!   `maxFilesPerTrigger` as hdi's, Structured Streaming with no per-trigger limit, and a batch
//!   job (`spark.read`, the same aggregation; it outputs every window, open ones included).
//!   Figures: rows/s over the query's own elapsed time (JVM start-up excluded), per-batch
//!   trigger-execution p50/max, peak RSS (`wait4`'s `ru_maxrss` for hdi; the `VmHWM` of the JVM
//!   process(es) under pyspark, sampled every 100 ms, for Spark), and hdi's ratios to each Spark
//!   run against the targets (≥ 5× throughput, ≤ ¼ memory).
//! - Kafka (`--skip-kafka` skips): a release `hdi-broker`, topic `tx` with 4 partitions loaded with
//!   the same events by `hdi-kafka-perf produce-files`, the same query from Kafka by hdi (target
//!   ≥ 1,000,000 events/s) and by Spark's Kafka source (`bench/spark/pom.xml`: the connector at
//!   the pinned Spark version and its runtime jars, from Maven Central, given as `spark.jars`;
//!   available-now without `maxOffsetsPerTrigger`), output rows validated as above; then a filter
//!   job (`amount > 900` into topic `alerts`, 1 s processing-time trigger) under a steady 50,000
//!   events/s for 30 s, timed from produce to the alert's arrival by `hdi-kafka-perf e2e-latency`
//!   (target p99 < 2 s), and the same filter on Spark (Kafka source to Kafka sink, `tx_live_spark`
//!   into `alerts-spark` on the same broker, trigger 1 s) under the same load and timing (target:
//!   hdi's p99 ≤ ½ of Spark's).
//!
//! Not part of `cargo xtask test`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::bench::{Peer, free_port, perf};
use crate::bench_cluster::percentile;
use crate::util::{cargo_build, run, tail, target_dir, wait_for};

/// Flags of `cargo xtask bench executor`.
#[derive(Debug, Clone)]
pub struct Options {
    pub events: u64,
    pub accounts: u64,
    pub files: u64,
    pub max_files_per_trigger: u64,
    pub skip_spark: bool,
    pub skip_kafka: bool,
    pub skip_hdi: bool,
}

/// Size of the validation data set (capped by the run's own size).
const VALIDATION_EVENTS: u64 = 200_000;
const VALIDATION_ACCOUNTS: u64 = 1_000;
const VALIDATION_FILES: u64 = 10;
const VALIDATION_FILES_PER_TRIGGER: u64 = 2;
/// Bump when the generator's output changes, so that cached data sets are not reused.
const GENERATOR_VERSION: u32 = 1;
/// Kills an engine run that takes longer than this.
const RUN_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// Steady load of the end-to-end latency part.
const LATENCY_RATE: u64 = 50_000;
const LATENCY_SECONDS: u64 = 30;
/// The pyspark installed into the venv; Spark's Kafka connector in `bench/spark/pom.xml` is built
/// for this exact Spark version.
const PYSPARK_VERSION: &str = "4.2.0";

/// Runs the benchmark.
pub fn run_bench(opts: &Options) -> anyhow::Result<()> {
    if opts.events == 0 || opts.accounts == 0 || opts.files == 0 || opts.max_files_per_trigger == 0
    {
        bail!("--events, --accounts, --files and --max-files-per-trigger must be positive");
    }
    let target = target_dir()?;
    let release = target.join("release");
    if !opts.skip_hdi {
        eprintln!(
            "xtask bench: building hdi-executor in release (cargo build --release; a cold build of \
             DataFusion takes 20-30 minutes, later ones seconds)"
        );
        // Into the target directory this xtask runs from, where the binaries are looked for.
        // Always the same set, even with --skip-kafka: another set unifies other features and
        // rebuilds DataFusion.
        let mut build = cargo_build(&["hdi-executor", "hdi-broker", "hdi-kafka-perf"], true);
        build.env("CARGO_TARGET_DIR", &target);
        run("cargo build --release", &mut build)?;
        let help = Command::new(release.join("hdi-executor"))
            .args(["run", "--help"])
            .output()
            .context("cannot start hdi-executor")?;
        if !help.status.success() {
            bail!(
                "this hdi-executor has no `run` subcommand yet (`hdi-executor run --help` failed): \
                 use --skip-hdi for the Spark side alone"
            );
        }
    }
    let python = if opts.skip_spark {
        None
    } else {
        Some(ensure_pyspark(&target)?)
    };

    let data_root = target.join("bench-data");
    let small_shape = Shape {
        events: opts.events.min(VALIDATION_EVENTS),
        accounts: opts.accounts.min(VALIDATION_ACCOUNTS),
        files: opts.files.min(VALIDATION_FILES),
    };
    let shape = Shape {
        events: opts.events,
        accounts: opts.accounts,
        files: opts.files,
    };
    let small = dataset(&data_root, small_shape)?;
    let full = dataset(&data_root, shape)?;
    let work = std::env::temp_dir().join(format!("hdi-bench-executor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        let mut report = Report::default();
        // Validation on the small data set: output rows against the generator's counts.
        let small_mfpt = VALIDATION_FILES_PER_TRIGGER.min(small_shape.files);
        if !opts.skip_hdi {
            eprintln!(
                "xtask bench: validation, hdi-executor on {} events",
                small_shape.events
            );
            let hdi = run_hdi(
                &release,
                &work.join("hdi-validate"),
                &files_job(&small.files_dir, small_mfpt),
            )?;
            report
                .checks
                .push(check("hdi-executor, validation", hdi.output_rows, &small));
        }
        if let Some(python) = &python {
            eprintln!(
                "xtask bench: validation, Spark on {} events (foreachBatch count)",
                small_shape.events
            );
            let spark = run_spark(
                python,
                &work.join("spark-validate"),
                &spark_files_args(&small.files_dir, Some(small_mfpt), "count"),
            )?;
            report
                .checks
                .push(check("Spark, validation", spark.output_rows, &small));
        }
        // The benchmark itself.
        if !opts.skip_hdi {
            eprintln!(
                "xtask bench: hdi-executor on {} events ({} files, {} per trigger)",
                shape.events, shape.files, opts.max_files_per_trigger
            );
            let hdi = run_hdi(
                &release,
                &work.join("hdi"),
                &files_job(&full.files_dir, opts.max_files_per_trigger),
            )?;
            report
                .checks
                .push(check("hdi-executor, full run", hdi.output_rows, &full));
            report.hdi = Some(hdi);
        }
        if let Some(python) = &python {
            eprintln!(
                "xtask bench: Spark Structured Streaming on {} events ({} files, {} per trigger)",
                shape.events, shape.files, opts.max_files_per_trigger
            );
            let spark = run_spark(
                python,
                &work.join("spark"),
                &spark_files_args(&full.files_dir, Some(opts.max_files_per_trigger), "noop"),
            )?;
            // The noop sink's `numOutputRows` from the progress.
            report
                .checks
                .push(check("Spark, full run", spark.output_rows, &full));
            report.spark = Some(spark);
            // Spark at its best: no per-trigger limit, and no streaming at all.
            eprintln!(
                "xtask bench: Spark Structured Streaming on {} events, no maxFilesPerTrigger",
                shape.events
            );
            let unlimited = run_spark(
                python,
                &work.join("spark-unlimited"),
                &spark_files_args(&full.files_dir, Some(0), "noop"),
            )?;
            report.checks.push(check(
                "Spark, no maxFilesPerTrigger",
                unlimited.output_rows,
                &full,
            ));
            report.spark_unlimited = Some(unlimited);
            eprintln!(
                "xtask bench: Spark batch job (spark.read) on {} events",
                shape.events
            );
            let batch = run_spark(
                python,
                &work.join("spark-batch"),
                &spark_files_args(&full.files_dir, None, "noop"),
            )?;
            report
                .checks
                .push(check("Spark, batch job", batch.output_rows, &full));
            report.spark_batch = Some(batch);
        }
        if !opts.skip_hdi && !opts.skip_kafka {
            let spark = match &python {
                Some(python) => Some((python.as_path(), spark_kafka_jars(&target)?)),
                None => None,
            };
            let kafka = run_kafka(&release, &work.join("kafka"), &full, shape, spark)?;
            report.checks.extend(kafka.output_checks.clone());
            report.kafka = Some(kafka);
        }
        Ok(report)
    })();
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("xtask bench: work directory kept: {}", work.display());
            return Err(error);
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    print_report(&report, shape, opts.max_files_per_trigger, &full);
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.what.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "output rows differ from the generator's count: {}",
            failed.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data

/// The parameters a data set is keyed by.
#[derive(Debug, Clone, Copy)]
struct Shape {
    events: u64,
    accounts: u64,
    files: u64,
}

/// A generated data set and what the query must output on it.
struct Dataset {
    files_dir: PathBuf,
    /// Distinct (1-minute window, account) pairs.
    pairs_all: u64,
    /// Those pairs whose window ends at or before the final watermark (max event time − 10 s).
    pairs_closed: u64,
}

/// Event time of the first event: 2026-11-26T10:00:00Z, in ms since the epoch.
fn start_ms() -> i64 {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|day| day.and_hms_opt(10, 0, 0))
        .map_or(0, |start| start.and_utc().timestamp_millis())
}

/// A deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The generated data set for `shape`, from the cache or written now.
fn dataset(root: &Path, shape: Shape) -> anyhow::Result<Dataset> {
    let name = format!(
        "executor-v{GENERATOR_VERSION}-e{}-a{}-f{}",
        shape.events, shape.accounts, shape.files
    );
    let dir = root.join(&name);
    let read = |dir: &Path| -> Option<Dataset> {
        let text = std::fs::read_to_string(dir.join("expected.json")).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(Dataset {
            files_dir: dir.join("files"),
            pairs_all: json["pairs_all"].as_u64()?,
            pairs_closed: json["pairs_closed"].as_u64()?,
        })
    };
    if let Some(cached) = read(&dir) {
        return Ok(cached);
    }
    eprintln!(
        "xtask bench: generating {} JSON events ({} accounts, {} files) into {}",
        shape.events,
        shape.accounts,
        shape.files,
        dir.display()
    );
    let started = Instant::now();
    let tmp = root.join(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("files"))?;
    let mut rng = SplitMix(0x5eed_0000_0000_2026);
    let mut pairs: HashSet<u64> = HashSet::new();
    let mut max_ts = i64::MIN;
    let t0 = start_ms();
    // Increasing modification times, so that Spark's file source (oldest first) and a source that
    // orders by name see the same order.
    let mtime0 = SystemTime::now() - Duration::from_secs(shape.files + 60);
    let mut line = String::with_capacity(128);
    for f in 0..shape.files {
        let (from, to) = (
            f * shape.events / shape.files,
            (f + 1) * shape.events / shape.files,
        );
        let path = tmp.join("files").join(format!("part-{f:05}.json"));
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        for i in from..to {
            let account = rng.next() % shape.accounts;
            let cents = rng.next() % 100_000 + 1;
            let jitter = (rng.next() % 4_000) as i64;
            let ts = t0 + i as i64 + jitter;
            line.clear();
            let _ = writeln!(
                line,
                r#"{{"account":"acct-{account:05}","amount":{}.{:02},"ts":"{}"}}"#,
                cents / 100,
                cents % 100,
                format_ts(ts)
            );
            out.write_all(line.as_bytes())?;
            pairs.insert(((ts.div_euclid(60_000) as u64) << 32) | account);
            max_ts = max_ts.max(ts);
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.set_modified(mtime0 + Duration::from_secs(f))?;
    }
    let watermark = max_ts - 10_000;
    let pairs_closed = pairs
        .iter()
        .filter(|p| ((**p >> 32) as i64 + 1) * 60_000 <= watermark)
        .count() as u64;
    std::fs::write(
        tmp.join("expected.json"),
        serde_json::json!({
            "events": shape.events, "accounts": shape.accounts, "files": shape.files,
            "pairs_all": pairs.len(), "pairs_closed": pairs_closed,
            "max_event_time": format_ts(max_ts),
        })
        .to_string(),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    eprintln!("  done in {:.1}s", started.elapsed().as_secs_f64());
    read(&dir).context("the generated data set cannot be read back")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of ms since the epoch.
fn format_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Jobs

const WINDOW_QUERY: &str = "INSERT INTO out
SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n
FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE)
GROUP BY window_start, window_end, account;
";

fn files_job(dir: &Path, max_files_per_trigger: u64) -> String {
    format!(
        "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'files', path = '{}', format = 'json', max_files_per_trigger = '{max_files_per_trigger}');
CREATE TABLE out WITH (connector = 'blackhole');
SET trigger = 'available_now';
{WINDOW_QUERY}",
        dir.display()
    )
}

fn kafka_job(bootstrap: &str) -> String {
    format!(
        "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'tx', format = 'json', starting_offsets = 'earliest', max_records_per_trigger = '500000', bootstrap_servers = '{bootstrap}');
CREATE TABLE out WITH (connector = 'blackhole');
SET trigger = 'available_now';
{WINDOW_QUERY}"
    )
}

/// The end-to-end latency job: a filter from `tx_live` into `alerts`. `id` (unique per event) is
/// carried through so that each alert is matched to the moment its event was produced.
fn alerts_job(bootstrap: &str) -> String {
    format!(
        "CREATE TABLE tx (id BIGINT, account TEXT, amount DOUBLE, ts TIMESTAMP)
  WITH (connector = 'kafka', topic = 'tx_live', format = 'json', starting_offsets = 'earliest', bootstrap_servers = '{bootstrap}');
CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', format = 'json', bootstrap_servers = '{bootstrap}');
SET trigger = 'processing_time 1s';
INSERT INTO alerts SELECT id, account, amount, ts FROM tx WHERE amount > 900;
"
    )
}

// ---------------------------------------------------------------------------------------------
// Running the engines

/// What one engine run measured.
#[derive(Debug, Default, Clone)]
struct EngineRun {
    input_rows: u64,
    output_rows: Option<u64>,
    /// The query's own elapsed time (hdi: `elapsed_ms` of the final line; Spark: `start()` to the
    /// end of `awaitTermination()`).
    query_s: f64,
    /// The process's whole life, start-up included.
    wall_s: f64,
    batch_ms: Vec<f64>,
    peak_rss_mb: f64,
    /// Spark only: the python driver's peak, not counted in `peak_rss_mb`.
    python_rss_mb: f64,
    version: String,
}

impl EngineRun {
    fn rows_per_s(&self) -> f64 {
        if self.query_s > 0.0 {
            self.input_rows as f64 / self.query_s
        } else {
            0.0
        }
    }
}

/// Peak memory of a process tree, sampled every 100 ms.
#[derive(Debug, Default)]
struct TreeMemory {
    /// Largest sum of VmRSS over the whole tree, in KiB.
    peak_total_kb: u64,
    /// Largest sum of VmRSS over the tree's `java` processes, in KiB.
    peak_java_kb: u64,
    /// pid -> (name when last seen, largest VmHWM seen in KiB).
    by_pid: BTreeMap<u32, (String, u64)>,
}

impl TreeMemory {
    /// The largest single-process VmHWM among processes named by `name_matches`, in MiB.
    fn max_hwm_mb(&self, name_matches: impl Fn(&str) -> bool) -> f64 {
        self.by_pid
            .values()
            .filter(|(name, _)| name_matches(name))
            .map(|(_, kb)| *kb as f64 / 1024.0)
            .fold(0.0, f64::max)
    }

    /// The JVM side of a pyspark run: the peak of the concurrent java processes' RSS (a launcher
    /// JVM runs before the real one), at least the real JVM's own VmHWM.
    fn java_mb(&self) -> f64 {
        (self.peak_java_kb as f64 / 1024.0).max(self.max_hwm_mb(|name| name == "java"))
    }
}

struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<TreeMemory>,
}

impl Sampler {
    fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut memory = TreeMemory::default();
            while !flag.load(Ordering::Relaxed) {
                let (mut total, mut java) = (0, 0);
                for pid in process_tree(root) {
                    if let Some((name, rss, hwm)) = memory_of(pid) {
                        total += rss;
                        if name == "java" {
                            java += rss;
                        }
                        // A forked child execs (python -> bash -> java): keep the latest name.
                        let entry = memory.by_pid.entry(pid).or_default();
                        entry.0 = name;
                        entry.1 = entry.1.max(hwm);
                    }
                }
                memory.peak_total_kb = memory.peak_total_kb.max(total);
                memory.peak_java_kb = memory.peak_java_kb.max(java);
                std::thread::sleep(Duration::from_millis(100));
            }
            memory
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> TreeMemory {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// `root` and all its live descendants.
fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    tree
}

/// Name, VmRSS and VmHWM (KiB) of a live process.
fn memory_of(pid: u32) -> Option<(String, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let kb = |key: &str| field(key)?.split_whitespace().next()?.parse::<u64>().ok();
    Some((field("Name:")?.to_owned(), kb("VmRSS:")?, kb("VmHWM:")?))
}

/// SIGKILLs `pid` unless `done` is set within `timeout`.
fn watchdog(pid: u32, timeout: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        while !flag.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                eprintln!("xtask bench: run exceeded {timeout:?}; killing pid {pid}");
                crate::sys::signal(pid, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    done
}

/// Runs one `hdi-executor run` job to completion and reads its progress lines.
fn run_hdi(release: &Path, dir: &Path, sql: &str) -> anyhow::Result<EngineRun> {
    std::fs::create_dir_all(dir)?;
    let job = dir.join("job.sql");
    std::fs::write(&job, sql)?;
    let log_path = dir.join("executor.log");
    let started = Instant::now();
    let mut child = Command::new(release.join("hdi-executor"))
        .arg("run")
        .arg("--sql")
        .arg(&job)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--workers", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("cannot start hdi-executor")?;
    let pid = child.id();
    let sampler = Sampler::start(pid);
    let done_flag = watchdog(pid, RUN_TIMEOUT);
    let mut result = EngineRun {
        version: "hdi-executor".into(),
        ..EngineRun::default()
    };
    let mut done = None;
    let mut progress_output = 0u64;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if json["done"].as_bool() == Some(true) {
            done = Some(json);
        } else if json.get("batch_id").is_some() {
            if let Some(ms) = json["duration_ms"]["trigger_execution"].as_f64() {
                result.batch_ms.push(ms);
            }
            progress_output += json["sink"]["num_output_rows"].as_u64().unwrap_or(0);
        }
        lines.push(line);
    }
    let (code, max_rss_kb) = crate::sys::wait_with_max_rss(pid)?;
    done_flag.store(true, Ordering::Relaxed);
    result.wall_s = started.elapsed().as_secs_f64();
    let memory = sampler.finish();
    std::fs::write(dir.join("progress.jsonl"), lines.join("\n"))?;
    if code != Some(0) {
        bail!(
            "hdi-executor run exited with {code:?}; its log ends:\n{}",
            tail(&log_path, 30)
        );
    }
    let done = done.with_context(|| {
        format!(
            "hdi-executor printed no final {{\"done\": true}} line; its log ends:\n{}",
            tail(&log_path, 30)
        )
    })?;
    result.input_rows = done["input_rows"].as_u64().unwrap_or(0);
    result.output_rows = Some(done["output_rows"].as_u64().unwrap_or(progress_output));
    result.query_s = done["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    result.peak_rss_mb = (max_rss_kb as f64 / 1024.0).max(memory.peak_total_kb as f64 / 1024.0);
    Ok(result)
}

/// Installs pyspark into a venv under the target directory once; returns its python.
fn ensure_pyspark(target: &Path) -> anyhow::Result<PathBuf> {
    let java = Command::new("java").arg("-version").output();
    if !java.is_ok_and(|o| o.status.success()) {
        bail!("Spark needs a Java runtime (java 17) on PATH; or run with --skip-spark");
    }
    let venv = target.join("bench-tools/pyspark-venv");
    let python = venv.join("bin/python");
    let has_pyspark = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                &format!(
                    "import pyspark, sys; sys.exit(pyspark.__version__ != '{PYSPARK_VERSION}')"
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_pyspark(&python) {
        eprintln!(
            "xtask bench: installing pyspark {PYSPARK_VERSION} from PyPI into {}",
            venv.display()
        );
        if !python.exists() {
            run(
                "python3 -m venv",
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
            )?;
        }
        run(
            "pip install pyspark",
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                &format!("pyspark=={PYSPARK_VERSION}"),
            ]),
        )?;
    }
    Ok(python)
}

/// Spark's Kafka connector and its runtime dependencies (`bench/spark/pom.xml`, at
/// [`PYSPARK_VERSION`]), copied from Maven Central once under `<target>/bench-tools/spark-kafka`:
/// the comma-separated list the script passes as `spark.jars`.
fn spark_kafka_jars(target: &Path) -> anyhow::Result<String> {
    let pom = crate::util::repo_root().join("bench/spark/pom.xml");
    let pinned = std::fs::read_to_string(&pom)?;
    if !pinned.contains(&format!("<version>{PYSPARK_VERSION}</version>")) {
        bail!("bench/spark/pom.xml does not name Spark {PYSPARK_VERSION}, the pinned pyspark");
    }
    let lib = crate::tools::maven_jars(
        &pom,
        &target.join("bench-tools/spark-kafka"),
        "Spark's Kafka connector",
    )?;
    let mut jars: Vec<String> = std::fs::read_dir(&lib)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jar"))
        .map(|p| p.display().to_string())
        .collect();
    jars.sort();
    if jars.is_empty() {
        bail!("no jars in {}", lib.display());
    }
    Ok(jars.join(","))
}

/// `bench/spark/executor_bench.py` with `args` (and `--checkpoint DIR/checkpoint`), started by
/// the venv's python with Spark's log in `DIR/spark.log`.
fn spark_command(python: &Path, dir: &Path, args: &[String]) -> anyhow::Result<Command> {
    std::fs::create_dir_all(dir)?;
    let mut command = Command::new(python);
    command
        .arg(crate::util::repo_root().join("bench/spark/executor_bench.py"))
        .args(args)
        .arg("--checkpoint")
        .arg(dir.join("checkpoint"))
        .env("PYSPARK_PYTHON", python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("spark.log"))?);
    Ok(command)
}

/// The script's arguments for the file source: streaming with `max_files_per_trigger` files per
/// batch (0: no limit), or the batch job (`None`).
fn spark_files_args(files: &Path, max_files_per_trigger: Option<u64>, sink: &str) -> Vec<String> {
    let mut args = vec!["--input".to_owned(), files.display().to_string()];
    match max_files_per_trigger {
        Some(n) => args.extend([
            "--mode".to_owned(),
            "files".to_owned(),
            "--max-files-per-trigger".to_owned(),
            n.to_string(),
            "--sink".to_owned(),
            sink.to_owned(),
        ]),
        None => args.extend(["--mode".to_owned(), "batch".to_owned()]),
    }
    args
}

/// Runs `bench/spark/executor_bench.py` once to completion (`args` pick the mode) and reads the
/// JSON line it prints.
fn run_spark(python: &Path, dir: &Path, args: &[String]) -> anyhow::Result<EngineRun> {
    let log_path = dir.join("spark.log");
    let started = Instant::now();
    let mut child = spark_command(python, dir, args)?
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the Spark script")?;
    let pid = child.id();
    let sampler = Sampler::start(pid);
    let done_flag = watchdog(pid, RUN_TIMEOUT);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .context("no stdout")?
        .read_to_string(&mut stdout)?;
    // wait4's ru_maxrss of the python process would cover the JVM it reaped too: sample instead.
    let (code, _) = crate::sys::wait_with_max_rss(pid)?;
    done_flag.store(true, Ordering::Relaxed);
    let wall_s = started.elapsed().as_secs_f64();
    let memory = sampler.finish();
    if code != Some(0) {
        bail!(
            "the Spark script exited with {code:?}; its log ends:\n{}",
            tail(&log_path, 30)
        );
    }
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .with_context(|| format!("Spark script output: {stdout}"))?;
    let batches = json["batches"].as_array().cloned().unwrap_or_default();
    Ok(EngineRun {
        input_rows: json["input_rows"].as_u64().unwrap_or(0),
        output_rows: json["output_rows"].as_u64(),
        query_s: json["elapsed_s"].as_f64().unwrap_or(0.0),
        wall_s,
        batch_ms: batches
            .iter()
            .filter_map(|b| b["trigger_execution_ms"].as_f64())
            .collect(),
        peak_rss_mb: memory.java_mb(),
        python_rss_mb: memory.max_hwm_mb(|name| name.starts_with("python")),
        version: format!(
            "Spark {} (pyspark {})",
            json["spark"].as_str().unwrap_or("?"),
            json["pyspark"].as_str().unwrap_or("?")
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Kafka

#[derive(Debug, Default)]
struct KafkaFigures {
    load_records_per_s: f64,
    run: EngineRun,
    /// The same query by Spark's Kafka source on the same topic.
    spark: Option<EngineRun>,
    output_checks: Vec<Check>,
    latency: serde_json::Value,
    /// The same filter job on Spark (its own input and output topics on the same broker).
    spark_latency: Option<serde_json::Value>,
}

/// `spark`: the venv's python and the `spark.jars` list of Spark's Kafka connector, to run Spark
/// on the same broker as well.
fn run_kafka(
    release: &Path,
    dir: &Path,
    data: &Dataset,
    shape: Shape,
    spark: Option<(&Path, String)>,
) -> anyhow::Result<KafkaFigures> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let mut broker = crate::bench::start(Peer::Hdi, release, None, dir, port)?;
    let bootstrap = format!("127.0.0.1:{port}");
    let result = (|| {
        let mut figures = KafkaFigures::default();
        perf(
            release,
            &bootstrap,
            &["create-topic", "--topic", "tx", "--partitions", "4"],
        )?;
        eprintln!(
            "xtask bench: loading {} events into topic tx (4 partitions) of hdi-broker",
            shape.events
        );
        let loaded = perf(
            release,
            &bootstrap,
            &[
                "produce-files",
                "--topic",
                "tx",
                "--partitions",
                "4",
                "--dir",
                &data.files_dir.to_string_lossy(),
            ],
        )?;
        figures.load_records_per_s = loaded["records_per_s"].as_f64().unwrap_or(0.0);
        eprintln!("xtask bench: hdi-executor on topic tx (available_now)");
        figures.run = run_hdi(release, &dir.join("hdi-kafka"), &kafka_job(&bootstrap))?;
        figures.output_checks.push(check(
            "hdi-executor, from Kafka",
            figures.run.output_rows,
            data,
        ));
        if let Some((python, jars)) = &spark {
            eprintln!(
                "xtask bench: Spark Structured Streaming on topic tx (Kafka source, available-now)"
            );
            let run = run_spark(
                python,
                &dir.join("spark-kafka"),
                &[
                    "--mode".to_owned(),
                    "kafka".to_owned(),
                    "--bootstrap".to_owned(),
                    bootstrap.clone(),
                    "--topic".to_owned(),
                    "tx".to_owned(),
                    "--jars".to_owned(),
                    jars.clone(),
                ],
            )?;
            figures
                .output_checks
                .push(check("Spark, from Kafka", run.output_rows, data));
            figures.spark = Some(run);
        }

        eprintln!(
            "xtask bench: end-to-end latency, {LATENCY_RATE} events/s for {LATENCY_SECONDS} s through a filter job"
        );
        perf(
            release,
            &bootstrap,
            &["create-topic", "--topic", "tx_live", "--partitions", "4"],
        )?;
        perf(release, &bootstrap, &["create-topic", "--topic", "alerts"])?;
        let job_dir = dir.join("hdi-alerts");
        std::fs::create_dir_all(&job_dir)?;
        std::fs::write(job_dir.join("job.sql"), alerts_job(&bootstrap))?;
        let log = std::fs::File::create(job_dir.join("executor.log"))?;
        let mut executor = Command::new(release.join("hdi-executor"))
            .arg("run")
            .arg("--sql")
            .arg(job_dir.join("job.sql"))
            .arg("--data-dir")
            .arg(job_dir.join("data"))
            .args(["--workers", "2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start hdi-executor")?;
        let latency = perf(
            release,
            &bootstrap,
            &[
                "e2e-latency",
                "--topic",
                "tx_live",
                "--alerts-topic",
                "alerts",
                "--partitions",
                "4",
                "--rate",
                &LATENCY_RATE.to_string(),
                "--seconds",
                &LATENCY_SECONDS.to_string(),
                "--accounts",
                &shape.accounts.to_string(),
            ],
        );
        crate::sys::signal(executor.id(), libc::SIGTERM);
        let stopped = wait_for("the executor to stop", Duration::from_secs(20), || {
            executor.try_wait().ok().flatten()
        });
        if stopped.is_err() {
            eprintln!("xtask bench: hdi-executor ignored SIGTERM for 20 s; killing it");
            let _ = executor.kill();
            let _ = executor.wait();
        }
        figures.latency = latency.with_context(|| {
            format!(
                "end-to-end latency; the executor's log ends:\n{}",
                tail(&job_dir.join("executor.log"), 30)
            )
        })?;
        if let Some((python, jars)) = &spark {
            figures.spark_latency = Some(spark_latency(
                release,
                python,
                &dir.join("spark-alerts"),
                &bootstrap,
                jars,
                shape,
            )?);
        }
        Ok(figures)
    })();
    crate::sys::signal(broker.id(), libc::SIGTERM);
    let _ = wait_for("the broker to stop", Duration::from_secs(20), || {
        broker.try_wait().ok().flatten()
    });
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

/// The end-to-end latency part on Spark: the filter job from `tx_live_spark` into `alerts-spark`
/// (Spark's Kafka source and sink, processing-time trigger 1 s) under the load and timing tool
/// hdi's filter job gets. Its own topics, so that neither engine sees the other's events.
fn spark_latency(
    release: &Path,
    python: &Path,
    dir: &Path,
    bootstrap: &str,
    jars: &str,
    shape: Shape,
) -> anyhow::Result<serde_json::Value> {
    eprintln!(
        "xtask bench: end-to-end latency on Spark, {LATENCY_RATE} events/s for {LATENCY_SECONDS} s through the same filter"
    );
    perf(
        release,
        bootstrap,
        &[
            "create-topic",
            "--topic",
            "tx_live_spark",
            "--partitions",
            "4",
        ],
    )?;
    perf(
        release,
        bootstrap,
        &["create-topic", "--topic", "alerts-spark"],
    )?;
    let mut job = spark_command(
        python,
        dir,
        &[
            "--mode".to_owned(),
            "kafka-filter".to_owned(),
            "--bootstrap".to_owned(),
            bootstrap.to_owned(),
            "--topic".to_owned(),
            "tx_live_spark".to_owned(),
            "--output-topic".to_owned(),
            "alerts-spark".to_owned(),
            "--jars".to_owned(),
            jars.to_owned(),
        ],
    )?
    .stdout(Stdio::null())
    .spawn()
    .context("cannot start the Spark filter job")?;
    let latency = perf(
        release,
        bootstrap,
        &[
            "e2e-latency",
            "--topic",
            "tx_live_spark",
            "--alerts-topic",
            "alerts-spark",
            "--partitions",
            "4",
            "--rate",
            &LATENCY_RATE.to_string(),
            "--seconds",
            &LATENCY_SECONDS.to_string(),
            "--accounts",
            &shape.accounts.to_string(),
        ],
    );
    // The JVM is pyspark's child: stop the query through python, and kill what is left.
    let tree = process_tree(job.id());
    crate::sys::signal(job.id(), libc::SIGTERM);
    let stopped = wait_for("the Spark job to stop", Duration::from_secs(30), || {
        job.try_wait().ok().flatten()
    });
    if stopped.is_err() {
        eprintln!("xtask bench: the Spark filter job ignored SIGTERM for 30 s; killing it");
        let _ = job.kill();
        let _ = job.wait();
    }
    for pid in tree.into_iter().skip(1) {
        if memory_of(pid).is_some_and(|(name, _, _)| name == "java") {
            crate::sys::signal(pid, libc::SIGKILL);
        }
    }
    latency.with_context(|| {
        format!(
            "end-to-end latency on Spark; its log ends:\n{}",
            tail(&dir.join("spark.log"), 30)
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Debug, Clone)]
struct Check {
    what: String,
    ok: bool,
    line: String,
}

/// Output rows must be the windows closed under the final watermark (what Spark's append mode
/// emits) or, for an engine that flushes open windows when its input ends, all windows.
fn check(what: &str, got: Option<u64>, data: &Dataset) -> Check {
    let (ok, verdict) = match got {
        Some(n) if n == data.pairs_closed => {
            (true, "= windows closed by the final watermark".to_owned())
        }
        Some(n) if n == data.pairs_all => (
            true,
            "= all windows (open ones flushed at end of input)".to_owned(),
        ),
        Some(n) => (
            false,
            format!(
                "MISMATCH: {n} (expected {} closed or {} in all)",
                data.pairs_closed, data.pairs_all
            ),
        ),
        None => (false, "no output count reported".to_owned()),
    };
    Check {
        what: what.to_owned(),
        ok,
        line: format!(
            "{what}: output rows {} {verdict}",
            got.map_or("-".to_owned(), |n| n.to_string())
        ),
    }
}

#[derive(Debug, Default)]
struct Report {
    hdi: Option<EngineRun>,
    /// `maxFilesPerTrigger` as hdi's `max_files_per_trigger`.
    spark: Option<EngineRun>,
    /// No per-trigger limit: all files in one batch.
    spark_unlimited: Option<EngineRun>,
    /// `spark.read`, the same aggregation, no streaming.
    spark_batch: Option<EngineRun>,
    kafka: Option<KafkaFigures>,
    checks: Vec<Check>,
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn print_report(report: &Report, shape: Shape, max_files_per_trigger: u64, data: &Dataset) {
    println!(
        "\nhdi-executor vs Spark Structured Streaming: 1-minute tumbling windows, sum and count per \
         account, 10 s watermark, append, trigger available-now"
    );
    println!(
        "{} JSON events, {} accounts, {} files, {} files per trigger; hdi --workers 2, Spark local[2] \
         with 2 shuffle partitions and the noop sink; expected output {} windows ({} incl. open ones)",
        shape.events,
        shape.accounts,
        shape.files,
        max_files_per_trigger,
        data.pairs_closed,
        data.pairs_all
    );
    let streaming = format!("Spark {max_files_per_trigger} files/trigger");
    let sparks: Vec<(&str, &EngineRun)> = [
        report.spark.as_ref().map(|r| (streaming.as_str(), r)),
        report
            .spark_unlimited
            .as_ref()
            .map(|r| ("Spark no per-trigger limit", r)),
        report.spark_batch.as_ref().map(|r| ("Spark batch job", r)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let engines: Vec<(&str, &EngineRun)> = report
        .hdi
        .as_ref()
        .map(|r| ("hdi-executor", r))
        .into_iter()
        .chain(sparks.iter().copied())
        .collect();
    if let Some((_, spark)) = sparks.first() {
        println!("{}", spark.version);
    }
    let both = report.hdi.is_some() && report.spark.is_some();
    print!("\n{:<26}", "");
    for (name, _) in &engines {
        print!("{name:>28}");
    }
    println!("{}", if both { "   hdi/Spark   target" } else { "" });
    type Metric = (&'static str, fn(&EngineRun) -> f64);
    let metrics: [Metric; 7] = [
        ("rows/s", EngineRun::rows_per_s),
        ("batch latency p50 ms", |r| percentile(&r.batch_ms, 0.5)),
        ("batch latency max ms", |r| {
            r.batch_ms.iter().copied().fold(0.0, f64::max)
        }),
        ("micro-batches", |r| r.batch_ms.len() as f64),
        ("peak RSS MB", |r| r.peak_rss_mb),
        ("query time s", |r| r.query_s),
        ("process wall time s", |r| r.wall_s),
    ];
    for (name, get) in metrics {
        print!("{name:<26}");
        for (_, run) in &engines {
            print!("{:>28.1}", get(run));
        }
        if let (Some(hdi), Some(spark)) = (&report.hdi, &report.spark) {
            let ratio = get(hdi) / get(spark);
            match name {
                "rows/s" => print!("   {ratio:>8.2}x   >= 5x: {}", met(ratio >= 5.0)),
                "peak RSS MB" => print!("   {ratio:>8.2}x   < 0.25x: {}", met(ratio < 0.25)),
                _ => print!("   {ratio:>8.2}x"),
            }
        }
        println!();
    }
    if let Some(hdi) = &report.hdi {
        // Against every Spark setting, so that no ratio rests on one that favours hdi.
        for (name, spark) in &sparks {
            let (speed, memory) = (
                hdi.rows_per_s() / spark.rows_per_s(),
                hdi.peak_rss_mb / spark.peak_rss_mb,
            );
            println!(
                "hdi vs {name}: rows/s {speed:.2}x (>= 5x: {}), peak RSS {memory:.2}x (<= 0.25x: {})",
                met(speed >= 5.0),
                met(memory <= 0.25)
            );
        }
    }
    if let Some((_, spark)) = sparks.first() {
        println!(
            "(Spark's peak RSS is its JVM's VmHWM; the pyspark python driver adds {:.1} MB, not counted; \
             the batch job's one \"batch\" is its whole action)",
            spark.python_rss_mb
        );
    }
    if let Some(kafka) = &report.kafka {
        let eps = kafka.run.rows_per_s();
        println!("\nFrom Kafka (one hdi-broker, topic tx with 4 partitions):");
        println!(
            "  load with hdi-kafka-perf produce-files: {:.0} records/s",
            kafka.load_records_per_s
        );
        println!(
            "  hdi-executor, same query, available-now: {eps:.0} events/s in {} batches, peak RSS {:.1} MB   >= 1,000,000/s: {}",
            kafka.run.batch_ms.len(),
            kafka.run.peak_rss_mb,
            met(eps >= 1_000_000.0)
        );
        if let Some(spark) = &kafka.spark {
            let (speed, memory) = (
                eps / spark.rows_per_s(),
                kafka.run.peak_rss_mb / spark.peak_rss_mb,
            );
            println!(
                "  {}, Kafka source, same query, available-now (no maxOffsetsPerTrigger): {:.0} events/s in {} batches, \
                 peak RSS {:.1} MB (JVM VmHWM)",
                spark.version,
                spark.rows_per_s(),
                spark.batch_ms.len(),
                spark.peak_rss_mb
            );
            println!(
                "  hdi/Spark from Kafka: rows/s {speed:.2}x (>= 5x: {}), peak RSS {memory:.2}x (<= 0.25x: {})",
                met(speed >= 5.0),
                met(memory <= 0.25)
            );
        }
        let latency_line = |who: &str, topic: &str, l: &serde_json::Value| {
            println!(
                "  end to end, {who}, {:.0} events/s for {LATENCY_SECONDS} s, filter amount > 900 into topic {topic} \
                 (1 s trigger): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} of {} alerts arrived ({} duplicates)",
                l["achieved_rate"].as_f64().unwrap_or(0.0),
                l["p50_ms"].as_f64().unwrap_or(0.0),
                l["p99_ms"].as_f64().unwrap_or(f64::INFINITY),
                l["max_ms"].as_f64().unwrap_or(0.0),
                l["received_alerts"].as_u64().unwrap_or(0),
                l["expected_alerts"].as_u64().unwrap_or(0),
                l["duplicates"].as_u64().unwrap_or(0),
            );
        };
        let l = &kafka.latency;
        let p99 = l["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
        latency_line("hdi-executor", "alerts", l);
        println!("    hdi p99 < 2 s: {}", met(p99 < 2000.0));
        if let Some(s) = &kafka.spark_latency {
            latency_line("Spark", "alerts-spark", s);
            let spark_p99 = s["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
            println!(
                "    hdi/Spark p50 {:.2}x, p99 {:.2}x   hdi p99 <= 1/2 of Spark's: {}",
                l["p50_ms"].as_f64().unwrap_or(f64::INFINITY)
                    / s["p50_ms"].as_f64().unwrap_or(f64::INFINITY),
                p99 / spark_p99,
                met(p99 <= spark_p99 / 2.0)
            );
        }
    }
    println!("\nOutput checked against the generator's count of (window, account) pairs:");
    for c in &report.checks {
        println!("  {}", c.line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_iso_8601_utc() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ts(start_ms() + 123), "2026-11-26T10:00:00.123Z");
        assert_eq!(format_ts(951_782_400_000 - 1), "2000-02-28T23:59:59.999Z");
        assert_eq!(
            format_ts(951_782_400_000 + 86_400_000),
            "2000-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn spark_file_runs_pick_their_mode() {
        let dir = Path::new("/data");
        assert_eq!(
            spark_files_args(dir, Some(5), "count"),
            [
                "--input",
                "/data",
                "--mode",
                "files",
                "--max-files-per-trigger",
                "5",
                "--sink",
                "count"
            ]
        );
        assert_eq!(
            spark_files_args(dir, Some(0), "noop")[5],
            "0",
            "0 files per trigger is no limit"
        );
        assert_eq!(
            spark_files_args(dir, None, "noop"),
            ["--input", "/data", "--mode", "batch"]
        );
    }

    /// `run_hdi` against a stand-in binary speaking the `hdi-executor run` contract.
    #[test]
    fn hdi_runs_are_read_from_progress_lines() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let fake = dir.join("hdi-executor");
        std::fs::write(
            &fake,
            r#"#!/bin/sh
[ "$1" = run ] && [ "$2" = --sql ] && [ -f "$3" ] && [ "$4" = --data-dir ] || exit 3
echo 'not json'
echo '{"batch_id":0,"num_input_rows":10,"duration_ms":{"trigger_execution":40},"sink":{"num_output_rows":0}}'
echo '{"batch_id":1,"num_input_rows":5,"duration_ms":{"trigger_execution":20},"sink":{"num_output_rows":7}}'
echo '{"done":true,"batches":2,"input_rows":15,"output_rows":7,"elapsed_ms":3000}'
"#,
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = run_hdi(dir, &dir.join("job"), "SELECT 1;").unwrap();
        assert_eq!(run.input_rows, 15);
        assert_eq!(run.output_rows, Some(7));
        assert_eq!(run.batch_ms, vec![40.0, 20.0]);
        assert!((run.rows_per_s() - 5.0).abs() < 1e-9);
        assert!(run.peak_rss_mb > 0.0);
        std::fs::write(&fake, "#!/bin/sh\necho oops >&2\nexit 2\n").unwrap();
        let error = run_hdi(dir, &dir.join("job2"), "SELECT 1;").unwrap_err();
        assert!(format!("{error:#}").contains("oops"), "{error:#}");
    }
}
