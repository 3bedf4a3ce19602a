//! The stream executor end to end: a real `hdi-broker`, an `hdi-executor` driver and workers, and
//! the banking query (1-minute tumbling windows per account with a 2-minute watermark, alerts above a
//! threshold, written to a Kafka topic) over a generated stream with known totals
//! (`e2e/clients/executor_feed.py`). While it runs, a worker is SIGKILLed, workers scale 2→3→1
//! (the state partitions move with them: checked in the progress), and the driver is SIGKILLed
//! and restarted on its data directory; the alerts must still equal
//! a batch recomputation exactly — every window, every account, no row missing or repeated.
//! Records behind the watermark are dropped and counted; records that are not JSON are counted
//! and land in the dead-letter topic without stopping the job.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use hdi_e2e::{Broker, Proc, TempDir, bin, client_command, client_script, test_python};

const T0: i64 = 1_795_687_200_000;
const THRESHOLD: f64 = 37_000.0;
const CHUNK: u64 = 3_000;
const CHUNKS: u64 = 12;

fn feed(bootstrap: &str, args: &[&str]) -> String {
    let out = client_command(test_python())
        .arg(client_script("executor_feed.py"))
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "executor_feed.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-m",
        "30",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        url,
        "-H",
        &format!("authorization: Bearer {CREDENTIAL}"),
    ]);
    if let Some(body) = body {
        command.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// The cluster credential the driver and workers share (and every call presents).
const CREDENTIAL: &str = "executor-jobs-test-credential-0123456789";

/// `--credential-file F --files-root D`: one credential file and files root for the test process.
fn cluster_args() -> Vec<std::ffi::OsString> {
    static DIR: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = TempDir::new("executor-cluster");
        hdi_stdx::secret::write_secret_file(&dir.path().join("credential"), CREDENTIAL).unwrap();
        dir
    });
    vec![
        "--credential-file".into(),
        dir.path().join("credential").into(),
        "--files-root".into(),
        dir.path().join("files").into(),
    ]
}

fn start_driver(dir: &std::path::Path, listen: &str, env: &[(&str, &str)]) -> (Proc, String) {
    let mut proc = Proc::spawn(
        "hdi-executor-driver",
        Command::new(bin("hdi-executor"))
            .args(["driver", "--listen", listen, "--worker-timeout", "3s"])
            .arg("--data-dir")
            .arg(dir)
            .args(cluster_args())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied()),
    );
    let address = proc
        .wait_for_word_after("hdi-executor driver ready on ", Duration::from_secs(30))
        .unwrap();
    (proc, address)
}

fn start_worker(dir: &std::path::Path, id: u32, driver: &str) -> Proc {
    let mut proc = Proc::spawn(
        &format!("hdi-executor-worker-{id}"),
        Command::new(bin("hdi-executor"))
            .args([
                "worker",
                "--id",
                &id.to_string(),
                "--listen",
                "127.0.0.1:0",
                "--driver",
                driver,
            ])
            .arg("--data-dir")
            .arg(dir.join(format!("worker-{id}")))
            .args(cluster_args())
            .env("RUST_LOG", "info"),
    );
    proc.wait_for_line("listening on", Duration::from_secs(30))
        .unwrap();
    proc
}

fn live_workers(driver: &str) -> Vec<u64> {
    let (_, body) = curl("GET", &format!("http://{driver}/v1/cluster"), None);
    body["workers"]
        .as_array()
        .map(|w| w.iter().filter_map(|w| w["id"].as_u64()).collect())
        .unwrap_or_default()
}

fn wait_workers(driver: &str, want: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_workers(driver) != want {
        assert!(
            Instant::now() < deadline,
            "workers {:?}, wanted {want:?}",
            live_workers(driver)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The live workers' addresses, by id.
fn worker_addresses(driver: &str) -> BTreeMap<u64, String> {
    let (_, body) = curl("GET", &format!("http://{driver}/v1/cluster"), None);
    body["workers"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| Some((w["id"].as_u64()?, w["address"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The last batch's state partitions by owner (worker address → partitions).
fn state_owners(driver: &str) -> BTreeMap<String, Vec<u64>> {
    let now = status(driver);
    serde_json::from_value(now["last_progress"]["state_operators"][0]["partition_owners"].clone())
        .unwrap_or_else(|e| panic!("no partition owners in {now}: {e}"))
}

/// Submits an available-now job, waits for it to complete and answers its preview.
fn run_available_now(driver: &str, name: &str, sql: &str, bootstrap: &str) -> serde_json::Value {
    let body =
        serde_json::json!({"name": name, "sql": sql, "bootstrap_servers": bootstrap}).to_string();
    let (code, created) = curl(
        "PUT",
        &format!("http://{driver}/v1/jobs/{name}"),
        Some(&body),
    );
    assert_eq!(code, 201, "{created}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = curl("GET", &format!("http://{driver}/v1/jobs/{name}"), None);
        if job["state"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline && job["state"] == "running",
            "{job}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    curl(
        "GET",
        &format!("http://{driver}/v1/jobs/{name}/preview?limit=1000"),
        None,
    )
    .1
}

fn status(driver: &str) -> serde_json::Value {
    curl("GET", &format!("http://{driver}/v1/jobs/banking"), None).1
}

/// Waits until the job has read `records` records of `tx` (every partition's end offset summed);
/// on timeout shows the processes' last log lines.
fn wait_consumed(driver: &str, records: u64, procs: &[&Proc]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = status(driver);
        let read: u64 = now["last_progress"]["sources"][0]["end_offset"]
            .as_object()
            .map(|o| o.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        if read >= records {
            return;
        }
        if Instant::now() > deadline {
            for proc in procs {
                let lines = proc.lines();
                let tail: Vec<&String> = lines.iter().rev().take(40).collect();
                eprintln!(
                    "---\n{}",
                    tail.into_iter()
                        .rev()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            panic!("the job did not read {records} records: {now}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces transactions `chunk * CHUNK .. (chunk + 1) * CHUNK`.
fn produce_chunk(bootstrap: &str, chunk: u64) {
    feed(
        bootstrap,
        &[
            "produce",
            "--start",
            &(chunk * CHUNK).to_string(),
            "--count",
            &CHUNK.to_string(),
        ],
    );
}

fn alerts(bootstrap: &str) -> Vec<serde_json::Value> {
    feed(bootstrap, &["read", "--topic", "alerts", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_banking_job_is_exact_across_worker_and_driver_crashes_and_rescaling() {
    let dir = TempDir::new("executor-jobs");
    let broker = Broker::start(&dir.path().join("broker"), None, &[]);
    let bootstrap = broker.bootstrap.clone();
    feed(&bootstrap, &["create"]);

    let driver_dir = dir.path().join("driver");
    // The first driver aborts after writing batch 3's alerts, before committing it (7 chunks are
    // there at submit, read 5,000 records a batch: batch 3 is the first to close a window).
    // An address of its own (not port 0): the driver is restarted on it below.
    let (mut driver, address) = start_driver(
        &driver_dir,
        &hdi_e2e::ports::loopback(),
        &[("HDI_EXECUTOR_CRASH_AFTER_SINK_WRITE", "3")],
    );
    let mut workers: BTreeMap<u32, Proc> = BTreeMap::new();
    for id in [1, 2] {
        workers.insert(id, start_worker(dir.path(), id, &address));
    }
    wait_workers(&address, &[1, 2]);

    // The first chunks, with records that are not JSON (7 of them).
    for chunk in 0..7 {
        produce_chunk(&bootstrap, chunk);
    }
    feed(&bootstrap, &["garbage", "--count", "7"]);

    // An unknown column is refused at submit time, with its position.
    let bad = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND) WITH (connector = 'kafka', topic = 'tx');\nCREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts');\nINSERT INTO alerts SELECT accnt FROM tx;";
    let body =
        serde_json::json!({"name": "bad", "sql": bad, "bootstrap_servers": bootstrap}).to_string();
    let (code, problem) = curl("PUT", &format!("http://{address}/v1/jobs/bad"), Some(&body));
    assert_eq!(code, 400, "{problem}");
    assert_eq!(problem["code"], "unknown_column", "{problem}");
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(3), Some(27)),
        "{problem}"
    );
    // So is an unknown topic.
    let body = serde_json::json!({"name": "bad", "sql": bad.replace("topic = 'tx'", "topic = 'nope'").replace("accnt", "account"), "bootstrap_servers": bootstrap}).to_string();
    let (code, problem) = curl(
        "POST",
        &format!("http://{address}/v1/jobs/validate"),
        Some(&body),
    );
    assert_eq!(
        (code, problem["code"].as_str()),
        (400, Some("unknown_topic")),
        "{problem}"
    );

    let sql = format!(
        // The watermark is global, as Spark's: the largest event time read minus the delay. A
        // chunk being produced while the job reads it can be read further on one partition than
        // on another (up to a chunk, 30 s of event time), and records of the lagging partition
        // would then be late (with a 10 s delay, one run in ten lost a few). A 2-minute delay
        // keeps every generated record on time; the flush event an hour later closes all windows.
        "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' MINUTE)
           WITH (connector = 'kafka', topic = 'tx', format = 'json', starting_offsets = 'earliest',
                 dead_letter_topic = 'tx-dlq', max_records_per_trigger = '5000');
         CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', format = 'json', key = 'account');
         SET trigger = 'processing_time 300ms';
         INSERT INTO alerts
         SELECT CAST(window_start AS BIGINT) AS ws, account, sum(amount) AS total, count(*) AS n
         FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE)
         GROUP BY window_start, window_end, account HAVING sum(amount) > {THRESHOLD};"
    );
    let body = serde_json::json!({"name": "banking", "sql": sql, "bootstrap_servers": bootstrap})
        .to_string();
    let (code, created) = curl(
        "PUT",
        &format!("http://{address}/v1/jobs/banking"),
        Some(&body),
    );
    assert_eq!(code, 201, "{created}");
    // The driver aborts after batch 3's alerts are written, before the commit; restarted on its
    // data directory, it runs batch 1 again, and the Kafka sink must skip what it already wrote
    // (checked below: no alert twice).
    driver.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(
        driver
            .lines()
            .iter()
            .any(|l| l.contains("aborting after batch 3's sink write")),
        "the driver did not stop at the crash point"
    );
    let (restarted, again) = start_driver(&driver_dir, &address, &[]);
    driver = restarted;
    assert_eq!(again, address);
    wait_workers(&address, &[1, 2]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !driver
        .lines()
        .iter()
        .any(|l| l.contains("was written before a crash: skipping its"))
    {
        assert!(
            Instant::now() < deadline,
            "the rerun of batch 3 skipped nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same definition again is a no-op.
    let (code, _) = curl(
        "PUT",
        &format!("http://{address}/v1/jobs/banking"),
        Some(&body),
    );
    assert_eq!(code, 200);
    // The same job with other access (as the control plane sends after a rotation or a new
    // cluster in the workspace) is updated in place and kept; another job is refused.
    let (_, held) = curl("GET", &format!("http://{address}/v1/jobs/banking"), None);
    let digest = held["definition_digest"].as_str().unwrap().to_owned();
    let narrowed =
        serde_json::json!({"name": "banking", "sql": sql, "bootstrap_servers": bootstrap,
        "allowed_kafka": [bootstrap]})
        .to_string();
    let (code, updated) = curl(
        "PUT",
        &format!("http://{address}/v1/jobs/banking"),
        Some(&narrowed),
    );
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["definition_digest"].as_str().unwrap(), digest);
    let saved = std::fs::read_to_string(driver_dir.join("jobs/banking/job.json")).unwrap();
    assert!(saved.contains("allowed_kafka"), "{saved}");
    let other =
        serde_json::json!({"name": "banking", "sql": "SELECT 1", "bootstrap_servers": bootstrap})
            .to_string();
    let (code, refused) = curl(
        "PUT",
        &format!("http://{address}/v1/jobs/banking"),
        Some(&other),
    );
    assert_eq!(
        (code, refused["code"].as_str()),
        (409, Some("job_conflict")),
        "{refused}"
    );
    wait_consumed(&address, 7 * CHUNK + 7, &[&driver]);

    // A worker is SIGKILLed while there is work; then workers go 2 → 3 → 1.
    produce_chunk(&bootstrap, 7);
    workers.get_mut(&1).unwrap().kill9();
    wait_consumed(&address, 8 * CHUNK + 7, &[&driver]);
    produce_chunk(&bootstrap, 8);
    workers.insert(3, start_worker(dir.path(), 3, &address));
    workers.insert(1, start_worker(dir.path(), 1, &address));
    wait_workers(&address, &[1, 2, 3]);
    produce_chunk(&bootstrap, 9);
    wait_consumed(&address, 10 * CHUNK + 7, &[&driver]);
    // The 4 state partitions now live on all three workers (2/1/1), the restarted worker 1
    // included (its memory was lost: it was sent the snapshots from the checkpoint).
    let owners = state_owners(&address);
    let addresses = worker_addresses(&address);
    assert_eq!(owners.len(), 3, "{owners:?}");
    assert_eq!(
        owners.values().map(Vec::len).sum::<usize>(),
        4,
        "{owners:?}"
    );
    assert!(
        owners.values().all(|p| !p.is_empty() && p.len() <= 2),
        "{owners:?}"
    );
    assert!(
        owners.keys().all(|o| addresses.values().any(|a| a == o)),
        "{owners:?} {addresses:?}"
    );
    for id in [2, 3] {
        workers
            .get_mut(&id)
            .unwrap()
            .terminate(Duration::from_secs(10))
            .unwrap();
    }
    wait_workers(&address, &[1]);
    produce_chunk(&bootstrap, 10);
    wait_consumed(&address, 11 * CHUNK + 7, &[&driver]);
    // Scaled down to worker 1: it owns every state partition.
    let owners = state_owners(&address);
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        vec![(worker_addresses(&address)[&1].clone(), vec![0, 1, 2, 3])]
    );
    assert!(
        driver
            .lines()
            .iter()
            .any(|l| l.contains("state partition moves")),
        "no state partition moved"
    );

    // The driver is SIGKILLed mid-run and restarted on its data directory.
    produce_chunk(&bootstrap, 11);
    std::thread::sleep(Duration::from_millis(150));
    driver.kill9();
    let (restarted, address) = start_driver(&driver_dir, &address, &[]);
    driver = restarted;
    wait_workers(&address, &[1]);
    // An event an hour later moves the watermark past every window (and gives the restarted
    // driver something to read even when the killed one had committed everything).
    feed(
        &bootstrap,
        &[
            "late",
            "--count",
            "1",
            "--ts",
            &(T0 + 3_600_000).to_string(),
        ],
    );
    wait_consumed(&address, CHUNKS * CHUNK + 8, &[&driver, &workers[&1]]);
    let expected: Vec<serde_json::Value> = feed(
        "unused",
        &[
            "expect",
            "--count",
            &(CHUNKS * CHUNK).to_string(),
            "--threshold",
            &THRESHOLD.to_string(),
        ],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert!(
        expected.len() > 20,
        "too few expected alerts: {}",
        expected.len()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let got = loop {
        let got = alerts(&bootstrap);
        if got.len() >= expected.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut rows: Vec<serde_json::Value> = got.iter().map(|r| r["value"].clone()).collect();
    rows.sort_by_key(|r| (r["ws"].as_i64(), r["account"].as_str().map(str::to_string)));
    if rows != expected {
        for line in driver.lines() {
            eprintln!("driver: {line}");
        }
    }
    assert_eq!(
        rows.len(),
        expected.len(),
        "alerts {rows:?}\nexpected {expected:?}"
    );
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got["ws"], want["ws"]);
        assert_eq!(got["account"], want["account"]);
        assert_eq!(
            got["total"].as_f64(),
            want["total"].as_f64(),
            "{got} vs {want}"
        );
        assert_eq!(got["n"], want["n"], "{got} vs {want}");
    }
    // The job API's preview of a Kafka sink: the last rows it wrote in this run, each one an
    // alert that is in the topic.
    let (_, preview) = curl(
        "GET",
        &format!("http://{address}/v1/jobs/banking/preview?limit=1000"),
        None,
    );
    for row in preview["rows"].as_array().unwrap() {
        assert!(
            rows.iter().any(|r| r["ws"] == row["ws"]
                && r["account"] == row["account"]
                && r["n"] == row["n"]),
            "preview row {row} is not an alert written"
        );
    }

    // Late records: dropped and counted, not in any output.
    feed(
        &bootstrap,
        &["late", "--count", "25", "--ts", &T0.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = curl(
            "GET",
            &format!("http://{address}/v1/jobs/banking/progress?limit=1000"),
            None,
        );
        let dropped: u64 = body["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["state_operators"][0]["num_rows_dropped_by_watermark"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum();
        if dropped == 25 {
            break;
        }
        assert!(Instant::now() < deadline, "late rows dropped: {dropped}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(alerts(&bootstrap).len(), expected.len());

    // The malformed records went to the dead-letter topic.
    let dead: std::collections::BTreeSet<String> = feed(&bootstrap, &["read", "--topic", "tx-dlq"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(dead.len(), 7, "{dead:?}");

    // A stream-static join with a compacted topic (latest value per key, tombstones delete),
    // run available-now into the memory sink and read through the preview API.
    feed(&bootstrap, &["accounts"]);
    let enrich = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP)
           WITH (connector = 'kafka', topic = 'tx', starting_offsets = 'earliest');
         CREATE TABLE accounts (id TEXT, tier TEXT) WITH (connector = 'upsert-kafka', topic = 'accounts');
         CREATE TABLE preview WITH (connector = 'memory', rows = '5000');
         SET trigger = 'available_now';
         INSERT INTO preview SELECT tx.account, a.tier, tx.amount
         FROM tx JOIN accounts a ON tx.account = a.id WHERE tx.amount > 495;";
    let preview = run_available_now(&address, "enrich", enrich, &bootstrap);
    let rows = preview["rows"].as_array().unwrap();
    let mut expected = 0;
    for i in 0..CHUNKS * CHUNK {
        let account = (i * 7919) % 40;
        if (i * 31) % 500 + 1 > 495 && account != 1 {
            expected += 1;
        }
    }
    assert_eq!(rows.len(), expected, "{preview}");
    for row in rows {
        let account = row["account"].as_str().unwrap();
        let n: u64 = account.trim_start_matches("acct-").parse().unwrap();
        let tier = match n {
            0 => "platinum",
            1 => panic!("acct-001 was deleted: {row}"),
            n if n % 2 == 0 => "gold",
            _ => "basic",
        };
        assert_eq!(row["tier"], tier, "{row}");
        assert!(row["amount"].as_f64().unwrap() > 495.0);
    }

    // Batches compressed with every Kafka codec (by confluent-kafka's librdkafka), read by the
    // workers' own Fetch path.
    feed(&bootstrap, &["codecs"]);
    let codecs = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP)
           WITH (connector = 'kafka', topic = 'tx-codecs', starting_offsets = 'earliest');
         CREATE TABLE preview WITH (connector = 'memory', rows = '1000');
         SET trigger = 'available_now';
         INSERT INTO preview SELECT account, amount FROM tx;";
    let preview = run_available_now(&address, "codecs", codecs, &bootstrap);
    let mut per_codec: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for row in preview["rows"].as_array().unwrap() {
        let entry = per_codec
            .entry(row["account"].as_str().unwrap().to_string())
            .or_default();
        entry.0 += 1;
        entry.1 += row["amount"].as_f64().unwrap();
    }
    let want: BTreeMap<String, (u64, f64)> = ["gzip", "lz4", "none", "snappy", "zstd"]
        .iter()
        .map(|c| ((*c).to_string(), (40, 780.0)))
        .collect();
    assert_eq!(per_codec, want, "{preview}");

    // A running job joins the compacted topic as of each batch: a tier changed between two
    // batches shows in the second batch's rows, and the first batch's rows keep the old tier.
    let live = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP)
           WITH (connector = 'kafka', topic = 'tx', starting_offsets = 'latest');
         CREATE TABLE accounts (id TEXT, tier TEXT) WITH (connector = 'upsert-kafka', topic = 'accounts');
         CREATE TABLE preview WITH (connector = 'memory');
         SET trigger = 'processing_time 200ms';
         INSERT INTO preview SELECT tx.account, a.tier FROM tx JOIN accounts a ON tx.account = a.id;";
    feed(
        &bootstrap,
        &["tier", "--account", "acct-late", "--tier", "silver"],
    );
    let body = serde_json::json!({"name": "tiers", "sql": live, "bootstrap_servers": bootstrap})
        .to_string();
    let (code, created) = curl(
        "PUT",
        &format!("http://{address}/v1/jobs/tiers"),
        Some(&body),
    );
    assert_eq!(code, 201, "{created}");
    let tiers = |want: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, preview) = curl(
                "GET",
                &format!("http://{address}/v1/jobs/tiers/preview?limit=100"),
                None,
            );
            let rows: Vec<String> = preview["rows"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|r| r["tier"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if rows.len() >= want {
                return rows;
            }
            assert!(Instant::now() < deadline, "{preview}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // The job starts at the topic's end once it has run its first trigger.
    std::thread::sleep(Duration::from_secs(2));
    feed(
        &bootstrap,
        &["late", "--count", "4", "--ts", &T0.to_string()],
    );
    assert_eq!(tiers(4), vec!["silver"; 4]);
    feed(
        &bootstrap,
        &["tier", "--account", "acct-late", "--tier", "diamond"],
    );
    feed(
        &bootstrap,
        &["late", "--count", "4", "--ts", &T0.to_string()],
    );
    let mut rows = tiers(8);
    rows.sort();
    assert_eq!(rows, [vec!["diamond"; 4], vec!["silver"; 4]].concat());

    let (code, _) = curl("DELETE", &format!("http://{address}/v1/jobs/banking"), None);
    assert_eq!(code, 204);
    assert!(!driver_dir.join("jobs/banking").exists());
    drop(broker);
}
