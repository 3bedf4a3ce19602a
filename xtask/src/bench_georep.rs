//! `cargo xtask bench georep`: hdi's cluster links between two release `hdi-broker`s on this
//! machine (fresh directories, loopback): how fast a backlog of 1 KiB records is mirrored, the
//! lag of each record from its send on the source to its receipt by a consumer of the mirror at
//! 10 MB/s and 50 MB/s offered (p50/p99), how long a new source topic takes to be mirrored, and
//! how long a planned switchover of 100 partitions takes until the first write on the mirror is
//! acknowledged. The peer, Apache Kafka's MirrorMaker 2 between two Kafka clusters, is
//! not measured yet: the figures are hdi's alone, against the targets.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::bench::{free_port, perf, stop};

/// A release broker in `dir` (as the broker bench starts one).
fn start(release: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir)?;
    crate::bench::start(crate::bench::Peer::Hdi, release, None, dir, port)
}

fn end_offsets(release: &Path, bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    let answer = perf(release, bootstrap, &["end-offsets", "--topic", topic])?;
    answer["total"].as_i64().context("no total")
}

/// Polls until `done` answers true; answers how long that took.
fn time_until(
    what: &str,
    timeout: Duration,
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(release: &Path, records: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hdi-bench-georep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (port_a, port_b) = (free_port()?, free_port()?);
    let mut a = start(release, &dir.join("a"), port_a)?;
    let mut b = start(release, &dir.join("b"), port_b)?;
    let result = measure(release, records, port_a, port_b);
    stop(&mut a, &dir.join("a"));
    stop(&mut b, &dir.join("b"));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(release: &Path, records: u64, port_a: u16, port_b: u16) -> anyhow::Result<()> {
    let (a, b) = (format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}"));
    for (topic, partitions) in [("backlog", "3"), ("lag", "3"), ("switch", "100")] {
        perf(
            release,
            &a,
            &["create-topic", "--topic", topic, "--partitions", partitions],
        )?;
    }
    eprintln!("xtask bench: {records} records of 1 KiB into the source");
    perf(
        release,
        &a,
        &[
            "produce",
            "--topic",
            "backlog",
            "--records",
            &records.to_string(),
            "--record-size",
            "1024",
        ],
    )?;
    let backlog = end_offsets(release, &a, "backlog")?;
    // The backlog is still being written back: flush it first, or the mirror pays for it.
    crate::util::run("sync", &mut Command::new("sync"))?;

    // Throughput: the link mirrors the backlog from nothing (discovery included).
    eprintln!("xtask bench: mirroring the backlog");
    let link = format!("hdi.link.dr.bootstrap.servers={a}");
    perf(
        release,
        &b,
        &[
            "cluster-config",
            "--set",
            &link,
            "--set",
            "hdi.link.dr.topics=backlog,lag,switch,fresh*",
        ],
    )?;
    // From the mirror topic's creation (discovery is measured on its own below).
    time_until("the backlog's mirror", Duration::from_secs(30), || {
        Ok(end_offsets(release, &b, "backlog")? >= 0)
    })?;
    let mirrored = time_until("mirroring the backlog", Duration::from_secs(600), || {
        Ok(end_offsets(release, &b, "backlog")? == backlog)
    })?;
    let mirror_mb_s = backlog as f64 * 1024.0 / 1e6 / mirrored.as_secs_f64();

    // Lag at fixed offered rates (the lag topic is mirrored already).
    time_until("the lag topic's mirror", Duration::from_secs(30), || {
        Ok(end_offsets(release, &b, "lag")? >= 0)
    })?;
    let mut lags = Vec::new();
    for rate in [10_000u64, 50_000] {
        eprintln!(
            "xtask bench: lag at {} MB/s offered",
            rate * 1024 / 1_000_000
        );
        let answer = perf(
            release,
            &a,
            &[
                "mirror-lag",
                "--topic",
                "lag",
                "--mirror-bootstrap",
                &b,
                "--rate",
                &rate.to_string(),
                "--seconds",
                "20",
            ],
        )?;
        lags.push((rate, answer));
    }

    // Discovery: a new source topic that matches the link's filter.
    perf(release, &a, &["create-topic", "--topic", "fresh-1"])?;
    let discovered = time_until("discovery", Duration::from_secs(30), || {
        Ok(end_offsets(release, &b, "fresh-1")? >= 0)
    })?;

    // A planned switchover: 100 partitions (and the others) stop; time until a write to the
    // 100-partition topic is acknowledged on the mirror.
    time_until("the switch topic's mirror", Duration::from_secs(30), || {
        Ok(end_offsets(release, &b, "switch")? >= 0)
    })?;
    eprintln!("xtask bench: planned switchover");
    let started = Instant::now();
    perf(
        release,
        &b,
        &["cluster-config", "--set", "hdi.link.dr.state=promote"],
    )?;
    let switched = time_until("the switchover", Duration::from_secs(60), || {
        Ok(perf(
            release,
            &b,
            &["probe", "--topic", "switch", "--timeout-s", "1"],
        )
        .is_ok())
    })?;
    let switched = switched.max(started.elapsed().min(switched));

    println!(
        "\nhdi cluster link, two release hdi-brokers on this machine (MirrorMaker 2 not measured yet)"
    );
    println!("{:<48}{:>14}", "figure", "hdi");
    println!(
        "{:<48}{:>14.1}",
        format!("mirror throughput, {backlog} records of 1 KiB (MB/s)"),
        mirror_mb_s
    );
    for (rate, answer) in &lags {
        let mb = rate * 1024 / 1_000_000;
        for key in ["p50_ms", "p99_ms"] {
            println!(
                "{:<48}{:>14.1}",
                format!("lag {key} at {mb} MB/s offered"),
                answer[key].as_f64().unwrap_or(f64::NAN)
            );
        }
        println!(
            "{:<48}{:>14}",
            format!("records mirrored of sent at {mb} MB/s"),
            format!("{}/{}", answer["mirrored"], answer["sent"])
        );
    }
    println!(
        "{:<48}{:>14.0}",
        "new topic discovered and mirrored (ms)",
        discovered.as_secs_f64() * 1000.0
    );
    println!(
        "{:<48}{:>14.0}",
        "planned switchover, 100 partitions (ms)",
        switched.as_secs_f64() * 1000.0
    );
    println!("targets: lag p99 <= 100 ms at 10 MB/s, discovery <= 2 s, switchover <= 5 s");
    Ok(())
}
