//! The driver's membership documents: its view of the cluster (`GET /v1/cluster`, read by the
//! control plane's cluster reconciler) and a worker's registration (`PUT /v1/workers/{id}`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Always `"driver"`.
    pub role: String,
    /// The live workers, in id order.
    pub workers: Vec<WorkerView>,
    /// When the driver started, RFC 3339.
    pub started_at: String,
}

/// One worker in [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    /// The worker's id.
    pub id: u32,
    /// Where it listens, `host:port`.
    pub address: String,
    /// Milliseconds since it was last heard from.
    pub last_seen_ms: u64,
    /// Its process incarnation.
    pub incarnation: Uuid,
}

/// The body of `PUT /v1/workers/{id}`. The driver parses it field by field, so that a refusal
/// names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRegistration {
    /// Where the worker listens, `host:port`.
    pub address: String,
    /// The worker's process incarnation, chosen at its start.
    pub incarnation: Uuid,
}
