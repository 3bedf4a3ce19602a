//! Workspaces, clusters, operations, capabilities and audit events over REST, with the wire
//! conversions of those resources.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hdi_api as api;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use super::node::PageParams;
use crate::AppState;
use crate::model::{
    self, ClusterRecord, KINDS, Kind, MAX_STORAGE_GIB, OperationId, OperationRecord, PoolRole,
    SIZES, WorkloadRecord, WorkspaceRecord,
};
use crate::service::{ClusterPatchInput, ClusterView, PageRequest};

fn page(params: PageParams) -> PageRequest {
    PageRequest {
        page_size: params.page_size,
        page_token: params.page_token,
    }
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .map(|value| value.to_str().unwrap_or("\u{0}").to_owned())
}

/// What can be created: kinds, versions, sizes and limits.
#[utoipa::path(get, path = "/v1/capabilities", tag = "clusters",
    responses((status = 200, description = "The catalog", body = api::Capabilities)))]
pub async fn capabilities() -> Json<api::Capabilities> {
    Json(api::Capabilities {
        kinds: KINDS
            .iter()
            .map(|k| api::KindCapabilities {
                kind: kind_to_wire(k.kind),
                versions: k.versions.iter().map(|v| (*v).to_owned()).collect(),
                default_version: k.versions.first().copied().unwrap_or_default().to_owned(),
                role: role_to_wire(k.kind.pool_role()),
                min_replicas: k.min_replicas,
                max_replicas: k.max_replicas,
            })
            .collect(),
        sizes: SIZES
            .iter()
            .map(|s| api::Size {
                name: s.name.to_owned(),
                cpu_millis: s.cpu_millis,
                memory_bytes: s.memory_bytes,
            })
            .collect(),
        max_storage_gib: MAX_STORAGE_GIB,
    })
}

/// Creates a workspace.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", request_body = api::WorkspaceCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per user, 24 h) get the first answer instead of acting twice")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = api::Workspace),
        (status = 400, description = "Invalid name"),
        (status = 409, description = "`workspace_exists`, or `idempotency_key_in_use` while a request with the same key runs"),
        (status = 422, description = "`idempotency_key_reused`: the Idempotency-Key was used for a different request"),
        (status = 503, description = "The database is unavailable")))]
pub async fn workspace_create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<api::WorkspaceCreate>,
) -> Result<(StatusCode, Json<api::Workspace>), ApiError> {
    let record = state.service.workspace_create(&caller, &body.name).await?;
    Ok((StatusCode::CREATED, Json(workspace_to_wire(&record))))
}

/// Lists workspaces by name.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of workspaces", body = api::WorkspaceList),
        (status = 400, description = "Bad paging parameters")))]
pub async fn workspaces_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::WorkspaceList>, ApiError> {
    let (items, next) = state.service.workspaces_list(&caller, page(params)).await?;
    Ok(Json(api::WorkspaceList {
        items: items.iter().map(workspace_to_wire).collect(),
        next_page_token: next,
    }))
}

/// One workspace.
#[utoipa::path(get, path = "/v1/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspace", body = api::Workspace),
        (status = 404, description = "No such workspace")))]
pub async fn workspace_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<api::Workspace>, ApiError> {
    let record = state.service.workspace_get_for(&caller, &ws).await?;
    Ok(Json(workspace_to_wire(&record)))
}

/// Lists a workspace's clusters by name.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of clusters", body = api::ClusterList),
        (status = 400, description = "Bad paging parameters"),
        (status = 404, description = "No such workspace")))]
pub async fn clusters_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::ClusterList>, ApiError> {
    let (items, next) = state
        .service
        .clusters_list(&caller, &ws, page(params))
        .await?;
    Ok(Json(api::ClusterList {
        items: items.iter().map(cluster_to_wire).collect(),
        next_page_token: next,
    }))
}

/// One cluster with its status; `ETag` is the spec's entity tag for `If-Match`.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{name}", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"), ("name" = String, Path, description = "Cluster name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cluster", body = api::Cluster, headers(("ETag" = String, description = "Entity tag of the spec"))),
        (status = 404, description = "No such workspace or cluster")))]
pub async fn cluster_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let view = state.service.cluster_get_for(&caller, &ws, &name).await?;
    let mut response = Json(cluster_to_wire(&view)).into_response();
    set_etag(&mut response, &view.cluster);
    Ok(response)
}

/// Creates a cluster or replaces its spec. An identical spec changes nothing (`200`, or `202`
/// while its operation still runs); otherwise `202` with `Location` of the operation.
#[utoipa::path(put, path = "/v1/workspaces/{ws}/clusters/{name}", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"), ("name" = String, Path, description = "Cluster name"),
        ("If-Match" = Option<String>, Header, description = "Apply only if the cluster's ETag matches")),
    request_body = api::ClusterSpec,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unchanged; the latest operation", body = api::Operation),
        (status = 202, description = "Accepted; follow Location", body = api::Operation, headers(("Location" = String, description = "The operation"))),
        (status = 400, description = "Invalid spec"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace"),
        (status = 409, description = "Another operation runs, or the brokers to remove hold partitions"),
        (status = 412, description = "If-Match does not match")))]
pub async fn cluster_put(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::ClusterSpec>,
) -> Result<Response, ApiError> {
    let kind = kind_from_wire(body.kind);
    let spec = spec_from_wire(body);
    let outcome = state
        .service
        .cluster_put(
            &caller,
            &ws,
            &name,
            kind,
            spec,
            if_match(&headers).as_deref(),
        )
        .await?;
    let operation = match outcome.operation {
        Some(op) => op,
        None => {
            let latest = state
                .service
                .cluster_get_for(&caller, &ws, &name)
                .await?
                .last_operation
                .ok_or_else(ApiError::route_not_found)?;
            let op = state.service.operation_get(&caller, latest).await?;
            let mut response = (StatusCode::OK, Json(operation_to_wire(&op))).into_response();
            set_etag(&mut response, &outcome.cluster);
            return Ok(response);
        }
    };
    Ok(accepted(&outcome.cluster, &operation))
}

/// Resizes a node pool or toggles deletion protection.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/clusters/{name}", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"), ("name" = String, Path, description = "Cluster name"),
        ("If-Match" = Option<String>, Header, description = "Apply only if the cluster's ETag matches")),
    request_body = api::ClusterPatch,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted; follow Location", body = api::Operation, headers(("Location" = String, description = "The operation"))),
        (status = 400, description = "Invalid patch"),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "Another operation runs, or the brokers to remove hold partitions"),
        (status = 412, description = "If-Match does not match")))]
pub async fn cluster_patch(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::ClusterPatch>,
) -> Result<Response, ApiError> {
    let patch = ClusterPatchInput {
        pools: body
            .node_pools
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name, p.replicas))
            .collect(),
        deletion_protection: body.deletion_protection,
        drain: body.drain,
    };
    let (cluster, operation) = state
        .service
        .cluster_patch(&caller, &ws, &name, patch, if_match(&headers).as_deref())
        .await?;
    Ok(accepted(&cluster, &operation))
}

/// Deletes a cluster: its workloads stop and their data is removed, then the record goes.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/clusters/{name}", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"), ("name" = String, Path, description = "Cluster name"),
        ("If-Match" = Option<String>, Header, description = "Apply only if the cluster's ETag matches")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted; follow Location", body = api::Operation, headers(("Location" = String, description = "The operation"))),
        (status = 403, description = "The caller's role does not allow this"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "Deletion protection is on (`deletion_protected`), or the cluster is the source of a replication link (`cluster_has_links`)"),
        (status = 412, description = "If-Match does not match")))]
pub async fn cluster_delete(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (cluster, operation) = state
        .service
        .cluster_delete(&caller, &ws, &name, if_match(&headers).as_deref())
        .await?;
    Ok(accepted(&cluster, &operation))
}

/// Lists a workspace's operations, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/operations", tag = "operations",
    params(("ws" = String, Path, description = "Workspace name"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of operations", body = api::OperationList),
        (status = 400, description = "Bad paging parameters"),
        (status = 404, description = "No such workspace")))]
pub async fn operations_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::OperationList>, ApiError> {
    let (items, next) = state
        .service
        .operations_list(&caller, &ws, page(params))
        .await?;
    Ok(Json(api::OperationList {
        items: items.iter().map(operation_to_wire).collect(),
        next_page_token: next,
    }))
}

/// One operation with its steps.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The operation", body = api::Operation),
        (status = 404, description = "No such operation")))]
pub async fn operation_get(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<api::Operation>, ApiError> {
    let op = state
        .service
        .operation_get(&caller, OperationId::from_uuid(id))
        .await?;
    Ok(Json(operation_to_wire(&op)))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit events", body = api::AuditEventList),
        (status = 400, description = "Bad paging parameters"),
        (status = 403, description = "Not a platform admin")))]
pub async fn audit_list(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<api::AuditEventList>, ApiError> {
    let (items, next) = state.service.audit_list(&caller, page(params)).await?;
    Ok(Json(api::AuditEventList {
        items: items
            .into_iter()
            .map(|e| api::AuditEvent {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                resource: e.resource,
                outcome: e.outcome,
                detail: e.detail,
            })
            .collect(),
        next_page_token: next,
    }))
}

fn set_etag(response: &mut Response, cluster: &ClusterRecord) {
    if let Ok(value) = HeaderValue::from_str(&cluster.etag()) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

fn accepted(cluster: &ClusterRecord, operation: &OperationRecord) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(operation_to_wire(operation))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/operations/{}", operation.id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    set_etag(&mut response, cluster);
    response
}

fn workspace_to_wire(record: &WorkspaceRecord) -> api::Workspace {
    api::Workspace {
        id: record.id.into_uuid(),
        name: record.name.clone(),
        created_at: record.created_at,
    }
}

fn kind_to_wire(kind: Kind) -> api::ClusterKind {
    match kind {
        Kind::Kafka => api::ClusterKind::Kafka,
        Kind::Spark => api::ClusterKind::Spark,
    }
}

pub(crate) fn kind_from_wire(kind: api::ClusterKind) -> Kind {
    match kind {
        api::ClusterKind::Kafka => Kind::Kafka,
        api::ClusterKind::Spark => Kind::Spark,
    }
}

fn role_to_wire(role: PoolRole) -> api::PoolRole {
    match role {
        PoolRole::Broker => api::PoolRole::Broker,
        PoolRole::Executor => api::PoolRole::Executor,
    }
}

pub(crate) fn spec_from_wire(spec: api::ClusterSpec) -> model::ClusterSpec {
    // A new Kafka cluster is secured unless its spec says otherwise.
    let security = match (spec.kind, spec.security) {
        (api::ClusterKind::Kafka, security) => Some(security.unwrap_or_default()),
        (api::ClusterKind::Spark, security) => security,
    }
    .map(|s| model::KafkaSecurity {
        tls: s.tls,
        mechanisms: s
            .authentication
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect(),
        authorization: s.authorization,
    });
    model::ClusterSpec {
        security,
        version: spec.version.unwrap_or_default(),
        pools: spec
            .node_pools
            .into_iter()
            .map(|p| model::PoolSpec {
                name: p.name,
                role: match p.role {
                    api::PoolRole::Broker => PoolRole::Broker,
                    api::PoolRole::Executor => PoolRole::Executor,
                },
                replicas: p.replicas,
                size: p.size,
                storage_gib: p.storage_gib,
            })
            .collect(),
        config: spec.config,
        deletion_protection: spec.deletion_protection,
        drain: false,
    }
}

fn security_to_wire(security: Option<&model::KafkaSecurity>) -> api::KafkaSecurity {
    security.map_or_else(api::KafkaSecurity::plaintext, |s| api::KafkaSecurity {
        tls: s.tls,
        authentication: s
            .mechanisms
            .iter()
            .filter_map(|m| match m.as_str() {
                "SCRAM-SHA-512" => Some(api::KafkaMechanism::ScramSha512),
                "SCRAM-SHA-256" => Some(api::KafkaMechanism::ScramSha256),
                "OAUTHBEARER" => Some(api::KafkaMechanism::Oauthbearer),
                _ => None,
            })
            .collect(),
        authorization: s.authorization,
    })
}

fn state_to_wire(state: model::ClusterState) -> api::ClusterState {
    match state {
        model::ClusterState::Creating => api::ClusterState::Creating,
        model::ClusterState::Running => api::ClusterState::Running,
        model::ClusterState::Resizing => api::ClusterState::Resizing,
        model::ClusterState::Deleting => api::ClusterState::Deleting,
        model::ClusterState::Failed => api::ClusterState::Failed,
    }
}

fn workload_to_wire(w: &WorkloadRecord) -> api::PlacedWorkload {
    api::PlacedWorkload {
        name: w.name.clone(),
        role: w.role.as_str().to_owned(),
        ordinal: w.ordinal,
        node: w.node_name.clone(),
        fault_domain: w.fault_domain,
        address: w.endpoint(),
        metrics_address: w.metrics_address(),
        state: w.observed.as_str().to_owned(),
        restarts: w.restarts,
        removing: w.removing,
    }
}

pub(crate) fn cluster_to_wire(view: &ClusterView) -> api::Cluster {
    let c = &view.cluster;
    let mut pools: Vec<api::PoolStatus> = Vec::new();
    if c.kind == Kind::Spark {
        pools.push(api::PoolStatus {
            name: "driver".to_owned(),
            desired: u32::from(!c.deleting),
            ready: c.status.ready.get("driver").copied().unwrap_or(0),
        });
    }
    for pool in &c.spec.pools {
        let key = match pool.role {
            PoolRole::Broker => "brokers",
            PoolRole::Executor => "executors",
        };
        pools.push(api::PoolStatus {
            name: pool.name.clone(),
            desired: if c.deleting { 0 } else { pool.replicas },
            ready: c.status.ready.get(key).copied().unwrap_or(0),
        });
    }
    api::Cluster {
        id: c.id.into_uuid(),
        workspace: c.workspace.clone(),
        name: c.name.clone(),
        spec: api::ClusterSpec {
            kind: kind_to_wire(c.kind),
            version: Some(c.spec.version.clone()),
            node_pools: c
                .spec
                .pools
                .iter()
                .map(|p| api::NodePool {
                    name: p.name.clone(),
                    role: role_to_wire(p.role),
                    replicas: p.replicas,
                    size: p.size.clone(),
                    storage_gib: p.storage_gib,
                })
                .collect(),
            config: c.spec.config.clone(),
            deletion_protection: c.spec.deletion_protection,
            security: (c.kind == Kind::Kafka).then(|| security_to_wire(c.spec.security.as_ref())),
        },
        generation: c.generation,
        status: api::ClusterStatus {
            state: state_to_wire(if c.deleting {
                model::ClusterState::Deleting
            } else if c.generation != c.observed_generation
                && c.state == model::ClusterState::Running
            {
                // A change the reconcilers have not reached yet.
                model::ClusterState::Resizing
            } else {
                c.state
            }),
            observed_generation: c.observed_generation,
            conditions: c
                .status
                .conditions
                .iter()
                .map(|k| api::Condition {
                    condition_type: k.condition_type.clone(),
                    status: k.status.clone(),
                    reason: k.reason.clone(),
                    message: k.message.clone(),
                    last_transition_time: k.last_transition_time,
                })
                .collect(),
            pools,
            endpoints: api::Endpoints {
                bootstrap_servers: c.status.bootstrap_servers.clone(),
                job_api: c.status.job_api.clone(),
                security_protocol: (c.kind == Kind::Kafka).then(|| {
                    c.spec
                        .security
                        .as_ref()
                        .map_or("PLAINTEXT", model::KafkaSecurity::protocol)
                        .to_owned()
                }),
                sasl_mechanisms: c
                    .spec
                    .security
                    .as_ref()
                    .map(|s| s.mechanisms.clone())
                    .unwrap_or_default(),
                ca_certificate: c
                    .spec
                    .security
                    .as_ref()
                    .filter(|s| s.tls)
                    .and(view.authorities.kafka_trust.clone()),
            },
            workloads: view.workloads.iter().map(workload_to_wire).collect(),
            last_operation: view.last_operation.map(OperationId::into_uuid),
            authority_rotation: view
                .authorities
                .rotation
                .map(|r| authority_rotation_to_wire(r, None)),
        },
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

pub(crate) fn operation_to_wire(op: &OperationRecord) -> api::Operation {
    api::Operation {
        id: op.id.into_uuid(),
        kind: match op.kind {
            model::OperationKind::Create => api::OperationKind::Create,
            model::OperationKind::Update => api::OperationKind::Update,
            model::OperationKind::Resize => api::OperationKind::Resize,
            model::OperationKind::Delete => api::OperationKind::Delete,
            model::OperationKind::LinkPause => api::OperationKind::LinkPause,
            model::OperationKind::LinkResume => api::OperationKind::LinkResume,
            model::OperationKind::LinkPromote => api::OperationKind::LinkPromote,
            model::OperationKind::LinkFailover => api::OperationKind::LinkFailover,
            model::OperationKind::LinkReverse => api::OperationKind::LinkReverse,
        },
        state: match op.state {
            model::OperationState::Running => api::OperationState::Running,
            model::OperationState::Succeeded => api::OperationState::Succeeded,
            model::OperationState::Failed => api::OperationState::Failed,
        },
        workspace: op.workspace.clone(),
        cluster: op.cluster_name.clone(),
        cluster_id: op.cluster_id.into_uuid(),
        target_generation: op.target_generation,
        steps: op
            .steps
            .iter()
            .map(|s| api::OperationStep {
                name: s.name.clone(),
                state: s.state.clone(),
                detail: s.detail.clone(),
                started_at: s.started_at,
            })
            .collect(),
        error: op.error_code.as_ref().map(|code| api::OperationError {
            code: hdi_api::ErrorCode::from_wire(code),
            detail: op.error_detail.clone().unwrap_or_default(),
        }),
        created_by: op.created_by.clone(),
        created_at: op.created_at,
        updated_at: op.updated_at,
        finished_at: op.finished_at,
        link: op.link.as_ref().map(|(_, name)| name.clone()),
        result: op.result.as_ref().map(super::link::result_to_wire),
    }
}

/// Rotates a Kafka cluster's broker certificates now (quorum and Kafka listener certificates;
/// the cluster's authorities stay, so clients keep trusting the same CA). Certificates are also
/// renewed on their own two thirds into their 90-day lifetime.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/rotate-certificates", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The brokers' certificates are being renewed", body = api::CertificateRotation),
        (status = 400, description = "`not_a_kafka_cluster`"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or cluster")))]
pub async fn cluster_certificates_rotate(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<api::CertificateRotation>), ApiError> {
    let brokers = state
        .service
        .cluster_certificates_rotate(&caller, &ws, &cluster)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(api::CertificateRotation { brokers }),
    ))
}

fn authority_rotation_to_wire(
    rotation: model::AuthorityRotationRecord,
    ca_certificate: Option<String>,
) -> api::AuthorityRotation {
    api::AuthorityRotation {
        phase: match rotation.phase {
            model::AuthorityPhase::Trusting => api::AuthorityRotationPhase::Trusting,
            model::AuthorityPhase::Issuing => api::AuthorityRotationPhase::Issuing,
            model::AuthorityPhase::Settling => api::AuthorityRotationPhase::Settling,
        },
        at: rotation.at,
        ca_certificate,
    }
}

/// Starts rotating a Kafka cluster's certificate authorities (the Kafka CA clients trust, and
/// the quorum CA the brokers trust among themselves). New authorities are trusted at once beside
/// the current ones: the brokers reload their trust without a restart, and the answer (like the
/// cluster's `ca_certificate` until the rotation ends) holds both Kafka CA certificates, which
/// clients must load within the trust period. Then the new authorities sign: every broker
/// certificate is issued again and reloaded in place. Once all are, the old authorities are
/// dropped. The cluster's `status.authority_rotation` shows the phase. The body may be `{}`.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/rotate-authorities", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name")),
    request_body = api::AuthorityRotationRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The rotation started", body = api::AuthorityRotation),
        (status = 400, description = "`not_a_kafka_cluster`, `invalid_field` (`trust_period_seconds`)"),
        (status = 403, description = "The caller is not an operator of the workspace"),
        (status = 404, description = "No such workspace or cluster"),
        (status = 409, description = "`rotation_in_progress`, `cluster_not_ready` (no authority yet)")))]
pub async fn cluster_authorities_rotate(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<api::AuthorityRotationRequest>,
) -> Result<(StatusCode, Json<api::AuthorityRotation>), ApiError> {
    let (rotation, trust) = state
        .service
        .cluster_authorities_rotate(&caller, &ws, &cluster, body.trust_period_seconds)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(authority_rotation_to_wire(rotation, trust)),
    ))
}
