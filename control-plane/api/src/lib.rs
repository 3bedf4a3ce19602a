//! `hdi-api`: the REST wire types of the hdi control plane and a typed async client for them.
//!
//! This crate owns what travels over HTTP between the control plane and its callers (`hdictl`, node
//! agents, tests): request and response bodies ([`types`]) and a client that speaks the API
//! ([`client`]). It holds no business rules and no storage types: the control plane converts these
//! types to and from its domain types at its HTTP boundary.

pub mod auth;
pub mod client;
pub mod cluster;
pub mod cluster_metrics;
pub mod group;
pub mod job;
pub mod kafka_user;
pub mod replication_link;
pub mod topic;
pub mod types;
pub mod workload;

pub use auth::*;
pub use client::{Client, ClientError};
pub use cluster::*;
pub use cluster_metrics::*;
pub use group::*;
pub use job::*;
pub use kafka_user::*;
pub use replication_link::*;
pub use topic::*;
pub use types::*;
pub use workload::*;

/// The version of this build, reported by `/healthz` and `hdictl version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
