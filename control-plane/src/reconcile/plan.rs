//! The pure planner: desired cluster + observed workloads and data plane → actions and status.
//!
//! No I/O, no clock: the same input always gives the same plan, so it is tested by scenarios
//! (the unit tests below) and a control plane killed between two actions simply plans again from
//! what it observes.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka_admin::ClusterMetadata;
use crate::model::ErrorCode;
use crate::model::{
    ClusterRecord, ClusterState, Kind, ObservedProcess, WorkloadId, WorkloadRecord, WorkloadRole,
};
use crate::provision::PlaceRequest;
use crate::reconcile::rebalance::plan_rebalance;

/// What the Kafka cluster answered, if it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaObservation {
    /// Metadata from the bootstrap brokers.
    pub metadata: ClusterMetadata,
    /// Partition reassignments in progress.
    pub reassigning: usize,
}

/// What the Spark driver answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparkObservation {
    /// Worker ids registered with the driver.
    pub workers: BTreeSet<u32>,
}

/// Everything the planner looks at.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The cluster row.
    pub cluster: &'a ClusterRecord,
    /// Its workloads.
    pub workloads: &'a [WorkloadRecord],
    /// The Kafka cluster's answer (`None`: not reachable or not asked).
    pub kafka: Option<&'a KafkaObservation>,
    /// The Spark driver's answer.
    pub spark: Option<&'a SparkObservation>,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Place these workloads (all or none).
    Place(Vec<PlaceRequest>),
    /// Stop these workloads and remove their data.
    Remove(Vec<WorkloadId>),
    /// Forget these workloads: their hosts have removed them.
    Forget(Vec<WorkloadId>),
    /// Submit these partition reassignments `(topic, partition, replicas)`.
    Reassign(Vec<(String, i32, Vec<i32>)>),
    /// Delete the cluster record (no workload is left).
    RemoveCluster,
}

/// Where the cluster stands after this plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still converging.
    InProgress,
    /// The spec is reached.
    Converged,
    /// Cannot proceed without a change from the user.
    Blocked {
        /// Why (an operation failure code).
        code: ErrorCode,
        /// For people.
        message: String,
    },
}

/// A condition to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionDraft {
    /// Type.
    pub condition_type: &'static str,
    /// `True`/`False`/`Unknown`.
    pub status: &'static str,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// State for people.
    pub state: ClusterState,
    /// The step the cluster is in, for the operation's log.
    pub phase: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Ready workloads per pool.
    pub ready: BTreeMap<String, u32>,
    /// Conditions.
    pub conditions: Vec<ConditionDraft>,
    /// The voter count to fix, when not fixed yet.
    pub set_voters: Option<u32>,
    /// Kafka bootstrap servers.
    pub bootstrap_servers: Option<String>,
    /// Executor job API.
    pub job_api: Option<String>,
}

/// Plans one reconcile pass.
pub fn plan(input: Input<'_>) -> Plan {
    let cluster = input.cluster;
    let mut plan = Plan {
        actions: Vec::new(),
        state: if cluster.deleting {
            ClusterState::Deleting
        } else if cluster.observed_generation == 0 {
            ClusterState::Creating
        } else {
            ClusterState::Resizing
        },
        phase: String::new(),
        outcome: Outcome::InProgress,
        ready: BTreeMap::new(),
        conditions: Vec::new(),
        set_voters: None,
        bootstrap_servers: None,
        job_api: None,
    };
    let gone: Vec<WorkloadId> = input
        .workloads
        .iter()
        .filter(|w| w.removing && w.gone)
        .map(|w| w.id)
        .collect();
    if !gone.is_empty() {
        plan.actions.push(Action::Forget(gone));
    }
    let active: Vec<&WorkloadRecord> = input.workloads.iter().filter(|w| !w.removing).collect();
    let removing: Vec<&WorkloadRecord> = input
        .workloads
        .iter()
        .filter(|w| w.removing && !w.gone)
        .collect();

    if cluster.deleting {
        let ids: Vec<WorkloadId> = active.iter().map(|w| w.id).collect();
        if !ids.is_empty() {
            plan.actions.push(Action::Remove(ids));
        }
        if input.workloads.iter().all(|w| w.removing && w.gone) {
            plan.actions.push(Action::RemoveCluster);
            plan.phase = "remove the cluster record".to_owned();
            plan.outcome = Outcome::Converged;
        } else {
            plan.phase = "stop the workloads and remove their data".to_owned();
        }
        return plan;
    }
    match cluster.kind {
        Kind::Kafka => plan_kafka(input, &active, &removing, &mut plan),
        Kind::Spark => plan_spark(input, &active, &removing, &mut plan),
    }
    if plan.outcome == Outcome::Converged {
        plan.state = ClusterState::Running;
    } else if matches!(plan.outcome, Outcome::Blocked { .. }) {
        plan.state = ClusterState::Failed;
    }
    plan
}

fn ordinals(workloads: &[&WorkloadRecord], role: WorkloadRole) -> BTreeSet<u32> {
    workloads
        .iter()
        .filter(|w| w.role == role)
        .map(|w| w.ordinal)
        .collect()
}

fn list(ids: impl IntoIterator<Item = u32>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_ready_nodes(workloads: &[&WorkloadRecord]) -> Option<ConditionDraft> {
    let down: BTreeSet<&str> = workloads
        .iter()
        .filter(|w| !w.node_ready)
        .map(|w| w.node_name.as_str())
        .collect();
    (!down.is_empty()).then(|| ConditionDraft {
        condition_type: "NodesReady",
        status: "False",
        reason: "NodeNotReady",
        message: format!(
            "node(s) {} stopped heartbeating",
            down.into_iter().collect::<Vec<_>>().join(", ")
        ),
    })
}

fn plan_kafka(
    input: Input<'_>,
    active: &[&WorkloadRecord],
    removing: &[&WorkloadRecord],
    plan: &mut Plan,
) {
    let cluster = input.cluster;
    let desired = cluster.spec.replicas();
    let voters = if cluster.voters == 0 {
        let voters = desired.min(3);
        plan.set_voters = Some(voters);
        voters
    } else {
        cluster.voters
    };
    let present = ordinals(active, WorkloadRole::Broker);
    let leaving = ordinals(removing, WorkloadRole::Broker);
    let missing: Vec<u32> = (1..=desired)
        .filter(|id| !present.contains(id) && !leaving.contains(id))
        .collect();
    let extra: Vec<&WorkloadRecord> = active
        .iter()
        .copied()
        .filter(|w| w.ordinal > desired)
        .collect();
    let in_metadata: BTreeSet<i32> = input
        .kafka
        .map(|k| k.metadata.brokers.iter().map(|b| b.id).collect())
        .unwrap_or_default();
    let ready = active
        .iter()
        .filter(|w| w.ordinal <= desired && w.observed == ObservedProcess::Running)
        .filter(|w| i32::try_from(w.ordinal).is_ok_and(|id| in_metadata.contains(&id)))
        .count();
    plan.ready.insert(
        "brokers".to_owned(),
        u32::try_from(ready).unwrap_or(u32::MAX),
    );
    let mut endpoints: Vec<String> = active
        .iter()
        .filter(|w| w.ordinal <= desired)
        .map(|w| w.endpoint())
        .collect();
    endpoints.sort();
    if !endpoints.is_empty() {
        plan.bootstrap_servers = Some(endpoints.join(","));
    }
    if let Some(condition) = not_ready_nodes(active) {
        plan.conditions.push(condition);
    }
    if desired < voters {
        plan.phase = "check the new size".to_owned();
        plan.outcome = Outcome::Blocked {
            code: ErrorCode::BelowQuorum,
            message: format!(
                "a Kafka cluster created with {voters} brokers keeps them as its metadata quorum; \
                 it cannot shrink below {voters} brokers"
            ),
        };
        return;
    }
    if !missing.is_empty() {
        plan.actions.push(Action::Place(
            missing
                .iter()
                .map(|&ordinal| PlaceRequest {
                    role: WorkloadRole::Broker,
                    ordinal,
                })
                .collect(),
        ));
        plan.phase = format!("place brokers {}", list(missing.iter().copied()));
        return;
    }
    if !extra.is_empty() {
        let Some(kafka) = input.kafka else {
            plan.phase = "wait for the Kafka cluster to answer before removing brokers".to_owned();
            return;
        };
        let extra_ids: BTreeSet<i32> = extra
            .iter()
            .filter_map(|w| i32::try_from(w.ordinal).ok())
            .collect();
        let held: usize = kafka
            .metadata
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.replicas.iter().any(|r| extra_ids.contains(r)))
            .count();
        let names = list(extra.iter().map(|w| w.ordinal));
        if kafka.reassigning > 0 {
            plan.phase = format!("move partitions off brokers {names}");
            return;
        }
        if held > 0 {
            if cluster.spec.drain {
                let target: Vec<i32> = (1..=desired)
                    .filter_map(|id| i32::try_from(id).ok())
                    .collect();
                let moves = plan_rebalance(&kafka.metadata, &target);
                plan.phase = format!("move partitions off brokers {names}");
                if !moves.is_empty() {
                    plan.actions.push(Action::Reassign(moves));
                }
            } else {
                plan.phase = format!("remove brokers {names}");
                plan.outcome = Outcome::Blocked {
                    code: ErrorCode::BrokersHoldPartitions,
                    message: format!(
                        "brokers {names} hold {held} partition(s); resize with drain to move them first"
                    ),
                };
            }
            return;
        }
        plan.actions
            .push(Action::Remove(extra.iter().map(|w| w.id).collect()));
        plan.phase = format!("stop brokers {names}");
        return;
    }
    if !removing.is_empty() {
        plan.phase = format!(
            "wait for brokers {} to stop and remove their data",
            list(removing.iter().map(|w| w.ordinal))
        );
        return;
    }
    let not_running: Vec<u32> = active
        .iter()
        .filter(|w| w.observed != ObservedProcess::Running)
        .map(|w| w.ordinal)
        .collect();
    if !not_running.is_empty() {
        plan.phase = "start the brokers".to_owned();
        plan.conditions.push(ConditionDraft {
            condition_type: "Ready",
            status: "False",
            reason: "BrokersStarting",
            message: format!("brokers {} are not running yet", list(not_running)),
        });
        return;
    }
    let Some(kafka) = input.kafka else {
        plan.phase = "wait for the brokers to form one cluster".to_owned();
        plan.conditions.push(ConditionDraft {
            condition_type: "Ready",
            status: "False",
            reason: "ClusterUnreachable",
            message: "no broker answers Metadata".to_owned(),
        });
        return;
    };
    let absent: Vec<u32> = (1..=desired)
        .filter(|id| i32::try_from(*id).is_ok_and(|id| !in_metadata.contains(&id)))
        .collect();
    if !absent.is_empty() {
        plan.phase = "wait for the brokers to form one cluster".to_owned();
        plan.conditions.push(ConditionDraft {
            condition_type: "Ready",
            status: "False",
            reason: "BrokersNotInCluster",
            message: format!(
                "brokers {} are not in the cluster's metadata yet",
                list(absent)
            ),
        });
        return;
    }
    if kafka.reassigning > 0 {
        plan.phase = "rebalance partitions".to_owned();
        return;
    }
    if cluster.generation != cluster.observed_generation {
        let target: Vec<i32> = (1..=desired)
            .filter_map(|id| i32::try_from(id).ok())
            .collect();
        let moves = plan_rebalance(&kafka.metadata, &target);
        if !moves.is_empty() {
            plan.phase = "rebalance partitions".to_owned();
            plan.actions.push(Action::Reassign(moves));
            return;
        }
    }
    converged(
        plan,
        "AllBrokersInCluster",
        format!("{desired} brokers answer as one cluster"),
    );
}

fn plan_spark(
    input: Input<'_>,
    active: &[&WorkloadRecord],
    removing: &[&WorkloadRecord],
    plan: &mut Plan,
) {
    let desired = input.cluster.spec.replicas();
    let drivers = ordinals(active, WorkloadRole::Driver);
    let workers = ordinals(active, WorkloadRole::Worker);
    let leaving_workers = ordinals(removing, WorkloadRole::Worker);
    let leaving_driver = !ordinals(removing, WorkloadRole::Driver).is_empty();
    let registered = input.spark.map(|s| s.workers.clone()).unwrap_or_default();
    let driver_running = active
        .iter()
        .any(|w| w.role == WorkloadRole::Driver && w.observed == ObservedProcess::Running);
    plan.ready.insert(
        "driver".to_owned(),
        u32::from(driver_running && input.spark.is_some()),
    );
    let ready_workers = active
        .iter()
        .filter(|w| w.role == WorkloadRole::Worker && w.ordinal <= desired)
        .filter(|w| w.observed == ObservedProcess::Running && registered.contains(&w.ordinal))
        .count();
    plan.ready.insert(
        "executors".to_owned(),
        u32::try_from(ready_workers).unwrap_or(u32::MAX),
    );
    if let Some(driver) = active.iter().find(|w| w.role == WorkloadRole::Driver) {
        plan.job_api = Some(format!("http://{}", driver.endpoint()));
    }
    if let Some(condition) = not_ready_nodes(active) {
        plan.conditions.push(condition);
    }
    let mut missing = Vec::new();
    if drivers.is_empty() && !leaving_driver {
        missing.push(PlaceRequest {
            role: WorkloadRole::Driver,
            ordinal: 0,
        });
    }
    missing.extend(
        (1..=desired)
            .filter(|id| !workers.contains(id) && !leaving_workers.contains(id))
            .map(|ordinal| PlaceRequest {
                role: WorkloadRole::Worker,
                ordinal,
            }),
    );
    if !missing.is_empty() {
        plan.phase = "place the driver and executors".to_owned();
        plan.actions.push(Action::Place(missing));
        return;
    }
    let extra: Vec<&WorkloadRecord> = active
        .iter()
        .copied()
        .filter(|w| w.role == WorkloadRole::Worker && w.ordinal > desired)
        .collect();
    if !extra.is_empty() {
        plan.phase = format!("stop executors {}", list(extra.iter().map(|w| w.ordinal)));
        plan.actions
            .push(Action::Remove(extra.iter().map(|w| w.id).collect()));
        return;
    }
    if !removing.is_empty() {
        plan.phase = format!(
            "wait for executors {} to stop and remove their data",
            list(removing.iter().map(|w| w.ordinal))
        );
        return;
    }
    let unregistered: Vec<u32> = (1..=desired)
        .filter(|id| !registered.contains(id))
        .collect();
    if !driver_running
        || input.spark.is_none()
        || !unregistered.is_empty()
        || ready_workers < desired as usize
    {
        plan.phase = "wait for the executors to register with the driver".to_owned();
        plan.conditions.push(ConditionDraft {
            condition_type: "Ready",
            status: "False",
            reason: "ExecutorsStarting",
            message: if input.spark.is_none() {
                "the driver does not answer yet".to_owned()
            } else {
                format!("executors {} have not registered", list(unregistered))
            },
        });
        return;
    }
    converged(
        plan,
        "AllExecutorsRegistered",
        format!("the driver and {desired} executors run"),
    );
}

/// The cluster is running as its spec says: `Ready` is true for `reason`.
fn converged(plan: &mut Plan, reason: &'static str, message: String) {
    plan.phase = "cluster is running".to_owned();
    plan.outcome = Outcome::Converged;
    plan.conditions.push(ConditionDraft {
        condition_type: "Ready",
        status: "True",
        reason,
        message,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::*;
    use crate::kafka_admin::{BrokerInfo, PartitionInfo, TopicInfo};
    use uuid::Uuid;

    use crate::model::{
        ClusterId, ClusterSpec, ClusterStatusDoc, NodeId, PoolRole, PoolSpec, WorkloadConfig,
        WorkspaceId,
    };

    fn cluster(kind: Kind, replicas: u32, generation: u64, observed: u64) -> ClusterRecord {
        ClusterRecord {
            id: ClusterId::from_uuid(Uuid::from_u128(7)),
            workspace_id: WorkspaceId::from_uuid(Uuid::from_u128(1)),
            workspace: "ws".into(),
            name: "c".into(),
            kind,
            spec: ClusterSpec {
                version: "4.1".into(),
                pools: vec![PoolSpec {
                    name: "pool".into(),
                    role: kind.pool_role(),
                    replicas,
                    size: "small".into(),
                    storage_gib: 10,
                }],
                config: BTreeMap::new(),
                security: None,
                deletion_protection: false,
                drain: false,
            },
            generation,
            deleting: false,
            state: ClusterState::Creating,
            observed_generation: observed,
            status: ClusterStatusDoc::default(),
            voters: if kind == Kind::Kafka && observed > 0 {
                3
            } else {
                0
            },
            created_at: Utc::now(),
            updated_at: Utc::now(),
            k8s_owner: None,
        }
    }

    fn workload(role: WorkloadRole, ordinal: u32, observed: ObservedProcess) -> WorkloadRecord {
        let config = match role {
            WorkloadRole::Broker => WorkloadConfig::Broker {
                broker_id: i32::try_from(ordinal).unwrap(),
                kafka_port: 20_000 + u16::try_from(ordinal).unwrap() * 2,
                quorum_port: 20_001 + u16::try_from(ordinal).unwrap() * 2,
                voters: Vec::new(),
                rack: "fd-0".into(),
                metrics_port: None,
            },
            _ => WorkloadConfig::Executor {
                role,
                worker_id: ordinal,
                port: 21_000 + u16::try_from(ordinal).unwrap(),
                driver: "127.0.0.1:21000".into(),
            },
        };
        WorkloadRecord {
            id: WorkloadId::from_uuid(Uuid::from_u128(
                u128::from(ordinal) + if role == WorkloadRole::Driver { 100 } else { 0 },
            )),
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(7)),
            node_id: NodeId::from_uuid(Uuid::from_u128(50 + u128::from(ordinal))),
            node_name: format!("node-{ordinal}"),
            address: "127.0.0.1".into(),
            fault_domain: ordinal,
            node_ready: true,
            name: format!("w-{}-{ordinal}", role.as_str()),
            role,
            ordinal,
            config,
            removing: false,
            gone: false,
            observed,
            restarts: 0,
        }
    }

    fn brokers(ids: &[u32]) -> Vec<WorkloadRecord> {
        ids.iter()
            .map(|&id| workload(WorkloadRole::Broker, id, ObservedProcess::Running))
            .collect()
    }

    /// Metadata with `topics` topics of 4 partitions each, RF 3, replicas round-robin on `on`.
    fn kafka(live: &[i32], on: &[i32], topics: usize) -> KafkaObservation {
        let mut metadata = ClusterMetadata {
            cluster_id: Some("x".into()),
            controller_id: live[0],
            brokers: live
                .iter()
                .map(|&id| BrokerInfo {
                    id,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    rack: None,
                })
                .collect(),
            topics: Vec::new(),
        };
        for t in 0..topics {
            metadata.topics.push(TopicInfo {
                name: format!("t{t}"),
                topic_id: None,
                internal: false,
                error: None,
                partitions: (0..4)
                    .map(|p| {
                        let replicas: Vec<i32> =
                            (0..3).map(|r| on[(p + r + t) % on.len()]).collect();
                        PartitionInfo {
                            partition: i32::try_from(p).unwrap(),
                            leader: replicas[0],
                            isr: replicas.clone(),
                            replicas,
                            offline: Vec::new(),
                        }
                    })
                    .collect(),
            });
        }
        KafkaObservation {
            metadata,
            reassigning: 0,
        }
    }

    fn run(
        c: &ClusterRecord,
        w: &[WorkloadRecord],
        k: Option<&KafkaObservation>,
        s: Option<&SparkObservation>,
    ) -> Plan {
        plan(Input {
            cluster: c,
            workloads: w,
            kafka: k,
            spark: s,
        })
    }

    fn placed(plan: &Plan) -> Vec<u32> {
        plan.actions
            .iter()
            .find_map(|a| match a {
                Action::Place(requests) => Some(requests.iter().map(|r| r.ordinal).collect()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_new_kafka_cluster_places_all_voters_at_once() {
        let c = cluster(Kind::Kafka, 3, 1, 0);
        let p = run(&c, &[], None, None);
        assert_eq!(placed(&p), vec![1, 2, 3]);
        assert_eq!(p.set_voters, Some(3));
        assert_eq!(p.state, ClusterState::Creating);
        assert_eq!(p.outcome, Outcome::InProgress);
        // One broker only: a one-voter quorum.
        assert_eq!(
            run(&cluster(Kind::Kafka, 1, 1, 0), &[], None, None).set_voters,
            Some(1)
        );
    }

    #[test]
    fn running_needs_processes_and_one_cluster() {
        let c = cluster(Kind::Kafka, 3, 1, 0);
        let mut w = brokers(&[1, 2, 3]);
        w[1].observed = ObservedProcess::Starting;
        let p = run(&c, &w, None, None);
        assert_eq!(p.outcome, Outcome::InProgress);
        assert_eq!(p.phase, "start the brokers");
        let w = brokers(&[1, 2, 3]);
        let p = run(&c, &w, None, None);
        assert_eq!(p.phase, "wait for the brokers to form one cluster");
        let p = run(&c, &w, Some(&kafka(&[1, 2], &[1, 2], 0)), None);
        assert_eq!(
            p.outcome,
            Outcome::InProgress,
            "broker 3 is not in the metadata"
        );
        let p = run(&c, &w, Some(&kafka(&[1, 2, 3], &[1, 2, 3], 0)), None);
        assert_eq!(p.outcome, Outcome::Converged);
        assert_eq!(p.state, ClusterState::Running);
        assert_eq!(p.ready.get("brokers"), Some(&3));
        assert_eq!(
            p.bootstrap_servers.as_deref(),
            Some("127.0.0.1:20002,127.0.0.1:20004,127.0.0.1:20006")
        );
        assert!(p.actions.is_empty());
    }

    #[test]
    fn scale_out_places_then_rebalances_then_converges() {
        let c = cluster(Kind::Kafka, 4, 2, 1);
        let p = run(
            &c,
            &brokers(&[1, 2, 3]),
            Some(&kafka(&[1, 2, 3], &[1, 2, 3], 5)),
            None,
        );
        assert_eq!(placed(&p), vec![4]);
        assert_eq!(p.state, ClusterState::Resizing);
        let w = brokers(&[1, 2, 3, 4]);
        let p = run(&c, &w, Some(&kafka(&[1, 2, 3, 4], &[1, 2, 3], 5)), None);
        let Some(Action::Reassign(moves)) = p.actions.first() else {
            panic!("expected a rebalance: {p:?}");
        };
        assert!(moves.iter().any(|(_, _, replicas)| replicas.contains(&4)));
        let mut busy = kafka(&[1, 2, 3, 4], &[1, 2, 3, 4], 5);
        busy.reassigning = 3;
        assert_eq!(run(&c, &w, Some(&busy), None).phase, "rebalance partitions");
        // Balanced and nothing in flight: converged.
        let settled = kafka(&[1, 2, 3, 4], &[1, 2, 3, 4], 0);
        assert_eq!(
            run(&c, &w, Some(&settled), None).outcome,
            Outcome::Converged
        );
    }

    #[test]
    fn scale_in_is_blocked_by_held_partitions_unless_drained() {
        let mut c = cluster(Kind::Kafka, 3, 3, 2);
        let w = brokers(&[1, 2, 3, 4]);
        let held = kafka(&[1, 2, 3, 4], &[1, 2, 3, 4], 2);
        let p = run(&c, &w, Some(&held), None);
        assert!(
            matches!(
                &p.outcome,
                Outcome::Blocked {
                    code: ErrorCode::BrokersHoldPartitions,
                    ..
                }
            ),
            "{p:?}"
        );
        assert_eq!(p.state, ClusterState::Failed);
        assert!(p.actions.is_empty(), "nothing is removed");
        c.spec.drain = true;
        let p = run(&c, &w, Some(&held), None);
        let Some(Action::Reassign(moves)) = p.actions.first() else {
            panic!("expected moves off broker 4: {p:?}");
        };
        assert!(moves.iter().all(|(_, _, replicas)| !replicas.contains(&4)));
        // Without the cluster answering, nothing is removed.
        assert!(run(&c, &w, None, None).actions.is_empty());
        // Once broker 4 holds nothing: stop it.
        let drained = kafka(&[1, 2, 3, 4], &[1, 2, 3], 2);
        let p = run(&c, &w, Some(&drained), None);
        assert_eq!(p.actions, vec![Action::Remove(vec![w[3].id])]);
    }

    #[test]
    fn removed_workloads_are_forgotten_once_gone_and_voters_stay() {
        let c = cluster(Kind::Kafka, 3, 3, 2);
        let mut w = brokers(&[1, 2, 3, 4]);
        w[3].removing = true;
        let p = run(&c, &w, Some(&kafka(&[1, 2, 3], &[1, 2, 3], 1)), None);
        assert!(p.actions.is_empty());
        assert!(p.phase.starts_with("wait for brokers 4"), "{}", p.phase);
        w[3].gone = true;
        let p = run(&c, &w, Some(&kafka(&[1, 2, 3], &[1, 2, 3], 1)), None);
        assert_eq!(p.actions, vec![Action::Forget(vec![w[3].id])]);
        assert_eq!(p.outcome, Outcome::Converged);
        let below = cluster(Kind::Kafka, 2, 3, 2);
        assert!(matches!(
            run(&below, &brokers(&[1, 2, 3]), None, None).outcome,
            Outcome::Blocked {
                code: ErrorCode::BelowQuorum,
                ..
            }
        ));
    }

    #[test]
    fn deletion_removes_everything_then_the_record() {
        let mut c = cluster(Kind::Kafka, 3, 2, 1);
        c.deleting = true;
        let mut w = brokers(&[1, 2, 3]);
        let p = run(&c, &w, None, None);
        assert_eq!(
            p.actions,
            vec![Action::Remove(w.iter().map(|w| w.id).collect())]
        );
        assert_eq!(p.state, ClusterState::Deleting);
        for x in &mut w {
            x.removing = true;
        }
        w[0].gone = true;
        let p = run(&c, &w, None, None);
        assert_eq!(p.actions, vec![Action::Forget(vec![w[0].id])]);
        for x in &mut w {
            x.gone = true;
        }
        let p = run(&c, &w, None, None);
        assert!(p.actions.contains(&Action::RemoveCluster));
        assert!(
            run(&c, &[], None, None)
                .actions
                .contains(&Action::RemoveCluster)
        );
    }

    #[test]
    fn spark_places_driver_and_workers_and_waits_for_registration() {
        let c = cluster(Kind::Spark, 2, 1, 0);
        let p = run(&c, &[], None, None);
        assert_eq!(placed(&p), vec![0, 1, 2]);
        let w = vec![
            workload(WorkloadRole::Driver, 0, ObservedProcess::Running),
            workload(WorkloadRole::Worker, 1, ObservedProcess::Running),
            workload(WorkloadRole::Worker, 2, ObservedProcess::Running),
        ];
        let one = SparkObservation {
            workers: [1].into_iter().collect(),
        };
        assert_eq!(run(&c, &w, None, Some(&one)).outcome, Outcome::InProgress);
        let both = SparkObservation {
            workers: [1, 2].into_iter().collect(),
        };
        let p = run(&c, &w, None, Some(&both));
        assert_eq!(p.outcome, Outcome::Converged);
        assert_eq!(p.job_api.as_deref(), Some("http://127.0.0.1:21000"));
        let smaller = cluster(Kind::Spark, 1, 2, 1);
        let p = run(&smaller, &w, None, Some(&both));
        assert_eq!(p.actions, vec![Action::Remove(vec![w[2].id])]);
        assert_eq!(PoolRole::Executor, Kind::Spark.pool_role());
    }
}
