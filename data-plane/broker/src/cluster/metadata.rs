//! The cluster's metadata as the Raft log replicates it: brokers, topics, partitions with their
//! replicas, leader, ISR and epochs, and topic configs; the [`Command`]s that change it; and
//! [`ClusterMetadata::apply`], which every broker runs on every committed command.
//!
//! `apply` is pure and deterministic: the same commands in the same order give the same state on
//! every broker. Elections are made inside `apply` from the state alone (never from a clock or a
//! broker's local view), so no two brokers can disagree about a leader or an epoch. The rules:
//! - A partition's leader is always an unfenced member of its ISR, or -1 (offline). Only ISR
//!   members can become leader (no unclean election).
//! - Every leader change bumps `leader_epoch`; every leader or ISR change bumps
//!   `partition_epoch`. An `AlterPartition` from a leader applies only if it names the current
//!   leader epoch and partition epoch (a zombie leader's request is refused).
//! - Fencing a broker (dead, or shutting down) moves leadership to another ISR member and removes
//!   it from ISRs, except where it is the last ISR member: there the ISR is kept and the partition
//!   stays offline until that broker returns.

use std::collections::{BTreeMap, BTreeSet};

use hdi_kafka_client::codes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::security::acl::AclBinding;
use crate::security::quota::{Changes, Entity, Quotas};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::state::KafkaError;
use crate::topic_config::TopicConfigs;

/// A broker id (Kafka's node id).
pub type BrokerId = i32;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    /// Node id.
    pub id: BrokerId,
    /// Changes on every start of the broker process.
    pub incarnation: Uuid,
    /// Advertised Kafka listener host.
    pub host: String,
    /// Advertised Kafka listener port.
    pub port: i32,
    /// Rack (fault domain), if set.
    pub rack: Option<String>,
    /// `host:port` of the broker's quorum/replication listener.
    pub quorum_addr: String,
    /// Advertised `(host, port)` of each Kafka listener, by name (`PLAINTEXT`, `SASL_SSL`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, (String, i32)>,
    /// A fenced broker leads nothing and is not offered to clients.
    pub fenced: bool,
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Leader, or -1 when offline.
    pub leader: BrokerId,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every leader or ISR change.
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment (also in `replicas`).
    #[serde(default)]
    pub adding: Vec<BrokerId>,
    /// Replicas being removed by a reassignment (still in `replicas` until it completes).
    #[serde(default)]
    pub removing: Vec<BrokerId>,
    /// The replica list before the reassignment in progress (what a cancel restores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub original: Vec<BrokerId>,
}

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic id.
    pub id: Uuid,
    /// Explicit configs.
    pub configs: TopicConfigs,
    /// Partitions, by index.
    pub partitions: Vec<PartitionRecord>,
    /// The cluster link this topic mirrors its source topic (of the same name) from: a mirror
    /// topic is read-only here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Partitions of a mirror topic whose mirroring has stopped (its link is promoted or failed
    /// over), with the last leader epoch their logs hold; once every partition has stopped the
    /// topic is writable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirror_stopped: BTreeMap<i32, i32>,
    /// Where each partition stopped mirroring, the last time it did (kept once the topic is
    /// writable): the failover's loss accounting, and the divergence point a reverse link from
    /// the old source cuts its log at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stops: BTreeMap<i32, MirrorStop>,
    /// Partitions of a writable topic being turned into a mirror by a reverse link: each waits
    /// for its leader to move its divergent tail to the quarantine topic and cut its log.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mirror_adopting: BTreeSet<i32>,
    /// How each partition was turned into a mirror by a reverse link (the last time).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adopted: BTreeMap<i32, Adoption>,
}

/// Where a mirror partition stopped copying its source, and what it knew of the source then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorStop {
    /// The link it mirrored through.
    pub link: String,
    /// Its log end when it stopped: everything below is the source's, byte for byte.
    pub offset: i64,
    /// The source's high watermark in its last answer (-1: never heard).
    pub source_end: i64,
    /// When (Unix ms) the source last answered (-1: never).
    pub source_seen_ms: i64,
    /// When (Unix ms) the partition last held everything the source had committed (-1: never).
    pub caught_up_ms: i64,
    /// When (Unix ms) it stopped.
    pub stopped_ms: i64,
    /// Whether it stopped by a forced failover (else a planned switchover).
    pub failover: bool,
}

impl MirrorStop {
    /// Records the source had committed, by its last answer, that this partition lacks: a lower
    /// bound of the loss, exact unless the source took more before it went silent.
    pub fn loss_records(&self) -> i64 {
        (self.source_end - self.offset).max(0)
    }

    /// How long before its last answer the source held records the partition lacks (0 when it
    /// was caught up at the last answer).
    pub fn loss_ms(&self) -> i64 {
        if self.loss_records() == 0 || self.caught_up_ms < 0 {
            0
        } else {
            (self.source_seen_ms - self.caught_up_ms).max(0)
        }
    }
}

/// How a partition became a mirror again (a reverse link): where its log was cut and how many
/// records it moved to the quarantine topic first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// The divergence point: the log end of the partition's new source when that source stopped
    /// mirroring this one.
    pub offset: i64,
    /// Records moved to the quarantine topic (those at and above `offset`).
    pub quarantined: i64,
    /// The leader epoch that began after the cut: a follower learning it truncates to `offset`
    /// before it fetches.
    pub epoch: i32,
}

/// A cluster link, defined on the cluster that mirrors (the secondary): where its source
/// cluster is and which of its topics to mirror.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The source cluster's bootstrap servers (`host:port`, comma-separated).
    pub bootstrap: String,
    /// Which source topics to mirror: literal names, or prefixes written `prefix*`.
    pub topics: Vec<String>,
    /// Which consumer groups' committed offsets to copy, as `topics`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// How the link reaches its source (`None`: PLAINTEXT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<LinkSecurity>,
    /// Mirroring, or stopping so that the mirror topics become writable here.
    #[serde(default, skip_serializing_if = "LinkState::is_mirroring")]
    pub state: LinkState,
    /// Source topics never mirrored even when `topics` matches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_exclude: Vec<String>,
    /// Groups never copied even when `groups` matches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_exclude: Vec<String>,
    /// A reverse link: a writable topic here with the id of a matching source topic (this
    /// cluster was that topic's source, and the source's mirror was promoted or failed over)
    /// becomes a mirror again, its divergent tail moved to `<topic>.quarantine` first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
}

/// What a link is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkState {
    /// Copying its source.
    #[default]
    Mirroring,
    /// Not copying for now (`mirroring` again resumes).
    Paused,
    /// A planned switchover: each mirror partition stops once it holds everything its source
    /// had committed (the source still reachable, its producers stopped), then the topics are
    /// writable here.
    Promote,
    /// Now, with what was copied so far (the source is lost).
    Failover,
}

impl LinkState {
    /// Whether the link is copying.
    pub fn is_mirroring(&self) -> bool {
        *self == LinkState::Mirroring
    }

    /// Whether the link is stopping its mirrors (promote or failover).
    pub fn is_stopping(self) -> bool {
        matches!(self, LinkState::Promote | LinkState::Failover)
    }

    /// Whether a link in this state may be set to `next`: mirroring and paused go both ways and
    /// on to promote or failover; promote only on to failover; failover nowhere.
    pub fn may_become(self, next: LinkState) -> bool {
        self == next
            || match self {
                LinkState::Mirroring | LinkState::Paused => true,
                LinkState::Promote => next == LinkState::Failover,
                LinkState::Failover => false,
            }
    }

    /// The word the link's `state` setting takes.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Mirroring => "mirroring",
            LinkState::Paused => "paused",
            LinkState::Promote => "promote",
            LinkState::Failover => "failover",
        }
    }
}

/// How a link reaches a secured source: a Kafka user of the source cluster (read-only ACLs are
/// enough) and the source's certificate authority.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSecurity {
    /// `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// The source's user (SASL protocols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Its password (SASL protocols): kept in this cluster's quorum, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The source's certificate authority, PEM (TLS protocols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for LinkSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSecurity")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether `name` matches one of `patterns` (literal names, or prefixes written `prefix*`).
pub fn matches_patterns(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        })
}

impl LinkRecord {
    /// Whether the link mirrors the source topic `name` (never an internal `__` topic).
    pub fn matches(&self, name: &str) -> bool {
        !name.starts_with("__")
            && matches_patterns(&self.topics, name)
            && !matches_patterns(&self.topics_exclude, name)
    }

    /// Whether the link copies the committed offsets of group `name`.
    pub fn matches_group(&self, name: &str) -> bool {
        matches_patterns(&self.groups, name) && !matches_patterns(&self.groups_exclude, name)
    }
}

/// The whole replicated metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Cluster id: set by the first broker registration.
    pub cluster_id: String,
    /// Brokers by id.
    pub brokers: BTreeMap<BrokerId, BrokerRecord>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicRecord>,
    /// SCRAM credentials by user and mechanism (salted: never a password).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// ACLs, sorted, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<AclBinding>,
    /// Client quotas, sorted by entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Quotas,
    /// Cluster links by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, LinkRecord>,
    /// The highest producer id found in partitions copied from another cluster when they
    /// stopped mirroring: producer ids allocated here are above it
    /// ([`crate::producers::ProducerIdAllocator::next`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub producer_id_floor: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// A change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker (re)started. A new incarnation of a known broker is fenced first (its old
    /// leaderships move away); it is unfenced once it has caught up with the metadata.
    RegisterBroker(BrokerRecord),
    /// The controller lost the broker's heartbeats, or the broker is shutting down.
    FenceBroker {
        /// Broker.
        id: BrokerId,
    },
    /// A fenced broker is back and caught up.
    UnfenceBroker {
        /// Broker.
        id: BrokerId,
    },
    /// Creates a topic; the replicas are placed by `apply` unless given.
    CreateTopic {
        /// Name.
        name: String,
        /// Id (chosen by the proposer).
        id: Uuid,
        /// Partition count.
        partitions: i32,
        /// Replication factor.
        replication_factor: i16,
        /// Explicit replica lists per partition, if the client gave them.
        assignments: Option<Vec<Vec<BrokerId>>>,
        /// Configs.
        configs: TopicConfigs,
        /// The cluster link the topic mirrors its source from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mirror: Option<String>,
    },
    /// A mirror partition's leader stops copying it (its link is promoted or failed over): the
    /// last leader epoch its log holds and the highest producer id in its producer state. When
    /// every partition of the topic has stopped, the topic becomes writable and each partition's
    /// leader epoch moves above every epoch its log holds.
    StopMirror {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The leader epoch the leader holds (a deposed leader is refused).
        leader_epoch: i32,
        /// The last leader epoch in its log.
        last_epoch: i32,
        /// The highest producer id in its producer state (-1 for none).
        max_producer_id: i64,
        /// Where it stopped and what it knew of its source ([`MirrorStop`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop: Option<MirrorStop>,
    },
    /// A reverse link turns a writable topic into a mirror of its source topic: the topic is
    /// read-only from here, and each partition's leader then cuts its divergent tail
    /// ([`Command::AdoptPartition`]).
    AdoptMirror {
        /// Topic.
        topic: String,
        /// The reverse link.
        link: String,
    },
    /// A partition's leader moved its divergent tail (at and above `offset`) to the quarantine
    /// topic and cut its log there: the partition mirrors from a new leader epoch, and each
    /// follower cuts its log at `offset` before fetching in it.
    AdoptPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The leader epoch the leader holds (a deposed leader is refused).
        leader_epoch: i32,
        /// The divergence point.
        offset: i64,
        /// Records moved to the quarantine topic.
        quarantined: i64,
    },
    /// Defines (`Some`) or removes (`None`) a cluster link.
    SetLink {
        /// Name.
        name: String,
        /// Its definition.
        link: Option<LinkRecord>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Raises a topic's partition count.
    CreatePartitions {
        /// Name.
        name: String,
        /// The new count.
        count: i32,
    },
    /// Replaces a topic's explicit configs.
    SetTopicConfigs {
        /// Name.
        name: String,
        /// The configs.
        configs: TopicConfigs,
    },
    /// A leader changes its partition's ISR (Kafka's AlterPartition).
    AlterPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The leader asking.
        leader: BrokerId,
        /// The leader epoch it holds.
        leader_epoch: i32,
        /// The partition epoch it holds.
        partition_epoch: i32,
        /// The ISR it wants.
        isr: Vec<BrokerId>,
    },
    /// Commits consumer-group offsets (applied to the shared offsets map, not to
    /// [`ClusterMetadata`]).
    CommitOffsets {
        /// Group.
        group: String,
        /// `(topic, partition, offset, metadata)`.
        offsets: Vec<(String, i32, i64, Option<String>)>,
    },
    /// Offsets a cluster link copied from its source for a group (applied to the shared offsets
    /// map; never over a group a client committed for here).
    SyncGroupOffsets {
        /// The link.
        link: String,
        /// Group.
        group: String,
        /// `(topic, partition, offset)`.
        offsets: Vec<(String, i32, i64)>,
    },
    /// Deletes a consumer group's committed offsets.
    DeleteGroup {
        /// Group.
        group: String,
    },
    /// Starts (`Some`) or cancels (`None`) moving a partition to a new replica list: the new
    /// replicas join as followers, and once they are all in sync the controller completes it.
    ReassignPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The target replicas (the first is the preferred leader).
        target: Option<Vec<BrokerId>>,
    },
    /// Finishes a reassignment whose added replicas are all in sync: drops the removed ones.
    CompleteReassignment {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Moves leadership to the preferred replica where it is in sync and unfenced.
    ElectPreferredLeaders {
        /// Partitions; `None` means every partition.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Deletes, then sets, users' SCRAM credentials (`AlterUserScramCredentials`, validated
    /// by the proposer).
    AlterScramCredentials {
        /// `(user, mechanism)` to delete.
        deletions: Vec<(String, ScramMechanism)>,
        /// `(user, mechanism, credential)` to set.
        upsertions: Vec<(String, ScramMechanism, ScramCredential)>,
    },
    /// Adds ACLs (validated by the proposer); ones already present are kept once.
    CreateAcls {
        /// The bindings.
        bindings: Vec<AclBinding>,
    },
    /// Removes these exact ACLs (absent ones are ignored).
    DeleteAcls {
        /// The bindings.
        bindings: Vec<AclBinding>,
    },
    /// Sets (`Some`) or removes (`None`) client quotas (validated by the proposer).
    AlterClientQuotas {
        /// Each entity's changes: `(key, bytes per second)`.
        entries: Vec<(Entity, Changes)>,
    },
    /// Changes a transactional id's state (applied to the shared transactions map, not to
    /// [`ClusterMetadata`]; see [`crate::txn`]).
    Transaction(crate::txn::TxnCommand),
}

/// What applying a command gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused with a Kafka error code.
    Refused {
        /// Kafka error code.
        code: i16,
        /// For people.
        message: String,
    },
}

impl Outcome {
    /// A proposal's answer as a result: a refusal becomes its Kafka error.
    ///
    /// # Errors
    /// The proposal's failure, or the refusal.
    pub fn of(proposed: Result<Outcome, KafkaError>) -> Result<(), KafkaError> {
        match proposed? {
            Outcome::Ok => Ok(()),
            Outcome::Refused { code, message } => Err(KafkaError::new(code, message)),
        }
    }
}

fn refuse(code: i16, message: impl Into<String>) -> Outcome {
    Outcome::Refused {
        code,
        message: message.into(),
    }
}

impl BrokerRecord {
    /// The advertised address of this broker's listener `name` (the one a client came in on):
    /// `None` when it has no such listener (clients of that listener are not told of it).
    pub fn endpoint(&self, name: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .get(name)
            .map(|(host, port)| (host.as_str(), *port))
    }
}

impl PartitionRecord {
    fn elect(&mut self, leader: BrokerId) {
        if self.leader != leader {
            self.leader = leader;
            self.leader_epoch += 1;
        }
        self.partition_epoch += 1;
    }
}

/// Partition `partition` of `topic` (named `name`), if its leader holds `leader_epoch` (a
/// deposed leader's report is refused).
fn led_in<'a>(
    topic: &'a mut TopicRecord,
    name: &str,
    partition: i32,
    leader_epoch: i32,
) -> Result<&'a mut PartitionRecord, Outcome> {
    let Some(record) = usize::try_from(partition)
        .ok()
        .and_then(|p| topic.partitions.get_mut(p))
    else {
        return Err(refuse(
            codes::UNKNOWN_TOPIC_OR_PARTITION,
            format!("no partition {name}-{partition}"),
        ));
    };
    if record.leader_epoch != leader_epoch {
        return Err(refuse(
            codes::FENCED_LEADER_EPOCH,
            format!(
                "{name}-{partition} is in leader epoch {}, not {leader_epoch}",
                record.leader_epoch
            ),
        ));
    }
    Ok(record)
}

impl ClusterMetadata {
    /// Applies one committed command.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::RegisterBroker(record) => self.register(record),
            Command::FenceBroker { id } => self.fence(*id),
            Command::UnfenceBroker { id } => self.unfence(*id),
            Command::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                assignments,
                configs,
                mirror,
            } => {
                if let Some(link) = mirror
                    && !self.links.contains_key(link)
                {
                    return refuse(codes::INVALID_REQUEST, format!("no cluster link {link:?}"));
                }
                let outcome = self.create_topic(
                    name,
                    *id,
                    *partitions,
                    *replication_factor,
                    assignments.as_deref(),
                    configs,
                );
                if outcome == Outcome::Ok
                    && let Some(topic) = self.topics.get_mut(name)
                {
                    topic.mirror.clone_from(mirror);
                }
                outcome
            }
            Command::SetLink { name, link } => self.set_link(name, link.as_ref()),
            Command::StopMirror {
                topic,
                partition,
                leader_epoch,
                last_epoch,
                max_producer_id,
                stop,
            } => self.stop_mirror(
                topic,
                *partition,
                (*leader_epoch, *last_epoch),
                *max_producer_id,
                stop.as_ref(),
            ),
            Command::AdoptMirror { topic, link } => self.adopt_mirror(topic, link),
            Command::AdoptPartition {
                topic,
                partition,
                leader_epoch,
                offset,
                quarantined,
            } => self.adopt_partition(topic, *partition, *leader_epoch, *offset, *quarantined),
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Outcome::Ok,
                None => refuse(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("no topic {name:?}"),
                ),
            },
            Command::CreatePartitions { name, count } => self.create_partitions(name, *count),
            Command::SetTopicConfigs { name, configs } => match self.topics.get_mut(name) {
                Some(topic) => {
                    topic.configs = configs.clone();
                    Outcome::Ok
                }
                None => refuse(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("no topic {name:?}"),
                ),
            },
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
            ),
            Command::ElectPreferredLeaders { partitions } => {
                self.elect_preferred(partitions.as_deref());
                Outcome::Ok
            }
            Command::ReassignPartition {
                topic,
                partition,
                target,
            } => self.reassign(topic, *partition, target.as_deref()),
            Command::CompleteReassignment { topic, partition } => {
                self.complete_reassignment(topic, *partition)
            }
            Command::AlterScramCredentials {
                deletions,
                upsertions,
            } => {
                for (user, mechanism) in deletions {
                    if let Some(credentials) = self.scram.get_mut(user) {
                        credentials.remove(mechanism);
                        if credentials.is_empty() {
                            self.scram.remove(user);
                        }
                    }
                }
                for (user, mechanism, credential) in upsertions {
                    self.scram
                        .entry(user.clone())
                        .or_default()
                        .insert(*mechanism, credential.clone());
                }
                Outcome::Ok
            }
            Command::CreateAcls { bindings } => {
                self.acls.extend(bindings.iter().cloned());
                self.acls.sort();
                self.acls.dedup();
                Outcome::Ok
            }
            Command::DeleteAcls { bindings } => {
                self.acls.retain(|acl| !bindings.contains(acl));
                Outcome::Ok
            }
            Command::AlterClientQuotas { entries } => {
                for (entity, changes) in entries {
                    crate::security::quota::apply(&mut self.quotas, entity, changes);
                }
                Outcome::Ok
            }
            // Offsets live outside the metadata (see `raft::StateMachine`).
            Command::CommitOffsets { .. }
            | Command::SyncGroupOffsets { .. }
            | Command::DeleteGroup { .. }
            | Command::Transaction(_) => Outcome::Ok,
        }
    }

    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    fn is_live(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// A partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionRecord> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(index).ok()?)
    }

    fn register(&mut self, record: &BrokerRecord) -> Outcome {
        if self.cluster_id.is_empty() {
            self.cluster_id = record.incarnation.simple().to_string()[..22].to_owned();
        }
        let known = self.brokers.get(&record.id).cloned();
        match known {
            Some(old) if old.incarnation == record.incarnation => {
                // A retried registration: nothing changes.
                Outcome::Ok
            }
            previous => {
                // New, or a restarted broker: whatever it led in its previous life moves away
                // now; it is unfenced when it reports that it has caught up.
                if previous.is_some_and(|old| !old.fenced) {
                    self.fence(record.id);
                }
                self.brokers.insert(
                    record.id,
                    BrokerRecord {
                        fenced: true,
                        ..record.clone()
                    },
                );
                Outcome::Ok
            }
        }
    }

    fn fence(&mut self, id: BrokerId) -> Outcome {
        let Some(broker) = self.brokers.get_mut(&id) else {
            return refuse(codes::BROKER_NOT_AVAILABLE, format!("no broker {id}"));
        };
        broker.fenced = true;
        let live: Vec<BrokerId> = self.live_brokers().map(|b| b.id).collect();
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if !partition.isr.contains(&id) && partition.leader != id {
                    continue;
                }
                if partition.isr.len() > 1 {
                    partition.isr.retain(|r| *r != id);
                }
                let leader = if partition.leader == id || partition.leader < 0 {
                    partition
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| partition.isr.contains(r) && live.contains(r))
                        .unwrap_or(-1)
                } else {
                    partition.leader
                };
                partition.elect(leader);
            }
        }
        Outcome::Ok
    }

    fn unfence(&mut self, id: BrokerId) -> Outcome {
        let Some(broker) = self.brokers.get_mut(&id) else {
            return refuse(codes::BROKER_NOT_AVAILABLE, format!("no broker {id}"));
        };
        broker.fenced = false;
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if partition.leader < 0 && partition.isr.contains(&id) {
                    partition.elect(id);
                }
            }
        }
        Outcome::Ok
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        assignments: Option<&[Vec<BrokerId>]>,
        configs: &TopicConfigs,
    ) -> Outcome {
        if self.topics.contains_key(name) {
            return refuse(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {name:?} already exists"),
            );
        }
        let replicas = match assignments {
            Some(lists) => {
                if let Err(outcome) = self.check_assignments(lists) {
                    return outcome;
                }
                lists.to_vec()
            }
            None => match self.place(0, partitions, replication_factor) {
                Ok(lists) => lists,
                Err(outcome) => return outcome,
            },
        };
        let partitions = replicas
            .into_iter()
            .map(|replicas| self.new_partition(replicas))
            .collect();
        self.topics.insert(
            name.to_owned(),
            TopicRecord {
                id,
                configs: configs.clone(),
                partitions,
                mirror: None,
                mirror_stopped: BTreeMap::new(),
                stops: BTreeMap::new(),
                mirror_adopting: BTreeSet::new(),
                adopted: BTreeMap::new(),
            },
        );
        Outcome::Ok
    }

    fn stop_mirror(
        &mut self,
        name: &str,
        partition: i32,
        (leader_epoch, last_epoch): (i32, i32),
        max_producer_id: i64,
        stop: Option<&MirrorStop>,
    ) -> Outcome {
        let Some(topic) = self.topics.get_mut(name) else {
            return refuse(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            );
        };
        let Some(link) = topic.mirror.as_ref().and_then(|l| self.links.get(l)) else {
            return refuse(
                codes::INVALID_REQUEST,
                format!("topic {name:?} is not a mirror of a link"),
            );
        };
        if !link.state.is_stopping() {
            return refuse(
                codes::INVALID_REQUEST,
                format!("the link of topic {name:?} is still mirroring"),
            );
        }
        if let Err(refused) = led_in(topic, name, partition, leader_epoch) {
            return refused;
        }
        topic.mirror_stopped.insert(partition, last_epoch);
        if let Some(stop) = stop {
            topic.stops.insert(partition, stop.clone());
        }
        self.producer_id_floor = self.producer_id_floor.max(max_producer_id);
        if topic.mirror_stopped.len() == topic.partitions.len() {
            // Writable from here on, in epochs above every epoch copied from the source.
            for (index, record) in topic.partitions.iter_mut().enumerate() {
                let copied = topic
                    .mirror_stopped
                    .get(&(index as i32))
                    .copied()
                    .unwrap_or(-1);
                record.leader_epoch = record.leader_epoch.max(copied) + 1;
                record.partition_epoch += 1;
            }
            topic.mirror = None;
            topic.mirror_stopped.clear();
        }
        Outcome::Ok
    }

    fn adopt_mirror(&mut self, name: &str, link_name: &str) -> Outcome {
        if !self.links.get(link_name).is_some_and(|l| l.reverse) {
            return refuse(
                codes::INVALID_REQUEST,
                format!("no reverse cluster link {link_name:?}"),
            );
        }
        let Some(topic) = self.topics.get_mut(name) else {
            return refuse(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            );
        };
        if let Some(other) = &topic.mirror {
            return refuse(
                codes::INVALID_REQUEST,
                format!("topic {name:?} already mirrors through link {other:?}"),
            );
        }
        topic.mirror = Some(link_name.to_owned());
        topic.mirror_stopped.clear();
        // Read-only as a mirror now; writable again only when it stops mirroring.
        topic.configs.remove(crate::topic_config::READ_ONLY);
        topic.mirror_adopting = (0..topic.partitions.len() as i32).collect();
        Outcome::Ok
    }

    fn adopt_partition(
        &mut self,
        name: &str,
        partition: i32,
        leader_epoch: i32,
        offset: i64,
        quarantined: i64,
    ) -> Outcome {
        let Some(topic) = self.topics.get_mut(name) else {
            return refuse(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            );
        };
        if !topic.mirror_adopting.contains(&partition) {
            return refuse(
                codes::INVALID_REQUEST,
                format!("{name}-{partition} is not being turned into a mirror"),
            );
        }
        let record = match led_in(topic, name, partition, leader_epoch) {
            Ok(record) => record,
            Err(refused) => return refused,
        };
        record.leader_epoch += 1;
        record.partition_epoch += 1;
        let epoch = record.leader_epoch;
        topic.mirror_adopting.remove(&partition);
        topic.adopted.insert(
            partition,
            Adoption {
                offset,
                quarantined,
                epoch,
            },
        );
        Outcome::Ok
    }

    fn set_link(&mut self, name: &str, link: Option<&LinkRecord>) -> Outcome {
        match link {
            Some(link) => {
                if name.is_empty() || link.bootstrap.trim().is_empty() {
                    return refuse(
                        codes::INVALID_CONFIG,
                        format!("cluster link {name:?} needs a name and bootstrap servers"),
                    );
                }
                self.links.insert(name.to_owned(), link.clone());
                Outcome::Ok
            }
            None => match self.links.remove(name) {
                Some(_) => Outcome::Ok,
                None => refuse(codes::INVALID_CONFIG, format!("no cluster link {name:?}")),
            },
        }
    }

    fn new_partition(&self, replicas: Vec<BrokerId>) -> PartitionRecord {
        let leader = replicas
            .iter()
            .copied()
            .find(|r| self.is_live(*r))
            .unwrap_or(-1);
        PartitionRecord {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        }
    }

    fn check_assignments(&self, lists: &[Vec<BrokerId>]) -> Result<(), Outcome> {
        for (index, list) in lists.iter().enumerate() {
            let mut seen = list.clone();
            seen.sort_unstable();
            seen.dedup();
            if list.is_empty() || seen.len() != list.len() {
                return Err(refuse(
                    codes::INVALID_REPLICA_ASSIGNMENT,
                    format!("partition {index}: replicas must be distinct and non-empty"),
                ));
            }
            if let Some(unknown) = list.iter().find(|r| !self.brokers.contains_key(r)) {
                return Err(refuse(
                    codes::INVALID_REPLICA_ASSIGNMENT,
                    format!("partition {index}: no broker {unknown}"),
                ));
            }
        }
        Ok(())
    }

    /// Places `count` partitions (numbered from `first`) with `replication_factor` replicas on
    /// the unfenced brokers: round-robin over brokers ordered so that consecutive ones are on
    /// different racks (Kafka's rack-alternating list), each partition's replicas on distinct
    /// brokers, the leaders spread by starting each partition at the next broker.
    fn place(
        &self,
        first: i32,
        count: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<BrokerId>>, Outcome> {
        let brokers = self.rack_alternating();
        let rf = usize::try_from(replication_factor).unwrap_or(0);
        if rf == 0 || rf > brokers.len() {
            return Err(refuse(
                codes::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {replication_factor} with {} available brokers",
                    brokers.len()
                ),
            ));
        }
        let n = brokers.len();
        Ok((first..first + count)
            .map(|p| {
                let start = usize::try_from(p).unwrap_or(0) % n;
                // Followers are shifted by a per-"round" step so that large topics do not
                // always pair the same brokers.
                let step = 1 + (usize::try_from(p).unwrap_or(0) / n) % (n - 1).max(1);
                let mut list = vec![brokers[start]];
                let mut at = start;
                while list.len() < rf {
                    at = (at + step) % n;
                    if !list.contains(&brokers[at]) {
                        list.push(brokers[at]);
                    } else {
                        at = (at + 1) % n;
                        if !list.contains(&brokers[at]) {
                            list.push(brokers[at]);
                        }
                    }
                }
                list
            })
            .collect())
    }

    /// Unfenced brokers ordered rack by rack in turn: `[r1a, r2a, r3a, r1b, ...]`.
    fn rack_alternating(&self) -> Vec<BrokerId> {
        let mut racks: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
        for broker in self.live_brokers() {
            racks
                .entry(broker.rack.as_deref())
                .or_default()
                .push(broker.id);
        }
        let mut out = Vec::new();
        let mut round = 0;
        loop {
            let before = out.len();
            for ids in racks.values() {
                if let Some(id) = ids.get(round) {
                    out.push(*id);
                }
            }
            if out.len() == before {
                return out;
            }
            round += 1;
        }
    }

    fn create_partitions(&mut self, name: &str, count: i32) -> Outcome {
        let Some(topic) = self.topics.get(name) else {
            return refuse(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            );
        };
        let current = topic.partitions.len() as i32;
        if count <= current || count > 10_000 {
            return refuse(
                codes::INVALID_PARTITIONS,
                format!(
                    "topic has {current} partitions; the new count must be larger (and at most 10000), got {count}"
                ),
            );
        }
        let rf = topic
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len() as i16);
        let lists = match self.place(current, count - current, rf) {
            Ok(lists) => lists,
            Err(outcome) => return outcome,
        };
        let new: Vec<PartitionRecord> = lists
            .into_iter()
            .map(|replicas| self.new_partition(replicas))
            .collect();
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(new);
        }
        Outcome::Ok
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        index: i32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[BrokerId],
    ) -> Outcome {
        let live: Vec<BrokerId> = self.live_brokers().map(|b| b.id).collect();
        let partition = match self.partition_mut(topic, index) {
            Ok(partition) => partition,
            Err(outcome) => return outcome,
        };
        if partition.leader != leader || partition.leader_epoch != leader_epoch {
            return refuse(
                codes::FENCED_LEADER_EPOCH,
                format!(
                    "{topic}-{index}: leader is {} in epoch {}, not {leader} in {leader_epoch}",
                    partition.leader, partition.leader_epoch
                ),
            );
        }
        if partition.partition_epoch != partition_epoch {
            return refuse(
                codes::INVALID_REQUEST,
                format!(
                    "{topic}-{index}: partition epoch is {}, not {partition_epoch}",
                    partition.partition_epoch
                ),
            );
        }
        if !isr.contains(&leader) {
            return refuse(codes::INVALID_REQUEST, "the ISR must contain the leader");
        }
        let added_ineligible = isr.iter().any(|r| {
            !partition.isr.contains(r) && (!live.contains(r) || !partition.replicas.contains(r))
        });
        if added_ineligible {
            return refuse(
                codes::INELIGIBLE_REPLICA,
                "only live assigned replicas can join the ISR",
            );
        }
        partition.isr = partition
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        partition.partition_epoch += 1;
        Outcome::Ok
    }

    fn elect_preferred(&mut self, only: Option<&[(String, i32)]>) {
        let live: Vec<BrokerId> = self.live_brokers().map(|b| b.id).collect();
        for (name, topic) in &mut self.topics {
            for (index, partition) in topic.partitions.iter_mut().enumerate() {
                if let Some(only) = only
                    && !only.iter().any(|(t, p)| t == name && *p as usize == index)
                {
                    continue;
                }
                let Some(preferred) = partition.replicas.first().copied() else {
                    continue;
                };
                if partition.leader != preferred
                    && partition.isr.contains(&preferred)
                    && live.contains(&preferred)
                {
                    partition.elect(preferred);
                }
            }
        }
    }

    fn partition_mut(&mut self, topic: &str, index: i32) -> Result<&mut PartitionRecord, Outcome> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(index).ok()?))
            .ok_or_else(|| {
                refuse(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("no partition {topic}-{index}"),
                )
            })
    }

    fn reassign(&mut self, topic: &str, index: i32, target: Option<&[BrokerId]>) -> Outcome {
        if let Some(target) = target
            && let Err(outcome) = self.check_assignments(&[target.to_vec()])
        {
            return outcome;
        }
        let live: Vec<BrokerId> = self.live_brokers().map(|b| b.id).collect();
        let partition = match self.partition_mut(topic, index) {
            Ok(partition) => partition,
            Err(outcome) => return outcome,
        };
        // The replica list before any reassignment in progress.
        let original: Vec<BrokerId> = if partition.original.is_empty() {
            partition.replicas.clone()
        } else {
            partition.original.clone()
        };
        let target = match target {
            Some(target) => target.to_vec(),
            None if partition.adding.is_empty() && partition.removing.is_empty() => {
                return refuse(
                    codes::NO_REASSIGNMENT_IN_PROGRESS,
                    format!("no reassignment of {topic}-{index} in progress"),
                );
            }
            None => original.clone(),
        };
        let adding: Vec<BrokerId> = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        let removing: Vec<BrokerId> = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        if adding.is_empty() && !target.iter().any(|r| partition.isr.contains(r)) {
            return refuse(
                codes::INVALID_REPLICA_ASSIGNMENT,
                format!("{topic}-{index}: no in-sync replica would remain"),
            );
        }
        // Target first (its order is the new preference), then the replicas on their way out.
        let mut replicas = target.clone();
        replicas.extend(removing.iter().copied());
        partition.isr.retain(|r| replicas.contains(r));
        if partition.isr.is_empty() {
            partition.isr = vec![partition.leader];
        }
        partition.replicas = replicas;
        partition.adding = adding;
        partition.removing = removing;
        partition.original = original;
        partition.partition_epoch += 1;
        if partition.adding.is_empty() {
            finish_reassignment(partition, &live);
        }
        Outcome::Ok
    }

    fn complete_reassignment(&mut self, topic: &str, index: i32) -> Outcome {
        let live: Vec<BrokerId> = self.live_brokers().map(|b| b.id).collect();
        let partition = match self.partition_mut(topic, index) {
            Ok(partition) => partition,
            Err(outcome) => return outcome,
        };
        if partition.adding.is_empty() && partition.removing.is_empty() {
            return refuse(
                codes::NO_REASSIGNMENT_IN_PROGRESS,
                format!("no reassignment of {topic}-{index} in progress"),
            );
        }
        if !partition.adding.iter().all(|r| partition.isr.contains(r)) {
            return refuse(
                codes::REASSIGNMENT_IN_PROGRESS,
                format!("{topic}-{index}: added replicas are not all in sync yet"),
            );
        }
        finish_reassignment(partition, &live);
        Outcome::Ok
    }

    /// Partitions whose reassignment can complete (every added replica is in sync).
    pub fn completable_reassignments(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions.iter().enumerate().filter_map(move |(i, p)| {
                    let pending = !p.adding.is_empty() || !p.removing.is_empty();
                    (pending && p.adding.iter().all(|r| p.isr.contains(r)))
                        .then(|| (name.clone(), i as i32))
                })
            })
            .collect()
    }

    /// Partitions whose leader is not their preferred replica although it could be.
    pub fn imbalanced(&self) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| {
                p.replicas.first().is_some_and(|pref| {
                    p.leader != *pref && p.isr.contains(pref) && self.is_live(*pref)
                })
            })
            .count()
    }
}

/// Drops the removed replicas of a reassignment whose added ones are in sync; moves leadership
/// into the target if the leader is leaving (to an in-sync, live target replica).
fn finish_reassignment(partition: &mut PartitionRecord, live: &[BrokerId]) {
    let removing = std::mem::take(&mut partition.removing);
    partition.adding.clear();
    partition.original.clear();
    partition.replicas.retain(|r| !removing.contains(r));
    let isr: Vec<BrokerId> = partition
        .isr
        .iter()
        .copied()
        .filter(|r| !removing.contains(r))
        .collect();
    if !isr.is_empty() {
        partition.isr = isr;
    }
    if removing.contains(&partition.leader) || partition.leader < 0 {
        let leader = partition
            .replicas
            .iter()
            .copied()
            .find(|r| partition.isr.contains(r) && live.contains(r))
            .unwrap_or(-1);
        partition.elect(leader);
    } else {
        partition.partition_epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn broker(id: BrokerId, rack: &str) -> BrokerRecord {
        BrokerRecord {
            id,
            incarnation: Uuid::from_u128(id as u128),
            host: "127.0.0.1".into(),
            port: 9000 + id,
            rack: Some(rack.into()),
            quorum_addr: format!("127.0.0.1:{}", 9100 + id),
            listeners: BTreeMap::new(),
            fenced: false,
        }
    }

    fn cluster(brokers: &[(BrokerId, &str)]) -> ClusterMetadata {
        let mut meta = ClusterMetadata::default();
        for (id, rack) in brokers {
            assert_eq!(
                meta.apply(&Command::RegisterBroker(broker(*id, rack))),
                Outcome::Ok
            );
            assert!(meta.brokers[id].fenced, "registered brokers start fenced");
            meta.apply(&Command::UnfenceBroker { id: *id });
        }
        meta
    }

    fn create(meta: &mut ClusterMetadata, name: &str, partitions: i32, rf: i16) -> Outcome {
        create_assigned(meta, name, partitions, rf, None)
    }

    fn create_assigned(
        meta: &mut ClusterMetadata,
        name: &str,
        partitions: i32,
        rf: i16,
        assignments: Option<Vec<Vec<BrokerId>>>,
    ) -> Outcome {
        meta.apply(&Command::CreateTopic {
            name: name.into(),
            id: Uuid::nil(),
            partitions,
            replication_factor: rf,
            assignments,
            configs: TopicConfigs::new(),
            mirror: None,
        })
    }

    #[test]
    fn placement_spreads_replicas_over_racks_and_leaders_over_brokers() {
        let mut meta = cluster(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        assert_eq!(create(&mut meta, "t", 12, 3), Outcome::Ok);
        let partitions = &meta.topics["t"].partitions;
        let mut leaders = BTreeMap::new();
        for p in partitions {
            let racks: std::collections::BTreeSet<_> = p
                .replicas
                .iter()
                .map(|r| meta.brokers[r].rack.clone())
                .collect();
            assert_eq!(racks.len(), 3, "{p:?} spans every rack");
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, p.replicas[0]);
            *leaders.entry(p.leader).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        assert_eq!(
            create(&mut meta, "u", 1, 7),
            refuse(
                codes::INVALID_REPLICATION_FACTOR,
                "replication factor 7 with 6 available brokers"
            )
        );
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_never_to_an_out_of_sync_replica() {
        let mut meta = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        create_assigned(&mut meta, "t", 1, 3, Some(vec![vec![1, 2, 3]]));
        // Replica 3 fell out of sync.
        let out = meta.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1, 2],
        });
        assert_eq!(out, Outcome::Ok);
        meta.apply(&Command::FenceBroker { id: 1 });
        let p = meta.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 1));
        // The last ISR member dies: offline, ISR kept; 3 (out of sync) is never elected.
        meta.apply(&Command::FenceBroker { id: 2 });
        let p = meta.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (-1, vec![2], 2));
        meta.apply(&Command::UnfenceBroker { id: 1 });
        assert_eq!(meta.partition("t", 0).unwrap().leader, -1);
        meta.apply(&Command::UnfenceBroker { id: 2 });
        let p = meta.partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.leader_epoch), (2, 3));
    }

    #[test]
    fn a_zombie_leaders_isr_change_is_refused() {
        let mut meta = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        create(&mut meta, "t", 1, 3);
        let leader = meta.partition("t", 0).unwrap().leader;
        meta.apply(&Command::FenceBroker { id: leader });
        let out = meta.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![leader],
        });
        assert!(matches!(out, Outcome::Refused { code, .. } if code == codes::FENCED_LEADER_EPOCH));
        // The new leader may not add a fenced broker back.
        let p = meta.partition("t", 0).unwrap().clone();
        let out = meta.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.replicas.clone(),
        });
        assert!(matches!(out, Outcome::Refused { code, .. } if code == codes::INELIGIBLE_REPLICA));
    }

    fn alter(meta: &mut ClusterMetadata, isr: Vec<BrokerId>) -> Outcome {
        let p = meta.partition("t", 0).unwrap().clone();
        meta.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        })
    }

    #[test]
    fn a_reassignment_completes_only_when_the_new_replicas_are_in_sync() {
        let mut meta = cluster(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        create_assigned(&mut meta, "t", 1, 3, Some(vec![vec![1, 2, 3]]));
        let reassign = |target: Option<Vec<BrokerId>>| Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target,
        };
        assert_eq!(meta.apply(&reassign(Some(vec![2, 3, 4]))), Outcome::Ok);
        let p = meta.partition("t", 0).unwrap().clone();
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![2, 3, 4, 1], vec![4], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        let complete = Command::CompleteReassignment {
            topic: "t".into(),
            partition: 0,
        };
        assert!(
            matches!(meta.apply(&complete), Outcome::Refused { code, .. } if code == codes::REASSIGNMENT_IN_PROGRESS)
        );
        assert!(meta.completable_reassignments().is_empty());
        // The leader adds the new replica once it has caught up.
        assert_eq!(alter(&mut meta, vec![1, 2, 3, 4]), Outcome::Ok);
        assert_eq!(meta.completable_reassignments(), vec![("t".to_owned(), 0)]);
        assert_eq!(meta.apply(&complete), Outcome::Ok);
        let done = meta.partition("t", 0).unwrap().clone();
        assert_eq!(
            (done.replicas.clone(), done.isr.clone()),
            (vec![2, 3, 4], vec![2, 3, 4])
        );
        assert_eq!(
            (done.leader, done.leader_epoch),
            (2, p.leader_epoch + 1),
            "the leaving leader hands over"
        );
        assert!(done.adding.is_empty() && done.removing.is_empty());
        // Cancelling: back to the original replicas.
        meta.apply(&reassign(Some(vec![1, 3, 4])));
        assert_eq!(meta.partition("t", 0).unwrap().replicas, vec![1, 3, 4, 2]);
        assert_eq!(meta.apply(&reassign(None)), Outcome::Ok);
        let back = meta.partition("t", 0).unwrap().clone();
        assert_eq!(
            (back.replicas, back.isr, back.leader),
            (vec![2, 3, 4], vec![2, 3, 4], 2)
        );
        assert!(
            matches!(meta.apply(&reassign(None)), Outcome::Refused { code, .. } if code == codes::NO_REASSIGNMENT_IN_PROGRESS)
        );
        // Shrinking to replicas that are all out of sync is refused.
        assert_eq!(alter(&mut meta, vec![2]), Outcome::Ok);
        assert!(
            matches!(meta.apply(&reassign(Some(vec![3, 4]))), Outcome::Refused { code, .. } if code == codes::INVALID_REPLICA_ASSIGNMENT)
        );
        assert!(
            matches!(meta.apply(&reassign(Some(vec![2, 9]))), Outcome::Refused { code, .. } if code == codes::INVALID_REPLICA_ASSIGNMENT)
        );
    }

    #[test]
    fn a_restarted_broker_loses_its_leaderships_and_gets_the_preferred_ones_back() {
        let mut meta = cluster(&[(1, "a"), (2, "b"), (3, "c")]);
        create(&mut meta, "t", 3, 3);
        let led_by_1 = |m: &ClusterMetadata| {
            m.topics["t"]
                .partitions
                .iter()
                .filter(|p| p.leader == 1)
                .count()
        };
        assert_eq!(led_by_1(&meta), 1);
        let mut again = broker(1, "a");
        again.incarnation = Uuid::from_u128(99);
        meta.apply(&Command::RegisterBroker(again));
        assert!(meta.brokers[&1].fenced);
        assert_eq!(led_by_1(&meta), 0);
        meta.apply(&Command::UnfenceBroker { id: 1 });
        // Broker 1 is out of every ISR until its leaders add it back.
        assert_eq!(meta.imbalanced(), 0);
        for index in 0..3 {
            let p = meta.partition("t", index).unwrap().clone();
            meta.apply(&Command::AlterPartition {
                topic: "t".into(),
                partition: index,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                isr: p.replicas.clone(),
            });
        }
        assert_eq!(meta.imbalanced(), 1);
        meta.apply(&Command::ElectPreferredLeaders { partitions: None });
        assert_eq!(meta.imbalanced(), 0);
        assert_eq!(led_by_1(&meta), 1);
    }

    #[test]
    fn a_mirror_topic_is_released_once_every_partition_stopped_above_the_copied_epochs() {
        let mut meta = cluster(&[(1, "a")]);
        let link = LinkRecord {
            bootstrap: "a:9092".into(),
            topics: vec!["orders".into()],
            groups: Vec::new(),
            security: None,
            state: LinkState::Mirroring,
            topics_exclude: Vec::new(),
            groups_exclude: Vec::new(),
            reverse: false,
        };
        let set = |meta: &mut ClusterMetadata, state| {
            meta.apply(&Command::SetLink {
                name: "dr".into(),
                link: Some(LinkRecord {
                    state,
                    ..link.clone()
                }),
            })
        };
        assert_eq!(set(&mut meta, LinkState::Mirroring), Outcome::Ok);
        let create = Command::CreateTopic {
            name: "orders".into(),
            id: Uuid::nil(),
            partitions: 2,
            replication_factor: 1,
            assignments: None,
            configs: TopicConfigs::new(),
            mirror: Some("dr".into()),
        };
        assert_eq!(meta.apply(&create), Outcome::Ok);
        let stop = |partition, leader_epoch, last_epoch, max_producer_id| Command::StopMirror {
            topic: "orders".into(),
            partition,
            leader_epoch,
            last_epoch,
            max_producer_id,
            stop: None,
        };
        // Not while the link mirrors, nor from a deposed leader.
        assert!(matches!(
            meta.apply(&stop(0, 0, 7, 5)),
            Outcome::Refused { .. }
        ));
        assert_eq!(set(&mut meta, LinkState::Promote), Outcome::Ok);
        assert!(matches!(
            meta.apply(&stop(0, 3, 7, 5)),
            Outcome::Refused { code, .. } if code == codes::FENCED_LEADER_EPOCH
        ));
        // One partition stopped: still a mirror.
        assert_eq!(meta.apply(&stop(0, 0, 7, 5)), Outcome::Ok);
        assert_eq!(meta.topics["orders"].mirror.as_deref(), Some("dr"));
        assert_eq!(meta.producer_id_floor, 5);
        // Both: writable, each partition in an epoch above what it copied.
        assert_eq!(meta.apply(&stop(1, 0, -1, 9)), Outcome::Ok);
        let topic = &meta.topics["orders"];
        assert_eq!(topic.mirror, None);
        assert!(topic.mirror_stopped.is_empty());
        assert_eq!(topic.partitions[0].leader_epoch, 8);
        assert_eq!(topic.partitions[1].leader_epoch, 1);
        assert_eq!(meta.producer_id_floor, 9);
        // A mirror of a link that does not exist cannot be created.
        let orphan = Command::CreateTopic {
            name: "other".into(),
            id: Uuid::nil(),
            partitions: 1,
            replication_factor: 1,
            assignments: None,
            configs: TopicConfigs::new(),
            mirror: Some("nope".into()),
        };
        assert!(matches!(meta.apply(&orphan), Outcome::Refused { .. }));
        // The old source turns the topic back into a mirror through a reverse link only.
        let adopt = Command::AdoptMirror {
            topic: "orders".into(),
            link: "back".into(),
        };
        assert!(matches!(meta.apply(&adopt), Outcome::Refused { .. }));
        let mut back = link.clone();
        back.reverse = true;
        assert_eq!(
            meta.apply(&Command::SetLink {
                name: "back".into(),
                link: Some(back),
            }),
            Outcome::Ok
        );
        assert_eq!(meta.apply(&adopt), Outcome::Ok);
        assert_eq!(meta.topics["orders"].mirror.as_deref(), Some("back"));
        assert_eq!(meta.topics["orders"].mirror_adopting.len(), 2);
        assert!(matches!(meta.apply(&adopt), Outcome::Refused { .. }));
        let cut = |leader_epoch| Command::AdoptPartition {
            topic: "orders".into(),
            partition: 0,
            leader_epoch,
            offset: 40,
            quarantined: 3,
        };
        assert!(matches!(
            meta.apply(&cut(2)),
            Outcome::Refused { code, .. } if code == codes::FENCED_LEADER_EPOCH
        ));
        assert_eq!(meta.apply(&cut(8)), Outcome::Ok);
        let topic = &meta.topics["orders"];
        assert_eq!(topic.partitions[0].leader_epoch, 9);
        assert_eq!(
            topic.adopted[&0],
            Adoption {
                offset: 40,
                quarantined: 3,
                epoch: 9
            }
        );
        assert_eq!(
            topic.mirror_adopting.iter().copied().collect::<Vec<_>>(),
            [1]
        );
        // Done once.
        assert!(matches!(meta.apply(&cut(9)), Outcome::Refused { .. }));
    }

    #[test]
    fn a_stop_bounds_the_loss_by_what_the_source_last_said() {
        let stop = MirrorStop {
            link: "dr".into(),
            offset: 90,
            source_end: 100,
            source_seen_ms: 5_000,
            caught_up_ms: 4_200,
            stopped_ms: 9_000,
            failover: true,
        };
        assert_eq!((stop.loss_records(), stop.loss_ms()), (10, 800));
        let caught_up = MirrorStop {
            offset: 100,
            ..stop
        };
        assert_eq!((caught_up.loss_records(), caught_up.loss_ms()), (0, 0));
    }
}
