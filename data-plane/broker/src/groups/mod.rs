//! The classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) and
//! durable committed offsets.
//!
//! Each group is a state machine: `Empty` -> `PreparingRebalance` (members (re)join) ->
//! `CompletingRebalance` (the leader computes assignments) -> `Stable`. A join or sync waits on a
//! oneshot channel that the state machine answers; no lock is held across an await. A ticker
//! expires members whose session timed out and completes rebalances whose deadline passed.
//!
//! Static members (KIP-345, `group.instance.id`): a member joining with a known instance id and
//! no member id replaces the member holding that instance id (whose pending join or sync is
//! answered FENCED_INSTANCE_ID); in a stable group whose chosen protocol stays the same this is
//! no rebalance (the generation and every assignment stay), as Kafka's
//! `updateStaticMemberThenRebalanceOrCompleteJoin`. A request naming an instance id with another
//! member id than the one holding it is FENCED_INSTANCE_ID (Heartbeat, SyncGroup, OffsetCommit,
//! LeaveGroup, JoinGroup); LeaveGroup v3+ removes a member by instance id alone.
//!
//! Committed offsets are replicated through the metadata quorum ([`offsets`]): the coordinator
//! validates a commit or deletion ([`Coordinator::commit_check`], [`Coordinator::delete_check`]),
//! the caller proposes it, and the state machine applies it on every broker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdi_kafka_client::codes;
use tokio::sync::oneshot;

pub mod offsets;

pub use offsets::{Committed, SharedOffsets};

/// FENCED_INSTANCE_ID: another member holds the static instance id the request names.
pub const FENCED_INSTANCE_ID: i16 = kafka_protocol::error::ResponseError::FencedInstanceId.code();

/// What a JoinGroup answers.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    /// Error code.
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// Protocol type (`consumer`).
    pub protocol_type: Option<String>,
    /// The chosen protocol (assignor).
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader must not compute assignments (a static leader replaced in a stable group,
    /// JoinGroup v9+).
    pub skip_assignment: bool,
}

/// What a JoinGroup asks.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// Group.
    pub group_id: String,
    /// Member id (empty for a new member).
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type.
    pub protocol_type: String,
    /// Supported protocols with metadata, in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether a new member must first get an id (JoinGroup v4+).
    pub require_known_member_id: bool,
    /// Whether the client reads `skip_assignment` (JoinGroup v9+).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    join_tx: Option<oneshot::Sender<JoinResult>>,
    sync_tx: Option<oneshot::Sender<(i16, Bytes)>>,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they expire unless a join uses
    /// them (the asking join's session timeout, as Kafka's pending-member heartbeat).
    pending: BTreeMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet (Kafka's pending-sync
    /// members); those still here at `sync_deadline` are removed and the group rebalances.
    awaiting_sync: BTreeSet<String>,
    /// When the members of the current generation must have synced (the join's completion plus
    /// the members' largest rebalance timeout).
    sync_deadline: Option<Instant>,
    /// When the current rebalance must complete, whoever has rejoined.
    rebalance_deadline: Option<Instant>,
    /// A new group waits this long for more members before completing its first rebalance.
    initial_delay_until: Option<Instant>,
}

impl Group {
    fn new() -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            awaiting_sync: BTreeSet::new(),
            sync_deadline: None,
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    /// The members' largest rebalance timeout (Kafka's `ClassicGroup.rebalanceTimeoutMs`).
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        self.awaiting_sync.clear();
        self.sync_deadline = None;
        if self.state == State::CompletingRebalance {
            // Syncs waiting for the old generation's assignment must rejoin.
            for member in self.members.values_mut() {
                if let Some(tx) = member.sync_tx.take() {
                    let _ = tx.send((codes::REBALANCE_IN_PROGRESS, Bytes::new()));
                }
            }
        }
        if self.state != State::PreparingRebalance {
            self.rebalance_deadline = Some(now + self.rebalance_timeout());
            self.state = State::PreparingRebalance;
        }
    }

    fn all_joined(&self) -> bool {
        self.members.values().all(|m| m.join_tx.is_some())
    }

    /// Completes the join phase: members that did not rejoin are removed, a protocol is chosen,
    /// the generation advances and every waiting join is answered. Every member must then sync
    /// within the rebalance timeout.
    fn complete_join(&mut self, now: Instant) {
        self.members.retain(|_, m| m.join_tx.is_some());
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.select_protocol();
        self.protocol = protocol.clone();
        self.state = State::CompletingRebalance;
        self.awaiting_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        let roster = self.roster();
        for (id, member) in self.members.iter_mut() {
            member.last_seen = now;
            if let Some(tx) = member.join_tx.take() {
                let _ = tx.send(JoinResult {
                    error: codes::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
    }

    /// The protocol the next generation would use: the leader's first one every member supports.
    fn select_protocol(&self) -> Option<String> {
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l))?;
        leader
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|other| other.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Every member with its static id and its metadata for the chosen protocol (the leader's
    /// JoinGroup answer).
    fn roster(&self) -> Vec<(String, Option<String>, Bytes)> {
        let chosen = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|(id, m)| {
                let metadata = m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == chosen)
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                (id.clone(), m.group_instance_id.clone(), metadata)
            })
            .collect()
    }

    /// The member id holding static instance id `instance`.
    fn static_member(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.group_instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Kafka's `ClassicGroup.validateMember`: with an instance id, it must be held by
    /// `member_id` (else FENCED_INSTANCE_ID, or UNKNOWN_MEMBER_ID when nobody holds it); without
    /// one, `member_id` must be a member.
    fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), i16> {
        match instance {
            Some(instance) => match self.static_member(instance) {
                None => Err(codes::UNKNOWN_MEMBER_ID),
                Some(holder) if holder != member_id => {
                    tracing::info!(
                        member = member_id,
                        instance,
                        holder = %holder,
                        "static member fenced by the member holding its instance id"
                    );
                    Err(FENCED_INSTANCE_ID)
                }
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(codes::UNKNOWN_MEMBER_ID),
        }
    }

    /// A static member rejoining without its member id takes `new_id` in place of `old_id`
    /// (Kafka's `replaceStaticMember` then `updateStaticMemberThenRebalanceOrCompleteJoin`):
    /// the old id's pending join or sync is fenced; the member keeps its assignment (and the
    /// leadership); a stable group whose chosen protocol does not change answers the join at
    /// once with the current generation, else a rebalance runs.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: &str,
        request: &JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        if let Some(old) = member.join_tx.take() {
            let _ = old.send(JoinResult {
                error: FENCED_INSTANCE_ID,
                member_id: old_id.to_owned(),
                ..JoinResult::default()
            });
        }
        if let Some(old) = member.sync_tx.take() {
            let _ = old.send((FENCED_INSTANCE_ID, Bytes::new()));
        }
        if self.awaiting_sync.remove(old_id) {
            self.awaiting_sync.insert(new_id.to_owned());
        }
        let current_leader = self.leader.clone();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        member.protocols = request.protocols.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.last_seen = now;
        member.join_tx = Some(tx);
        self.members.insert(new_id.to_owned(), member);
        tracing::info!(
            old = old_id,
            new = new_id,
            state = self.state.name(),
            "static member replaced"
        );
        match self.state {
            State::Stable if self.select_protocol() == self.protocol => {
                let is_leader = self.leader.as_deref() == Some(new_id);
                let (members, leader, skip_assignment) = if request.supports_skip_assignment {
                    let members = if is_leader { self.roster() } else { Vec::new() };
                    (members, self.leader.clone(), is_leader)
                } else {
                    // Older clients get the old leader id, so a replaced leader does not
                    // assign (a stable group would not pass its assignment on).
                    (Vec::new(), current_leader, false)
                };
                let answer = JoinResult {
                    error: codes::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    leader: leader.unwrap_or_default(),
                    member_id: new_id.to_owned(),
                    members,
                    skip_assignment,
                };
                if let Some(tx) = self.members.get_mut(new_id).and_then(|m| m.join_tx.take()) {
                    let _ = tx.send(answer);
                }
            }
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
            }
            State::PreparingRebalance | State::Empty => self.maybe_complete_join(now),
        }
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (self.all_joined() && delay_over) || deadline_passed {
            self.complete_join(now);
        }
    }

    fn remove_member(&mut self, member_id: &str, now: Instant) {
        self.remove_members(&[member_id.to_owned()], now);
    }

    /// Removes members (their waiting join or sync is answered UNKNOWN_MEMBER_ID); the others
    /// rebalance, or the group becomes empty.
    fn remove_members(&mut self, ids: &[String], now: Instant) {
        for id in ids {
            self.awaiting_sync.remove(id);
            let Some(mut member) = self.members.remove(id) else {
                continue;
            };
            if let Some(tx) = member.join_tx.take() {
                let _ = tx.send(JoinResult {
                    error: codes::UNKNOWN_MEMBER_ID,
                    ..JoinResult::default()
                });
            }
            if let Some(tx) = member.sync_tx.take() {
                let _ = tx.send((codes::UNKNOWN_MEMBER_ID, Bytes::new()));
            }
        }
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation += 1;
            self.leader = None;
            self.protocol = None;
            self.rebalance_deadline = None;
            self.awaiting_sync.clear();
            self.sync_deadline = None;
            return;
        }
        self.prepare_rebalance(now);
        self.maybe_complete_join(now);
    }
}

struct Inner {
    groups: BTreeMap<String, Group>,
}

/// The group coordinator of this broker.
///
/// Two locks: `inner` (groups) and the shared offsets map; `inner` is taken first when both are
/// needed.
pub struct Coordinator {
    inner: Mutex<Inner>,
    offsets: SharedOffsets,
    initial_delay: Duration,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

impl Coordinator {
    /// A coordinator reading committed offsets from `offsets`.
    pub fn new(offsets: SharedOffsets, initial_delay: Duration) -> Coordinator {
        Coordinator {
            inner: Mutex::new(Inner {
                groups: BTreeMap::new(),
            }),
            offsets,
            initial_delay,
        }
    }

    fn lock_offsets(&self) -> std::sync::MutexGuard<'_, offsets::OffsetMap> {
        self.offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// JoinGroup: waits until the rebalance completes.
    pub async fn join(&self, request: JoinRequest) -> JoinResult {
        let error = |code| JoinResult {
            error: code,
            member_id: request.member_id.clone(),
            ..JoinResult::default()
        };
        if request.group_id.is_empty() {
            return error(codes::INVALID_GROUP_ID);
        }
        if request.session_timeout < Duration::from_millis(1000)
            || request.session_timeout > Duration::from_secs(1800)
        {
            return error(codes::INVALID_SESSION_TIMEOUT);
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return error(codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        let rx = 'locked: {
            let mut inner = self.lock();
            let now = Instant::now();
            let group = inner
                .groups
                .entry(request.group_id.clone())
                .or_insert_with(Group::new);
            let mut member_id = request.member_id.clone();
            let instance = request.group_instance_id.as_deref();
            // A static member rejoining without its member id replaces the one holding its
            // instance id (after the protocol checks below).
            let mut replaces = None;
            if member_id.is_empty() {
                if let Some(instance) = instance {
                    // Static members need no MEMBER_ID_REQUIRED round (Kafka).
                    member_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                    replaces = group.static_member(instance);
                } else {
                    member_id = format!("{}-{}", request.client_id, uuid::Uuid::new_v4());
                    if request.require_known_member_id {
                        group
                            .pending
                            .insert(member_id.clone(), now + request.session_timeout);
                        return JoinResult {
                            error: codes::MEMBER_ID_REQUIRED,
                            member_id,
                            ..JoinResult::default()
                        };
                    }
                }
            } else if instance.is_none() && group.pending.contains_key(&member_id) {
                group.pending.remove(&member_id);
            } else if let Err(code) = group.validate_member(&member_id, instance) {
                return error(code);
            }
            if group
                .protocol_type
                .as_ref()
                .is_some_and(|t| *t != request.protocol_type)
                && !group.members.is_empty()
            {
                return error(codes::INCONSISTENT_GROUP_PROTOCOL);
            }
            let others_ok = group
                .members
                .iter()
                .filter(|(id, _)| **id != member_id)
                .all(|(_, m)| {
                    request
                        .protocols
                        .iter()
                        .any(|(name, _)| m.protocols.iter().any(|(n, _)| n == name))
                });
            if !others_ok {
                return error(codes::INCONSISTENT_GROUP_PROTOCOL);
            }
            let (tx, rx) = oneshot::channel();
            if let Some(old) = replaces {
                group.replace_static_member(&old, &member_id, &request, tx, now);
                break 'locked rx;
            }
            let was_empty = group.members.is_empty();
            group.protocol_type = Some(request.protocol_type.clone());
            let member = group
                .members
                .entry(member_id.clone())
                .or_insert_with(|| Member {
                    group_instance_id: request.group_instance_id.clone(),
                    client_id: request.client_id.clone(),
                    client_host: request.client_host.clone(),
                    session_timeout: request.session_timeout,
                    rebalance_timeout: request.rebalance_timeout,
                    protocols: Vec::new(),
                    assignment: Bytes::new(),
                    last_seen: now,
                    join_tx: None,
                    sync_tx: None,
                });
            member.protocols = request.protocols.clone();
            member.session_timeout = request.session_timeout;
            member.rebalance_timeout = request.rebalance_timeout;
            member.last_seen = now;
            if let Some(old) = member.join_tx.replace(tx) {
                let _ = old.send(JoinResult {
                    error: codes::UNKNOWN_MEMBER_ID,
                    ..JoinResult::default()
                });
            }
            if group.state != State::PreparingRebalance {
                group.prepare_rebalance(now);
                if was_empty {
                    group.initial_delay_until = Some(now + self.initial_delay);
                }
            }
            group.maybe_complete_join(now);
            rx
        };
        Self::wait_join(rx).await
    }

    async fn wait_join(rx: oneshot::Receiver<JoinResult>) -> JoinResult {
        rx.await.unwrap_or_else(|_| JoinResult {
            error: codes::UNKNOWN_MEMBER_ID,
            ..JoinResult::default()
        })
    }

    /// SyncGroup: the leader's assignments are stored; everyone waits for theirs.
    pub async fn sync(
        &self,
        group_id: &str,
        generation: i32,
        (member_id, instance): (&str, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> (i16, Bytes) {
        let rx = {
            let mut inner = self.lock();
            let Some(group) = inner.groups.get_mut(group_id) else {
                return (codes::UNKNOWN_MEMBER_ID, Bytes::new());
            };
            if let Err(code) = group.validate_member(member_id, instance) {
                return (code, Bytes::new());
            }
            if generation != group.generation {
                return (codes::ILLEGAL_GENERATION, Bytes::new());
            }
            match group.state {
                State::PreparingRebalance | State::Empty => {
                    return (codes::REBALANCE_IN_PROGRESS, Bytes::new());
                }
                State::Stable => {
                    group.awaiting_sync.remove(member_id);
                    let member = group
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    return (codes::NONE, member);
                }
                State::CompletingRebalance => {
                    group.awaiting_sync.remove(member_id);
                }
            }
            let (tx, rx) = oneshot::channel();
            if let Some(member) = group.members.get_mut(member_id) {
                member.sync_tx = Some(tx);
                member.last_seen = Instant::now();
            }
            if group.leader.as_deref() == Some(member_id) {
                let assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                for (id, member) in group.members.iter_mut() {
                    member.assignment = assignments.get(id).cloned().unwrap_or_default();
                }
                group.state = State::Stable;
                for member in group.members.values_mut() {
                    if let Some(tx) = member.sync_tx.take() {
                        let _ = tx.send((codes::NONE, member.assignment.clone()));
                    }
                }
            }
            rx
        };
        rx.await
            .unwrap_or((codes::REBALANCE_IN_PROGRESS, Bytes::new()))
    }

    /// Heartbeat (`instance`: the static member's instance id, if any).
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> i16 {
        let mut inner = self.lock();
        let Some(group) = inner.groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if let Err(code) = group.validate_member(member_id, instance) {
            return code;
        }
        let state = group.state;
        let current = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        member.last_seen = Instant::now();
        if state == State::PreparingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if generation != current {
            return codes::ILLEGAL_GENERATION;
        }
        codes::NONE
    }

    /// LeaveGroup for each `(member id, instance id)`; returns an error code per member. As
    /// Kafka: an empty member id with an instance id removes the member holding it (an
    /// administrator's removal), a pending member id is forgotten, any other is checked as
    /// [`Group::validate_member`] does.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let mut inner = self.lock();
        let now = Instant::now();
        let Some(group) = inner.groups.get_mut(group_id) else {
            return vec![codes::UNKNOWN_MEMBER_ID; members.len()];
        };
        members
            .iter()
            .map(|(id, instance)| {
                if id.is_empty() {
                    match instance.as_deref().and_then(|i| group.static_member(i)) {
                        Some(holder) => {
                            group.remove_member(&holder, now);
                            codes::NONE
                        }
                        None => codes::UNKNOWN_MEMBER_ID,
                    }
                } else if group.pending.remove(id).is_some() {
                    codes::NONE
                } else {
                    match group.validate_member(id, instance.as_deref()) {
                        Ok(()) => {
                            group.remove_member(id, now);
                            codes::NONE
                        }
                        Err(code) => code,
                    }
                }
            })
            .collect()
    }

    /// Expires silent members, members that did not sync in time, and member ids never used,
    /// and completes rebalances whose time is up. Called periodically.
    pub fn tick(&self) {
        self.tick_at(Instant::now());
    }

    /// [`Coordinator::tick`] as of `now` (tests drive the clock through it).
    fn tick_at(&self, now: Instant) {
        let mut inner = self.lock();
        for (group_id, group) in inner.groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_tx.is_none()
                        && m.sync_tx.is_none()
                        && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group_id, member = %id, "member session expired");
                group.remove_member(&id, now);
            }
            // Kafka's `expirePendingSync`: after the rebalance timeout, the members of the
            // generation that have not sent SyncGroup (the leader among them, if it has not
            // assigned) are removed and the others rebalance; syncs waiting for the leader are
            // answered REBALANCE_IN_PROGRESS.
            if group.sync_deadline.is_some_and(|t| now >= t) {
                group.sync_deadline = None;
                let late: Vec<String> = std::mem::take(&mut group.awaiting_sync)
                    .into_iter()
                    .collect();
                if !late.is_empty()
                    && matches!(group.state, State::CompletingRebalance | State::Stable)
                {
                    tracing::info!(
                        group = %group_id,
                        members = ?late,
                        state = group.state.name(),
                        "members did not sync within the rebalance timeout"
                    );
                    group.remove_members(&late, now);
                }
            }
            group.maybe_complete_join(now);
            // A member id handed out with MEMBER_ID_REQUIRED but not used within the session
            // timeout expires (Kafka's pending-member heartbeat).
            group.pending.retain(|_, expires| now < *expires);
        }
        // Groups with no members and nothing pending are forgotten (their committed offsets stay),
        // so rejected or abandoned joins do not accumulate.
        inner.groups.retain(|_, g| {
            !(g.members.is_empty() && g.pending.is_empty() && g.state == State::Empty)
        });
    }

    /// OffsetCommit: validates membership when a generation, member id or instance id is given
    /// (and counts the commit as a sign of life). NONE means the caller may propose the commit.
    pub fn commit_check(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> i16 {
        let mut inner = self.lock();
        let check = match inner.groups.get(group_id) {
            _ if group_id.is_empty() => codes::INVALID_GROUP_ID,
            Some(group) if generation >= 0 || !member_id.is_empty() || instance.is_some() => {
                if let Err(code) = group.validate_member(member_id, instance) {
                    code
                } else if generation != group.generation {
                    codes::ILLEGAL_GENERATION
                } else if group.state == State::CompletingRebalance {
                    codes::REBALANCE_IN_PROGRESS
                } else {
                    codes::NONE
                }
            }
            Some(group) if !group.members.is_empty() => codes::UNKNOWN_MEMBER_ID,
            None if generation >= 0 => codes::ILLEGAL_GENERATION,
            _ => codes::NONE,
        };
        if check == codes::NONE
            && let Some(group) = inner.groups.get_mut(group_id)
            && let Some(member) = group.members.get_mut(member_id)
        {
            member.last_seen = Instant::now();
        }
        check
    }

    /// OffsetFetch: committed offsets of a group (all of them when `topics` is `None`).
    pub fn fetch(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, i32, Option<Committed>)> {
        let offsets = self.lock_offsets();
        let entries = offsets.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                .map(|(t, p)| {
                    let committed = entries.and_then(|e| e.get(&(t.clone(), p))).cloned();
                    (t, p, committed)
                })
                .collect(),
            None => entries
                .map(|e| {
                    e.iter()
                        .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// ListGroups: `(group id, protocol type, state)`.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let inner = self.lock();
        let offsets = self.lock_offsets();
        let mut out: BTreeMap<String, (String, &'static str)> = offsets
            .keys()
            .map(|g| (g.clone(), (String::new(), "Empty")))
            .collect();
        for (id, group) in &inner.groups {
            if group.members.is_empty() && !offsets.contains_key(id) {
                continue;
            }
            out.insert(
                id.clone(),
                (
                    group.protocol_type.clone().unwrap_or_default(),
                    group.state.name(),
                ),
            );
        }
        out.into_iter().map(|(g, (t, s))| (g, t, s)).collect()
    }

    /// DescribeGroups for one group (`Dead` when unknown).
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let inner = self.lock();
        match inner.groups.get(group_id) {
            Some(group) => GroupDescription {
                state: group.state.name(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocol: group.protocol.clone().unwrap_or_default(),
                members: group
                    .members
                    .iter()
                    .map(|(id, m)| MemberDescription {
                        member_id: id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: group
                            .protocol
                            .as_ref()
                            .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                            .map(|(_, md)| md.clone())
                            .unwrap_or_default(),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            },
            None if self.lock_offsets().contains_key(group_id) => GroupDescription {
                state: "Empty",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
            None => GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups: only groups without members. NONE means the caller may propose the
    /// deletion of the committed offsets; the group's state here is forgotten at once.
    pub fn delete_check(&self, group_id: &str) -> i16 {
        let mut inner = self.lock();
        let has_members = inner
            .groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty());
        if has_members {
            return codes::NON_EMPTY_GROUP;
        }
        let known =
            inner.groups.contains_key(group_id) || self.lock_offsets().contains_key(group_id);
        if !known {
            return codes::GROUP_ID_NOT_FOUND;
        }
        inner.groups.remove(group_id);
        codes::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(group: &str, member: &str) -> JoinRequest {
        JoinRequest {
            group_id: group.into(),
            member_id: member.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(5),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    #[tokio::test]
    async fn two_members_join_sync_and_rebalance_on_leave() {
        let coordinator = std::sync::Arc::new(Coordinator::new(
            SharedOffsets::default(),
            Duration::from_millis(100),
        ));
        let ticker = {
            let c = std::sync::Arc::clone(&coordinator);
            tokio::spawn(async move {
                loop {
                    c.tick();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let first = coordinator.join(request("g", "")).await;
        assert_eq!(first.error, codes::MEMBER_ID_REQUIRED);
        let (a, b) = {
            let c1 = std::sync::Arc::clone(&coordinator);
            let c2 = std::sync::Arc::clone(&coordinator);
            let id_a = first.member_id.clone();
            let id_b = coordinator.join(request("g", "")).await.member_id;
            let ja = tokio::spawn(async move { c1.join(request("g", &id_a)).await });
            let jb = tokio::spawn(async move { c2.join(request("g", &id_b)).await });
            (ja.await.unwrap(), jb.await.unwrap())
        };
        assert_eq!((a.error, b.error), (0, 0));
        assert_eq!(a.generation, b.generation);
        let (leader, follower) = if a.members.is_empty() { (b, a) } else { (a, b) };
        assert_eq!(leader.members.len(), 2);
        assert_eq!(leader.protocol_name.as_deref(), Some("range"));
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"L")),
            (follower.member_id.clone(), Bytes::from_static(b"F")),
        ];
        let c = std::sync::Arc::clone(&coordinator);
        let follower_id = follower.member_id.clone();
        let generation = follower.generation;
        let follower_sync = tokio::spawn(async move {
            c.sync("g", generation, (&follower_id, None), Vec::new())
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            coordinator
                .sync(
                    "g",
                    leader.generation,
                    (&leader.member_id, None),
                    assignments
                )
                .await,
            (0, Bytes::from_static(b"L"))
        );
        assert_eq!(follower_sync.await.unwrap(), (0, Bytes::from_static(b"F")));
        assert_eq!(
            coordinator.heartbeat("g", generation, &leader.member_id, None),
            codes::NONE
        );
        assert_eq!(
            coordinator.heartbeat("g", generation - 1, &leader.member_id, None),
            codes::ILLEGAL_GENERATION
        );
        assert_eq!(
            coordinator.heartbeat("g", generation, "nobody", None),
            codes::UNKNOWN_MEMBER_ID
        );

        // The follower leaves: the leader is told to rejoin and gets a group of one.
        assert_eq!(
            coordinator.leave("g", &[(follower.member_id.clone(), None)]),
            vec![codes::NONE]
        );
        assert_eq!(
            coordinator.heartbeat("g", generation, &leader.member_id, None),
            codes::REBALANCE_IN_PROGRESS
        );
        let again = coordinator.join(request("g", &leader.member_id)).await;
        assert_eq!(
            (again.error, again.generation, again.members.len()),
            (0, generation + 1, 1)
        );
        ticker.abort();
    }

    fn static_request(member: &str, instance: &str) -> JoinRequest {
        JoinRequest {
            group_instance_id: Some(instance.into()),
            ..request("s", member)
        }
    }

    /// A stable group "s" of static members "a" and "b" supporting `protocols` (generation, a's
    /// id, b's id).
    async fn static_group(
        coordinator: &std::sync::Arc<Coordinator>,
        protocols: &[&str],
    ) -> (i32, String, String) {
        let join = |instance: &str| JoinRequest {
            protocols: protocols
                .iter()
                .map(|p| ((*p).to_owned(), Bytes::from_static(b"meta")))
                .collect(),
            ..static_request("", instance)
        };
        let (c1, c2) = (
            std::sync::Arc::clone(coordinator),
            std::sync::Arc::clone(coordinator),
        );
        // Static members get their member id at once: no MEMBER_ID_REQUIRED round.
        let (join_a, join_b) = (join("a"), join("b"));
        let ja = tokio::spawn(async move { c1.join(join_a).await });
        let jb = tokio::spawn(async move { c2.join(join_b).await });
        let (a, b) = (ja.await.unwrap(), jb.await.unwrap());
        assert_eq!((a.error, b.error), (0, 0));
        assert!(a.member_id.starts_with("a-") && b.member_id.starts_with("b-"));
        let (leader, follower) = if a.members.is_empty() {
            (&b, &a)
        } else {
            (&a, &b)
        };
        let assignments = vec![
            (a.member_id.clone(), Bytes::from_static(b"A")),
            (b.member_id.clone(), Bytes::from_static(b"B")),
        ];
        let c = std::sync::Arc::clone(coordinator);
        let (follower_id, generation) = (follower.member_id.clone(), follower.generation);
        let follower_sync = tokio::spawn(async move {
            c.sync("s", generation, (&follower_id, None), Vec::new())
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let leader_sync = coordinator
            .sync("s", generation, (&leader.member_id, None), assignments)
            .await;
        assert_eq!(leader_sync.0, 0);
        assert_eq!(follower_sync.await.unwrap().0, 0);
        (generation, a.member_id, b.member_id)
    }

    fn with_ticker(coordinator: &std::sync::Arc<Coordinator>) -> tokio::task::JoinHandle<()> {
        let c = std::sync::Arc::clone(coordinator);
        tokio::spawn(async move {
            loop {
                c.tick();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    #[tokio::test]
    async fn a_restarted_static_member_replaces_itself_without_a_rebalance() {
        let coordinator = std::sync::Arc::new(Coordinator::new(
            SharedOffsets::default(),
            Duration::from_millis(100),
        ));
        let ticker = with_ticker(&coordinator);
        let (generation, a, b) = static_group(&coordinator, &["range"]).await;
        let leader = coordinator.lock().groups["s"].leader.clone().unwrap();
        let (restarted, other) = if leader == a { ("b", &a) } else { ("a", &b) };
        let old = if restarted == "a" { &a } else { &b };
        // The follower's process restarts: it joins with no member id and its instance id.
        let again = coordinator.join(static_request("", restarted)).await;
        assert_eq!(again.error, codes::NONE);
        assert_eq!(again.generation, generation, "no rebalance");
        assert_ne!(&again.member_id, old);
        assert_eq!(again.leader, leader);
        assert!(again.members.is_empty() && !again.skip_assignment);
        // It syncs into the current generation and gets its old assignment.
        let expected = Bytes::from_static(if restarted == "a" { b"A" } else { b"B" });
        assert_eq!(
            coordinator
                .sync(
                    "s",
                    generation,
                    (&again.member_id, Some(restarted)),
                    Vec::new()
                )
                .await,
            (codes::NONE, expected)
        );
        // The other member is not disturbed.
        assert_eq!(
            coordinator.heartbeat("s", generation, other, None),
            codes::NONE
        );
        assert_eq!(
            coordinator.heartbeat("s", generation, &again.member_id, Some(restarted)),
            codes::NONE
        );
        // The old member id with the instance id is fenced everywhere.
        assert_eq!(
            coordinator.heartbeat("s", generation, old, Some(restarted)),
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            coordinator
                .sync("s", generation, (old, Some(restarted)), Vec::new())
                .await
                .0,
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            coordinator.commit_check("s", generation, old, Some(restarted)),
            FENCED_INSTANCE_ID
        );
        assert_eq!(
            coordinator.leave("s", &[(old.clone(), Some(restarted.into()))]),
            vec![FENCED_INSTANCE_ID]
        );
        // Without the instance id the old id is simply unknown; an unknown instance id too.
        assert_eq!(
            coordinator.heartbeat("s", generation, old, None),
            codes::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            coordinator.heartbeat("s", generation, old, Some("nobody")),
            codes::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            coordinator.commit_check("s", generation, &again.member_id, Some(restarted)),
            codes::NONE
        );
        assert_eq!(coordinator.describe("s").state, "Stable");
        // LeaveGroup v3+ by instance id alone removes the member: the others rebalance.
        assert_eq!(
            coordinator.leave(
                "s",
                &[
                    (String::new(), Some(restarted.into())),
                    (String::new(), Some("x".into()))
                ]
            ),
            vec![codes::NONE, codes::UNKNOWN_MEMBER_ID]
        );
        assert_eq!(
            coordinator.heartbeat("s", generation, other, None),
            codes::REBALANCE_IN_PROGRESS
        );
        ticker.abort();
    }

    #[tokio::test]
    async fn a_restarted_static_leader_skips_assignment_and_a_protocol_change_rebalances() {
        let coordinator = std::sync::Arc::new(Coordinator::new(
            SharedOffsets::default(),
            Duration::from_millis(100),
        ));
        let ticker = with_ticker(&coordinator);
        let (generation, a, b) = static_group(&coordinator, &["range", "roundrobin"]).await;
        let leader = coordinator.lock().groups["s"].leader.clone().unwrap();
        let instance = if leader == a { "a" } else { "b" };
        // JoinGroup v9+: the new leader id, the roster, and skip_assignment.
        let v9 = coordinator.join(static_request("", instance)).await;
        assert_eq!(
            (
                v9.error,
                v9.generation,
                v9.skip_assignment,
                v9.members.len()
            ),
            (0, generation, true, 2)
        );
        assert_eq!(v9.leader, v9.member_id);
        // Older clients are told the previous leader id, so they do not assign.
        let old_client = JoinRequest {
            supports_skip_assignment: false,
            ..static_request("", instance)
        };
        let v5 = coordinator.join(old_client).await;
        assert_eq!((v5.error, v5.generation), (0, generation));
        assert_eq!(v5.leader, v9.member_id);
        assert!(v5.members.is_empty() && !v5.skip_assignment);
        // The leader coming back preferring another protocol changes the group's choice: a
        // rebalance, which the other member joins into the next generation.
        let changed = JoinRequest {
            protocols: vec![
                ("roundrobin".into(), Bytes::from_static(b"meta")),
                ("range".into(), Bytes::from_static(b"meta")),
            ],
            ..static_request("", instance)
        };
        let c = std::sync::Arc::clone(&coordinator);
        let rejoin = tokio::spawn(async move { c.join(changed).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(coordinator.describe("s").state, "PreparingRebalance");
        let other = if instance == "a" {
            ("b", &b)
        } else {
            ("a", &a)
        };
        assert_eq!(
            coordinator.heartbeat("s", generation, other.1, Some(other.0)),
            codes::REBALANCE_IN_PROGRESS
        );
        let follower = JoinRequest {
            protocols: vec![
                ("range".into(), Bytes::from_static(b"meta")),
                ("roundrobin".into(), Bytes::from_static(b"meta")),
            ],
            ..static_request(other.1, other.0)
        };
        let follower_join = coordinator.join(follower).await;
        let leader_join = rejoin.await.unwrap();
        assert_eq!(
            (
                leader_join.error,
                leader_join.generation,
                follower_join.generation
            ),
            (0, generation + 1, generation + 1)
        );
        assert_eq!(follower_join.protocol_name.as_deref(), Some("roundrobin"));
        ticker.abort();
    }

    /// Waits (1 ms steps, at most a second) until `done` holds of the coordinator's groups.
    async fn until(coordinator: &Coordinator, done: impl Fn(&Inner) -> bool) {
        for _ in 0..1000 {
            if done(&coordinator.lock()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("condition not reached");
    }

    /// `n` new members join group `group` of a coordinator whose initial delay (1 s) holds the
    /// join open; the clock is then driven past the delay. Returns the answers (the leader's
    /// first) and the instant the join completed at.
    async fn join_members(
        coordinator: &std::sync::Arc<Coordinator>,
        group: &str,
        n: usize,
    ) -> (Vec<JoinResult>, Instant) {
        let joins: Vec<_> = (0..n)
            .map(|i| {
                let c = std::sync::Arc::clone(coordinator);
                let join = JoinRequest {
                    client_id: format!("m{i}"),
                    require_known_member_id: false,
                    ..request(group, "")
                };
                tokio::spawn(async move { c.join(join).await })
            })
            .collect();
        until(coordinator, |inner| {
            inner
                .groups
                .get(group)
                .is_some_and(|g| g.members.len() == n)
        })
        .await;
        let now = Instant::now() + Duration::from_secs(1);
        coordinator.tick_at(now);
        let mut answers = Vec::new();
        for join in joins {
            answers.push(join.await.unwrap());
        }
        answers.sort_by_key(|a| a.members.is_empty());
        assert!(answers.iter().all(|a| a.error == codes::NONE));
        assert_eq!(answers[0].members.len(), n, "the leader gets the roster");
        (answers, now)
    }

    #[tokio::test]
    async fn a_leader_that_does_not_sync_within_the_rebalance_timeout_is_removed() {
        let coordinator = std::sync::Arc::new(Coordinator::new(
            SharedOffsets::default(),
            Duration::from_secs(1),
        ));
        let (answers, joined) = join_members(&coordinator, "g", 2).await;
        let (leader, follower) = (&answers[0], &answers[1]);
        let generation = follower.generation;
        // The follower syncs and waits for the leader's assignment, which never comes.
        let c = std::sync::Arc::clone(&coordinator);
        let follower_id = follower.member_id.clone();
        let follower_sync = tokio::spawn(async move {
            c.sync("g", generation, (&follower_id, None), Vec::new())
                .await
        });
        until(&coordinator, |inner| {
            inner.groups["g"].members[&follower.member_id]
                .sync_tx
                .is_some()
        })
        .await;
        // Within the rebalance timeout (5 s) nothing happens.
        coordinator.tick_at(joined + Duration::from_millis(4999));
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(!follower_sync.is_finished());
        assert_eq!(coordinator.describe("g").state, "CompletingRebalance");
        // At the rebalance timeout (well within the 10 s session timeout) the leader, which did
        // not sync, is removed; the follower's sync is told to rejoin.
        coordinator.tick_at(joined + Duration::from_secs(5));
        let answered = tokio::time::timeout(Duration::from_secs(1), follower_sync).await;
        assert_eq!(
            answered.expect("the follower's sync is answered").unwrap(),
            (codes::REBALANCE_IN_PROGRESS, Bytes::new())
        );
        let described = coordinator.describe("g");
        assert_eq!(described.state, "PreparingRebalance");
        let remaining: Vec<_> = described.members.iter().map(|m| &m.member_id).collect();
        assert_eq!(remaining, vec![&follower.member_id]);
        assert_eq!(
            coordinator.heartbeat("g", generation, &leader.member_id, None),
            codes::UNKNOWN_MEMBER_ID
        );
        let late = vec![(leader.member_id.clone(), Bytes::from_static(b"L"))];
        assert_eq!(
            coordinator
                .sync("g", generation, (&leader.member_id, None), late)
                .await
                .0,
            codes::UNKNOWN_MEMBER_ID
        );
        // The follower rejoins and leads the next generation alone.
        let again = coordinator.join(request("g", &follower.member_id)).await;
        assert_eq!(
            (again.error, again.generation, again.members.len()),
            (codes::NONE, generation + 1, 1)
        );
        assert_eq!(again.leader, follower.member_id);
    }

    #[tokio::test]
    async fn a_follower_that_never_syncs_is_removed_and_a_synced_group_is_left_alone() {
        let coordinator = std::sync::Arc::new(Coordinator::new(
            SharedOffsets::default(),
            Duration::from_secs(1),
        ));
        let (answers, joined) = join_members(&coordinator, "g", 2).await;
        let (leader, follower) = (&answers[0], &answers[1]);
        let generation = leader.generation;
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"L")),
            (follower.member_id.clone(), Bytes::from_static(b"F")),
        ];
        assert_eq!(
            coordinator
                .sync("g", generation, (&leader.member_id, None), assignments)
                .await,
            (codes::NONE, Bytes::from_static(b"L"))
        );
        assert_eq!(coordinator.describe("g").state, "Stable");
        coordinator.tick_at(joined + Duration::from_millis(4999));
        assert_eq!(
            coordinator.heartbeat("g", generation, &leader.member_id, None),
            codes::NONE
        );
        // The follower got its generation but never asked for its assignment: removed at the
        // rebalance timeout, and the leader is told to rejoin.
        coordinator.tick_at(joined + Duration::from_secs(5));
        assert_eq!(
            coordinator.heartbeat("g", generation, &leader.member_id, None),
            codes::REBALANCE_IN_PROGRESS
        );
        assert_eq!(
            coordinator.heartbeat("g", generation, &follower.member_id, None),
            codes::UNKNOWN_MEMBER_ID
        );
        let again = coordinator.join(request("g", &leader.member_id)).await;
        assert_eq!(
            (again.error, again.generation, again.members.len()),
            (codes::NONE, generation + 1, 1)
        );
        let mine = vec![(leader.member_id.clone(), Bytes::from_static(b"all"))];
        assert_eq!(
            coordinator
                .sync("g", again.generation, (&leader.member_id, None), mine)
                .await,
            (codes::NONE, Bytes::from_static(b"all"))
        );
        // Everyone synced: past the rebalance timeout (within the session) nothing changes.
        coordinator.tick_at(Instant::now() + Duration::from_secs(6));
        assert_eq!(coordinator.describe("g").state, "Stable");
        assert_eq!(
            coordinator.heartbeat("g", again.generation, &leader.member_id, None),
            codes::NONE
        );
    }

    #[tokio::test]
    async fn member_ids_never_used_expire_after_the_session_timeout() {
        let coordinator = Coordinator::new(SharedOffsets::default(), Duration::ZERO);
        let unused = coordinator.join(request("p", "")).await;
        assert_eq!(unused.error, codes::MEMBER_ID_REQUIRED);
        let asked = Instant::now();
        coordinator.tick_at(asked + Duration::from_millis(9999));
        assert!(
            coordinator.lock().groups["p"]
                .pending
                .contains_key(&unused.member_id)
        );
        // The join asked with a 10 s session timeout: the id expires, and the group with it.
        coordinator.tick_at(asked + Duration::from_secs(10));
        assert!(coordinator.lock().groups.is_empty());
        assert_eq!(
            coordinator
                .join(request("p", &unused.member_id))
                .await
                .error,
            codes::UNKNOWN_MEMBER_ID
        );
        // An id used in time becomes a member and is no longer pending.
        let used = coordinator.join(request("p", "")).await;
        assert_eq!(used.error, codes::MEMBER_ID_REQUIRED);
        let joined = coordinator.join(request("p", &used.member_id)).await;
        assert_eq!(
            (joined.error, joined.member_id),
            (codes::NONE, used.member_id)
        );
        assert!(coordinator.lock().groups["p"].pending.is_empty());
    }

    #[tokio::test]
    async fn empty_groups_are_forgotten_but_their_offsets_stay() {
        let coordinator = Coordinator::new(SharedOffsets::default(), Duration::ZERO);
        let mut join = request("lonely", "");
        join.require_known_member_id = false;
        let joined = coordinator.join(join).await;
        assert_eq!(joined.error, codes::NONE);
        let assignment = vec![(joined.member_id.clone(), Bytes::from_static(b"a"))];
        assert_eq!(
            coordinator
                .sync(
                    "lonely",
                    joined.generation,
                    (&joined.member_id, None),
                    assignment
                )
                .await
                .0,
            codes::NONE
        );
        assert_eq!(
            coordinator.commit_check("lonely", joined.generation, &joined.member_id, None),
            codes::NONE
        );
        offsets::apply_commit(
            &mut coordinator.lock_offsets(),
            "lonely",
            &[("t".into(), 0, 5, None)],
        );
        assert_eq!(
            coordinator.leave("lonely", &[(joined.member_id.clone(), None)]),
            vec![codes::NONE]
        );
        coordinator.tick();
        assert_eq!(
            coordinator.lock().groups.len(),
            0,
            "the empty group is dropped"
        );
        assert_eq!(
            coordinator.fetch("lonely", None)[0]
                .2
                .as_ref()
                .map(|c| c.offset),
            Some(5)
        );
        assert_eq!(
            coordinator.list(),
            vec![("lonely".into(), String::new(), "Empty")]
        );
    }

    #[tokio::test]
    async fn commits_and_deletions_are_checked_before_they_are_proposed() {
        let coordinator = Coordinator::new(SharedOffsets::default(), Duration::ZERO);
        assert_eq!(
            coordinator.commit_check("", -1, "", None),
            codes::INVALID_GROUP_ID
        );
        assert_eq!(
            coordinator.commit_check("g", 3, "m", None),
            codes::ILLEGAL_GENERATION
        );
        assert_eq!(coordinator.commit_check("g", -1, "", None), codes::NONE);
        assert_eq!(coordinator.delete_check("g"), codes::GROUP_ID_NOT_FOUND);
        offsets::apply_commit(
            &mut coordinator.lock_offsets(),
            "g",
            &[
                ("t".into(), 0, 42, None),
                ("t".into(), 1, 7, Some("m".into())),
            ],
        );
        offsets::apply_commit(
            &mut coordinator.lock_offsets(),
            "g",
            &[("t".into(), 0, 43, None)],
        );
        let fetched = coordinator.fetch("g", Some(vec![("t".into(), vec![0, 1, 2])]));
        assert_eq!(fetched[0].2.as_ref().map(|c| c.offset), Some(43));
        assert_eq!(
            fetched[1].2.as_ref().and_then(|c| c.metadata.clone()),
            Some("m".into())
        );
        assert_eq!(fetched[2].2, None);
        assert_eq!(
            coordinator.list(),
            vec![("g".into(), String::new(), "Empty")]
        );
        // Snapshots carry the map unchanged.
        let records = offsets::to_records(&coordinator.lock_offsets());
        assert_eq!(offsets::from_records(records), *coordinator.lock_offsets());
        assert_eq!(coordinator.delete_check("g"), codes::NONE);
        offsets::apply_delete(&mut coordinator.lock_offsets(), "g");
        assert_eq!(coordinator.delete_check("g"), codes::GROUP_ID_NOT_FOUND);
        assert!(coordinator.fetch("g", None).is_empty());
    }
}
