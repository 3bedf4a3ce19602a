//! The `HdiCluster` controller: a custom resource becomes an hdi cluster (created, resized or
//! deleted through the service layer as REST would, owned by the resource so REST refuses to
//! change it), and the cluster's state is written back as kstatus conditions, pool counts,
//! endpoints (the CA certificate in a Secret `hdi-<name>-ca`) and the latest operation.
//! StatefulSets and Services the cluster runs as are owned by the resource, so the controller
//! also wakes when they change; the condition `PodsReady` says how many of their pods
//! Kubernetes reports ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdi_api::{ClusterState, ErrorCode};
use hdi_k8s::crd::{Endpoints, HdiCluster, HdiClusterStatus, LastOperation, PoolStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource as _, ResourceExt as _};

use super::{
    Context, Observed, OperatorError, PROGRESS, Reconciled, conditions, refusal, same_conditions,
    write_status,
};
use crate::model::K8sOwner;
use crate::service::{ManagedSpec, ServiceError};

impl Reconciled for HdiCluster {
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

/// The owner reference the cluster records.
fn owner(object: &HdiCluster) -> K8sOwner {
    K8sOwner {
        api_version: HdiCluster::api_version(&()).into_owned(),
        kind: HdiCluster::kind(&()).into_owned(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
    }
}

/// Makes the workspace named like the namespace unless it exists.
pub async fn ensure_workspace(context: &Context, namespace: &str) -> Result<(), OperatorError> {
    match context
        .service
        .workspace_get_for(&context.identity, namespace)
        .await
    {
        Ok(_) => return Ok(()),
        Err(ServiceError::NotFound { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    match context
        .service
        .workspace_create(&context.identity, namespace)
        .await
    {
        Ok(_) => Ok(()),
        Err(ServiceError::Conflict {
            code: ErrorCode::WorkspaceExists,
            ..
        }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

async fn apply(
    object: &HdiCluster,
    context: &Context,
    api: &Api<HdiCluster>,
) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let generation = object.metadata.generation.unwrap_or(0);
    let previous = object.status.clone().unwrap_or_default();
    let new_generation = previous.observed_generation != generation;
    let mut observed = Observed::default();
    let mut blocked: Option<(String, String)> = None;
    ensure_workspace(context, &namespace).await?;
    let stored = match object.spec.to_rest() {
        Err(message) => Err(("InvalidSpec".to_owned(), message)),
        Ok(rest) => {
            let kind = crate::http::cluster::kind_from_wire(rest.kind);
            let spec = crate::http::cluster::spec_from_wire(rest);
            match context
                .service
                .cluster_put_managed(
                    &context.identity,
                    &namespace,
                    &name,
                    ManagedSpec {
                        kind,
                        spec,
                        drain: object.spec.drain,
                        owner: owner(object),
                    },
                )
                .await
            {
                Ok(outcome) => {
                    if new_generation {
                        let what = if outcome.created {
                            "Created"
                        } else {
                            "Applied"
                        };
                        context
                            .event(
                                object,
                                false,
                                what,
                                format!(
                                    "generation {generation} applied{}",
                                    outcome
                                        .operation
                                        .as_ref()
                                        .map(|op| format!(" (operation {})", op.id))
                                        .unwrap_or_default()
                                ),
                            )
                            .await;
                    }
                    Ok(())
                }
                Err(ServiceError::Conflict {
                    code: ErrorCode::BrokersHoldPartitions | ErrorCode::BelowQuorum,
                    message,
                }) => {
                    blocked = Some(("BrokersHoldPartitions".to_owned(), message));
                    Ok(())
                }
                // Transient: the next look retries.
                Err(ServiceError::Conflict {
                    code: ErrorCode::OperationInProgress | ErrorCode::ConcurrentChange,
                    ..
                }) => Ok(()),
                Err(error) => match refusal(&error) {
                    Some(refused) => Err(refused),
                    None => return Err(error.into()),
                },
            }
        }
    };
    let mut status = HdiClusterStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let converging;
    match context
        .service
        .cluster_get_for(&context.identity, &namespace, &name)
        .await
    {
        Ok(view) => {
            let wire = crate::http::cluster::cluster_to_wire(&view);
            let state = wire.status.state;
            let reached = wire.status.observed_generation >= wire.generation;
            status.state = state.to_string();
            status.cluster_id = Some(wire.id.to_string());
            status.node_pools = wire
                .status
                .pools
                .iter()
                .map(|p| PoolStatus {
                    name: p.name.clone(),
                    desired: p.desired,
                    ready: p.ready,
                })
                .collect();
            let ca_secret = match &wire.status.endpoints.ca_certificate {
                Some(pem) => {
                    let secret = format!("hdi-{name}-ca");
                    let reference = hdi_k8s::apply::owner_of(object);
                    hdi_k8s::apply::Applier::new(context.client.clone())
                        .secret(
                            &namespace,
                            &secret,
                            &name,
                            &reference,
                            BTreeMap::from([("ca.crt".to_owned(), pem.clone().into_bytes())]),
                        )
                        .await?;
                    Some(secret)
                }
                None => None,
            };
            status.endpoints = Endpoints {
                bootstrap_servers: wire.status.endpoints.bootstrap_servers.clone(),
                job_api: wire.status.endpoints.job_api.clone(),
                security_protocol: wire.status.endpoints.security_protocol.clone(),
                ca_secret,
            };
            let mut message = wire
                .status
                .conditions
                .iter()
                .filter(|c| c.status != "True")
                .map(|c| format!("{}: {}", c.condition_type, c.message))
                .collect::<Vec<_>>()
                .join("; ");
            if let Some(id) = wire.status.last_operation
                && let Ok(op) = context
                    .service
                    .operation_get(&context.identity, crate::model::OperationId::from_uuid(id))
                    .await
            {
                let op = crate::http::cluster::operation_to_wire(&op);
                let latest = op
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, e.detail))
                    .or_else(|| {
                        op.steps.last().map(|s| match &s.detail {
                            Some(detail) => format!("{}: {detail}", s.name),
                            None => s.name.clone(),
                        })
                    })
                    .unwrap_or_default();
                if message.is_empty() {
                    message.clone_from(&latest);
                }
                status.last_operation = Some(LastOperation {
                    id: op.id.to_string(),
                    type_: serde_json::to_value(op.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    state: format!("{:?}", op.state),
                    message: latest,
                });
            }
            observed.ready = state == ClusterState::Running && reached && blocked.is_none();
            observed.stalled = state == ClusterState::Failed;
            observed.reconciling = !observed.ready && !observed.stalled;
            observed.reason = state.to_string();
            observed.message = if observed.ready {
                "every workload runs and the cluster answers as one".to_owned()
            } else {
                message
            };
            converging = !observed.ready && !observed.stalled;
        }
        Err(ServiceError::NotFound { .. }) => {
            // Refused before it was ever created.
            status.state = String::new();
            converging = false;
        }
        Err(other) => return Err(other.into()),
    }
    if let Err((reason, message)) = &stored {
        observed.ready = false;
        observed.reconciling = false;
        observed.stalled = true;
        observed.reason.clone_from(reason);
        observed.message.clone_from(message);
        if new_generation {
            context.event(object, true, reason, message.clone()).await;
        }
    }
    // What Kubernetes says of the pods, beside what the brokers and driver answer.
    let sets: Api<StatefulSet> = Api::namespaced(context.client.clone(), &namespace);
    let selector = format!("{}={name}", hdi_k8s::CLUSTER_LABEL);
    let (mut desired, mut ready) = (0, 0);
    for set in sets.list(&ListParams::default().labels(&selector)).await? {
        desired += set.spec.replicas.unwrap_or(0);
        ready += set.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    }
    observed.extra.push((
        "PodsReady".to_owned(),
        desired > 0 && ready == desired,
        if ready == desired {
            "PodsReady"
        } else {
            "PodsNotReady"
        }
        .to_owned(),
        format!("{ready}/{desired} pods ready"),
    ));
    observed.extra.push(match &blocked {
        Some((reason, message)) => (
            "ScaleDownBlocked".to_owned(),
            true,
            reason.clone(),
            format!("{message} (set spec.drain: true to move the partitions away first)"),
        ),
        None => (
            "ScaleDownBlocked".to_owned(),
            false,
            "NotBlocked".to_owned(),
            String::new(),
        ),
    });
    status.conditions = conditions(&observed, generation, &previous.conditions);
    if !(status.observed_generation == previous.observed_generation
        && same_conditions(&status.conditions, &previous.conditions)
        && HdiClusterStatus {
            conditions: Vec::new(),
            ..status.clone()
        } == HdiClusterStatus {
            conditions: Vec::new(),
            ..previous.clone()
        })
    {
        write_status(api, &name, &status).await?;
        if observed.ready
            && !previous
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            context
                .event(object, false, "Ready", observed.message.clone())
                .await;
        }
    }
    Ok(if converging || blocked.is_some() {
        Action::requeue(PROGRESS)
    } else {
        Action::requeue(context.resync)
    })
}

async fn cleanup(object: &HdiCluster, context: &Context) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let deleting = match context
        .service
        .cluster_get_for(&context.identity, &namespace, &name)
        .await
    {
        Ok(view) => view.cluster.deleting,
        Err(ServiceError::NotFound { .. }) => {
            context
                .event(object, false, "Deleted", "cluster deleted".to_owned())
                .await;
            return Ok(Action::await_change());
        }
        Err(other) => return Err(other.into()),
    };
    if deleting {
        return Err(OperatorError::Waiting(format!(
            "cluster {name} is being deleted"
        )));
    }
    match context
        .service
        .cluster_delete(&context.identity, &namespace, &name, None)
        .await
    {
        Ok((_, operation)) => {
            context
                .event(
                    object,
                    false,
                    "Deleting",
                    format!("cluster deletion started (operation {})", operation.id),
                )
                .await;
            Err(OperatorError::Waiting(format!(
                "cluster {name} is being deleted"
            )))
        }
        // Gone (or never made): nothing outside Kubernetes is left.
        Err(ServiceError::NotFound { .. }) => {
            context
                .event(object, false, "Deleted", "cluster deleted".to_owned())
                .await;
            Ok(Action::await_change())
        }
        Err(error) => match refusal(&error) {
            Some((reason, message)) => {
                context.event(object, true, &reason, message.clone()).await;
                Err(OperatorError::Waiting(format!("{reason}: {message}")))
            }
            None => Err(error.into()),
        },
    }
}
