//! The Kubernetes operator (`hdi-control-plane operator`): custom resources as a front door.
//!
//! One controller per kind (`HdiCluster` in [`cluster`], `HdiTopic` in [`topic`], `HdiJob` in
//! [`job`], `HdiReplicationLink` in [`link`]), each a `kube::runtime::Controller` driven by watches: a resource is reconciled when
//! it (or, for clusters, an object it owns) changes, while its cluster converges (every 2 s), and
//! otherwise once per resync period (`--resync`, [`RESYNC`] by default) from the watch cache, so an idle resource costs no API request
//! unless its status changed. Every change goes through the same service layer as REST, as the
//! built-in identity [`crate::service::OPERATOR_USER`]; a resource's namespace is the hdi
//! workspace (created if missing) and its name the cluster's, topic's or job's name there.
//!
//! Status follows kstatus: `observedGeneration`, and conditions `Ready`, `Reconciling` and
//! `Stalled` (plus `ScaleDownBlocked` for clusters), computed by [`conditions`] from what the
//! service reports, each keeping its `lastTransitionTime` until its status changes. Refusals
//! (an invalid spec, a missing cluster) become `Stalled` with the service's reason and message,
//! never a hot retry loop. Events record each step. Finalizers (`hdi.io/cleanup`) exist because
//! clusters, topics and jobs live outside Kubernetes; a topic or job whose cluster is gone or
//! being deleted drops its finalizer without calling anything.

pub mod cluster;
pub mod job;
pub mod link;
pub mod topic;

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt as _;
use hdi_k8s::crd::Condition;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Identity;
use crate::service::{Service, ServiceError};

/// The finalizer of every hdi custom resource.
pub const FINALIZER: &str = "hdi.io/cleanup";

/// The field manager of status writes.
pub const STATUS_MANAGER: &str = "hdi-operator/status";

/// How often an idle resource is reconciled from the watch cache, by default.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How often a converging resource is looked at.
pub const PROGRESS: Duration = Duration::from_secs(2);

/// What every controller shares.
pub struct Context {
    /// The service layer.
    pub service: Arc<Service>,
    /// Who the operator acts as.
    pub identity: Identity,
    /// The API server.
    pub client: Client,
    /// Where events go.
    pub recorder: Recorder,
    /// How often an idle resource is looked at again.
    pub resync: Duration,
}

impl Context {
    /// Records an event about `object` (best effort: a failure is logged).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, object = %object.name_any(), reason, "cannot record an event");
        }
    }
}

/// A custom resource one controller reconciles: what to do while it exists (`apply`) and once
/// it is deleted (`cleanup`, before its finalizer is removed).
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Brings what the resource describes in line with it and writes its status.
    fn apply(
        object: Arc<Self>,
        context: Arc<Context>,
        api: Api<Self>,
    ) -> impl std::future::Future<Output = Result<Action, OperatorError>> + Send;

    /// Removes what the resource made outside Kubernetes; `Ok` lets it go.
    fn cleanup(
        object: Arc<Self>,
        context: Arc<Context>,
    ) -> impl std::future::Future<Output = Result<Action, OperatorError>> + Send;
}

/// Runs the controller of `K` (with `configure` adding watches of owned objects) until `stop`.
pub async fn run_controller<K: Reconciled>(
    context: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    configure: impl FnOnce(Controller<K>) -> Controller<K>,
) {
    let api: Api<K> = Api::all(context.client.clone());
    configure(Controller::new(
        api,
        watcher::Config::default().any_semantic(),
    ))
    .graceful_shutdown_on(stop)
    .run(reconcile::<K>, error_policy::<K>, context)
    .for_each(|result| async move {
        match result {
            // A watch that failed (the API server away, an expired resource version: the
            // watcher lists again by itself) is worth seeing; reconcile failures are logged by
            // the error policy.
            Err(kube::runtime::controller::Error::QueueError(error)) => {
                tracing::warn!(%error, kind = %K::kind(&()), "watch failed; listing again");
            }
            Err(error) => tracing::debug!(%error, kind = %K::kind(&()), "reconcile"),
            Ok(_) => {}
        }
    })
    .await;
}

fn error_policy<K: Reconciled>(object: Arc<K>, error: &OperatorError, _: Arc<Context>) -> Action {
    match error {
        OperatorError::Waiting(what) => {
            tracing::debug!(kind = %K::kind(&()), name = %object.name_any(), what, "waiting");
            Action::requeue(PROGRESS)
        }
        other => {
            tracing::warn!(kind = %K::kind(&()), name = %object.name_any(), error = %other, "reconcile failed");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

async fn reconcile<K: Reconciled>(
    object: Arc<K>,
    context: Arc<Context>,
) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => K::apply(object, context.clone(), api.clone()).await,
            Finalizer::Cleanup(object) => K::cleanup(object, context.clone()).await,
        }
    })
    .await
    .map_err(|error| match error {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => OperatorError::Finalizer(other.to_string()),
    })
}

/// Writes a resource's status (server-side apply on the status subresource).
///
/// # Errors
/// The API server refused or could not be reached.
pub async fn write_status<K: Reconciled>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        })),
    )
    .await?;
    Ok(())
}

/// Whether the cluster a topic or job belongs to is gone or being deleted: then the topic or
/// job goes with it and its finalizer is dropped without a call.
///
/// # Errors
/// The service failed.
pub async fn cluster_going(
    context: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<bool, OperatorError> {
    match context
        .service
        .cluster_get_for(&context.identity, namespace, cluster)
        .await
    {
        Ok(view) => Ok(view.cluster.deleting),
        Err(ServiceError::NotFound { .. }) => Ok(true),
        Err(other) => Err(other.into()),
    }
}

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The API server failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The service failed (not a refusal: those become conditions).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Deletion waits for something outside Kubernetes (not an error: retried shortly).
    #[error("waiting: {0}")]
    Waiting(String),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// The conditions of a resource: `Ready`, `Reconciling`, `Stalled` (kstatus), plus `extra`, each
/// with the previous `lastTransitionTime` when its status did not change.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The summary is True.
    pub ready: bool,
    /// Progressing (and not stalled).
    pub reconciling: bool,
    /// Cannot progress without a change from people.
    pub stalled: bool,
    /// CamelCase reason of the current summary.
    pub reason: String,
    /// For people.
    pub message: String,
    /// Further conditions: `(type, status, reason, message)`.
    pub extra: Vec<(String, bool, String, String)>,
}

/// [`Observed`] as conditions, keeping transition times from `previous`.
pub fn conditions(observed: &Observed, generation: i64, previous: &[Condition]) -> Vec<Condition> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let make = |type_: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" }.to_owned();
        let since = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_owned(),
            status,
            observed_generation: generation,
            last_transition_time: since,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    };
    let mut out = vec![
        make("Ready", observed.ready, &observed.reason, &observed.message),
        make(
            "Reconciling",
            observed.reconciling && !observed.stalled,
            &observed.reason,
            if observed.reconciling {
                &observed.message
            } else {
                ""
            },
        ),
        make(
            "Stalled",
            observed.stalled,
            &observed.reason,
            if observed.stalled {
                &observed.message
            } else {
                ""
            },
        ),
    ];
    for (type_, status, reason, message) in &observed.extra {
        out.push(make(type_, *status, reason, message));
    }
    out
}

/// Conditions equal but for their transition times (a status write would change nothing).
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// Runs every controller until `stop` resolves.
///
/// # Errors
/// The operator's identity cannot be set up.
pub async fn run(
    service: Arc<Service>,
    client: Client,
    resync: Duration,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ServiceError> {
    let identity = service.operator_identity().await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "hdi-operator".to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let context = Arc::new(Context {
        service,
        identity,
        client,
        recorder,
        resync,
    });
    let stop = futures::future::FutureExt::shared(Box::pin(stop));
    tracing::info!("hdi operator watching HdiCluster, HdiTopic, HdiJob and HdiReplicationLink");
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::all(context.client.clone());
    tokio::join!(
        run_controller::<hdi_k8s::crd::HdiCluster>(context.clone(), stop.clone(), |c| {
            // Owned StatefulSets changing (pods ready, drift) wake their cluster's resource.
            c.owns(
                sets,
                watcher::Config::default().labels("app.kubernetes.io/managed-by=hdi"),
            )
        }),
        run_controller::<hdi_k8s::crd::HdiTopic>(context.clone(), stop.clone(), |c| c),
        run_controller::<hdi_k8s::crd::HdiJob>(context.clone(), stop.clone(), |c| c),
        run_controller::<hdi_k8s::crd::HdiReplicationLink>(context, stop, |c| c),
    );
    Ok(())
}

/// How often a `Stalled` resource is looked at again (its cluster may appear): never a hot loop.
pub const STALLED_RETRY: Duration = Duration::from_secs(30);

/// `Stalled` with `reason`; the Warning event is recorded once per reason and generation.
pub async fn stall<K: Reconciled>(
    context: &Context,
    object: &K,
    previous: &[Condition],
    new_generation: bool,
    reason: String,
    message: String,
) -> Observed {
    if new_generation || !previous.iter().any(|c| c.reason == reason) {
        context.event(object, true, &reason, message.clone()).await;
    }
    Observed {
        stalled: true,
        reason,
        message,
        ..Observed::default()
    }
}

/// What a failed service call means for a topic or job: its cluster not serving yet is
/// `Reconciling` (looked at again soon), a refusal is `Stalled` ([`stall`]); anything else is an
/// error the controller retries. Returns the observation and when to look again.
///
/// # Errors
/// The failure is not the resource's.
pub async fn failed<K: Reconciled>(
    context: &Context,
    object: &K,
    previous: &[Condition],
    new_generation: bool,
    error: ServiceError,
) -> Result<(Observed, Duration), OperatorError> {
    match error {
        ServiceError::Conflict {
            code: hdi_api::ErrorCode::ClusterNotReady,
            message,
        }
        | ServiceError::Unreachable { message, .. } => Ok((
            Observed {
                reconciling: true,
                reason: "ClusterNotReady".to_owned(),
                message,
                ..Observed::default()
            },
            PROGRESS * 2,
        )),
        error => match refusal(&error) {
            Some((reason, message)) => Ok((
                stall(context, object, previous, new_generation, reason, message).await,
                STALLED_RETRY,
            )),
            None => Err(error.into()),
        },
    }
}

/// The end of a cleanup: `delete` (the service call that removes what the resource made)
/// done or already done lets the resource go, with a `Deleted` event naming `what`; a failure
/// keeps its finalizer and is retried.
///
/// # Errors
/// [`OperatorError::Waiting`] when the deletion failed.
pub async fn deleted<K: Reconciled>(
    context: &Context,
    object: &K,
    what: String,
    delete: impl std::future::Future<Output = Result<(), ServiceError>>,
) -> Result<Action, OperatorError> {
    match delete.await {
        Ok(()) => {
            context
                .event(object, false, "Deleted", format!("{what} deleted"))
                .await;
            Ok(Action::await_change())
        }
        Err(ServiceError::NotFound { .. }) => Ok(Action::await_change()),
        Err(error) => Err(OperatorError::Waiting(error.to_string())),
    }
}

/// A refusal of the service as a condition's `(reason, message)`: the reason is the stable
/// error code's CamelCase name (`ErrorCode`'s variant), `InvalidSpec` for a field or SQL the
/// service refused. `None` for failures that are not the resource's fault (retried).
pub fn refusal(error: &ServiceError) -> Option<(String, String)> {
    match error {
        ServiceError::InvalidField { field, message } => {
            Some(("InvalidSpec".to_owned(), format!("{field}: {message}")))
        }
        ServiceError::InvalidSql {
            sql_code,
            message,
            line,
            column,
        } => Some((
            "InvalidSpec".to_owned(),
            match (line, column) {
                (Some(line), Some(column)) => {
                    format!("sql ({sql_code}) at {line}:{column}: {message}")
                }
                _ => format!("sql ({sql_code}): {message}"),
            },
        )),
        ServiceError::Conflict { code, message } | ServiceError::Refused { code, message } => {
            Some((format!("{code:?}"), message.clone()))
        }
        ServiceError::NotFound { what } => {
            Some(("NotFound".to_owned(), format!("{what} not found")))
        }
        _ => None,
    }
}
