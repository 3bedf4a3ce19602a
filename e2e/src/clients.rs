//! The external Kafka clients: the Python and Node.js client suites under `e2e/clients/` and kcat.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The Python interpreter of the test venv (with confluent-kafka and kafka-python), from
/// `HDI_TEST_PYTHON` (set by `cargo xtask test`).
pub fn test_python() -> PathBuf {
    PathBuf::from(
        std::env::var_os("HDI_TEST_PYTHON")
            .expect("HDI_TEST_PYTHON is not set: run the tests with `cargo xtask test`"),
    )
}

/// The `node_modules` holding kafkajs, from `HDI_TEST_NODE_PATH` (set by `cargo xtask test`).
pub fn test_node_path() -> PathBuf {
    PathBuf::from(
        std::env::var_os("HDI_TEST_NODE_PATH")
            .expect("HDI_TEST_NODE_PATH is not set: run the tests with `cargo xtask test`"),
    )
}

/// A client script under `e2e/clients/`.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// A command for an external Kafka client. cargo puts the build directory of `rdkafka-sys` (our
/// bench tool's bundled librdkafka) on `LD_LIBRARY_PATH` for tests; clients must load their own
/// librdkafka (kcat: Debian's 2.0.2; confluent-kafka: its bundled one), so the variable is removed.
pub fn client_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env_remove("LD_LIBRARY_PATH");
    command
}

/// Runs a client suite phase; returns its JSON result line, failing with its whole output.
pub fn run_phase(
    program: &Path,
    script: &Path,
    env: &[(&str, &Path)],
    bootstrap: &str,
    phase: &str,
    extra: &[&str],
) -> serde_json::Value {
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .arg(script)
        .args(["--bootstrap", bootstrap])
        .args(extra)
        .arg(phase);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (last, value) = last_json_line(&stdout);
    assert!(
        out.status.success() && value["ok"] == true,
        "{} {phase} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        out.status
    );
    eprintln!(
        "{} {phase}: {last} ({:.1}s)",
        script.file_name().unwrap().to_string_lossy(),
        started.elapsed().as_secs_f64()
    );
    value
}

/// The last line of a client's `stdout` that starts with `{` (`""` when none), and its JSON value
/// (`Null` when it is none or not JSON).
pub fn last_json_line(stdout: &str) -> (&str, serde_json::Value) {
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let value = serde_json::from_str(last).unwrap_or(serde_json::Value::Null);
    (last, value)
}

/// Runs kcat against `bootstrap` with `args`, feeding `stdin`; returns (success, stdout, stderr).
pub fn kcat(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    kcat_env(bootstrap, &[], args, stdin)
}

/// [`kcat`] with environment variables set (e.g. for a librdkafka plugin).
pub fn kcat_env(
    bootstrap: &str,
    env: &[(&str, &Path)],
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (bool, Vec<u8>, String) {
    use std::io::Write as _;
    let mut child = client_command("kcat")
        .envs(env.iter().copied())
        .args(["-b", bootstrap])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is not installed: run the tests with `cargo xtask test`");
    // Feed stdin from a thread: if kcat exits early, its stderr (below) says why, not a broken pipe.
    let feeder = stdin.map(|input| {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TLS client configuration (ring, no client certificate) trusting the certificates of the
/// PEM `ca_pem`.
#[allow(
    deprecated,
    reason = "ring, as the rest of the workspace: one crypto provider, no aws-lc build"
)]
pub fn trusting(ca_pem: &str) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// The certificate a TLS listener at `addr` serves (DER) to a client trusting `ca_pem` and
/// connecting by the name 127.0.0.1.
pub async fn served_certificate(addr: &str, ca_pem: &str) -> Vec<u8> {
    tls_handshake(addr, ca_pem).await.unwrap()
}

/// The certificate a TLS listener at `addr` (named `127.0.0.1`) serves, DER, when it verifies
/// against `ca_pem`; why the handshake failed otherwise.
pub async fn tls_handshake(addr: &str, ca_pem: &str) -> Result<Vec<u8>, String> {
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(trusting(ca_pem)))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

/// Builds `e2e/clients/kcat_oauth_plugin.c` (a librdkafka plugin giving kcat OAUTHBEARER
/// tokens from the file named by `HDI_OAUTH_TOKEN_FILE`) into `dir` with the system C compiler;
/// the shared object's path.
pub fn kcat_oauth_plugin(dir: &Path) -> PathBuf {
    let plugin = dir.join("kcat_oauth_plugin.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&plugin)
        .arg(client_script("kcat_oauth_plugin.c"))
        .output()
        .expect("a C compiler (cc) builds kcat's OAUTHBEARER plugin");
    assert!(
        out.status.success(),
        "cc kcat_oauth_plugin.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    plugin
}

/// Produces `records`, one a line, to `topic` with kcat (acks=all); fails the test with kcat's
/// stderr.
pub fn kcat_produce(bootstrap: &str, topic: &str, records: &[String]) {
    let input = records.join("\n") + "\n";
    let (ok, _, err) = kcat(
        bootstrap,
        &["-P", "-t", topic, "-X", "acks=all"],
        Some(input.as_bytes()),
    );
    assert!(ok, "kcat produce to {topic}: {err}");
}

/// Every record of `topic` from the beginning, read with kcat, sorted; fails the test with kcat's
/// stderr.
pub fn kcat_consume_all(bootstrap: &str, topic: &str) -> Vec<String> {
    let (ok, out, err) = kcat(
        bootstrap,
        &["-C", "-t", topic, "-o", "beginning", "-e", "-q"],
        None,
    );
    assert!(ok, "kcat consume {topic}: {err}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}
