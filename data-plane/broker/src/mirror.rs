//! Cluster links and mirror topics: this cluster (the secondary) copies topics of a source
//! cluster with the source's offsets, byte for byte, and the data path never leaves the brokers.
//!
//! - A link lives in the metadata quorum ([`LinkRecord`]). It is defined with the cluster-wide
//!   broker configs (`IncrementalAlterConfigs`/`AlterConfigs` on the broker resource named
//!   `""`, as Kafka's cluster-wide dynamic defaults are): `hdi.link.<name>.bootstrap.servers`
//!   and `hdi.link.<name>.topics` (comma-separated literal names or `prefix*` patterns);
//!   deleting the first removes the link. `DescribeConfigs` shows them.
//!   The link reaches its source over `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`
//!   (`hdi.link.<name>.security.protocol`, `.sasl.mechanism`, `.sasl.username`,
//!   `.sasl.password`, `.ssl.ca.pem`: a Kafka user of the source, which needs only Describe and
//!   Read on the topics and Describe on the groups; the password is kept in this cluster's
//!   quorum and DescribeConfigs never shows it). DescribeConfigs also shows, read-only,
//!   `hdi.link.<name>.status`: `ok`, or what the link's discovery (on the controller) and
//!   mirroring (on this broker) last met, as this broker sees it. A link that still feeds mirror
//!   topics cannot be deleted.
//! - [`run_discovery`] (on the controller only) asks each link's source for its topics every
//!   [`DISCOVERY_INTERVAL`] and creates a mirror topic for every new match (the source's name,
//!   id and partition count), adds partitions when the source gained some, and keeps the
//!   mirror's [`SYNCED_CONFIGS`] equal to the source's explicit ones (the other topic configs
//!   are this cluster's).
//! - [`run_mirroring`] (on every broker) fetches, as a consumer of the source (`replica_id`
//!   -1, so nothing on the source changes), each mirror partition this broker leads from its
//!   source leader, from the mirror's log end, and appends the answer with
//!   [`Replica::append_mirrored`]: same offsets, same bytes. It reads `read_uncommitted`, up to
//!   the source's high watermark, so transaction markers and open transactions are copied as
//!   the source holds them (Kafka's cluster linking copies the whole log too) and the mirror's
//!   last stable offset follows from its own copy. This cluster's followers copy it by
//!   the usual replication, so its ISR and high watermark apply as to any partition. Only the
//!   source topic whose id the mirror carries feeds it: a source topic re-created, or a link
//!   pointed at another cluster, is reported in the link's status and mixes nothing in (the id is
//!   checked from Metadata each round; Fetch v11 names topics, so a re-creation between the two
//!   is not seen until the next round).
//! - Every [`GROUP_SYNC_INTERVAL`], each broker copies the committed offsets of the link's
//!   groups (`hdi.link.<name>.groups`, patterns as for topics) for the mirror partitions it
//!   leads, clamped to its high watermark; the quorum never applies a copy over a group a client
//!   committed for on this cluster (`groups::offsets::apply_sync`).
//! - A mirror topic is read-only: Produce answers INVALID_TOPIC_EXCEPTION naming the link
//!   (`handlers::produce`); DeleteRecords, CreatePartitions and changes to synced configs
//!   answer POLICY_VIOLATION ([`read_only`]). Mirror topics keep the source's leader epochs in
//!   their logs.
//! - Filters: `hdi.link.<name>.topics.exclude` and `.groups.exclude` (same patterns) win over
//!   the includes.
//! - `hdi.link.<name>.state`: `mirroring` (the default) and `paused` go both ways. A paused link
//!   fetches nothing and copies no group offsets; it still asks its source for each partition's
//!   committed end every [`PAUSED_PROBE_INTERVAL`] (ListOffsets), so that its lag stays true.
//! - Stopping (`state` `promote` for a planned switchover, `failover` when the source is lost;
//!   it never goes back): under `promote` each mirror
//!   partition's leader keeps fetching until its log end is the source's high watermark, copies
//!   the groups' offsets once more, and reports its last leader epoch and highest producer id
//!   ([`Command::StopMirror`]); under `failover` it reports at once. Once every partition of a
//!   topic has reported, the topic is writable, each partition in a leader epoch above every
//!   epoch it copied, and the cluster's producer-id floor is above every copied producer id
//!   (new ids move to a new generation, `producers::ProducerIdAllocator::next`), so a new
//!   producer here is never mistaken for one of the source's. Each stop is kept in the quorum
//!   ([`MirrorStop`]): where the partition stopped, and the source's high watermark in its last
//!   answer. Its `loss_records` (that watermark less the stop offset) is what a failover leaves
//!   behind as far as this cluster could know; records the source acknowledged after its last
//!   answer are counted exactly by `reverse` below.
//! - Status per partition: DescribeConfigs of a broker by its id shows, read-only,
//!   `hdi.link.<name>.partitions`, a JSON array of the mirror partitions that broker leads
//!   ([`partitions_status`]): state (`active`, `pausing`, `paused`, `stopping`, `stopped`,
//!   `adopting`, `source_unavailable` after [`SOURCE_UNAVAILABLE_AFTER`] without an answer,
//!   `failed` with a reason), lag in records, bytes (an estimate: the mean stored size of the
//!   records copied) and milliseconds (since it last held all its source had committed), and,
//!   once stopped, the stop offset and the loss bound. DescribeConfigs of a topic shows
//!   `hdi.mirror.link` while it mirrors and `hdi.mirror.stop.offsets` once it stopped.
//! - Reverse (`hdi.link.<name>.reverse` = `true`, defined on the old source once its mirror
//!   was promoted or failed over): the controller finds each matching topic here whose id is the
//!   new source's topic's, creates `<topic>.quarantine` (each partition led where the topic's
//!   is) and makes the topic a read-only mirror ([`Command::AdoptMirror`]). Each partition's
//!   leader then reads the new source's stop offset for it (the divergence point: below it the
//!   two logs are the same bytes), moves its records at and above it into the quarantine
//!   partition (re-based, otherwise byte for byte), waits until the quarantine's ISR holds them,
//!   cuts its log there and reports it ([`Command::AdoptPartition`], a new leader epoch); each
//!   follower cuts its own log at that offset before it fetches in that epoch. From there the
//!   partition mirrors its new source as any mirror does. Nothing is discarded: the quarantine
//!   holds exactly the records the new source never had. A switchover run twice (promote,
//!   reverse, promote, reverse) is a round trip.
//!
//! - A planned switchover fences the source's producers first with the topic config
//!   `hdi.read.only=true` on the source (Produce answers INVALID_TOPIC_EXCEPTION; the control
//!   plane sets it); adopting a topic as a mirror clears it.
//!
//! Weak: a follower that restarts while its partition mirrors after a
//! reverse cuts at the divergence point again and fetches the rest anew (correct, but wasteful).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdi_kafka_client::Connection;
use hdi_kafka_client::codes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    BrokerId as KafkaBrokerId, FetchRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::{Broker, MirrorProgress};
use crate::cluster::Cluster;
use crate::cluster::metadata::{Command, LinkRecord, LinkSecurity, LinkState, MirrorStop, Outcome};
use crate::cluster::raft::MetadataView;
use crate::replica::Replica;
use crate::state::KafkaError;

/// How often the controller looks for new or grown source topics.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(500);
/// How long a source may hold a fetch that has no new data.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Bytes asked per partition and per fetch.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// The largest answer accepted from a source.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Fetch v11 (topic names, isolation level; Kafka 2.3+) and Metadata v12 (topic ids; Kafka 2.8+),
/// both served by hdi-broker. A mirror is only fed by the source topic whose id it carries.
const FETCH_VERSION: i16 = 11;
const METADATA_VERSION: i16 = 12;
const CLIENT_ID: &str = "hdi-cluster-link";
/// How often a paused link asks its source how far it is behind.
const PAUSED_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Pause after a failure before a link tries its source again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

pub use crate::state::mirror_read_only as read_only;
pub use crate::topic_config::SYNCED_CONFIGS;

const PREFIX: &str = "hdi.link.";
/// A link's settings, after `hdi.link.<name>.`.
const FIELDS: &[&str] = &[
    "bootstrap.servers",
    "topics",
    "groups",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.pem",
    "state",
    "topics.exclude",
    "groups.exclude",
    "reverse",
];
/// The setting DescribeConfigs never shows.
pub const SENSITIVE_SUFFIX: &str = ".sasl.password";

/// The links as cluster-wide configs, `(key, value)`, sorted; the password included (callers
/// that show them hide keys ending in [`SENSITIVE_SUFFIX`]).
pub fn link_configs(links: &BTreeMap<String, LinkRecord>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, link) in links {
        let mut put = |field: &str, value: &str| {
            out.push((format!("{PREFIX}{name}.{field}"), value.to_owned()));
        };
        put("bootstrap.servers", &link.bootstrap);
        put("topics", &link.topics.join(","));
        if !link.groups.is_empty() {
            put("groups", &link.groups.join(","));
        }
        if !link.topics_exclude.is_empty() {
            put("topics.exclude", &link.topics_exclude.join(","));
        }
        if !link.groups_exclude.is_empty() {
            put("groups.exclude", &link.groups_exclude.join(","));
        }
        if link.reverse {
            put("reverse", "true");
        }
        if !link.state.is_mirroring() {
            put("state", link.state.name());
        }
        if let Some(security) = &link.security {
            put("security.protocol", &security.protocol);
            for (field, value) in [
                ("sasl.mechanism", &security.mechanism),
                ("sasl.username", &security.username),
                ("sasl.password", &security.password),
                ("ssl.ca.pem", &security.ca_pem),
            ] {
                if let Some(value) = value {
                    put(field, value);
                }
            }
        }
    }
    out.sort();
    out
}

/// Splits `hdi.link.<name>.<field>` into its link name and field.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let (name, field) = key.strip_prefix(PREFIX)?.split_once('.')?;
    let named = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    (named && FIELDS.contains(&field)).then_some((name, field))
}

fn invalid(message: String) -> KafkaError {
    KafkaError::new(codes::INVALID_CONFIG, message)
}

fn patterns(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One link from its settings.
fn link_from(name: &str, fields: &BTreeMap<&str, String>) -> Result<LinkRecord, KafkaError> {
    let key = |field: &str| format!("{PREFIX}{name}.{field}");
    let get = |field: &str| fields.get(field).filter(|v| !v.is_empty()).cloned();
    let bootstrap = get("bootstrap.servers").ok_or_else(|| {
        invalid(format!(
            "cluster link {name:?} needs {}",
            key("bootstrap.servers")
        ))
    })?;
    let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".to_owned());
    let (tls, sasl) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            return Err(invalid(format!(
                "{} is {other:?}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                key("security.protocol")
            )));
        }
    };
    for field in ["sasl.mechanism", "sasl.username", "sasl.password"] {
        if sasl != get(field).is_some() {
            return Err(invalid(if sasl {
                format!("{} is needed with {protocol}", key(field))
            } else {
                format!("{} is only for SASL_PLAINTEXT and SASL_SSL", key(field))
            }));
        }
    }
    if let Some(mechanism) = get("sasl.mechanism")
        && !matches!(
            mechanism.as_str(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
        )
    {
        return Err(invalid(format!(
            "{} is {mechanism:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            key("sasl.mechanism")
        )));
    }
    let ca_pem = get("ssl.ca.pem");
    match (&ca_pem, tls) {
        (Some(pem), true) => {
            hdi_pki::trust_config(pem)
                .map_err(|e| invalid(format!("{}: {e}", key("ssl.ca.pem"))))?;
        }
        (None, true) => {
            return Err(invalid(format!(
                "{} is needed with {protocol}",
                key("ssl.ca.pem")
            )));
        }
        (Some(_), false) => {
            return Err(invalid(format!(
                "{} is only for SSL and SASL_SSL",
                key("ssl.ca.pem")
            )));
        }
        (None, false) => {}
    }
    let state = match get("state").as_deref() {
        None | Some("mirroring") => LinkState::Mirroring,
        Some("paused") => LinkState::Paused,
        Some("promote") => LinkState::Promote,
        Some("failover") => LinkState::Failover,
        Some(other) => {
            return Err(invalid(format!(
                "{} is {other:?}: mirroring, paused, promote or failover",
                key("state")
            )));
        }
    };
    let reverse = match get("reverse").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(format!(
                "{} is {other:?}: true or false",
                key("reverse")
            )));
        }
    };
    Ok(LinkRecord {
        state,
        bootstrap,
        topics: get("topics").map(|v| patterns(&v)).unwrap_or_default(),
        groups: get("groups").map(|v| patterns(&v)).unwrap_or_default(),
        topics_exclude: get("topics.exclude")
            .map(|v| patterns(&v))
            .unwrap_or_default(),
        groups_exclude: get("groups.exclude")
            .map(|v| patterns(&v))
            .unwrap_or_default(),
        reverse,
        security: (protocol != "PLAINTEXT").then(|| LinkSecurity {
            protocol,
            mechanism: get("sasl.mechanism"),
            username: get("sasl.username"),
            password: get("sasl.password"),
            ca_pem,
        }),
    })
}

/// The links after `changes` (`None` deletes a key; `incremental` keeps what is not named).
/// Deleting a link's bootstrap servers deletes the link.
///
/// # Errors
/// INVALID_CONFIG naming the key: not a link setting, or a link whose settings do not fit.
pub fn links_after(
    current: &BTreeMap<String, LinkRecord>,
    changes: &[(String, Option<String>)],
    incremental: bool,
) -> Result<BTreeMap<String, LinkRecord>, KafkaError> {
    let mut keys: BTreeMap<String, String> = if incremental {
        link_configs(current).into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let mut removed = Vec::new();
    for (key, value) in changes {
        let Some((name, field)) = parse_key(key) else {
            return Err(invalid(format!(
                "{key:?} is not a cluster-wide config here: only {PREFIX}<link>.<setting> with a link name of letters, digits, '-' and '_' and a setting among {}",
                FIELDS.join(", ")
            )));
        };
        match value {
            Some(value) => {
                keys.insert(key.clone(), value.trim().to_owned());
            }
            None => {
                keys.remove(key);
                if field == "bootstrap.servers" {
                    removed.push(name.to_owned());
                }
            }
        }
    }
    let mut fields: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    for (key, value) in &keys {
        if let Some((name, field)) = parse_key(key)
            && !removed.iter().any(|r| r == name)
        {
            fields
                .entry(name.to_owned())
                .or_default()
                .insert(field, value.clone());
        }
    }
    fields
        .iter()
        .map(|(name, fields)| Ok((name.clone(), link_from(name, fields)?)))
        .collect()
}

impl Cluster {
    /// Applies cluster-wide config changes to the links (see the module doc).
    ///
    /// # Errors
    /// INVALID_CONFIG, or REQUEST_TIMED_OUT when the quorum does not answer.
    pub async fn alter_links(
        &self,
        changes: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let current = self.view().meta.links.clone();
        let wanted = links_after(&current, &changes, incremental)?;
        // Stopping goes one way: a promoted link may fail over, never mirror again.
        for (name, link) in &wanted {
            if let Some(before) = current.get(name)
                && !before.state.may_become(link.state)
            {
                return Err(invalid(format!(
                    "cluster link {name:?} is stopping ({}): its state cannot go back to {}",
                    before.state.name(),
                    link.state.name()
                )));
            }
        }
        // A link whose mirror topics still depend on it stays: they would be read-only with
        // nothing feeding them.
        let view = self.view();
        for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
            let mut mirrors: Vec<&str> = view
                .meta
                .topics
                .iter()
                .filter(|(_, t)| t.mirror.as_deref() == Some(name.as_str()))
                .map(|(topic, _)| topic.as_str())
                .collect();
            if !mirrors.is_empty() {
                mirrors.truncate(5);
                return Err(invalid(format!(
                    "cluster link {name:?} still feeds mirror topics ({}): set {PREFIX}{name}.state to promote or failover first, or delete those topics",
                    mirrors.join(", ")
                )));
            }
        }
        if validate_only {
            return Ok(());
        }
        for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
            Outcome::of(
                self.propose(Command::SetLink {
                    name: name.clone(),
                    link: None,
                })
                .await,
            )?;
        }
        for (name, link) in wanted {
            if current.get(&name) != Some(&link) {
                tracing::info!(link = %name, bootstrap = %link.bootstrap, topics = ?link.topics, "cluster link set");
                Outcome::of(
                    self.propose(Command::SetLink {
                        name,
                        link: Some(link),
                    })
                    .await,
                )?;
            }
        }
        Ok(())
    }
}

/// A source topic: its id and partition count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SourceTopic {
    id: Uuid,
    partitions: i32,
}

/// How to reach a link's source: its addresses and security.
#[derive(Clone)]
struct Source {
    bootstrap: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<hdi_kafka_client::SaslLogin>,
}

impl Source {
    fn of(link: &LinkRecord) -> Result<Source, String> {
        let security = link.security.as_ref();
        let tls = match security.and_then(|s| s.ca_pem.as_deref()) {
            Some(pem) => Some(Arc::new(
                hdi_pki::trust_config(pem).map_err(|e| format!("the source's CA: {e}"))?,
            )),
            None => None,
        };
        let sasl = security.and_then(|s| {
            Some(hdi_kafka_client::SaslLogin {
                mechanism: s.mechanism.clone()?,
                username: s.username.clone()?,
                password: s.password.clone()?,
            })
        });
        Ok(Source {
            bootstrap: link.bootstrap.clone(),
            tls,
            sasl,
        })
    }

    /// Connects to `address` (`host:port`), with TLS (the host is the name verified) and SASL
    /// as the link says.
    async fn connect(&self, address: &str) -> Result<Connection, String> {
        let security = hdi_kafka_client::Security::for_address(
            address,
            self.tls.as_ref(),
            self.sasl.as_ref(),
        )?;
        match tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect_secure(address, CLIENT_ID, MAX_RESPONSE_BYTES, &security),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(format!("{address}: {error}")),
            Err(_) => Err(format!("{address}: no connection in 10 s")),
        }
    }

    /// Connects to the first reachable bootstrap server.
    async fn connect_any(&self) -> Result<Connection, String> {
        let mut last = String::from("no bootstrap servers");
        for address in self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match self.connect(address).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// The source's metadata for `topics` (`None`: every topic).
async fn source_metadata(
    connection: &mut Connection,
    topics: Option<Vec<String>>,
) -> Result<MetadataResponse, String> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .into_iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    tokio::time::timeout(
        Duration::from_secs(10),
        connection.call(&request, METADATA_VERSION),
    )
    .await
    .map_err(|_| "the source did not answer Metadata in 10 s".to_owned())?
    .map_err(|e| e.to_string())
}

/// The source topics a link mirrors.
fn matching(link: &LinkRecord, metadata: &MetadataResponse) -> BTreeMap<String, SourceTopic> {
    metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && !t.is_internal)
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.as_str().to_owned();
            let source = SourceTopic {
                id: t.topic_id,
                partitions: t.partitions.len() as i32,
            };
            link.matches(&name).then_some((name, source))
        })
        .collect()
}

/// The source's explicit values of [`SYNCED_CONFIGS`] for `topics` (a topic the source does not
/// describe, for want of an ACL say, is left out: its configs are not synced).
async fn source_configs<'a>(
    connection: &mut Connection,
    topics: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, crate::topic_config::TopicConfigs> {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let resources: Vec<DescribeConfigsResource> = topics
        .map(|topic| {
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.clone()))
                .with_configuration_keys(Some(
                    SYNCED_CONFIGS
                        .iter()
                        .map(|k| StrBytes::from_static_str(k))
                        .collect(),
                ))
        })
        .collect();
    let mut out = BTreeMap::new();
    if resources.is_empty() {
        return out;
    }
    let request = DescribeConfigsRequest::default().with_resources(resources);
    let Ok(response) = call(connection, &request, 4).await else {
        return out;
    };
    for result in response.results.iter().filter(|r| r.error_code == 0) {
        let configs = result
            .configs
            .iter()
            // Kafka's DYNAMIC_TOPIC_CONFIG: set on the topic (defaults stay each cluster's).
            .filter(|c| c.config_source == 1 && SYNCED_CONFIGS.contains(&c.name.as_str()))
            .filter_map(|c| {
                let value = c.value.as_ref()?.to_string();
                crate::topic_config::validate(c.name.as_str(), &value)
                    .is_ok()
                    .then(|| (c.name.to_string(), value))
            })
            .collect();
        out.insert(result.resource_name.to_string(), configs);
    }
    out
}

/// Records what a link's task last met (`None`: it works).
fn report(broker: &Broker, link: &str, task: &'static str, problem: Option<&String>) {
    let mut problems = broker
        .link_problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (link.to_owned(), task);
    match problem {
        Some(problem) => {
            problems.insert(key, problem.clone());
        }
        None => {
            problems.remove(&key);
        }
    }
}

/// A link's status as this broker sees it: `ok`, or each task's last problem.
pub fn link_status(broker: &Broker, link: &str) -> String {
    let problems = broker
        .link_problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let found: Vec<String> = problems
        .iter()
        .filter(|((name, _), _)| name == link)
        .map(|((_, task), problem)| format!("{task}: {problem}"))
        .collect();
    if found.is_empty() {
        "ok".to_owned()
    } else {
        found.join("; ")
    }
}

/// How long a mirror partition goes without an answer from its source before it is
/// `source_unavailable`.
pub const SOURCE_UNAVAILABLE_AFTER: Duration = Duration::from_secs(5);

/// One mirror partition led here, as DescribeConfigs of this broker shows it
/// (`hdi.link.<name>.partitions`, a JSON array).
#[derive(serde::Serialize)]
struct PartitionStatus {
    topic: String,
    partition: i32,
    /// `active`, `pausing`, `paused`, `stopping`, `stopped`, `adopting` (a reverse link
    /// cutting the divergent tail), `source_unavailable` or `failed`.
    state: &'static str,
    reason: Option<String>,
    log_end: i64,
    /// The source's high watermark in its last answer.
    source_end: Option<i64>,
    lag_records: i64,
    /// `lag_records` times the mean size of the records copied (an estimate).
    lag_bytes: i64,
    /// How long since the partition last held everything its source had committed (0 when it
    /// does): a bound on the age of the oldest record it lacks.
    lag_ms: i64,
    stop_offset: Option<i64>,
    loss_records: Option<i64>,
    loss_ms: Option<i64>,
    quarantined: Option<i64>,
}

/// The mirror partitions of link `name` this broker leads, as a JSON array (see
/// [`PartitionStatus`]).
pub fn partitions_status(broker: &Broker, name: &str) -> String {
    let view = broker.cluster.view();
    let link_state = view.meta.links.get(name).map(|l| l.state);
    let link_problem = link_status(broker, name);
    let known = broker
        .mirror_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let now = now_ms();
    let mut out = Vec::new();
    for replica in broker.replicas.all() {
        let Some(topic) = view.meta.topics.get(&replica.topic) else {
            continue;
        };
        let mirrored = topic.mirror.as_deref() == Some(name);
        let stop = topic.stops.get(&replica.index).filter(|s| s.link == name);
        if !replica.is_leader() || (!mirrored && stop.is_none()) {
            continue;
        }
        let log_end = replica.offsets().2;
        let progress = known.get(&(replica.topic.clone(), replica.index));
        let source_end = progress.map(|p| p.source_end).filter(|e| *e >= 0);
        let lag_records = source_end.map_or(0, |e| (e - log_end).max(0));
        let mean = progress
            .filter(|p| p.records > 0)
            .map_or(0, |p| p.bytes / p.records);
        let lag_ms = match progress {
            Some(p) if lag_records > 0 => {
                now - if p.caught_up_ms >= 0 {
                    p.caught_up_ms
                } else {
                    p.since_ms
                }
            }
            _ => 0,
        };
        let stopped = !mirrored || topic.mirror_stopped.contains_key(&replica.index);
        // A partition this broker began leading a moment ago has no entry yet: not unheard.
        let unheard = progress.is_some_and(|p| {
            now - p.source_seen_ms.max(p.since_ms)
                > i64::try_from(SOURCE_UNAVAILABLE_AFTER.as_millis()).unwrap_or(i64::MAX)
        });
        let (state, reason) = if stopped {
            ("stopped", None)
        } else if topic.mirror_adopting.contains(&replica.index) {
            ("adopting", progress.and_then(|p| p.problem.clone()))
        } else if let Some(problem) = progress.and_then(|p| p.problem.clone()) {
            ("failed", Some(problem))
        } else {
            match link_state {
                Some(LinkState::Promote | LinkState::Failover) => ("stopping", None),
                _ if unheard => {
                    let silent = progress.map_or(0, |p| now - p.source_seen_ms.max(p.since_ms));
                    let reason = format!(
                        "no answer from the source for {} s ({link_problem})",
                        silent / 1000
                    );
                    ("source_unavailable", Some(reason))
                }
                Some(LinkState::Paused) if progress.is_some_and(|p| p.paused) => ("paused", None),
                // Its last fetch is still under way.
                Some(LinkState::Paused) => ("pausing", None),
                _ => ("active", None),
            }
        };
        out.push(PartitionStatus {
            topic: replica.topic.clone(),
            partition: replica.index,
            state,
            reason,
            log_end,
            source_end: if stopped {
                stop.map(|s| s.source_end).filter(|e| *e >= 0)
            } else {
                source_end
            },
            lag_records: if stopped { 0 } else { lag_records },
            lag_bytes: if stopped {
                0
            } else {
                lag_records.saturating_mul(i64::try_from(mean).unwrap_or(0))
            },
            lag_ms: if stopped { 0 } else { lag_ms },
            stop_offset: stop.filter(|_| stopped).map(|s| s.offset),
            loss_records: stop.filter(|_| stopped).map(MirrorStop::loss_records),
            loss_ms: stop.filter(|_| stopped).map(MirrorStop::loss_ms),
            quarantined: topic.adopted.get(&replica.index).map(|a| a.quarantined),
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    serde_json::to_string(&out).unwrap_or_else(|_| "[]".to_owned())
}

/// The read-only mirror facts DescribeConfigs shows of a topic: `hdi.mirror.link` while it
/// mirrors, and `hdi.mirror.stop.offsets` (`partition:offset,…`) once partitions stopped
/// (what a reverse link from the old source cuts at).
pub fn topic_mirror_configs(
    topic: &crate::cluster::metadata::TopicRecord,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(link) = &topic.mirror {
        out.push(("hdi.mirror.link".to_owned(), link.clone()));
    }
    if !topic.stops.is_empty() {
        let offsets: Vec<String> = topic
            .stops
            .iter()
            .map(|(p, s)| format!("{p}:{}", s.offset))
            .collect();
        out.push(("hdi.mirror.stop.offsets".to_owned(), offsets.join(",")));
    }
    out
}

/// On the controller: creates and grows the mirror topics of every link. Runs until dropped.
pub async fn run_discovery(broker: Arc<Broker>) {
    let mut failing: HashMap<String, String> = HashMap::new();
    loop {
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
        if !broker.cluster.is_controller() {
            continue;
        }
        let view = broker.cluster.view();
        // A promoted or failed-over link creates and adopts nothing more: its topics are this
        // cluster's own now (a reverse link left in place must not adopt them again).
        for (name, link) in view
            .meta
            .links
            .iter()
            .filter(|(_, l)| !l.state.is_stopping())
        {
            let outcome = discover(&broker, name, link).await;
            report(&broker, name, "discovery", outcome.as_ref().err());
            match outcome {
                Ok(()) => {
                    if failing.remove(name).is_some() {
                        tracing::info!(link = %name, "cluster link reaches its source again");
                    }
                }
                Err(reason) => {
                    if failing.get(name) != Some(&reason) {
                        tracing::warn!(link = %name, %reason, "cluster link cannot discover source topics");
                        failing.insert(name.clone(), reason);
                    }
                }
            }
        }
    }
}

async fn discover(broker: &Broker, name: &str, link: &LinkRecord) -> Result<(), String> {
    let mut connection = Source::of(link)?.connect_any().await?;
    let metadata = source_metadata(&mut connection, None).await?;
    let cluster = &broker.cluster;
    let wanted = matching(link, &metadata);
    if wanted.is_empty() {
        // Not an error of the link, but a state its owner must see (a filter with a typo).
        return Err(format!(
            "the topic filter ({}) matches none of the source's {} topics",
            link.topics.join(","),
            metadata.topics.iter().filter(|t| !t.is_internal).count()
        ));
    }
    let synced = source_configs(&mut connection, wanted.keys()).await;
    let mut foreign = Vec::new();
    for (topic, source) in wanted {
        let view = cluster.view();
        let source_configs = synced.get(&topic);
        match view.meta.topics.get(&topic) {
            None => {
                let live = view.meta.live_brokers().count();
                let rf = broker
                    .config
                    .default_replication_factor
                    .min(i16::try_from(live).unwrap_or(i16::MAX))
                    .max(1);
                let id = if source.id.is_nil() {
                    Uuid::new_v4()
                } else {
                    source.id
                };
                let created = cluster
                    .propose(Command::CreateTopic {
                        name: topic.clone(),
                        id,
                        partitions: source.partitions,
                        replication_factor: rf,
                        assignments: None,
                        configs: source_configs.cloned().unwrap_or_default(),
                        mirror: Some(name.to_owned()),
                    })
                    .await;
                Outcome::of(created).map_err(|e| e.message)?;
                tracing::info!(link = %name, %topic, partitions = source.partitions, "created mirror topic");
            }
            // The source topic is not the one mirrored (re-created there, or the link now names
            // another cluster): never mixed; the mirror stays as it is.
            Some(local)
                if local.mirror.as_deref() == Some(name)
                    && !source.id.is_nil()
                    && local.id != source.id =>
            {
                foreign.push(topic);
            }
            Some(local) if local.mirror.as_deref() == Some(name) => {
                // The synced configs follow the source's; the others stay this cluster's.
                if let Some(from_source) = source_configs {
                    let mut configs = local.configs.clone();
                    configs.retain(|key, _| !SYNCED_CONFIGS.contains(&key.as_str()));
                    configs.extend(from_source.clone());
                    if configs != local.configs {
                        let proposed = cluster
                            .propose(Command::SetTopicConfigs {
                                name: topic.clone(),
                                configs,
                            })
                            .await;
                        Outcome::of(proposed).map_err(|e| e.message)?;
                        tracing::info!(link = %name, %topic, configs = ?from_source, "mirror topic follows its source's configs");
                    }
                }
                let have = local.partitions.len() as i32;
                if source.partitions > have {
                    let proposed = cluster
                        .propose(Command::CreatePartitions {
                            name: topic.clone(),
                            count: source.partitions,
                        })
                        .await;
                    Outcome::of(proposed).map_err(|e| e.message)?;
                    tracing::info!(link = %name, %topic, from = have, to = source.partitions, "mirror topic follows its source's partitions");
                }
            }
            // This cluster was the source of the topic the link now reads from (a reverse
            // link after a switchover or failover): turn it back into a mirror.
            Some(local)
                if link.reverse
                    && local.mirror.is_none()
                    && !source.id.is_nil()
                    && local.id == source.id =>
            {
                adopt_topic(cluster, name, &mut connection, &topic, local).await?;
            }
            // A local writable topic (or another link's mirror) of that name: never mixed.
            Some(_) => {}
        }
    }
    match foreign.is_empty() {
        true => Ok(()),
        false => Err(foreign_topics(&foreign)),
    }
}

/// The quarantine topic of `topic`: where a reverse link moves the records its partitions held
/// past the divergence point.
pub fn quarantine_name(topic: &str) -> String {
    format!("{topic}.quarantine")
}

/// What a source says of its topic's mirroring: the link it still mirrors through, if any, and
/// where each partition last stopped mirroring.
async fn source_mirror_facts(
    connection: &mut Connection,
    topic: &str,
) -> Result<(Option<String>, BTreeMap<i32, i64>), String> {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(Some(vec![
                StrBytes::from_static_str("hdi.mirror.link"),
                StrBytes::from_static_str("hdi.mirror.stop.offsets"),
            ])),
    ]);
    let response = call(connection, &request, 4).await?;
    let result = response
        .results
        .first()
        .ok_or_else(|| format!("the source did not describe topic {topic:?}"))?;
    if result.error_code != 0 {
        return Err(format!(
            "the source cannot describe topic {topic:?}: {}",
            codes::error_name(result.error_code)
        ));
    }
    let value = |key: &str| {
        result
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .and_then(|c| c.value.as_ref().map(ToString::to_string))
    };
    let stops = value("hdi.mirror.stop.offsets")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (p, o) = pair.split_once(':')?;
            Some((p.trim().parse().ok()?, o.trim().parse().ok()?))
        })
        .collect();
    Ok((value("hdi.mirror.link"), stops))
}

/// On the controller, for a reverse link: makes `topic` (writable here, with the id of the
/// source's topic) a mirror again, after creating its quarantine topic with each partition led
/// where the topic's partition is (the leader moves the tail into it locally).
async fn adopt_topic(
    cluster: &Cluster,
    link: &str,
    connection: &mut Connection,
    topic: &str,
    local: &crate::cluster::metadata::TopicRecord,
) -> Result<(), String> {
    let (still_mirrors, stops) = source_mirror_facts(connection, topic).await?;
    if let Some(other) = still_mirrors {
        return Err(format!(
            "the source's topic {topic:?} still mirrors (its link {other:?}): promote or fail it over there first"
        ));
    }
    if stops.is_empty() {
        return Err(format!(
            "the source's topic {topic:?} never stopped mirroring this one: nothing tells where they diverged"
        ));
    }
    let quarantine = quarantine_name(topic);
    if !cluster.view().meta.topics.contains_key(&quarantine) {
        let assignments: Vec<Vec<i32>> = local
            .partitions
            .iter()
            .map(|p| {
                let mut replicas = p.replicas.clone();
                if let Some(at) = replicas.iter().position(|r| *r == p.leader) {
                    replicas[..=at].rotate_right(1);
                }
                replicas
            })
            .collect();
        let created = cluster
            .propose(Command::CreateTopic {
                name: quarantine.clone(),
                id: Uuid::new_v4(),
                partitions: local.partitions.len() as i32,
                replication_factor: local
                    .partitions
                    .first()
                    .map_or(1, |p| p.replicas.len() as i16),
                assignments: Some(assignments),
                configs: crate::topic_config::TopicConfigs::new(),
                mirror: None,
            })
            .await;
        Outcome::of(created).map_err(|e| format!("cannot create {quarantine}: {}", e.message))?;
        tracing::info!(%link, %topic, %quarantine, "created the quarantine topic");
    }
    let adopted = cluster
        .propose(Command::AdoptMirror {
            topic: topic.to_owned(),
            link: link.to_owned(),
        })
        .await;
    Outcome::of(adopted).map_err(|e| e.message)?;
    tracing::info!(%link, %topic, "turning the topic back into a mirror of its new source");
    Ok(())
}

/// On the leader of a partition a reverse link turns into a mirror: moves the records past the
/// divergence point (where the source's copy stopped mirroring this one) to the quarantine
/// topic, waits until the quarantine's ISR holds them, cuts the log there, and reports it
/// ([`Command::AdoptPartition`]). A leader that dies between the move and the report leaves the
/// moved batches in the quarantine; its successor finds them there (same CRCs) and does not
/// move them twice.
async fn adopt_partition(
    broker: &Broker,
    link: &LinkRecord,
    replica: &Arc<Replica>,
) -> Result<(), String> {
    let epoch = replica.role().leader_epoch;
    let mut connection = Source::of(link)?.connect_any().await?;
    let (still_mirrors, stops) = source_mirror_facts(&mut connection, &replica.topic).await?;
    if let Some(other) = still_mirrors {
        return Err(format!(
            "the source's topic {:?} still mirrors (its link {other:?})",
            replica.topic
        ));
    }
    let Some(stop) = stops.get(&replica.index).copied() else {
        return Err(format!(
            "the source's {}-{} never stopped mirroring this one",
            replica.topic, replica.index
        ));
    };
    let (start, _, end) = replica.offsets();
    let cut = stop.clamp(start, end);
    // A retry after this broker cut already (its report did not go through) reports what it
    // moved then.
    let mut quarantined = broker
        .mirror_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&(replica.topic.clone(), replica.index))
        .and_then(|p| p.cut)
        .filter(|(at, _)| *at == cut && end == cut)
        .map_or(0, |(_, moved)| moved);
    if cut < end {
        let quarantine = quarantine_name(&replica.topic);
        let view = broker.cluster.view();
        let target = broker
            .replicas
            .leader(&view.meta, &quarantine, replica.index)
            .map_err(|e| {
                format!(
                    "waiting to lead {quarantine}-{} (its records move there first): {}",
                    replica.index, e.message
                )
            })?;
        let (from, into) = (Arc::clone(replica), Arc::clone(&target));
        let moved_to = tokio::task::spawn_blocking(move || {
            let tail = from.read_tail(cut, true)?;
            let (q_start, _, q_end) = into.offsets();
            let there = into.read_tail((q_end - (end - cut)).max(q_start), false)?;
            let skip = moved_already(&there, &tail);
            into.append_moved(&tail[skip..], into.role().leader_epoch)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.message)?;
        broker.appended.notify_waiters();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while target.high_watermark() < moved_to {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{quarantine}-{}: its ISR has not taken the moved records in 30 s",
                    replica.index
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        quarantined = end - cut;
        tracing::warn!(topic = %replica.topic, partition = replica.index, from = cut, to = end, %quarantine, "moved the diverged records to quarantine");
    }
    let r = Arc::clone(replica);
    tokio::task::spawn_blocking(move || r.cut_for_adoption(cut, epoch))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.message)?;
    progress(broker, replica, |p| p.cut = Some((cut, quarantined)));
    let proposed = broker
        .cluster
        .propose(Command::AdoptPartition {
            topic: replica.topic.clone(),
            partition: replica.index,
            leader_epoch: epoch,
            offset: cut,
            quarantined,
        })
        .await;
    Outcome::of(proposed).map_err(|e| e.message)?;
    replica.adopted(epoch + 1);
    tracing::info!(topic = %replica.topic, partition = replica.index, offset = cut, quarantined, "partition mirrors its new source from here");
    Ok(())
}

/// The CRC of each whole batch in `records`.
fn batch_crcs(records: &[u8]) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let Ok(header) = hdi_log::batch::parse_header(&records[at..], usize::MAX) else {
            break;
        };
        let Some(crc) = records.get(at + 17..at + 21) else {
            break;
        };
        out.push((
            u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]),
            header.size(),
        ));
        at += header.size();
    }
    out
}

/// How many leading bytes of `tail` the quarantine already ends with (a predecessor moved
/// them): the longest run of `tail`'s first batches that are `there`'s last, by CRC.
fn moved_already(there: &[u8], tail: &[u8]) -> usize {
    let there = batch_crcs(there);
    let tail = batch_crcs(tail);
    for count in (1..=there.len().min(tail.len())).rev() {
        let ours = tail[..count].iter().map(|(crc, _)| crc);
        if there[there.len() - count..]
            .iter()
            .map(|(crc, _)| crc)
            .eq(ours)
        {
            return tail[..count].iter().map(|(_, size)| size).sum();
        }
    }
    0
}

/// The problem of mirror topics whose source topic has another id.
fn foreign_topics(topics: &[String]) -> String {
    format!(
        "the source's topic {} has another topic id than its mirror here (re-created, or another cluster): not mirrored",
        topics.join(", ")
    )
}

/// On every broker: copies the mirror partitions this broker leads from their sources. Runs
/// until dropped.
pub async fn run_mirroring(broker: Arc<Broker>) {
    let mut links: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut metadata = broker.cluster.metadata.clone();
    loop {
        let view = Arc::clone(&metadata.borrow_and_update());
        links.retain(|name, task| {
            let keep = view.meta.links.contains_key(name) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for name in view.meta.links.keys() {
            if !links.contains_key(name) {
                let task = tokio::spawn(mirror_link(Arc::clone(&broker), name.clone()));
                links.insert(name.clone(), task);
            }
        }
        if metadata.changed().await.is_err() {
            for task in links.values() {
                task.abort();
            }
            return;
        }
    }
}

/// One link's mirror partitions led here, fetched from their source leaders.
async fn mirror_link(broker: Arc<Broker>, name: String) {
    let mut leaders: HashMap<i32, (String, Connection)> = HashMap::new();
    let mut groups = GroupSync {
        name: name.clone(),
        due: tokio::time::Instant::now(),
        copied: HashMap::new(),
    };
    let mut failing: Option<String> = None;
    loop {
        let view = broker.cluster.view();
        let Some(link) = view.meta.links.get(&name).cloned() else {
            return;
        };
        let (adopting, led): (Vec<Arc<Replica>>, Vec<Arc<Replica>>) = broker
            .replicas
            .all()
            .into_iter()
            .filter(|r| {
                r.is_leader()
                    && view.meta.topics.get(&r.topic).is_some_and(|t| {
                        t.mirror.as_deref() == Some(name.as_str())
                            && !t.mirror_stopped.contains_key(&r.index)
                    })
            })
            .partition(|r| {
                view.meta
                    .topics
                    .get(&r.topic)
                    .is_some_and(|t| t.mirror_adopting.contains(&r.index))
            });
        keep_progress(&broker, &view, &name, led.iter().chain(&adopting));
        if led.is_empty() && adopting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Every partition led here has an entry from now on (its `since_ms` starts the clock
        // of `source_unavailable`).
        for replica in led.iter().chain(&adopting) {
            progress(&broker, replica, |p| {
                p.paused = link.state == LinkState::Paused;
            });
        }
        if link.state == LinkState::Paused {
            let outcome = probe_source(&broker, &name, &link, &led).await;
            report(&broker, &name, "mirroring", outcome.as_ref().err());
            tokio::time::sleep(PAUSED_PROBE_INTERVAL).await;
            continue;
        }
        if link.state == LinkState::Failover {
            // The source is lost: stop with what was copied.
            for replica in &led {
                if let Err(reason) = stop_partition(&broker, &name, replica, true).await {
                    tracing::warn!(link = %name, topic = %replica.topic, partition = replica.index, %reason, "cannot stop a mirror partition yet");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if !adopting.is_empty() {
            // A reverse link: each partition's divergent tail goes to quarantine first.
            for replica in &adopting {
                let outcome = adopt_partition(&broker, &link, replica).await;
                set_problem(&broker, replica, outcome.as_ref().err());
                if let Err(reason) = outcome {
                    tracing::warn!(link = %name, topic = %replica.topic, partition = replica.index, %reason, "cannot turn the partition into a mirror yet");
                }
            }
            if led.is_empty() {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        }
        let outcome = mirror_round(&broker, &view, &link, &led, &mut leaders, &mut groups).await;
        report(&broker, &name, "mirroring", outcome.as_ref().err());
        match outcome {
            Ok(()) => {
                if failing.take().is_some() {
                    tracing::info!(link = %name, "mirroring again");
                }
            }
            Err(reason) => {
                if failing.as_ref() != Some(&reason) {
                    tracing::warn!(link = %name, %reason, "mirroring paused");
                    failing = Some(reason);
                }
                leaders.clear();
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Updates what this broker knows of a mirror partition it leads.
fn progress(broker: &Broker, replica: &Replica, update: impl FnOnce(&mut MirrorProgress)) {
    let mut all = broker
        .mirror_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = all
        .entry((replica.topic.clone(), replica.index))
        .or_insert_with(|| MirrorProgress::new(now_ms()));
    update(entry);
}

fn set_problem(broker: &Broker, replica: &Replica, problem: Option<&String>) {
    progress(broker, replica, |p| p.problem = problem.cloned());
}

/// Forgets the partitions of link `name` this broker no longer leads.
fn keep_progress<'a>(
    broker: &Broker,
    view: &MetadataView,
    name: &str,
    led: impl Iterator<Item = &'a Arc<Replica>>,
) {
    let led: std::collections::BTreeSet<(String, i32)> =
        led.map(|r| (r.topic.clone(), r.index)).collect();
    let mut all = broker
        .mirror_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.retain(|key, _| {
        led.contains(key)
            || view
                .meta
                .topics
                .get(&key.0)
                .is_none_or(|t| t.mirror.as_deref() != Some(name))
    });
}

/// Where a link's partitions led here are led on the source: the source, its brokers'
/// addresses, and the replicas by source leader (partitions whose source topic has another id
/// are left out and reported).
type SourceLeaders = (
    Source,
    HashMap<i32, String>,
    BTreeMap<i32, Vec<Arc<Replica>>>,
);

async fn source_leaders(
    broker: &Broker,
    name: &str,
    link: &LinkRecord,
    led: &[Arc<Replica>],
) -> Result<SourceLeaders, String> {
    let source = Source::of(link)?;
    let mut bootstrap = source.connect_any().await?;
    let topics: Vec<String> = {
        let mut names: Vec<String> = led.iter().map(|r| r.topic.clone()).collect();
        names.sort();
        names.dedup();
        names
    };
    let metadata = source_metadata(&mut bootstrap, Some(topics)).await?;
    let addresses: HashMap<i32, String> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let mut by_leader: BTreeMap<i32, Vec<Arc<Replica>>> = BTreeMap::new();
    let mut foreign = Vec::new();
    for replica in led {
        let Some(source_topic) = metadata.topics.iter().find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.0.as_str() == replica.topic)
        }) else {
            continue;
        };
        // Only the source topic whose id the mirror carries feeds it.
        if !source_topic.topic_id.is_nil() && source_topic.topic_id != replica.topic_id {
            set_problem(
                broker,
                replica,
                Some(&foreign_topics(std::slice::from_ref(&replica.topic))),
            );
            if !foreign.contains(&replica.topic) {
                foreign.push(replica.topic.clone());
            }
            continue;
        }
        let leader = source_topic
            .partitions
            .iter()
            .find(|p| p.partition_index == replica.index)
            .map(|p| p.leader_id.0);
        if let Some(leader) = leader.filter(|l| *l >= 0) {
            by_leader
                .entry(leader)
                .or_default()
                .push(Arc::clone(replica));
        }
    }
    let foreign = (!foreign.is_empty()).then(|| foreign_topics(&foreign));
    report(broker, name, "source topics", foreign.as_ref());
    if by_leader.is_empty() {
        return Err(foreign.unwrap_or_else(|| {
            "the source has no leader for any of the mirrored partitions".into()
        }));
    }
    Ok((source, addresses, by_leader))
}

/// While a link is paused: asks the source for each partition's end (ListOffsets,
/// read_uncommitted: its high watermark, the end a fetch copies to), so that the lag shown stays true and a failover from the pause knows what
/// it leaves behind.
async fn probe_source(
    broker: &Broker,
    name: &str,
    link: &LinkRecord,
    led: &[Arc<Replica>],
) -> Result<(), String> {
    use kafka_protocol::messages::ListOffsetsRequest;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let (source, addresses, by_leader) = source_leaders(broker, name, link, led).await?;
    for (leader, replicas) in by_leader {
        let Some(address) = addresses.get(&leader) else {
            continue;
        };
        let mut connection = source.connect(address).await?;
        let mut by_topic: BTreeMap<&str, Vec<&Arc<Replica>>> = BTreeMap::new();
        for replica in &replicas {
            by_topic.entry(&replica.topic).or_default().push(replica);
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(KafkaBrokerId(-1))
            .with_isolation_level(0)
            .with_topics(
                by_topic
                    .iter()
                    .map(|(topic, parts)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|r| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(r.index)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let answer = call(&mut connection, &request, 4).await?;
        let now = now_ms();
        for topic in &answer.topics {
            for partition in topic.partitions.iter().filter(|p| p.error_code == 0) {
                if let Some(replica) = replicas.iter().find(|r| {
                    r.topic == topic.name.as_str() && r.index == partition.partition_index
                }) {
                    let end = partition.offset;
                    let have = replica.offsets().2;
                    progress(broker, replica, |p| {
                        p.source_end = end;
                        p.source_seen_ms = now;
                        if have >= end {
                            p.caught_up_ms = now;
                        }
                    });
                }
            }
        }
    }
    Ok(())
}

/// One round: finds each partition's source leader and fetches from each leader once.
async fn mirror_round(
    broker: &Arc<Broker>,
    view: &Arc<MetadataView>,
    link: &LinkRecord,
    led: &[Arc<Replica>],
    connections: &mut HashMap<i32, (String, Connection)>,
    groups: &mut GroupSync,
) -> Result<(), String> {
    let (source, addresses, by_leader) = source_leaders(broker, &groups.name, link, led).await?;
    // A round lasts a while: one task per source leader fetches (each fetch long-polls, so the
    // leaders are asked side by side) with the leaders found, until the round's end, a change
    // of this cluster's metadata (a leadership moved, a mirror partition was added) or, during
    // a switchover, partitions that caught up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let promote = link.state == LinkState::Promote;
    let mut tasks = tokio::task::JoinSet::new();
    for (leader, replicas) in by_leader {
        let Some(address) = addresses.get(&leader).cloned() else {
            continue;
        };
        let kept = connections
            .remove(&leader)
            .filter(|(a, _)| *a == address)
            .map(|(_, c)| c);
        let (broker, source, view) = (Arc::clone(broker), source.clone(), Arc::clone(view));
        tasks.spawn(async move {
            let mut connection = match kept {
                Some(connection) => connection,
                None => source.connect(&address).await?,
            };
            let mut caught_up = Vec::new();
            while tokio::time::Instant::now() < deadline
                && Arc::ptr_eq(&view, &broker.cluster.view())
            {
                caught_up = fetch_once(&broker, &mut connection, &replicas).await?;
                if promote && !caught_up.is_empty() {
                    break;
                }
            }
            Ok::<_, String>((leader, address, connection, caught_up))
        });
    }
    if tasks.is_empty() {
        return Err("the source's metadata gives no address for its partition leaders".into());
    }
    loop {
        let sync_due = groups.due;
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else {
                    return Ok(());
                };
                let (leader, address, connection, caught_up) =
                    joined.map_err(|e| format!("a fetch task failed: {e}"))??;
                connections.insert(leader, (address, connection));
                // A planned switchover: a partition stops once it holds all its source
                // committed, after one more copy of the groups' offsets (which can now reach
                // the end).
                if promote && !caught_up.is_empty() {
                    if !link.groups.is_empty() {
                        groups.sync(broker, &source, link, &addresses, led).await?;
                    }
                    for replica in &caught_up {
                        stop_partition(broker, &groups.name, replica, false).await?;
                    }
                }
            }
            () = tokio::time::sleep_until(sync_due), if !link.groups.is_empty() => {
                groups.due = tokio::time::Instant::now() + GROUP_SYNC_INTERVAL;
                groups.sync(broker, &source, link, &addresses, led).await?;
            }
        }
    }
}

/// How often each broker copies the committed offsets of a link's groups for the mirror
/// partitions it leads.
pub const GROUP_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A link's copying of consumer-group offsets on one broker.
struct GroupSync {
    name: String,
    due: tokio::time::Instant,
    /// What was last proposed, by `(group, topic, partition)`.
    copied: HashMap<(String, String, i32), i64>,
}

impl GroupSync {
    /// Copies, for the mirror partitions this broker leads, the source's committed offsets of
    /// the link's groups, each clamped to this cluster's high watermark (a consumer moved here is
    /// never handed an offset past the mirrored data). The quorum drops the copy for a group a
    /// client committed for here ([`crate::groups::offsets::apply_sync`]).
    async fn sync(
        &mut self,
        broker: &Broker,
        source: &Source,
        link: &LinkRecord,
        brokers: &HashMap<i32, String>,
        led: &[Arc<Replica>],
    ) -> Result<(), String> {
        use kafka_protocol::messages::{
            FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
        };
        let mut names = std::collections::BTreeSet::new();
        for address in brokers.values() {
            let mut connection = source.connect(address).await?;
            let listed = call(&mut connection, &ListGroupsRequest::default(), 3).await?;
            if listed.error_code == 0 {
                for group in listed.groups {
                    if link.matches_group(group.group_id.as_str()) {
                        names.insert(group.group_id.0.to_string());
                    }
                }
            }
        }
        // One connection to the bootstrap servers and one per coordinator, for every group.
        let mut bootstrap = match names.is_empty() {
            true => return Ok(()),
            false => source.connect_any().await?,
        };
        let mut coordinators: HashMap<String, Connection> = HashMap::new();
        for group in names {
            let found = call(
                &mut bootstrap,
                &FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_string(group.clone()))
                    .with_key_type(0),
                3,
            )
            .await?;
            if found.error_code != 0 {
                continue;
            }
            let address = format!("{}:{}", found.host.as_str(), found.port);
            if !coordinators.contains_key(&address) {
                let connection = source.connect(&address).await?;
                coordinators.insert(address.clone(), connection);
            }
            let Some(coordinator) = coordinators.get_mut(&address) else {
                continue;
            };
            let fetched = call(
                coordinator,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                    .with_topics(None),
                7,
            )
            .await?;
            if fetched.error_code != 0 {
                continue;
            }
            let mut offsets = Vec::new();
            for topic in &fetched.topics {
                for partition in &topic.partitions {
                    let Some(replica) = led.iter().find(|r| {
                        r.topic == topic.name.as_str() && r.index == partition.partition_index
                    }) else {
                        continue;
                    };
                    if partition.error_code != 0 || partition.committed_offset < 0 {
                        continue;
                    }
                    let offset = partition.committed_offset.min(replica.high_watermark());
                    let key = (group.clone(), replica.topic.clone(), replica.index);
                    if self.copied.get(&key) != Some(&offset) {
                        offsets.push((replica.topic.clone(), replica.index, offset));
                    }
                }
            }
            if offsets.is_empty() {
                continue;
            }
            let proposed = broker
                .cluster
                .propose(Command::SyncGroupOffsets {
                    link: self.name.clone(),
                    group: group.clone(),
                    offsets: offsets.clone(),
                })
                .await;
            if proposed.is_ok() {
                for (topic, partition, offset) in offsets {
                    self.copied
                        .insert((group.clone(), topic, partition), offset);
                }
            }
        }
        Ok(())
    }
}

/// Sends one request to a source and waits (10 s at most) for its answer.
async fn call<R: hdi_kafka_client::Request>(
    connection: &mut Connection,
    request: &R,
    version: i16,
) -> Result<R::Response, String> {
    tokio::time::timeout(Duration::from_secs(10), connection.call(request, version))
        .await
        .map_err(|_| "the source did not answer in 10 s".to_owned())?
        .map_err(|e| e.to_string())
}

/// One Fetch to a source leader for `replicas` (each from its log end). Returns the replicas
/// that hold everything the source has committed (nothing new came, and their log end is the
/// source's high watermark).
async fn fetch_once(
    broker: &Broker,
    connection: &mut Connection,
    replicas: &[Arc<Replica>],
) -> Result<Vec<Arc<Replica>>, String> {
    // Per topic: each replica, its log end (the fetch offset) and its leader epoch then.
    type Asked<'a> = Vec<(&'a Arc<Replica>, i64, i32)>;
    let mut by_topic: BTreeMap<&str, Asked<'_>> = BTreeMap::new();
    for replica in replicas {
        let (_, _, end) = replica.offsets();
        by_topic.entry(replica.topic.as_str()).or_default().push((
            replica,
            end,
            replica.role().leader_epoch,
        ));
    }
    let request = FetchRequest::default()
        .with_replica_id(KafkaBrokerId(-1))
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .iter()
                .map(|(topic, parts)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string((*topic).to_owned())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(r, end, _)| {
                                    FetchPartition::default()
                                        .with_partition(r.index)
                                        .with_current_leader_epoch(-1)
                                        .with_fetch_offset(*end)
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(PARTITION_MAX_BYTES)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        connection.call(&request, FETCH_VERSION),
    )
    .await
    .map_err(|_| "the source did not answer a Fetch in 30 s".to_owned())?
    .map_err(|e| e.to_string())?;
    let mut caught_up = Vec::new();
    let mut writes = Vec::new();
    for topic in &response.responses {
        let name = topic.topic.0.as_str();
        let Some(parts) = by_topic.get(name) else {
            continue;
        };
        for answer in &topic.partitions {
            let Some((replica, end, epoch)) = parts
                .iter()
                .find(|(r, _, _)| r.index == answer.partition_index)
            else {
                continue;
            };
            match answer.error_code {
                0 => {
                    let records = whole_batches(answer.records.clone().unwrap_or_default());
                    if records.is_empty() && *end == answer.high_watermark {
                        caught_up.push(Arc::clone(replica));
                    }
                    let (count, next) = batches_end(&records, *end);
                    let (now, hw, size) = (now_ms(), answer.high_watermark, records.len());
                    progress(broker, replica, |p| {
                        p.source_end = hw;
                        p.source_seen_ms = now;
                        p.records += count;
                        p.bytes += size as u64;
                        p.problem = None;
                        if next >= hw {
                            p.caught_up_ms = now;
                        }
                    });
                    let records = if broker.config.testing_mirror_rewrites_a_batch
                        && replica.index == 0
                        && *end == 0
                        && !records.is_empty()
                    {
                        seeded_rewrite(&records)
                    } else {
                        records
                    };
                    // Nothing new and the same log start: nothing to do here (most partitions
                    // of a quiet topic, every round).
                    if !records.is_empty() || answer.log_start_offset > replica.offsets().0 {
                        writes.push((
                            Arc::clone(replica),
                            records,
                            answer.log_start_offset,
                            *epoch,
                            *end,
                        ));
                    }
                }
                code if code == codes::OFFSET_OUT_OF_RANGE && answer.log_start_offset > *end => {
                    // The source's retention removed what the mirror had not copied yet: start
                    // again at the source's log start (the records in between are gone there).
                    tracing::warn!(
                        topic = name,
                        partition = answer.partition_index,
                        from = *end,
                        to = answer.log_start_offset,
                        "mirror skips to its source's log start"
                    );
                    replica
                        .reset_mirror_to(answer.log_start_offset, *epoch)
                        .map_err(|e| e.message)?;
                }
                code => {
                    return Err(format!(
                        "{name}-{}: the source answered {}",
                        answer.partition_index,
                        codes::error_name(code)
                    ));
                }
            }
        }
    }
    // Every partition's batches in one blocking task.
    let appended = tokio::task::spawn_blocking(move || {
        let mut appended = false;
        for (replica, records, start, epoch, end) in writes {
            // A source whose log starts inside a batch (DeleteRecords at any offset) answers a
            // fetch at its log start with that whole batch: an empty mirror starts at the
            // batch's base offset (then follows the source's log start past it).
            if let Ok(first) = hdi_log::batch::parse_header(&records, usize::MAX)
                && first.base_offset < end
            {
                let (own_start, _, own_end) = replica.offsets();
                if own_start == own_end && first.base_offset >= 0 {
                    replica
                        .reset_mirror_to(first.base_offset, epoch)
                        .map_err(|e| e.message)?;
                }
            }
            match replica.append_mirrored(&records, start, epoch) {
                Ok(moved) => appended |= moved,
                Err(error) => {
                    return Err(format!(
                        "{}-{}: cannot append what the source sent at offset {end}: {}",
                        replica.topic, replica.index, error.message
                    ));
                }
            }
        }
        Ok(appended)
    })
    .await
    .map_err(|e| e.to_string())??;
    if appended {
        broker.appended.notify_waiters();
    }
    Ok(caught_up)
}

/// Stops copying a partition this broker leads (its link is promoted or failed over): reports
/// its last epoch and producer ids, where it stopped and what it knew of its source to the
/// quorum ([`Command::StopMirror`]).
async fn stop_partition(
    broker: &Broker,
    link: &str,
    replica: &Replica,
    failover: bool,
) -> Result<(), String> {
    let (leader_epoch, last_epoch, max_producer_id) = replica.mirror_stop_report();
    let known = broker
        .mirror_progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&(replica.topic.clone(), replica.index))
        .cloned()
        .unwrap_or_else(|| MirrorProgress::new(now_ms()));
    let offset = replica.offsets().2;
    let stop = MirrorStop {
        link: link.to_owned(),
        offset,
        source_end: known.source_end,
        source_seen_ms: known.source_seen_ms,
        caught_up_ms: known.caught_up_ms,
        stopped_ms: now_ms(),
        failover,
    };
    let proposed = broker
        .cluster
        .propose(Command::StopMirror {
            topic: replica.topic.clone(),
            partition: replica.index,
            leader_epoch,
            last_epoch,
            max_producer_id,
            stop: Some(stop.clone()),
        })
        .await;
    Outcome::of(proposed).map_err(|e| e.message)?;
    tracing::info!(topic = %replica.topic, partition = replica.index, last_epoch, log_end = offset, loss_records = stop.loss_records(), loss_ms = stop.loss_ms(), "mirror partition stopped");
    Ok(())
}

/// The seeded bug of `--testing-mirror-rewrites-a-batch`: the first batch's last value byte
/// changed (the byte before the last record's header count, for records without headers), its
/// CRC made valid again.
fn seeded_rewrite(records: &Bytes) -> Bytes {
    let mut bytes = records.to_vec();
    if let Ok(header) = hdi_log::batch::parse_header(&bytes, usize::MAX)
        && let Some(byte) = bytes.get_mut(header.size().saturating_sub(2))
    {
        *byte ^= 0x20;
        hdi_log::batch::reseal(&mut bytes);
    }
    Bytes::from(bytes)
}

/// The number of records in `records` and the offset after them (`from` when empty).
fn batches_end(records: &[u8], from: i64) -> (u64, i64) {
    let (mut count, mut next, mut at) = (0u64, from, 0);
    while at < records.len() {
        let Ok(header) = hdi_log::batch::parse_header(&records[at..], usize::MAX) else {
            break;
        };
        count += u64::try_from(header.records_count).unwrap_or(0);
        next = header.base_offset + i64::from(header.last_offset_delta) + 1;
        at += header.size();
    }
    (count, next)
}

/// The whole batches at the start of a fetch answer (a source may cut its last batch short).
fn whole_batches(records: Bytes) -> Bytes {
    let mut at = 0;
    while at < records.len() {
        match hdi_log::batch::parse_header(&records[at..], usize::MAX) {
            Ok(header) if at + header.size() <= records.len() => at += header.size(),
            _ => break,
        }
    }
    records.slice(..at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_read_from_cluster_configs() {
        let set = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        let links = links_after(
            &BTreeMap::new(),
            &[
                set("hdi.link.dr.bootstrap.servers", "a:9092,b:9092"),
                set("hdi.link.dr.topics", "orders, pay*"),
            ],
            true,
        )
        .unwrap_or_default();
        let dr = &links["dr"];
        assert_eq!(dr.bootstrap, "a:9092,b:9092");
        assert!(dr.matches("orders") && dr.matches("payments") && !dr.matches("order"));
        assert!(!dr.matches("__consumer_offsets"));
        // Topics alone change the filter; deleting the bootstrap key removes the link.
        let changed =
            links_after(&links, &[set("hdi.link.dr.topics", "x")], true).unwrap_or_default();
        assert_eq!(changed["dr"].topics, vec!["x".to_owned()]);
        let gone = links_after(
            &links,
            &[("hdi.link.dr.bootstrap.servers".to_owned(), None)],
            true,
        )
        .unwrap_or_default();
        assert!(gone.is_empty());
        // Bad keys and links without a source are refused, naming what is wrong.
        let error = links_after(&links, &[set("log.retention.ms", "1")], true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(error.contains("log.retention.ms"), "{error}");
        let error = links_after(&BTreeMap::new(), &[set("hdi.link.x.topics", "a")], true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(error.contains("hdi.link.x.bootstrap.servers"), "{error}");
        assert!(links_after(&BTreeMap::new(), &[set("hdi.link.a.b.topics", "a")], true).is_err());
        // Security settings must fit the protocol.
        let error = links_after(&links, &[set("hdi.link.dr.sasl.username", "mirror")], true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            error.contains("only for SASL_PLAINTEXT and SASL_SSL"),
            "{error}"
        );
        let error = links_after(&links, &[set("hdi.link.dr.security.protocol", "TLS")], true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            error.contains("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            "{error}"
        );
    }

    #[test]
    fn links_pause_exclude_and_reverse() {
        let set = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
        let links = links_after(
            &BTreeMap::new(),
            &[
                set("hdi.link.dr.bootstrap.servers", "a:9092"),
                set("hdi.link.dr.topics", "pay*"),
                set("hdi.link.dr.topics.exclude", "pay-test*"),
                set("hdi.link.dr.groups", "*"),
                set("hdi.link.dr.groups.exclude", "scratch"),
                set("hdi.link.dr.state", "paused"),
                set("hdi.link.dr.reverse", "true"),
            ],
            true,
        )
        .unwrap_or_default();
        let dr = &links["dr"];
        assert!(dr.matches("payments") && !dr.matches("pay-test-1"));
        assert!(dr.matches_group("billing") && !dr.matches_group("scratch"));
        assert_eq!((dr.state, dr.reverse), (LinkState::Paused, true));
        // They read back as they were set.
        let keys = link_configs(&links);
        for key in ["topics.exclude", "groups.exclude", "reverse", "state"] {
            assert!(
                keys.iter().any(|(k, _)| k == &format!("hdi.link.dr.{key}")),
                "{key}"
            );
        }
        let error = links_after(&links, &[set("hdi.link.dr.reverse", "yes")], true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(error.contains("true or false"), "{error}");
        // Paused and mirroring go both ways; stopping goes one way.
        assert!(LinkState::Paused.may_become(LinkState::Mirroring));
        assert!(LinkState::Mirroring.may_become(LinkState::Paused));
        assert!(LinkState::Paused.may_become(LinkState::Promote));
        assert!(!LinkState::Promote.may_become(LinkState::Paused));
        assert!(LinkState::Promote.may_become(LinkState::Failover));
        assert!(!LinkState::Failover.may_become(LinkState::Promote));
    }

    #[test]
    fn batches_already_moved_are_not_moved_twice() {
        let batch = |offset, value: &[u8]| hdi_log::batch::build_batch(offset, 1, &[value]);
        let tail = [batch(10, b"a"), batch(11, b"b"), batch(12, b"c")].concat();
        // The quarantine ends with the tail's first two batches (re-based: same CRCs).
        let there = [batch(0, b"x"), batch(1, b"a"), batch(2, b"b")].concat();
        let skip = moved_already(&there, &tail);
        assert_eq!(skip, 2 * batch(0, b"a").len());
        assert_eq!(batch_crcs(&tail[skip..]).len(), 1);
        assert_eq!(moved_already(&[], &tail), 0);
        assert_eq!(moved_already(&batch(0, b"zz"), &tail), 0);
        assert_eq!(batches_end(&tail, 10), (3, 13));
        assert_eq!(batches_end(&[], 7), (0, 7));
    }

    #[test]
    fn a_cut_last_batch_is_left_for_the_next_fetch() {
        let first = hdi_log::batch::build_batch(0, 1, &[b"one".as_slice()]);
        let second = hdi_log::batch::build_batch(1, 2, &[b"two".as_slice()]);
        let mut both = first.clone();
        both.extend_from_slice(&second[..second.len() - 3]);
        assert_eq!(whole_batches(Bytes::from(both)).len(), first.len());
        assert!(whole_batches(Bytes::from_static(b"junk")).is_empty());
    }
}
