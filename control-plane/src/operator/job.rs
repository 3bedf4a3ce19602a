//! The `HdiJob` controller: a streaming SQL job of a Spark cluster of the same namespace
//! (workspace), submitted through the service layer (the driver validates the SQL first: a
//! refusal becomes `Stalled` with the line and column), its state written back from the driver's
//! answer, deleted with the resource. A job's SQL is immutable (its checkpoints belong to it): a
//! changed query is a new resource.

use std::sync::Arc;

use hdi_k8s::crd::{HdiJob, HdiJobStatus};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};

use super::{
    Context, Observed, OperatorError, PROGRESS, Reconciled, cluster_going, conditions, deleted,
    failed, same_conditions, write_status,
};
use crate::model::JobRunState;
use crate::service::{JobInput, ServiceError};

impl Reconciled for HdiJob {
    async fn apply(
        object: Arc<Self>,
        context: Arc<Context>,
        api: Api<Self>,
    ) -> Result<Action, OperatorError> {
        apply(&object, &context, &api).await
    }

    async fn cleanup(object: Arc<Self>, context: Arc<Context>) -> Result<Action, OperatorError> {
        cleanup(&object, &context).await
    }
}

async fn apply(
    object: &HdiJob,
    context: &Context,
    api: &Api<HdiJob>,
) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let cluster = &object.spec.cluster_ref;
    let name = object.name_any();
    let generation = object.metadata.generation.unwrap_or(0);
    let previous = object.status.clone().unwrap_or_default();
    let mut status = HdiJobStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let mut observed = Observed::default();
    super::cluster::ensure_workspace(context, &namespace).await?;
    let service = &context.service;
    let identity = &context.identity;
    let view = match service.job_get(identity, &namespace, cluster, &name).await {
        Ok(view) => Ok(view),
        Err(ServiceError::NotFound { what }) if what.contains("job") => {
            let submitted = service
                .job_submit(
                    identity,
                    &namespace,
                    cluster,
                    JobInput {
                        name: name.clone(),
                        sql: object.spec.sql.clone(),
                        kafka_cluster: object.spec.kafka_cluster_ref.clone(),
                    },
                )
                .await;
            if let Ok(view) = &submitted {
                context
                    .event(
                        object,
                        false,
                        "Submitted",
                        format!("job {} submitted", view.job.id),
                    )
                    .await;
            }
            submitted
        }
        Err(other) => Err(other),
    };
    let mut again = context.resync;
    match view {
        Ok(view) => {
            let state = view.status.state;
            status.state = format!("{state:?}");
            status.job_id = Some(view.job.id.to_string());
            status.batches_committed = view.status.batches_committed;
            observed.ready = state == JobRunState::Running || state == JobRunState::Completed;
            observed.stalled = state == JobRunState::Failed;
            observed.reconciling = !observed.ready && !observed.stalled;
            observed.reason = format!("{state:?}");
            observed.message = view
                .status
                .error
                .map(|(code, detail)| format!("{code}: {detail}"))
                .unwrap_or_default();
            if observed.reconciling {
                again = PROGRESS * 2;
            } else if state == JobRunState::Running {
                // Progress counters change while it runs: refresh them now and then.
                again = std::time::Duration::from_secs(30);
            }
        }
        Err(error) => {
            let new_generation = previous.observed_generation != generation;
            (observed, again) =
                failed(context, object, &previous.conditions, new_generation, error).await?;
        }
    }
    status.conditions = conditions(&observed, generation, &previous.conditions);
    let unchanged = status.observed_generation == previous.observed_generation
        && status.state == previous.state
        && status.job_id == previous.job_id
        && status.batches_committed == previous.batches_committed
        && same_conditions(&status.conditions, &previous.conditions);
    if !unchanged {
        write_status(api, &name, &status).await?;
    }
    Ok(Action::requeue(again))
}

async fn cleanup(object: &HdiJob, context: &Context) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let cluster = &object.spec.cluster_ref;
    if cluster_going(context, &namespace, cluster).await? {
        return Ok(Action::await_change());
    }
    let name = object.name_any();
    let delete = context
        .service
        .job_delete(&context.identity, &namespace, cluster, &name);
    deleted(context, object, format!("job {name}"), delete).await
}
