//! Domain types of the control plane: what the service layer reasons about.
//!
//! They are neither wire types (those live in `hdi-api`) nor rows (those live in [`crate::store`]);
//! conversions sit at the HTTP and store boundaries.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares UUID newtypes, one per kind of resource (as omicron's `uuid-kinds`), so that passing a
/// cluster's id where a workspace's is expected does not compile.
///
/// Each type displays, parses and (de)serializes exactly as its UUID does. The store and the HTTP
/// layer convert at their edges with `from_uuid` and `into_uuid`; there is deliberately no
/// `From<Uuid>`, so an untyped UUID becomes a typed one only where a line says which kind it is.
macro_rules! typed_uuids {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// The id whose UUID is `uuid`.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A fresh random (version 4) id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// The UUID, for the store and the wire.
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )+};
}

typed_uuids! {
    /// A node's identity, chosen by its agent on first start and kept in the agent's data directory.
    NodeId;
    /// A workspace's identity.
    WorkspaceId;
    /// A cluster's identity.
    ClusterId;
    /// An operation's identity (the handle `PUT` and `DELETE` of a cluster return).
    OperationId;
    /// A workload's identity: one process of a cluster on one node.
    WorkloadId;
    /// A job's identity; also the job's id on the executor's driver.
    JobId;
    /// A user's identity (the JWT `sub`).
    UserId;
    /// An API token's identity (never its secret).
    ApiTokenId;
    /// A Kafka user's identity (its name is unique per cluster).
    KafkaUserId;
    /// A replication link's identity (its name is unique per workspace).
    ReplicationLinkId;
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
mod link;
pub use auth::*;
pub use cluster::*;
/// The stable codes of refusals and failed operations: one vocabulary for the service, the
/// reconciler and the wire.
pub use hdi_api::ErrorCode;
pub use job::*;
pub use link::*;
