//! Databases: a fresh one per test on the shared server of `DATABASE_URL`, and `PrivatePostgres`,
//! a server of the test's own (the one implementation in `hdi-test-support`).

use hdi_test_support::postgres::{Binaries, Durability, ScratchPostgres};

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

/// A PostgreSQL server of a test's own (not the shared scratch server of `DATABASE_URL`), so that
/// the test may stop, restart or SIGKILL it. Initialised into a fresh directory under the temp
/// dir, listening only on a unix socket there; run as the `postgres` user when the tests run as
/// root (the server refuses root). Stopped (immediately) and removed on drop; its log is printed
/// when the test fails.
///
/// `fsync=off` is safe here ([`Durability::KillSafe`]): a SIGKILLed server loses nothing the OS
/// page cache holds; commits stay synchronous, so an acknowledged commit survives
/// [`PrivatePostgres::kill9`].
pub struct PrivatePostgres(ScratchPostgres);

impl PrivatePostgres {
    /// Runs `initdb` and starts the server.
    pub fn new() -> PrivatePostgres {
        let bin = Binaries::find()
            .expect("no PostgreSQL server binaries: run the tests with `cargo xtask test`");
        PrivatePostgres(ScratchPostgres::start(&bin, Durability::KillSafe).unwrap())
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> std::path::PathBuf {
        self.0.socket_dir().to_owned()
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        self.0.url(db)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        self.0.create_database(name).unwrap()
    }

    /// Starts the (stopped or killed) server and waits until it accepts connections.
    pub fn start(&self) {
        self.0.start_again().unwrap();
    }

    /// Fast shutdown (`pg_ctl stop -m fast`): clients are disconnected, nothing is lost.
    pub fn stop(&self) {
        self.0.stop().unwrap();
    }

    /// SIGKILLs the postmaster and every backend, as a crash of the database machine's processes
    /// would; returns once they are gone. The next [`PrivatePostgres::start`] runs crash recovery.
    pub fn kill9(&self) {
        self.0.kill9().unwrap();
    }

    /// The postmaster's pid while the server runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.0.postmaster_pid()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.0.log()
    }
}

impl Default for PrivatePostgres {
    fn default() -> Self {
        Self::new()
    }
}
