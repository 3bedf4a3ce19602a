//! The pure planner: desired cluster + observed workloads and data plane → actions and status.
//!
//! No I/O, no clock: the same input always gives the same plan, so every branch is unit-tested
//! and a control plane killed between two actions simply plans again from what it observes.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::kafka_admin::{ClusterMetadata, plan_rebalance};
use crate::model::{
    ClusterRecord, ClusterState, Kind, ObservedProcess, WorkloadRecord, WorkloadRole,
};
use crate::provision::PlaceRequest;

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
    Remove(Vec<Uuid>),
    /// Forget these workloads: their hosts have removed them.
    Forget(Vec<Uuid>),
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
        /// Stable code.
        code: &'static str,
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
    let gone: Vec<Uuid> = input
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
        let ids: Vec<Uuid> = active.iter().map(|w| w.id).collect();
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
            code: "below_quorum",
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
                    code: "brokers_hold_partitions",
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
    plan.phase = "cluster is running".to_owned();
    plan.outcome = Outcome::Converged;
    plan.conditions.push(ConditionDraft {
        condition_type: "Ready",
        status: "True",
        reason: "AllBrokersInCluster",
        message: format!("{desired} brokers answer as one cluster"),
    });
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
    plan.phase = "cluster is running".to_owned();
    plan.outcome = Outcome::Converged;
    plan.conditions.push(ConditionDraft {
        condition_type: "Ready",
        status: "True",
        reason: "AllExecutorsRegistered",
        message: format!("the driver and {desired} executors run"),
    });
}
