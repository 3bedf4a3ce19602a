//! The Kafka listeners' security against a real `hdi-broker` and real clients: one broker with
//! `SASL_SSL`, `SSL` (client certificates requested) and `SASL_PLAINTEXT` listeners, TLS from a
//! Kafka certificate authority of hdi-pki, a static super user from a 0600 users file, and ACLs
//! enforced. confluent-kafka creates SCRAM users and ACLs over the Kafka admin API, then every
//! mechanism authenticates, wrong credentials are refused, and the ACL matrix holds
//! (`e2e/clients/security_suite.py`); kcat, kafka-python and kafkajs produce and consume over
//! SASL_SSL with SCRAM-SHA-512; a plaintext client on a SASL listener gets no answer.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
use hdi_e2e::{Proc, TempDir, bin, client_script, kcat, run_phase, test_node_path, test_python};

const ADMIN_PASSWORD: &str = "admin-secret-1";

struct SecureBroker {
    _proc: Proc,
    sasl_ssl: String,
    ssl: String,
    sasl_plaintext: String,
    tls: std::path::PathBuf,
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn start(dir: &Path) -> SecureBroker {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = hdi_pki::Authority::generate_for("security-test", hdi_pki::Purpose::Kafka).unwrap();
    let server = ca
        .issue_server(&["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    let carol = ca.issue_client("carol").unwrap();
    std::fs::write(tls.join("ca.pem"), &ca.cert_pem).unwrap();
    std::fs::write(tls.join("cert.pem"), &server.cert_pem).unwrap();
    write_private(&tls.join("key.pem"), &server.key_pem);
    std::fs::write(tls.join("carol.pem"), &carol.cert_pem).unwrap();
    write_private(&tls.join("carol-key.pem"), &carol.key_pem);
    let admin =
        ScramCredential::from_password(ScramMechanism::Sha512, ADMIN_PASSWORD, 4096).unwrap();
    let users = dir.join("users");
    write_private(&users, &admin.to_line("admin", ScramMechanism::Sha512));
    let ports = hdi_test_support::ports::take(3).unwrap();
    let [sasl_ssl, ssl, sasl_plaintext] = [0, 1, 2].map(|i| format!("127.0.0.1:{}", ports[i]));
    let mut proc = Proc::spawn(
        "hdi-broker",
        Command::new(bin("hdi-broker"))
            .args(["--node-id", "1"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listener", &format!("SASL_SSL://{sasl_ssl}")])
            .args(["--listener", &format!("SSL://{ssl}")])
            .args(["--listener", &format!("SASL_PLAINTEXT://{sasl_plaintext}")])
            .arg("--tls-dir")
            .arg(&tls)
            .args(["--ssl-client-auth", "requested"])
            .args(["--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"])
            .arg("--sasl-users-file")
            .arg(&users)
            .args(["--authorizer", "--super-users", "User:admin"])
            .args(["--auto-create-topics", "false"])
            .args(["--group-initial-rebalance-delay", "300ms"])
            .env("RUST_LOG", "info"),
    );
    proc.wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
        .unwrap();
    SecureBroker {
        _proc: proc,
        sasl_ssl,
        ssl,
        sasl_plaintext,
        tls,
    }
}

fn suite(broker: &SecureBroker, phase: &str) -> serde_json::Value {
    let listeners = serde_json::json!({
        "SASL_SSL": broker.sasl_ssl,
        "SSL": broker.ssl,
        "SASL_PLAINTEXT": broker.sasl_plaintext,
    })
    .to_string();
    run_phase(
        &test_python(),
        &client_script("security_suite.py"),
        &[],
        &listeners,
        phase,
        &[
            "--tls-dir",
            broker.tls.to_str().unwrap(),
            "--admin-password",
            ADMIN_PASSWORD,
        ],
    )
}

fn kcat_sasl(broker: &SecureBroker, password: &str) -> Vec<String> {
    [
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        "sasl.username=admin",
        "-X",
        &format!("sasl.password={password}"),
        "-X",
        &format!("ssl.ca.location={}", broker.tls.join("ca.pem").display()),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn kafka_listeners_authenticate_encrypt_and_authorize() {
    let dir = TempDir::new("ksec");
    let broker = start(dir.path());

    // A client speaking plain Kafka to the SASL listener gets its connection closed: a Metadata
    // request before authentication is not answered.
    let mut raw = std::net::TcpStream::connect(&broker.sasl_plaintext).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Metadata v1, correlation 1, no client id, all topics (-1).
    raw.write_all(&[
        0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ])
    .unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        raw.read(&mut buf).unwrap_or(0),
        0,
        "an unauthenticated Metadata was answered"
    );

    suite(&broker, "users");
    let auth = suite(&broker, "auth");
    assert!(
        auth["refused alice"]
            .as_str()
            .unwrap()
            .contains("uthentication"),
        "{auth}"
    );
    suite(&broker, "matrix");

    // kcat (librdkafka 2.0.2) over SASL_SSL with SCRAM-SHA-512: produce and consume back.
    let sasl = kcat_sasl(&broker, ADMIN_PASSWORD);
    let sasl: Vec<&str> = sasl.iter().map(String::as_str).collect();
    let lines: String = (0..500).map(|i| format!("kcat-{i}\n")).collect();
    let (ok, _, err) = kcat(
        &broker.sasl_ssl,
        &[&sasl[..], &["-P", "-t", "pay-in", "-p", "0"]].concat(),
        Some(lines.as_bytes()),
    );
    assert!(ok, "kcat produce over SASL_SSL: {err}");
    let (ok, out, err) = kcat(
        &broker.sasl_ssl,
        &[
            &sasl[..],
            &[
                "-C",
                "-t",
                "pay-in",
                "-p",
                "0",
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
        ]
        .concat(),
        None,
    );
    assert!(ok, "kcat consume over SASL_SSL: {err}");
    let read = String::from_utf8_lossy(&out);
    assert_eq!(read.lines().filter(|l| l.starts_with("kcat-")).count(), 500);
    // kafka-python and kafkajs over SASL_SSL with SCRAM-SHA-512.
    suite(&broker, "kafka-python");
    let node_path = test_node_path();
    let kjs = run_phase(
        Path::new("node"),
        &client_script("security_kafkajs.js"),
        &[("NODE_PATH", node_path.as_path())],
        &broker.sasl_ssl,
        "roundtrip",
        &[
            "--ca",
            broker.tls.join("ca.pem").to_str().unwrap(),
            "--password",
            ADMIN_PASSWORD,
        ],
    );
    assert_eq!(kjs["read"], 300);
    // A wrong password: kcat fails and says why.
    let wrong = kcat_sasl(&broker, "not-it");
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (ok, _, err) = kcat(
        &broker.sasl_ssl,
        &[&wrong[..], &["-L", "-m", "10"]].concat(),
        None,
    );
    assert!(!ok && err.contains("uthentication"), "{err}");
}
