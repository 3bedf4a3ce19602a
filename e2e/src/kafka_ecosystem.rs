//! The Java tools built on Kafka, run against `hdi-broker` as the e2e tests' processes: a Kafka
//! Connect worker in distributed mode ([`ConnectWorker`], driven through its REST API on
//! loopback), MirrorMaker 2 in dedicated mode ([`mirror_maker`]) and the programs of
//! `e2e/clients/java-ecosystem/hdi/ecosystem/` (package `hdi.ecosystem`: a Kafka Streams
//! application and checks made with the admin client), all from the jars of
//! `e2e/clients/java-ecosystem/pom.xml`, which `cargo xtask test` copies from Maven Central
//! (`HDI_TEST_JAVA_ECOSYSTEM_LIB`, see `crate::java`).
//!
//! Each JVM logs through log4j2 to its stdout, which [`Proc`] collects and prints when a test
//! fails: warnings from everything, and INFO from the part of the tool under test that says
//! what it decided (Connect's herder and workers, MirrorMaker's connectors).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Proc;
use crate::java::{java_ecosystem_lib, java_result, javac_classes};

/// log4j2's configuration for one JVM: WARN, and INFO for `info_logger`.
fn log4j2(info_logger: &str) -> String {
    format!(
        "rootLogger.level=WARN\n\
rootLogger.appenderRef.stdout.ref=STDOUT\n\
appender.stdout.type=Console\n\
appender.stdout.name=STDOUT\n\
appender.stdout.layout.type=PatternLayout\n\
appender.stdout.layout.pattern=%d{{HH:mm:ss.SSS}} %p %m (%c{{1}})%n\n\
logger.tool.name={info_logger}\n\
logger.tool.level=INFO\n"
    )
}

/// `java` with the ecosystem's classpath (the jars, and the compiled `hdi.ecosystem` programs),
/// a small heap, and log4j2 configured from a file written into `dir`.
pub fn ecosystem_java(dir: &Path, info_logger: &str) -> Command {
    let lib = java_ecosystem_lib();
    let classes = javac_classes("java-ecosystem/hdi/ecosystem", &lib);
    std::fs::create_dir_all(dir).unwrap();
    let log_config = dir.join("log4j2.properties");
    std::fs::write(&log_config, log4j2(info_logger)).unwrap();
    let mut command = Command::new("java");
    command
        .args([
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            &format!("{}/*:{}", lib.display(), classes.display()),
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            log_config.display()
        ))
        .current_dir(dir);
    command
}

/// Starts `hdi.ecosystem.<main>` with `args` in `dir` (its output collected; SIGKILLed when
/// dropped). The programs end with one JSON line, `"ok": true` or the failures.
pub fn ecosystem_program(dir: &Path, main: &str, args: &[&str]) -> Proc {
    Proc::spawn(
        &format!("java hdi.ecosystem.{main}"),
        ecosystem_java(dir, &format!("hdi.ecosystem.{main}"))
            .arg(format!("hdi.ecosystem.{main}"))
            .args(args),
    )
}

/// Runs `hdi.ecosystem.<main>` to its end (at most `timeout`); its final JSON line, which must
/// say `"ok": true` (else the test fails with everything the program printed: [`java_result`]).
pub fn ecosystem_run(
    dir: &Path,
    main: &str,
    args: &[&str],
    timeout: Duration,
) -> serde_json::Value {
    java_result(&mut ecosystem_program(dir, main, args), timeout)
}

/// A Kafka Connect worker in distributed mode (`ConnectDistributed`), its REST API on a loopback
/// port of its own.
pub struct ConnectWorker {
    /// The JVM.
    pub proc: Proc,
    /// `127.0.0.1:<port>` of its REST API.
    pub rest: String,
    dir: PathBuf,
}

impl ConnectWorker {
    /// Writes `dir/worker.properties` (group `group`, the config, offset and status topics
    /// `connect-configs`, `connect-offsets`, `connect-status` with `replication` replicas,
    /// String converters, offsets flushed every second, a lost worker's tasks reassigned after
    /// 5 s and sink consumers' sessions of 10 s instead of 45 s, so that a SIGKILLed worker's
    /// stale members leave soon) and starts the worker; waits until its REST API answers and it
    /// has joined its group (`GET /connectors` answers 200).
    pub fn start(dir: &Path, bootstrap: &str, group: &str, replication: u16) -> ConnectWorker {
        let port = crate::ports::port();
        let properties = format!(
            "bootstrap.servers={bootstrap}\n\
group.id={group}\n\
key.converter=org.apache.kafka.connect.storage.StringConverter\n\
value.converter=org.apache.kafka.connect.storage.StringConverter\n\
config.storage.topic=connect-configs\n\
offset.storage.topic=connect-offsets\n\
status.storage.topic=connect-status\n\
config.storage.replication.factor={replication}\n\
offset.storage.replication.factor={replication}\n\
status.storage.replication.factor={replication}\n\
offset.storage.partitions=3\n\
status.storage.partitions=3\n\
offset.flush.interval.ms=1000\n\
listeners=http://127.0.0.1:{port}\n\
rest.advertised.host.name=127.0.0.1\n\
rest.advertised.port={port}\n\
scheduled.rebalance.max.delay.ms=5000\n\
consumer.session.timeout.ms=10000\n"
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("worker.properties"), properties).unwrap();
        ConnectWorker::spawn(dir, format!("127.0.0.1:{port}"))
    }

    /// Starts the worker of `dir/worker.properties` (again, e.g. after a SIGKILL).
    fn spawn(dir: &Path, rest: String) -> ConnectWorker {
        let proc = Proc::spawn(
            "connect-worker",
            ecosystem_java(dir, "org.apache.kafka.connect.runtime.distributed")
                .arg("org.apache.kafka.connect.cli.ConnectDistributed")
                .arg("worker.properties"),
        );
        let mut worker = ConnectWorker {
            proc,
            rest,
            dir: dir.to_owned(),
        };
        worker.wait_until(
            "its REST API lists connectors",
            Duration::from_secs(120),
            |w| {
                w.http("GET", "/connectors", None)
                    .is_some_and(|(s, _)| s == 200)
            },
        );
        worker
    }

    /// SIGKILLs the worker and starts it again on the same properties and REST port.
    pub fn kill_and_restart(self) -> ConnectWorker {
        let ConnectWorker {
            mut proc,
            rest,
            dir,
        } = self;
        proc.kill9();
        drop(proc);
        ConnectWorker::spawn(&dir, rest)
    }

    /// One HTTP/1.1 request to the REST API (`body` as JSON); its status and body, or `None`
    /// when the worker does not answer.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
        http_request(&self.rest, method, path, body)
    }

    /// Polls `check` every 500 ms; fails the test (with the worker's log) after `timeout`, or
    /// at once when the worker exits.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> bool,
    ) {
        let started = Instant::now();
        loop {
            if check(self) {
                eprintln!("connect: {what} ({:.1}s)", started.elapsed().as_secs_f64());
                return;
            }
            assert!(
                self.proc.is_running(),
                "the Connect worker exited before {what}"
            );
            assert!(
                started.elapsed() < timeout,
                "the Connect worker: no {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// One HTTP/1.1 request to `address` (`Connection: close`, `body` sent as JSON); the response's
/// status and body (chunked bodies joined), or `None` when nothing answers.
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.push_str(after.get(..size)?);
            rest = after.get(size + 2..)?;
        }
        out
    } else {
        rest.to_owned()
    };
    Some((status, body))
}

/// Starts MirrorMaker 2 in dedicated mode (`org.apache.kafka.connect.mirror.MirrorMaker`) in
/// `dir` with `properties` as its `mm2.properties`, driving the clusters named in `clusters`
/// (`--clusters`).
pub fn mirror_maker(dir: &Path, properties: &str, clusters: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("mm2.properties"), properties).unwrap();
    Proc::spawn(
        "mirror-maker",
        ecosystem_java(dir, "org.apache.kafka.connect.mirror")
            .arg("org.apache.kafka.connect.mirror.MirrorMaker")
            .arg("mm2.properties")
            .args(["--clusters", clusters]),
    )
}
