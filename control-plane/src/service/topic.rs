//! Topics of Kafka clusters: create, list, describe, grow, reconfigure and delete, through the
//! Kafka admin protocol against the cluster's bootstrap servers.
//!
//! Topics are not desired state of the control plane: the cluster's metadata quorum owns them,
//! so nothing is stored in PostgreSQL except the audit events of the mutations. Every call is
//! synchronous: it answers once the cluster has accepted the change and its metadata shows it
//! (or after a short wait, see [`SETTLE`]).
//!
//! Input is checked here first with field names (Kafka's topic-name rules, partition and
//! replication-factor bounds, a copy of `hdi-broker`'s known topic configs), so that most
//! mistakes never reach the cluster; what the cluster refuses anyway is mapped from its Kafka
//! error by [`admin_error`].

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::node::PageRequest;
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::{AdminError, ClusterMetadata, KafkaAdmin, PartitionInfo, TopicInfo};
use crate::model::{ClusterRecord, ClusterState, Kind};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Longest topic name Kafka allows.
const MAX_NAME: usize = 249;
/// Deadline of each Kafka admin call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a mutation waits for the cluster's metadata to show its effect before answering.
const SETTLE: Duration = Duration::from_secs(10);
/// The largest page of topics.
const MAX_PAGE: u32 = 500;
/// The default page.
const DEFAULT_PAGE: u32 = 100;

/// The topic configs `hdi-broker` knows (`data-plane/broker/src/topic_config.rs`), copied so
/// that an unknown key is refused with its field name before it reaches the cluster; values are
/// checked by the broker (`INVALID_CONFIG`: the keys of Kafka features hdi does not implement,
/// such as tiered storage or compression levels, are accepted only at Kafka's default).
/// `tests/kafka_admin.rs` checks the copy against what a real broker describes.
pub const KNOWN_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "errors.deadletterqueue.group.enable",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    // hdi's own: fences the topic's producers (the link reconciler sets it on a link's source
    // during a switchover).
    "hdi.read.only",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.decompressed.message.bytes",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInput {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Configs set on the topic.
    pub configs: BTreeMap<String, String>,
}

/// A change of a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPatchInput {
    /// New partition count (only growth).
    pub partitions: Option<u32>,
    /// Configs to set (`Some`) or reset to their default (`None`).
    pub configs: Option<BTreeMap<String, Option<String>>>,
}

/// A topic's configs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicConfigs {
    /// Set on the topic.
    pub explicit: BTreeMap<String, String>,
    /// In force by default.
    pub defaults: BTreeMap<String, String>,
}

/// A topic as the cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicView {
    /// Name.
    pub name: String,
    /// Kafka topic id.
    pub topic_id: Option<uuid::Uuid>,
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
    /// Configs, for single-topic reads and mutations (`None` in lists).
    pub configs: Option<TopicConfigs>,
    /// `(log start, log end)` offsets by partition, for single-topic reads (empty otherwise;
    /// `None` where the leader did not answer).
    pub offsets: BTreeMap<i32, (Option<i64>, Option<i64>)>,
}

impl TopicView {
    fn from_info(info: &TopicInfo) -> TopicView {
        TopicView {
            name: info.name.clone(),
            topic_id: info.topic_id,
            partitions: info.partitions.clone(),
            configs: None,
            offsets: BTreeMap::new(),
        }
    }

    /// Replicas per partition (of partition 0).
    pub fn replication_factor(&self) -> u32 {
        self.partitions
            .first()
            .map_or(0, |p| u32::try_from(p.replicas.len()).unwrap_or(u32::MAX))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Whether `name` is a topic name Kafka accepts: 1-249 characters of `[a-zA-Z0-9._-]`, not `.`
/// or `..`.
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn check_topic_name(field: &str, name: &str) -> Result<(), ServiceError> {
    if is_topic_name(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1-249 characters of letters, digits, '.', '_' or '-', and not '.' or '..'",
        ))
    }
}

fn check_partitions(partitions: u32) -> Result<(), ServiceError> {
    if (1..=MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err(invalid(
            "partitions",
            format!("must be between 1 and {MAX_PARTITIONS}"),
        ))
    }
}

fn check_config_key(key: &str) -> Result<(), ServiceError> {
    if KNOWN_CONFIGS.contains(&key) {
        Ok(())
    } else {
        Err(invalid(
            &format!("configs.{key}"),
            format!("is not a known topic config ({})", KNOWN_CONFIGS.join(", ")),
        ))
    }
}

/// Checks a topic to create against the rules that need no cluster: name, partitions, a
/// replication factor of at least 1, known config keys.
///
/// # Errors
/// [`ServiceError::InvalidField`] naming the field.
pub fn validate_topic(input: &TopicInput) -> Result<(), ServiceError> {
    check_topic_name("name", &input.name)?;
    check_partitions(input.partitions)?;
    if input.replication_factor == 0 {
        return Err(invalid("replication_factor", "must be at least 1"));
    }
    for key in input.configs.keys() {
        check_config_key(key)?;
    }
    Ok(())
}

/// Checks the replication factor against the cluster's live brokers.
fn check_replication_factor(rf: u32, brokers: usize) -> Result<(), ServiceError> {
    if usize::try_from(rf).is_ok_and(|rf| rf <= brokers) {
        Ok(())
    } else {
        Err(invalid(
            "replication_factor",
            format!("must be at most the number of live brokers ({brokers})"),
        ))
    }
}

/// The field at fault for an `INVALID_CONFIG`: `configs.<key>` for the requested key the
/// broker's message names (it starts its messages with the key), else `configs`.
fn config_field(message: Option<&str>, keys: &[String]) -> String {
    let message = message.unwrap_or("");
    let named = keys
        .iter()
        .filter(|k| {
            message
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['=', ' ', ':']))
        })
        .chain(keys.iter().filter(|k| message.contains(k.as_str())))
        .next();
    match (named, keys) {
        (Some(key), _) => format!("configs.{key}"),
        (None, [only]) => format!("configs.{only}"),
        (None, _) => "configs".to_owned(),
    }
}

/// Maps a Kafka admin failure to the service's terms. `cluster` and `topic` name the resources
/// in messages; `config_keys` are the config keys of the request, to name the one at fault.
pub fn admin_error(
    cluster: &str,
    topic: &str,
    config_keys: &[String],
    error: AdminError,
) -> ServiceError {
    match error {
        AdminError::Connect { .. } | AdminError::Timeout { .. } => ServiceError::Unreachable {
            code: ErrorCode::ClusterUnreachable,
            message: format!("the Kafka cluster {cluster:?} cannot be reached: {error}"),
        },
        AdminError::Protocol(_) => ServiceError::Upstream {
            code: ErrorCode::KafkaError,
            message: format!("the Kafka cluster {cluster:?} answered badly: {error}"),
        },
        AdminError::Kafka {
            ref name,
            ref message,
            ..
        } => {
            let why = || match message {
                Some(text) => format!("was refused by Kafka ({name}): {text}"),
                None => format!("was refused by Kafka ({name})"),
            };
            match name.as_str() {
                "TOPIC_ALREADY_EXISTS" => ServiceError::Conflict {
                    code: ErrorCode::TopicExists,
                    message: format!("topic {topic:?} already exists in cluster {cluster:?}"),
                },
                "UNKNOWN_TOPIC_OR_PARTITION" | "UNKNOWN_TOPIC_ID" => ServiceError::NotFound {
                    what: format!("topic {topic:?} in cluster {cluster:?}"),
                },
                "INVALID_REPLICATION_FACTOR" => invalid("replication_factor", why()),
                "INVALID_PARTITIONS" => invalid("partitions", why()),
                "INVALID_TOPIC_EXCEPTION" => invalid("name", why()),
                "INVALID_CONFIG" => invalid(&config_field(message.as_deref(), config_keys), why()),
                "POLICY_VIOLATION" => ServiceError::Refused {
                    code: ErrorCode::PolicyViolation,
                    message: format!("topic {topic:?} {}", why()),
                },
                _ => ServiceError::Upstream {
                    code: ErrorCode::KafkaError,
                    message: format!("the Kafka cluster {cluster:?} refused: {error}"),
                },
            }
        }
    }
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

/// One page of `topics` (sorted by name) after the name in `page_token`; the token of the next
/// page is the last name of this one.
fn paginate(
    topics: &[TopicInfo],
    page: &PageRequest,
) -> Result<(Vec<TopicView>, Option<String>), ServiceError> {
    let size = page_size(page)? as usize;
    let after = match page.page_token.as_deref() {
        Some(token) if is_topic_name(token) => Some(token),
        Some(_) => {
            return Err(invalid(
                "page_token",
                "is not a token returned by a previous page",
            ));
        }
        None => None,
    };
    let mut items: Vec<TopicView> = topics
        .iter()
        .filter(|t| !t.internal && t.error.is_none())
        .filter(|t| after.is_none_or(|after| t.name.as_str() > after))
        .take(size + 1)
        .map(TopicView::from_info)
        .collect();
    let next = if items.len() > size {
        items.truncate(size);
        items.last().map(|t| t.name.clone())
    } else {
        None
    };
    Ok((items, next))
}

impl Service {
    /// An admin client for a Kafka cluster that is ready for topic calls.
    async fn topic_admin(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<KafkaAdmin, ServiceError> {
        Ok(self.kafka_admin_of(workspace, cluster, "topics").await?.1)
    }

    /// A Kafka cluster that is ready for admin calls about `what` (for messages), and an admin
    /// client for it (secured as the cluster is).
    pub(super) async fn kafka_admin_of(
        &self,
        workspace: &str,
        cluster: &str,
        what: &str,
    ) -> Result<(ClusterRecord, KafkaAdmin), ServiceError> {
        let view = self.cluster_get_unchecked(workspace, cluster).await?;
        let record = view.cluster;
        if record.kind != Kind::Kafka {
            return Err(ServiceError::Refused {
                code: ErrorCode::NotAKafkaCluster,
                message: format!(
                    "cluster {cluster:?} is a {} cluster; {what} live in Kafka clusters",
                    record.kind.as_str()
                ),
            });
        }
        let serving = matches!(record.state, ClusterState::Running | ClusterState::Resizing);
        let bootstrap = record
            .status
            .bootstrap_servers
            .as_deref()
            .filter(|b| !b.is_empty());
        match bootstrap {
            Some(bootstrap) if serving && !record.deleting => {
                let security = super::kafka_user::admin_security(&self.store, &record).await?;
                let admin = KafkaAdmin::new(
                    bootstrap.split(',').map(|s| s.trim().to_owned()).collect(),
                    ADMIN_TIMEOUT,
                )
                .with_security(security);
                Ok((record, admin))
            }
            _ => Err(ServiceError::Conflict {
                code: ErrorCode::ClusterNotReady,
                message: format!(
                    "cluster {cluster:?} is {}{}; {what} can be managed once it is Running",
                    record.state.as_str(),
                    if record.deleting {
                        " (being deleted)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }

    /// Metadata until `done` holds for it or [`SETTLE`] passes; the last metadata either way.
    async fn settle(
        admin: &KafkaAdmin,
        done: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<ClusterMetadata, AdminError> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let metadata = admin.metadata().await?;
            if done(&metadata) || Instant::now() >= deadline {
                return Ok(metadata);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn topic_describe(
        admin: &KafkaAdmin,
        info: &TopicInfo,
        cluster: &str,
    ) -> Result<TopicView, ServiceError> {
        let entries = admin
            .describe_topic_configs(&info.name)
            .await
            .map_err(|e| admin_error(cluster, &info.name, &[], e))?;
        let mut configs = TopicConfigs::default();
        for entry in entries {
            if entry.explicit {
                configs.explicit.insert(entry.name, entry.value);
            } else {
                configs.defaults.insert(entry.name, entry.value);
            }
        }
        let mut view = TopicView::from_info(info);
        view.configs = Some(configs);
        Ok(view)
    }

    /// A topic with its configs, described right after a mutation: waits (up to [`SETTLE`])
    /// for the metadata to satisfy `done`.
    async fn topic_after(
        admin: &KafkaAdmin,
        cluster: &str,
        topic: &str,
        done: impl Fn(&TopicInfo) -> bool,
    ) -> Result<TopicView, ServiceError> {
        let metadata = Self::settle(admin, |m| m.topic(topic).is_some_and(&done))
            .await
            .map_err(|e| admin_error(cluster, topic, &[], e))?;
        let info = metadata
            .topic(topic)
            .ok_or_else(|| ServiceError::Upstream {
                code: ErrorCode::KafkaError,
                message: format!(
                    "the Kafka cluster {cluster:?} accepted topic {topic:?} but its metadata does not show it after {SETTLE:?}"
                ),
            })?;
        Self::topic_describe(admin, info, cluster).await
    }

    /// Creates a topic and answers it as the cluster then describes it.
    ///
    /// # Errors
    /// `invalid_field` (`name`, `partitions`, `replication_factor`, `configs.<key>`),
    /// `not_found` (workspace or cluster), `not_a_kafka_cluster`, `cluster_not_ready`,
    /// `cluster_unreachable`, `topic_exists`, `policy_violation`, `kafka_error`.
    pub async fn topic_create(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        input: TopicInput,
    ) -> Result<TopicView, ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            validate_topic(&input)?;
            let admin = self.topic_admin(workspace, cluster).await?;
            let keys: Vec<String> = input.configs.keys().cloned().collect();
            let fail = |e| admin_error(cluster, &input.name, &keys, e);
            let metadata = admin.metadata().await.map_err(fail)?;
            if metadata.topic(&input.name).is_some() {
                return Err(fail(AdminError::Kafka {
                    api: "CreateTopics",
                    code: 36,
                    name: "TOPIC_ALREADY_EXISTS".to_owned(),
                    message: None,
                }));
            }
            check_replication_factor(input.replication_factor, metadata.brokers.len())?;
            // Both are bounded above by the checks (10000 and the broker count).
            let partitions = i32::try_from(input.partitions).unwrap_or(i32::MAX);
            let rf = i16::try_from(input.replication_factor).unwrap_or(i16::MAX);
            admin
                .create_topic(
                    &input.name,
                    partitions,
                    rf,
                    input.configs.clone().into_iter().collect(),
                )
                .await
                .map_err(fail)?;
            let wanted = input.partitions as usize;
            Self::topic_after(&admin, cluster, &input.name, |t| {
                t.partitions.len() == wanted && t.partitions.iter().all(|p| p.leader >= 0)
            })
            .await
        }
        .await;
        self.audited(
            &caller.username,
            "topic.create",
            format!(
                "workspaces/{workspace}/clusters/{cluster}/topics/{}",
                input.name
            ),
            result,
        )
        .await
    }

    /// A page of a cluster's topics by name (internal topics are left out), without configs.
    ///
    /// # Errors
    /// `invalid_field` (paging), `not_found`, `not_a_kafka_cluster`, `cluster_not_ready`,
    /// `cluster_unreachable`, `kafka_error`.
    pub async fn topics_list(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        page: PageRequest,
    ) -> Result<(Vec<TopicView>, Option<String>), ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        page_size(&page)?;
        let admin = self.topic_admin(workspace, cluster).await?;
        let metadata = admin
            .metadata()
            .await
            .map_err(|e| admin_error(cluster, "", &[], e))?;
        paginate(&metadata.topics, &page)
    }

    /// One topic with its partitions and configs.
    ///
    /// # Errors
    /// `invalid_field` (`topic`), `not_found`, `not_a_kafka_cluster`, `cluster_not_ready`,
    /// `cluster_unreachable`, `kafka_error`.
    pub async fn topic_get(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        topic: &str,
    ) -> Result<TopicView, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        check_topic_name("topic", topic)?;
        let admin = self.topic_admin(workspace, cluster).await?;
        let metadata = admin
            .metadata()
            .await
            .map_err(|e| admin_error(cluster, topic, &[], e))?;
        let info = metadata
            .topic(topic)
            .filter(|t| t.error.is_none())
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("topic {topic:?} in cluster {cluster:?}"),
            })?;
        let mut view = Self::topic_describe(&admin, info, cluster).await?;
        let partitions: Vec<(String, i32)> = info
            .partitions
            .iter()
            .map(|p| (info.name.clone(), p.partition))
            .collect();
        let (starts, ends) = tokio::join!(
            admin.list_offsets_with(&metadata, &partitions, crate::kafka_admin::EARLIEST),
            admin.list_offsets_with(&metadata, &partitions, crate::kafka_admin::LATEST),
        );
        for (topic_partition, start) in &starts {
            let end = ends
                .get(topic_partition)
                .cloned()
                .and_then(Result::ok)
                .flatten();
            view.offsets
                .insert(topic_partition.1, (start.clone().ok().flatten(), end));
        }
        Ok(view)
    }

    /// Adds partitions to a topic and/or sets or resets its configs.
    ///
    /// # Errors
    /// `invalid_field` (`partitions` — including any attempt to shrink —, `configs.<key>`),
    /// and as [`Service::topic_get`].
    pub async fn topic_patch(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        topic: &str,
        patch: TopicPatchInput,
    ) -> Result<TopicView, ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            check_topic_name("topic", topic)?;
            if patch.partitions.is_none() && patch.configs.as_ref().is_none_or(BTreeMap::is_empty) {
                return Err(invalid("partitions", "the patch changes nothing"));
            }
            if let Some(partitions) = patch.partitions {
                check_partitions(partitions)?;
            }
            let configs = patch.configs.clone().unwrap_or_default();
            for key in configs.keys() {
                check_config_key(key)?;
            }
            let keys: Vec<String> = configs.keys().cloned().collect();
            let fail = |e| admin_error(cluster, topic, &keys, e);
            let admin = self.topic_admin(workspace, cluster).await?;
            let metadata = admin.metadata().await.map_err(fail)?;
            let current = metadata
                .topic(topic)
                .filter(|t| t.error.is_none())
                .ok_or_else(|| ServiceError::NotFound {
                    what: format!("topic {topic:?} in cluster {cluster:?}"),
                })?;
            let now = current.partitions.len();
            let grow = match patch.partitions {
                Some(wanted) if (wanted as usize) < now => {
                    return Err(invalid(
                        "partitions",
                        format!("can only grow: topic {topic:?} has {now} partitions"),
                    ));
                }
                Some(wanted) if wanted as usize > now => Some(wanted),
                _ => None,
            };
            if !configs.is_empty() {
                let wanted = configs.clone();
                admin
                    .alter_topic_configs(topic, configs.into_iter().collect())
                    .await
                    .map_err(fail)?;
                // The change is applied by the controller, then by the broker that answers
                // DescribeConfigs: wait (up to SETTLE) until that broker shows it.
                let deadline = Instant::now() + SETTLE;
                loop {
                    let entries = admin.describe_topic_configs(topic).await.map_err(fail)?;
                    let applied = wanted.iter().all(|(key, value)| {
                        let entry = entries.iter().find(|e| &e.name == key);
                        match value {
                            Some(value) => entry.is_some_and(|e| e.explicit && &e.value == value),
                            None => !entry.is_some_and(|e| e.explicit),
                        }
                    });
                    if applied || Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if let Some(wanted) = grow {
                admin
                    .create_partitions(topic, i32::try_from(wanted).unwrap_or(i32::MAX))
                    .await
                    .map_err(fail)?;
            }
            let wanted = grow.map_or(now, |w| w as usize);
            Self::topic_after(&admin, cluster, topic, |t| {
                t.partitions.len() >= wanted && t.partitions.iter().all(|p| p.leader >= 0)
            })
            .await
        }
        .await;
        self.audited(
            &caller.username,
            "topic.update",
            format!("workspaces/{workspace}/clusters/{cluster}/topics/{topic}"),
            result,
        )
        .await
    }

    /// Deletes a topic and its data; answers once the cluster's metadata no longer shows it (or
    /// after [`SETTLE`]).
    ///
    /// # Errors
    /// As [`Service::topic_get`].
    pub async fn topic_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        topic: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            check_topic_name("topic", topic)?;
            let admin = self.topic_admin(workspace, cluster).await?;
            let fail = |e| admin_error(cluster, topic, &[], e);
            admin.delete_topic(topic).await.map_err(fail)?;
            Self::settle(&admin, |m| m.topic(topic).is_none())
                .await
                .map_err(fail)?;
            Ok(())
        }
        .await;
        self.audited(
            &caller.username,
            "topic.delete",
            format!("workspaces/{workspace}/clusters/{cluster}/topics/{topic}"),
            result,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(name: &str, message: Option<&str>) -> AdminError {
        AdminError::Kafka {
            api: "CreateTopics",
            code: 0,
            name: name.to_owned(),
            message: message.map(str::to_owned),
        }
    }

    fn field(error: &ServiceError) -> Option<&str> {
        match error {
            ServiceError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    fn input() -> TopicInput {
        TopicInput {
            name: "payments".into(),
            partitions: 6,
            replication_factor: 3,
            configs: BTreeMap::from([("retention.ms".into(), "3600000".into())]),
        }
    }

    #[test]
    fn topic_names_follow_kafka() {
        for ok in ["t", "a.b_c-D9", "..a", &"x".repeat(249)] {
            assert!(is_topic_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ä", &"x".repeat(250)] {
            assert!(!is_topic_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate_topic(&input()).is_ok());
        type Case = (fn(&mut TopicInput), &'static str);
        let cases: [Case; 6] = [
            (|i| i.name = "bad name".into(), "name"),
            (|i| i.name = "..".into(), "name"),
            (|i| i.partitions = 0, "partitions"),
            (|i| i.partitions = MAX_PARTITIONS + 1, "partitions"),
            (|i| i.replication_factor = 0, "replication_factor"),
            (
                |i| {
                    i.configs.insert("retention.minutes".into(), "1".into());
                },
                "configs.retention.minutes",
            ),
        ];
        for (change, expected) in cases {
            let mut topic = input();
            change(&mut topic);
            let error = validate_topic(&topic).expect_err(expected);
            assert_eq!(field(&error), Some(expected), "{error:?}");
        }
        assert!(check_replication_factor(3, 3).is_ok());
        let error = check_replication_factor(5, 3).expect_err("rf 5 on 3");
        assert_eq!(field(&error), Some("replication_factor"));
        assert!(error.to_string().contains("(3)"), "{error}");
    }

    #[test]
    fn kafka_errors_map_to_codes_and_fields() {
        let map = |error| admin_error("pay", "t", &["retention.ms".to_owned()], error);
        assert!(matches!(
            map(kafka("TOPIC_ALREADY_EXISTS", None)),
            ServiceError::Conflict {
                code: ErrorCode::TopicExists,
                ..
            }
        ));
        assert!(matches!(
            map(kafka("UNKNOWN_TOPIC_OR_PARTITION", None)),
            ServiceError::NotFound { .. }
        ));
        assert_eq!(
            field(&map(kafka("INVALID_REPLICATION_FACTOR", Some("rf 5 > 3")))),
            Some("replication_factor")
        );
        assert_eq!(
            field(&map(kafka("INVALID_PARTITIONS", None))),
            Some("partitions")
        );
        assert_eq!(
            field(&map(kafka(
                "INVALID_CONFIG",
                Some("retention.ms=\"soon\": must be an integer >= -1")
            ))),
            Some("configs.retention.ms")
        );
        assert!(matches!(
            map(kafka("POLICY_VIOLATION", None)),
            ServiceError::Refused {
                code: ErrorCode::PolicyViolation,
                ..
            }
        ));
        match map(kafka("REQUEST_TIMED_OUT", Some("slow"))) {
            ServiceError::Upstream { code, message } => {
                assert_eq!(code, ErrorCode::KafkaError);
                assert!(message.contains("REQUEST_TIMED_OUT"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map(AdminError::Connect {
                addrs: vec!["127.0.0.1:1".into()],
                reason: "refused".into()
            }),
            ServiceError::Unreachable {
                code: ErrorCode::ClusterUnreachable,
                ..
            }
        ));
        assert!(matches!(
            map(AdminError::Timeout {
                api: "Metadata",
                timeout: Duration::from_secs(1)
            }),
            ServiceError::Unreachable { .. }
        ));
    }

    #[test]
    fn invalid_config_names_the_key_in_the_message() {
        let keys = ["min.insync.replicas".to_owned(), "retention.ms".to_owned()];
        assert_eq!(
            config_field(
                Some("min.insync.replicas 4 is larger than the replication factor 3"),
                &keys
            ),
            "configs.min.insync.replicas"
        );
        assert_eq!(config_field(Some("no key here"), &keys), "configs");
        assert_eq!(
            config_field(None, &keys[1..]),
            "configs.retention.ms",
            "a single key is the one at fault"
        );
    }

    #[test]
    fn topics_are_paged_by_name() {
        let topic = |name: &str, internal: bool| TopicInfo {
            name: name.to_owned(),
            topic_id: None,
            internal,
            error: None,
            partitions: Vec::new(),
        };
        let topics = vec![
            topic("__internal", true),
            topic("a", false),
            topic("b", false),
            topic("c", false),
        ];
        let page = |size, token: Option<&str>| PageRequest {
            page_size: Some(size),
            page_token: token.map(str::to_owned),
        };
        let names = |items: &[TopicView]| items.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (items, next) = paginate(&topics, &page(2, None)).expect("page 1");
        assert_eq!(names(&items), ["a", "b"]);
        assert_eq!(next.as_deref(), Some("b"));
        let (items, next) = paginate(&topics, &page(2, Some("b"))).expect("page 2");
        assert_eq!(names(&items), ["c"]);
        assert_eq!(next, None);
        let error = paginate(&topics, &page(2, Some("a b"))).expect_err("bad token");
        assert_eq!(field(&error), Some("page_token"));
        let error = paginate(&topics, &page(0, None)).expect_err("bad size");
        assert_eq!(field(&error), Some("page_size"));
    }
}
