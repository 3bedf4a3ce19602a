//! Consumer groups of Kafka clusters: list, describe (members, assignments, committed offsets,
//! end offsets, lag), reset offsets and delete, through the Kafka protocol
//! ([`crate::kafka_admin`]'s group calls) against the cluster's brokers.
//!
//! Like topics, groups are not stored: the cluster owns them, every call answers synchronously,
//! and clusters that cannot serve answer as for topics (`not_a_kafka_cluster`,
//! `cluster_not_ready`, `cluster_unreachable`, `kafka_error`). Reads need the viewer role;
//! resetting offsets and deleting need the operator role and are audited
//! (`consumer_group.reset_offsets`, `consumer_group.delete`), refusals included; a dry run
//! changes nothing and is not audited.
//!
//! Rules kept here, as `kafka-consumer-groups.sh` keeps them: offsets are reset, and a group is
//! deleted, only while the group has no members (`409 group_not_empty`, also when a member joins
//! between the check and the commit: the coordinator then refuses the admin commit); a group the
//! cluster does not know (state `Dead`, nothing committed) is `404 not_found`; an offset asked
//! for is clamped to the partition's earliest and end offsets, and a timestamp after every
//! record moves to the end.

use std::collections::{BTreeMap, BTreeSet};

use super::node::PageRequest;
use super::topic::admin_error;
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::{
    AdminError, CommittedOffset, EARLIEST, GroupDescription, KafkaAdmin, LATEST, OffsetAnswer,
    TopicPartition,
};

/// The largest page of groups (each costs an `OffsetFetch`).
const MAX_PAGE: u32 = 500;
/// The default page.
const DEFAULT_PAGE: u32 = 100;
/// Longest group id accepted in a path or page token.
const MAX_GROUP_ID: usize = 1024;

/// A group in a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// Group id.
    pub group_id: String,
    /// State as Kafka names it.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// The assignor, when the group has members.
    pub assignor: Option<String>,
    /// Number of members.
    pub members: usize,
    /// Total lag.
    pub total_lag: i64,
}

/// One partition of a described group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOffsetRow {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub committed: Option<i64>,
    /// End offset (high watermark).
    pub end: Option<i64>,
    /// `end - committed`, at least 0.
    pub lag: Option<i64>,
    /// Committed metadata.
    pub metadata: Option<String>,
    /// The member it is assigned to.
    pub member_id: Option<String>,
}

/// A described group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// What its coordinator says.
    pub description: GroupDescription,
    /// Committed or assigned partitions, sorted.
    pub offsets: Vec<GroupOffsetRow>,
    /// Sum of the rows' lag.
    pub total_lag: i64,
}

impl GroupView {
    /// The assignor in use, when there are members.
    pub fn assignor(&self) -> Option<String> {
        assignor(&self.description)
    }
}

/// Where a reset moves the offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    /// Log start.
    Earliest,
    /// High watermark.
    Latest,
    /// First record at or after `timestamp_ms`.
    Timestamp,
    /// `offset`, clamped.
    Offset,
}

/// A reset as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetInput {
    /// Where to.
    pub to: ResetKind,
    /// With [`ResetKind::Timestamp`].
    pub timestamp_ms: Option<i64>,
    /// With [`ResetKind::Offset`].
    pub offset: Option<i64>,
    /// Topics to reset entirely; `None`: the group's committed partitions.
    pub topics: Option<Vec<String>>,
    /// Compute only.
    pub dry_run: bool,
}

/// One partition of a reset: `(topic, partition, previous, new)`.
pub type ResetRow = (String, i32, Option<i64>, i64);

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn is_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_GROUP_ID && !id.chars().any(char::is_control)
}

fn check_group_id(field: &str, id: &str) -> Result<(), ServiceError> {
    if is_group_id(id) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be 1-{MAX_GROUP_ID} bytes without control characters"),
        ))
    }
}

fn assignor(description: &GroupDescription) -> Option<String> {
    (!description.members.is_empty() && !description.protocol.is_empty())
        .then(|| description.protocol.clone())
}

fn not_found(cluster: &str, group: &str) -> ServiceError {
    ServiceError::NotFound {
        what: format!("consumer group {group:?} in cluster {cluster:?}"),
    }
}

fn not_empty(group: &str, members: usize) -> ServiceError {
    ServiceError::Conflict {
        code: ErrorCode::GroupNotEmpty,
        message: format!(
            "consumer group {group:?} has {members} active member(s); stop its consumers first"
        ),
    }
}

/// Maps a Kafka failure of a group call to the service's terms.
fn group_error(cluster: &str, group: &str, error: AdminError) -> ServiceError {
    match error.kafka_name() {
        Some("GROUP_ID_NOT_FOUND") => not_found(cluster, group),
        // The admin commit of a group with members, and DeleteGroups of one.
        Some("NON_EMPTY_GROUP" | "UNKNOWN_MEMBER_ID" | "REBALANCE_IN_PROGRESS") => {
            ServiceError::Conflict {
                code: ErrorCode::GroupNotEmpty,
                message: format!(
                    "consumer group {group:?} has active members (Kafka: {error}); stop its consumers first"
                ),
            }
        }
        _ => admin_error(cluster, "", &[], error),
    }
}

/// Lag of a partition: `end - committed`, never below 0.
pub fn lag(committed: Option<i64>, end: Option<i64>) -> Option<i64> {
    match (committed, end) {
        (Some(c), Some(e)) => Some((e - c).max(0)),
        _ => None,
    }
}

/// The rows of a described group: every committed or assigned partition with its end offset
/// and lag, sorted; and the total lag.
pub fn offset_rows(
    description: &GroupDescription,
    committed: &[CommittedOffset],
    ends: &BTreeMap<TopicPartition, OffsetAnswer>,
) -> (Vec<GroupOffsetRow>, i64) {
    let mut rows: BTreeMap<TopicPartition, GroupOffsetRow> = BTreeMap::new();
    let row = |topic: &str, partition: i32| GroupOffsetRow {
        topic: topic.to_owned(),
        partition,
        committed: None,
        end: ends
            .get(&(topic.to_owned(), partition))
            .and_then(|a| a.clone().ok().flatten()),
        lag: None,
        metadata: None,
        member_id: None,
    };
    for c in committed {
        let r = rows
            .entry((c.topic.clone(), c.partition))
            .or_insert_with(|| row(&c.topic, c.partition));
        r.committed = Some(c.offset);
        r.metadata.clone_from(&c.metadata);
    }
    for member in &description.members {
        for (topic, partition) in &member.assignment {
            rows.entry((topic.clone(), *partition))
                .or_insert_with(|| row(topic, *partition))
                .member_id = Some(member.member_id.clone());
        }
    }
    let mut total = 0i64;
    let rows: Vec<GroupOffsetRow> = rows
        .into_values()
        .map(|mut r| {
            r.lag = lag(r.committed, r.end);
            total = total.saturating_add(r.lag.unwrap_or(0));
            r
        })
        .collect();
    (rows, total)
}

/// The new offset of each partition: `earliest`/`latest` are the partitions' bounds, `found`
/// what a timestamp lookup answered (`None`: after every record, so the end); an explicit
/// offset is clamped to the bounds.
///
/// # Errors
/// `kafka_error` naming a partition whose offsets could not be read.
pub fn reset_offsets(
    to: ResetKind,
    offset: Option<i64>,
    partitions: &[(TopicPartition, Option<i64>)],
    earliest: &BTreeMap<TopicPartition, OffsetAnswer>,
    latest: &BTreeMap<TopicPartition, OffsetAnswer>,
    found: &BTreeMap<TopicPartition, OffsetAnswer>,
) -> Result<Vec<ResetRow>, ServiceError> {
    let read = |map: &BTreeMap<TopicPartition, OffsetAnswer>, key: &TopicPartition| {
        match map.get(key) {
            Some(Ok(Some(offset))) => Ok(*offset),
            Some(Ok(None)) => Err("no offset".to_owned()),
            Some(Err(why)) => Err(why.clone()),
            None => Err("not asked".to_owned()),
        }
        .map_err(|why| ServiceError::Upstream {
            code: ErrorCode::KafkaError,
            message: format!(
                "cannot read the offsets of {}-{}: {why}; nothing was reset",
                key.0, key.1
            ),
        })
    };
    partitions
        .iter()
        .map(|(key, previous)| {
            let new = match to {
                ResetKind::Earliest => read(earliest, key)?,
                ResetKind::Latest => read(latest, key)?,
                ResetKind::Timestamp => match found.get(key) {
                    Some(Ok(None)) => read(latest, key)?,
                    _ => read(found, key)?,
                },
                ResetKind::Offset => {
                    let start = read(earliest, key)?;
                    let end = read(latest, key)?;
                    offset.unwrap_or(start).clamp(start, end.max(start))
                }
            };
            Ok((key.0.clone(), key.1, *previous, new))
        })
        .collect()
}

fn page_size(page: &PageRequest) -> Result<u32, ServiceError> {
    match page.page_size {
        None => Ok(DEFAULT_PAGE),
        Some(size) if (1..=MAX_PAGE).contains(&size) => Ok(size),
        Some(_) => Err(invalid(
            "page_size",
            format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}

impl Service {
    async fn group_admin(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<KafkaAdmin, ServiceError> {
        Ok(self
            .kafka_admin_of(workspace, cluster, "consumer groups")
            .await?
            .1)
    }

    /// The end offsets of `partitions` (by their leaders).
    async fn end_offsets(
        admin: &KafkaAdmin,
        cluster: &str,
        partitions: Vec<TopicPartition>,
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, OffsetAnswer>, ServiceError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        admin
            .list_offsets(&partitions, timestamp)
            .await
            .map_err(|e| admin_error(cluster, "", &[], e))
    }

    /// A page of a cluster's consumer groups by id, with their state, members and total lag.
    ///
    /// # Errors
    /// `invalid_field` (paging), `not_found`, `not_a_kafka_cluster`, `cluster_not_ready`,
    /// `cluster_unreachable`, `kafka_error`.
    pub async fn groups_list(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        page: PageRequest,
    ) -> Result<(Vec<GroupSummary>, Option<String>), ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let size = page_size(&page)? as usize;
        if let Some(token) = &page.page_token {
            check_group_id("page_token", token)?;
        }
        let admin = self.group_admin(workspace, cluster).await?;
        let fail = |e| admin_error(cluster, "", &[], e);
        let listed = admin.list_groups().await.map_err(fail)?;
        let mut ids: Vec<String> = listed
            .into_iter()
            .map(|g| g.group_id)
            .filter(|id| page.page_token.as_ref().is_none_or(|after| id > after))
            .take(size + 1)
            .collect();
        let next = if ids.len() > size {
            ids.truncate(size);
            ids.last().cloned()
        } else {
            None
        };
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        let described = admin.describe_groups(&ids).await.map_err(fail)?;
        let committed = admin.groups_offsets(&ids).await.map_err(fail)?;
        let partitions: BTreeSet<TopicPartition> = committed
            .values()
            .flatten()
            .map(|c| (c.topic.clone(), c.partition))
            .collect();
        let ends =
            Self::end_offsets(&admin, cluster, partitions.into_iter().collect(), LATEST).await?;
        let items = described
            .into_iter()
            .map(|description| {
                let offsets = committed
                    .get(&description.group_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let (_, total_lag) = offset_rows(&description, offsets, &ends);
                GroupSummary {
                    assignor: assignor(&description),
                    members: description.members.len(),
                    group_id: description.group_id,
                    state: description.state,
                    protocol_type: description.protocol_type,
                    total_lag,
                }
            })
            .collect();
        Ok((items, next))
    }

    /// Describes a group: the coordinator's description and the committed offsets; `not_found`
    /// when the cluster does not know it.
    async fn group_read(
        admin: &KafkaAdmin,
        cluster: &str,
        group: &str,
    ) -> Result<(GroupDescription, Vec<CommittedOffset>), ServiceError> {
        let fail = |e| group_error(cluster, group, e);
        let description = admin
            .describe_groups(&[group.to_owned()])
            .await
            .map_err(fail)?
            .pop()
            .ok_or_else(|| not_found(cluster, group))?;
        let committed = admin.group_offsets(group).await.map_err(fail)?;
        if description.state == "Dead" && committed.is_empty() && description.members.is_empty() {
            return Err(not_found(cluster, group));
        }
        Ok((description, committed))
    }

    /// One group: members with their assignments, and per partition the committed offset, the
    /// end offset and the lag.
    ///
    /// # Errors
    /// `invalid_field` (`group`), `not_found` (workspace, cluster or group), and as
    /// [`Service::groups_list`].
    pub async fn group_get(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        group: &str,
    ) -> Result<GroupView, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        check_group_id("group", group)?;
        let admin = self.group_admin(workspace, cluster).await?;
        let (description, committed) = Self::group_read(&admin, cluster, group).await?;
        let mut partitions: BTreeSet<TopicPartition> = committed
            .iter()
            .map(|c| (c.topic.clone(), c.partition))
            .collect();
        for member in &description.members {
            partitions.extend(member.assignment.iter().cloned());
        }
        let ends =
            Self::end_offsets(&admin, cluster, partitions.into_iter().collect(), LATEST).await?;
        let (offsets, total_lag) = offset_rows(&description, &committed, &ends);
        Ok(GroupView {
            description,
            offsets,
            total_lag,
        })
    }

    /// Moves a group's committed offsets (or, with `dry_run`, says where they would go); only
    /// while the group has no members.
    ///
    /// # Errors
    /// `invalid_field` (`group`, `timestamp_ms`, `offset`, `topics`), `group_not_empty`, and as
    /// [`Service::group_get`].
    pub async fn group_reset_offsets(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        group: &str,
        input: ResetInput,
    ) -> Result<Vec<ResetRow>, ServiceError> {
        let dry_run = input.dry_run;
        let result = self
            .group_reset_inner(caller, workspace, cluster, group, input)
            .await;
        if dry_run {
            return result;
        }
        self.audited(
            &caller.username,
            "consumer_group.reset_offsets",
            format!("workspaces/{workspace}/clusters/{cluster}/consumer-groups/{group}"),
            result,
        )
        .await
    }

    async fn group_reset_inner(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        group: &str,
        input: ResetInput,
    ) -> Result<Vec<ResetRow>, ServiceError> {
        self.authorize(caller, workspace, Role::Operator).await?;
        check_group_id("group", group)?;
        let timestamp = match input.to {
            ResetKind::Timestamp => match input.timestamp_ms {
                Some(ts) if ts >= 0 => ts,
                Some(_) => return Err(invalid("timestamp_ms", "must be at least 0")),
                None => return Err(invalid("timestamp_ms", "is required with to=timestamp")),
            },
            _ if input.timestamp_ms.is_some() => {
                return Err(invalid("timestamp_ms", "is only allowed with to=timestamp"));
            }
            _ => LATEST,
        };
        match (input.to, input.offset) {
            (ResetKind::Offset, Some(o)) if o < 0 => {
                return Err(invalid("offset", "must be at least 0"));
            }
            (ResetKind::Offset, None) => {
                return Err(invalid("offset", "is required with to=offset"));
            }
            (ResetKind::Offset, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(invalid("offset", "is only allowed with to=offset")),
        }
        if let Some(topics) = &input.topics {
            if topics.is_empty() {
                return Err(invalid("topics", "must name at least one topic when given"));
            }
            if let Some(bad) = topics.iter().find(|t| !super::topic::is_topic_name(t)) {
                return Err(invalid("topics", format!("{bad:?} is not a topic name")));
            }
        }
        let admin = self.group_admin(workspace, cluster).await?;
        let (description, committed) = Self::group_read(&admin, cluster, group).await?;
        if !description.members.is_empty() {
            return Err(not_empty(group, description.members.len()));
        }
        let previous: BTreeMap<TopicPartition, i64> = committed
            .iter()
            .map(|c| ((c.topic.clone(), c.partition), c.offset))
            .collect();
        let partitions: Vec<TopicPartition> = match &input.topics {
            None if previous.is_empty() => {
                return Err(invalid(
                    "topics",
                    "the group has no committed offsets: name the topics to reset",
                ));
            }
            None => previous.keys().cloned().collect(),
            Some(topics) => {
                let metadata = admin
                    .metadata()
                    .await
                    .map_err(|e| admin_error(cluster, "", &[], e))?;
                let mut all = Vec::new();
                for name in topics {
                    let topic = metadata
                        .topic(name)
                        .filter(|t| t.error.is_none())
                        .ok_or_else(|| {
                            invalid(
                                "topics",
                                format!("topic {name:?} does not exist in cluster {cluster:?}"),
                            )
                        })?;
                    all.extend(topic.partitions.iter().map(|p| (name.clone(), p.partition)));
                }
                all.sort();
                all.dedup();
                all
            }
        };
        let earliest = Self::end_offsets(&admin, cluster, partitions.clone(), EARLIEST).await?;
        let latest = Self::end_offsets(&admin, cluster, partitions.clone(), LATEST).await?;
        let found = if input.to == ResetKind::Timestamp {
            Self::end_offsets(&admin, cluster, partitions.clone(), timestamp).await?
        } else {
            BTreeMap::new()
        };
        let with_previous: Vec<(TopicPartition, Option<i64>)> = partitions
            .into_iter()
            .map(|key| {
                let before = previous.get(&key).copied();
                (key, before)
            })
            .collect();
        let rows = reset_offsets(
            input.to,
            input.offset,
            &with_previous,
            &earliest,
            &latest,
            &found,
        )?;
        if !input.dry_run {
            let commits: Vec<(String, i32, i64)> = rows
                .iter()
                .map(|(t, p, _, new)| (t.clone(), *p, *new))
                .collect();
            admin
                .commit_group_offsets(group, &commits)
                .await
                .map_err(|e| group_error(cluster, group, e))?;
        }
        Ok(rows)
    }

    /// Deletes a group without members (its committed offsets).
    ///
    /// # Errors
    /// `group_not_empty`, and as [`Service::group_get`].
    pub async fn group_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        group: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            check_group_id("group", group)?;
            let admin = self.group_admin(workspace, cluster).await?;
            let (description, _) = Self::group_read(&admin, cluster, group).await?;
            if !description.members.is_empty() {
                return Err(not_empty(group, description.members.len()));
            }
            admin
                .delete_group(group)
                .await
                .map_err(|e| group_error(cluster, group, e))
        }
        .await;
        self.audited(
            &caller.username,
            "consumer_group.delete",
            format!("workspaces/{workspace}/clusters/{cluster}/consumer-groups/{group}"),
            result,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_admin::GroupMember;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_owned(), partition)
    }

    fn answers(list: &[(&str, i32, OffsetAnswer)]) -> BTreeMap<TopicPartition, OffsetAnswer> {
        list.iter()
            .map(|(t, p, a)| (tp(t, *p), a.clone()))
            .collect()
    }

    fn committed(topic: &str, partition: i32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset,
            metadata: None,
        }
    }

    #[test]
    fn rows_join_committed_and_assigned_partitions_with_their_lag() {
        let description = GroupDescription {
            group_id: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![GroupMember {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                assignment: vec![tp("t", 0), tp("t", 1)],
            }],
            coordinator: 1,
        };
        let ends = answers(&[
            ("t", 0, Ok(Some(10))),
            ("t", 1, Ok(Some(5))),
            ("u", 0, Err("no leader".into())),
        ]);
        let (rows, total) = offset_rows(
            &description,
            &[committed("t", 0, 4), committed("u", 0, 3)],
            &ends,
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].committed, rows[0].end, rows[0].lag),
            (Some(4), Some(10), Some(6))
        );
        assert_eq!(rows[0].member_id.as_deref(), Some("m1"));
        // Assigned, nothing committed: no lag.
        assert_eq!((rows[1].committed, rows[1].lag), (None, None));
        // Committed, end unknown: no lag, counted 0.
        assert_eq!((rows[2].end, rows[2].lag), (None, None));
        assert_eq!(total, 6);
        assert_eq!(lag(Some(12), Some(10)), Some(0), "never negative");
    }

    #[test]
    fn resets_pick_bounds_clamp_offsets_and_fall_back_to_the_end() {
        let parts = vec![(tp("t", 0), Some(5)), (tp("t", 1), None)];
        let earliest = answers(&[("t", 0, Ok(Some(2))), ("t", 1, Ok(Some(0)))]);
        let latest = answers(&[("t", 0, Ok(Some(20))), ("t", 1, Ok(Some(7)))]);
        let found = answers(&[("t", 0, Ok(Some(9))), ("t", 1, Ok(None))]);
        let none = BTreeMap::new();
        let new = |to, offset, found: &BTreeMap<_, _>| {
            reset_offsets(to, offset, &parts, &earliest, &latest, found)
                .unwrap()
                .into_iter()
                .map(|r| r.3)
                .collect::<Vec<_>>()
        };
        assert_eq!(new(ResetKind::Earliest, None, &none), [2, 0]);
        assert_eq!(new(ResetKind::Latest, None, &none), [20, 7]);
        assert_eq!(new(ResetKind::Timestamp, None, &found), [9, 7]);
        assert_eq!(new(ResetKind::Offset, Some(1), &none), [2, 1]);
        assert_eq!(new(ResetKind::Offset, Some(100), &none), [20, 7]);
        let rows =
            reset_offsets(ResetKind::Latest, None, &parts, &earliest, &latest, &none).unwrap();
        assert_eq!(rows[0].2, Some(5), "the previous offset is reported");
        let broken = answers(&[("t", 0, Ok(Some(20))), ("t", 1, Err("no leader".into()))]);
        let error =
            reset_offsets(ResetKind::Latest, None, &parts, &earliest, &broken, &none).unwrap_err();
        assert_eq!(error.code(), ErrorCode::KafkaError);
        assert!(error.to_string().contains("t-1"), "{error}");
    }

    #[test]
    fn group_ids_refuse_empty_and_control_characters() {
        assert!(is_group_id("payments-consumer.v2"));
        assert!(!is_group_id(""));
        assert!(!is_group_id("a\nb"));
        assert!(!is_group_id(&"g".repeat(MAX_GROUP_ID + 1)));
    }
}
