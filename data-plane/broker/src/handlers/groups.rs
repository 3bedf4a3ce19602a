//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups. The state machine lives in
//! [`crate::groups`]; this module converts wire types.
//!
//! With ACLs (Kafka's rules): finding a group's coordinator needs `DESCRIBE` on the group;
//! joining, syncing, heartbeats, leaving and committing need `READ` on it (and committing `READ`
//! on each topic); fetching offsets and describing need `DESCRIBE`; deleting needs `DELETE`;
//! listing shows every group with `DESCRIBE` on the cluster, else only those the client may
//! describe. Refusals are `GROUP_AUTHORIZATION_FAILED` (30) and `TOPIC_AUTHORIZATION_FAILED`
//! (29).

use std::time::Duration;

use hdi_kafka_client::codes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};

use super::{Context, sb};
use crate::groups::{Committed, JoinRequest};
use crate::security::acl::Operation;

/// Handles FindCoordinator: the controller (the metadata quorum's leader) coordinates every group
/// and every transactional id; COORDINATOR_NOT_AVAILABLE during an election.
pub fn find_coordinator(
    cx: &Context<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let view = cx.broker.cluster.view();
    let coordinator = cx
        .broker
        .cluster
        .leader_id()
        .and_then(|id| view.meta.brokers.get(&id))
        .filter(|b| !b.fenced);
    let (code, node, host, port) =
        match coordinator.and_then(|b| b.endpoint(cx.listener).map(|e| (b, e))) {
            Some((b, (host, port))) => (codes::NONE, BrokerId(b.id), sb(host.to_owned()), port),
            None => (codes::COORDINATOR_NOT_AVAILABLE, BrokerId(-1), sb(""), -1),
        };
    // Key type 0 is a group, 1 a transactional id (coordinated by the same broker, see
    // `txn_coordinator.rs`): each needs DESCRIBE on its resource.
    let refusal = |key: &str| match request.key_type {
        0 if !cx.allowed_group(Operation::Describe, key) => Some(codes::GROUP_AUTHORIZATION_FAILED),
        1 if !cx.allowed_transactional_id(Operation::Describe, key) => {
            Some(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        }
        0 | 1 => None,
        _ => Some(codes::INVALID_REQUEST),
    };
    if cx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let answer = Coordinator::default().with_key(key.clone());
                if let Some(refused) = refusal(key.as_str()) {
                    return answer
                        .with_error_code(refused)
                        .with_node_id(BrokerId(-1))
                        .with_host(sb(""))
                        .with_port(-1);
                }
                answer
                    .with_error_code(code)
                    .with_node_id(node)
                    .with_host(host.clone())
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if let Some(refused) = refusal(request.key.as_str()) {
        return FindCoordinatorResponse::default()
            .with_error_code(refused)
            .with_node_id(BrokerId(-1))
            .with_host(sb(""))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Handles JoinGroup (waits for the rebalance).
pub async fn join_group(cx: &Context<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let rebalance_timeout = if cx.version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    if !cx.allowed_group(Operation::Read, request.group_id.0.as_str()) {
        return JoinGroupResponse::default()
            .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
            .with_generation_id(-1)
            .with_protocol_name((cx.version < 7).then(|| sb("")))
            .with_member_id(request.member_id);
    }
    if !cx.broker.cluster.is_controller() {
        // Only the controller coordinates groups: the client looks the coordinator up again.
        return JoinGroupResponse::default()
            .with_error_code(codes::NOT_COORDINATOR)
            .with_generation_id(-1)
            .with_protocol_name((cx.version < 7).then(|| sb("")))
            .with_member_id(request.member_id);
    }
    let result = cx
        .broker
        .groups
        .join(JoinRequest {
            group_id: request.group_id.0.as_str().to_owned(),
            member_id: request.member_id.as_str().to_owned(),
            group_instance_id: request
                .group_instance_id
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            client_id: cx.client_id.clone(),
            client_host: format!("/{}", cx.peer.ip()),
            session_timeout: millis(request.session_timeout_ms),
            rebalance_timeout: millis(rebalance_timeout),
            protocol_type: request.protocol_type.as_str().to_owned(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.as_str().to_owned(), p.metadata.clone()))
                .collect(),
            require_known_member_id: cx.version >= 4,
            supports_skip_assignment: cx.version >= 9,
        })
        .await;
    JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(if result.error == 0 {
            result.generation
        } else {
            -1
        })
        // protocol_type exists from v7, group_instance_id from v5.
        .with_protocol_type(if cx.version >= 7 {
            result.protocol_type.map(sb)
        } else {
            None
        })
        // protocol_name is nullable only from v7: older versions get "" (as Kafka sends).
        .with_protocol_name(if cx.version >= 7 {
            result.protocol_name.map(sb)
        } else {
            Some(sb(result.protocol_name.unwrap_or_default()))
        })
        .with_leader(sb(result.leader))
        .with_skip_assignment(cx.version >= 9 && result.skip_assignment)
        .with_member_id(sb(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(if cx.version >= 5 {
                            instance.map(sb)
                        } else {
                            None
                        })
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

/// Handles SyncGroup (waits for the leader's assignment).
pub async fn sync_group(cx: &Context<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
        .collect();
    if !cx.allowed_group(Operation::Read, request.group_id.0.as_str()) {
        return SyncGroupResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
    }
    if !cx.broker.cluster.is_controller() {
        return SyncGroupResponse::default().with_error_code(codes::NOT_COORDINATOR);
    }
    let (error, assignment) = cx
        .broker
        .groups
        .sync(
            request.group_id.0.as_str(),
            request.generation_id,
            (
                request.member_id.as_str(),
                request.group_instance_id.as_ref().map(|s| s.as_str()),
            ),
            assignments,
        )
        .await;
    SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(assignment)
        .with_protocol_type(request.protocol_type)
        .with_protocol_name(request.protocol_name)
}

/// Handles Heartbeat.
pub fn heartbeat(cx: &Context<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let code = if !cx.allowed_group(Operation::Read, request.group_id.0.as_str()) {
        codes::GROUP_AUTHORIZATION_FAILED
    } else if cx.broker.cluster.is_controller() {
        cx.broker.groups.heartbeat(
            request.group_id.0.as_str(),
            request.generation_id,
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|s| s.as_str()),
        )
    } else {
        codes::NOT_COORDINATOR
    };
    HeartbeatResponse::default().with_error_code(code)
}

/// Handles LeaveGroup (one member before v3, a batch from v3).
pub fn leave_group(cx: &Context<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = request.group_id.0.as_str();
    if !cx.allowed_group(Operation::Read, group) {
        return LeaveGroupResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
    }
    if cx.version < 3 {
        let codes = cx
            .broker
            .groups
            .leave(group, &[(request.member_id.as_str().to_owned(), None)]);
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    // From v3 a member may be named by its static instance id alone (empty member id).
    let ids: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str().to_owned(),
                m.group_instance_id.as_ref().map(|s| s.as_str().to_owned()),
            )
        })
        .collect();
    let codes = cx.broker.groups.leave(group, &ids);
    let members = request
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// Commits offsets through the metadata quorum (so they survive this broker); the error code for
/// every partition.
async fn propose_commit(
    cx: &Context<'_>,
    group: &str,
    offsets: Vec<(String, i32, i64, Option<String>)>,
) -> i16 {
    let command = crate::cluster::metadata::Command::CommitOffsets {
        group: group.to_owned(),
        offsets,
    };
    match cx.broker.cluster.propose(command).await {
        Ok(_) => codes::NONE,
        Err(error) => {
            tracing::warn!(group, message = %error.message, "offset commit not replicated");
            // Retriable: the client commits again (to the new coordinator, if it moved).
            codes::COORDINATOR_NOT_AVAILABLE
        }
    }
}

/// Handles OffsetCommit.
pub async fn offset_commit(cx: &Context<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.as_str().to_owned();
    let group = group.as_str();
    let group_allowed = cx.allowed_group(Operation::Read, group);
    let topic_allowed: std::collections::BTreeMap<String, bool> = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            (name.to_owned(), cx.allowed_topic(Operation::Read, name))
        })
        .collect();
    let mut flat = Vec::new();
    for topic in &request.topics {
        if !topic_allowed[topic.name.0.as_str()] {
            continue;
        }
        for p in &topic.partitions {
            flat.push((
                topic.name.0.as_str().to_owned(),
                p.partition_index,
                p.committed_offset,
                p.committed_metadata.as_ref().map(|m| m.as_str().to_owned()),
            ));
        }
    }
    let check = if !group_allowed {
        codes::GROUP_AUTHORIZATION_FAILED
    } else if cx.broker.cluster.is_controller() {
        cx.broker.groups.commit_check(
            group,
            request.generation_id_or_member_epoch,
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|s| s.as_str()),
        )
    } else {
        codes::NOT_COORDINATOR
    };
    let code = if check == codes::NONE && !flat.is_empty() {
        propose_commit(cx, group, flat).await
    } else {
        check
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let code = if group_allowed && !topic_allowed[topic.name.0.as_str()] {
                codes::TOPIC_AUTHORIZATION_FAILED
            } else {
                code
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn committed_fields(c: Option<&Committed>) -> (i64, Option<String>) {
    match c {
        Some(c) => (c.offset, c.metadata.clone()),
        None => (-1, Some(String::new())),
    }
}

/// Handles OffsetFetch (single group: v1-v7 are advertised; v8 batches groups and is not).
pub fn offset_fetch(cx: &Context<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = &cx.broker.groups;
    if !cx.allowed_group(Operation::Describe, request.group_id.0.as_str()) {
        return OffsetFetchResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
    }
    let wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
            .collect()
    });
    let mut by_topic: Vec<OffsetFetchResponseTopic> = Vec::new();
    let named = request.topics.is_some();
    for (topic, partition, committed) in groups.fetch(request.group_id.0.as_str(), wanted) {
        let allowed = cx.allowed_topic(Operation::Describe, &topic);
        if !allowed && !named {
            // Fetching every committed offset leaves out topics the client may not describe.
            continue;
        }
        let (mut offset, mut metadata) = committed_fields(committed.as_ref());
        // v7 `require_stable` (KIP-447): an offset an open transaction commits is not answered
        // until the transaction ends.
        let unstable = allowed
            && request.require_stable
            && cx
                .broker
                .txns
                .offset_pending(request.group_id.0.as_str(), &topic, partition);
        if unstable {
            (offset, metadata) = (-1, Some(String::new()));
        }
        let entry = OffsetFetchResponsePartition::default()
            .with_error_code(if !allowed {
                codes::TOPIC_AUTHORIZATION_FAILED
            } else if unstable {
                codes::UNSTABLE_OFFSET_COMMIT
            } else {
                codes::NONE
            })
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(-1)
            .with_metadata(metadata.map(sb));
        match by_topic.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => by_topic.push(
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    OffsetFetchResponse::default().with_topics(by_topic)
}

/// Handles ListGroups.
pub fn list_groups(cx: &Context<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    let every = cx.allowed_cluster(Operation::Describe);
    let groups = cx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _)| every || cx.allowed_group(Operation::Describe, id))
        .filter(|(_, _, state)| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.as_str().eq_ignore_ascii_case(state))
        })
        .map(|(id, protocol_type, state)| {
            // group_state exists from v4.
            let listed = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type));
            if cx.version >= 4 {
                listed.with_group_state(sb(state))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Handles DescribeGroups.
pub fn describe_groups(cx: &Context<'_>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if !cx.allowed_group(Operation::Describe, id.0.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
            }
            let description = cx.broker.groups.describe(id.0.as_str());
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(sb(description.state))
                .with_protocol_type(sb(description.protocol_type))
                .with_protocol_data(sb(description.protocol))
                .with_members(
                    description
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(sb))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// Handles DeleteGroups.
pub async fn delete_groups(cx: &Context<'_>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let code = if !cx.allowed_group(Operation::Delete, id.0.as_str()) {
            codes::GROUP_AUTHORIZATION_FAILED
        } else if !cx.broker.cluster.is_controller() {
            codes::NOT_COORDINATOR
        } else {
            match cx.broker.groups.delete_check(id.0.as_str()) {
                codes::NONE => {
                    let command = crate::cluster::metadata::Command::DeleteGroup {
                        group: id.0.as_str().to_owned(),
                    };
                    match cx.broker.cluster.propose(command).await {
                        Ok(_) => codes::NONE,
                        Err(_) => codes::COORDINATOR_NOT_AVAILABLE,
                    }
                }
                other => other,
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
