//! The `HdiReplicationLink` controller: a geo-replication pair of two Kafka clusters of the
//! same namespace (workspace), created and refiltered through the service layer's `link_put`,
//! its state and largest lag (the RPO estimate) written back, deleted with the resource.
//! Switchovers are requests, not desired state: the annotation `hdi.io/action` (`pause`,
//! `resume`, `promote`, `failover`, `reverse`) starts that operation once, as `hdictl link`
//! would; the controller then removes the annotation and records the operation in the status
//! (the pattern of Strimzi's `KafkaRebalance` annotations).

use std::sync::Arc;

use hdi_k8s::crd::{HdiReplicationLink, HdiReplicationLinkStatus, LastOperation};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};

use super::{
    Context, Observed, OperatorError, PROGRESS, Reconciled, STALLED_RETRY, cluster_going,
    conditions, deleted, refusal, same_conditions, stall, write_status,
};
use crate::model::{LinkFilters, OperationKind};
use crate::service::{LinkInput, ServiceError};

/// The annotation that asks for an operation on the link.
pub const ACTION_ANNOTATION: &str = "hdi.io/action";

impl Reconciled for HdiReplicationLink {
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

/// The operation an `hdi.io/action` value asks for.
pub fn action_kind(action: &str) -> Option<OperationKind> {
    match action {
        "pause" => Some(OperationKind::LinkPause),
        "resume" => Some(OperationKind::LinkResume),
        "promote" => Some(OperationKind::LinkPromote),
        "failover" => Some(OperationKind::LinkFailover),
        "reverse" => Some(OperationKind::LinkReverse),
        _ => None,
    }
}

async fn apply(
    object: &HdiReplicationLink,
    context: &Context,
    api: &Api<HdiReplicationLink>,
) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let generation = object.metadata.generation.unwrap_or(0);
    let previous = object.status.clone().unwrap_or_default();
    let mut status = HdiReplicationLinkStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let mut observed = Observed::default();
    super::cluster::ensure_workspace(context, &namespace).await?;
    let service = &context.service;
    let identity = &context.identity;
    let spec = &object.spec;
    let input = LinkInput {
        source_cluster: spec.source_cluster.clone(),
        target_cluster: spec.target_cluster.clone(),
        filters: LinkFilters {
            topics: spec.topics.clone(),
            topics_exclude: spec.topics_exclude.clone(),
            groups: spec.groups.clone(),
            groups_exclude: spec.groups_exclude.clone(),
        },
        sync_configs: true,
    };
    let mut again = context.resync;
    let mut refused: Option<(String, String)> = None;
    match service.link_put(identity, &namespace, &name, input).await {
        Ok((_, created)) => {
            if created {
                context
                    .event(
                        object,
                        false,
                        "Created",
                        format!("replication link {name} created"),
                    )
                    .await;
            }
        }
        // A switchover in progress keeps the link as it is until it ends.
        Err(ServiceError::Conflict {
            code: hdi_api::ErrorCode::OperationInProgress,
            ..
        }) => {
            again = PROGRESS;
        }
        Err(error) => match refusal(&error) {
            Some(reason) => refused = Some(reason),
            None => return Err(error.into()),
        },
    }
    // An action asked for: run it once, then forget the request.
    if refused.is_none()
        && let Some(action) = object.annotations().get(ACTION_ANNOTATION).cloned()
    {
        let outcome = match action_kind(&action) {
            None => Err((
                "InvalidAction".to_owned(),
                format!(
                    "{ACTION_ANNOTATION}: {action:?} is not pause, resume, promote, failover or reverse"
                ),
            )),
            Some(kind) => match service
                .link_operation(identity, &namespace, &name, kind)
                .await
            {
                Ok(operation) => Ok(operation),
                Err(error) => Err(refusal(&error)
                    .unwrap_or_else(|| ("ActionFailed".to_owned(), error.to_string()))),
            },
        };
        match outcome {
            Ok(operation) => {
                context
                    .event(
                        object,
                        false,
                        "ActionStarted",
                        format!("{action} started (operation {})", operation.id),
                    )
                    .await;
                status.last_operation = Some(LastOperation {
                    id: operation.id.to_string(),
                    type_: action.clone(),
                    state: format!("{:?}", operation.state),
                    message: String::new(),
                });
            }
            Err((reason, message)) => {
                context.event(object, true, &reason, message.clone()).await;
                status.last_operation = Some(LastOperation {
                    id: String::new(),
                    type_: action.clone(),
                    state: "Refused".to_owned(),
                    message,
                });
            }
        }
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"metadata": {"annotations": {ACTION_ANNOTATION: null}}}),
            ),
        )
        .await?;
        again = PROGRESS;
    }
    match service.link_get(identity, &namespace, &name).await {
        Ok((link, view, operation)) => {
            status.state = link.state.as_str().to_owned();
            status.max_lag = view
                .partitions
                .iter()
                .filter_map(|p| p.lag_records)
                .max()
                .and_then(|lag| i64::try_from(lag).ok());
            if let (Some(op), Some(last)) = (operation.as_ref(), status.last_operation.as_mut())
                && last.id == op.id.to_string()
            {
                last.state = format!("{:?}", op.state);
                last.message = op
                    .error_detail
                    .clone()
                    .or_else(|| op.steps.last().map(|s| s.name.clone()))
                    .unwrap_or_default();
            }
            let running = operation
                .as_ref()
                .is_some_and(|op| op.finished_at.is_none());
            observed.ready = view.observed && view.error.is_none() && !running;
            observed.reconciling = !observed.ready;
            observed.reason = if running {
                "OperationRunning".to_owned()
            } else if observed.ready {
                "Observed".to_owned()
            } else {
                "NotObserved".to_owned()
            };
            observed.message = view
                .error
                .clone()
                .or_else(|| view.data_plane_status.clone())
                .unwrap_or_default();
            if !observed.ready {
                again = again.min(PROGRESS * 2);
            }
        }
        Err(ServiceError::NotFound { .. }) if refused.is_some() => {}
        Err(other) => return Err(other.into()),
    }
    if let Some((reason, message)) = refused {
        let new_generation = previous.observed_generation != generation;
        observed = stall(
            context,
            object,
            &previous.conditions,
            new_generation,
            reason,
            message,
        )
        .await;
        again = STALLED_RETRY;
    }
    status.conditions = conditions(&observed, generation, &previous.conditions);
    let unchanged = status.observed_generation == previous.observed_generation
        && status.state == previous.state
        && status.max_lag == previous.max_lag
        && status.last_operation == previous.last_operation
        && same_conditions(&status.conditions, &previous.conditions);
    if !unchanged {
        write_status(api, &name, &status).await?;
    }
    Ok(Action::requeue(again))
}

async fn cleanup(object: &HdiReplicationLink, context: &Context) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    // Deleting the target deletes its links: nothing to call then.
    if cluster_going(context, &namespace, &object.spec.target_cluster).await? {
        return Ok(Action::await_change());
    }
    let name = object.name_any();
    let delete = context
        .service
        .link_delete(&context.identity, &namespace, &name);
    deleted(context, object, format!("replication link {name}"), delete).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_link_operations() {
        assert_eq!(action_kind("promote"), Some(OperationKind::LinkPromote));
        assert_eq!(action_kind("failover"), Some(OperationKind::LinkFailover));
        assert_eq!(action_kind("reverse"), Some(OperationKind::LinkReverse));
        assert_eq!(action_kind("pause"), Some(OperationKind::LinkPause));
        assert_eq!(action_kind("resume"), Some(OperationKind::LinkResume));
        assert_eq!(action_kind("delete"), None);
    }
}
