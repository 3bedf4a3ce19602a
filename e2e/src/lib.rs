//! `hdi-e2e`: a harness that starts the real hdi binaries (control plane, node agents, hdictl) as
//! processes talking over loopback, against a real PostgreSQL database per test.
//!
//! `cargo xtask test` builds the binaries and exports `DATABASE_URL` (a scratch server); each test
//! gets its own database on it. Processes are SIGKILLed when their handle drops, and their output
//! is printed when a test fails, so a failing test shows every log line of every process.
#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed set-up step should fail the test loudly"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Path of a workspace binary in the target directory these tests were built into.
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in <target>/debug/deps/; binaries in <target>/debug/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates it.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hdi-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a new database on the server of `DATABASE_URL` and returns its URL.
pub async fn fresh_database() -> String {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the tests with `cargo xtask test`");
    let name = format!("e2e_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("cannot connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    with_database(&base, &name)
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').unwrap();
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A running process whose stdout and stderr are collected line by line.
pub struct Proc {
    name: String,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `command`, collecting its output.
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Proc {
            name: name.to_owned(),
            child,
            output,
        }
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Waits until a printed line contains `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before printing {needle:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not print {needle:?} within {timeout:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still runs after {timeout:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let pid = i32::try_from(self.child.id()).context("pid")?;
        #[allow(unsafe_code, reason = "kill(2) on our own child")]
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.wait_exit(timeout)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} -----\n{}",
                self.name,
                self.lines().join("\n")
            );
        }
    }
}

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
                .env("RUST_LOG", "info"),
        );
        let line = proc
            .wait_for_line("listening on http://", Duration::from_secs(30))
            .unwrap();
        let url = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
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

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok((value, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// A running `hdi-broker`.
pub struct Broker {
    /// The process.
    pub proc: Proc,
    /// `host:port` of its Kafka listener.
    pub bootstrap: String,
}

impl Broker {
    /// Starts a single-node broker on a free loopback port (or `listen`) over `data_dir`, and waits
    /// for its ready line.
    pub fn start(data_dir: &Path, listen: Option<&str>, extra: &[&str]) -> Broker {
        let mut proc = Proc::spawn(
            "hdi-broker",
            Command::new(bin("hdi-broker"))
                .args([
                    "--node-id",
                    "1",
                    "--listen",
                    listen.unwrap_or("127.0.0.1:0"),
                ])
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--group-initial-rebalance-delay", "500ms"])
                .args(extra)
                .env("RUST_LOG", "info"),
        );
        let line = proc
            .wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
            .unwrap();
        let bootstrap = line
            .split("ready on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Broker { proc, bootstrap }
    }
}

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
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(last).unwrap_or(serde_json::Value::Null);
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

/// Runs kcat against `bootstrap` with `args`, feeding `stdin`; returns (success, stdout, stderr).
pub fn kcat(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    use std::io::Write as _;
    let mut child = client_command("kcat")
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

    /// Like [`Fleet::start`], on the (empty) database at `database_url`, e.g. one of a
    /// [`PrivatePostgres`].
    pub fn start_with_database(tag: &str, agents: u32, database_url: String) -> Fleet {
        let dir = TempDir::new(tag);
        let secrets = Secrets::create(dir.path());
        // A port range of its own, so that tests running at once do not collide.
        let base = 30_000
            + (std::process::id() % 10) * 250
            + (uuid::Uuid::new_v4().as_u128() % 4) as u32 * 60;
        let workload_ports = format!("{base}-{}", base + 59);
        let control_plane =
            Self::start_control_plane(&database_url, &secrets, "127.0.0.1:0", &workload_ports);
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

    fn agent(url: &str, secrets: &Secrets, dir: &Path, index: u32) -> Proc {
        Proc::spawn(
            &format!("node-{index}"),
            Command::new(bin("hdi-node-agent"))
                .args(["--control-plane", url, "--name", &format!("node-{index}")])
                .args(["--fault-domain", &index.to_string()])
                .args(["--heartbeat-interval", "500ms", "--poll-interval", "300ms"])
                .args(["--cpu-millis", "4000"])
                .arg("--data-dir")
                .arg(dir.join(format!("node-{index}")))
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

/// The number a `SELECT count(*) ...` returns on the database at `database_url`.
pub async fn count_rows(database_url: &str, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Live processes whose command line mentions `dir`.
pub fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(&needle) {
            // A zombie has an empty cmdline, so whatever matched is alive.
            found.push((pid, cmdline));
        }
    }
    found
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

/// A PostgreSQL server of a test's own (not the shared scratch server of `DATABASE_URL`), so that
/// the test may stop, restart or SIGKILL it. Initialised into a fresh directory under `/tmp`,
/// listening only on a unix socket there; run as the `postgres` user when the tests run as root
/// (the server refuses root). Stopped (immediately) and removed on drop.
///
/// `fsync=off` is safe here: a SIGKILLed server loses nothing the OS page cache holds; commits
/// stay synchronous, so an acknowledged commit survives [`PrivatePostgres::kill9`].
pub struct PrivatePostgres {
    bindir: PathBuf,
    root: PathBuf,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Runs `initdb` and starts the server.
    pub fn new() -> PrivatePostgres {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Short: the socket path (root/s/.s.PGSQL.5432) must fit in 107 bytes.
        let root = PathBuf::from(format!("/tmp/hdi-e2e-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("s")).unwrap();
        // Who we are: /proc/self belongs to the effective user.
        let as_postgres = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata("/proc/self").unwrap().uid() == 0
        };
        let pg = PrivatePostgres {
            bindir: Self::bindir(),
            root,
            as_postgres,
        };
        if as_postgres {
            let uid = Self::id_of_postgres("-u");
            let gid = Self::id_of_postgres("-g");
            for dir in [pg.root.clone(), pg.root.join("s")] {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            }
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start();
        pg
    }

    fn bindir() -> PathBuf {
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|dir| dir.join("pg_ctl").exists());
        from_pg_config.unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
    }

    fn id_of_postgres(flag: &str) -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no postgres user on this machine");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// A command running the server tool `tool` (as `postgres` when we are root).
    fn command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("s")
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let pool = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        self.url(name)
    }

    /// Starts the (stopped or killed) server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off",
            self.socket_dir().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Fast shutdown (`pg_ctl stop -m fast`): clients are disconnected, nothing is lost.
    pub fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs the postmaster and every backend, as a crash of the database machine's processes
    /// would; returns once they are gone. The next [`PrivatePostgres::start`] runs crash recovery.
    pub fn kill9(&self) {
        let Some(postmaster) = self.postmaster_pid() else {
            return;
        };
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        for &pid in &pids {
            #[allow(unsafe_code, reason = "kill(2) on the server we started")]
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|&pid| alive(pid)) {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL processes survive SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The postmaster's pid while the server runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }
}

impl Default for PrivatePostgres {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- PostgreSQL server log -----\n{}", self.log());
        }
        if self.postmaster_pid().is_some() {
            let stopped = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "10", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                self.kill9();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of the live children of `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}
