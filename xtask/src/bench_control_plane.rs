//! `cargo xtask bench control-plane`: how fast the control plane turns a request into a running
//! cluster on the local fleet, and how fast its API answers with many clusters stored.
//!
//! Release binaries, a private durable PostgreSQL, one control plane and three node agents on
//! loopback. Measured: `PUT` to `Running` for a 3-broker Kafka cluster and for a 2-executor Spark
//! cluster (10 each, deleted in between); resizing 3 → 4 brokers including the rebalance of a
//! 100-partition RF=3 topic (3 runs); then, with an API-only control plane (`--no-reconciler`)
//! over 1,000 stored clusters, `GET` of one cluster and of a 100-cluster page at 500 requests/s
//! (open loop: latency counts from each request's scheduled time). Targets from the issue: ≤ 5 s,
//! ≤ 30 s, p99 < 20 ms. The peers' figures (HDInsight ~10 min, Confluent basic up to 5 min) are
//! quoted, not measured: no such service runs here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::free_port;
use crate::bench_cluster::percentile;
use crate::postgres::{Durability, Postgres};
use crate::util::{http_get, http_request, wait_for};

struct Fleet {
    dir: PathBuf,
    children: Vec<Child>,
    postgres: Postgres,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pid, _) in crate::util::pids_mentioning(&self.dir) {
            crate::sys::signal(pid, libc::SIGKILL);
        }
        let _ = self.postgres.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fleet {
    fn spawn(&mut self, name: &str, command: &mut Command) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        self.children.push(child);
        Ok(())
    }

    fn control_plane(
        &mut self,
        release: &Path,
        api: SocketAddr,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let url = self.postgres.url("hdi");
        self.spawn(
            &format!("control-plane-{}", api.port()),
            Command::new(release.join("hdi-control-plane"))
                .args(["serve", "--listen", &api.to_string()])
                .args([
                    "--workload-ports",
                    "24000-25999",
                    "--reconcile-interval",
                    "200ms",
                ])
                .args(extra)
                .arg("--admin-token-file")
                .arg(dir.join("admin-token"))
                .arg("--agent-token-file")
                .arg(dir.join("agent-token"))
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "warn"),
        )?;
        wait_for("the control plane", Duration::from_secs(60), || {
            matches!(http_get(api, "/readyz", None), Ok((200, _))).then_some(())
        })
    }
}

fn timed<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<(T, f64)> {
    let start = Instant::now();
    let value = loop {
        if let Some(value) = check() {
            break value;
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((value, start.elapsed().as_secs_f64()))
}

fn state(api: SocketAddr, token: &str, name: &str) -> Option<(u16, serde_json::Value)> {
    let (status, body) = http_get(
        api,
        &format!("/v1/workspaces/bench/clusters/{name}"),
        Some(token),
    )
    .ok()?;
    Some((status, serde_json::from_str(&body).unwrap_or_default()))
}

/// `method` on `path` under the bench workspace's clusters with `body`; the answer's body,
/// when its status is one of `expected`.
fn send(
    api: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
    expected: &[u16],
) -> anyhow::Result<String> {
    let (status, answer) = http_request(
        api,
        method,
        &format!("/v1/workspaces/bench/clusters/{path}"),
        Some(token),
        Some(body),
    )?;
    if !expected.contains(&status) {
        bail!("{method} {path}: HTTP {status}: {answer}");
    }
    Ok(answer)
}

fn put(api: SocketAddr, token: &str, name: &str, spec: &str) -> anyhow::Result<()> {
    send(api, token, "PUT", name, spec, &[200, 202]).map(drop)
}

fn delete_and_wait(api: SocketAddr, token: &str, name: &str) -> anyhow::Result<()> {
    let (status, body) = http_request(
        api,
        "DELETE",
        &format!("/v1/workspaces/bench/clusters/{name}"),
        Some(token),
        None,
    )?;
    if status != 202 {
        bail!("DELETE {name}: HTTP {status}: {body}");
    }
    timed(&format!("{name} deleted"), Duration::from_secs(120), || {
        matches!(state(api, token, name), Some((404, _))).then_some(())
    })?;
    Ok(())
}

fn summary(values: &[f64]) -> String {
    format!(
        "p50 {:.2} s, max {:.2} s (n={})",
        percentile(values, 0.5),
        values.iter().copied().fold(0.0, f64::max),
        values.len()
    )
}

/// Runs the benchmark.
///
/// # Errors
/// When a process fails to start or a cluster does not converge.
pub fn run(release: &Path, runs: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hdi-bench-cp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let token = format!("bench-admin-{}", std::process::id() as u64 * 7919);
    std::fs::write(dir.join("admin-token"), &token)?;
    std::fs::write(
        dir.join("agent-token"),
        format!("bench-agent-{}", std::process::id() as u64 * 104729),
    )?;
    let postgres = Postgres::start(
        &crate::postgres::find_or_install()?,
        &dir.join("pg"),
        Durability::Durable,
    )?;
    postgres.ensure_database("hdi")?;
    let mut fleet = Fleet {
        dir: dir.clone(),
        children: Vec::new(),
        postgres,
    };
    let result = measure(&mut fleet, release, runs, &token);
    if result.is_err() {
        // The logs go with the fleet's directory: show their ends first.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    eprintln!("==> {}:\n{}", path.display(), crate::util::tail(&path, 15));
                }
            }
        }
        for (pid, command) in crate::util::pids_mentioning(&dir) {
            eprintln!("running: {pid} {command}");
        }
    }
    result
}

fn measure(fleet: &mut Fleet, release: &Path, runs: usize, token: &str) -> anyhow::Result<()> {
    let dir = fleet.dir.clone();
    let token = token.to_owned();
    let api: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    fleet.control_plane(release, api, &[])?;
    for i in 0..3u32 {
        fleet.spawn(
            &format!("node-{i}"),
            Command::new(release.join("hdi-node-agent"))
                .args([
                    "--control-plane",
                    &format!("http://{api}"),
                    "--name",
                    &format!("node-{i}"),
                ])
                .args([
                    "--fault-domain",
                    &i.to_string(),
                    "--heartbeat-interval",
                    "1s",
                    "--poll-interval",
                    "200ms",
                ])
                .args(["--cpu-millis", "64000"])
                .arg("--data-dir")
                .arg(dir.join(format!("node-{i}")))
                .arg("--token-file")
                .arg(dir.join("agent-token"))
                .env("RUST_LOG", "warn"),
        )?;
    }
    wait_for("3 ready nodes", Duration::from_secs(60), || {
        let (_, body) = http_get(api, "/v1/nodes", Some(&token)).ok()?;
        let nodes: serde_json::Value = serde_json::from_str(&body).ok()?;
        (nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| n["status"] == "Ready")
            .count()
            == 3)
            .then_some(())
    })?;
    let (status, body) = http_request(
        api,
        "POST",
        "/v1/workspaces",
        Some(&token),
        Some(r#"{"name":"bench"}"#),
    )?;
    if status != 201 {
        bail!("workspace: HTTP {status}: {body}");
    }

    let kafka = |n: u32| {
        format!(
            r#"{{"kind":"kafka","node_pools":[{{"name":"brokers","role":"broker","replicas":{n}}}]}}"#
        )
    };
    let spark =
        r#"{"kind":"spark","node_pools":[{"name":"executors","role":"executor","replicas":2}]}"#;
    let mut kafka_times = Vec::new();
    let mut spark_times = Vec::new();
    for run in 0..runs {
        for (kind, spec, times) in [
            ("kafka", kafka(3), &mut kafka_times),
            ("spark", spark.to_owned(), &mut spark_times),
        ] {
            let name = format!("{kind}-{run}");
            let start = Instant::now();
            put(api, &token, &name, &spec)?;
            timed(&format!("{name} Running"), Duration::from_secs(120), || {
                let (_, cluster) = state(api, &token, &name)?;
                (cluster["status"]["state"] == "Running").then_some(())
            })?;
            let seconds = start.elapsed().as_secs_f64();
            eprintln!("xtask bench: {name}: PUT to Running in {seconds:.2} s");
            times.push(seconds);
            delete_and_wait(api, &token, &name)?;
        }
    }

    let mut resize_times = Vec::new();
    for run in 0..3 {
        let name = format!("resize-{run}");
        put(api, &token, &name, &kafka(3))?;
        timed(&format!("{name} Running"), Duration::from_secs(120), || {
            let (_, cluster) = state(api, &token, &name)?;
            (cluster["status"]["state"] == "Running").then_some(())
        })?;
        // Through the control plane's topic API: the cluster is secured (SASL_SSL, ACLs) by
        // default, and the control plane is its administrator.
        let topic = r#"{"name":"orders","partitions":100,"replication_factor":3}"#;
        send(
            api,
            &token,
            "POST",
            &format!("{name}/topics"),
            topic,
            &[201],
        )?;
        let start = Instant::now();
        let patch = r#"{"node_pools":[{"name":"brokers","replicas":4}]}"#;
        let body = send(api, &token, "PATCH", &name, patch, &[202])?;
        let op: serde_json::Value = serde_json::from_str(&body)?;
        let op = op["id"].as_str().unwrap_or_default().to_owned();
        let (steps, _) = timed(&format!("{name} resized"), Duration::from_secs(300), || {
            let (_, body) = http_get(api, &format!("/v1/operations/{op}"), Some(&token)).ok()?;
            let op: serde_json::Value = serde_json::from_str(&body).ok()?;
            (op["state"] != "Running").then_some(op)
        })?;
        if steps["state"] != "Succeeded" {
            bail!("resize failed: {steps}");
        }
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "xtask bench: {name}: 3 -> 4 brokers with 100 partitions rebalanced in {seconds:.2} s"
        );
        resize_times.push(seconds);
        delete_and_wait(api, &token, &name)?;
    }

    // API latency: an API-only control plane over 1,000 stored clusters.
    for child in &mut fleet.children {
        let _ = child.kill();
        let _ = child.wait();
    }
    fleet.children.clear();
    for (pid, _) in crate::util::pids_mentioning(&dir.join("node-0")) {
        crate::sys::signal(pid, libc::SIGKILL);
    }
    let api2: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    fleet.control_plane(release, api2, &["--no-reconciler"])?;
    for i in 0..1000 {
        put(api2, &token, &format!("c{i:04}"), &kafka(3))?;
    }
    let get = latency(api2, &token, 500, Duration::from_secs(20), |i| {
        format!("/v1/workspaces/bench/clusters/c{:04}", (i * 7919) % 1000)
    })?;
    let list = latency(api2, &token, 500, Duration::from_secs(20), |i| {
        let after = (i * 104_729) % 900;
        if after == 0 {
            "/v1/workspaces/bench/clusters?page_size=100".to_owned()
        } else {
            format!(
                "/v1/workspaces/bench/clusters?page_size=100&page_token={}",
                page_token(&format!("c{after:04}"))
            )
        }
    })?;

    println!();
    println!(
        "cargo xtask bench control-plane ({} runs; release; 3 local node agents)",
        runs
    );
    println!(
        "  PUT -> Running, Kafka 3 brokers:    {}   target <= 5 s",
        summary(&kafka_times)
    );
    println!(
        "  PUT -> Running, Spark 2 executors:  {}   target <= 5 s",
        summary(&spark_times)
    );
    println!(
        "  resize 3 -> 4 + 100 partitions:     {}   target <= 30 s",
        summary(&resize_times)
    );
    println!(
        "    peers (quoted, not measured here): HDInsight ~600 s to create; Confluent basic up to 300 s"
    );
    println!(
        "    ratio to HDInsight's 600 s: {:.0}x faster (Kafka p50)",
        600.0 / percentile(&kafka_times, 0.5).max(1e-9)
    );
    println!("  GET cluster, 1,000 stored, 500 req/s:  {get}   target p99 < 20 ms");
    println!("  GET 100-cluster page, 500 req/s:       {list}   target p99 < 20 ms");
    Ok(())
}

/// The page token the API issues for a name (hex of the name, as `service/node.rs` encodes it).
fn page_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Open-loop load: `rate` requests/s for `duration` over 8 keep-alive connections; latency from
/// each request's scheduled send time. Returns "p50 .. p99 .. max .." in milliseconds.
fn latency(
    api: SocketAddr,
    token: &str,
    rate: u32,
    duration: Duration,
    path: impl Fn(usize) -> String + Sync,
) -> anyhow::Result<String> {
    const CONNECTIONS: usize = 8;
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(200);
    let results: Vec<anyhow::Result<(Vec<f64>, usize)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let path = &path;
                scope.spawn(move || -> anyhow::Result<(Vec<f64>, usize)> {
                    let mut stream = TcpStream::connect(api)?;
                    stream.set_nodelay(true)?;
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut samples = Vec::new();
                    let mut errors = 0;
                    for i in (c..total).step_by(CONNECTIONS) {
                        let scheduled = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        write!(stream, "GET {} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\n\r\n", path(i))?;
                        let status = read_response(&mut reader)?;
                        if status != 200 {
                            errors += 1;
                        }
                        samples.push(scheduled.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok((samples, errors))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("load thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for result in results {
        let (samples, e) = result?;
        all.extend(samples);
        errors += e;
    }
    if errors > 0 {
        bail!("{errors} requests did not answer 200");
    }
    Ok(format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.iter().copied().fold(0.0, f64::max),
        all.len()
    ))
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("bad content-length")?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}
