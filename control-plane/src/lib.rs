//! `hdi-control-plane`: the service that turns what users ask for into running clusters.
//!
//! Layers, each in its own module, each talking only to the one below it:
//! - [`http`]: the REST API on axum. Handlers extract input, call one [`service`] method and
//!   convert the result; only this module knows axum.
//! - [`service`]: the application layer with the business rules (validation, readiness); the
//!   only writer of desired state.
//! - [`store`]: PostgreSQL through sqlx; the only module that knows SQL.
//! - [`auth`]: bearer-token checks for people and node agents.
//! - [`config`]: the typed configuration of the `hdi-control-plane` binary.
//!
//! Reconcilers, provisioners, the operator and the portal join as the roadmap reaches them.

pub mod auth;
pub mod config;
pub mod driver;
pub mod http;
pub mod kafka_admin;
pub mod model;
pub mod provision;
pub mod reconcile;
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
