//! The PostgreSQL store: the only module that talks to the database.
//!
//! One file per resource (`node.rs`, ...), methods named `<resource>_<verb>`. Rows are converted to
//! [`crate::model`] types here; no SQL type leaks out. Migrations live in the repository's
//! `migrations/` folder and are embedded into the binary.

mod audit;
mod auth;
mod authority;
mod cluster;
mod idempotency;
mod job;
mod kafka_user;
mod link;
mod node;
mod operation;
mod workload;
mod workspace;

pub use authority::{NextAuthorities, RotationStart, RotationStep};
pub use cluster::SpecChange;
pub use idempotency::{KeyClaim, StoredResponse};
pub use link::{LinkTransition, NewLink};
pub use operation::NewOperation;
pub use workload::{
    Assignment, FleetNode, FleetSnapshot, IssuedCertificate, NewWorkload, ReportedWorkload,
};

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL does not parse.
    #[error("invalid database URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A unique constraint was violated.
    #[error("{what} already exists")]
    Conflict {
        /// What collided, for people (e.g. `node name "node-0"`).
        what: String,
    },
    /// A stored value is outside the range the domain type allows.
    #[error("corrupt stored value in {column}: {value}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// A query failed.
    #[error("database query failed: {context}")]
    Query {
        /// What the query was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether the database could not be reached (no connection within the pool's timeout, or
    /// the connection broke), rather than the call being at fault: a caller may retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Query {
                source: sqlx::Error::PoolTimedOut | sqlx::Error::Io(_),
                ..
            }
        )
    }
}

/// The handle to the control plane's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `database_url` (failing after `connect_timeout`) and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`], [`StoreError::Connect`] or [`StoreError::Migrate`].
    pub async fn connect(
        database_url: &str,
        connect_timeout: Duration,
    ) -> Result<Store, StoreError> {
        let options: PgConnectOptions = database_url.parse().map_err(StoreError::InvalidUrl)?;
        let options = options.log_statements(tracing::log::LevelFilter::Debug);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(connect_timeout)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A store over an existing pool (tests use the per-test database of `#[sqlx::test]`).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    /// Applies the embedded migrations that have not run yet.
    ///
    /// # Errors
    /// [`StoreError::Migrate`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Checks that the database answers a trivial query.
    ///
    /// # Errors
    /// [`StoreError::Query`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(|source| StoreError::Query {
                context: "ping",
                source,
            })
    }
}

fn to_i64(value: u64, column: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

/// An operating-system user or group id the store allotted (`clusters.os_uid`,
/// `workspaces.os_gid`).
fn os_id(value: i64, column: &'static str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

fn to_u64(value: i64, column: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}
