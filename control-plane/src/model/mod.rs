//! Domain types of the control plane: what the service layer reasons about.
//!
//! They are neither wire types (those live in `hdi-api`) nor rows (those live in [`crate::store`]);
//! conversions sit at the HTTP and store boundaries.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A node's identity, chosen by its agent on first start and kept in the agent's data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub Uuid);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Resources a node offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Thousandths of a CPU core.
    pub cpu_millis: u64,
    /// Bytes of memory.
    pub memory_bytes: u64,
    /// Bytes of disk for data.
    pub disk_bytes: u64,
}

/// What an agent says about its node when it registers; validated by the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Unique DNS-label name.
    pub name: String,
    /// Failure domain.
    pub fault_domain: u32,
    /// Where the node's workloads are reachable.
    pub address: String,
    /// The agent's version.
    pub agent_version: String,
    /// Offered resources.
    pub capacity: Capacity,
}

/// A registered node as stored, with the age of its last heartbeat by the database clock.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    /// Identity.
    pub id: NodeId,
    /// Latest registration.
    pub spec: NodeSpec,
    /// First registration.
    pub registered_at: DateTime<Utc>,
    /// Last heartbeat or registration.
    pub last_heartbeat_at: DateTime<Utc>,
    /// `now() - last_heartbeat_at` on the database clock (never negative).
    pub heartbeat_age: Duration,
    /// Number of registrations.
    pub incarnation: u64,
}

/// Whether a node heartbeats within the timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHealth {
    /// Heartbeating.
    Ready,
    /// Silent for longer than the node timeout.
    NotReady,
}

impl NodeRecord {
    /// Readiness against a timeout: ready while the last heartbeat is younger than `timeout`.
    pub fn health(&self, timeout: Duration) -> NodeHealth {
        if self.heartbeat_age < timeout {
            NodeHealth::Ready
        } else {
            NodeHealth::NotReady
        }
    }
}

mod auth;
mod cluster;
mod job;
pub use auth::*;
pub use cluster::*;
pub use job::*;
