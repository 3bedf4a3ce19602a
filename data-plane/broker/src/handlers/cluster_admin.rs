//! Cluster admin APIs: AlterPartitionReassignments and ListPartitionReassignments (moving
//! partitions between brokers: scaling out, draining a broker), ElectLeaders (preferred leader
//! election) and DescribeLogDirs (this broker's replicas and their sizes).
//! All need `ALTER` on the cluster (reassign, elect) or `DESCRIBE` (list, log dirs) under ACLs.

use hdi_kafka_client::codes;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::{Context, sb};
use crate::cluster::metadata::{Command, Outcome};
use crate::security::acl::Operation;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().map(|id| BrokerId(*id)).collect()
}

/// Handles AlterPartitionReassignments: each partition's target is proposed on its own.
pub async fn alter_partition_reassignments(
    cx: &Context<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if !cx.allowed_cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(sb(
                "ALTER on the cluster is needed to reassign partitions",
            )));
    }
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let command = Command::ReassignPartition {
                topic: topic.name.0.as_str().to_owned(),
                partition: p.partition_index,
                target: p.replicas.map(|r| r.iter().map(|b| b.0).collect()),
            };
            let (code, message) = match cx.broker.cluster.propose(command).await {
                Ok(Outcome::Ok) => (codes::NONE, None),
                Ok(Outcome::Refused { code, message }) => (code, Some(message)),
                Err(error) => (error.code, Some(error.message)),
            };
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(message.map(sb)),
            );
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

/// Handles ListPartitionReassignments (all, or the partitions asked for).
pub fn list_partition_reassignments(
    cx: &Context<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !cx.allowed_cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(sb(
                "DESCRIBE on the cluster is needed to list reassignments",
            )));
    }
    let view = cx.broker.cluster.view();
    let wanted = |topic: &str, index: i32| {
        request.topics.as_ref().is_none_or(|topics| {
            topics
                .iter()
                .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&index))
        })
    };
    let topics = view
        .meta
        .topics
        .iter()
        .filter_map(|(name, topic)| {
            let partitions: Vec<OngoingPartitionReassignment> = topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    (!p.adding.is_empty() || !p.removing.is_empty()) && wanted(name, *i as i32)
                })
                .map(|(i, p)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i as i32)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding))
                        .with_removing_replicas(ids(&p.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(sb(name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// Handles ElectLeaders: preferred elections only (unclean election is off in hdi).
pub async fn elect_leaders(cx: &Context<'_>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    const PREFERRED: i8 = 0;
    if !cx.allowed_cluster(Operation::Alter) {
        return ElectLeadersResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED);
    }
    let view = cx.broker.cluster.view();
    let asked: Vec<(String, i32)> = match &request.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.as_str().to_owned(), *p))
            })
            .collect(),
        None => view
            .meta
            .topics
            .iter()
            .flat_map(|(n, t)| (0..t.partitions.len() as i32).map(|i| (n.clone(), i)))
            .collect(),
    };
    // election_type exists from v1; v0 elections are preferred ones.
    let preferred = cx.version == 0 || request.election_type == PREFERRED;
    let mut outcome = Ok(Outcome::Ok);
    if preferred {
        outcome = cx
            .broker
            .cluster
            .propose(Command::ElectPreferredLeaders {
                partitions: Some(asked.clone()),
            })
            .await;
    }
    let after = cx.broker.cluster.view();
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, index) in asked {
        let before = view.meta.partition(&topic, index).cloned();
        let now = after.meta.partition(&topic, index).cloned();
        let (code, message) = match (&outcome, before, now) {
            _ if !preferred => (
                codes::INVALID_REQUEST,
                Some("unclean leader election is disabled in hdi".to_owned()),
            ),
            (Err(error), _, _) => (error.code, Some(error.message.clone())),
            (_, None, _) | (_, _, None) => (
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("no partition {topic}-{index}")),
            ),
            (_, Some(before), Some(_)) if before.replicas.first() == Some(&before.leader) => {
                (codes::ELECTION_NOT_NEEDED, None)
            }
            (_, Some(_), Some(now)) if now.replicas.first() == Some(&now.leader) => {
                (codes::NONE, None)
            }
            _ => (
                codes::PREFERRED_LEADER_NOT_AVAILABLE,
                Some("the preferred replica is not in sync or not alive".to_owned()),
            ),
        };
        let result = PartitionResult::default()
            .with_partition_id(index)
            .with_error_code(code)
            .with_error_message(message.map(sb));
        match results.iter_mut().find(|r| r.topic.0.as_str() == topic) {
            Some(r) => r.partition_result.push(result),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Handles DescribeLogDirs: one log directory (the data directory) holding this broker's
/// replicas, with their sizes and how far each lags its leader's log end.
pub fn describe_log_dirs(
    cx: &Context<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = cx.broker;
    if !cx.allowed_cluster(Operation::Describe) {
        // error_code exists from v3; older clients get no directories, as from Kafka.
        return DescribeLogDirsResponse::default().with_error_code(if cx.version >= 3 {
            codes::CLUSTER_AUTHORIZATION_FAILED
        } else {
            codes::NONE
        });
    }
    let mut by_topic: std::collections::BTreeMap<String, Vec<DescribeLogDirsPartition>> =
        std::collections::BTreeMap::new();
    for replica in broker.replicas.all() {
        let wanted = request.topics.as_ref().is_none_or(|topics| {
            topics.iter().any(|t| {
                t.topic.0.as_str() == replica.topic && t.partitions.contains(&replica.index)
            })
        });
        if !wanted {
            continue;
        }
        let (_, hw, end) = replica.offsets();
        by_topic.entry(replica.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(replica.index)
                .with_partition_size(i64::try_from(replica.size_bytes()).unwrap_or(i64::MAX))
                .with_offset_lag(if replica.is_leader() {
                    0
                } else {
                    (hw - end).max(0)
                }),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    // `df` is a child process: off the async workers.
    let (total, usable) = super::blocking(|| disk_space(&broker.config.data_dir));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(sb(broker.config.data_dir.display().to_string()))
        .with_topics(topics);
    // total_bytes and usable_bytes exist from v4.
    let result = if cx.version >= 4 {
        result.with_total_bytes(total).with_usable_bytes(usable)
    } else {
        result
    };
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// `(total, available)` bytes of the file system holding `dir`, or -1s when unknown.
fn disk_space(dir: &std::path::Path) -> (i64, i64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(dir)
        .output();
    let Ok(out) = out else { return (-1, -1) };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse::<i64>().unwrap_or(-1));
    (numbers.next().unwrap_or(-1), numbers.next().unwrap_or(-1))
}
