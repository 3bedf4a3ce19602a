//! `cargo xtask bench broker --security`: what TLS and SASL cost. The same release `hdi-broker`,
//! once over a `PLAINTEXT` listener and once over `SASL_SSL` with SCRAM-SHA-512 (TLS 1.3 by
//! rustls on the broker), fresh broker and directory per run, 1 KiB records, acks=1 and
//! acks=all: produce and consume MB/s, produce p99, broker and client CPU seconds per GB (the
//! client's from `wait4`), and the share of throughput TLS takes (target: at most 25% of produce
//! and 35% of consume).
//!
//! Two generators drive it, since broker and client share the machine's cores and each client's
//! own TLS stack weighs on the result: the broker bench's `hdi-kafka-perf` (librdkafka with
//! OpenSSL) and Apache Kafka's `ProducerPerformance`/`ConsumerPerformance` (the Java client with
//! the JDK's TLS, kafka-tools from Maven Central, `bench/kafka-tools/pom.xml`). The CPU TLS adds
//! to the client is split out from what it adds to the broker.
//!
//! What TLS costs, as measured: the broker decrypts every produced byte and encrypts every
//! fetched one (no `sendfile` under TLS, as in Kafka), 0.4–1.2 CPU s/GB. The clients pay more:
//! librdkafka 2.12 calls `SSL_write` once per buffer segment, and about 15% of 1 KiB payloads sit
//! in segments of their own (pushed by reference once a batch buffer's segment runs short), so
//! they travel as 1,046-byte TLS records each with a 32-byte record for their header: 0.36
//! `write` calls per record where plaintext needs 0.001 `sendmsg`. The JDK's TLS costs the Java
//! client more still.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::bench::{Figures, free_port, output_with_usage, perf, produce_then_consume, stop};
use crate::util::wait_for;

const PASSWORD: &str = "bench-password-1";

/// One broker with both listeners; `SASL_SSL` uses the files in `dir/tls` and `dir/users`.
fn start(release: &Path, dir: &Path, plain: u16, secure: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("broker.log"))?;
    let child = Command::new(release.join("hdi-broker"))
        .args(["--node-id", "1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listener", &format!("PLAINTEXT://127.0.0.1:{plain}")])
        .args(["--listener", &format!("SASL_SSL://127.0.0.1:{secure}")])
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .arg("--sasl-users-file")
        .arg(dir.join("users"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    wait_for(
        "the broker to accept connections",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", plain))
                .ok()
                .map(|_| ())
        },
    )
    .with_context(|| crate::util::tail(&dir.join("broker.log"), 20))?;
    Ok(child)
}

/// Writes the broker's TLS directory and users file with its own tools.
fn credentials(release: &Path, dir: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let broker = release.join("hdi-broker");
    crate::util::run(
        "hdi-broker dev-certificates",
        Command::new(&broker)
            .arg("dev-certificates")
            .arg(dir.join("tls")),
    )?;
    let mut child = Command::new(&broker)
        .args(["scram-credential", "bench", "--iterations", "4096"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(PASSWORD.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "hdi-broker scram-credential failed");
    let users = dir.join("users");
    std::fs::write(&users, &out.stdout)?;
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The client that drives a run.
#[derive(Debug, Clone)]
enum Generator {
    /// `hdi-kafka-perf`: librdkafka with OpenSSL.
    Librdkafka,
    /// Kafka's `ProducerPerformance` and `ConsumerPerformance` from the jars in this directory.
    Java(PathBuf),
}

impl Generator {
    fn name(&self) -> &'static str {
        match self {
            Generator::Librdkafka => "hdi-kafka-perf (librdkafka + OpenSSL)",
            Generator::Java(_) => {
                "Kafka's ProducerPerformance/ConsumerPerformance (Java client + JDK TLS)"
            }
        }
    }
}

/// Runs one `hdi-kafka-perf` command (`create-topic`, `produce`, `consume`) with Kafka's Java
/// tools instead, answering with the same fields: the topic is still created by
/// `hdi-kafka-perf`, whose way of doing it is not measured.
fn java_call(
    release: &Path,
    lib: &Path,
    bootstrap: &str,
    librdkafka_config: &[String],
    properties: &Path,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let value = |name: &str| -> anyhow::Result<&str> {
        let at = args
            .iter()
            .position(|a| *a == name)
            .with_context(|| format!("no {name}"))?;
        args.get(at + 1)
            .copied()
            .with_context(|| format!("no value for {name}"))
    };
    let classpath = format!("{}/*", lib.display());
    let mut command = Command::new("java");
    command.args(["-cp", &classpath]);
    match args.first().copied() {
        Some("produce") => {
            command.args(["org.apache.kafka.tools.ProducerPerformance", "--topic"]);
            command.arg(value("--topic")?);
            command.args(["--num-records", value("--records")?]);
            command.args(["--record-size", value("--record-size")?]);
            command.args(["--throughput", "-1", "--producer.config"]);
            command.arg(properties);
            // As hdi-kafka-perf: batches of up to 1 MB after at most 5 ms, no compression.
            command.args([
                "--producer-props",
                &format!("bootstrap.servers={bootstrap}"),
                &format!("acks={}", value("--acks")?),
                "linger.ms=5",
                "batch.size=1000000",
                "buffer.memory=268435456",
                "compression.type=none",
            ]);
        }
        Some("consume") => {
            command.args(["org.apache.kafka.tools.ConsumerPerformance", "--topic"]);
            command.arg(value("--topic")?);
            command.args(["--num-records", value("--records")?]);
            command.args(["--bootstrap-server", bootstrap, "--timeout", "60000"]);
            command.arg("--command-config").arg(properties);
        }
        _ => {
            let mut all: Vec<&str> = Vec::new();
            for c in librdkafka_config {
                all.extend(["--config", c.as_str()]);
            }
            all.extend_from_slice(args);
            return perf(release, bootstrap, &all);
        }
    }
    let (text, errors, usage) = output_with_usage(&mut command)?;
    anyhow::ensure!(
        usage.code == Some(0),
        "Kafka's tool {args:?} exited with {:?}: {text}{errors}",
        usage.code
    );
    let size: f64 = value("--record-size")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024.0);
    let mut answer = if args.first() == Some(&"produce") {
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
fn parse_producer_performance(text: &str, size: f64) -> anyhow::Result<serde_json::Value> {
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
    }))
}

/// `ConsumerPerformance`'s CSV line: the fetch rate (`fetch.nMsg.sec`, which leaves out the
/// consumer group's join) as MB/s (10^6 bytes).
fn parse_consumer_performance(text: &str, size: f64) -> anyhow::Result<serde_json::Value> {
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

fn one(
    release: &Path,
    generator: &Generator,
    secure: bool,
    size: usize,
    acks: &str,
    records: u64,
) -> anyhow::Result<Figures> {
    let dir = std::env::temp_dir().join(format!("hdi-bench-security-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The previous run's gigabyte is still being written back: flush it first, or the later run
    // pays for the earlier one.
    crate::util::run("sync", &mut Command::new("sync"))?;
    std::fs::create_dir_all(&dir)?;
    credentials(release, &dir)?;
    let (plain_port, secure_port) = (free_port()?, free_port()?);
    let mut child = start(release, &dir, plain_port, secure_port)?;
    let ca = dir.join("tls").join("ca.pem");
    let config: Vec<String> = if secure {
        vec![
            "security.protocol=SASL_SSL".into(),
            "sasl.mechanisms=SCRAM-SHA-512".into(),
            "sasl.username=bench".into(),
            format!("sasl.password={PASSWORD}"),
            format!("ssl.ca.location={}", ca.display()),
        ]
    } else {
        Vec::new()
    };
    let bootstrap = format!(
        "127.0.0.1:{}",
        if secure { secure_port } else { plain_port }
    );
    // The Java client's configuration: the same user and trust, and hdi-kafka-perf's fetch sizes.
    let properties = dir.join("client.properties");
    let mut java = String::from("max.partition.fetch.bytes=10485760\nfetch.max.bytes=52428800\n");
    if secure {
        java.push_str(&format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"bench\" password=\"{PASSWORD}\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            ca.display()
        ));
    }
    std::fs::write(&properties, java)?;
    let result = produce_then_consume(child.id(), records, size, acks, |args| match generator {
        Generator::Librdkafka => {
            let mut all: Vec<&str> = Vec::new();
            for c in &config {
                all.extend(["--config", c.as_str()]);
            }
            all.extend_from_slice(args);
            perf(release, &bootstrap, &all)
        }
        Generator::Java(lib) => java_call(release, lib, &bootstrap, &config, &properties, args),
    });
    stop(&mut child, &dir);
    result
}

/// Runs the comparison and prints it.
pub fn run(release: &Path, records: u64) -> anyhow::Result<()> {
    let tools = crate::util::target_dir()?
        .join("bench-tools")
        .join("kafka-tools");
    let pom = crate::util::repo_root().join("bench/kafka-tools/pom.xml");
    let lib = crate::tools::maven_jars(&pom, &tools, "Apache Kafka's tools")?;
    for generator in [Generator::Librdkafka, Generator::Java(lib)] {
        compare(release, &generator, records)?;
    }
    Ok(())
}

/// Runs the comparison with one generator and prints it.
fn compare(release: &Path, generator: &Generator, records: u64) -> anyhow::Result<()> {
    let size = 1024;
    let mut rows = Vec::new();
    for acks in ["1", "all"] {
        let mut pair = vec![Figures::default(), Figures::default()];
        // Alternate which goes first, so that neither always runs on a warmer machine.
        let order = if acks == "1" {
            [false, true]
        } else {
            [true, false]
        };
        for secure in order {
            let name = if secure {
                "SASL_SSL/SCRAM"
            } else {
                "PLAINTEXT"
            };
            eprintln!(
                "xtask bench: {records} records of {size} B, acks={acks}, {name}, {}",
                generator.name()
            );
            pair[usize::from(secure)] = one(release, generator, secure, size, acks, records)
                .with_context(|| format!("{name} acks={acks}"))?;
        }
        rows.push((acks, pair));
    }
    println!(
        "\nhdi-broker over PLAINTEXT vs SASL_SSL (SCRAM-SHA-512, TLS by rustls): {records} records of {size} B per run, 1 partition, {}",
        generator.name()
    );
    type Metric = (&'static str, fn(&Figures) -> f64);
    let metrics: [Metric; 9] = [
        ("produce MB/s", |f| f.produce_mb_s),
        ("produce p50 ms", |f| f.p50_ms),
        ("produce p99 ms", |f| f.p99_ms),
        ("consume MB/s", |f| f.consume_mb_s),
        ("produce CPU s/GB", |f| f.produce_cpu_s_per_gb),
        ("consume CPU s/GB", |f| f.consume_cpu_s_per_gb),
        ("client prod CPU s/GB", |f| f.client_produce_cpu_s_per_gb),
        ("client cons CPU s/GB", |f| f.client_consume_cpu_s_per_gb),
        ("peak RSS MB", |f| f.peak_rss_mb),
    ];
    for (acks, pair) in &rows {
        println!("\nacks={acks}");
        println!(
            "{:<20}{:>14}{:>16}{:>12}",
            "", "PLAINTEXT", "SASL_SSL", "ratio"
        );
        for (name, get) in &metrics {
            let (plain, secure) = (get(&pair[0]), get(&pair[1]));
            let ratio = if plain > 0.0 { secure / plain } else { 0.0 };
            println!("{name:<20}{plain:>14.2}{secure:>16.2}{ratio:>12.2}");
        }
        let produce_loss = 1.0 - pair[1].produce_mb_s / pair[0].produce_mb_s.max(f64::MIN_POSITIVE);
        let consume_loss = 1.0 - pair[1].consume_mb_s / pair[0].consume_mb_s.max(f64::MIN_POSITIVE);
        println!(
            "TLS+SASL costs {:.0}% of produce throughput (target <= 25%) and {:.0}% of consume throughput (target <= 35%)",
            produce_loss * 100.0,
            consume_loss * 100.0
        );
        // Broker and client share this machine's cores: when both are busy, throughput falls
        // as their CPU per GB together rises. Split what TLS added between them.
        let (plain, secure) = (&pair[0], &pair[1]);
        let together = plain.produce_cpu_s_per_gb + plain.client_produce_cpu_s_per_gb;
        let client_added = secure.client_produce_cpu_s_per_gb - plain.client_produce_cpu_s_per_gb;
        let broker_added = secure.produce_cpu_s_per_gb - plain.produce_cpu_s_per_gb;
        println!(
            "producing, TLS+SASL added {broker_added:.2} CPU s/GB to the broker and {client_added:.2} to the client; \
             on a machine both saturate, the client's part alone would cost about {:.0}% of produce throughput",
            100.0 * client_added / (together + client_added).max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
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
        let consumed = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
            2026-12-06 23:16:47:750, 2026-12-06 23:16:57:346, 1464.8438, 152.6515, 1500000, 156315.1313, 3894, 5702, 256.9000, 263065.5910\n";
        let c = parse_consumer_performance(consumed, 1024.0)?;
        assert_eq!(c["records_per_s"].as_f64(), Some(263_065.591));
        assert!(parse_producer_performance("no summary", 1024.0).is_err());
        assert!(parse_consumer_performance("start.time, x\n1, 2\n", 1024.0).is_err());
        Ok(())
    }
}
