//! A managed Kafka cluster secured by default, end to end: three node agents run brokers with
//! a SASL_SSL listener (certificates from the cluster's Kafka CA, delivered as 0600 files), the
//! control plane administers it over SASL_SSL as its own SCRAM user, Kafka users are created,
//! rotated, re-scoped, held to quotas and deleted through `hdictl kafka-user` with their ACLs
//! and quotas applied, and kcat
//! (with `hdictl cluster client-config`) and `hdictl topic produce|consume` reach the cluster
//! only with a valid password and only where their ACLs allow; people reach it as themselves
//! over OAUTHBEARER with their hdi tokens, with ACLs from their workspace roles, and services
//! as hdi users with librdkafka fetching tokens from the OAuth 2.0 token endpoint (client-config
//! `--oauth-client`); an ACL added behind the control plane's back is removed; certificates and
//! then the cluster's authorities rotate with no restart.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hdi_e2e::{Fleet, bootstrap_servers, kcat};
use serde_json::Value;

/// Every file named `name` under `dir`.
fn find(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            find(&path, name, found);
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// kcat with a client configuration file (`-F`).
fn kcat_with(
    bootstrap: &str,
    config: &Path,
    args: &[&str],
    input: Option<&[u8]>,
) -> (bool, String, String) {
    let mut all = vec!["-F", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let (ok, out, err) = kcat(bootstrap, &all, input);
    (ok, String::from_utf8_lossy(&out).into_owned(), err)
}

/// `--user USER --password-file FILE MORE`: hdictl speaking Kafka as a Kafka user.
fn as_user<'a>(user: &'a str, password_file: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    [
        &[
            "--user",
            user,
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        more,
    ]
    .concat()
}

/// `hdictl topic produce pay payments EXTRA --file FILE`.
fn produce<'a>(file: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    [
        &["topic", "produce", "pay", "payments"],
        extra,
        &["--file", file.to_str().unwrap()],
    ]
    .concat()
}

/// `hdictl topic consume pay payments EXTRA --from-beginning --max MAX --timeout TIMEOUT`.
fn consume<'a>(extra: &[&'a str], max: &'a str, timeout: &'a str) -> Vec<&'a str> {
    [
        &["topic", "consume", "pay", "payments"],
        extra,
        &["--from-beginning", "--max", max, "--timeout", timeout],
    ]
    .concat()
}

/// How many records of `payments` start with `prefix`, read from the beginning with kcat
/// configured by `config`; fails the test when kcat fails.
fn read_payments(bootstrap: &str, config: &Path, prefix: &str) -> usize {
    let (success, out, err) = kcat_with(
        bootstrap,
        config,
        &["-C", "-t", "payments", "-o", "beginning", "-e", "-q"],
        None,
    );
    assert!(success, "kcat consume with {}: {err}", config.display());
    out.lines().filter(|l| l.starts_with(prefix)).count()
}

fn lines(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}-{i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_kafka_is_secured_by_default() {
    let fleet = Fleet::start_with_workspace("kafka-managed", 3).await;
    let api = fleet.api();
    let (cluster, _) = fleet.create_cluster("pay", &["--kind", "kafka", "--brokers", "3"]);
    let endpoints = &cluster["status"]["endpoints"];
    assert_eq!(endpoints["security_protocol"], "SASL_SSL", "{cluster:#}");
    assert_eq!(endpoints["sasl_mechanisms"][0], "SCRAM-SHA-512");
    assert!(
        endpoints["ca_certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(cluster["spec"]["security"]["authorization"], true);
    let bootstrap = bootstrap_servers(&cluster);
    let table = fleet.hdictl_ok(&["cluster", "show", "pay"]);
    assert!(
        table.contains("security:    SASL_SSL (SCRAM-SHA-512, OAUTHBEARER), ACLs enforced"),
        "{table}"
    );

    // Each broker's key and static users are 0600 files. As root (here and in CI, where the
    // binaries are reachable by other users) the agents run the brokers as the cluster's own user: the files are that user's, in a directory
    // only root writes and the cluster's group reads; otherwise in a 0700 directory.
    let mut owners = std::collections::BTreeSet::new();
    for name in ["key.pem", "sasl-users"] {
        let found = paths_named(fleet.dir.path(), name, "kafka-tls");
        assert_eq!(found.len(), 3, "{name}: {found:?}");
        for path in &found {
            use std::os::unix::fs::MetadataExt as _;
            assert_eq!(mode(path), 0o600, "{}", path.display());
            let (file, dir) = (
                std::fs::metadata(path).unwrap(),
                std::fs::metadata(path.parent().unwrap()).unwrap(),
            );
            if fleet.isolated() {
                assert!(file.uid() >= 1_000_000, "{}", path.display());
                assert_eq!((dir.uid(), dir.gid()), (0, file.uid()));
                assert_eq!(mode(path.parent().unwrap()), 0o750, "{}", path.display());
                owners.insert(file.uid());
            } else {
                assert_eq!(mode(path.parent().unwrap()), 0o700, "{}", path.display());
            }
        }
    }
    assert!(owners.len() <= 1, "one cluster, one user: {owners:?}");
    // The security of a cluster cannot change.
    let mut spec: hdi_api::ClusterSpec = serde_json::from_value(cluster["spec"].clone()).unwrap();
    spec.security = Some(hdi_api::KafkaSecurity::plaintext());
    let refused = api.cluster_put("test", "pay", &spec).await.unwrap_err();
    assert!(refused.to_string().contains("security"), "{refused}");

    // Topics through the control plane, which speaks SASL_SSL to the brokers.
    fleet.hdictl_ok(&["topic", "create", "pay", "payments", "-p", "3", "-r", "3"]);
    fleet.hdictl_ok(&["topic", "create", "pay", "secret", "-p", "1", "-r", "3"]);

    // A Kafka user, its password written 0600 and never printed.
    let dir = fleet.dir.path();
    let app_pw = dir.join("app.pw");
    let out = fleet.hdictl_ok(&[
        "kafka-user",
        "create",
        "pay",
        "app",
        "--allow",
        "topic:payments:read,write,describe",
        "--allow",
        "group:app-*:read",
        "--password-file",
        app_pw.to_str().unwrap(),
    ]);
    assert!(out.contains("state:       applied"), "{out}");
    assert_eq!(mode(&app_pw), 0o600);
    let password = std::fs::read_to_string(&app_pw).unwrap();
    assert!(
        !out.contains(password.trim()),
        "the password is not printed"
    );
    // Another, read-only on `pay*` topics, its password printed once (JSON).
    let reader: Value = fleet.hdictl_json(&[
        "kafka-user",
        "create",
        "pay",
        "reader",
        "--allow",
        "topic:pay*:read,describe",
        "--allow",
        "group:r-*:read",
        "-o",
        "json",
    ]);
    let reader_pw = dir.join("reader.pw");
    std::fs::write(&reader_pw, reader["password"].as_str().unwrap()).unwrap();
    assert!(
        reader["user"]["acls"].as_array().unwrap().len() == 2,
        "{reader:#}"
    );
    let err = fleet.hdictl_fails(&["kafka-user", "create", "pay", "app"]);
    assert!(err.contains("kafka_user_exists"), "{err}");
    let err = fleet.hdictl_fails(&["kafka-user", "create", "pay", "hdi-admin"]);
    assert!(err.contains("name"), "{err}");
    let list = fleet.hdictl_ok(&["kafka-user", "list", "pay"]);
    assert!(list.contains("app") && list.contains("reader"), "{list}");

    // kcat with the configuration hdictl prints.
    let config = |user: &str, pw: &Path, file: &str| {
        let out = fleet.hdictl_ok(&[
            "cluster",
            "client-config",
            "pay",
            "--user",
            user,
            "--password-file",
            pw.to_str().unwrap(),
            "--ca-file",
            dir.join("pay-ca.pem").to_str().unwrap(),
        ]);
        assert!(out.contains("security.protocol=SASL_SSL"), "{out}");
        let path = dir.join(file);
        std::fs::write(&path, out).unwrap();
        path
    };
    let app_conf = config("app", &app_pw, "app.conf");
    let (success, _, err) = kcat_with(
        &bootstrap,
        &app_conf,
        &["-P", "-t", "payments"],
        Some(lines("kcat", 100).as_bytes()),
    );
    assert!(success, "kcat produce as app: {err}");
    assert_eq!(read_payments(&bootstrap, &app_conf, "kcat-"), 100);
    // Metadata hides what app may not describe; producing there is refused.
    let (_, out, _) = kcat_with(&bootstrap, &app_conf, &["-L"], None);
    assert!(out.contains("\"payments\""), "{out}");
    assert!(!out.contains("\"secret\""), "{out}");
    let (success, _, err) = kcat_with(&bootstrap, &app_conf, &["-P", "-t", "secret"], Some(b"x\n"));
    assert!(!success, "app may not write `secret`");
    assert!(err.to_lowercase().contains("authoriz"), "{err}");
    // Quotas: hdictl sets a produce quota on app and the brokers throttle it; without it they
    // do not. Kafka throttles after the fact (a request over the quota is answered with
    // `throttle_time_ms` and the connection muted), so kcat sends small batches: 120 KB in
    // 10 KB requests at 10 KB/s per broker takes at least 3 s even spread over the three
    // brokers (the first request to each goes through).
    let out = fleet.hdictl_ok(&[
        "kafka-user",
        "set-quotas",
        "pay",
        "app",
        "--producer-byte-rate",
        "10000",
    ]);
    assert!(
        out.contains("quotas:      producer_byte_rate=10000"),
        "{out}"
    );
    assert!(out.contains("state:       applied"), "{out}");
    let err = fleet.hdictl_fails(&[
        "kafka-user",
        "set-quotas",
        "pay",
        "app",
        "--request-percentage",
        "0",
    ]);
    assert!(err.contains("--request-percentage"), "{err}");
    let records: String = (0..120)
        .map(|i| format!("quota-{i}-{}\n", "x".repeat(1000)))
        .collect();
    let timed_produce = || {
        let started = std::time::Instant::now();
        let (success, _, err) = kcat_with(
            &bootstrap,
            &app_conf,
            &["-P", "-t", "payments", "-X", "batch.size=10000"],
            Some(records.as_bytes()),
        );
        assert!(success, "kcat produce as app: {err}");
        started.elapsed()
    };
    let throttled = timed_produce();
    let out = fleet.hdictl_ok(&["kafka-user", "set-quotas", "pay", "app"]);
    assert!(out.contains("quotas:      none"), "{out}");
    let free = timed_produce();
    eprintln!("120 KB as app: {throttled:?} with a 10 KB/s quota, {free:?} without");
    assert!(
        throttled >= Duration::from_secs(2),
        "the quota did not hold app back: {throttled:?}"
    );
    assert!(
        free * 2 < throttled,
        "{free:?} without the quota, {throttled:?} with"
    );
    assert_eq!(read_payments(&bootstrap, &app_conf, "quota-"), 240);
    // No TLS, or no password: nothing.
    let (success, _, _) = kcat(&bootstrap, &["-L", "-m", "5"], None);
    assert!(!success, "a PLAINTEXT client gets no metadata");

    // hdictl speaks Kafka as a Kafka user.
    let input = dir.join("more.txt");
    std::fs::write(&input, lines("hdictl", 50)).unwrap();
    let out = fleet.hdictl_ok(&produce(&input, &as_user("app", &app_pw, &[])));
    assert!(out.contains("wrote 50 of 50 records"), "{out}");
    let out = fleet.hdictl_ok(&consume(
        &as_user("reader", &reader_pw, &["--group", "r-1"]),
        "150",
        "20s",
    ));
    assert_eq!(out.lines().count(), 150, "{out}");
    let err = fleet.hdictl_fails(&produce(&input, &as_user("reader", &reader_pw, &[])));
    assert!(err.contains("not written"), "{err}");
    // Without --user, hdictl is its own user over OAUTHBEARER (the context's token): the
    // platform admin's ACLs are an operator's.
    let out = fleet.hdictl_ok(&produce(&input, &[]));
    assert!(out.contains("wrote 50 of 50 records"), "{out}");
    let out = fleet.hdictl_ok(&consume(&[], "200", "20s"));
    assert_eq!(out.lines().count(), 200, "{out}");
    // A viewer of the workspace reads as herself and cannot write.
    api.user_create("vera", "vera-password-1234").await.unwrap();
    api.role_binding_put("test", "vera", hdi_api::Role::Viewer)
        .await
        .unwrap();
    let jwt = api
        .token_exchange(&hdi_api::TokenRequest::Password {
            username: "vera".into(),
            password: "vera-password-1234".into(),
        })
        .await
        .unwrap()
        .access_token;
    let vera = dir.join("vera.json");
    std::fs::write(
        &vera,
        serde_json::json!({
            "current_context": "test",
            "contexts": {"test": {"api_url": fleet.control_plane.url, "token": jwt, "workspace": "test"}}
        })
        .to_string(),
    )
    .unwrap();
    // Her ACLs arrive with the cluster's next reconcile pass.
    let mut last = String::new();
    let read = (0..20).any(|_| {
        let (success, out, err) =
            hdi_e2e::hdictl(&vera, &consume(&["--group", "vera-1"], "10", "5s"));
        last = format!("{out}\n{err}");
        success && out.lines().count() == 10
    });
    assert!(read, "vera reads over OAUTHBEARER: {last}");
    let (success, out, err) = hdi_e2e::hdictl(&vera, &produce(&input, &[]));
    assert!(!success, "a viewer cannot write: {out}");
    assert!(err.contains("not written"), "{err}");
    // A service as vera without her password: one of her API tokens as OAuth client secret,
    // and a configuration from client-config with which librdkafka fetches its own tokens
    // from the control plane's OAuth 2.0 token endpoint.
    let api_token = api
        .api_token_create(
            "vera",
            &hdi_api::ApiTokenCreate {
                name: "reader-service".into(),
                expires_in_days: Some(1),
            },
        )
        .await
        .unwrap()
        .token;
    let token_file = dir.join("vera.token");
    std::fs::write(&token_file, format!("{api_token}\n")).unwrap();
    let properties = fleet.hdictl_ok(&[
        "cluster",
        "client-config",
        "pay",
        "--oauth-client",
        "vera",
        "--api-token-file",
        token_file.to_str().unwrap(),
        "--ca-file",
        dir.join("o-ca.pem").to_str().unwrap(),
    ]);
    assert!(
        properties.contains("sasl.oauthbearer.method=oidc")
            && properties.contains(&format!(
                "sasl.oauthbearer.token.endpoint.url={}/v1/auth/oauth2/token",
                fleet.control_plane.url
            )),
        "{properties}"
    );
    let properties_file = dir.join("vera-oidc.properties");
    std::fs::write(&properties_file, &properties).unwrap();
    let out = Command::new(hdi_e2e::test_python())
        .arg(hdi_e2e::client_script("properties_consume.py"))
        .arg(&properties_file)
        .args(["payments", "vera-oidc", "25"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"read\": 25"),
        "confluent-kafka with client-config's OIDC properties: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The control plane owns every ACL of the cluster: one added behind its back (over Kafka,
    // as its own super user hdi-admin) is removed by the next reconcile pass; vera's stay.
    let pool = sqlx::PgPool::connect(&fleet.database_url).await.unwrap();
    let admin_password: String =
        sqlx::query_scalar("SELECT kafka_admin_password FROM clusters WHERE name = 'pay'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let oidc_bootstrap = properties
        .lines()
        .find_map(|l| l.strip_prefix("bootstrap.servers="))
        .unwrap();
    let admin_properties = dir.join("hdi-admin.properties");
    std::fs::write(
        &admin_properties,
        format!(
            "bootstrap.servers={oidc_bootstrap}\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\n\
             sasl.username=hdi-admin\nsasl.password={admin_password}\nssl.ca.location={}\n",
            dir.join("o-ca.pem").display()
        ),
    )
    .unwrap();
    let out = Command::new(hdi_e2e::test_python())
        .arg(hdi_e2e::client_script("acl_drift.py"))
        .arg(&admin_properties)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "an ACL added behind the control plane's back: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "acl_drift.py: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let err = fleet.hdictl_fails(&["kafka-user", "create", "pay", "vera"]);
    assert!(err.contains("hdi user"), "{err}");
    // A group outside reader's ACLs.
    let err = fleet.hdictl_fails(&consume(
        &as_user("reader", &reader_pw, &["--group", "other"]),
        "1",
        "5s",
    ));
    assert!(!err.is_empty());

    // Rotation: the old password stops working, the new one works.
    let app_pw2 = dir.join("app2.pw");
    fleet.hdictl_ok(&[
        "kafka-user",
        "rotate",
        "pay",
        "app",
        "--password-file",
        app_pw2.to_str().unwrap(),
    ]);
    let (success, _, err) = kcat_with(&bootstrap, &app_conf, &["-L", "-m", "5"], None);
    assert!(!success, "the old password still works: {err}");
    let app_conf2 = config("app", &app_pw2, "app2.conf");
    let (success, _, err) = kcat_with(&bootstrap, &app_conf2, &["-L", "-m", "10"], None);
    assert!(success, "the new password: {err}");

    // Re-scoping: without write, app's produce is refused.
    let out = fleet.hdictl_ok(&[
        "kafka-user",
        "set-acls",
        "pay",
        "app",
        "--allow",
        "topic:payments:read,describe",
    ]);
    assert!(out.contains("allow topic:payments:read,describe"), "{out}");
    let (success, _, err) = kcat_with(
        &bootstrap,
        &app_conf2,
        &["-P", "-t", "payments"],
        Some(b"late\n"),
    );
    assert!(!success, "app lost write");
    assert!(err.to_lowercase().contains("authoriz"), "{err}");

    // Deletion: reader can no longer log in.
    fleet.hdictl_ok(&["kafka-user", "delete", "pay", "reader"]);
    let reader_conf = config("reader", &reader_pw, "reader.conf");
    let (success, _, _) = kcat_with(&bootstrap, &reader_conf, &["-L", "-m", "5"], None);
    assert!(!success, "a deleted user cannot log in");
    let err = fleet.hdictl_fails(&["kafka-user", "show", "pay", "reader"]);
    assert!(err.contains("not_found"), "{err}");

    // The Java and kafkajs configurations name the same things.
    // `hdictl cluster client-config pay --user app --client CLIENT --ca-file CA`.
    let app_config = |client: &str, ca: &str| {
        fleet.hdictl_ok(&[
            "cluster",
            "client-config",
            "pay",
            "--user",
            "app",
            "--client",
            client,
            "--ca-file",
            dir.join(ca).to_str().unwrap(),
        ])
    };
    let java = app_config("java", "j-ca.pem");
    assert!(java.contains("sasl.mechanism=SCRAM-SHA-512"), "{java}");
    assert!(java.contains("password=\"<password of app>\""), "{java}");
    assert!(java.contains("ssl.truststore.type=PEM"), "{java}");
    let kjs: Value = serde_json::from_str(&app_config("kafkajs", "k-ca.pem")).unwrap();
    assert_eq!(kjs["sasl"]["mechanism"], "scram-sha-512", "{kjs:#}");

    // Certificate rotation: every broker gets new quorum and listener certificates from the same
    // authorities and reloads them in place (same process), and clients trusting the cluster's
    // CA keep working.
    let brokers = broker_processes(fleet.dir.path());
    assert_eq!(brokers.len(), 3, "{brokers:?}");
    let ca_pem = endpoints["ca_certificate"].as_str().unwrap().to_owned();
    let addresses: Vec<String> = bootstrap.split(',').map(str::to_owned).collect();
    assert_eq!(addresses.len(), 3, "{bootstrap}");
    let mut before = Vec::new();
    for address in &addresses {
        before.push(hdi_e2e::served_certificate(address, &ca_pem).await);
    }
    let quorum_before = files_named(fleet.dir.path(), "cert.pem", "quorum-tls");
    let out = fleet.hdictl_ok(&["cluster", "rotate-certificates", "pay"]);
    assert!(out.contains("certificates of 3 brokers of pay"), "{out}");
    let rotating = std::time::Instant::now();
    let deadline = rotating + Duration::from_secs(60);
    loop {
        let mut now = Vec::new();
        for address in &addresses {
            now.push(hdi_e2e::served_certificate(address, &ca_pem).await);
        }
        if now.iter().zip(&before).all(|(a, b)| a != b) {
            eprintln!(
                "all 3 brokers serve renewed certificates {:.1} s after the rotation",
                rotating.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the brokers still serve their old certificates 60 s after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let quorum_after = files_named(fleet.dir.path(), "cert.pem", "quorum-tls");
    assert_eq!(quorum_after.len(), 3);
    assert!(
        quorum_after.iter().all(|c| !quorum_before.contains(c)),
        "every quorum certificate is renewed"
    );
    assert_eq!(
        broker_processes(fleet.dir.path()),
        brokers,
        "the brokers reloaded their certificates without a restart"
    );
    // The cluster still works over the renewed certificates: hdictl writes (acks=all, so
    // through the quorum's replication) and kcat reads, both trusting the same CA.
    let rotated = dir.join("rotated.txt");
    std::fs::write(&rotated, lines("rotated", 30)).unwrap();
    let out = fleet.hdictl_ok(&produce(&rotated, &[]));
    assert!(out.contains("wrote 30 of 30 records"), "{out}");
    assert_eq!(read_payments(&bootstrap, &app_conf2, "rotated-"), 30);

    // Authority rotation: new authorities are trusted at once beside the current ones (hdictl
    // writes both Kafka CA certificates to the clients' CA file, the brokers reload both quorum
    // CAs), sign once the trust period is over (every broker certificate is issued again and
    // reloaded in place), and the old ones are dropped once every broker has loaded its new
    // certificates. The clients that loaded the new CA file keep working throughout.
    let quorum_ca_before = files_named(fleet.dir.path(), "ca.pem", "quorum-tls");
    assert!(
        quorum_ca_before
            .iter()
            .all(|ca| ca.matches("BEGIN").count() == 1)
    );
    let ca_file = dir.join("pay-ca.pem");
    let out = fleet.hdictl_ok(&[
        "cluster",
        "rotate-authorities",
        "pay",
        "--trust-period",
        "4s",
        "--ca-file",
        ca_file.to_str().unwrap(),
    ]);
    assert!(out.contains("are rotating"), "{out}");
    let bundle = std::fs::read_to_string(&ca_file).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(bundle.starts_with(&ca_pem), "the current CA first");
    let rotating = std::time::Instant::now();
    let deadline = rotating + Duration::from_secs(120);
    let mut phases = Vec::new();
    loop {
        let shown = fleet.hdictl_json(&["cluster", "show", "pay", "-o", "json"]);
        let phase = shown["status"]["authority_rotation"]["phase"].clone();
        if phase.is_null() {
            break;
        }
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
        if phases.len() == 1 && phases[0] == "trusting" && rotating.elapsed().as_secs() < 2 {
            // While trusting, the brokers trust both quorum CAs and still serve the old
            // authority's certificates.
            for address in &addresses {
                hdi_e2e::tls_handshake(address, &ca_pem).await.unwrap();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation is still {phases:?} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "authorities rotated in {:.1} s through {phases:?}",
        rotating.elapsed().as_secs_f64()
    );
    assert_eq!(
        phases.first().map(|p| p.as_str()),
        Some(Some("trusting")),
        "{phases:?}"
    );
    assert!(phases.iter().any(|p| p == "issuing"), "{phases:?}");
    let shown = fleet.hdictl_json(&["cluster", "show", "pay", "-o", "json"]);
    let new_ca = shown["status"]["endpoints"]["ca_certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_ca.matches("BEGIN CERTIFICATE").count(), 1, "{new_ca}");
    assert_ne!(new_ca, ca_pem);
    assert!(
        bundle.ends_with(&new_ca),
        "the announced CA is the one now in force"
    );
    for address in &addresses {
        hdi_e2e::tls_handshake(address, &new_ca)
            .await
            .unwrap_or_else(|e| panic!("{address} with the new CA: {e}"));
        let refused = hdi_e2e::tls_handshake(address, &ca_pem).await;
        assert!(refused.is_err(), "{address} still verifies with the old CA");
    }
    // The old quorum CA leaves the brokers' trust at their nodes' next fetch after the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let quorum_ca_after = files_named(fleet.dir.path(), "ca.pem", "quorum-tls");
        assert_eq!(quorum_ca_after.len(), 3);
        if quorum_ca_after
            .iter()
            .all(|ca| ca.matches("BEGIN").count() == 1 && !quorum_ca_before.contains(ca))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the brokers still trust the old quorum CA 60 s after the rotation ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let quorum_certs = files_named(fleet.dir.path(), "cert.pem", "quorum-tls");
    assert!(quorum_certs.iter().all(|c| !quorum_after.contains(c)));
    assert_eq!(
        broker_processes(fleet.dir.path()),
        brokers,
        "the brokers rotated their authorities without a restart"
    );
    // Through the quorum (acks=all) and to a client that loaded the CA file hdictl wrote.
    let after = dir.join("after-authorities.txt");
    std::fs::write(&after, lines("authorities", 30)).unwrap();
    let out = fleet.hdictl_ok(&produce(&after, &[]));
    assert!(out.contains("wrote 30 of 30 records"), "{out}");
    assert_eq!(read_payments(&bootstrap, &app_conf2, "authorities-"), 30);
}

/// The files named `name` in directories named `parent` under `dir`.
fn paths_named(dir: &Path, name: &str, parent: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    find(dir, name, &mut found);
    found.retain(|p| p.parent().is_some_and(|d| d.ends_with(parent)));
    found
}

/// Contents of the files named `name` in directories named `parent` under `dir`.
fn files_named(dir: &Path, name: &str, parent: &str) -> Vec<String> {
    paths_named(dir, name, parent)
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The pids of the brokers the agents under `dir` run (from their pid files), sorted.
fn broker_processes(dir: &Path) -> Vec<u64> {
    let mut found = Vec::new();
    find(dir, "pid", &mut found);
    let mut pids: Vec<u64> = found
        .into_iter()
        .filter(|p| p.with_file_name("kafka-tls").is_dir())
        .map(|p| {
            let file: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            file["pid"].as_u64().unwrap()
        })
        .collect();
    pids.sort_unstable();
    pids
}
