//! A control plane, node agents and hdictl: `Secrets`, `ControlPlane`, `start_agent`, and `Fleet`,
//! a control plane with its agents over one temporary directory for cluster-lifecycle tests; and
//! waiting on the control plane's nodes and operations (`wait_ready_nodes`, `wait_step`,
//! `wait_succeeded`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use uuid::Uuid;

use crate::{Proc, TempDir, bin, eventually, fresh_database, processes_under};

/// Secrets for one control plane: the admin and agent tokens, in files.
pub struct Secrets {
    /// Admin bearer token.
    pub admin_token: String,
    /// File holding it.
    pub admin_token_file: PathBuf,
    /// File holding the agent token.
    pub agent_token_file: PathBuf,
}

impl Secrets {
    /// Writes fresh tokens into `dir`.
    pub fn create(dir: &Path) -> Secrets {
        let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let admin_token_file = dir.join("admin-token");
        let agent_token_file = dir.join("agent-token");
        std::fs::write(&admin_token_file, &admin_token).unwrap();
        std::fs::write(
            &agent_token_file,
            format!("agent-{}", uuid::Uuid::new_v4().simple()),
        )
        .unwrap();
        Secrets {
            admin_token,
            admin_token_file,
            agent_token_file,
        }
    }
}

/// A running `hdi-control-plane serve`.
pub struct ControlPlane {
    /// The process.
    pub proc: Proc,
    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl ControlPlane {
    /// Starts a control plane on `listen` (port 0 for a free one) and waits for its ready line.
    pub fn start(
        database_url: &str,
        secrets: &Secrets,
        listen: &str,
        node_ready_timeout: &str,
    ) -> ControlPlane {
        Self::start_with(
            database_url,
            secrets,
            listen,
            &["--node-ready-timeout", node_ready_timeout],
        )
    }

    /// Starts a control plane with extra `serve` flags and waits for its ready line.
    pub fn start_with(
        database_url: &str,
        secrets: &Secrets,
        listen: &str,
        extra: &[&str],
    ) -> ControlPlane {
        Self::start_with_env(database_url, secrets, listen, extra, &[])
    }

    /// [`ControlPlane::start_with`] with extra environment variables (e.g. `KUBECONFIG`).
    pub fn start_with_env(
        database_url: &str,
        secrets: &Secrets,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> ControlPlane {
        let mut proc = Proc::spawn(
            "hdi-control-plane",
            Command::new(bin("hdi-control-plane"))
                .args(["serve", "--listen", listen])
                .args(extra)
                .arg("--admin-token-file")
                .arg(&secrets.admin_token_file)
                .arg("--agent-token-file")
                .arg(&secrets.agent_token_file)
                .env("DATABASE_URL", database_url)
                .env("RUST_LOG", "info")
                .envs(env.iter().copied()),
        );
        let address = proc
            .wait_for_word_after("listening on http://", Duration::from_secs(30))
            .unwrap();
        let url = format!("http://{address}");
        ControlPlane { proc, url }
    }

    /// An API client with the admin token.
    pub fn admin(&self, secrets: &Secrets) -> hdi_api::Client {
        hdi_api::Client::new(&self.url, Some(secrets.admin_token.clone())).unwrap()
    }

    /// The `host:port` it listens on.
    pub fn listen_addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }
}

/// Starts `hdi-node-agent` for the control plane at `url`.
pub fn start_agent(
    url: &str,
    token_file: &Path,
    name: &str,
    fault_domain: u32,
    data_dir: &Path,
    interval: &str,
) -> Proc {
    Proc::spawn(
        name,
        Command::new(bin("hdi-node-agent"))
            .args(run_workloads_as(&[data_dir]))
            .args([
                "--control-plane",
                url,
                "--name",
                name,
                "--fault-domain",
                &fault_domain.to_string(),
            ])
            .args(["--heartbeat-interval", interval])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--token-file")
            .arg(token_file)
            .env("RUST_LOG", "info"),
    )
}

/// `--run-workloads-as agent-user` unless workloads can run as their clusters' users
/// ([`workloads_isolated`] for the binaries and `dirs`): the agents' default as root.
fn run_workloads_as(dirs: &[&Path]) -> Vec<&'static str> {
    let bin_dir = bin("hdi-node-agent");
    let bin_dir = bin_dir.parent().unwrap_or(Path::new("/"));
    if crate::workloads_isolated(bin_dir, dirs) {
        Vec::new()
    } else {
        vec!["--run-workloads-as", "agent-user"]
    }
}

/// Waits (up to 30 s) until exactly `n` nodes are Ready.
pub async fn wait_ready_nodes(api: &hdi_api::Client, n: usize) {
    eventually(
        &format!("{n} ready nodes"),
        Duration::from_secs(30),
        || async {
            let nodes = api.nodes_list_all().await.ok()?;
            (nodes
                .iter()
                .filter(|node| node.status == hdi_api::NodeStatus::Ready)
                .count()
                == n)
                .then_some(())
        },
    )
    .await
    .unwrap();
}

/// `hdictl cluster create NAME` arguments of a Kafka cluster of three brokers with PLAINTEXT
/// listeners, for tests of anything but client security.
pub const PLAINTEXT_KAFKA_3: &[&str] = &[
    "--kind",
    "kafka",
    "--security",
    "plaintext",
    "--brokers",
    "3",
];

/// The bootstrap servers of a Kafka cluster as `hdictl cluster show NAME -o json` prints it
/// (`status.endpoints.bootstrap_servers`); fails the test when there are none.
pub fn bootstrap_servers(cluster: &serde_json::Value) -> String {
    cluster["status"]["endpoints"]["bootstrap_servers"]
        .as_str()
        .unwrap_or_else(|| panic!("no bootstrap servers: {cluster:#}"))
        .to_owned()
}

/// Waits (up to 120 s) for operation `op` to end; fails the test unless it succeeded.
pub async fn wait_succeeded(api: &hdi_api::Client, op: Uuid) -> hdi_api::Operation {
    let done = api
        .operation_wait(op, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    assert_eq!(done.state, hdi_api::OperationState::Succeeded, "{done:#?}");
    done
}

/// Waits (up to 60 s) until operation `op` shows a step whose name starts with `prefix` (any
/// step for `""`); returns the names of its steps then.
pub async fn wait_step(api: &hdi_api::Client, op: Uuid, prefix: &str) -> Vec<String> {
    eventually(
        &format!("step {prefix:?} of {op}"),
        Duration::from_secs(60),
        || async {
            let op = api.operation_get(op).await.ok()?;
            let names: Vec<String> = op.steps.iter().map(|s| s.name.clone()).collect();
            names.iter().any(|n| n.starts_with(prefix)).then_some(names)
        },
    )
    .await
    .unwrap()
    .0
}

/// Runs `hdictl` with the given config file; returns (success, stdout, stderr).
pub fn hdictl(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("hdictl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A local fleet for cluster-lifecycle tests: a control plane and node agents over one temp
/// directory. Workloads outlive their agents by design, so dropping the fleet SIGKILLs every
/// process whose command line names a path under its directory.
pub struct Fleet {
    /// The control plane.
    pub control_plane: ControlPlane,
    /// Agents by index (fault domain = index).
    pub agents: Vec<Proc>,
    /// Secrets.
    pub secrets: Secrets,
    /// The database URL.
    pub database_url: String,
    /// The `--workload-ports` range given to the control plane.
    pub workload_ports: String,
    /// An hdictl config file for the admin, with workspace `test`.
    pub hdictl_config: PathBuf,
    /// The temp dir holding everything (last field: dropped last).
    pub dir: TempDir,
}

impl Fleet {
    /// Starts a control plane (fast reconcile) and `agents` agents in fault domains 0..agents.
    pub async fn start(tag: &str, agents: u32) -> Fleet {
        let database_url = fresh_database().await;
        Self::start_with_database(tag, agents, database_url)
    }

    /// Like [`Fleet::start`], then waits (up to 30 s) until its `agents` nodes are Ready.
    pub async fn start_ready(tag: &str, agents: u32) -> Fleet {
        let fleet = Self::start(tag, agents).await;
        wait_ready_nodes(&fleet.api(), usize::try_from(agents).unwrap()).await;
        fleet
    }

    /// Like [`Fleet::start_ready`], then creates workspace `test` (the one of `hdictl_config`)
    /// with `hdictl workspace create`.
    pub async fn start_with_workspace(tag: &str, agents: u32) -> Fleet {
        let fleet = Self::start_ready(tag, agents).await;
        fleet.hdictl_ok(&["workspace", "create", "test"]);
        fleet
    }

    /// Like [`Fleet::start`], on the (empty) database at `database_url`, e.g. one of a
    /// [`PrivatePostgres`].
    pub fn start_with_database(tag: &str, agents: u32, database_url: String) -> Fleet {
        let dir = TempDir::new(tag);
        let secrets = Secrets::create(dir.path());
        // Ports of its own, so that tests running at once do not collide; the control plane's too,
        // as it is restarted on the same address after a kill.
        let ports = hdi_test_support::ports::range(90);
        let workload_ports = format!("{}-{}", ports.start(), ports.end());
        let control_plane = Self::start_control_plane(
            &database_url,
            &secrets,
            &hdi_test_support::ports::loopback(),
            &workload_ports,
        );
        let mut procs = Vec::new();
        for i in 0..agents {
            procs.push(Self::agent(&control_plane.url, &secrets, dir.path(), i));
        }
        let hdictl_config = dir.path().join("hdictl.json");
        std::fs::write(
            &hdictl_config,
            serde_json::json!({
                "current_context": "test",
                "contexts": {"test": {"api_url": control_plane.url, "token": secrets.admin_token, "workspace": "test"}}
            })
            .to_string(),
        )
        .unwrap();
        Fleet {
            control_plane,
            agents: procs,
            secrets,
            database_url,
            workload_ports,
            hdictl_config,
            dir,
        }
    }

    /// Starts a control plane for this fleet's database.
    pub fn start_control_plane(
        database_url: &str,
        secrets: &Secrets,
        listen: &str,
        ports: &str,
    ) -> ControlPlane {
        ControlPlane::start_with(
            database_url,
            secrets,
            listen,
            &[
                "--node-ready-timeout",
                "3s",
                "--workload-ports",
                ports,
                "--reconcile-interval",
                "300ms",
            ],
        )
    }

    /// Restarts the control plane on the same address (after it was killed).
    pub fn restart_control_plane(&mut self) {
        let listen = self.control_plane.listen_addr();
        self.control_plane = Self::start_control_plane(
            &self.database_url,
            &self.secrets,
            &listen,
            &self.workload_ports,
        );
    }

    /// The data directory of agent `index`.
    pub fn agent_dir(&self, index: u32) -> PathBuf {
        self.dir.path().join(format!("node-{index}"))
    }

    /// Starts agent `index` again (same name, data dir and fault domain).
    pub fn start_agent(&self, index: u32, url: &str) -> Proc {
        Self::agent(url, &self.secrets, self.dir.path(), index)
    }

    /// Whether this fleet's agents run each cluster's workloads as the cluster's own user.
    pub fn isolated(&self) -> bool {
        run_workloads_as(&[self.dir.path()]).is_empty()
    }

    fn agent(url: &str, secrets: &Secrets, dir: &Path, index: u32) -> Proc {
        Proc::spawn(
            &format!("node-{index}"),
            Command::new(bin("hdi-node-agent"))
                .args(run_workloads_as(&[dir]))
                .args(["--control-plane", url, "--name", &format!("node-{index}")])
                .args(["--fault-domain", &index.to_string()])
                .args(["--heartbeat-interval", "500ms", "--poll-interval", "300ms"])
                .args(["--cpu-millis", "4000"])
                .arg("--data-dir")
                .arg(dir.join(format!("node-{index}")))
                // The fleet shares one storage directory (workspaces' storage roots), as nodes
                // on several hosts would share a network file system.
                .arg("--storage-dir")
                .arg(dir.join("storage"))
                .arg("--token-file")
                .arg(&secrets.agent_token_file)
                // The agent's own filter must not reach its workloads (their ready lines are info).
                .env("RUST_LOG", "warn,hdi_node_agent=info"),
        )
    }

    /// An admin API client.
    pub fn api(&self) -> hdi_api::Client {
        self.control_plane.admin(&self.secrets)
    }

    /// Runs hdictl with this fleet's config; returns (success, stdout, stderr).
    pub fn hdictl(&self, args: &[&str]) -> (bool, String, String) {
        hdictl(&self.hdictl_config, args)
    }

    /// Runs hdictl with this fleet's config and returns stdout, failing the test with its output
    /// when it fails.
    pub fn hdictl_ok(&self, args: &[&str]) -> String {
        let (success, out, err) = self.hdictl(args);
        assert!(success, "hdictl {args:?} failed:\n{err}\n{out}");
        out
    }

    /// Runs hdictl with this fleet's config and parses its stdout as JSON (give `-o json`),
    /// failing the test when it fails or prints something else.
    pub fn hdictl_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.hdictl_ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("hdictl {args:?}: {e}:\n{out}"))
    }

    /// Runs hdictl with this fleet's config expecting it to fail; returns stderr, failing the test
    /// with its output when it succeeds.
    pub fn hdictl_fails(&self, args: &[&str]) -> String {
        let (success, out, err) = self.hdictl(args);
        assert!(
            !success,
            "hdictl {args:?} should have failed:\n{out}\n{err}"
        );
        err
    }

    /// Creates cluster `name` with `hdictl cluster create NAME ARGS` (which waits for it) and
    /// checks with `hdictl cluster show NAME -o json` that it is Running; returns the cluster as
    /// shown and the create's stderr (its progress). Fails the test otherwise.
    pub fn create_cluster(&self, name: &str, args: &[&str]) -> (serde_json::Value, String) {
        let (success, out, err) = self.hdictl(&[&["cluster", "create", name], args].concat());
        assert!(success, "create {name}: {err}\n{out}");
        let cluster = self.hdictl_json(&["cluster", "show", name, "-o", "json"]);
        assert_eq!(cluster["status"]["state"], "Running", "{cluster:#}");
        (cluster, err)
    }

    /// What is left in the workloads directory of agent `index`: its entries (none when it does
    /// not exist).
    pub fn workload_data(&self, index: u32) -> Vec<PathBuf> {
        std::fs::read_dir(self.agent_dir(index).join("workloads"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The fleet's brokers and executors (they run from under the agents' data directories).
    pub fn workload_processes(&self) -> Vec<(u32, String)> {
        self.processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("hdi-broker") || cmd.contains("hdi-executor"))
            .collect()
    }

    /// Pids of live processes whose command line names a path under the fleet's directory,
    /// with their command lines.
    pub fn processes(&self) -> Vec<(u32, String)> {
        processes_under(self.dir.path())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (pid, _) in processes_under(self.dir.path()) {
            #[allow(unsafe_code, reason = "kill(2) on a pid we just read from /proc")]
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}
