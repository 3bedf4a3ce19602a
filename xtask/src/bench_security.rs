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
//! the JDK's TLS, kafka-tools from Maven Central, `bench/kafka-server/pom.xml`). The CPU TLS adds
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

use crate::bench::{Figures, free_port, perf, produce_then_consume, stop};
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
    match args.first().copied() {
        Some("produce" | "consume") => {
            crate::apache_kafka::tool_call(lib, bootstrap, properties, args)
        }
        _ => {
            let mut all: Vec<&str> = Vec::new();
            for c in librdkafka_config {
                all.extend(["--config", c.as_str()]);
            }
            all.extend_from_slice(args);
            perf(release, bootstrap, &all)
        }
    }
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
    let lib = crate::apache_kafka::jars()?;
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
