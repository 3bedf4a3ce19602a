//! Endpoints for node agents: registration, heartbeats with workload reports, and assignments
//! (agent token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hdi_api::{
    BrokerSecurity, BrokerWorkload, ExecutorRole, ExecutorWorkload, Node, NodeCredential,
    NodeHeartbeat, NodeRegistration, QuorumTls, QuorumVoter, RunAs, Workload, WorkloadAssignment,
    WorkloadSpec, WorkloadState,
};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AgentCaller, ApiJson, ApiPath, NodeCaller};
use super::node::{capacity_from_wire, node_to_wire};
use crate::AppState;
use hdi_kafka_client::scram::{Credential, Hash};
use sha2::{Digest as _, Sha256};

use crate::model::{
    ClusterAccess, KAFKA_ADMIN_USER, KafkaClientSecrets, KafkaSecurity, NodeId, NodeSpec,
    ObservedProcess, WorkloadConfig, WorkloadRecord, WorkloadRole,
};
use crate::store::ReportedWorkload;

/// Exchanges the node agents' bootstrap token for this node's own credential (once: shown only
/// in this answer). Every other agent call presents that credential and acts for its node only.
/// With a cluster's enrolment token instead (the Secret of a Kubernetes cluster's pods), the
/// node belongs to that cluster: only its workloads are placed there.
#[utoipa::path(post, path = "/v1/agent/nodes/{id}/credential", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id, chosen by the agent and kept in its data directory")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The node's credential", body = NodeCredential),
        (status = 401, description = "No valid bootstrap token"),
        (status = 409, description = "`node_credential_exists`: the node has a credential; a platform admin revokes it first")))]
pub async fn agent_node_enrol(
    AgentCaller(cluster): AgentCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<NodeCredential>), ApiError> {
    let credential = state
        .service
        .node_enrol(NodeId::from_uuid(id), cluster)
        .await?;
    tracing::info!(node = %id, "node agent enrolled: credential issued");
    Ok((StatusCode::CREATED, Json(NodeCredential { credential })))
}

/// Registers a node agent (or re-registers it after a restart, keeping its identity).
#[utoipa::path(put, path = "/v1/agent/nodes/{id}", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id, chosen by the agent and kept in its data directory")),
    request_body = NodeRegistration,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Registered", body = Node),
        (status = 400, description = "Invalid registration"),
        (status = 401, description = "No valid node credential"),
        (status = 403, description = "The credential is another node's"),
        (status = 409, description = "Another node has this name")))]
pub async fn agent_node_register(
    caller: NodeCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(registration): ApiJson<NodeRegistration>,
) -> Result<Json<Node>, ApiError> {
    caller.must_be(NodeId::from_uuid(id))?;
    let spec = NodeSpec {
        name: registration.name,
        fault_domain: registration.fault_domain,
        address: registration.address,
        agent_version: registration.agent_version,
        capacity: capacity_from_wire(registration.capacity),
    };
    let record = state
        .service
        .node_register(NodeId::from_uuid(id), spec)
        .await?;
    tracing::info!(node = %record.id, name = %record.spec.name, incarnation = record.incarnation, "node registered");
    Ok(Json(node_to_wire(
        &record,
        state.service.config().node_ready_timeout,
    )))
}

/// Records a node's heartbeat; `404` tells the agent to register again.
#[utoipa::path(post, path = "/v1/agent/nodes/{id}/heartbeat", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id")),
    request_body = NodeHeartbeat,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "No valid node credential"),
        (status = 403, description = "The credential is another node's"),
        (status = 404, description = "Unknown node: register first")))]
pub async fn agent_node_heartbeat(
    caller: NodeCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(heartbeat): ApiJson<NodeHeartbeat>,
) -> Result<StatusCode, ApiError> {
    caller.must_be(NodeId::from_uuid(id))?;
    let reports: Vec<ReportedWorkload> = heartbeat
        .workloads
        .iter()
        .map(|w| ReportedWorkload {
            name: w.name.clone(),
            state: match w.state {
                WorkloadState::Starting => ObservedProcess::Starting,
                WorkloadState::Running => ObservedProcess::Running,
                WorkloadState::Backoff => ObservedProcess::Backoff,
                WorkloadState::Stopping => ObservedProcess::Stopping,
            },
            pid: w.pid,
            restarts: w.restarts,
            last_exit: w.last_exit.clone(),
        })
        .collect();
    state
        .service
        .node_heartbeat(
            NodeId::from_uuid(id),
            capacity_from_wire(heartbeat.capacity),
            heartbeat.applied_generation,
            &reports,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The workloads the node must run, with the assignment's generation.
#[utoipa::path(get, path = "/v1/agent/nodes/{id}/workloads", tag = "agent",
    params(("id" = Uuid, Path, description = "Node id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The assignment", body = WorkloadAssignment),
        (status = 401, description = "No valid node credential"),
        (status = 403, description = "The credential is another node's"),
        (status = 404, description = "Unknown node: register first")))]
pub async fn agent_node_workloads(
    caller: NodeCaller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WorkloadAssignment>, ApiError> {
    caller.must_be(NodeId::from_uuid(id))?;
    let assignment = state.service.node_assignment(NodeId::from_uuid(id)).await?;
    let jwks = serde_json::to_string(&super::auth::jwks_document(&state)?).ok();
    Ok(Json(WorkloadAssignment {
        generation: assignment.generation,
        workloads: assignment
            .workloads
            .iter()
            .filter_map(|w| {
                let tls = match (
                    assignment.tls.get(&w.id),
                    assignment.quorum_ca.get(&w.cluster_id),
                ) {
                    (Some((cert_pem, key_pem)), Some(ca_pem)) => Some(QuorumTls {
                        ca_pem: ca_pem.clone(),
                        cert_pem: cert_pem.clone(),
                        key_pem: key_pem.clone(),
                    }),
                    _ => None,
                };
                let kafka = match assignment.kafka.get(&w.cluster_id) {
                    Some((Some(security), secrets)) => Some(Box::new(broker_security(
                        w,
                        security,
                        secrets.as_ref()?,
                        assignment.kafka_tls.get(&w.id),
                        jwks.as_deref(),
                    )?)),
                    _ => None,
                };
                Some(workload_to_wire(
                    w,
                    assignment.access.get(&w.cluster_id)?,
                    tls,
                    kafka,
                ))
            })
            .collect(),
    }))
}

/// A secured cluster's broker listener: its protocol, TLS identity (withheld until issued,
/// so a broker never starts with a listener weaker than its spec), SASL mechanisms with the
/// administrator in the static users file, and the authorizer.
fn broker_security(
    w: &WorkloadRecord,
    security: &KafkaSecurity,
    secrets: &KafkaClientSecrets,
    tls: Option<&(String, String)>,
    jwks: Option<&str>,
) -> Option<BrokerSecurity> {
    let tls = if security.tls {
        let (cert_pem, key_pem) = tls?;
        Some(QuorumTls {
            ca_pem: secrets.ca_trust.clone(),
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        })
    } else {
        None
    };
    let mut mechanisms = security.mechanisms.clone();
    let sasl_users = if mechanisms.is_empty() {
        None
    } else {
        // The control plane administers the cluster as a SCRAM-SHA-512 user, whatever the
        // spec offers its clients. The salt is derived from the cluster, so the file (and the
        // broker's arguments) stay the same from one assignment to the next.
        if !mechanisms.iter().any(|m| m == "SCRAM-SHA-512") {
            mechanisms.push("SCRAM-SHA-512".to_owned());
        }
        let salt = Sha256::digest(format!("hdi-admin-salt:{}", w.cluster_id)).to_vec();
        let credential =
            Credential::with_salt(Hash::Sha512, secrets.admin_password.expose(), salt, 4096)
                .ok()?;
        Some(format!(
            "{}\n",
            credential.users_file_line(KAFKA_ADMIN_USER)
        ))
    };
    Some(BrokerSecurity {
        protocol: security.protocol().to_owned(),
        tls,
        sasl_mechanisms: mechanisms,
        sasl_users,
        oauth_jwks: if security.has_oauth() {
            Some(jwks?.to_owned())
        } else {
            None
        },
        authorizer: security.authorization,
        super_users: if security.authorization {
            vec![format!("User:{KAFKA_ADMIN_USER}")]
        } else {
            Vec::new()
        },
    })
}

fn workload_to_wire(
    w: &WorkloadRecord,
    access: &ClusterAccess,
    tls: Option<QuorumTls>,
    kafka_security: Option<Box<BrokerSecurity>>,
) -> Workload {
    let spec = match &w.config {
        WorkloadConfig::Broker {
            broker_id,
            kafka_port,
            quorum_port,
            voters,
            rack,
            metrics_port,
        } => WorkloadSpec::Broker(BrokerWorkload {
            broker_id: *broker_id,
            host: w.address.clone(),
            kafka_port: *kafka_port,
            quorum_port: *quorum_port,
            voters: voters
                .iter()
                .map(|(id, host, port)| QuorumVoter {
                    broker_id: *id,
                    host: host.clone(),
                    port: *port,
                })
                .collect(),
            rack: rack.clone(),
            quorum_tls: tls,
            kafka_security,
            metrics_port: *metrics_port,
        }),
        WorkloadConfig::Executor {
            role,
            worker_id,
            port,
            driver,
        } => WorkloadSpec::Executor(ExecutorWorkload {
            role: if *role == WorkloadRole::Driver {
                ExecutorRole::Driver
            } else {
                ExecutorRole::Worker
            },
            worker_id: *worker_id,
            host: w.address.clone(),
            port: *port,
            driver: driver.clone(),
            credential: access.credential.expose().to_owned(),
            files_root: access.files_root(),
        }),
    };
    Workload {
        name: w.name.clone(),
        cluster_id: w.cluster_id.into_uuid(),
        run_as: RunAs {
            uid: access.os_uid,
            workspace_gid: access.workspace_gid,
        },
        spec,
    }
}
