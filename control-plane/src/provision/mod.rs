//! Provisioners: where a cluster's workloads run and how they get there.
//!
//! Reconcilers plan purely and execute through the [`Provisioner`] trait. The local provisioner
//! ([`local`]) places workloads on registered node agents, which pull their assignments; the
//! Kubernetes provisioner ([`kubernetes`]) runs those agents as the pods of StatefulSets it
//! applies, one set of nodes per cluster, and places through the local one.

pub mod kubernetes;
pub mod local;

use std::future::Future;

use crate::model::{ClusterRecord, WorkloadId, WorkloadRecord, WorkloadRole};
use crate::store::StoreError;

/// One workload the planner wants placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlaceRequest {
    /// Role.
    pub role: WorkloadRole,
    /// Broker id, worker id, or 0 for the driver.
    pub ordinal: u32,
}

/// Why a provisioner could not act.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Not enough capacity (or no ready node) for a workload; retrying may succeed once nodes
    /// join or free up.
    #[error("{0}")]
    InsufficientCapacity(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Kubernetes API refused or could not be reached; the next pass tries again.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
}

/// Runs a cluster's workloads somewhere.
pub trait Provisioner: Send + Sync + 'static {
    /// The cluster's workloads as placed, with what their hosts report.
    fn workloads(
        &self,
        cluster: &ClusterRecord,
    ) -> impl Future<Output = Result<Vec<WorkloadRecord>, ProvisionError>> + Send;

    /// Places workloads (all of them or none). Returns a line per placement for the operation log.
    fn place(
        &self,
        cluster: &ClusterRecord,
        requests: &[PlaceRequest],
    ) -> impl Future<Output = Result<Vec<String>, ProvisionError>> + Send;

    /// Asks for a workload to be stopped and its data removed.
    fn remove(
        &self,
        workload: WorkloadId,
    ) -> impl Future<Output = Result<(), ProvisionError>> + Send;

    /// Forgets a workload whose host has stopped it and removed its data.
    fn forget(
        &self,
        workload: WorkloadId,
    ) -> impl Future<Output = Result<(), ProvisionError>> + Send;

    /// After a pass's actions: brings what hosts the cluster's workloads in line with the
    /// cluster (Kubernetes: its pods). Nothing to do on the local fleet.
    fn sync(
        &self,
        _cluster: &ClusterRecord,
    ) -> impl Future<Output = Result<(), ProvisionError>> + Send {
        std::future::ready(Ok(()))
    }

    /// The cluster's last workload is gone and its record is about to be removed: remove what
    /// hosted it. Nothing to do on the local fleet.
    fn cluster_removed(
        &self,
        _cluster: &ClusterRecord,
    ) -> impl Future<Output = Result<(), ProvisionError>> + Send {
        std::future::ready(Ok(()))
    }
}
