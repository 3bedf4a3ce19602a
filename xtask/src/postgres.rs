//! A private PostgreSQL server: found or installed from Debian's packages, initialised into a
//! directory of ours, listening only on a unix socket, run as the `postgres` user when we are root
//! (the server refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::sys;
use crate::util::{output, run};

/// The PostgreSQL server binaries (`initdb`, `pg_ctl`, `psql`).
#[derive(Clone, Debug)]
pub struct Binaries {
    bindir: PathBuf,
}

impl Binaries {
    /// Finds the newest installed PostgreSQL, installing Debian's `postgresql` package when none is.
    pub fn find_or_install() -> anyhow::Result<Binaries> {
        if let Some(found) = Self::find() {
            return Ok(found);
        }
        eprintln!(
            "xtask: PostgreSQL server binaries not found; installing Debian's postgresql package"
        );
        crate::tools::apt_install(&["postgresql"])?;
        Self::find().context(
            "PostgreSQL was installed but initdb is still not under /usr/lib/postgresql/*/bin",
        )
    }

    fn find() -> Option<Binaries> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bindir = entry.path().join("bin");
                bindir.join("initdb").exists().then_some((version, bindir))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bindir)| Binaries { bindir })
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// A private server rooted in one directory: `data/`, `socket/` (unless too long), `server.log`.
#[derive(Debug)]
pub struct Postgres {
    bin: Binaries,
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    as_postgres: bool,
}

/// Whether the server may cut durability corners (tests) or not (`up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`: fast, loses data on a machine crash. Tests only.
    Scratch,
    /// PostgreSQL defaults.
    Durable,
}

impl Postgres {
    /// Initialises (first time) and starts the server rooted at `root`, or adopts it if it already
    /// runs (a previous `up` that was killed).
    pub fn start(bin: &Binaries, root: &Path, durability: Durability) -> anyhow::Result<Postgres> {
        let root = std::path::absolute(root).context("cannot resolve the PostgreSQL directory")?;
        let text = root.to_string_lossy();
        if text
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
        {
            bail!("the PostgreSQL directory {text:?} must not contain spaces or quotes");
        }
        let as_postgres = sys::effective_uid() == 0;
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
        let pg = Postgres {
            bin: bin.clone(),
            root,
            data,
            socket_dir,
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
            if durability == Durability::Scratch {
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
        let mut options = format!("-k {} -c listen_addresses=''", pg.socket_dir.display());
        if durability == Durability::Scratch {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = pg.root.join("server.log");
        let started = pg
            .command(pg.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .context("cannot run pg_ctl start")?;
        if !started.status.success() {
            bail!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&started.stderr).trim(),
                crate::util::tail(&log, 20)
            );
        }
        Ok(pg)
    }

    /// A URL for database `db` over the private socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket_dir.display()
        )
    }

    /// Creates database `name` unless it exists.
    pub fn ensure_database(&self, name: &str) -> anyhow::Result<()> {
        let exists = output(
            "psql",
            self.psql().args([
                "-tAc",
                &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ]),
        )?;
        if exists.trim() != "1" {
            run(
                "psql CREATE DATABASE",
                self.psql()
                    .args(["-qc", &format!("CREATE DATABASE \"{name}\"")]),
            )?;
        }
        Ok(())
    }

    /// Runs the SQL file `file` in database `db`, in one transaction, stopping at the first error.
    pub fn run_file(&self, db: &str, file: &Path) -> anyhow::Result<()> {
        output(
            &format!("psql -f {}", file.display()),
            self.psql()
                .args(["-q", "--single-transaction", "-d", db, "-f"])
                .arg(file),
        )
        .map(|_| ())
    }

    /// Stops the server (fast shutdown: disconnects clients, no data loss).
    pub fn stop(&self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        output(
            "pg_ctl stop",
            self.command(self.bin.tool("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "-m", "fast", "stop"]),
        )
        .map(|_| ())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
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

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A scratch server in a fresh temporary directory, stopped and deleted on drop.
pub struct ScratchPostgres {
    pub server: Postgres,
}

impl ScratchPostgres {
    /// Starts a scratch server.
    pub fn start(bin: &Binaries) -> anyhow::Result<ScratchPostgres> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let root =
            std::env::temp_dir().join(format!("hdi-test-pg-{}-{nanos:x}", std::process::id()));
        let server = Postgres::start(bin, &root, Durability::Scratch)?;
        Ok(ScratchPostgres { server })
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.server.stop() {
            eprintln!("xtask: warning: cannot stop the scratch PostgreSQL: {error:#}");
        }
        let _ = std::fs::remove_dir_all(self.server.root());
        let _ = std::fs::remove_dir_all(&self.server.socket_dir);
    }
}
