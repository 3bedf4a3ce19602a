//! The local provisioner: workloads on the registered node agents.
//!
//! Placement is one transaction under a fleet-wide lock ([`crate::store::Store::workloads_place`])
//! around a pure scheduler ([`schedule`]): capacity accounting (CPU and memory reserved by each
//! size), anti-affinity (a workload goes to the fault domain, then the node, holding fewest
//! workloads of its cluster), and ports allocated per address from a configured range. Agents
//! pull their node's assignment; removal is a flag the agent honours, then the row is forgotten.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{PlaceRequest, ProvisionError, Provisioner};
use crate::model::{
    ClusterId, ClusterRecord, NodeId, SizeSpec, WorkloadConfig, WorkloadId, WorkloadRecord,
    WorkloadRole, size_spec,
};
use crate::store::{FleetSnapshot, NewWorkload, Store};

/// The local provisioner.
#[derive(Clone, Debug)]
pub struct LocalProvisioner {
    store: Store,
    ports: RangeInclusive<u16>,
    node_ready_timeout: Duration,
}

impl LocalProvisioner {
    /// A provisioner allocating workload ports from `ports`.
    pub fn new(store: Store, ports: RangeInclusive<u16>, node_ready_timeout: Duration) -> Self {
        LocalProvisioner {
            store,
            ports,
            node_ready_timeout,
        }
    }
}

impl Provisioner for LocalProvisioner {
    async fn workloads(
        &self,
        cluster: &ClusterRecord,
    ) -> Result<Vec<WorkloadRecord>, ProvisionError> {
        Ok(self
            .store
            .workloads_of_cluster(cluster.id, self.node_ready_timeout)
            .await?)
    }

    async fn place(
        &self,
        cluster: &ClusterRecord,
        requests: &[PlaceRequest],
    ) -> Result<Vec<String>, ProvisionError> {
        self.place_on(cluster, requests, false, &BTreeMap::new())
            .await
    }

    async fn remove(&self, workload: WorkloadId) -> Result<(), ProvisionError> {
        Ok(self.store.workload_remove(workload).await?)
    }

    async fn forget(&self, workload: WorkloadId) -> Result<(), ProvisionError> {
        Ok(self.store.workload_forget(workload).await?)
    }
}

impl LocalProvisioner {
    /// Places workloads on the shared fleet, or (`own_nodes`) on the cluster's own nodes, each
    /// request named in `pins` on the node of that name only.
    ///
    /// # Errors
    /// [`ProvisionError::InsufficientCapacity`] naming the workload that has no node.
    pub async fn place_on(
        &self,
        cluster: &ClusterRecord,
        requests: &[PlaceRequest],
        own_nodes: bool,
        pins: &BTreeMap<PlaceRequest, String>,
    ) -> Result<Vec<String>, ProvisionError> {
        let size = size_spec(cluster.spec.size()).ok_or_else(|| {
            ProvisionError::InsufficientCapacity(format!("unknown size {:?}", cluster.spec.size()))
        })?;
        let ports = self.ports.clone();
        let placed = self
            .store
            .workloads_place(cluster.id, own_nodes, self.node_ready_timeout, |fleet| {
                schedule_pinned(fleet, cluster, requests, size, &ports, pins)
            })
            .await?
            .map_err(ProvisionError::InsufficientCapacity)?;
        Ok(placed
            .iter()
            .map(|w| {
                let node = w.node_id;
                format!(
                    "{} {} on node {node} (ports {:?})",
                    w.role.as_str(),
                    w.ordinal,
                    w.ports
                )
            })
            .collect())
    }
}

/// The name of a workload: unique across the fleet, stable, a valid directory name.
pub fn workload_name(cluster_id: ClusterId, role: WorkloadRole, ordinal: u32) -> String {
    format!(
        "{}-{}-{ordinal}",
        cluster_id.into_uuid().simple(),
        role.as_str()
    )
}

/// Decides where each request goes (pure). Errors say why a workload cannot be placed.
///
/// # Errors
/// A message naming the workload and the shortage.
pub fn schedule(
    fleet: &FleetSnapshot,
    cluster: &ClusterRecord,
    requests: &[PlaceRequest],
    size: SizeSpec,
    ports: &RangeInclusive<u16>,
) -> Result<Vec<NewWorkload>, String> {
    schedule_pinned(fleet, cluster, requests, size, ports, &BTreeMap::new())
}

/// [`schedule`], with each request named in `pins` placed on the node of that name only (a
/// Kubernetes pod's node: broker `k` runs on the StatefulSet's pod `k - 1`, so the pod a
/// scale-in removes is the broker's that was drained).
///
/// # Errors
/// A message naming the workload and the shortage, or the pinned node that is not there yet.
pub fn schedule_pinned(
    fleet: &FleetSnapshot,
    cluster: &ClusterRecord,
    requests: &[PlaceRequest],
    size: SizeSpec,
    ports: &RangeInclusive<u16>,
    pins: &BTreeMap<PlaceRequest, String>,
) -> Result<Vec<NewWorkload>, String> {
    struct Slot {
        free_cpu: u64,
        free_memory: u64,
        mine: usize,
    }
    let mut slots: BTreeMap<NodeId, Slot> = fleet
        .nodes
        .iter()
        .map(|node| {
            let mine = node
                .workloads
                .iter()
                .filter(|(c, _)| *c == cluster.id)
                .count();
            (
                node.id,
                Slot {
                    free_cpu: node.cpu_millis.saturating_sub(node.reserved_cpu_millis),
                    free_memory: node.memory_bytes.saturating_sub(node.reserved_memory_bytes),
                    mine,
                },
            )
        })
        .collect();
    let mut taken = fleet.taken_ports.clone();
    let mut chosen: Vec<(PlaceRequest, NodeId, Vec<u16>)> = Vec::new();
    // Under the placement lock: a request another control plane has just served is skipped
    // (the planner of either may have read the workloads before the other placed them).
    let mut sorted: Vec<PlaceRequest> = requests
        .iter()
        .copied()
        .filter(|r| {
            !fleet
                .cluster_workloads
                .iter()
                .any(|w| w.role == r.role && w.ordinal == r.ordinal)
        })
        .collect();
    sorted.sort();
    for request in &sorted {
        // Workloads of this cluster per fault domain, counting those chosen so far.
        let mut per_domain: BTreeMap<u32, usize> = BTreeMap::new();
        for node in &fleet.nodes {
            let entry = per_domain.entry(node.fault_domain).or_default();
            *entry += slots.get(&node.id).map_or(0, |slot| slot.mine);
        }
        let pin = pins.get(request);
        if let Some(name) = pin
            && !fleet
                .nodes
                .iter()
                .any(|node| node.ready && &node.name == name)
        {
            return Err(format!(
                "{} {} waits for node {name} (its pod's agent) to register",
                request.role.as_str(),
                request.ordinal
            ));
        }
        let candidate = fleet
            .nodes
            .iter()
            .filter(|node| node.ready)
            .filter(|node| pin.is_none_or(|name| &node.name == name))
            .filter_map(|node| Some((node, slots.get(&node.id)?)))
            .filter(|(_, slot)| {
                slot.free_cpu >= size.cpu_millis && slot.free_memory >= size.memory_bytes
            })
            .min_by_key(|(node, slot)| {
                (
                    per_domain.get(&node.fault_domain).copied().unwrap_or(0),
                    slot.mine,
                    u64::MAX - slot.free_cpu,
                    node.name.clone(),
                )
            })
            .map(|(node, _)| node);
        let Some(node) = candidate else {
            let ready = fleet.nodes.iter().filter(|n| n.ready).count();
            let free: Vec<String> = fleet
                .nodes
                .iter()
                .filter(|n| n.ready)
                .filter_map(|n| {
                    let slot = slots.get(&n.id)?;
                    Some(format!(
                        "{} {}m/{}MiB",
                        n.name,
                        slot.free_cpu,
                        slot.free_memory >> 20
                    ))
                })
                .collect();
            return Err(format!(
                "no ready node has room for {} {} of size {} ({}m CPU, {} MiB): {ready} ready node(s){}{}",
                request.role.as_str(),
                request.ordinal,
                size.name,
                size.cpu_millis,
                size.memory_bytes >> 20,
                if free.is_empty() { "" } else { ", free: " },
                free.join(", ")
            ));
        };
        let wanted = match request.role {
            // Kafka, quorum and metrics.
            WorkloadRole::Broker => 3,
            WorkloadRole::Driver | WorkloadRole::Worker => 1,
        };
        let used = taken.entry(node.address.clone()).or_default();
        let mut picked = Vec::new();
        for port in ports.clone() {
            if picked.len() == wanted {
                break;
            }
            if !used.contains(&port) {
                picked.push(port);
            }
        }
        if picked.len() < wanted {
            return Err(format!(
                "no free port left in {}-{} on {}",
                ports.start(),
                ports.end(),
                node.address
            ));
        }
        used.extend(picked.iter().copied());
        if let Some(slot) = slots.get_mut(&node.id) {
            slot.free_cpu -= size.cpu_millis;
            slot.free_memory -= size.memory_bytes;
            slot.mine += 1;
        }
        chosen.push((*request, node.id, picked));
    }
    // Configurations need every address: the voters (existing and new) and the driver.
    let address_of = |role: WorkloadRole, ordinal: u32| -> Option<(String, Vec<u16>)> {
        if let Some((_, node_id, ports)) = chosen
            .iter()
            .find(|(r, _, _)| r.role == role && r.ordinal == ordinal)
        {
            let node = fleet.nodes.iter().find(|n| n.id == *node_id)?;
            return Some((node.address.clone(), ports.clone()));
        }
        let existing = fleet
            .cluster_workloads
            .iter()
            .find(|w| w.role == role && w.ordinal == ordinal && !w.removing)?;
        let ports = match &existing.config {
            WorkloadConfig::Broker {
                kafka_port,
                quorum_port,
                ..
            } => vec![*kafka_port, *quorum_port],
            WorkloadConfig::Executor { port, .. } => vec![*port],
        };
        Some((existing.address.clone(), ports))
    };
    let mut voters = Vec::new();
    for id in 1..=cluster.voters {
        let (host, ports) = address_of(WorkloadRole::Broker, id)
            .ok_or_else(|| format!("voter broker {id} is not placed"))?;
        let port = ports.get(1).copied().unwrap_or(0);
        voters.push((i32::try_from(id).unwrap_or(i32::MAX), host, port));
    }
    let driver = address_of(WorkloadRole::Driver, 0)
        .map(|(host, ports)| format!("{host}:{}", ports.first().copied().unwrap_or(0)));
    let mut out = Vec::new();
    for (request, node_id, ports) in chosen {
        let node = fleet
            .nodes
            .iter()
            .find(|n| n.id == node_id)
            .ok_or_else(|| "node vanished".to_owned())?;
        let config = match request.role {
            WorkloadRole::Broker => WorkloadConfig::Broker {
                broker_id: i32::try_from(request.ordinal).unwrap_or(i32::MAX),
                kafka_port: ports[0],
                quorum_port: ports[1],
                voters: voters.clone(),
                rack: format!("fd-{}", node.fault_domain),
                metrics_port: ports.get(2).copied(),
            },
            WorkloadRole::Driver | WorkloadRole::Worker => WorkloadConfig::Executor {
                role: request.role,
                worker_id: request.ordinal,
                port: ports[0],
                driver: match (request.role, &driver) {
                    (_, Some(driver)) => driver.clone(),
                    // Only the driver itself is placed before a driver exists.
                    (WorkloadRole::Driver, None) => format!("{}:{}", node.address, ports[0]),
                    (_, None) => {
                        return Err("executors wait for their driver to be placed".to_owned());
                    }
                },
            },
        };
        out.push(NewWorkload {
            node_id,
            name: workload_name(cluster.id, request.role, request.ordinal),
            role: request.role,
            ordinal: request.ordinal,
            config,
            cpu_millis: size.cpu_millis,
            memory_bytes: size.memory_bytes,
            ports,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use chrono::Utc;

    use super::*;
    use uuid::Uuid;

    use crate::model::{
        ClusterSpec, ClusterState, ClusterStatusDoc, Kind, ObservedProcess, PoolSpec, SIZES,
        WorkspaceId,
    };
    use crate::store::FleetNode;

    fn node(i: u128, fault_domain: u32, cpu: u64) -> FleetNode {
        FleetNode {
            id: NodeId::from_uuid(Uuid::from_u128(i)),
            name: format!("node-{i}"),
            address: "127.0.0.1".into(),
            fault_domain,
            ready: true,
            cpu_millis: cpu,
            memory_bytes: 64 << 30,
            reserved_cpu_millis: 0,
            reserved_memory_bytes: 0,
            workloads: Vec::new(),
        }
    }

    fn kafka(voters: u32) -> ClusterRecord {
        ClusterRecord {
            id: ClusterId::from_uuid(Uuid::from_u128(99)),
            workspace_id: WorkspaceId::from_uuid(Uuid::from_u128(1)),
            workspace: "ws".into(),
            name: "k".into(),
            kind: Kind::Kafka,
            spec: ClusterSpec {
                version: "4.1".into(),
                pools: vec![PoolSpec {
                    name: "brokers".into(),
                    role: crate::model::PoolRole::Broker,
                    replicas: 3,
                    size: "small".into(),
                    storage_gib: 10,
                }],
                config: Default::default(),
                security: None,
                deletion_protection: false,
                drain: false,
            },
            generation: 1,
            deleting: false,
            state: ClusterState::Creating,
            observed_generation: 0,
            status: ClusterStatusDoc::default(),
            voters,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            k8s_owner: None,
        }
    }

    fn brokers(ordinals: &[u32]) -> Vec<PlaceRequest> {
        ordinals
            .iter()
            .map(|&ordinal| PlaceRequest {
                role: WorkloadRole::Broker,
                ordinal,
            })
            .collect()
    }

    fn as_record(w: &NewWorkload, fleet: &FleetSnapshot) -> WorkloadRecord {
        let node = fleet.nodes.iter().find(|n| n.id == w.node_id).unwrap();
        WorkloadRecord {
            id: WorkloadId::new_v4(),
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(99)),
            node_id: w.node_id,
            node_name: node.name.clone(),
            address: node.address.clone(),
            fault_domain: node.fault_domain,
            node_ready: true,
            name: w.name.clone(),
            role: w.role,
            ordinal: w.ordinal,
            config: w.config.clone(),
            removing: false,
            gone: false,
            observed: ObservedProcess::Running,
            restarts: 0,
        }
    }

    #[test]
    fn three_brokers_go_to_three_fault_domains_with_their_own_ports() {
        let fleet = FleetSnapshot {
            nodes: vec![
                node(1, 0, 2000),
                node(2, 0, 2000),
                node(3, 1, 2000),
                node(4, 2, 2000),
            ],
            ..FleetSnapshot::default()
        };
        let placed = schedule(
            &fleet,
            &kafka(3),
            &brokers(&[1, 2, 3]),
            SIZES[0],
            &(20_000..=20_100),
        )
        .unwrap();
        let domains: BTreeSet<u32> = placed
            .iter()
            .map(|w| {
                fleet
                    .nodes
                    .iter()
                    .find(|n| n.id == w.node_id)
                    .unwrap()
                    .fault_domain
            })
            .collect();
        assert_eq!(domains.len(), 3, "{placed:?}");
        let ports: BTreeSet<u16> = placed.iter().flat_map(|w| w.ports.clone()).collect();
        assert_eq!(
            ports.len(),
            9,
            "three ports per broker (Kafka, quorum, metrics), none shared"
        );
        for w in &placed {
            let WorkloadConfig::Broker {
                voters,
                kafka_port,
                quorum_port,
                metrics_port,
                ..
            } = &w.config
            else {
                panic!("a broker config");
            };
            assert_eq!(w.ports, [*kafka_port, *quorum_port, metrics_port.unwrap()]);
            assert_eq!(voters.len(), 3);
            assert!(voters.iter().any(
                |(id, _, port)| *id == i32::try_from(w.ordinal).unwrap() && port == quorum_port
            ));
        }
    }

    #[test]
    fn a_joining_broker_learns_the_existing_voters_and_taken_ports_are_skipped() {
        let mut fleet = FleetSnapshot {
            nodes: vec![node(1, 0, 2000), node(2, 1, 2000), node(3, 2, 2000)],
            ..FleetSnapshot::default()
        };
        let first = schedule(
            &fleet,
            &kafka(3),
            &brokers(&[1, 2, 3]),
            SIZES[0],
            &(20_000..=20_100),
        )
        .unwrap();
        fleet.cluster_workloads = first.iter().map(|w| as_record(w, &fleet)).collect();
        for w in &first {
            fleet
                .taken_ports
                .entry("127.0.0.1".into())
                .or_default()
                .extend(w.ports.iter().copied());
        }
        // Also taken by another cluster.
        fleet
            .taken_ports
            .entry("127.0.0.1".into())
            .or_default()
            .insert(20_009);
        // Asking again for an existing broker places nothing new for it.
        let next = schedule(
            &fleet,
            &kafka(3),
            &brokers(&[3, 4]),
            SIZES[0],
            &(20_000..=20_100),
        )
        .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].ordinal, 4);
        assert_eq!(next[0].ports, vec![20_010, 20_011, 20_012]);
        let WorkloadConfig::Broker { voters, .. } = &next[0].config else {
            panic!("a broker config");
        };
        assert_eq!(
            voters.iter().map(|v| v.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn shortage_is_refused_with_the_reason_and_not_ready_nodes_are_skipped() {
        let mut down = node(3, 2, 2000);
        down.ready = false;
        let fleet = FleetSnapshot {
            nodes: vec![node(1, 0, 2000), node(2, 1, 2000), down],
            ..FleetSnapshot::default()
        };
        let large = SIZES.iter().copied().find(|s| s.name == "large").unwrap();
        let error = schedule(
            &fleet,
            &kafka(3),
            &brokers(&[1, 2, 3]),
            large,
            &(20_000..=20_100),
        )
        .unwrap_err();
        assert!(
            error.contains("no ready node has room for broker 3"),
            "{error}"
        );
        assert!(error.contains("2 ready node(s)"), "{error}");
        let error = schedule(
            &fleet,
            &kafka(3),
            &brokers(&[1, 2]),
            SIZES[0],
            &(20_000..=20_002),
        )
        .unwrap_err();
        assert!(error.contains("no free port"), "{error}");
    }
}
