//! The link reconciler: makes every replication link's configuration on its target cluster
//! match its row, and drives the links' operations (pause, resume, promote, failover,
//! reverse) to their end.
//!
//! Level-triggered, its own periodic task (off with `--no-reconciler`). Each pass, per link:
//! 1. **Converge**: reads the target's `hdi.link.<name>.*` keys and sets what differs from
//!    [`desired_configs`] (filters, the source's bootstrap servers and security, the state the
//!    row's state maps to), deleting managed keys the row no longer has. A link not defined on
//!    the target yet (or that must log in as another user) gets a new password, set on the
//!    source first (the link's SCRAM user, with its ACLs) and then given to the target only.
//! 2. **Observe** the target ([`observe`]): its status and every broker's mirror partitions.
//! 3. **Advance** the link's running operation from what it observes, recording its steps: the
//!    stage is recomputed from observation every pass, so a control plane killed anywhere
//!    carries on from where the clusters are. Without the brokers' per-partition status
//!    (`hdi.link.<name>.partitions`), a promote or failover is taken as finished once every
//!    mirror topic of the link takes writes ([`KafkaAdmin::topic_writable`], a probe that writes
//!    nothing), and its result then has no stop offsets.
//!
//! Every action is idempotent. Several control planes may run passes at once: each leases the
//! links it works on (`links_claim`), so one link is worked on by one at a time (two new
//! passwords for one link user could otherwise end on the source and the target apart).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use crate::kafka_admin::{AdminError, KafkaAdmin};
use crate::model::{
    ClusterRecord, ErrorCode, LinkFilters, LinkOperationResult, LinkState, OperationKind,
    OperationRecord, OperationState, OperationStep, ReplicationLinkRecord,
};
use crate::service::ServiceError;
use crate::service::link::{
    LinkStatusView, READ_ONLY, cluster_admin, desired_configs, drop_link_user, key_prefix,
    link_keys, link_security, new_link_password, observe, plan_configs, source_user_for,
};
use crate::store::{Store, StoreError};

/// The link reconciler.
pub struct LinkReconciler {
    store: Store,
    /// Who holds the leases of the links this reconciler works on.
    owner: uuid::Uuid,
    interval: Duration,
    timeout: Duration,
    operation_timeout: Duration,
}

/// Why converging a link failed.
enum Failure {
    /// The cluster refused the change (the operation asking for it fails).
    Refused(String),
    /// Anything else (retried next pass).
    Transient(String),
}

fn failure(error: ServiceError) -> Failure {
    match error {
        ServiceError::Upstream {
            code: ErrorCode::KafkaError,
            message,
        }
        | ServiceError::InvalidField { message, .. }
        | ServiceError::Refused { message, .. } => Failure::Refused(message),
        other => Failure::Transient(other.to_string()),
    }
}

fn kafka_failure(cluster: &str, error: AdminError) -> Failure {
    match error {
        AdminError::Kafka { .. } => {
            Failure::Refused(format!("cluster {cluster:?} refused: {error}"))
        }
        other => Failure::Transient(format!("cluster {cluster:?}: {other}")),
    }
}

impl LinkReconciler {
    /// A reconciler running a pass every `interval`; each Kafka call may take `timeout`; a
    /// link operation running longer than `operation_timeout` fails (`timed_out`).
    pub fn new(
        store: Store,
        interval: Duration,
        timeout: Duration,
        operation_timeout: Duration,
    ) -> LinkReconciler {
        LinkReconciler {
            store,
            owner: uuid::Uuid::new_v4(),
            interval,
            timeout,
            operation_timeout,
        }
    }

    /// Runs passes until `stop` is notified.
    pub async fn run(self, stop: Arc<Notify>, metrics: Arc<crate::metrics::Metrics>) {
        loop {
            if let Err(error) = metrics.timed("links", self.pass()).await {
                tracing::warn!(error = %crate::error_chain(&error), "link reconcile pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.notified() => break,
            }
        }
        if let Err(error) = self.store.links_release(self.owner).await {
            tracing::warn!(%error, "cannot release link leases");
        }
    }

    /// One pass over the links this reconciler can lease (several control planes split them;
    /// none works on a link another holds).
    ///
    /// # Errors
    /// When the store fails leasing the links.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let lease = (self.interval * 10).max(self.timeout * 6);
        for id in self.store.links_claim(self.owner, lease, 256).await? {
            let Some(link) = self.store.link_get_by_id(id).await? else {
                continue;
            };
            if let Err(error) = self.reconcile(&link).await {
                tracing::warn!(link = %link.name, error = %crate::error_chain(&error), "link reconcile failed");
            }
        }
        Ok(())
    }

    async fn reconcile(&self, link: &ReplicationLinkRecord) -> Result<(), StoreError> {
        let op = self.store.link_operation_running(link.id).await?;
        let (Some(source), Some(target)) = (
            self.store.cluster_get_by_id(link.source_cluster_id).await?,
            self.store.cluster_get_by_id(link.target_cluster_id).await?,
        ) else {
            return Ok(());
        };
        let admin = match cluster_admin(&self.store, &target, self.timeout).await {
            Ok(admin) => admin,
            Err(error) => {
                if let Some(op) = &op {
                    self.wait(op, &format!("target unavailable: {error}"))
                        .await?;
                }
                return Ok(());
            }
        };
        // A planned switchover tells the target to promote only once the source is fenced.
        let mut effective = link.clone();
        if let Some(op) = &op
            && op.kind == OperationKind::LinkPromote
            && !step_done(op, 0)
        {
            effective.state = LinkState::Mirroring;
        }
        // While reversing, the target's link is stopped and is the reverse's to remove: it is
        // left as it is (never defined again).
        let converged = if effective.state == LinkState::Reversing {
            Ok(())
        } else {
            self.converge(&effective, &source, &target, &admin).await
        };
        if let Err(Failure::Transient(message)) = &converged {
            tracing::debug!(link = %link.name, %message, "link not converged");
        }
        let Some(op) = op else {
            if let Err(Failure::Refused(message)) = &converged {
                tracing::warn!(link = %link.name, %message, "the target refuses the link");
            }
            return Ok(());
        };
        if let Err(Failure::Refused(message)) = converged
            && op.kind != OperationKind::LinkReverse
        {
            return self
                .fail(link, &source, &op, ErrorCode::KafkaError, &message)
                .await;
        }
        if (Utc::now() - op.created_at).to_std().unwrap_or_default() > self.operation_timeout {
            let detail = format!(
                "did not finish within {}",
                humantime::format_duration(self.operation_timeout)
            );
            // A promote whose target was not told to promote yet goes back to mirroring, its
            // fence off: left `promoting`, the next pass would promote an unfenced pair.
            if op.kind == OperationKind::LinkPromote && !step_done(&op, 1) {
                return self
                    .fail(link, &source, &op, ErrorCode::TimedOut, &detail)
                    .await;
            }
            return self
                .finish(
                    &op,
                    op.steps.clone(),
                    OperationState::Failed,
                    Some((ErrorCode::TimedOut, &detail)),
                )
                .await;
        }
        let view = observe(&admin, &link.name).await;
        match op.kind {
            OperationKind::LinkPause | OperationKind::LinkResume => {
                self.advance_pause(&target, &op, &view).await
            }
            OperationKind::LinkPromote | OperationKind::LinkFailover => {
                self.advance_stop(link, &source, &target, &admin, &op, &view)
                    .await
            }
            OperationKind::LinkReverse => {
                self.advance_reverse(link, &source, &target, &admin, &op, &view)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Makes the target's keys of `link` its row's.
    async fn converge(
        &self,
        link: &ReplicationLinkRecord,
        source: &ClusterRecord,
        target: &ClusterRecord,
        admin: &KafkaAdmin,
    ) -> Result<(), Failure> {
        let keys = link_keys(admin, &link.name)
            .await
            .map_err(|e| Failure::Transient(format!("cluster {:?}: {e}", target.name)))?;
        // Stopped on the brokers themselves (`hdictl link failover --break-glass` while the
        // control plane was down): the row follows them, never the other way round (a stopped
        // link cannot mirror again).
        let on_brokers = keys
            .get(&format!("{}state", key_prefix(&link.name)))
            .cloned()
            .flatten();
        let stopped_there = match on_brokers.as_deref() {
            Some("failover") => Some(LinkState::FailedOver),
            Some("promote") => Some(LinkState::Promoted),
            _ => None,
        };
        if let Some(state) = stopped_there
            && !link.state.stopped()
        {
            tracing::warn!(link = %link.name, state = state.as_str(), "the link was stopped on its target's brokers directly: recording it");
            return self
                .store
                .link_set_state(link.id, state)
                .await
                .map_err(|e| Failure::Transient(e.to_string()));
        }
        // A lost source may have no bootstrap servers any more: the target keeps the ones it
        // has, so that a failover still reaches it.
        let held = keys
            .get(&format!("{}bootstrap.servers", key_prefix(&link.name)))
            .cloned()
            .flatten();
        let bootstrap = source
            .status
            .bootstrap_servers
            .clone()
            .filter(|b| !b.is_empty())
            .or(held)
            .ok_or_else(|| {
                Failure::Transient(format!(
                    "cluster {:?} has no bootstrap servers",
                    source.name
                ))
            })?;
        let security = link_security(&self.store, source, link.source_user.as_deref())
            .await
            .map_err(failure)?;
        let desired = desired_configs(link, &bootstrap, security.as_ref());
        let (mut changes, needs_password) = plan_configs(&link.name, &desired, &keys);
        if changes.is_empty() && !needs_password {
            return self
                .store
                .link_applied(link.id, link.generation)
                .await
                .map_err(|e| Failure::Transient(e.to_string()));
        }
        if needs_password && let Some(user) = &link.source_user {
            let password = new_link_password(&self.store, source, user)
                .await
                .map_err(failure)?;
            changes.push((
                format!("{}sasl.password", key_prefix(&link.name)),
                Some(password),
            ));
        }
        let count = changes.len();
        admin
            .alter_cluster_configs(changes)
            .await
            .map_err(|e| kafka_failure(&target.name, e))?;
        tracing::info!(link = %link.name, cluster = %target.name, keys = count, "replication link configured");
        self.store
            .link_applied(link.id, link.generation)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))
    }

    async fn advance_pause(
        &self,
        target: &ClusterRecord,
        op: &OperationRecord,
        view: &LinkStatusView,
    ) -> Result<(), StoreError> {
        let (want, name) = if op.kind == OperationKind::LinkPause {
            ("paused", format!("pause mirroring on {}", target.name))
        } else {
            ("mirroring", format!("resume mirroring on {}", target.name))
        };
        // Every partition there too, when the brokers report them (`pausing` first).
        let partitions = if op.kind == OperationKind::LinkPause {
            view.partitions.iter().all(|p| p.state == "paused")
        } else {
            view.partitions
                .iter()
                .all(|p| p.state != "paused" && p.state != "pausing")
        };
        let done = view.data_plane_state.as_deref() == Some(want) && partitions;
        let steps = staged(op, &[name], 0, view.error.clone());
        if done {
            return self
                .finish(op, all_done(steps), OperationState::Succeeded, None)
                .await;
        }
        self.save(op, steps).await
    }

    /// Promote and failover.
    async fn advance_stop(
        &self,
        link: &ReplicationLinkRecord,
        source: &ClusterRecord,
        target: &ClusterRecord,
        admin: &KafkaAdmin,
        op: &OperationRecord,
        view: &LinkStatusView,
    ) -> Result<(), StoreError> {
        let promote = op.kind == OperationKind::LinkPromote;
        let want = if promote { "promote" } else { "failover" };
        let names: Vec<String> = if promote {
            vec![
                format!("stop writes on {}", source.name),
                format!("set the link's state to promote on {}", target.name),
                "wait for zero lag".to_owned(),
                "sync group offsets and stop mirroring".to_owned(),
                "topics writable".to_owned(),
            ]
        } else {
            vec![
                format!("set the link's state to failover on {}", target.name),
                "stop at the high watermark".to_owned(),
                "topics writable".to_owned(),
            ]
        };
        let base = usize::from(promote);
        // 1. The fence on the source (promote): its topics refuse writes.
        if promote && !step_done(op, 0) {
            let detail = match self.fence(link, source, admin, view).await {
                Ok(detail) => detail,
                Err(message) => {
                    return self.save(op, staged(op, &names, 0, Some(message))).await;
                }
            };
            let mut steps = staged(op, &names, 1, None);
            if let Some(first) = steps.first_mut() {
                first.detail = Some(detail);
            }
            return self.save(op, steps).await;
        }
        // 2. The target's brokers hold the new state.
        if view.data_plane_state.as_deref() != Some(want) {
            let detail = view.error.clone().or_else(|| {
                view.data_plane_state
                    .as_ref()
                    .map(|s| format!("the brokers show {s}"))
            });
            return self.save(op, staged(op, &names, base, detail)).await;
        }
        // 3. Every partition stopped (or, without per-partition status, every topic writable).
        // Once every partition reported `stopped`, the topics are checked to take writes too
        // (the topic turns writable in the target's metadata right after).
        let finished = if view.partitions_reported {
            view.all_stopped() && topics_writable(admin, &view.topics()).await
        } else {
            match mirror_topics_writable(admin, &link.filters).await {
                Ok(writable) => writable,
                Err(message) => {
                    return self
                        .save(op, staged(op, &names, base + 1, Some(message)))
                        .await;
                }
            }
        };
        if finished {
            let result = LinkOperationResult::of(&view.partitions);
            self.store.operation_set_result(op.id, &result).await?;
            let state = if promote {
                LinkState::Promoted
            } else {
                LinkState::FailedOver
            };
            self.store.link_set_state(link.id, state).await?;
            let mut steps = staged(op, &names, names.len() - 1, None);
            if let Some(last) = steps.last_mut() {
                last.detail = Some(if view.partitions_reported {
                    format!(
                        "{} partition(s) stopped; loss bound {} record(s), {} ms",
                        result.partitions.len(),
                        result.loss_records,
                        result.loss_ms
                    )
                } else {
                    "every mirror topic takes writes (the brokers report no per-partition status, so no stop offsets are recorded)".to_owned()
                });
            }
            tracing::info!(link = %link.name, state = state.as_str(), "replication link stopped");
            return self
                .finish(op, all_done(steps), OperationState::Succeeded, None)
                .await;
        }
        let (stage, detail) = if !view.partitions_reported {
            (
                names.len() - 2,
                "the brokers report no per-partition status yet: probing whether the mirror topics take writes".to_owned(),
            )
        } else {
            let lag: u64 = view.partitions.iter().filter_map(|p| p.lag_records).sum();
            let stopped = view
                .partitions
                .iter()
                .filter(|p| p.state == "stopped")
                .count();
            let detail = format!(
                "{lag} record(s) behind; {stopped} of {} partition(s) stopped",
                view.partitions.len()
            );
            if promote && lag > 0 {
                (2, detail)
            } else {
                (names.len() - 2, detail)
            }
        };
        self.save(op, staged(op, &names, stage, Some(detail))).await
    }

    /// Fences the source's mirrored topics for a planned switchover: each gets the topic config
    /// `hdi.read.only=true` (its produces are refused; a reverse that adopts the topic clears
    /// it), and with ACLs enforced, Write is denied to everyone on the link's topics (kept by
    /// the source's ACL sync while the link is stopped). What was done, for the step's detail.
    async fn fence(
        &self,
        link: &ReplicationLinkRecord,
        source: &ClusterRecord,
        target: &KafkaAdmin,
        view: &LinkStatusView,
    ) -> Result<String, String> {
        let admin = cluster_admin(&self.store, source, self.timeout)
            .await
            .map_err(|e| format!("cannot reach {:?} to fence it: {e}", source.name))?;
        let topics = link_topics(target, link, view).await?;
        let mut done = Vec::new();
        let mut unsupported = false;
        for topic in &topics {
            let set = admin
                .alter_topic_configs(topic, vec![(READ_ONLY.to_owned(), Some("true".to_owned()))])
                .await;
            match set {
                Ok(()) => done.push(topic.as_str()),
                Err(AdminError::Kafka { name, .. }) if name == "UNKNOWN_TOPIC_OR_PARTITION" => {}
                Err(AdminError::Kafka { name, .. }) if name == "INVALID_CONFIG" => {
                    unsupported = true
                }
                Err(error) => {
                    return Err(format!(
                        "cannot fence {topic:?} on {:?}: {error}",
                        source.name
                    ));
                }
            }
        }
        let mut detail = if unsupported {
            format!("{:?}'s brokers have no {READ_ONLY}", source.name)
        } else {
            format!(
                "{READ_ONLY}=true on {} topic(s) of {:?}",
                done.len(),
                source.name
            )
        };
        let authorization = source
            .spec
            .security
            .as_ref()
            .is_some_and(|s| s.authorization);
        if authorization {
            crate::service::kafka_user::sync_acls(&self.store, &admin, source)
                .await
                .map_err(|e| format!("cannot fence {:?}: {e}", source.name))?;
            detail.push_str("; Write denied to everyone on the link's topics");
        } else if unsupported {
            detail.push_str(" and enforces no ACLs: its producers must be stopped by their owners");
        }
        Ok(detail)
    }

    async fn advance_reverse(
        &self,
        link: &ReplicationLinkRecord,
        source: &ClusterRecord,
        target: &ClusterRecord,
        admin: &KafkaAdmin,
        op: &OperationRecord,
        view: &LinkStatusView,
    ) -> Result<(), StoreError> {
        let names = vec![
            format!("define the reverse link on {}", source.name),
            format!(
                "quarantine {}'s diverged records and mirror back from {}",
                source.name, target.name
            ),
            format!("remove the old link from {}", target.name),
            "swap source and target".to_owned(),
        ];
        // The row was swapped already (a control plane stopped between the swap and the
        // operation's end): the reverse is done; never reverse twice.
        if link.state != LinkState::Reversing {
            let steps = staged(op, &names, names.len() - 1, None);
            return self
                .finish(op, all_done(steps), OperationState::Succeeded, None)
                .await;
        }
        let source_admin = match cluster_admin(&self.store, source, self.timeout).await {
            Ok(admin) => admin,
            Err(error) => {
                return self
                    .save(op, staged(op, &names, 0, Some(error.to_string())))
                    .await;
            }
        };
        // Nothing is decided on a view that could not be read (it would look like "the old
        // link is gone already" and swap the row too early).
        if !view.observed {
            let why = view
                .error
                .clone()
                .unwrap_or_else(|| "the target could not be read".to_owned());
            return self.save(op, staged(op, &names, 0, Some(why))).await;
        }
        let prefix = key_prefix(&link.name);
        let on_source = match link_keys(&source_admin, &link.name).await {
            Ok(keys) => keys,
            Err(error) => {
                return self
                    .save(op, staged(op, &names, 0, Some(error.to_string())))
                    .await;
            }
        };
        // The reverse link's topics: the mirrors the target reports, else the target's topics
        // matching the filters, else (the old link is gone already) the reverse link's own.
        let topics: Vec<String> = if view.defined {
            match link_topics(admin, link, view).await {
                Ok(topics) => topics,
                Err(message) => {
                    return self.save(op, staged(op, &names, 0, Some(message))).await;
                }
            }
        } else {
            on_source
                .get(&format!("{prefix}topics"))
                .cloned()
                .flatten()
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let new_user = match source_user_for(&link.name, target) {
            Ok(user) => user,
            Err(error) => {
                return self.fail_reverse(link, op, view, &error.to_string()).await;
            }
        };
        if view.defined {
            // 1. The reverse link on the old source.
            let reverse = ReplicationLinkRecord {
                filters: LinkFilters {
                    topics: topics.clone(),
                    topics_exclude: Vec::new(),
                    groups: link.filters.groups.clone(),
                    groups_exclude: link.filters.groups_exclude.clone(),
                },
                state: LinkState::Mirroring,
                reversed: true,
                source_user: new_user.clone(),
                ..link.clone()
            };
            let Some(bootstrap) = target.status.bootstrap_servers.clone() else {
                return self.save(op, staged(op, &names, 0, None)).await;
            };
            let security = match link_security(&self.store, target, new_user.as_deref()).await {
                Ok(security) => security,
                Err(error) => {
                    return self
                        .save(op, staged(op, &names, 0, Some(error.to_string())))
                        .await;
                }
            };
            let mut desired = desired_configs(&reverse, &bootstrap, security.as_ref());
            desired.insert(format!("{prefix}reverse"), "true".to_owned());
            let (mut changes, needs_password) = plan_configs(&link.name, &desired, &on_source);
            if topics.is_empty() {
                return self
                    .fail_reverse(link, op, view, "the link has no mirror topics to reverse")
                    .await;
            }
            if !changes.is_empty() || needs_password {
                if needs_password && let Some(user) = &new_user {
                    match new_link_password(&self.store, target, user).await {
                        Ok(password) => {
                            changes.push((format!("{prefix}sasl.password"), Some(password)))
                        }
                        Err(error) => {
                            return self
                                .save(op, staged(op, &names, 0, Some(error.to_string())))
                                .await;
                        }
                    }
                }
                return match source_admin.alter_cluster_configs(changes).await {
                    Ok(()) => self.save(op, staged(op, &names, 1, None)).await,
                    Err(error @ AdminError::Kafka { .. }) => {
                        let message = format!(
                            "cluster {:?} refused the reverse link: {error}",
                            source.name
                        );
                        self.fail_reverse(link, op, view, &message).await
                    }
                    Err(error) => {
                        self.save(op, staged(op, &names, 0, Some(error.to_string())))
                            .await
                    }
                };
            }
            // 2. The old source mirrors back (every partition active, or every topic a mirror).
            let back = observe(&source_admin, &link.name).await;
            let mirrored = if back.partitions_reported {
                !back.partitions.is_empty() && back.partitions.iter().all(|p| p.state == "active")
            } else {
                let mut all = true;
                for topic in &topics {
                    match source_admin.topic_writable(topic).await {
                        Ok(false) => {}
                        _ => all = false,
                    }
                }
                all
            };
            if !mirrored {
                let detail = if back.partitions_reported {
                    let quarantined: u64 =
                        back.partitions.iter().filter_map(|p| p.quarantined).sum();
                    Some(format!(
                        "{} of {} partition(s) mirroring; {quarantined} record(s) quarantined",
                        back.partitions
                            .iter()
                            .filter(|p| p.state == "active")
                            .count(),
                        back.partitions.len()
                    ))
                } else {
                    back.data_plane_status.clone()
                };
                return self.save(op, staged(op, &names, 1, detail)).await;
            }
            let result = LinkOperationResult::of(&back.partitions);
            self.store.operation_set_result(op.id, &result).await?;
            // 3. The old link leaves the target (its topics are no longer mirrors).
            let key = format!("{prefix}bootstrap.servers");
            if let Err(error) = admin.alter_cluster_configs(vec![(key, None)]).await {
                return self
                    .save(op, staged(op, &names, 2, Some(error.to_string())))
                    .await;
            }
        }
        // 4. The row: the old target is the source from now on (only with the old source
        // holding the reverse link and a topic list: never an empty link).
        if topics.is_empty() || !on_source.contains_key(&format!("{prefix}bootstrap.servers")) {
            return self
                .save(
                    op,
                    staged(
                        op,
                        &names,
                        0,
                        Some("the old source does not hold the reverse link yet".to_owned()),
                    ),
                )
                .await;
        }
        self.store
            .link_reverse_swap(link.id, &topics, new_user.as_deref())
            .await?;
        if let Some(user) = &link.source_user {
            drop_link_user(&self.store, source, user).await;
        }
        tracing::info!(link = %link.name, source = %target.name, target = %source.name, "replication link reversed");
        let steps = staged(op, &names, names.len() - 1, None);
        self.finish(op, all_done(steps), OperationState::Succeeded, None)
            .await
    }

    /// Fails a reverse, the link back in the stopped state it came from.
    async fn fail_reverse(
        &self,
        link: &ReplicationLinkRecord,
        op: &OperationRecord,
        view: &LinkStatusView,
        message: &str,
    ) -> Result<(), StoreError> {
        let back = if view.data_plane_state.as_deref() == Some("promote") {
            LinkState::Promoted
        } else {
            LinkState::FailedOver
        };
        self.store.link_set_state(link.id, back).await?;
        self.finish(
            op,
            op.steps.clone(),
            OperationState::Failed,
            Some((ErrorCode::KafkaError, message)),
        )
        .await
    }

    /// Fails an operation the target refused, the link back in the state it came from.
    async fn fail(
        &self,
        link: &ReplicationLinkRecord,
        source: &ClusterRecord,
        op: &OperationRecord,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), StoreError> {
        let back = match op.kind {
            OperationKind::LinkPause | OperationKind::LinkPromote => LinkState::Mirroring,
            OperationKind::LinkResume => LinkState::Paused,
            _ => link.state,
        };
        if back != link.state {
            self.store.link_set_state(link.id, back).await?;
        }
        // A promote that fails mirrors again: its source takes writes again.
        if op.kind == OperationKind::LinkPromote {
            crate::service::link::unfence(&self.store, source, link).await;
        }
        tracing::warn!(link = %link.name, kind = op.kind.as_str(), %message, "link operation failed");
        self.finish(
            op,
            op.steps.clone(),
            OperationState::Failed,
            Some((code, message)),
        )
        .await
    }

    /// Notes why a running operation waits.
    async fn wait(&self, op: &OperationRecord, detail: &str) -> Result<(), StoreError> {
        let mut steps = op.steps.clone();
        match steps.last_mut() {
            Some(last) => last.detail = Some(detail.to_owned()),
            None => steps.push(OperationStep {
                name: "reach the target cluster".to_owned(),
                state: "Running".to_owned(),
                detail: Some(detail.to_owned()),
                started_at: Utc::now(),
            }),
        }
        self.save(op, steps).await
    }

    async fn save(
        &self,
        op: &OperationRecord,
        steps: Vec<OperationStep>,
    ) -> Result<(), StoreError> {
        if steps == op.steps {
            return Ok(());
        }
        self.store.operation_set_steps(op.id, &steps).await
    }

    async fn finish(
        &self,
        op: &OperationRecord,
        mut steps: Vec<OperationStep>,
        state: OperationState,
        error: Option<(ErrorCode, &str)>,
    ) -> Result<(), StoreError> {
        if state == OperationState::Failed
            && let Some(last) = steps.last_mut()
            && last.state == "Running"
        {
            last.state = "Failed".to_owned();
        }
        self.store
            .operation_finish(op.id, state, &steps, error.map(|(c, m)| (c.as_str(), m)))
            .await
    }
}

/// Whether step `index` of `op` is recorded as done.
fn step_done(op: &OperationRecord, index: usize) -> bool {
    op.steps.get(index).is_some_and(|s| s.state == "Done")
}

/// The steps of `op` at stage `stage` of `names`: the earlier ones done, this one running with
/// `detail` (kept when `None`), later ones not yet listed; start times kept.
fn staged(
    op: &OperationRecord,
    names: &[String],
    stage: usize,
    detail: Option<String>,
) -> Vec<OperationStep> {
    let now = Utc::now();
    let stage = stage.min(names.len().saturating_sub(1));
    names
        .iter()
        .take(stage + 1)
        .enumerate()
        .map(|(index, name)| {
            let old = op.steps.get(index).filter(|s| s.name == *name);
            let running = index == stage;
            OperationStep {
                name: name.clone(),
                state: if running { "Running" } else { "Done" }.to_owned(),
                detail: if running {
                    detail
                        .clone()
                        .or_else(|| old.and_then(|s| s.detail.clone()))
                } else {
                    old.and_then(|s| s.detail.clone())
                },
                started_at: old.map_or(now, |s| s.started_at),
            }
        })
        .collect()
}

fn all_done(mut steps: Vec<OperationStep>) -> Vec<OperationStep> {
    for step in &mut steps {
        step.state = "Done".to_owned();
    }
    steps
}

/// The link's mirror topics on the target: those its brokers report, else the target's topics
/// matching the link's filters.
async fn link_topics(
    target: &KafkaAdmin,
    link: &ReplicationLinkRecord,
    view: &LinkStatusView,
) -> Result<Vec<String>, String> {
    if view.partitions_reported {
        return Ok(view.topics());
    }
    let metadata = target.metadata().await.map_err(|e| e.to_string())?;
    Ok(metadata
        .topics
        .iter()
        .filter(|t| !t.internal && link.filters.mirrors_topic(&t.name))
        .map(|t| t.name.clone())
        .collect())
}

/// Whether every one of `topics` takes writes (a failed probe counts as not yet).
async fn topics_writable(admin: &KafkaAdmin, topics: &[String]) -> bool {
    for topic in topics {
        if !matches!(admin.topic_writable(topic).await, Ok(true)) {
            return false;
        }
    }
    true
}

/// Whether every topic of the target matching the link's filters takes writes (and there is
/// one): the fallback when the brokers report no per-partition status.
async fn mirror_topics_writable(admin: &KafkaAdmin, filters: &LinkFilters) -> Result<bool, String> {
    let metadata = admin.metadata().await.map_err(|e| e.to_string())?;
    let topics: Vec<&str> = metadata
        .topics
        .iter()
        .filter(|t| !t.internal && filters.mirrors_topic(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if topics.is_empty() {
        return Ok(false);
    }
    for topic in topics {
        if !admin
            .topic_writable(topic)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterId, OperationId, WorkspaceId};

    fn op(steps: Vec<OperationStep>) -> OperationRecord {
        OperationRecord {
            id: OperationId::new_v4(),
            workspace_id: WorkspaceId::new_v4(),
            workspace: "ws".into(),
            cluster_id: ClusterId::new_v4(),
            cluster_name: "b".into(),
            kind: OperationKind::LinkPromote,
            state: OperationState::Running,
            target_generation: 2,
            steps,
            error_code: None,
            error_detail: None,
            created_by: "admin".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            finished_at: None,
            link: None,
            result: None,
        }
    }

    #[test]
    fn stages_mark_earlier_steps_done_and_keep_their_start_and_detail() {
        let names: Vec<String> = ["a", "b", "c"].map(str::to_owned).to_vec();
        let first = staged(&op(vec![]), &names, 0, Some("x".into()));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].state, "Running");
        let second = staged(&op(first.clone()), &names, 2, None);
        assert_eq!(
            second.iter().map(|s| s.state.as_str()).collect::<Vec<_>>(),
            ["Done", "Done", "Running"]
        );
        assert_eq!(second[0].started_at, first[0].started_at);
        assert_eq!(second[0].detail.as_deref(), Some("x"));
    }
}
