//! Level-triggered reconcilers: observe, plan ([`plan`], pure), act through the provisioner.
//!
//! Each pass leases the clusters it works on (`clusters_claim`: several control planes split the
//! clusters, none reconciles one twice at once), reads what the provisioner and the data plane
//! report, plans, executes the actions, and records the status and the operation's progress. A
//! control plane killed at any point plans again from what it observes: every action is
//! idempotent (placement and removal are single transactions; reassignments are recomputed).

pub mod jobs;
pub mod links;
pub mod plan;
pub mod rebalance;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::kafka_admin::KafkaAdmin;
use crate::model::{
    ClusterId, ClusterRecord, ClusterStatusDoc, Condition, ErrorCode, Kind, OperationRecord,
    OperationState, OperationStep, WorkloadRole,
};
use crate::provision::{ProvisionError, Provisioner};
use crate::store::{Store, StoreError};
pub use jobs::{JobPassReport, JobReconciler};
pub use links::LinkReconciler;
use plan::{Action, Input, KafkaObservation, Outcome, Plan, SparkObservation};

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Time between passes when nothing pokes.
    pub interval: Duration,
    /// How long a lease on a cluster lasts (renewed every pass).
    pub lease: Duration,
    /// Timeout of each call to a data-plane process.
    pub probe_timeout: Duration,
    /// An operation still converging after this long is failed (`timed_out`); the reconciler
    /// keeps working towards the spec, a new operation can be started.
    pub operation_timeout: Duration,
    /// How long a rotation of a cluster's authorities keeps trusting the old ones once every
    /// broker certificate is the new ones' (time for the nodes to fetch and load them).
    pub authority_settle: Duration,
    /// How long an operation waits for capacity before it fails with `insufficient_capacity`.
    pub capacity_grace: Duration,
}

/// The cluster reconciler.
pub struct Reconciler<P> {
    store: Store,
    provisioner: P,
    owner: Uuid,
    config: ReconcilerConfig,
    poke: Arc<Notify>,
    http: reqwest::Client,
    /// When this reconciler started: node readiness is stale until agents heartbeat again.
    started: std::time::Instant,
}

impl<P: Provisioner> Reconciler<P> {
    /// A reconciler; `poke` wakes it early (the service pokes after every mutation).
    pub fn new(store: Store, provisioner: P, config: ReconcilerConfig, poke: Arc<Notify>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.probe_timeout)
            .build()
            .unwrap_or_default();
        Reconciler {
            store,
            provisioner,
            owner: Uuid::new_v4(),
            config,
            poke,
            http,
            started: std::time::Instant::now(),
        }
    }

    /// Runs passes until `stop` is notified, then releases the leases.
    pub async fn run(self, stop: Arc<Notify>, metrics: Arc<crate::metrics::Metrics>) {
        tracing::info!(owner = %self.owner, "reconciler started");
        loop {
            if let Err(error) = metrics.timed("clusters", self.pass()).await {
                tracing::warn!(error = %crate::error_chain(&error), "reconcile pass failed");
            }
            tokio::select! {
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stop.notified() => break,
            }
        }
        if let Err(error) = self.store.clusters_release(self.owner).await {
            tracing::warn!(error = %error, "cannot release cluster leases");
        }
    }

    /// One pass over the clusters this reconciler can lease.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let ids = self
            .store
            .clusters_claim(self.owner, self.config.lease, 256)
            .await?;
        for id in ids {
            if let Err(error) = self.reconcile(id).await {
                tracing::warn!(cluster = %id, error = %crate::error_chain(&error), "reconcile failed");
            }
        }
        Ok(())
    }

    async fn reconcile(&self, id: ClusterId) -> Result<(), ProvisionError> {
        let Some(cluster) = self.store.cluster_get_by_id(id).await? else {
            return Ok(());
        };
        let workloads = self.provisioner.workloads(&cluster).await?;
        let kafka = match cluster.kind {
            Kind::Kafka if !cluster.deleting => self.observe_kafka(&cluster, &workloads).await,
            _ => None,
        };
        let spark = match cluster.kind {
            Kind::Spark if !cluster.deleting => self.observe_spark(&cluster, &workloads).await,
            _ => None,
        };
        // The pass may have run long since the claim: act only while still holding the lease
        // (another control plane may have taken the cluster over).
        if !self
            .store
            .cluster_renew_lease(cluster.id, self.owner, self.config.lease)
            .await?
        {
            return Ok(());
        }
        if cluster.kind == Kind::Kafka && !cluster.deleting {
            let step = self
                .store
                .authority_rotation_advance(cluster.id, self.config.authority_settle)
                .await?;
            if let Some(step) = step {
                tracing::info!(cluster = %cluster.name, ?step, "certificate authorities rotating");
            }
        }
        let plan = plan::plan(Input {
            cluster: &cluster,
            workloads: &workloads,
            kafka: kafka.as_ref(),
            spark: spark.as_ref(),
        });
        if let Some(voters) = plan.set_voters {
            self.store.cluster_set_voters(cluster.id, voters).await?;
        }
        let mut cluster = cluster;
        if let Some(voters) = plan.set_voters {
            cluster.voters = voters;
        }
        let mut detail: Option<String> = None;
        let mut blocked: Option<(ErrorCode, String)> = None;
        for action in &plan.actions {
            match self.execute(&cluster, action, &workloads).await {
                Ok(Some(text)) => detail = Some(text),
                Ok(None) => {}
                Err(ActionError::Provision(ProvisionError::InsufficientCapacity(message))) => {
                    // Readiness is heartbeat age on the database clock: right after the database
                    // or this control plane was away, every node looks NotReady until its next
                    // heartbeat. A shortage fails the operation only once it has lasted.
                    let age = self
                        .store
                        .operation_running(cluster.id)
                        .await?
                        .map(|op| (Utc::now() - op.created_at).to_std().unwrap_or_default());
                    let fresh = self.started.elapsed() < self.config.capacity_grace;
                    if fresh || age.is_some_and(|age| age < self.config.capacity_grace) {
                        detail = Some(format!("waiting for capacity: {message}"));
                    } else {
                        blocked = Some((ErrorCode::InsufficientCapacity, message));
                    }
                    break;
                }
                Err(ActionError::Kafka(message)) => {
                    detail = Some(message);
                    break;
                }
                Err(other) => return Err(other.into_provision()),
            }
        }
        if plan.actions.contains(&Action::RemoveCluster) {
            self.provisioner.cluster_removed(&cluster).await?;
            if self.store.cluster_remove(cluster.id).await? {
                tracing::info!(cluster = %cluster.id, name = %cluster.name, "cluster deleted");
            }
            return Ok(());
        }
        if let Err(error) = self.provisioner.sync(&cluster).await {
            tracing::warn!(cluster = %cluster.name, error = %crate::error_chain(&error), "provisioner sync failed");
            detail.get_or_insert_with(|| error.to_string());
        }
        self.record(&cluster, &plan, detail, blocked).await?;
        Ok(())
    }

    async fn record(
        &self,
        cluster: &ClusterRecord,
        plan: &Plan,
        detail: Option<String>,
        blocked: Option<(ErrorCode, String)>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let outcome = match blocked {
            Some((code, message)) => Outcome::Blocked { code, message },
            None => plan.outcome.clone(),
        };
        let mut conditions: Vec<Condition> = Vec::new();
        for draft in &plan.conditions {
            let previous = cluster
                .status
                .conditions
                .iter()
                .find(|c| c.condition_type == draft.condition_type);
            let last_transition_time = match previous {
                Some(previous) if previous.status == draft.status => previous.last_transition_time,
                _ => now,
            };
            conditions.push(Condition {
                condition_type: draft.condition_type.to_owned(),
                status: draft.status.to_owned(),
                reason: draft.reason.to_owned(),
                message: draft.message.clone(),
                last_transition_time,
            });
        }
        if let Outcome::Blocked { code, message } = &outcome {
            conditions.push(Condition {
                condition_type: "Progressing".to_owned(),
                status: "False".to_owned(),
                reason: code.as_str().to_owned(),
                message: message.clone(),
                last_transition_time: now,
            });
        }
        let state = match outcome {
            Outcome::Blocked { .. } => crate::model::ClusterState::Failed,
            _ => plan.state,
        };
        let observed_generation = if outcome == Outcome::Converged {
            cluster.generation
        } else {
            cluster.observed_generation
        };
        let status = ClusterStatusDoc {
            conditions,
            ready: plan.ready.clone(),
            bootstrap_servers: plan.bootstrap_servers.clone(),
            job_api: plan.job_api.clone(),
        };
        // A plan of an older spec (the spec changed during this pass) records nothing: the
        // next pass plans the new one.
        if !self
            .store
            .cluster_set_observed(
                cluster.id,
                cluster.generation,
                state,
                observed_generation,
                &status,
            )
            .await?
        {
            return Ok(());
        }
        if let Some(op) = self.store.operation_running(cluster.id).await?
            && op.target_generation <= cluster.generation
        {
            self.progress(&op, plan, detail, &outcome).await?;
        }
        Ok(())
    }

    async fn progress(
        &self,
        op: &OperationRecord,
        plan: &Plan,
        detail: Option<String>,
        outcome: &Outcome,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut steps = op.steps.clone();
        let same = steps.last().is_some_and(|s| s.name == plan.phase);
        if !same && !plan.phase.is_empty() {
            if let Some(last) = steps.last_mut()
                && last.state == "Running"
            {
                last.state = "Done".to_owned();
            }
            steps.push(OperationStep {
                name: plan.phase.clone(),
                state: "Running".to_owned(),
                detail: detail.clone(),
                started_at: now,
            });
        } else if let (Some(last), Some(detail)) = (steps.last_mut(), detail) {
            last.detail = Some(detail);
        }
        // An operation for an older generation is finished by reaching any newer one too.
        match outcome {
            Outcome::Converged if !plan.phase.is_empty() => {
                if let Some(last) = steps.last_mut() {
                    last.state = "Done".to_owned();
                }
                self.store
                    .operation_finish(op.id, OperationState::Succeeded, &steps, None)
                    .await
            }
            Outcome::Blocked { code, message } => {
                if let Some(last) = steps.last_mut() {
                    last.state = "Failed".to_owned();
                }
                self.store
                    .operation_finish(
                        op.id,
                        OperationState::Failed,
                        &steps,
                        Some((code.as_str(), message)),
                    )
                    .await
            }
            Outcome::InProgress
                if (now - op.created_at).to_std().unwrap_or_default()
                    > self.config.operation_timeout =>
            {
                if let Some(last) = steps.last_mut() {
                    last.state = "Failed".to_owned();
                }
                let detail = format!(
                    "did not converge within {}; stuck at: {}",
                    humantime::format_duration(self.config.operation_timeout),
                    plan.phase
                );
                self.store
                    .operation_finish(
                        op.id,
                        OperationState::Failed,
                        &steps,
                        Some((ErrorCode::TimedOut.as_str(), &detail)),
                    )
                    .await
            }
            _ if steps != op.steps => self.store.operation_set_steps(op.id, &steps).await,
            _ => Ok(()),
        }
    }

    async fn execute(
        &self,
        cluster: &ClusterRecord,
        action: &Action,
        workloads: &[crate::model::WorkloadRecord],
    ) -> Result<Option<String>, ActionError> {
        match action {
            Action::Place(requests) => {
                let lines = self.provisioner.place(cluster, requests).await?;
                if lines.is_empty() {
                    // Another control plane placed them first.
                    return Ok(None);
                }
                tracing::info!(cluster = %cluster.name, placed = ?lines, "workloads placed");
                Ok(Some(lines.join("; ")))
            }
            Action::Remove(ids) => {
                for id in ids {
                    self.provisioner.remove(*id).await?;
                }
                Ok(None)
            }
            Action::Forget(ids) => {
                for id in ids {
                    self.provisioner.forget(*id).await?;
                }
                Ok(None)
            }
            Action::Reassign(moves) => {
                let security = crate::service::kafka_user::admin_security(&self.store, cluster)
                    .await
                    .map_err(|e| ActionError::Kafka(format!("no Kafka credentials: {e}")))?;
                let admin = KafkaAdmin::new(bootstrap(workloads), self.config.probe_timeout * 4)
                    .with_security(security);
                let count = moves.len();
                admin
                    .alter_partition_reassignments(moves.clone())
                    .await
                    .map_err(|e| ActionError::Kafka(format!("reassignment refused: {e}")))?;
                tracing::info!(cluster = %cluster.name, partitions = count, "partition reassignment submitted");
                Ok(Some(format!("{count} partition(s) reassigned")))
            }
            Action::RemoveCluster => Ok(None),
        }
    }

    async fn observe_kafka(
        &self,
        cluster: &ClusterRecord,
        workloads: &[crate::model::WorkloadRecord],
    ) -> Option<KafkaObservation> {
        let servers = bootstrap(workloads);
        if servers.is_empty() {
            return None;
        }
        let security = crate::service::kafka_user::admin_security(&self.store, cluster)
            .await
            .ok()?;
        let admin = KafkaAdmin::new(servers, self.config.probe_timeout).with_security(security);
        let metadata = admin.metadata().await.ok()?;
        let reassigning = admin.list_partition_reassignments().await.ok()?.len();
        // The jobs' user exists and the cluster's ACLs are its Kafka users' (drift, or a
        // change whose sync failed, is mended here).
        if let Err(error) =
            crate::service::kafka_user::sync_acls(&self.store, &admin, cluster).await
        {
            tracing::warn!(cluster = %cluster.name, error = %error, "Kafka ACL sync failed");
        }
        Some(KafkaObservation {
            metadata,
            reassigning,
        })
    }

    async fn observe_spark(
        &self,
        cluster: &ClusterRecord,
        workloads: &[crate::model::WorkloadRecord],
    ) -> Option<SparkObservation> {
        let driver = workloads
            .iter()
            .find(|w| w.role == WorkloadRole::Driver && !w.removing)?;
        let access = self.store.cluster_access(cluster.id).await.ok()??;
        let base = format!("http://{}", driver.endpoint());
        let client = crate::driver::DriverClient::new(self.http.clone(), &base, access.credential)
            .with_status_timeout(self.config.probe_timeout);
        let view = client.cluster().await.ok()?;
        let workers: BTreeSet<u32> = view.workers.iter().map(|w| w.id).collect();
        Some(SparkObservation { workers })
    }
}

/// Bootstrap servers: the Kafka listeners of the running brokers.
fn bootstrap(workloads: &[crate::model::WorkloadRecord]) -> Vec<String> {
    workloads
        .iter()
        .filter(|w| w.role == WorkloadRole::Broker && !w.removing)
        .map(|w| w.endpoint())
        .collect()
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
enum ActionError {
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("{0}")]
    Kafka(String),
}

impl ActionError {
    fn into_provision(self) -> ProvisionError {
        match self {
            ActionError::Provision(error) => error,
            ActionError::Kafka(message) => ProvisionError::InsufficientCapacity(message),
        }
    }
}
