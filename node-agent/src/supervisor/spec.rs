//! The pure rules of supervision, free of processes and files: which workload names are valid,
//! which offered assignment is applied, the command line and ready line of each workload kind,
//! how an exit is described, and the restart backoff.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdi_api::{
    BrokerSecurity, BrokerWorkload, ExecutorRole, ExecutorWorkload, WorkloadAssignment,
    WorkloadSpec,
};

/// Longest accepted workload name.
pub const MAX_NAME_LEN: usize = 100;
/// First restart delay after an exit.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long before exiting restarts after [`BACKOFF_MIN`] again.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// The broker's executable, looked up in the agent's bin directory.
pub const BROKER_BINARY: &str = "hdi-broker";
/// The executor's executable, looked up in the agent's bin directory.
pub const EXECUTOR_BINARY: &str = "hdi-executor";

/// Whether `name` may name a workload (and so a directory): 1 to 100 of `a-z`, `0-9` and `-`.
/// Nothing else passes, so a name can never be `.`/`..` or contain a `/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What to do with an assignment the control plane offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Newer than (or as new as, but different from) the applied one: apply it.
    Apply,
    /// Identical to the applied one: nothing to do.
    Same,
    /// Older than the applied one (e.g. from a lagging replica): refuse it.
    Stale,
}

/// Judges `offered` against the applied assignment: a generation lower than the applied one is
/// refused, so a stale answer cannot undo a newer one.
pub fn judge(applied: Option<&WorkloadAssignment>, offered: &WorkloadAssignment) -> Offer {
    match applied {
        None => Offer::Apply,
        Some(applied) if offered.generation < applied.generation => Offer::Stale,
        Some(applied) if applied == offered => Offer::Same,
        Some(_) => Offer::Apply,
    }
}

/// Whether a process running `running` can take `desired` by having its files rewritten and a
/// SIGHUP (`hdi-broker` reloads them) instead of a restart: two brokers that differ at most in
/// the contents of the files a broker reloads — its quorum and Kafka listener certificates, keys
/// and CAs, its static users and the JWKS — each present in both or in neither (a file that
/// appears or goes changes the command line). So a renewed certificate or a rotated signing key
/// never restarts a cluster's brokers.
pub fn reloadable(running: &hdi_api::Workload, desired: &hdi_api::Workload) -> bool {
    fn blank_tls(tls: &mut hdi_api::QuorumTls) {
        tls.ca_pem.clear();
        tls.cert_pem.clear();
        tls.key_pem.clear();
    }
    fn without_files(workload: &hdi_api::Workload) -> Option<hdi_api::Workload> {
        let mut workload = workload.clone();
        let WorkloadSpec::Broker(broker) = &mut workload.spec else {
            return None;
        };
        if let Some(tls) = &mut broker.quorum_tls {
            blank_tls(tls);
        }
        if let Some(security) = &mut broker.kafka_security {
            if let Some(tls) = &mut security.tls {
                blank_tls(tls);
            }
            if let Some(users) = &mut security.sasl_users {
                users.clear();
            }
            if let Some(jwks) = &mut security.oauth_jwks {
                jwks.clear();
            }
        }
        Some(workload)
    }
    running != desired
        && matches!(
            (without_files(running), without_files(desired)),
            (Some(a), Some(b)) if a == b
        )
}

/// A program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments (without the program).
    pub args: Vec<OsString>,
}

/// The executable file name a spec runs.
pub fn binary_name(spec: &WorkloadSpec) -> &'static str {
    match spec {
        WorkloadSpec::Broker(_) => BROKER_BINARY,
        WorkloadSpec::Executor(_) => EXECUTOR_BINARY,
    }
}

/// The data directory a workload's process is given: `<wdir>/data`.
pub fn process_data_dir(wdir: &Path) -> PathBuf {
    wdir.join("data")
}

/// The file a workload's cluster credential is written to: `<wdir>/credential` (mode 0600).
pub fn credential_file(wdir: &Path) -> PathBuf {
    wdir.join("credential")
}

/// Where a broker's quorum TLS files are written: `<wdir>/quorum-tls` (`ca.pem`, `cert.pem`,
/// `key.pem`, each mode 0600).
pub fn quorum_tls_dir(wdir: &Path) -> PathBuf {
    wdir.join("quorum-tls")
}

/// The file a broker's metrics token is written to: `<wdir>/metrics-token` (mode 0600), the
/// agent's own `--metrics-token-file` token, so one scrape credential serves a node.
pub fn metrics_token_file(wdir: &Path) -> PathBuf {
    wdir.join("metrics-token")
}

/// Where a broker's Kafka listener files are written: `<wdir>/kafka-tls` (`ca.pem`,
/// `cert.pem`, `key.pem`, `sasl-users`, each mode 0600).
pub fn kafka_tls_dir(wdir: &Path) -> PathBuf {
    wdir.join("kafka-tls")
}

/// The directory a storage root the control plane names (`workspaces/<id>`) is in, under the
/// node's storage directory; `None` unless it is a relative path of plain names (no `..`, no
/// root, nothing empty), so that no assignment can point a workload elsewhere.
pub fn files_root_dir(storage_dir: &Path, files_root: &str) -> Option<PathBuf> {
    let path = Path::new(files_root);
    let plain = !files_root.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| storage_dir.join(path))
}

/// Why a workload is refused before it is run, if it is.
pub fn refusal(workload: &hdi_api::Workload) -> Option<&'static str> {
    if !valid_name(&workload.name) {
        return Some("a name is 1 to 100 lowercase letters, digits and '-'");
    }
    if !workload.run_as.is_valid() {
        return Some("its user or group id is outside 1000000..=1999999999, or they are equal");
    }
    if let WorkloadSpec::Broker(broker) = &workload.spec
        && let Some(security) = &broker.kafka_security
    {
        let tls = security.protocol.ends_with("SSL");
        let sasl = security.protocol.starts_with("SASL_");
        if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&security.protocol.as_str())
        {
            return Some("its Kafka listener protocol is unknown");
        }
        if tls != security.tls.is_some() || sasl != security.sasl_users.is_some() {
            return Some("its Kafka listener lacks the TLS identity or users its protocol needs");
        }
    }
    if let WorkloadSpec::Executor(executor) = &workload.spec {
        if files_root_dir(Path::new("/"), &executor.files_root).is_none() {
            return Some("its files root is not a relative path of plain names");
        }
        if executor.credential.len() < hdi_stdx::secret::MIN_SECRET_LEN {
            return Some("its cluster credential is missing or too short");
        }
    }
    None
}

/// The command line of `spec`, with binaries from `bin_dir`, its data in `<wdir>/data` and the
/// storage roots of executors under `storage_dir`; `metrics_token` says whether the agent has a
/// metrics token to hand a broker ([`metrics_token_file`]).
pub fn command_line(
    bin_dir: &Path,
    storage_dir: &Path,
    wdir: &Path,
    spec: &WorkloadSpec,
    metrics_token: bool,
) -> CommandLine {
    let data_dir = process_data_dir(wdir).into_os_string();
    let args = match spec {
        WorkloadSpec::Broker(broker) => {
            let mut args = broker_args(broker, data_dir);
            if broker.quorum_tls.is_some() {
                args.push("--quorum-tls-dir".into());
                args.push(quorum_tls_dir(wdir).into_os_string());
            }
            if let Some(security) = &broker.kafka_security {
                args.extend(security_args(security, &kafka_tls_dir(wdir)));
            }
            if let Some(port) = broker.metrics_port {
                let ip = metrics_ip(&broker.host, metrics_token);
                args.extend([
                    "--metrics-listen".into(),
                    std::net::SocketAddr::new(ip, port).to_string().into(),
                ]);
                if metrics_token {
                    args.extend([
                        "--metrics-token-file".into(),
                        metrics_token_file(wdir).into_os_string(),
                    ]);
                }
            }
            args
        }
        WorkloadSpec::Executor(executor) => {
            let mut args = executor_args(executor, data_dir);
            // A refused files root never reaches here ([`refusal`]); the storage directory
            // itself stands in, so the line is still well-formed.
            let files_root = files_root_dir(storage_dir, &executor.files_root)
                .unwrap_or_else(|| storage_dir.to_path_buf());
            args.extend([
                "--credential-file".into(),
                credential_file(wdir).into_os_string(),
                "--files-root".into(),
                files_root.into_os_string(),
            ]);
            args
        }
    };
    CommandLine {
        program: bin_dir.join(binary_name(spec)),
        args,
    }
}

/// The address a broker's metrics listener binds: the node's address when it is an IP and
/// either loopback or protected by a token; without a token, loopback only (a broker refuses an
/// open metrics listener elsewhere); with a token and a host name, every interface.
fn metrics_ip(host: &str, token: bool) -> std::net::IpAddr {
    let parsed = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    match parsed {
        Some(ip) if token || ip.is_loopback() => ip,
        None if token => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        _ => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    }
}

/// A secured broker's flags: its one listener, the files in `dir`, the authorizer; topics are
/// created only on request.
fn security_args(security: &BrokerSecurity, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if security.tls.is_some() {
        args.extend(["--tls-dir".into(), dir.as_os_str().to_owned()]);
    }
    if security.sasl_users.is_some() {
        args.extend([
            "--sasl-mechanisms".into(),
            security.sasl_mechanisms.join(",").into(),
            "--sasl-users-file".into(),
            dir.join("sasl-users").into_os_string(),
        ]);
    }
    if security.oauth_jwks.is_some() {
        args.extend([
            "--oauth-jwks-file".into(),
            dir.join("jwks.json").into_os_string(),
        ]);
    }
    if security.authorizer {
        args.push("--authorizer".into());
        args.extend([
            "--super-users".into(),
            security.super_users.join(",").into(),
        ]);
    }
    args.extend(["--auto-create-topics".into(), "false".into()]);
    args
}

fn broker_args(broker: &BrokerWorkload, data_dir: OsString) -> Vec<OsString> {
    let kafka = host_port(&broker.host, broker.kafka_port);
    let listener: Vec<OsString> = match &broker.kafka_security {
        Some(security) => vec![
            "--listener".into(),
            format!("{}://{kafka}", security.protocol).into(),
        ],
        None => vec![
            "--listen".into(),
            kafka.clone().into(),
            "--advertised-listener".into(),
            kafka.into(),
        ],
    };
    let mut args: Vec<OsString> = vec![
        "--node-id".into(),
        broker.broker_id.to_string().into(),
        "--data-dir".into(),
        data_dir,
    ];
    args.extend(listener);
    args.extend([
        "--quorum-listen".into(),
        host_port(&broker.host, broker.quorum_port).into(),
    ]);
    if !broker.voters.is_empty() {
        let voters: Vec<String> = broker
            .voters
            .iter()
            .map(|v| format!("{}@{}", v.broker_id, host_port(&v.host, v.port)))
            .collect();
        args.push("--quorum".into());
        args.push(voters.join(",").into());
    }
    if !broker.rack.is_empty() {
        args.push("--rack".into());
        args.push(broker.rack.clone().into());
    }
    args
}

fn executor_args(executor: &ExecutorWorkload, data_dir: OsString) -> Vec<OsString> {
    let listen = host_port(&executor.host, executor.port);
    match executor.role {
        ExecutorRole::Driver => vec![
            "driver".into(),
            "--listen".into(),
            listen.into(),
            "--data-dir".into(),
            data_dir,
        ],
        ExecutorRole::Worker => vec![
            "worker".into(),
            "--id".into(),
            executor.worker_id.to_string().into(),
            "--listen".into(),
            listen.into(),
            "--driver".into(),
            executor.driver.clone().into(),
            "--data-dir".into(),
            data_dir,
        ],
    }
}

/// `host:port`, with an IPv6 literal in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether a line of the process's output says that it is ready to serve.
pub fn is_ready_line(spec: &WorkloadSpec, line: &str) -> bool {
    match spec {
        WorkloadSpec::Broker(_) => line.contains("hdi-broker ready on"),
        WorkloadSpec::Executor(_) => line.contains("hdi-executor") && line.contains("ready"),
    }
}

/// How a process ended: `exit status N` or `signal N`.
pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "exited (status unknown)".to_owned(),
    }
}

/// The restart delay after `failures` consecutive quick exits: 1 s, doubling, at most 30 s.
pub fn backoff_delay(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX)
}

/// The consecutive-failure count to use for an exit after `ran_for`: a process that ran at least
/// [`BACKOFF_RESET_AFTER`] starts the backoff over.
pub fn failures_after_run(failures: u32, ran_for: Duration) -> u32 {
    if ran_for >= BACKOFF_RESET_AFTER {
        0
    } else {
        failures
    }
}

#[cfg(test)]
mod tests {
    /// A valid identity.
    const RUN_AS: hdi_api::RunAs = hdi_api::RunAs {
        uid: 1_000_001,
        workspace_gid: 1_000_000,
    };

    use hdi_api::{QuorumVoter, Workload};
    use uuid::Uuid;

    use super::*;

    fn broker() -> WorkloadSpec {
        WorkloadSpec::Broker(BrokerWorkload {
            broker_id: 2,
            host: "10.0.0.2".into(),
            kafka_port: 9092,
            quorum_port: 9192,
            voters: vec![
                QuorumVoter {
                    broker_id: 1,
                    host: "10.0.0.1".into(),
                    port: 9192,
                },
                QuorumVoter {
                    broker_id: 2,
                    host: "10.0.0.2".into(),
                    port: 9192,
                },
            ],
            rack: "3".into(),
            quorum_tls: None,
            kafka_security: None,
            metrics_port: None,
        })
    }

    fn strings(line: &CommandLine) -> Vec<String> {
        line.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn names() {
        assert!(valid_name("broker-1"));
        assert!(valid_name("0"));
        assert!(valid_name(&"a".repeat(100)));
        for bad in [
            "", "Broker", "a_b", "a.b", "..", ".", "a/b", "../x", "a b", "é", "a\0",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"a".repeat(101)));
    }

    #[test]
    fn generations() {
        let assignment = |generation, names: &[&str]| WorkloadAssignment {
            generation,
            workloads: names
                .iter()
                .map(|n| Workload {
                    name: (*n).to_owned(),
                    cluster_id: Uuid::nil(),
                    run_as: RUN_AS,
                    spec: broker(),
                })
                .collect(),
        };
        let applied = assignment(5, &["a"]);
        assert_eq!(judge(None, &assignment(0, &[])), Offer::Apply);
        assert_eq!(judge(Some(&applied), &assignment(4, &[])), Offer::Stale);
        assert_eq!(judge(Some(&applied), &assignment(5, &["a"])), Offer::Same);
        assert_eq!(judge(Some(&applied), &assignment(5, &["b"])), Offer::Apply);
        assert_eq!(judge(Some(&applied), &assignment(6, &["a"])), Offer::Apply);
    }

    #[test]
    fn only_renewed_files_are_reloaded() {
        let tls = |cert: &str| hdi_api::QuorumTls {
            ca_pem: "ca".into(),
            cert_pem: cert.into(),
            key_pem: format!("key of {cert}"),
        };
        let workload = |quorum: Option<&str>, kafka: Option<&str>, jwks: &str, port: u16| {
            let WorkloadSpec::Broker(mut b) = broker() else {
                unreachable!()
            };
            b.quorum_tls = quorum.map(tls);
            b.kafka_port = port;
            b.kafka_security = Some(Box::new(BrokerSecurity {
                protocol: "SASL_SSL".into(),
                tls: kafka.map(tls),
                sasl_mechanisms: vec!["SCRAM-SHA-512".into(), "OAUTHBEARER".into()],
                sasl_users: Some("admin line".into()),
                oauth_jwks: Some(jwks.into()),
                authorizer: true,
                super_users: vec!["User:hdi-admin".into()],
            }));
            Workload {
                name: "b".into(),
                cluster_id: Uuid::nil(),
                run_as: RUN_AS,
                spec: WorkloadSpec::Broker(b),
            }
        };
        let running = workload(Some("q1"), Some("k1"), "keys-1", 9092);
        // Renewed certificates, a rotated JWKS: reload.
        assert!(reloadable(
            &running,
            &workload(Some("q2"), Some("k1"), "keys-1", 9092)
        ));
        assert!(reloadable(
            &running,
            &workload(Some("q1"), Some("k2"), "keys-2", 9092)
        ));
        // The same: nothing to reload.
        assert!(!reloadable(&running, &running.clone()));
        // Anything else, or a file set that appears or goes: restart.
        assert!(!reloadable(
            &running,
            &workload(Some("q2"), Some("k1"), "keys-1", 9093)
        ));
        assert!(!reloadable(
            &running,
            &workload(None, Some("k1"), "keys-1", 9092)
        ));
        assert!(!reloadable(
            &running,
            &workload(Some("q1"), None, "keys-1", 9092)
        ));
        let executor = Workload {
            name: "e".into(),
            cluster_id: Uuid::nil(),
            run_as: RUN_AS,
            spec: WorkloadSpec::Executor(ExecutorWorkload {
                role: ExecutorRole::Driver,
                worker_id: 0,
                host: "h".into(),
                port: 1,
                driver: String::new(),
                credential: "c".into(),
                files_root: "w".into(),
            }),
        };
        let mut other = executor.clone();
        if let WorkloadSpec::Executor(e) = &mut other.spec {
            e.credential = "d".into();
        }
        assert!(!reloadable(&executor, &other));
    }

    #[test]
    fn broker_command_line() {
        let line = command_line(
            Path::new("/opt/hdi"),
            Path::new("/var/hdi/storage"),
            Path::new("/var/hdi/workloads/b"),
            &broker(),
            false,
        );
        assert_eq!(line.program, Path::new("/opt/hdi/hdi-broker"));
        assert_eq!(
            strings(&line),
            [
                "--node-id",
                "2",
                "--data-dir",
                "/var/hdi/workloads/b/data",
                "--listen",
                "10.0.0.2:9092",
                "--advertised-listener",
                "10.0.0.2:9092",
                "--quorum-listen",
                "10.0.0.2:9192",
                "--quorum",
                "1@10.0.0.1:9192,2@10.0.0.2:9192",
                "--rack",
                "3",
            ]
        );
        let WorkloadSpec::Broker(mut v6) = broker() else {
            unreachable!()
        };
        v6.host = "::1".into();
        v6.voters.clear();
        v6.rack.clear();
        let line = command_line(
            Path::new("/b"),
            Path::new("/s"),
            Path::new("/w"),
            &WorkloadSpec::Broker(v6),
            false,
        );
        assert_eq!(
            strings(&line),
            [
                "--node-id",
                "2",
                "--data-dir",
                "/w/data",
                "--listen",
                "[::1]:9092",
                "--advertised-listener",
                "[::1]:9092",
                "--quorum-listen",
                "[::1]:9192",
            ]
        );
    }

    /// A broker with a metrics port serves `/metrics` on the node's address behind the agent's
    /// token, or on loopback when the agent has none (a broker refuses an open listener
    /// elsewhere).
    #[test]
    fn broker_metrics_listener() {
        let WorkloadSpec::Broker(mut broker) = broker() else {
            unreachable!()
        };
        broker.voters.clear();
        broker.rack.clear();
        broker.metrics_port = Some(9404);
        let tail = |broker: &BrokerWorkload, token: bool| -> Vec<String> {
            let line = command_line(
                Path::new("/b"),
                Path::new("/s"),
                Path::new("/w"),
                &WorkloadSpec::Broker(broker.clone()),
                token,
            );
            strings(&line).split_off(10)
        };
        assert_eq!(
            tail(&broker, true),
            [
                "--metrics-listen",
                "10.0.0.2:9404",
                "--metrics-token-file",
                "/w/metrics-token"
            ]
        );
        assert_eq!(tail(&broker, false), ["--metrics-listen", "127.0.0.1:9404"]);
        broker.host = "::1".into();
        assert_eq!(tail(&broker, false), ["--metrics-listen", "[::1]:9404"]);
        broker.host = "broker-2.example".into();
        assert_eq!(
            tail(&broker, true),
            [
                "--metrics-listen",
                "0.0.0.0:9404",
                "--metrics-token-file",
                "/w/metrics-token"
            ]
        );
        broker.metrics_port = None;
        assert!(tail(&broker, true).is_empty());
    }

    /// A secured broker listens with its protocol, reads its TLS identity and users from
    /// `kafka-tls/`, enforces ACLs and creates no topic on a client's Metadata.
    #[test]
    fn secured_broker_command_line() {
        let WorkloadSpec::Broker(mut secured) = broker() else {
            unreachable!()
        };
        secured.voters.clear();
        secured.rack.clear();
        let security = BrokerSecurity {
            protocol: "SASL_SSL".into(),
            tls: Some(hdi_api::QuorumTls {
                ca_pem: "ca".into(),
                cert_pem: "cert".into(),
                key_pem: "key".into(),
            }),
            sasl_mechanisms: vec!["SCRAM-SHA-512".into()],
            sasl_users: Some("hdi-admin ...\n".into()),
            oauth_jwks: None,
            authorizer: true,
            super_users: vec!["User:hdi-admin".into()],
        };
        secured.kafka_security = Some(Box::new(security));
        let workload = |spec| hdi_api::Workload {
            name: "b".into(),
            cluster_id: Uuid::nil(),
            run_as: RUN_AS,
            spec,
        };
        assert_eq!(
            refusal(&workload(WorkloadSpec::Broker(secured.clone()))),
            None
        );
        let line = command_line(
            Path::new("/b"),
            Path::new("/s"),
            Path::new("/w"),
            &WorkloadSpec::Broker(secured.clone()),
            false,
        );
        assert_eq!(
            strings(&line),
            [
                "--node-id",
                "2",
                "--data-dir",
                "/w/data",
                "--listener",
                "SASL_SSL://10.0.0.2:9092",
                "--quorum-listen",
                "10.0.0.2:9192",
                "--tls-dir",
                "/w/kafka-tls",
                "--sasl-mechanisms",
                "SCRAM-SHA-512",
                "--sasl-users-file",
                "/w/kafka-tls/sasl-users",
                "--authorizer",
                "--super-users",
                "User:hdi-admin",
                "--auto-create-topics",
                "false",
            ]
        );
        // A listener weaker than its protocol is never started.
        let mut weak = secured.clone();
        if let Some(s) = weak.kafka_security.as_mut() {
            s.tls = None;
        }
        assert!(refusal(&workload(WorkloadSpec::Broker(weak))).is_some());
        let mut unknown = secured;
        if let Some(s) = unknown.kafka_security.as_mut() {
            s.protocol = "SASL_TLS".into();
        }
        assert!(refusal(&workload(WorkloadSpec::Broker(unknown))).is_some());
    }

    #[test]
    fn executor_command_lines() {
        let mut executor = ExecutorWorkload {
            role: ExecutorRole::Driver,
            worker_id: 0,
            host: "10.0.0.1".into(),
            port: 7000,
            driver: "10.0.0.1:7000".into(),
            credential: "c".repeat(32),
            files_root: "workspaces/w1".into(),
        };
        let line = command_line(
            Path::new("/b"),
            Path::new("/s"),
            Path::new("/w"),
            &WorkloadSpec::Executor(executor.clone()),
            false,
        );
        assert_eq!(line.program, Path::new("/b/hdi-executor"));
        assert_eq!(
            strings(&line),
            [
                "driver",
                "--listen",
                "10.0.0.1:7000",
                "--data-dir",
                "/w/data",
                "--credential-file",
                "/w/credential",
                "--files-root",
                "/s/workspaces/w1",
            ]
        );
        executor.role = ExecutorRole::Worker;
        executor.worker_id = 3;
        executor.port = 7003;
        let line = command_line(
            Path::new("/b"),
            Path::new("/s"),
            Path::new("/w"),
            &WorkloadSpec::Executor(executor.clone()),
            false,
        );
        assert_eq!(
            strings(&line),
            [
                "worker",
                "--id",
                "3",
                "--listen",
                "10.0.0.1:7003",
                "--driver",
                "10.0.0.1:7000",
                "--data-dir",
                "/w/data",
                "--credential-file",
                "/w/credential",
                "--files-root",
                "/s/workspaces/w1",
            ]
        );
        // The credential is in a file, never on the command line.
        assert!(!strings(&line).contains(&executor.credential));
    }

    #[test]
    fn workloads_with_unsafe_files_roots_or_no_credential_are_refused() {
        let executor = |files_root: &str, credential: &str| hdi_api::Workload {
            name: "x-worker-1".into(),
            cluster_id: uuid::Uuid::nil(),
            run_as: RUN_AS,
            spec: WorkloadSpec::Executor(ExecutorWorkload {
                role: ExecutorRole::Worker,
                worker_id: 1,
                host: "h".into(),
                port: 1,
                driver: "h:2".into(),
                credential: credential.into(),
                files_root: files_root.into(),
            }),
        };
        let good = "k".repeat(32);
        assert_eq!(refusal(&executor("workspaces/abc", &good)), None);
        for bad in ["", "/etc", "../x", "workspaces/../../x", "./a"] {
            assert!(refusal(&executor(bad, &good)).is_some(), "{bad:?}");
        }
        assert!(refusal(&executor("workspaces/abc", "short")).is_some());
        // Never root, a system or login id, nor a user that is its own workspace's group.
        for (uid, workspace_gid) in [
            (0, 1_000_000),
            (1000, 1_000_000),
            (1_000_001, 65534),
            (2_000_000_000, 1_000_000),
            (1_000_001, 1_000_001),
        ] {
            let mut bad = executor("workspaces/abc", &good);
            bad.run_as = hdi_api::RunAs { uid, workspace_gid };
            assert!(refusal(&bad).is_some(), "{uid} {workspace_gid}");
        }
        assert_eq!(
            files_root_dir(Path::new("/s"), "workspaces/abc"),
            Some(PathBuf::from("/s/workspaces/abc"))
        );
    }

    #[test]
    fn ready_lines() {
        let broker = broker();
        assert!(is_ready_line(
            &broker,
            "2026-01-01T00:00:00Z  INFO hdi_broker: hdi-broker ready on 127.0.0.1:9092 node_id=1"
        ));
        assert!(!is_ready_line(&broker, "INFO hdi-broker starting"));
        let executor = WorkloadSpec::Executor(ExecutorWorkload {
            role: ExecutorRole::Driver,
            worker_id: 0,
            host: "h".into(),
            port: 1,
            driver: "h:1".into(),
            credential: "c".repeat(32),
            files_root: "workspaces/w".into(),
        });
        assert!(is_ready_line(&executor, "hdi-executor driver ready on h:1"));
        assert!(!is_ready_line(&executor, "hdi-broker ready on h:1"));
    }

    #[test]
    fn exits() {
        assert_eq!(describe_exit(Some(1), None), "exit status 1");
        assert_eq!(describe_exit(None, Some(9)), "signal 9");
    }

    #[test]
    fn backoff() {
        let delays: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
        assert_eq!(failures_after_run(4, Duration::from_secs(59)), 4);
        assert_eq!(failures_after_run(4, Duration::from_secs(60)), 0);
    }
}
