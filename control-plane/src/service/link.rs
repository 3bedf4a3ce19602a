//! Replication links (geo-replication pairs): the rules of `replication_links`, the link's
//! configuration on the target cluster as desired state, and what the target's brokers report.
//!
//! A link is defined on its **target** (the mirror, B) with the cluster-wide configs
//! `hdi.link.<name>.*` of B's brokers (see `data-plane/broker/src/mirror.rs`); the control plane
//! only speaks Kafka admin to B, and to the source (A) to make the link's read-only Kafka user.
//! The data path never touches the control plane. This module owns:
//! - validation and the CRUD and operation requests of `/v1/workspaces/{ws}/replication-links`
//!   (the operations themselves are driven by [`crate::reconcile::links`]);
//! - the pure mapping of a stored link to B's keys ([`desired_configs`], [`plan_configs`]) and
//!   to the ACLs its Kafka user gets on the source ([`link_bindings`], including the deny-write
//!   fence on the source while the link is stopped, unless it excludes topics);
//! - reading B's status: `hdi.link.<name>.status` (cluster-wide) and each broker's
//!   `hdi.link.<name>.partitions` ([`observe`]; tolerated absent).
//!
//! Placement: the source's and target's brokers must sit in disjoint sets of fault domains (the
//! nodes' `fault_domain`), checked when the link is created, so one failed domain never takes
//! both clusters of a pair. The link's password is made here, set on the source as a SCRAM
//! credential and given to B's brokers only (B's quorum keeps it; hdi stores it nowhere): when
//! B must be given it again, a new one is made.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hdi_kafka_client::scram::{Credential, Hash};

use super::node::PageRequest;
use super::page::page_size;
use super::topic::admin_error;
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::{AclBinding, AdminError, KafkaAdmin};
use crate::model::{
    ClusterRecord, ClusterState, Kind, LinkFilters, LinkState, MirrorPartition, OperationId,
    OperationKind, OperationRecord, ReplicationLinkRecord, WorkspaceRecord, link_user,
    parse_partitions,
};
use crate::store::{LinkTransition, NewLink, NewOperation, Store, StoreError};

/// How long a call to a cluster of a link may take from the API.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// PBKDF2 iterations of the link user's credential.
const SCRAM_ITERATIONS: u32 = 8192;
/// The most patterns of one filter.
const MAX_PATTERNS: usize = 100;

/// The topic config that fences a source topic's producers for a planned switchover
/// (`data-plane/broker`'s `topic_config::READ_ONLY`).
pub const READ_ONLY: &str = "hdi.read.only";

/// `hdi.link.<name>.` — the prefix of a link's keys.
pub fn key_prefix(name: &str) -> String {
    format!("hdi.link.{name}.")
}

/// What `PUT` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInput {
    /// The source cluster's name.
    pub source_cluster: String,
    /// The target cluster's name.
    pub target_cluster: String,
    /// Filters.
    pub filters: LinkFilters,
    /// Must be true.
    pub sync_configs: bool,
}

/// What the target's brokers say about a link, read live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStatusView {
    /// Whether the target answered.
    pub observed: bool,
    /// Why not, or what went wrong reading it.
    pub error: Option<String>,
    /// Whether the target's brokers hold the link.
    pub defined: bool,
    /// `hdi.link.<name>.state` on the target (`mirroring` when absent).
    pub data_plane_state: Option<String>,
    /// `hdi.link.<name>.status`: `ok` or a problem.
    pub data_plane_status: Option<String>,
    /// Whether any broker reported `hdi.link.<name>.partitions`.
    pub partitions_reported: bool,
    /// The mirror partitions, merged from every broker, sorted.
    pub partitions: Vec<MirrorPartition>,
    /// What the control plane sees wrong with the pair (fault domains shared since a resize).
    pub warnings: Vec<String>,
}

impl LinkStatusView {
    fn unobserved(error: String) -> LinkStatusView {
        LinkStatusView {
            error: Some(error),
            ..LinkStatusView::default()
        }
    }

    /// Whether every mirror partition reported `stopped` (and there is at least one).
    pub fn all_stopped(&self) -> bool {
        self.partitions_reported
            && !self.partitions.is_empty()
            && self.partitions.iter().all(|p| p.state == "stopped")
    }

    /// The mirror topics' names, sorted.
    pub fn topics(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self.partitions.iter().map(|p| p.topic.as_str()).collect();
        names.into_iter().map(str::to_owned).collect()
    }
}

/// How a link reaches its source: what B's brokers are given besides the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSecurity {
    /// `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
    /// SASL: the mechanism and the user.
    pub sasl: Option<(String, String)>,
    /// TLS: the source's CA certificates (PEM).
    pub ca_pem: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks a link name: what the brokers accept in `hdi.link.<name>.`, at most 64 characters.
fn validate_name(name: &str) -> Result<(), ServiceError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(invalid("name", "must be 1-64 letters, digits, '-' or '_'"));
    }
    Ok(())
}

/// Checks a filter: literal names or `prefix*`, names of Kafka's characters (`topic`) or
/// without commas and white space (groups).
fn validate_patterns(field: &str, patterns: &[String], topic: bool) -> Result<(), ServiceError> {
    if patterns.len() > MAX_PATTERNS {
        return Err(invalid(field, format!("at most {MAX_PATTERNS} patterns")));
    }
    for (index, pattern) in patterns.iter().enumerate() {
        let field = format!("{field}[{index}]");
        let stem = pattern.strip_suffix('*').unwrap_or(pattern);
        if pattern.is_empty() || pattern.len() > 249 {
            return Err(invalid(&field, "must be 1-249 characters"));
        }
        let bad = if topic {
            !stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        } else {
            stem.chars()
                .any(|c| c == ',' || c == '*' || c.is_whitespace() || c.is_control())
        };
        if bad {
            return Err(invalid(
                &field,
                if topic {
                    "must be a topic name (letters, digits, '.', '_', '-') or such a prefix followed by '*'"
                } else {
                    "must be a group name without ',', '*' or white space, or such a prefix followed by '*'"
                },
            ));
        }
    }
    Ok(())
}

/// Checks a link's filters.
pub(crate) fn validate_filters(filters: &LinkFilters) -> Result<(), ServiceError> {
    if filters.topics.is_empty() {
        return Err(invalid("topics", "must name at least one topic or pattern"));
    }
    validate_patterns("topics", &filters.topics, true)?;
    validate_patterns("topics_exclude", &filters.topics_exclude, true)?;
    validate_patterns("groups", &filters.groups, false)?;
    validate_patterns("groups_exclude", &filters.groups_exclude, false)?;
    Ok(())
}

/// The SCRAM hash of a cluster's first SCRAM mechanism, with its Kafka name.
fn scram_of(cluster: &ClusterRecord) -> Option<(Hash, &'static str)> {
    super::kafka_user::scram_hash(cluster).map(|hash| (hash, hash.name()))
}

/// Whether a link can read `source` (PLAINTEXT, TLS, or SASL with a SCRAM mechanism), and the
/// Kafka user it needs there (`None`: no SASL).
///
/// # Errors
/// `link_source_unsupported`: SASL without SCRAM (the link cannot log in).
pub(crate) fn source_user_for(
    name: &str,
    source: &ClusterRecord,
) -> Result<Option<String>, ServiceError> {
    let Some(security) = &source.spec.security else {
        return Ok(None);
    };
    if security.mechanisms.is_empty() {
        return Ok(None);
    }
    if scram_of(source).is_none() {
        return Err(ServiceError::Refused {
            code: ErrorCode::LinkSourceUnsupported,
            message: format!(
                "cluster {:?} authenticates clients with {} only: a link logs in with SCRAM",
                source.name,
                security.mechanisms.join(", ")
            ),
        });
    }
    Ok(Some(link_user(name)))
}

/// What B's brokers need to reach `source` (`None`: PLAINTEXT).
///
/// # Errors
/// The store, or a secured source without its secrets yet (`cluster_not_ready`).
pub(crate) async fn link_security(
    store: &Store,
    source: &ClusterRecord,
    user: Option<&str>,
) -> Result<Option<LinkSecurity>, ServiceError> {
    let Some(security) = &source.spec.security else {
        return Ok(None);
    };
    let protocol = security.protocol();
    if protocol == "PLAINTEXT" {
        return Ok(None);
    }
    let ca_pem = if security.tls {
        let secrets = store
            .kafka_client_secrets(source.id)
            .await?
            .ok_or_else(|| ServiceError::Conflict {
                code: ErrorCode::ClusterNotReady,
                message: format!("cluster {:?} has no Kafka CA yet", source.name),
            })?;
        Some(secrets.ca_trust)
    } else {
        None
    };
    let sasl = match (user, scram_of(source)) {
        (Some(user), Some((_, mechanism))) if !security.mechanisms.is_empty() => {
            Some((mechanism.to_owned(), user.to_owned()))
        }
        _ => None,
    };
    Ok(Some(LinkSecurity {
        protocol: protocol.to_owned(),
        sasl,
        ca_pem,
    }))
}

/// The keys a link's target holds for `link` (never the password), reaching the source at
/// `bootstrap` with `security`; the state key only when the state names one. Never `reverse`:
/// that is a one-time instruction the reverse operation adds, and the reconciler removes once
/// the old source has adopted its topics (left in place, a later promote of the reversed link
/// would have its stopped topics adopted again).
pub fn desired_configs(
    link: &ReplicationLinkRecord,
    bootstrap: &str,
    security: Option<&LinkSecurity>,
) -> BTreeMap<String, String> {
    let prefix = key_prefix(&link.name);
    let mut keys = BTreeMap::new();
    // The brokers keep values trimmed.
    let mut put = |field: &str, value: String| {
        let value = value.trim();
        if !value.is_empty() {
            keys.insert(format!("{prefix}{field}"), value.to_owned());
        }
    };
    put("bootstrap.servers", bootstrap.to_owned());
    put("topics", link.filters.topics.join(","));
    put("topics.exclude", link.filters.topics_exclude.join(","));
    put("groups", link.filters.groups.join(","));
    put("groups.exclude", link.filters.groups_exclude.join(","));
    if let Some(security) = security {
        put("security.protocol", security.protocol.clone());
        if let Some((mechanism, user)) = &security.sasl {
            put("sasl.mechanism", mechanism.clone());
            put("sasl.username", user.clone());
        }
        if let Some(ca) = &security.ca_pem {
            put("ssl.ca.pem", ca.clone());
        }
    }
    if let Some(state) = link.state.data_plane() {
        put("state", state.to_owned());
    }
    keys
}

/// The link keys the control plane sets (the others are the brokers' read-only reports, the
/// password and the state).
const MANAGED_FIELDS: &[&str] = &[
    "bootstrap.servers",
    "topics",
    "topics.exclude",
    "groups",
    "groups.exclude",
    "reverse",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "ssl.ca.pem",
];

/// What to change on the target so that link `name`'s keys `actual` (as DescribeConfigs shows
/// them: the password `None`, the state absent while mirroring) become `desired`, and whether
/// the link needs a (new) password: it is not defined yet, or it is to log in as another user.
/// A state key is compared as `mirroring` when absent; the password is removed with SASL.
pub fn plan_configs(
    name: &str,
    desired: &BTreeMap<String, String>,
    actual: &BTreeMap<String, Option<String>>,
) -> (Vec<(String, Option<String>)>, bool) {
    let prefix = key_prefix(name);
    let key = |field: &str| format!("{prefix}{field}");
    let defined = actual.contains_key(&key("bootstrap.servers"));
    let mut changes = Vec::new();
    for (k, v) in desired {
        let have = actual.get(k).cloned().flatten();
        let same = if *k == key("state") {
            have.as_deref().unwrap_or("mirroring") == v
        } else {
            have.as_deref() == Some(v.as_str())
        };
        if !same {
            changes.push((k.clone(), Some(v.clone())));
        }
    }
    for field in MANAGED_FIELDS {
        let k = key(field);
        if actual.contains_key(&k) && !desired.contains_key(&k) {
            changes.push((k, None));
        }
    }
    let user = key("sasl.username");
    let wants_sasl = desired.contains_key(&user);
    if !wants_sasl && actual.contains_key(&key("sasl.password")) {
        changes.push((key("sasl.password"), None));
    }
    let needs_password = wants_sasl
        && (!defined
            || actual.get(&user).cloned().flatten().as_ref() != desired.get(&user)
            || !actual.contains_key(&key("sasl.password")));
    (changes, needs_password)
}

/// ACL bindings of the links that read `cluster` (or, while reversing, are about to), in Kafka's
/// numbers: their users may Describe and Read the links' topics (literal names, or prefixed for
/// `prefix*`) and DescribeConfigs on them, and Describe and Read their groups; exclusions are
/// denials. While a link is stopped (promoted, failing or failed over, reversing) its source's
/// topics are fenced: Write is denied to everyone (`User:*`) on them, so the old primary takes
/// no writes the new one would not have.
pub fn link_bindings(
    links: &[ReplicationLinkRecord],
    cluster: crate::model::ClusterId,
) -> BTreeSet<AclBinding> {
    let mut out = BTreeSet::new();
    let binding =
        |principal: &str, resource_type: i8, pattern: &str, operation: i8, allow: bool| {
            let (name, pattern_type) = match pattern.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() => (prefix.to_owned(), 4),
                _ => (pattern.to_owned(), 3),
            };
            AclBinding {
                resource_type,
                resource_name: name,
                pattern_type,
                principal: principal.to_owned(),
                host: "*".to_owned(),
                operation,
                permission: if allow { 3 } else { 2 },
            }
        };
    for link in links {
        let reads = link.source_cluster_id == cluster
            || (link.state == LinkState::Reversing && link.target_cluster_id == cluster);
        if reads {
            let principal = format!("User:{}", link_user(&link.name));
            for pattern in &link.filters.topics {
                for op in [3, 8, 10] {
                    out.insert(binding(&principal, 2, pattern, op, true));
                }
            }
            for pattern in &link.filters.topics_exclude {
                out.insert(binding(&principal, 2, pattern, 3, false));
            }
            for pattern in &link.filters.groups {
                for op in [3, 8] {
                    out.insert(binding(&principal, 3, pattern, op, true));
                }
            }
            for pattern in &link.filters.groups_exclude {
                for op in [3, 8] {
                    out.insert(binding(&principal, 3, pattern, op, false));
                }
            }
        }
        // A deny always beats an allow, so a deny of the include patterns would also fence
        // the excluded topics: with exclusions, the fence is `hdi.read.only` alone (set on the
        // mirrored topics only).
        if link.source_cluster_id == cluster
            && link.state.stopped()
            && link.filters.topics_exclude.is_empty()
        {
            for pattern in &link.filters.topics {
                out.insert(binding("User:*", 2, pattern, 4, false));
            }
        }
    }
    out
}

/// An admin client of a serving Kafka cluster, as the control plane's admin user.
///
/// # Errors
/// `cluster_not_ready` (no bootstrap servers, being deleted), or its secrets missing.
pub(crate) async fn cluster_admin(
    store: &Store,
    cluster: &ClusterRecord,
    timeout: Duration,
) -> Result<KafkaAdmin, ServiceError> {
    let bootstrap = cluster
        .status
        .bootstrap_servers
        .as_deref()
        .filter(|b| !b.is_empty() && !cluster.deleting)
        .ok_or_else(|| ServiceError::Conflict {
            code: ErrorCode::ClusterNotReady,
            message: format!(
                "cluster {:?} has no brokers serving yet (it is {})",
                cluster.name,
                cluster.state.as_str()
            ),
        })?;
    let security = super::kafka_user::admin_security(store, cluster).await?;
    Ok(KafkaAdmin::new(
        bootstrap.split(',').map(|s| s.trim().to_owned()).collect(),
        timeout,
    )
    .with_security(security))
}

/// Link `name`'s keys on a cluster (`key -> value`, sensitive values `None`).
///
/// # Errors
/// The cluster's answer.
pub(crate) async fn link_keys(
    admin: &KafkaAdmin,
    name: &str,
) -> Result<BTreeMap<String, Option<String>>, AdminError> {
    let prefix = key_prefix(name);
    Ok(admin
        .describe_broker_configs("", None)
        .await?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect())
}

/// What the cluster behind `admin` reports about link `name`: its cluster-wide keys and every
/// broker's mirror partitions (brokers that do not report them yet are left out).
pub(crate) async fn observe(admin: &KafkaAdmin, name: &str) -> LinkStatusView {
    let prefix = key_prefix(name);
    let keys = match link_keys(admin, name).await {
        Ok(keys) => keys,
        Err(error) => return LinkStatusView::unobserved(error.to_string()),
    };
    let get = |field: &str| keys.get(&format!("{prefix}{field}")).cloned().flatten();
    let mut view = LinkStatusView {
        observed: true,
        defined: keys.contains_key(&format!("{prefix}bootstrap.servers")),
        data_plane_state: Some(get("state").unwrap_or_else(|| "mirroring".to_owned())),
        data_plane_status: get("status"),
        ..LinkStatusView::default()
    };
    if !view.defined {
        return view;
    }
    let metadata = match admin.metadata().await {
        Ok(metadata) => metadata,
        Err(error) => {
            view.error = Some(format!("cannot list the brokers: {error}"));
            return view;
        }
    };
    let key = format!("{prefix}partitions");
    let mut unreadable = Vec::new();
    for broker in &metadata.brokers {
        let configs = admin
            .describe_broker_configs(&broker.id.to_string(), Some(&broker.address()))
            .await;
        match configs {
            Ok(configs) => {
                let value = configs
                    .into_iter()
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v);
                if let Some(value) = value {
                    match parse_partitions(&value) {
                        Some(partitions) => {
                            view.partitions_reported = true;
                            view.partitions.extend(partitions);
                        }
                        None => unreadable.push(format!("broker {}: unreadable report", broker.id)),
                    }
                }
            }
            Err(error) => unreadable.push(format!("broker {}: {error}", broker.id)),
        }
    }
    view.partitions
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    view.partitions
        .dedup_by(|a, b| a.topic == b.topic && a.partition == b.partition);
    if !unreadable.is_empty() {
        view.error = Some(unreadable.join("; "));
    }
    view
}

/// Gives the link's user on `source` a new password (returned: it goes to the target only) and
/// its ACLs.
///
/// # Errors
/// The source refusing or not answering.
pub(crate) async fn new_link_password(
    store: &Store,
    source: &ClusterRecord,
    user: &str,
) -> Result<String, ServiceError> {
    let (hash, _) = scram_of(source).ok_or_else(|| ServiceError::Refused {
        code: ErrorCode::LinkSourceUnsupported,
        message: format!("cluster {:?} has no SCRAM authentication", source.name),
    })?;
    let failed = |e: String| ServiceError::Upstream {
        code: ErrorCode::Internal,
        message: format!("cannot make a password: {e}"),
    };
    let password = crate::auth::new_kafka_password().map_err(|e| failed(e.to_string()))?;
    let credential = Credential::new(hash, &password, SCRAM_ITERATIONS).map_err(failed)?;
    let admin = cluster_admin(store, source, ADMIN_TIMEOUT * 2).await?;
    admin
        .upsert_scram(user, &credential)
        .await
        .map_err(|e| admin_error(&source.name, user, &[], e))?;
    super::kafka_user::sync_acls(store, &admin, source).await?;
    tracing::info!(cluster = %source.name, user, "replication link's Kafka user given a password");
    Ok(password)
}

/// Removes the link user's credential from `cluster` (best effort: a user left behind has no
/// ACLs once the link is gone, and its password was never stored).
pub(crate) async fn drop_link_user(store: &Store, cluster: &ClusterRecord, user: &str) {
    let Some((hash, _)) = scram_of(cluster) else {
        return;
    };
    let Ok(admin) = cluster_admin(store, cluster, ADMIN_TIMEOUT).await else {
        return;
    };
    if let Err(error) = admin.delete_scram(user, hash.kafka_type()).await {
        tracing::warn!(cluster = %cluster.name, user, %error, "cannot remove a link's Kafka user");
    }
    if let Err(error) = super::kafka_user::sync_acls(store, &admin, cluster).await {
        tracing::warn!(cluster = %cluster.name, %error, "Kafka ACL sync failed");
    }
}

/// Takes a link's fence off its source (best effort; a deleted link, or a promote that failed
/// before its target was told to promote): `hdi.read.only` off the topics matching its filters
/// (the deny-write ACLs go at the next ACL sync, once the link is gone or mirroring again).
pub(crate) async fn unfence(store: &Store, source: &ClusterRecord, link: &ReplicationLinkRecord) {
    let Ok(admin) = cluster_admin(store, source, ADMIN_TIMEOUT).await else {
        return;
    };
    let Ok(metadata) = admin.metadata().await else {
        return;
    };
    for topic in metadata
        .topics
        .iter()
        .filter(|t| !t.internal && link.filters.mirrors_topic(&t.name))
    {
        let reset = vec![(READ_ONLY.to_owned(), None)];
        if let Err(error) = admin.alter_topic_configs(&topic.name, reset).await {
            tracing::warn!(cluster = %source.name, topic = %topic.name, %error, "cannot take a link's fence off");
        }
    }
}

fn link_not_found(ws: &str, name: &str) -> ServiceError {
    ServiceError::NotFound {
        what: format!("replication link {name:?} in workspace {ws:?}"),
    }
}

fn stopped_refusal(link: &ReplicationLinkRecord, what: &str) -> ServiceError {
    ServiceError::Conflict {
        code: ErrorCode::LinkStopped,
        message: format!(
            "replication link {:?} is {}: its mirror topics stopped for good, so it cannot {what} \
             (reverse it to mirror the other way, or delete it)",
            link.name,
            link.state.as_str()
        ),
    }
}

impl Service {
    /// A Kafka cluster of the workspace for a link, by name.
    async fn link_cluster(
        &self,
        ws: &WorkspaceRecord,
        name: &str,
        field: &str,
    ) -> Result<ClusterRecord, ServiceError> {
        let cluster =
            self.store
                .cluster_get(ws.id, name)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    what: format!("cluster {name:?} ({field}) in workspace {:?}", ws.name),
                })?;
        if cluster.kind != Kind::Kafka {
            return Err(ServiceError::Refused {
                code: ErrorCode::NotAKafkaCluster,
                message: format!(
                    "{field} {name:?} is a {} cluster; links join Kafka clusters",
                    cluster.kind.as_str()
                ),
            });
        }
        if cluster.deleting {
            return Err(ServiceError::Conflict {
                code: ErrorCode::ClusterDeleting,
                message: format!("{field} {name:?} is being deleted"),
            });
        }
        Ok(cluster)
    }

    /// Refuses a pair whose brokers share a fault domain (or are not placed yet).
    async fn check_fault_domains(
        &self,
        source: &ClusterRecord,
        target: &ClusterRecord,
    ) -> Result<(), ServiceError> {
        let a = self.store.cluster_fault_domains(source.id).await?;
        let b = self.store.cluster_fault_domains(target.id).await?;
        for (cluster, domains) in [(source, &a), (target, &b)] {
            if domains.is_empty() {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::ClusterNotReady,
                    message: format!(
                        "cluster {:?} has no brokers placed yet: a link needs to know both clusters' fault domains",
                        cluster.name
                    ),
                });
            }
        }
        let shared: Vec<String> = a
            .iter()
            .filter(|d| b.contains(d))
            .map(u32::to_string)
            .collect();
        if !shared.is_empty() {
            return Err(ServiceError::Conflict {
                code: ErrorCode::LinkFaultDomainsOverlap,
                message: format!(
                    "clusters {:?} and {:?} both have brokers in fault domain(s) {}: a replication pair must not share a fault domain, so one failure cannot take both",
                    source.name,
                    target.name,
                    shared.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Creates a link, or replaces the filters of an existing one; whether it was created.
    ///
    /// # Errors
    /// `invalid_field`, `not_found`, `forbidden`, `not_a_kafka_cluster`, `cluster_deleting`,
    /// `cluster_not_ready`, `link_fault_domains_overlap`, `link_source_unsupported`,
    /// `link_stopped`, `operation_in_progress`.
    pub async fn link_put(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        input: LinkInput,
    ) -> Result<(ReplicationLinkRecord, bool), ServiceError> {
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Operator).await?;
            validate_name(name)?;
            validate_filters(&input.filters)?;
            if !input.sync_configs {
                return Err(invalid(
                    "sync_configs",
                    "mirror topics always follow their source's configs; false is not supported",
                ));
            }
            if input.source_cluster == input.target_cluster {
                return Err(invalid(
                    "target_cluster",
                    "must be another cluster than source_cluster",
                ));
            }
            let source = self
                .link_cluster(&ws, &input.source_cluster, "source_cluster")
                .await?;
            let target = self
                .link_cluster(&ws, &input.target_cluster, "target_cluster")
                .await?;
            if let Some(existing) = self.store.link_get(ws.id, name).await? {
                if existing.source_cluster_id != source.id
                    || existing.target_cluster_id != target.id
                {
                    return Err(invalid(
                        "source_cluster",
                        format!(
                            "link {name:?} joins {:?} to {:?}: its clusters cannot change (delete it and create another)",
                            existing.source_cluster, existing.target_cluster
                        ),
                    ));
                }
                if existing.filters == input.filters {
                    return Ok((existing, false));
                }
                if existing.state.stopped() {
                    return Err(stopped_refusal(&existing, "change its filters"));
                }
                if let Some(op) = self.store.link_operation_running(existing.id).await? {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::OperationInProgress,
                        message: format!("link {name:?} has operation {} running", op.id),
                    });
                }
                self.store
                    .link_update_filters(existing.id, &input.filters)
                    .await?;
                let link = self
                    .store
                    .link_get_by_id(existing.id)
                    .await?
                    .ok_or_else(|| link_not_found(workspace, name))?;
                return Ok((link, false));
            }
            let user = source_user_for(name, &source)?;
            self.check_fault_domains(&source, &target).await?;
            let new = NewLink {
                workspace_id: ws.id,
                name,
                source: source.id,
                target: target.id,
                filters: &input.filters,
                source_user: user.as_deref(),
                created_by: &caller.username,
            };
            match self.store.link_insert(&new).await {
                Ok(link) => Ok((link, true)),
                // A concurrent create of the same name: the other one won.
                Err(StoreError::Conflict { .. }) => Err(ServiceError::Conflict {
                    code: ErrorCode::ConcurrentChange,
                    message: format!("link {name:?} was created concurrently; retry"),
                }),
                Err(other) => Err(other.into()),
            }
        }
        .await;
        self.audited(
            &caller.username,
            "replication_link.put",
            format!("workspaces/{workspace}/replication-links/{name}"),
            result,
        )
        .await
    }

    /// A page of the workspace's links by name.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `invalid_field`.
    pub async fn links_list(
        &self,
        caller: &Identity,
        workspace: &str,
        page: PageRequest,
    ) -> Result<(Vec<ReplicationLinkRecord>, Option<String>), ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let size = page_size(&page)?;
        let items = self
            .store
            .links_list(ws.id, page.page_token.as_deref(), size + 1)
            .await?;
        Ok(super::page::paginate(items, size, |l| l.name.clone()))
    }

    async fn link_record(
        &self,
        ws: &WorkspaceRecord,
        name: &str,
    ) -> Result<ReplicationLinkRecord, ServiceError> {
        self.store
            .link_get(ws.id, name)
            .await?
            .ok_or_else(|| link_not_found(&ws.name, name))
    }

    /// One link with its status as the target reports it now, and its running operation.
    ///
    /// # Errors
    /// `not_found`, `forbidden`.
    pub async fn link_get(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
    ) -> Result<
        (
            ReplicationLinkRecord,
            LinkStatusView,
            Option<OperationRecord>,
        ),
        ServiceError,
    > {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let link = self.link_record(&ws, name).await?;
        let mut status = self.link_observe(&link).await?;
        let a = self
            .store
            .cluster_fault_domains(link.source_cluster_id)
            .await?;
        let b = self
            .store
            .cluster_fault_domains(link.target_cluster_id)
            .await?;
        let shared: Vec<String> = a
            .iter()
            .filter(|d| b.contains(d))
            .map(u32::to_string)
            .collect();
        if !shared.is_empty() {
            status.warnings.push(format!(
                "{:?} and {:?} now both have brokers in fault domain(s) {}: one failure there can take both",
                link.source_cluster,
                link.target_cluster,
                shared.join(", ")
            ));
        }
        let op = self.store.link_operation_running(link.id).await?;
        Ok((link, status, op))
    }

    async fn link_observe(
        &self,
        link: &ReplicationLinkRecord,
    ) -> Result<LinkStatusView, ServiceError> {
        let Some(target) = self.store.cluster_get_by_id(link.target_cluster_id).await? else {
            return Ok(LinkStatusView::unobserved(
                "the target cluster is gone".into(),
            ));
        };
        if !matches!(target.state, ClusterState::Running | ClusterState::Resizing) {
            return Ok(LinkStatusView::unobserved(format!(
                "the target cluster is {}",
                target.state.as_str()
            )));
        }
        match cluster_admin(&self.store, &target, ADMIN_TIMEOUT).await {
            Ok(admin) => Ok(observe(&admin, &link.name).await),
            Err(error) => Ok(LinkStatusView::unobserved(error.to_string())),
        }
    }

    /// Starts an operation on a link: pause, resume, promote, failover or reverse.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `operation_in_progress`, `link_stopped`, `link_paused`,
    /// `link_not_paused`, `link_not_stopped`.
    pub async fn link_operation(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        kind: OperationKind,
    ) -> Result<OperationRecord, ServiceError> {
        let action = match kind {
            OperationKind::LinkPause => "pause",
            OperationKind::LinkResume => "resume",
            OperationKind::LinkPromote => "promote",
            OperationKind::LinkFailover => "failover",
            _ => "reverse",
        };
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Operator).await?;
            let link = self.link_record(&ws, name).await?;
            let (from, to): (&[LinkState], LinkState) = match kind {
                OperationKind::LinkPause => (&[LinkState::Mirroring], LinkState::Paused),
                OperationKind::LinkResume => (&[LinkState::Paused], LinkState::Mirroring),
                // A stopping state whose operation failed (timed out) may be asked again.
                OperationKind::LinkPromote => (
                    &[LinkState::Mirroring, LinkState::Promoting],
                    LinkState::Promoting,
                ),
                OperationKind::LinkFailover => (
                    &[
                        LinkState::Mirroring,
                        LinkState::Promoting,
                        LinkState::Promoted,
                        LinkState::FailingOver,
                    ],
                    LinkState::FailingOver,
                ),
                _ => (
                    &[
                        LinkState::Promoted,
                        LinkState::FailedOver,
                        LinkState::Reversing,
                    ],
                    LinkState::Reversing,
                ),
            };
            let op = NewOperation {
                id: OperationId::new_v4(),
                kind,
                created_by: caller.username.clone(),
            };
            match self.store.link_transition(link.id, from, to, &op).await? {
                LinkTransition::Started(op) => Ok(*op),
                LinkTransition::Gone => Err(link_not_found(workspace, name)),
                LinkTransition::Busy(op) => Err(ServiceError::Conflict {
                    code: ErrorCode::OperationInProgress,
                    message: format!(
                        "link {name:?} has operation {} ({}) running; wait for it (GET /v1/operations/{})",
                        op.id,
                        op.kind.as_str(),
                        op.id
                    ),
                }),
                LinkTransition::WrongState(state) => Err(state_refusal(name, state, kind, action)),
            }
        }
        .await;
        self.audited(
            &caller.username,
            &format!("replication_link.{action}"),
            format!("workspaces/{workspace}/replication-links/{name}"),
            result,
        )
        .await
    }

    /// Deletes a link: from the target's brokers (refused by them while it still feeds mirror
    /// topics: `link_has_mirrors`), then the row; from the source its Kafka user, and the fence
    /// of a promoted or failed-over link (`hdi.read.only` and the deny-write ACLs).
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `operation_in_progress`, `link_has_mirrors`,
    /// `cluster_unreachable`, `kafka_error`.
    pub async fn link_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Operator).await?;
            let link = self.link_record(&ws, name).await?;
            if let Some(op) = self.store.link_operation_running(link.id).await? {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::OperationInProgress,
                    message: format!(
                        "link {name:?} has operation {} ({}) running: delete it once that ended",
                        op.id,
                        op.kind.as_str()
                    ),
                });
            }
            let target = self.store.cluster_get_by_id(link.target_cluster_id).await?;
            let served = target
                .as_ref()
                .and_then(|t| t.status.bootstrap_servers.as_deref())
                .is_some_and(|b| !b.is_empty());
            if let (Some(target), true) = (&target, served) {
                let admin = cluster_admin(&self.store, target, ADMIN_TIMEOUT).await?;
                let key = format!("{}bootstrap.servers", key_prefix(name));
                let keys = link_keys(&admin, name)
                    .await
                    .map_err(|e| admin_error(&target.name, "", &[], e))?;
                if keys.contains_key(&key) {
                    match admin.alter_cluster_configs(vec![(key, None)]).await {
                        Ok(()) => {}
                        Err(AdminError::Kafka { name: kafka, message, .. })
                            if kafka == "POLICY_VIOLATION" || kafka == "INVALID_CONFIG" =>
                        {
                            return Err(ServiceError::Conflict {
                                code: ErrorCode::LinkHasMirrors,
                                message: format!(
                                    "link {name:?} still feeds mirror topics on {:?} ({}): promote or fail it over first, then delete it{}",
                                    target.name,
                                    link.state.as_str(),
                                    message.map(|m| format!(" (the brokers say: {m})")).unwrap_or_default()
                                ),
                            });
                        }
                        Err(error) => return Err(admin_error(&target.name, "", &[], error)),
                    }
                }
            }
            self.store.link_delete(link.id).await?;
            if let Some(source) = self.store.cluster_get_by_id(link.source_cluster_id).await? {
                if link.state.stopped() {
                    unfence(&self.store, &source, &link).await;
                }
                if let Some(user) = &link.source_user {
                    drop_link_user(&self.store, &source, user).await;
                }
            }
            Ok(())
        }
        .await;
        self.audited(
            &caller.username,
            "replication_link.delete",
            format!("workspaces/{workspace}/replication-links/{name}"),
            result,
        )
        .await
    }
}

/// Why a link in `state` cannot take operation `kind`.
fn state_refusal(name: &str, state: LinkState, kind: OperationKind, action: &str) -> ServiceError {
    let conflict = |code, message: String| ServiceError::Conflict { code, message };
    match (kind, state) {
        (OperationKind::LinkReverse, _) => conflict(
            ErrorCode::LinkNotStopped,
            format!(
                "link {name:?} is {}: only a promoted or failed-over link can be reversed",
                state.as_str()
            ),
        ),
        (_, LinkState::Paused) => conflict(
            ErrorCode::LinkPaused,
            format!("link {name:?} is paused: resume it before you {action} it"),
        ),
        (OperationKind::LinkResume, LinkState::Mirroring) => conflict(
            ErrorCode::LinkNotPaused,
            format!("link {name:?} is mirroring, not paused"),
        ),
        _ => conflict(
            ErrorCode::LinkStopped,
            format!(
                "link {name:?} is {}: it cannot {action} (its mirror topics are stopped or stopping)",
                state.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterId, ReplicationLinkId, WorkspaceId};

    fn link(state: LinkState) -> ReplicationLinkRecord {
        ReplicationLinkRecord {
            id: ReplicationLinkId::from_uuid(uuid::Uuid::nil()),
            workspace_id: WorkspaceId::from_uuid(uuid::Uuid::nil()),
            name: "dr".into(),
            source_cluster_id: ClusterId::from_uuid(uuid::Uuid::from_u128(1)),
            source_cluster: "a".into(),
            target_cluster_id: ClusterId::from_uuid(uuid::Uuid::from_u128(2)),
            target_cluster: "b".into(),
            filters: LinkFilters {
                topics: vec!["orders".into(), "pay*".into()],
                topics_exclude: vec![],
                groups: vec!["app*".into()],
                groups_exclude: vec![],
            },
            sync_configs: true,
            state,
            reversed: false,
            source_user: Some("hdi-link-dr".into()),
            generation: 1,
            applied_generation: 0,
            created_by: "admin".into(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn sasl() -> LinkSecurity {
        LinkSecurity {
            protocol: "SASL_SSL".into(),
            sasl: Some(("SCRAM-SHA-512".into(), "hdi-link-dr".into())),
            ca_pem: Some("PEM".into()),
        }
    }

    #[test]
    fn a_new_link_is_set_whole_and_needs_a_password() {
        let desired = desired_configs(&link(LinkState::Mirroring), "a:9092", Some(&sasl()));
        assert_eq!(
            desired.get("hdi.link.dr.topics").map(String::as_str),
            Some("orders,pay*")
        );
        assert!(!desired.contains_key("hdi.link.dr.topics.exclude"));
        let (changes, password) = plan_configs("dr", &desired, &BTreeMap::new());
        assert!(password);
        // Everything but the state: mirroring is what an absent state means.
        assert_eq!(changes.len(), desired.len() - 1);
        assert!(changes.iter().all(|(k, _)| k != "hdi.link.dr.state"));
    }

    #[test]
    fn a_converged_link_changes_nothing_and_a_state_change_sets_only_the_state() {
        let desired = desired_configs(&link(LinkState::Mirroring), "a:9092", Some(&sasl()));
        let mut actual: BTreeMap<String, Option<String>> = desired
            .iter()
            .filter(|(k, _)| !k.ends_with(".state"))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        actual.insert("hdi.link.dr.sasl.password".into(), None);
        actual.insert("hdi.link.dr.status".into(), Some("ok".into()));
        assert_eq!(plan_configs("dr", &desired, &actual), (vec![], false));
        let promoted = desired_configs(&link(LinkState::Promoting), "a:9092", Some(&sasl()));
        assert_eq!(
            plan_configs("dr", &promoted, &actual),
            (
                vec![("hdi.link.dr.state".to_owned(), Some("promote".to_owned()))],
                false
            )
        );
        // Groups dropped: the key is deleted; another user: a new password.
        let mut fewer = link(LinkState::Mirroring);
        fewer.filters.groups.clear();
        fewer.source_user = Some("other".into());
        let security = LinkSecurity {
            sasl: Some(("SCRAM-SHA-512".into(), "other".into())),
            ..sasl()
        };
        let (changes, password) = plan_configs(
            "dr",
            &desired_configs(&fewer, "a:9092", Some(&security)),
            &actual,
        );
        assert!(changes.contains(&("hdi.link.dr.groups".to_owned(), None)));
        assert!(password);
    }

    #[test]
    fn the_link_user_reads_its_topics_and_a_stopped_link_fences_its_source() {
        let mirroring = link(LinkState::Mirroring);
        let source = mirroring.source_cluster_id;
        let bindings = link_bindings(std::slice::from_ref(&mirroring), source);
        assert!(bindings.iter().any(|b| b.resource_name == "pay"
            && b.pattern_type == 4
            && b.operation == 3
            && b.permission == 3));
        assert!(bindings.iter().all(|b| b.principal == "User:hdi-link-dr"));
        assert!(
            link_bindings(
                std::slice::from_ref(&mirroring),
                mirroring.target_cluster_id
            )
            .is_empty()
        );
        let promoted = link(LinkState::Promoted);
        let fenced = link_bindings(std::slice::from_ref(&promoted), source);
        assert!(fenced.iter().any(|b| b.principal == "User:*"
            && b.operation == 4
            && b.permission == 2
            && b.resource_name == "orders"));
        // With exclusions a deny of the patterns would fence the excluded topics too: none.
        let mut excluding = promoted;
        excluding.filters.topics_exclude = vec!["pay-internal*".into()];
        assert!(
            link_bindings(&[excluding], source)
                .iter()
                .all(|b| b.principal != "User:*")
        );
    }

    #[test]
    fn filters_are_checked_with_field_names() {
        let mut filters = LinkFilters {
            topics: vec!["orders".into(), "pay*".into()],
            ..LinkFilters::default()
        };
        assert!(validate_filters(&filters).is_ok());
        filters.topics.push("a,b".into());
        assert!(
            matches!(validate_filters(&filters), Err(ServiceError::InvalidField { field, .. }) if field == "topics[2]")
        );
        filters.topics = vec![];
        assert!(validate_filters(&filters).is_err());
        assert!(validate_name("dr-1_x").is_ok());
        assert!(validate_name("dr.1").is_err());
    }
}
