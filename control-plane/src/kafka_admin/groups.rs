//! Consumer groups and partition offsets through the Kafka protocol: what the control plane's
//! consumer-group endpoints and its metrics sampler ask a cluster.
//!
//! - `ListGroups` (v4) goes to **every** live broker and the answers are merged: in Apache Kafka
//!   each broker lists only the groups it coordinates. (In `hdi-broker` the metadata quorum's
//!   leader coordinates every group; the others list the groups they know from the replicated
//!   committed offsets, as `Empty`, so a group's state is taken from `DescribeGroups` at its
//!   coordinator, never from the list.)
//! - `FindCoordinator` (v4, batched keys) at a bootstrap broker names each group's coordinator;
//!   `DescribeGroups` (v5, one request per coordinator for all its groups), `OffsetFetch` (v7),
//!   `OffsetCommit` (v7) and `DeleteGroups` (v2) go to it. `NOT_COORDINATOR`,
//!   `COORDINATOR_NOT_AVAILABLE` and `COORDINATOR_LOAD_IN_PROGRESS` (the coordinator moved or is
//!   being elected) look the coordinator up again, within the call's deadline.
//! - `DescribeGroups` members' assignments are decoded as the consumer protocol's
//!   `ConsumerProtocolAssignment` (a version, then topics with partitions) when the group's
//!   protocol type is `consumer`; a group of another protocol (Connect, a stream processor) or
//!   an undecodable assignment shows no partitions.
//! - `ListOffsets` (v4, read-uncommitted: the high watermark is the end) is sent once per
//!   partition leader with every partition it leads, never once per partition.
//! - Offsets are committed as an admin tool commits them (`kafka-consumer-groups.sh
//!   --reset-offsets`): generation `-1`, an empty member id, no instance id. Kafka (and
//!   `hdi-broker`, `groups::Coordinator::commit_check`) accepts that for a group without members
//!   and refuses it with `UNKNOWN_MEMBER_ID` while the group has members.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Buf as _;
use hdi_kafka_client::codes::{COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable as _, StrBytes};
use tokio::time::Instant;

use super::{AdminError, ClusterMetadata, KafkaAdmin, check, error_name, topic_name};

/// ListGroups v4: the group state in the answer.
const LIST_GROUPS_VERSION: i16 = 4;
/// FindCoordinator v4: a batch of keys.
const FIND_COORDINATOR_VERSION: i16 = 4;
/// DescribeGroups v5 (flexible, instance ids).
const DESCRIBE_GROUPS_VERSION: i16 = 5;
/// OffsetFetch v7: one group (v8 batches groups; `hdi-broker` does not advertise it).
const OFFSET_FETCH_VERSION: i16 = 7;
/// OffsetCommit v7 (instance ids).
const OFFSET_COMMIT_VERSION: i16 = 7;
/// DeleteGroups v2 (flexible).
const DELETE_GROUPS_VERSION: i16 = 2;
/// ListOffsets v4 (leader epochs; what `hdi-broker`'s cluster links use too).
const LIST_OFFSETS_VERSION: i16 = 4;
/// Kafka's error 14: the coordinator is loading the group.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// How often a group call is sent again after its coordinator moved.
const COORDINATOR_ATTEMPTS: u32 = 3;
/// The newest consumer-protocol assignment version this client decodes; newer ones are decoded
/// as it (the format only ever adds trailing fields).
const MAX_ASSIGNMENT_VERSION: i16 = 3;

/// ListOffsets `timestamp` of the latest offset (the high watermark).
pub const LATEST: i64 = -1;
/// ListOffsets `timestamp` of the earliest offset (the log start).
pub const EARLIEST: i64 = -2;

fn coordinator_moved(code: i16) -> bool {
    code == NOT_COORDINATOR
        || code == COORDINATOR_NOT_AVAILABLE
        || code == COORDINATOR_LOAD_IN_PROGRESS
}

/// A group as `ListGroups` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer`), empty when the answering broker does not know it.
    pub protocol_type: String,
}

/// One partition of a topic.
pub type TopicPartition = (String, i32);

/// A member of a group as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address as the coordinator saw it (`/127.0.0.1`).
    pub client_host: String,
    /// Its assigned partitions (consumer protocol only), sorted.
    pub assignment: Vec<TopicPartition>,
}

/// A group as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead` (unknown).
    pub state: String,
    /// Protocol type (`consumer`), empty when the group has none.
    pub protocol_type: String,
    /// The chosen protocol: for consumers the assignor (`range`, `cooperative-sticky`).
    pub protocol: String,
    /// Members, by member id.
    pub members: Vec<GroupMember>,
    /// The coordinator's broker id.
    pub coordinator: i32,
}

/// A committed offset of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset.
    pub offset: i64,
    /// The metadata committed with it.
    pub metadata: Option<String>,
}

/// What `ListOffsets` answered for one partition: the offset (`None` for a timestamp after
/// every record), or why there is none.
pub type OffsetAnswer = Result<Option<i64>, String>;

/// Decodes a consumer-protocol member assignment: `(topic, partition)` pairs, sorted. Empty bytes
/// are no assignment.
///
/// # Errors
/// A description of what is malformed.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Err("assignment shorter than its version".to_owned());
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(format!("assignment version {version}"));
    }
    let decoded = ConsumerProtocolAssignment::decode(&mut buf, version.min(MAX_ASSIGNMENT_VERSION))
        .map_err(|e| format!("assignment v{version}: {e}"))?;
    let mut partitions: Vec<TopicPartition> = decoded
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            let topic = t.topic.0.as_str().to_owned();
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_owned()))
}

impl KafkaAdmin {
    /// Every consumer group of the cluster: `ListGroups` at every live broker, merged, sorted by
    /// id. A protocol type one broker knows wins over another's empty one.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; a broker that cannot be reached fails the call (its groups
    /// would be missing).
    pub async fn list_groups(&self) -> Result<Vec<ListedGroup>, AdminError> {
        const API: &str = "ListGroups";
        let deadline = self.deadline();
        let metadata = self.metadata_until(deadline).await?;
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        let request = ListGroupsRequest::default();
        let mut targets: Vec<String> = metadata.brokers.iter().map(|b| b.address()).collect();
        if targets.is_empty() {
            targets.clone_from(&self.bootstrap);
        }
        let mut answered = 0;
        let mut failure = None;
        for addr in targets {
            let response = match self
                .send_to(API, &addr, &request, LIST_GROUPS_VERSION, deadline, true)
                .await
            {
                Ok(response) => response,
                // A broker that is restarting: the others still answer (in `hdi-broker` the
                // quorum leader coordinates every group).
                Err(error @ AdminError::Connect { .. }) => {
                    tracing::debug!(broker = %addr, %error, "ListGroups: broker not reached");
                    failure.get_or_insert(error);
                    continue;
                }
                Err(error) => return Err(error),
            };
            check(API, response.error_code, None)?;
            answered += 1;
            for listed in response.groups {
                let entry = groups
                    .entry(listed.group_id.0.as_str().to_owned())
                    .or_default();
                if entry.is_empty() {
                    listed.protocol_type.as_str().clone_into(entry);
                }
            }
        }
        if answered == 0
            && let Some(error) = failure
        {
            return Err(error);
        }
        Ok(groups
            .into_iter()
            .map(|(group_id, protocol_type)| ListedGroup {
                group_id,
                protocol_type,
            })
            .collect())
    }

    /// The coordinator's address and broker id of each of `groups` (one batched
    /// `FindCoordinator` at a bootstrap broker; groups whose coordinator is being elected are
    /// asked again until `deadline`).
    async fn coordinators(
        &self,
        groups: &[String],
        deadline: Instant,
    ) -> Result<BTreeMap<String, (String, i32)>, AdminError> {
        const API: &str = "FindCoordinator";
        let mut found = BTreeMap::new();
        let mut wanted: Vec<String> = groups.to_vec();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(
                    wanted
                        .iter()
                        .map(|g| StrBytes::from_string(g.clone()))
                        .collect(),
                );
            let response = self
                .send_bootstrap(API, &request, FIND_COORDINATOR_VERSION, deadline, true)
                .await?;
            check(API, response.error_code, response.error_message.as_ref())?;
            let mut again = Vec::new();
            let mut failed = None;
            for coordinator in &response.coordinators {
                let key = coordinator.key.as_str().to_owned();
                if coordinator.error_code == 0 {
                    let info = super::BrokerInfo {
                        id: coordinator.node_id.0,
                        host: coordinator.host.as_str().to_owned(),
                        port: coordinator.port,
                        rack: None,
                    };
                    found.insert(key, (info.address(), info.id));
                } else if coordinator_moved(coordinator.error_code) {
                    again.push(key);
                } else if failed.is_none() {
                    failed = Some((coordinator.error_code, coordinator.error_message.clone()));
                }
            }
            if let Some((code, message)) = failed {
                return Err(AdminError::kafka(API, code, message.as_ref()));
            }
            if let Some(missing) = wanted
                .iter()
                .find(|g| !found.contains_key(*g) && !again.contains(g))
            {
                return Err(super::missing(API, missing));
            }
            if again.is_empty() {
                return Ok(found);
            }
            let pause = Duration::from_millis(200 * u64::from(attempt));
            if attempt >= COORDINATOR_ATTEMPTS || Instant::now() + pause >= deadline {
                return Err(AdminError::kafka(API, COORDINATOR_NOT_AVAILABLE, None));
            }
            tokio::time::sleep(pause).await;
            wanted = again;
        }
    }

    /// Describes `groups` at their coordinators (one `DescribeGroups` per coordinator), in the
    /// order asked. An unknown group is described as `Dead` without members.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; a group-level Kafka error (such as
    /// `GROUP_AUTHORIZATION_FAILED`) is [`AdminError::Kafka`].
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupDescription>, AdminError> {
        const API: &str = "DescribeGroups";
        let deadline = self.deadline();
        let mut described: BTreeMap<String, GroupDescription> = BTreeMap::new();
        let mut wanted: Vec<String> = groups.to_vec();
        wanted.sort();
        wanted.dedup();
        let mut attempt = 0;
        while !wanted.is_empty() {
            attempt += 1;
            let coordinators = self.coordinators(&wanted, deadline).await?;
            let mut by_coordinator: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
            for (group, at) in coordinators {
                by_coordinator.entry(at).or_default().push(group);
            }
            let mut again = Vec::new();
            for ((addr, id), batch) in by_coordinator {
                let request = DescribeGroupsRequest::default()
                    .with_groups(batch.iter().map(|g| group_id(g)).collect());
                let response = self
                    .send_to(
                        API,
                        &addr,
                        &request,
                        DESCRIBE_GROUPS_VERSION,
                        deadline,
                        true,
                    )
                    .await?;
                for group in response.groups {
                    let name = group.group_id.0.as_str().to_owned();
                    if coordinator_moved(group.error_code) {
                        again.push(name);
                        continue;
                    }
                    check(API, group.error_code, None)?;
                    let protocol_type = group.protocol_type.as_str().to_owned();
                    let mut members: Vec<GroupMember> = group
                        .members
                        .iter()
                        .map(|m| GroupMember {
                            member_id: m.member_id.as_str().to_owned(),
                            group_instance_id: m
                                .group_instance_id
                                .as_ref()
                                .map(|s| s.as_str().to_owned()),
                            client_id: m.client_id.as_str().to_owned(),
                            client_host: m.client_host.as_str().to_owned(),
                            assignment: if protocol_type == "consumer" {
                                decode_assignment(&m.member_assignment).unwrap_or_else(|e| {
                                    tracing::debug!(group = %name, error = %e, "undecodable member assignment");
                                    Vec::new()
                                })
                            } else {
                                Vec::new()
                            },
                        })
                        .collect();
                    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                    described.insert(
                        name.clone(),
                        GroupDescription {
                            group_id: name,
                            state: group.group_state.as_str().to_owned(),
                            protocol_type,
                            protocol: group.protocol_data.as_str().to_owned(),
                            members,
                            coordinator: id,
                        },
                    );
                }
            }
            if !again.is_empty() {
                let pause = Duration::from_millis(200 * u64::from(attempt));
                if attempt >= COORDINATOR_ATTEMPTS || Instant::now() + pause >= deadline {
                    return Err(AdminError::kafka(API, NOT_COORDINATOR, None));
                }
                tokio::time::sleep(pause).await;
            }
            wanted = again;
        }
        groups
            .iter()
            .map(|g| {
                described
                    .get(g)
                    .cloned()
                    .ok_or_else(|| super::missing(API, g))
            })
            .collect()
    }

    /// The committed offsets of `group` (every partition it committed for), sorted.
    ///
    /// # Errors
    /// As [`KafkaAdmin::describe_groups`].
    pub async fn group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, AdminError> {
        let deadline = self.deadline();
        let groups = [group.to_owned()];
        let mut all = self.groups_offsets_until(&groups, deadline).await?;
        Ok(all.remove(group).unwrap_or_default())
    }

    /// The committed offsets of each of `groups` (one `FindCoordinator` for all, then one
    /// `OffsetFetch` per group).
    ///
    /// # Errors
    /// As [`KafkaAdmin::describe_groups`].
    pub async fn groups_offsets(
        &self,
        groups: &[String],
    ) -> Result<BTreeMap<String, Vec<CommittedOffset>>, AdminError> {
        let deadline = self.deadline();
        self.groups_offsets_until(groups, deadline).await
    }

    async fn groups_offsets_until(
        &self,
        groups: &[String],
        deadline: Instant,
    ) -> Result<BTreeMap<String, Vec<CommittedOffset>>, AdminError> {
        const API: &str = "OffsetFetch";
        let mut out = BTreeMap::new();
        let mut wanted: Vec<String> = groups.to_vec();
        let mut attempt = 0;
        while !wanted.is_empty() {
            attempt += 1;
            let coordinators = self.coordinators(&wanted, deadline).await?;
            let mut again = Vec::new();
            for (group, (addr, _)) in coordinators {
                let request = OffsetFetchRequest::default()
                    .with_group_id(group_id(&group))
                    .with_topics(None);
                let response = self
                    .send_to(API, &addr, &request, OFFSET_FETCH_VERSION, deadline, true)
                    .await?;
                if coordinator_moved(response.error_code) {
                    again.push(group);
                    continue;
                }
                check(API, response.error_code, None)?;
                let mut offsets = Vec::new();
                for topic in &response.topics {
                    for p in &topic.partitions {
                        // -1: nothing committed (a partition named in the request only).
                        if p.error_code != 0 || p.committed_offset < 0 {
                            continue;
                        }
                        offsets.push(CommittedOffset {
                            topic: topic.name.0.as_str().to_owned(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            metadata: p
                                .metadata
                                .as_ref()
                                .map(|m| m.as_str().to_owned())
                                .filter(|m| !m.is_empty()),
                        });
                    }
                }
                offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                out.insert(group, offsets);
            }
            if !again.is_empty() {
                let pause = Duration::from_millis(200 * u64::from(attempt));
                if attempt >= COORDINATOR_ATTEMPTS || Instant::now() + pause >= deadline {
                    return Err(AdminError::kafka(API, NOT_COORDINATOR, None));
                }
                tokio::time::sleep(pause).await;
            }
            wanted = again;
        }
        Ok(out)
    }

    /// Commits `offsets` (`topic, partition, offset`) for `group` as an admin tool does
    /// (generation -1, no member): only a group without members accepts it.
    ///
    /// # Errors
    /// As [`KafkaAdmin::describe_groups`]; the first partition-level error is
    /// [`AdminError::Kafka`] (`UNKNOWN_MEMBER_ID` when the group has members).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), AdminError> {
        const API: &str = "OffsetCommit";
        let deadline = self.deadline();
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_group_instance_id(None)
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let groups = [group.to_owned()];
        for attempt in 1..=COORDINATOR_ATTEMPTS {
            let coordinators = self.coordinators(&groups, deadline).await?;
            let (addr, _) = coordinators
                .get(group)
                .ok_or_else(|| super::missing("FindCoordinator", group))?;
            // Not idempotent in general, but committing the same offsets twice is harmless.
            let response = self
                .send_to(API, addr, &request, OFFSET_COMMIT_VERSION, deadline, true)
                .await?;
            let codes: Vec<(String, i32, i16)> = response
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.name.0.as_str().to_owned(),
                            p.partition_index,
                            p.error_code,
                        )
                    })
                })
                .collect();
            if codes.iter().any(|(_, _, code)| coordinator_moved(*code))
                && attempt < COORDINATOR_ATTEMPTS
            {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                continue;
            }
            if let Some((topic, partition, code)) = codes.iter().find(|(_, _, c)| *c != 0) {
                return Err(AdminError::Kafka {
                    api: API,
                    code: *code,
                    name: error_name(*code),
                    message: Some(format!("{topic}-{partition}")),
                });
            }
            if codes.len() < offsets.len() {
                return Err(AdminError::Protocol(format!(
                    "{API}: {} of {} partitions answered",
                    codes.len(),
                    offsets.len()
                )));
            }
            return Ok(());
        }
        Err(AdminError::kafka(API, NOT_COORDINATOR, None))
    }

    /// Deletes `group` (its committed offsets) at its coordinator.
    ///
    /// # Errors
    /// As [`KafkaAdmin::describe_groups`]; `NON_EMPTY_GROUP` while it has members and
    /// `GROUP_ID_NOT_FOUND` are [`AdminError::Kafka`].
    pub async fn delete_group(&self, group: &str) -> Result<(), AdminError> {
        const API: &str = "DeleteGroups";
        let deadline = self.deadline();
        let groups = [group.to_owned()];
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        for attempt in 1..=COORDINATOR_ATTEMPTS {
            let coordinators = self.coordinators(&groups, deadline).await?;
            let (addr, _) = coordinators
                .get(group)
                .ok_or_else(|| super::missing("FindCoordinator", group))?;
            let response = self
                .send_to(API, addr, &request, DELETE_GROUPS_VERSION, deadline, false)
                .await?;
            let result = response
                .results
                .iter()
                .find(|r| r.group_id.0.as_str() == group)
                .ok_or_else(|| super::missing(API, group))?;
            if coordinator_moved(result.error_code) && attempt < COORDINATOR_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                continue;
            }
            return check(API, result.error_code, None);
        }
        Err(AdminError::kafka(API, NOT_COORDINATOR, None))
    }

    /// `ListOffsets` of `partitions` at `timestamp` ([`LATEST`], [`EARLIEST`] or milliseconds
    /// since the epoch: the first offset whose record is at or after it), one request per
    /// partition leader. Every partition asked is answered: a partition without a leader or
    /// whose leader cannot be reached or refuses gets the reason.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`] (the metadata call).
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, OffsetAnswer>, AdminError> {
        let deadline = self.deadline();
        let metadata = self.metadata_until(deadline).await?;
        Ok(self
            .list_offsets_until(&metadata, partitions, timestamp, deadline)
            .await)
    }

    /// [`KafkaAdmin::list_offsets`] with the leaders of `metadata` (no metadata call).
    pub async fn list_offsets_with(
        &self,
        metadata: &ClusterMetadata,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> BTreeMap<TopicPartition, OffsetAnswer> {
        let deadline = self.deadline();
        self.list_offsets_until(metadata, partitions, timestamp, deadline)
            .await
    }

    async fn list_offsets_until(
        &self,
        metadata: &ClusterMetadata,
        partitions: &[TopicPartition],
        timestamp: i64,
        deadline: Instant,
    ) -> BTreeMap<TopicPartition, OffsetAnswer> {
        const API: &str = "ListOffsets";
        let mut answers: BTreeMap<TopicPartition, OffsetAnswer> = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
        for (topic, partition) in &wanted {
            let leader = metadata
                .topic(topic)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
                .map(|p| p.leader);
            match leader {
                Some(leader) if leader >= 0 => by_leader
                    .entry(leader)
                    .or_default()
                    .entry(topic.as_str())
                    .or_default()
                    .push(*partition),
                Some(_) => {
                    answers.insert((topic.clone(), *partition), Err("no leader".to_owned()));
                }
                None => {
                    answers.insert(
                        (topic.clone(), *partition),
                        Err("no such partition".to_owned()),
                    );
                }
            }
        }
        for (leader, topics) in by_leader {
            let fail_all = |answers: &mut BTreeMap<TopicPartition, OffsetAnswer>, why: String| {
                for (topic, ps) in &topics {
                    for p in ps {
                        answers.insert(((*topic).to_owned(), *p), Err(why.clone()));
                    }
                }
            };
            let Some(broker) = metadata.broker(leader) else {
                fail_all(
                    &mut answers,
                    format!("leader {leader} is not a live broker"),
                );
                continue;
            };
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(
                    topics
                        .iter()
                        .map(|(topic, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(topic))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let response = match self
                .send_to(
                    API,
                    &broker.address(),
                    &request,
                    LIST_OFFSETS_VERSION,
                    deadline,
                    true,
                )
                .await
            {
                Ok(response) => response,
                Err(error) => {
                    fail_all(&mut answers, error.to_string());
                    continue;
                }
            };
            for topic in &response.topics {
                for p in &topic.partitions {
                    let key = (topic.name.0.as_str().to_owned(), p.partition_index);
                    if !wanted.contains(&key) {
                        continue;
                    }
                    let answer = if p.error_code != 0 {
                        Err(error_name(p.error_code))
                    } else if p.offset < 0 {
                        Ok(None)
                    } else {
                        Ok(Some(p.offset))
                    };
                    answers.insert(key, answer);
                }
            }
        }
        for key in wanted {
            answers
                .entry(key.clone())
                .or_insert_with(|| Err("no answer".to_owned()));
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut as _;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as WireTp;
    use kafka_protocol::protocol::Encodable as _;

    fn encoded(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    WireTp::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).unwrap();
        buf.to_vec()
    }

    #[test]
    fn assignments_decode_to_sorted_topic_partitions() {
        let bytes = encoded(0, &[("orders", &[2, 0]), ("audit", &[1])]);
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![
                ("audit".to_owned(), 1),
                ("orders".to_owned(), 0),
                ("orders".to_owned(), 2)
            ]
        );
        // A newer version than this client knows decodes as the newest it knows.
        let bytes = encoded(3, &[("t", &[0])]);
        let mut newer = bytes.clone();
        newer[1] = 7;
        assert_eq!(
            decode_assignment(&newer).unwrap(),
            vec![("t".to_owned(), 0)]
        );
        assert_eq!(decode_assignment(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn malformed_assignments_are_errors_not_panics() {
        assert!(decode_assignment(&[0]).is_err());
        assert!(decode_assignment(&[0xff, 0xff, 0, 0]).is_err());
        let bytes = encoded(1, &[("orders", &[0, 1, 2])]);
        for cut in 2..bytes.len() {
            let _ = decode_assignment(&bytes[..cut]);
        }
        // A huge declared array length is refused without allocating it.
        assert!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }
}
