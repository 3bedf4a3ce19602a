//! The service layer: every front door (HTTP, later CRDs and the portal) calls one method here.
//!
//! It validates input, applies the business rules and calls the [`Store`]. It knows neither axum
//! nor SQL. One file per resource, methods named `<resource>_<verb>`.

mod audit;
mod auth;
mod cluster;
mod cluster_metrics;
mod group;
mod idempotency;
mod job;
pub(crate) mod kafka_user;
pub(crate) mod link;
mod node;
mod operation;
mod page;
mod record;
pub mod throttle;
mod topic;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use auth::{
    BOOTSTRAP_ADMIN, Grant, NewApiToken, OPERATOR_USER, SESSION_IDLE, SESSION_LIFETIME,
    require_platform_admin,
};
pub use cluster::{ClusterPatchInput, ClusterView, ManagedSpec, PutOutcome, validate_spec};
pub use cluster_metrics::MetricsSeries;
pub use group::{GroupOffsetRow, GroupSummary, GroupView, ResetInput, ResetKind, ResetRow};
pub use idempotency::validate_idempotency_key;
pub use job::{JobInput, JobPreview, JobStatusView, JobView, MAX_SQL_BYTES, kafka_access};
pub use link::{LinkInput, LinkStatusView};
pub use node::{NodePage, PageRequest};
pub use record::{
    MAX_TAIL_RATE, MAX_TAIL_RECORDS, MAX_TAIL_SECONDS, ProduceInput, TailEnd, TailEvent, TailFrom,
    TailRecord, TailRequest,
};
pub use topic::{KNOWN_CONFIGS, TopicConfigs, TopicInput, TopicPatchInput, TopicView};

/// The stable codes of [`ServiceError`]: the one wire type the service layer names, so the
/// HTTP answer and the audit log say the same code.
pub use crate::model::ErrorCode;

use crate::store::{Store, StoreError};

/// Settings of the service layer.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// A node whose last heartbeat is older than this is `NotReady`.
    pub node_ready_timeout: Duration,
}

/// Why a service call failed, in terms a front door can render.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field at fault, e.g. `name` or `capacity.cpu_millis`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resource does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `node 4f0c...`.
        what: String,
    },
    /// The SQL of a job does not compile on the cluster's driver.
    #[error("sql: {message}")]
    InvalidSql {
        /// The driver's code: `sql_error`, `unknown_topic`, `unknown_column`, `unsupported`,
        /// `invalid_option`.
        sql_code: String,
        /// What is wrong.
        message: String,
        /// 1-based line, when known.
        line: Option<u32>,
        /// 1-based column, when known.
        column: Option<u32>,
    },
    /// The request conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `node_name_taken`.
        code: ErrorCode,
        /// What conflicts.
        message: String,
    },
    /// An `If-Match` precondition does not hold.
    #[error("{message}")]
    PreconditionFailed {
        /// What did not match.
        message: String,
    },
    /// The request as a whole cannot be served (not one field's fault), e.g.
    /// `not_a_kafka_cluster` or `policy_violation`.
    #[error("{message}")]
    Refused {
        /// Stable code.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// A data-plane system the call needs (a Kafka cluster) cannot be reached or did not answer
    /// in time, e.g. `cluster_unreachable`.
    #[error("{message}")]
    Unreachable {
        /// Stable code.
        code: ErrorCode,
        /// What could not be reached.
        message: String,
    },
    /// A data-plane system answered with an error the request cannot be blamed for, e.g.
    /// `kafka_error` with the Kafka error name in the message.
    #[error("{message}")]
    Upstream {
        /// Stable code.
        code: ErrorCode,
        /// What it answered.
        message: String,
    },
    /// The caller is not authenticated (no, or no valid, bearer token); the reason is for the
    /// log only.
    #[error("unauthenticated: {0}")]
    Unauthenticated(#[source] crate::auth::AuthError),
    /// A token exchange with a wrong username, password or API token.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The caller is authenticated but its role does not allow the call.
    #[error("{message}")]
    Forbidden {
        /// Which role or privilege the call needs.
        message: String,
    },
    /// Too many requests: a username backing off after failed logins, or every password-hashing
    /// slot busy.
    #[error("{message}")]
    RateLimited {
        /// When to retry, in whole seconds (at least 1).
        retry_after_secs: u64,
        /// Why.
        message: String,
    },
    /// A dependency (the database) is not available.
    #[error("service unavailable")]
    Unavailable(#[source] StoreError),
    /// A fault of ours; the caller sees a generic message, the log gets the chain.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ServiceError {
    /// The stable code of this error, as the HTTP answer and the audit log give it.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::InvalidField { .. } => ErrorCode::InvalidField,
            ServiceError::InvalidSql { .. } => ErrorCode::InvalidSql,
            ServiceError::NotFound { .. } => ErrorCode::NotFound,
            ServiceError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthorized,
            ServiceError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ServiceError::Forbidden { .. } => ErrorCode::Forbidden,
            ServiceError::Conflict { code, .. }
            | ServiceError::Refused { code, .. }
            | ServiceError::Unreachable { code, .. }
            | ServiceError::Upstream { code, .. } => *code,
            ServiceError::RateLimited { .. } => ErrorCode::RateLimited,
            ServiceError::Unavailable(_) => ErrorCode::Unavailable,
            ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> ServiceError {
        if error.is_unavailable() {
            ServiceError::Unavailable(error)
        } else {
            ServiceError::Internal(error)
        }
    }
}

/// The application layer.
#[derive(Debug)]
pub struct Service {
    store: Store,
    config: ServiceConfig,
    poke: Arc<Notify>,
    /// The connection pool of calls to executor drivers.
    drivers: reqwest::Client,
    /// JWT keys, loaded by [`Service::auth_start`].
    tokens: std::sync::RwLock<Option<Arc<crate::auth::jwt::TokenKeys>>>,
    /// Password logins: concurrent hashes and per-username back-off.
    logins: throttle::LoginThrottle,
    /// The Kafka clusters' recent time series, filled by [`crate::sampler::Sampler`].
    series: Arc<crate::sampler::SeriesStore>,
    /// This process's Prometheus metrics (`GET /metrics`).
    metrics: Arc<crate::metrics::Metrics>,
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Store, config: ServiceConfig, poke: Arc<Notify>) -> Service {
        Service {
            store,
            config,
            poke,
            drivers: crate::driver::DriverClient::pool(),
            tokens: std::sync::RwLock::new(None),
            logins: throttle::LoginThrottle::for_this_machine(),
            series: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// The time series the metrics sampler fills and `GET .../metrics` reads.
    pub fn series(&self) -> Arc<crate::sampler::SeriesStore> {
        Arc::clone(&self.series)
    }

    /// The settings in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Whether the control plane can serve: the database answers.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when the database does not answer.
    pub async fn readiness(&self) -> Result<(), ServiceError> {
        self.store.ping().await.map_err(ServiceError::Unavailable)
    }

    /// This process's metrics (the reconcilers and the HTTP layer count into them).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The Prometheus exposition: the counters, and clusters and operations by state counted now.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn metrics_exposition(&self) -> Result<String, ServiceError> {
        let clusters = self.store.clusters_count_by_state().await?;
        let operations = self.store.operations_count_by_state().await?;
        let kafka = cluster_metrics::latest_figures(&self.series);
        Ok(self.metrics.exposition(&clusters, &operations, &kafka))
    }
}
