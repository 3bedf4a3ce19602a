//! The supervisor against a real single-node `hdi-broker` (build it first with
//! `cargo build -p hdi-broker`): it starts and becomes Running, a SIGKILLed broker is restarted,
//! a new supervisor over the same data directory adopts the live process, a changed spec restarts
//! it on the same data, and an empty assignment of a higher generation stops the broker and
//! removes its directory. Run as root, the broker runs as its cluster's user, and another
//! cluster's user can read neither its keys nor its data.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use hdi_api::{
    BrokerWorkload, QuorumVoter, RunAs, Workload, WorkloadAssignment, WorkloadSpec, WorkloadState,
    WorkloadStatus,
};
use hdi_node_agent::supervisor::{Applied, Isolation, STOP_TIMEOUT, Supervisor, SupervisorConfig};
use hdi_test_support::ports;
use hdi_test_support::procfs::can_read_as;
use tokio::time::Instant;
use uuid::Uuid;

/// The directory of the workspace binaries these tests were built beside.
fn bin_dir() -> PathBuf {
    // Test executables live in <target>/debug/deps/; binaries in <target>/debug/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(
        dir.join("hdi-broker").exists(),
        "{} is missing: run `cargo build -p hdi-broker` first",
        dir.join("hdi-broker").display()
    );
    dir
}

/// The data directory, removed when the test ends, first SIGKILLing any workload process still
/// named by a pid file, so a failing test leaves no broker behind.
struct Cleanup(tempfile::TempDir);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let pid_files = std::fs::read_dir(self.0.path().join("workloads"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("pid"));
        for pid_file in pid_files {
            let pid = std::fs::read(&pid_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .and_then(|json| json["pid"].as_u64());
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
}

/// The identity of the broker's cluster.
const RUN_AS: RunAs = RunAs {
    uid: 1_000_001,
    workspace_gid: 1_000_000,
};

/// The token the agent hands its brokers' metrics listeners.
const METRICS_TOKEN: &str = "supervisor-test-metrics-token-0123456789";

/// `GET /metrics` on loopback `port` (HTTP/1.1, closed after the answer): the status line and
/// the body.
fn http_get(port: u16, token: Option<&str>) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

fn proc_status(pid: u32, field: &str) -> Vec<u32> {
    hdi_test_support::procfs::status_ids(&pid.to_string(), field)
}

/// The broker runs as its cluster's user, owns its data and keys, and another cluster's user
/// can read none of them.
fn assert_isolated(wdir: &Path, pid: u32) {
    let id = RUN_AS.uid;
    assert_eq!(proc_status(pid, "Uid"), [id; 4]);
    assert_eq!(proc_status(pid, "Gid"), [id; 4]);
    assert_eq!(proc_status(pid, "Groups"), [RUN_AS.workspace_gid]);
    assert_eq!((owner(wdir), mode(wdir)), ((0, id), 0o750));
    let data = wdir.join("data");
    assert_eq!((owner(&data), mode(&data)), ((id, id), 0o700));
    let tls = wdir.join("quorum-tls");
    assert_eq!((owner(&tls), mode(&tls)), ((0, id), 0o750));
    let key = tls.join("key.pem");
    assert_eq!((owner(&key), mode(&key)), ((id, id), 0o600));
    // What the broker wrote itself is its user's, under umask 007.
    let written: Vec<PathBuf> = walk(&data);
    assert!(!written.is_empty());
    for path in &written {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (id, id), "{}", path.display());
        assert_eq!(meta.mode() & 0o007, 0, "{}", path.display());
    }
    assert!(can_read_as(id, &key), "the cluster's user reads its key");
    let other = id + 2;
    assert!(
        !can_read_as(other, &key),
        "another cluster's user reads the key"
    );
    let segment = written.iter().find(|p| p.is_file()).unwrap();
    assert!(!can_read_as(other, segment), "{}", segment.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// Handles the supervisor's events until `done` holds, failing after `timeout`.
async fn until(
    supervisor: &mut Supervisor,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Supervisor) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(supervisor) {
        match tokio::time::timeout_at(deadline, supervisor.next_event()).await {
            Ok(event) => supervisor.handle(event),
            Err(_) => panic!(
                "timed out waiting until {what}: {:#?}",
                supervisor.statuses()
            ),
        }
    }
}

fn status(supervisor: &Supervisor, name: &str) -> WorkloadStatus {
    supervisor
        .status(name)
        .unwrap_or_else(|| panic!("{name} not reported: {:#?}", supervisor.statuses()))
}

fn running(name: &str) -> impl Fn(&Supervisor) -> bool + '_ {
    move |s| {
        s.status(name)
            .is_some_and(|s| s.state == WorkloadState::Running)
    }
}

#[tokio::test]
async fn supervises_a_single_node_broker() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let cleanup = Cleanup(tempfile::tempdir().unwrap());
    let data_dir = cleanup.0.path().to_owned();
    // Others may pass through (not list) it, so that a cluster's user reaches its directory.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    // As root (here and in CI), the broker runs as its cluster's user, unless the binaries sit
    // where other users cannot reach them.
    let isolation = if hdi_test_support::procfs::workloads_isolated(&bin_dir(), &[&data_dir]) {
        Isolation::ClusterUsers
    } else {
        Isolation::AgentUser
    };
    let config = SupervisorConfig {
        data_dir: data_dir.clone(),
        bin_dir: bin_dir(),
        storage_dir: data_dir.join("storage"),
        stop_timeout: STOP_TIMEOUT,
        isolation,
        metrics_token: Some(hdi_stdx::secret::Secret::new(METRICS_TOKEN)),
    };
    // A directory of no assigned workload, left by an earlier life of the node.
    std::fs::create_dir_all(data_dir.join("workloads/stray/data")).unwrap();

    // Ports from the race-free allocator: the broker binds them later, and again after restarts.
    let (kafka_port, quorum_port, metrics_port) = (ports::port(), ports::port(), ports::port());
    // The broker's quorum runs mutual TLS with material the agent writes as 0600 files.
    let authority = hdi_pki::Authority::generate("supervisor-test").unwrap();
    let issued = authority.issue_broker(1).unwrap();
    let quorum_tls = hdi_api::QuorumTls {
        ca_pem: authority.cert_pem.clone(),
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    };
    let broker = Workload {
        name: "broker-1".into(),
        cluster_id: Uuid::new_v4(),
        run_as: RUN_AS,
        spec: WorkloadSpec::Broker(BrokerWorkload {
            broker_id: 1,
            host: "127.0.0.1".into(),
            kafka_port,
            quorum_port,
            voters: vec![QuorumVoter {
                broker_id: 1,
                host: "127.0.0.1".into(),
                port: quorum_port,
            }],
            rack: "1".into(),
            quorum_tls: Some(quorum_tls),
            kafka_security: None,
            metrics_port: Some(metrics_port),
        }),
    };
    let mut evil = broker.clone();
    evil.name = "../evil".into();
    let assignment = WorkloadAssignment {
        generation: 1,
        workloads: vec![broker.clone(), evil],
    };

    let mut supervisor = Supervisor::start(config.clone()).unwrap();
    assert_eq!(supervisor.applied_generation(), 0);
    assert_eq!(supervisor.apply(assignment.clone()), Applied::Applied);
    assert_eq!(supervisor.apply(assignment.clone()), Applied::Unchanged);
    let wdir = supervisor.workload_dir("broker-1");
    assert!(data_dir.join("assignment.json").exists());
    // Assignments carry workloads' credentials and keys: the files are their owner's alone.
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        let path = data_dir.join("workloads/broker-1/quorum-tls").join(name);
        // Written when the process starts, which apply() begins.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !path.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&data_dir.join("assignment.json")), 0o600);

    // Starts and becomes Running; the invalid name is refused; the stray directory is moved aside.
    until(
        &mut supervisor,
        Duration::from_secs(20),
        "broker-1 runs and stray is removed",
        |s| running("broker-1")(s) && s.status("stray").is_none(),
    )
    .await;
    assert!(!data_dir.join("workloads/stray").exists());
    // Never deleted: a directory no applied assignment named is moved aside with its data.
    let aside: Vec<_> = std::fs::read_dir(data_dir.join("orphaned"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        aside.len() == 1 && aside[0].starts_with("stray-"),
        "{aside:?}"
    );
    assert!(
        data_dir
            .join("orphaned")
            .join(&aside[0])
            .join("data")
            .exists()
    );
    assert!(!data_dir.join("evil").exists());
    assert_eq!(
        supervisor.statuses().len(),
        1,
        "{:#?}",
        supervisor.statuses()
    );
    let first = status(&supervisor, "broker-1");
    let first_pid = first.pid.unwrap();
    assert_eq!(first.restarts, 0);
    std::net::TcpStream::connect(("127.0.0.1", kafka_port)).unwrap();
    assert!(wdir.join("pid").exists());
    // Nothing of the agent's environment but PATH.
    let environ = std::fs::read(format!("/proc/{first_pid}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            String::from_utf8_lossy(v)
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["NO_COLOR", "PATH", "RUST_LOG"]);
    if isolation == Isolation::ClusterUsers {
        assert_isolated(&wdir, first_pid);
    }
    let log = std::fs::read_to_string(wdir.join("process.log")).unwrap();
    assert!(log.contains("hdi-broker ready on"), "{log}");
    // Its metrics listener wants the agent's token, written for it as a 0600 file.
    assert_eq!(mode(&wdir.join("metrics-token")), 0o600);
    let (status_line, body) = http_get(metrics_port, Some(METRICS_TOKEN));
    assert!(status_line.contains(" 200 "), "{status_line}\n{body}");
    assert!(
        body.contains("kafka_controller_kafkacontroller_activecontrollercount"),
        "{body}"
    );
    assert!(http_get(metrics_port, None).0.contains(" 401 "));
    assert!(http_get(metrics_port, Some("wrong")).0.contains(" 401 "));

    // SIGKILLed: restarted after the backoff, and Running again.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    until(
        &mut supervisor,
        Duration::from_secs(20),
        "broker-1 is restarted",
        |s| running("broker-1")(s) && s.status("broker-1").is_some_and(|s| s.restarts == 1),
    )
    .await;
    let second = status(&supervisor, "broker-1");
    let second_pid = second.pid.unwrap();
    assert_ne!(second_pid, first_pid);
    assert_eq!(second.last_exit.as_deref(), Some("signal 9"));

    // A stale generation is refused and changes nothing.
    let stale = WorkloadAssignment {
        generation: 0,
        workloads: Vec::new(),
    };
    assert_eq!(supervisor.apply(stale), Applied::Refused);
    assert_eq!(status(&supervisor, "broker-1").pid, Some(second_pid));

    // The agent goes away; the broker keeps running; a new supervisor adopts it.
    drop(supervisor);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(second_pid), "the broker died with its supervisor");
    let mut supervisor = Supervisor::start(config.clone()).unwrap();
    assert_eq!(supervisor.applied_generation(), 1);
    let adopted = status(&supervisor, "broker-1");
    assert_eq!(
        (adopted.state, adopted.pid),
        (WorkloadState::Running, Some(second_pid))
    );

    // A changed spec (same name) stops the adopted process and starts the new spec on the same data.
    let marker = wdir.join("data/kept");
    std::fs::write(&marker, b"data survives a spec change").unwrap();
    let mut changed = broker.clone();
    let WorkloadSpec::Broker(spec) = &mut changed.spec else {
        unreachable!()
    };
    spec.rack = "2".into();
    let changed_assignment = WorkloadAssignment {
        generation: 2,
        workloads: vec![changed],
    };
    assert_eq!(supervisor.apply(changed_assignment), Applied::Applied);
    assert_eq!(
        status(&supervisor, "broker-1").state,
        WorkloadState::Stopping
    );
    until(
        &mut supervisor,
        Duration::from_secs(20),
        "broker-1 runs the new spec",
        |s| {
            running("broker-1")(s)
                && s.status("broker-1")
                    .is_some_and(|s| s.pid != Some(second_pid))
        },
    )
    .await;
    assert!(!alive(second_pid));
    assert!(marker.exists());
    let third_pid = status(&supervisor, "broker-1").pid.unwrap();
    let cmdline = std::fs::read(format!("/proc/{third_pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("--rack\u{0}2\u{0}"));

    // An empty assignment of a higher generation stops the broker and removes its directory.
    let empty = WorkloadAssignment {
        generation: 3,
        workloads: Vec::new(),
    };
    assert_eq!(supervisor.apply(empty), Applied::Applied);
    assert_eq!(
        status(&supervisor, "broker-1").state,
        WorkloadState::Stopping
    );
    until(
        &mut supervisor,
        Duration::from_secs(20),
        "broker-1 is removed",
        |s| s.statuses().is_empty(),
    )
    .await;
    assert!(!wdir.exists());
    assert!(!alive(third_pid));
    assert_eq!(supervisor.applied_generation(), 3);
}
