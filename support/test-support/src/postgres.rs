//! A private PostgreSQL server: initialised into a directory of ours, listening only on a unix
//! socket there, run as the `postgres` user when we are root (the server refuses to run as root).
//!
//! One implementation for every user: [`ScratchPostgres`] is the throw-away server of
//! `cargo xtask test` and `codegen` and of the e2e tests that stop, restart or SIGKILL their own
//! database; [`Postgres`] with [`Durability::Durable`] is the server `cargo xtask up` keeps in its
//! state directory. `cargo xtask` installs the binaries when [`Binaries::find`] finds none.

use crate::command::output;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The PostgreSQL server binaries (`initdb`, `pg_ctl`, `psql`).
#[derive(Clone, Debug)]
pub struct Binaries {
    bindir: PathBuf,
}

impl Binaries {
    /// The newest PostgreSQL under `/usr/lib/postgresql/*/bin` (Debian's layout), else the one
    /// `pg_config --bindir` names.
    pub fn find() -> Option<Binaries> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bindir = entry.path().join("bin");
                bindir.join("initdb").exists().then_some((version, bindir))
            })
            .collect();
        versions.sort();
        if let Some((_, bindir)) = versions.pop() {
            return Some(Binaries { bindir });
        }
        Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            .filter(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
            .map(|bindir| Binaries { bindir })
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// How much durability the server trades for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`: fastest; a SIGKILLed server
    /// may lose commits it acknowledged. For a test suite's shared server.
    Scratch,
    /// `fsync=off` only: commits stay synchronous, so an acknowledged commit survives a SIGKILL of
    /// the server's processes (the OS page cache keeps it), not a crash of the machine. For tests
    /// that kill their database.
    KillSafe,
    /// PostgreSQL's defaults.
    Durable,
}

/// A private server rooted in one directory: `data/`, `socket/` (unless too long), `server.log`.
#[derive(Debug)]
pub struct Postgres {
    bin: Binaries,
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    options: String,
    as_postgres: bool,
}

impl Postgres {
    /// Initialises (first time) and starts the server rooted at `root`, or adopts it if it already
    /// runs (a previous `cargo xtask up` that was killed).
    ///
    /// # Errors
    /// When a directory cannot be prepared, `initdb` fails or the server does not start.
    pub fn start(bin: &Binaries, root: &Path, durability: Durability) -> anyhow::Result<Postgres> {
        let root = std::path::absolute(root).context("cannot resolve the PostgreSQL directory")?;
        let text = root.to_string_lossy();
        if text
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
        {
            bail!("the PostgreSQL directory {text:?} must not contain spaces or quotes");
        }
        let as_postgres = effective_uid() == 0;
        let data = root.join("data");
        // A unix socket path must fit in 107 bytes; fall back to a short directory under /tmp.
        let mut socket_dir = root.join("socket");
        if socket_dir.as_os_str().len() > 80 {
            socket_dir = PathBuf::from(format!("/tmp/hdi-pg-{:x}", fnv1a(text.as_bytes())));
        }
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        std::fs::create_dir_all(&socket_dir)
            .with_context(|| format!("cannot create {}", socket_dir.display()))?;
        let mut options = format!("-k {} -c listen_addresses=''", socket_dir.display());
        match durability {
            Durability::Scratch => {
                options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            }
            Durability::KillSafe => options.push_str(" -c fsync=off"),
            Durability::Durable => {}
        }
        let pg = Postgres {
            bin: bin.clone(),
            root,
            data,
            socket_dir,
            options,
            as_postgres,
        };
        if pg.as_postgres {
            let (uid, gid) = postgres_user()?;
            for dir in [&pg.root, &pg.socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).with_context(|| {
                    format!("cannot hand {} to the postgres user", dir.display())
                })?;
            }
            let reachable = pg
                .command("test")
                .args(["-w".as_ref(), pg.root.as_os_str()])
                .status()?
                .success();
            if !reachable {
                bail!(
                    "the postgres user cannot reach {} (a parent directory is not world-searchable); \
                     pass --state-dir under a path such as /var/tmp/hdi",
                    pg.root.display()
                );
            }
        }
        if !pg.data.join("PG_VERSION").exists() {
            let mut initdb = pg.command(pg.bin.tool("initdb"));
            initdb.arg("-D").arg(&pg.data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]);
            if durability != Durability::Durable {
                initdb.arg("--no-sync");
            }
            output("initdb", &mut initdb)?;
        }
        if pg.is_running() {
            eprintln!(
                "xtask: adopting the PostgreSQL server already running in {}",
                pg.data.display()
            );
            return Ok(pg);
        }
        pg.start_again()?;
        Ok(pg)
    }

    /// Starts the (stopped or killed) server and waits until it accepts connections; after a
    /// [`Postgres::kill9`] it runs crash recovery first.
    ///
    /// # Errors
    /// When `pg_ctl start` fails (the error holds the end of the server's log).
    pub fn start_again(&self) -> anyhow::Result<()> {
        let log = self.log_file();
        let started = self
            .command(self.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &self.options, "start"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run pg_ctl start")?;
        if !started.status.success() {
            bail!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&started.stderr).trim(),
                tail(&log, 20)
            );
        }
        Ok(())
    }

    /// A URL for database `db` over the private socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket_dir.display()
        )
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Creates database `name` (it must not exist) and returns its URL.
    ///
    /// # Errors
    /// When `psql` fails, e.g. because the database exists.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        output(
            "psql CREATE DATABASE",
            self.psql()
                .args(["-qc", &format!("CREATE DATABASE \"{name}\"")]),
        )?;
        Ok(self.url(name))
    }

    /// Creates database `name` unless it exists.
    ///
    /// # Errors
    /// When `psql` fails.
    pub fn ensure_database(&self, name: &str) -> anyhow::Result<()> {
        let exists = output(
            "psql",
            self.psql().args([
                "-tAc",
                &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ]),
        )?;
        if exists.trim() != "1" {
            self.create_database(name)?;
        }
        Ok(())
    }

    /// Runs the SQL file `file` in database `db`, in one transaction, stopping at the first error.
    ///
    /// # Errors
    /// When `psql` fails.
    pub fn run_file(&self, db: &str, file: &Path) -> anyhow::Result<()> {
        output(
            &format!("psql -f {}", file.display()),
            self.psql()
                .args(["-q", "--single-transaction", "-d", db, "-f"])
                .arg(file),
        )
        .map(|_| ())
    }

    /// Stops the server (fast shutdown: disconnects clients, no data loss); nothing when stopped.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop(&self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        output(
            "pg_ctl stop",
            self.command(self.bin.tool("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-t", "60", "-m", "fast", "stop"])
                .stdin(Stdio::null()),
        )
        .map(|_| ())
    }

    /// SIGKILLs the postmaster and every backend, as a crash of the database machine's processes
    /// would; returns once they are gone. The next [`Postgres::start_again`] runs crash recovery.
    ///
    /// # Errors
    /// When the processes are still alive 10 s after SIGKILL.
    pub fn kill9(&self) -> anyhow::Result<()> {
        let Some(postmaster) = self.postmaster_pid() else {
            return Ok(());
        };
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        for &pid in &pids {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                continue;
            };
            #[allow(unsafe_code, reason = "kill(2) on the server we started")]
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|&pid| alive(pid)) {
            if Instant::now() > deadline {
                bail!("PostgreSQL processes survive SIGKILL");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The postmaster's pid while the server runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn is_running(&self) -> bool {
        self.command(self.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("status")
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false)
    }

    /// Immediate shutdown (no checkpoint), else SIGKILL: for a server whose data is thrown away.
    fn stop_now(&self) {
        if self.postmaster_pid().is_none() {
            return;
        }
        let stopped = self
            .command(self.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped && let Err(error) = self.kill9() {
            eprintln!("warning: cannot stop the scratch PostgreSQL: {error:#}");
        }
    }

    fn psql(&self) -> Command {
        let mut psql = Command::new(self.bin.tool("psql"));
        psql.arg("-h").arg(&self.socket_dir).args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
        ]);
        psql
    }

    /// `program` run as the postgres user when we are root.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

/// A server in a fresh directory under the system temp dir, stopped (immediately) and deleted on
/// drop; its log is printed then if the thread panics (a failing test).
#[derive(Debug)]
pub struct ScratchPostgres {
    /// The server.
    pub server: Postgres,
}

impl ScratchPostgres {
    /// Initialises and starts a server with `durability` in a fresh directory.
    ///
    /// # Errors
    /// As [`Postgres::start`].
    pub fn start(bin: &Binaries, durability: Durability) -> anyhow::Result<ScratchPostgres> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // Short, so that the socket (root/socket/.s.PGSQL.5432) stays under the root.
        let root =
            std::env::temp_dir().join(format!("hdi-pg-{}-{n}-{nanos:x}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let server = Postgres::start(bin, &root, durability)?;
        Ok(ScratchPostgres { server })
    }
}

impl std::ops::Deref for ScratchPostgres {
    type Target = Postgres;
    fn deref(&self) -> &Postgres {
        &self.server
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- PostgreSQL server log -----\n{}", self.server.log());
        }
        self.server.stop_now();
        let _ = std::fs::remove_dir_all(self.server.root());
        let _ = std::fs::remove_dir_all(&self.server.socket_dir);
    }
}

fn effective_uid() -> u32 {
    #[allow(unsafe_code, reason = "geteuid(2)")]
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe {
        libc::geteuid()
    }
}

fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    let line = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .context("there is no postgres user (Debian's postgresql package creates it)")?;
    let fields: Vec<&str> = line.split(':').collect();
    let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
    match (parse(2), parse(3)) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => bail!("malformed /etc/passwd entry for postgres"),
    }
}

/// The last `n` lines of the file at `path` (empty when unreadable).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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
    for (pid, dir) in crate::procfs::processes() {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
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
