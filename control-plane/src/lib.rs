//! `hdi-control-plane`: the service that turns what users ask for into running clusters.
//!
//! Layers, each in its own module, each talking only to the one below it:
//! - [`http`]: the REST API on axum. Handlers extract input, call one [`service`] method and
//!   convert the result; only this module knows axum.
//! - [`service`]: the application layer with the business rules (validation, readiness); the
//!   only writer of desired state.
//! - [`store`]: PostgreSQL through sqlx; the only module that knows SQL.
//! - [`model`]: the domain types the service, store and reconcilers share.
//! - [`reconcile`]: the level-triggered reconcilers (a pure planner, then actions through the
//!   [`provision`] trait); they write observed state only.
//! - [`provision`]: where workloads go (the local fleet of node agents).
//! - [`kafka_admin`]: the control plane's Kafka admin client (topics, configs, reassignments).
//! - [`sampler`]: the metrics sampler, recent per-cluster time series of the Kafka clusters in
//!   memory (offsets read over the Kafka protocol; not a Prometheus exporter).
//! - [`driver`]: the client of a Spark cluster's executor driver (its job API).
//! - [`auth`]: the crypto of authentication (JWTs, password hashes, token digests).
//! - [`config`]: the typed configuration of the `hdi-control-plane` binary.
//!
//! The tidy tests in `xtask/src/tidy.rs` check the layering: no `sqlx` outside `store/`, no
//! `axum` outside `http/`.

pub mod auth;
pub mod config;
pub mod driver;
pub mod http;
pub mod kafka_admin;
pub mod metrics;
pub mod model;
pub mod operator;
pub mod provision;
pub mod reconcile;
pub mod sampler;
pub mod service;
pub mod store;

use std::sync::Arc;

/// Everything a request handler needs, built once at start-up and shared.
#[derive(Clone)]
pub struct AppState {
    /// The service layer.
    pub service: Arc<service::Service>,
    /// Who may call what.
    pub auth: Arc<auth::Authenticator>,
}

pub use hdi_stdx::error_chain;
