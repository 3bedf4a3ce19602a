//! The Kafka listeners' security against a real `hdi-broker` and real clients: one broker with
//! `SASL_SSL`, `SSL` (client certificates requested) and `SASL_PLAINTEXT` listeners, TLS from a
//! Kafka certificate authority of hdi-pki, a static super user from a 0600 users file, and ACLs
//! enforced. confluent-kafka creates SCRAM users and ACLs over the Kafka admin API, then every
//! mechanism authenticates, wrong credentials are refused, and the ACL matrix holds
//! (`e2e/clients/security_suite.py`); kcat, kafka-python, kafkajs, hdi's own client and the Java
//! client (kafka-clients 4.4, `e2e/clients/java/`) produce and consume over SASL_SSL with
//! SCRAM-SHA-512; a plaintext client on a SASL listener gets no answer. A second
//! test gives a broker the control plane's published keys: its access tokens (`POST
//! /v1/auth/token`) authenticate confluent-kafka over OAUTHBEARER as `User:<username>`, and a
//! forged or expired token is refused; then confluent-kafka (librdkafka's OIDC login), the
//! Java client (Kafka's `OAuthBearerLoginCallbackHandler`), kafka-python and kafkajs get their
//! tokens from the control plane's OAuth 2.0 token endpoint with alice's API token as client
//! secret and produce and consume over OAUTHBEARER, and kcat does with alice's token through a
//! token plugin (`e2e/clients/kcat_oauth_plugin.c`). A third sets a client-id quota over AlterClientQuotas and
//! measures a confluent-kafka producer held to it within 10%.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
use hdi_e2e::{
    Proc, TempDir, bin, client_script, kcat, last_json_line, run_phase, served_certificate,
    test_node_path, test_python,
};

const ADMIN_PASSWORD: &str = "admin-secret-1";

/// The token of `user` in the JSON object of tokens handed to the suite.
fn tokens_map(tokens: &str, user: &str) -> String {
    let tokens: serde_json::Value = serde_json::from_str(tokens).unwrap();
    tokens[user].as_str().unwrap().to_owned()
}

struct SecureBroker {
    proc: Proc,
    ca: hdi_pki::Authority,
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
    start_with(dir, "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", "User:admin", &[])
}

fn start_with(dir: &Path, mechanisms: &str, super_users: &str, extra: &[&str]) -> SecureBroker {
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
            .args(["--sasl-mechanisms", mechanisms])
            .arg("--sasl-users-file")
            .arg(&users)
            .args(["--authorizer", "--super-users", super_users])
            .args(["--auto-create-topics", "false"])
            .args(["--group-initial-rebalance-delay", "300ms"])
            .args(extra)
            .env("RUST_LOG", "info"),
    );
    proc.wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
        .unwrap();
    SecureBroker {
        proc,
        ca,
        sasl_ssl,
        ssl,
        sasl_plaintext,
        tls,
    }
}

fn suite(broker: &SecureBroker, phase: &str) -> serde_json::Value {
    suite_with(broker, phase, &[])
}

fn suite_with(broker: &SecureBroker, phase: &str, extra: &[&str]) -> serde_json::Value {
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
            &[
                "--tls-dir",
                broker.tls.to_str().unwrap(),
                "--admin-password",
                ADMIN_PASSWORD,
            ],
            extra,
        ]
        .concat(),
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

/// Compiles (once per test directory) and runs `e2e/clients/java/SecurityClient.java` with the
/// jars of `HDI_TEST_JAVA_LIB`; returns its JSON line, failing with its output.
fn java_client(dir: &Path, args: &[&str]) -> serde_json::Value {
    let lib = std::env::var("HDI_TEST_JAVA_LIB")
        .expect("HDI_TEST_JAVA_LIB is not set: run the tests with `cargo xtask test`");
    let classpath = format!("{lib}/*");
    let classes = dir.join("java-classes");
    if !classes.join("SecurityClient.class").exists() {
        let out = Command::new("javac")
            .args(["-cp", &classpath, "-d"])
            .arg(&classes)
            .arg(client_script("java/SecurityClient.java"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "javac: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("java")
        .args([
            "-cp",
            &format!("{classpath}:{}", classes.display()),
            "SecurityClient",
        ])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (last, value) = last_json_line(&stdout);
    assert!(
        out.status.success() && value["ok"] == true,
        "java SecurityClient {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("java SecurityClient {}: {last}", args.last().unwrap_or(&""));
    value
}

async fn hdi_client_authenticates(broker: &SecureBroker, ca_pem: &str) {
    use hdi_kafka_client::{Connection, SaslLogin, Security};
    use kafka_protocol::messages::MetadataRequest;
    let tls = hdi_e2e::trusting(ca_pem);
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let login = |mechanism: &str, password: &str| SaslLogin {
        mechanism: mechanism.to_owned(),
        username: "admin".to_owned(),
        password: password.to_owned(),
    };
    let secured = Security {
        tls: Some((std::sync::Arc::new(tls), name)),
        sasl: Some(login("SCRAM-SHA-512", ADMIN_PASSWORD)),
    };
    let mut connection =
        Connection::connect_secure(&broker.sasl_ssl, "hdi-test", 1 << 24, &secured)
            .await
            .unwrap();
    let metadata = connection
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    let topics: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
        .collect();
    assert!(topics.contains(&"pay-in".to_owned()), "{topics:?}");
    // The admin is a static SCRAM-SHA-512 user only: SCRAM-SHA-256 has no credential for it.
    let plain = Security {
        tls: None,
        sasl: Some(login("SCRAM-SHA-256", ADMIN_PASSWORD)),
    };
    let refused = Connection::connect_secure(&broker.sasl_plaintext, "hdi-test", 1 << 24, &plain)
        .await
        .expect_err("no SCRAM-SHA-256 credential");
    assert!(
        refused.to_string().contains("SASL_AUTHENTICATION_FAILED"),
        "{refused}"
    );
    let wrong = Security {
        tls: None,
        sasl: Some(login("SCRAM-SHA-512", "not-it")),
    };
    let refused = Connection::connect_secure(&broker.sasl_plaintext, "hdi-test", 1 << 24, &wrong)
        .await
        .expect_err("a wrong password");
    assert!(
        refused.to_string().contains("invalid credentials"),
        "{refused}"
    );
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn sighup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A renewed certificate and new static users take effect on SIGHUP, in the same process: new
/// handshakes get the new certificate, the new user logs in; files that do not load leave the
/// settings in force (and the broker running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_and_users_without_a_restart() {
    let dir = TempDir::new("kreload");
    let mut broker = tokio::task::block_in_place(|| start(dir.path()));
    let pid = broker.proc.pid();
    let ca_pem = broker.ca.cert_pem.clone();
    let first = served_certificate(&broker.sasl_ssl, &ca_pem).await;
    assert_eq!(
        first,
        der(&std::fs::read_to_string(broker.tls.join("cert.pem")).unwrap())
    );
    let renewed = broker
        .ca
        .issue_server(&["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    std::fs::write(broker.tls.join("cert.pem"), &renewed.cert_pem).unwrap();
    write_private(&broker.tls.join("key.pem"), &renewed.key_pem);
    let admin =
        ScramCredential::from_password(ScramMechanism::Sha512, ADMIN_PASSWORD, 4096).unwrap();
    let dave =
        ScramCredential::from_password(ScramMechanism::Sha512, "dave-secret-1", 4096).unwrap();
    write_private(
        &dir.path().join("users"),
        &format!(
            "{}\n{}\n",
            admin.to_line("admin", ScramMechanism::Sha512),
            dave.to_line("dave", ScramMechanism::Sha512)
        ),
    );
    sighup(pid);
    broker
        .proc
        .wait_for_line(
            "SIGHUP: reloaded the Kafka listeners",
            Duration::from_secs(10),
        )
        .unwrap();
    let second = served_certificate(&broker.sasl_ssl, &ca_pem).await;
    assert_eq!(
        second,
        der(&renewed.cert_pem),
        "the renewed certificate is served"
    );
    assert_ne!(second, first);
    // dave (no ACLs, but a valid login) authenticates: Metadata answers.
    let dave_login: Vec<String> = [
        "security.protocol=SASL_SSL".to_owned(),
        "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
        "sasl.username=dave".to_owned(),
        "sasl.password=dave-secret-1".to_owned(),
        format!("ssl.ca.location={}", broker.tls.join("ca.pem").display()),
    ]
    .into_iter()
    .flat_map(|p| ["-X".to_owned(), p])
    .collect();
    let dave_login: Vec<&str> = dave_login.iter().map(String::as_str).collect();
    let (ok, _, err) = tokio::task::block_in_place(|| {
        kcat(
            &broker.sasl_ssl,
            &[&dave_login[..], &["-L", "-m", "10"]].concat(),
            None,
        )
    });
    assert!(ok, "dave, added by the reload, logs in: {err}");
    // A broken key: the reload is refused, the renewed certificate stays in force.
    write_private(&broker.tls.join("key.pem"), "not a key");
    sighup(pid);
    broker
        .proc
        .wait_for_line(
            "SIGHUP: kept the Kafka listeners' security settings in force",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(served_certificate(&broker.sasl_ssl, &ca_pem).await, second);
    assert!(broker.proc.is_running());
    assert_eq!(broker.proc.pid(), pid);
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
    // hdi's own Kafka client (the control plane's): SCRAM-SHA-512 over SASL_SSL and
    // SCRAM-SHA-256 over SASL_PLAINTEXT; a wrong password is refused with the broker's words.
    let ca = std::fs::read_to_string(broker.tls.join("ca.pem")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(hdi_client_authenticates(&broker, &ca));

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
    // The Java client (kafka-clients 4.4) over SASL_SSL with SCRAM-SHA-512 and a PEM trust store.
    let ca = broker.tls.join("ca.pem");
    let java = java_client(
        dir.path(),
        &[
            &broker.sasl_ssl,
            ca.to_str().unwrap(),
            "admin",
            ADMIN_PASSWORD,
            "roundtrip",
        ],
    );
    assert_eq!(java["read"], 1000, "{java}");
    let java = java_client(
        dir.path(),
        &[
            &broker.sasl_ssl,
            ca.to_str().unwrap(),
            "admin",
            "not-it",
            "wrong-password",
        ],
    );
    assert_eq!(java["refused"], "SaslAuthenticationException", "{java}");
    // Mutual TLS (carol's certificate, principal User:carol, ACLs on `a` and `g-` groups) with
    // kcat, kafka-python, kafkajs and the Java client.
    let tls = &broker.tls;
    let carol = [
        "-X".to_owned(),
        "security.protocol=SSL".to_owned(),
        "-X".to_owned(),
        format!("ssl.ca.location={}", tls.join("ca.pem").display()),
        "-X".to_owned(),
        format!(
            "ssl.certificate.location={}",
            tls.join("carol.pem").display()
        ),
        "-X".to_owned(),
        format!("ssl.key.location={}", tls.join("carol-key.pem").display()),
    ];
    let carol: Vec<&str> = carol.iter().map(String::as_str).collect();
    let lines: String = (0..100).map(|i| format!("kcat-mtls-{i}\n")).collect();
    let (ok, _, err) = kcat(
        &broker.ssl,
        &[&carol[..], &["-P", "-t", "a", "-p", "0"]].concat(),
        Some(lines.as_bytes()),
    );
    assert!(ok, "kcat produce over mTLS: {err}");
    let (ok, out, err) = kcat(
        &broker.ssl,
        &[
            &carol[..],
            &["-C", "-t", "a", "-p", "0", "-o", "beginning", "-e", "-q"],
        ]
        .concat(),
        None,
    );
    assert!(ok, "kcat consume over mTLS: {err}");
    let read = String::from_utf8_lossy(&out);
    assert_eq!(
        read.lines().filter(|l| l.starts_with("kcat-mtls-")).count(),
        100
    );
    suite(&broker, "kafka-python-mtls");
    let kjs = run_phase(
        Path::new("node"),
        &client_script("security_kafkajs.js"),
        &[("NODE_PATH", node_path.as_path())],
        &broker.ssl,
        "mtls",
        &[
            "--ca",
            tls.join("ca.pem").to_str().unwrap(),
            "--cert",
            tls.join("carol.pem").to_str().unwrap(),
            "--key",
            tls.join("carol-key.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(kjs["read"], 100);
    let keystore = dir.path().join("carol-keystore.pem");
    let pem = std::fs::read_to_string(tls.join("carol-key.pem")).unwrap()
        + &std::fs::read_to_string(tls.join("carol.pem")).unwrap();
    write_private(&keystore, &pem);
    let java = java_client(
        dir.path(),
        &[
            &broker.ssl,
            ca.to_str().unwrap(),
            keystore.to_str().unwrap(),
            "",
            "mtls",
        ],
    );
    assert_eq!(java["read"], 1000, "{java}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_tokens_authenticate_kafka_clients_over_oauthbearer() {
    use hdi_api::TokenRequest;
    let dir = TempDir::new("koauth");
    let secrets = hdi_e2e::Secrets::create(dir.path());
    let database = hdi_e2e::fresh_database().await;
    let token = |user: &str| TokenRequest::Password {
        username: user.to_owned(),
        password: "a-long-password-1".to_owned(),
    };
    // A control plane issuing 2-second tokens: one for alice, left to expire.
    let mut short = hdi_e2e::ControlPlane::start_with(
        &database,
        &secrets,
        "127.0.0.1:0",
        &["--access-token-ttl", "2s"],
    );
    let admin = short.admin(&secrets);
    for user in ["alice", "bob"] {
        admin.user_create(user, "a-long-password-1").await.unwrap();
    }
    let anonymous = admin.with_token(None);
    let expired = anonymous.token_exchange(&token("alice")).await.unwrap();
    let jwks = serde_json::to_string(&anonymous.jwks().await.unwrap()).unwrap();
    short.proc.terminate(Duration::from_secs(20)).unwrap();
    // The same control plane (same database, same signing keys) with its usual lifetime.
    let cp = hdi_e2e::ControlPlane::start(&database, &secrets, "127.0.0.1:0", "30s");
    let anonymous = cp.admin(&secrets).with_token(None);
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let broker = tokio::task::block_in_place(|| {
        start_with(
            dir.path(),
            "SCRAM-SHA-512,OAUTHBEARER",
            "User:alice",
            &[
                "--oauth-jwks-file",
                jwks_file.to_str().unwrap(),
                "--oauth-clock-skew",
                "0s",
            ],
        )
    });
    let mut tokens = serde_json::Map::new();
    for user in ["alice", "bob"] {
        let fresh = anonymous.token_exchange(&token(user)).await.unwrap();
        tokens.insert(user.into(), fresh.access_token.into());
    }
    // The short token has expired by now (2 s, no clock skew tolerated).
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokens.insert("expired".into(), expired.access_token.into());
    let tokens = serde_json::Value::Object(tokens).to_string();
    let out = tokio::task::block_in_place(|| suite_with(&broker, "oauth", &["--tokens", &tokens]));
    assert_eq!(out["alice read"], 50, "{out}");
    assert!(
        out["expired"].as_str().unwrap().contains("expired"),
        "{out}"
    );
    // kcat (Debian's librdkafka 2.0.2 has OAUTHBEARER but no OIDC login) with a plugin that
    // hands it the token from a file: alice produces to and reads back the suite's topic; a
    // forged token (alice's with its signature changed) is refused.
    let plugin = hdi_e2e::kcat_oauth_plugin(dir.path());
    let ca_location = format!("ssl.ca.location={}", broker.tls.join("ca.pem").display());
    let plugin_paths = format!("plugin.library.paths={}", plugin.display());
    let kcat_as = |token: &str, args: &[&str], input: Option<&[u8]>| {
        let token_file = dir.path().join("kcat.token");
        write_private(&token_file, token);
        let mut all = vec![
            "-X",
            "security.protocol=SASL_SSL",
            "-X",
            "sasl.mechanisms=OAUTHBEARER",
            "-X",
            &ca_location,
            "-X",
            &plugin_paths,
        ];
        all.extend_from_slice(args);
        let (ok, out, err) = hdi_e2e::kcat_env(
            &broker.sasl_ssl,
            &[("HDI_OAUTH_TOKEN_FILE", &token_file)],
            &all,
            input,
        );
        (ok, String::from_utf8_lossy(&out).into_owned(), err)
    };
    let alice_token = tokens_map(&tokens, "alice");
    let lines: String = (0..30).map(|i| format!("kcat-oauth-{i}\n")).collect();
    let (ok, _, err) = tokio::task::block_in_place(|| {
        kcat_as(
            &alice_token,
            &["-P", "-t", "oauth-t"],
            Some(lines.as_bytes()),
        )
    });
    assert!(ok, "kcat produce over OAUTHBEARER: {err}");
    let (ok, read, err) = tokio::task::block_in_place(|| {
        kcat_as(
            &alice_token,
            // As a group member: the high-level consumer's poll serves the token callback
            // (kcat's simple consumer asks for metadata before it polls at all).
            &["-G", "g-kcat", "oauth-t", "-o", "beginning", "-e", "-q"],
            None,
        )
    });
    assert!(ok, "kcat consume over OAUTHBEARER: {err}");
    assert_eq!(
        read.lines()
            .filter(|l| l.starts_with("kcat-oauth-"))
            .count(),
        30,
        "{read}"
    );
    // The first character of the signature changed (the last may only hold padding bits).
    let signature = alice_token.rfind('.').unwrap() + 1;
    let changed = if alice_token[signature..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let mut forged = alice_token.clone();
    forged.replace_range(signature..=signature, changed);
    let (_, _, err) = tokio::task::block_in_place(|| {
        kcat_as(
            &forged,
            &["-P", "-t", "oauth-t", "-X", "message.timeout.ms=5000"],
            Some(b"forged-0\n"),
        )
    });
    assert!(
        err.to_lowercase().contains("authentication"),
        "a forged token is refused: {err}"
    );
    let (ok, read, err) = tokio::task::block_in_place(|| {
        kcat_as(
            &alice_token,
            &["-G", "g-kcat-2", "oauth-t", "-o", "beginning", "-e", "-q"],
            None,
        )
    });
    assert!(ok, "kcat consume over OAUTHBEARER: {err}");
    assert!(!read.contains("forged-0"), "{read}");

    // The OAuth 2.0 token endpoint (client credentials: alice and one of her API tokens) serves
    // the standard OAUTHBEARER logins: librdkafka's OIDC (confluent-kafka's librdkafka; Debian's
    // kcat is built without libcurl, so without OIDC), Kafka's OAuthBearerLoginCallbackHandler
    // (the Java client), and token providers of kafka-python and kafkajs calling it.
    let admin = cp.admin(&secrets);
    let secret = admin
        .api_token_create(
            "alice",
            &hdi_api::ApiTokenCreate {
                name: "kafka-clients".into(),
                expires_in_days: Some(1),
            },
        )
        .await
        .unwrap()
        .token;
    let token_url = format!("{}/v1/auth/oauth2/token", cp.url);
    let clients = [
        "--token-url",
        token_url.as_str(),
        "--client-id",
        "alice",
        "--client-secret",
        secret.as_str(),
    ];
    let out = tokio::task::block_in_place(|| suite_with(&broker, "oauth-clients", &clients));
    assert_eq!(out["librdkafka oidc read"], 40, "{out}");
    assert_eq!(out["kafka-python read"], 60, "{out}");
    let node_path = test_node_path();
    let kjs = tokio::task::block_in_place(|| {
        run_phase(
            Path::new("node"),
            &client_script("security_kafkajs.js"),
            &[("NODE_PATH", node_path.as_path())],
            &broker.sasl_ssl,
            "oauth",
            &[
                &["--ca", broker.tls.join("ca.pem").to_str().unwrap()][..],
                &clients,
            ]
            .concat(),
        )
    });
    assert_eq!(kjs["read"], 80, "{kjs}");
    let ca = broker.tls.join("ca.pem");
    let java = tokio::task::block_in_place(|| {
        java_client(
            dir.path(),
            &[
                &broker.sasl_ssl,
                ca.to_str().unwrap(),
                "alice",
                &secret,
                "oauth",
                &token_url,
            ],
        )
    });
    assert_eq!(java["read"], 1000, "{java}");
}

#[test]
fn a_quota_holds_a_real_producer_to_its_byte_rate() {
    use hdi_kafka_client::blocking::Connection;
    use kafka_protocol::messages::AlterClientQuotasRequest;
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::protocol::StrBytes;
    const RATE: f64 = 2_000_000.0;
    let dir = TempDir::new("kquota");
    let broker = hdi_e2e::Broker::start(dir.path(), None, &[]);
    let mut admin = Connection::new(
        std::net::TcpStream::connect(&broker.bootstrap).unwrap(),
        "quota-test",
        1 << 20,
    );
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_entity_name(Some(StrBytes::from_static_str("slow"))),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(StrBytes::from_static_str("producer_byte_rate"))
                    .with_value(RATE),
            ]),
    ]);
    let answer = admin.call(&request, 1).unwrap();
    assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
    let listeners = serde_json::json!({ "PLAINTEXT": broker.bootstrap }).to_string();
    let out = run_phase(
        &test_python(),
        &client_script("security_suite.py"),
        &[],
        &listeners,
        "quota",
        &["--rate", &RATE.to_string()],
    );
    let ratio = out["slow / quota"].as_f64().unwrap();
    assert!((0.9..=1.1).contains(&ratio), "{out}");
}
