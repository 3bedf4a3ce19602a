//! Clusters: the desired state of the platform.
//!
//! Every mutation is validated here, stored together with its operation in one transaction,
//! audited (accepted or refused), and pokes the reconciler. Nothing here waits for the data plane
//! except the scale-in check, which asks the Kafka cluster whether the brokers to remove hold
//! partitions so that the refusal is immediate.

use std::time::Duration;

use super::auth::OPERATOR_USER;
use super::node::{PageRequest, is_dns_label};
use super::page::{page_size, paginate};
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::KafkaAdmin;
use crate::model::{
    AuthorityPhase, AuthorityRotationRecord, ClusterAuthorities, ClusterId, ClusterRecord,
    ClusterSpec, K8sOwner, KafkaSecurity, Kind, MAX_STORAGE_GIB, OperationId, OperationKind,
    OperationRecord, PoolRole, WorkloadRecord, WorkspaceRecord, kind_spec, size_spec,
};
use crate::store::{NewOperation, NextAuthorities, RotationStart, SpecChange};

/// How long both authorities are trusted before the new one signs, unless the request says.
pub const DEFAULT_TRUST_PERIOD_SECONDS: u64 = 7 * 24 * 3600;

/// The longest trust period a rotation may ask for (a year).
pub const MAX_TRUST_PERIOD_SECONDS: u64 = 365 * 24 * 3600;

/// A `PATCH` of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterPatchInput {
    /// `(pool name, replicas)` to resize.
    pub pools: Vec<(String, u32)>,
    /// New deletion protection.
    pub deletion_protection: Option<bool>,
    /// Drain brokers before removing them.
    pub drain: bool,
}

/// What the Kubernetes operator puts: an `HdiCluster`'s spec.
#[derive(Clone, Debug)]
pub struct ManagedSpec {
    /// Kafka or Spark.
    pub kind: Kind,
    /// The desired spec.
    pub spec: ClusterSpec,
    /// Drain brokers before a smaller pool removes them.
    pub drain: bool,
    /// The resource that owns the cluster.
    pub owner: K8sOwner,
}

/// What a `PUT` did.
#[derive(Clone, Debug)]
pub struct PutOutcome {
    /// The cluster now.
    pub cluster: ClusterRecord,
    /// The operation started (or the one still running for an identical spec).
    pub operation: Option<OperationRecord>,
    /// True when the cluster was created by this call.
    pub created: bool,
}

/// A cluster with its workloads and latest operation, for reads.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// The row.
    pub cluster: ClusterRecord,
    /// Its workloads.
    pub workloads: Vec<WorkloadRecord>,
    /// Its latest operation.
    pub last_operation: Option<OperationId>,
    /// What clients are told of its authorities: a secured Kafka cluster's CA certificates
    /// once made (what clients trust), a rotation in progress.
    pub authorities: ClusterAuthorities,
}

/// The refusal of a REST change to a cluster a custom resource owns.
fn managed(cluster: &ClusterRecord) -> ServiceError {
    let owner = cluster.k8s_owner.as_ref();
    ServiceError::Conflict {
        code: ErrorCode::ManagedByKubernetes,
        message: format!(
            "cluster {:?} is managed by the Kubernetes resource {} {}/{}: change or delete that \
             resource instead",
            cluster.name,
            owner.map_or("HdiCluster", |o| o.kind.as_str()),
            cluster.workspace,
            owner.map_or(cluster.name.as_str(), |o| o.name.as_str()),
        ),
    }
}

pub(super) fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn check_name(field: &str, name: &str) -> Result<(), ServiceError> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

/// Checks a desired spec against the catalog, filling the default version.
///
/// # Errors
/// [`ServiceError::InvalidField`] naming the field.
pub fn validate_spec(kind: Kind, spec: &mut ClusterSpec) -> Result<(), ServiceError> {
    let offer = kind_spec(kind);
    if spec.version.is_empty() {
        spec.version = offer
            .versions
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned();
    }
    if !offer.versions.contains(&spec.version.as_str()) {
        return Err(invalid(
            "version",
            &format!(
                "must be one of {:?} for a {} cluster",
                offer.versions,
                kind.as_str()
            ),
        ));
    }
    if spec.pools.len() != 1 {
        return Err(invalid("node_pools", "must hold exactly one pool"));
    }
    let role = kind.pool_role();
    for (index, pool) in spec.pools.iter().enumerate() {
        let field = |name: &str| format!("node_pools[{index}].{name}");
        check_name(&field("name"), &pool.name)?;
        if pool.role != role {
            return Err(invalid(
                &field("role"),
                &format!(
                    "must be {} for a {} cluster",
                    match role {
                        PoolRole::Broker => "broker",
                        PoolRole::Executor => "executor",
                    },
                    kind.as_str()
                ),
            ));
        }
        if !(offer.min_replicas..=offer.max_replicas).contains(&pool.replicas) {
            return Err(invalid(
                &field("replicas"),
                &format!(
                    "must be between {} and {}",
                    offer.min_replicas, offer.max_replicas
                ),
            ));
        }
        if size_spec(&pool.size).is_none() {
            return Err(invalid(
                &field("size"),
                "is not a size of GET /v1/capabilities (small, medium, large)",
            ));
        }
        if !(1..=MAX_STORAGE_GIB).contains(&pool.storage_gib) {
            return Err(invalid(
                &field("storage_gib"),
                &format!("must be between 1 and {MAX_STORAGE_GIB}"),
            ));
        }
    }
    if let Some(key) = spec.config.keys().next() {
        return Err(invalid(
            &format!("config.{key}"),
            "is not a known cluster setting (none are settable yet)",
        ));
    }
    validate_security(kind, &mut spec.security)
}

/// Checks a Kafka cluster's security: authorization needs authentication, mechanisms are
/// distinct; everything off is stored as `None` (the same as clusters stored before security).
fn validate_security(kind: Kind, security: &mut Option<KafkaSecurity>) -> Result<(), ServiceError> {
    let Some(given) = security.as_mut() else {
        return Ok(());
    };
    if kind != Kind::Kafka {
        return Err(invalid("security", "is for Kafka clusters only"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, mechanism) in given.mechanisms.iter().enumerate() {
        if !seen.insert(mechanism.as_str()) {
            return Err(invalid(
                &format!("security.authentication[{index}]"),
                "is listed twice",
            ));
        }
    }
    if given.mechanisms.iter().any(|m| m == "OAUTHBEARER") && !given.has_scram() {
        return Err(invalid(
            "security.authentication",
            "OAUTHBEARER needs a SCRAM mechanism beside it (Kafka users and jobs use SCRAM)",
        ));
    }
    if given.authorization && given.mechanisms.is_empty() {
        return Err(invalid(
            "security.authorization",
            "needs authentication: without it every client is anonymous",
        ));
    }
    if !given.tls && given.mechanisms.is_empty() {
        *security = None;
    }
    Ok(())
}

impl Service {
    /// Rotates the certificates of a Kafka cluster's brokers now (their quorum and Kafka listener
    /// certificates; the authorities stay): each is re-issued the next time its node fetches
    /// its assignment, and the brokers reload them without a restart. How many brokers have
    /// certificates to renew.
    ///
    /// # Errors
    /// `not_found`, `not_a_kafka_cluster`, `forbidden` below operator.
    pub async fn cluster_certificates_rotate(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
    ) -> Result<u64, ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            let ws = self.workspace_get_unchecked(workspace).await?;
            let record = self.kafka_record(&ws, cluster).await?;
            Ok(self.store.cluster_certificates_due(record.id).await?)
        }
        .await;
        self.audited(
            &caller.username,
            "cluster.rotate_certificates",
            format!("workspaces/{workspace}/clusters/{cluster}"),
            result,
        )
        .await
    }

    /// Starts rotating a Kafka cluster's authorities (its Kafka CA and its quorum CA): new ones
    /// are made and trusted beside the current ones at once (brokers reload their trust without
    /// a restart; clients are given both certificates), start signing after `trust_period` and
    /// once every broker's node has applied the new trust,
    /// when every broker certificate is issued again by them, and the old ones are dropped once
    /// the brokers have loaded those ([`crate::reconcile`] moves the phases on). The rotation
    /// and the certificates clients must trust from now on (TLS clusters).
    ///
    /// # Errors
    /// `not_found`, `not_a_kafka_cluster`, `forbidden` below operator, `invalid_field` for a
    /// trust period out of range, `conflict` while a rotation runs or before the cluster has
    /// authorities.
    pub async fn cluster_authorities_rotate(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        trust_period: Option<u64>,
    ) -> Result<(AuthorityRotationRecord, Option<String>), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            let seconds = trust_period.unwrap_or(DEFAULT_TRUST_PERIOD_SECONDS);
            if !(1..=MAX_TRUST_PERIOD_SECONDS).contains(&seconds) {
                return Err(invalid(
                    "trust_period_seconds",
                    &format!("must be 1 to {MAX_TRUST_PERIOD_SECONDS} seconds"),
                ));
            }
            let ws = self.workspace_get_unchecked(workspace).await?;
            let record = self.kafka_record(&ws, cluster).await?;
            let failed = |e: hdi_pki::PkiError| ServiceError::Upstream {
                code: ErrorCode::Internal,
                message: format!("cannot make a certificate authority: {e}"),
            };
            // A label of its own: two authorities of one cluster never share a subject.
            let now = chrono::Utc::now();
            let label = format!(
                "{} ({})",
                record.id,
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let quorum = hdi_pki::Authority::generate_for(&label, hdi_pki::Purpose::Quorum)
                .map_err(failed)?;
            let kafka = hdi_pki::Authority::generate_for(&label, hdi_pki::Purpose::Kafka)
                .map_err(failed)?;
            let at = now
                + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
            let next = NextAuthorities {
                quorum: (&quorum.cert_pem, &quorum.key_pem),
                kafka: (&kafka.cert_pem, &kafka.key_pem),
            };
            match self
                .store
                .authority_rotation_start(record.id, &next, at)
                .await?
            {
                RotationStart::Started => {}
                RotationStart::InProgress => {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::RotationInProgress,
                        message: format!("the authorities of {cluster:?} are already rotating"),
                    });
                }
                RotationStart::NoAuthority => {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::ClusterNotReady,
                        message: format!(
                            "cluster {cluster:?} has no certificate authority yet (its brokers are being placed)"
                        ),
                    });
                }
            }
            self.poke.notify_one();
            let trust = self
                .store
                .cluster_authorities(&[record.id])
                .await?
                .remove(&record.id)
                .unwrap_or_default();
            let tls = record.spec.security.as_ref().is_some_and(|s| s.tls);
            let rotation = AuthorityRotationRecord {
                phase: AuthorityPhase::Trusting,
                at,
            };
            Ok((rotation, trust.kafka_trust.filter(|_| tls)))
        }
        .await;
        self.audited(
            &caller.username,
            "cluster.rotate_authorities",
            format!("workspaces/{workspace}/clusters/{cluster}"),
            result,
        )
        .await
    }

    /// Creates a cluster or replaces its spec (idempotent: an identical spec changes nothing).
    ///
    /// # Errors
    /// `invalid_field`, `not_found` (workspace), `precondition_failed` (If-Match),
    /// `operation_in_progress`, `cluster_deleting`.
    pub async fn cluster_put(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        kind: Kind,
        spec: ClusterSpec,
        if_match: Option<&str>,
    ) -> Result<PutOutcome, ServiceError> {
        let actor = caller.username.as_str();
        let result = self
            .cluster_put_inner(caller, workspace, name, kind, spec, if_match, false, None)
            .await;
        let action = match &result {
            Ok(outcome) if outcome.created => "cluster.create",
            _ => "cluster.update",
        };
        self.audited(
            actor,
            action,
            format!("workspaces/{workspace}/clusters/{name}"),
            result,
        )
        .await
    }

    /// [`Service::cluster_put`] for the Kubernetes operator: the cluster is (or becomes) owned
    /// by the custom resource `owner`, and a smaller pool drains first when `drain`.
    ///
    /// # Errors
    /// As [`Service::cluster_put`], plus `brokers_hold_partitions`, `below_quorum`, and
    /// `not_managed_by_kubernetes` when a cluster of that name was made through REST.
    pub async fn cluster_put_managed(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        managed: ManagedSpec,
    ) -> Result<PutOutcome, ServiceError> {
        let actor = caller.username.as_str();
        let result = self
            .cluster_put_inner(
                caller,
                workspace,
                name,
                managed.kind,
                managed.spec,
                None,
                managed.drain,
                Some(&managed.owner),
            )
            .await;
        let action = match &result {
            Ok(outcome) if outcome.created => "cluster.create",
            _ => "cluster.update",
        };
        self.audited(
            actor,
            action,
            format!("workspaces/{workspace}/clusters/{name}"),
            result,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn cluster_put_inner(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        kind: Kind,
        mut spec: ClusterSpec,
        if_match: Option<&str>,
        drain: bool,
        owner: Option<&K8sOwner>,
    ) -> Result<PutOutcome, ServiceError> {
        let actor = caller.username.as_str();
        let ws = self.authorize(caller, workspace, Role::Operator).await?;
        check_name("name", name)?;
        validate_spec(kind, &mut spec)?;
        spec.drain = false;
        for _ in 0..3 {
            let existing = self.store.cluster_get(ws.id, name).await?;
            let Some(existing) = existing else {
                if if_match.is_some_and(|tag| tag != "*") {
                    return Err(ServiceError::PreconditionFailed {
                        message: format!(
                            "cluster {name:?} does not exist, so If-Match cannot match"
                        ),
                    });
                }
                let op = NewOperation {
                    id: OperationId::new_v4(),
                    kind: OperationKind::Create,
                    created_by: actor.to_owned(),
                };
                match self
                    .store
                    .cluster_insert(ws.id, name, kind, &spec, &op, owner)
                    .await?
                {
                    Some((cluster, operation)) => {
                        return Ok(PutOutcome {
                            cluster,
                            operation: Some(operation),
                            created: true,
                        });
                    }
                    None => continue,
                }
            };
            check_if_match(&existing, if_match)?;
            match (owner, &existing.k8s_owner) {
                (None, Some(_)) => return Err(managed(&existing)),
                (Some(_), None) => {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::NotManagedByKubernetes,
                        message: format!(
                            "cluster {name:?} was made through the REST API, not by this \
                             custom resource: delete it there, or name the resource otherwise"
                        ),
                    });
                }
                (Some(new), Some(old)) if new.uid != old.uid => {
                    self.store.cluster_set_k8s_owner(existing.id, new).await?;
                }
                _ => {}
            }
            if existing.deleting {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::ClusterDeleting,
                    message: format!("cluster {name:?} is being deleted"),
                });
            }
            if existing.kind != kind {
                return Err(invalid("kind", "cannot change after creation"));
            }
            if existing.spec.security != spec.security {
                return Err(invalid(
                    "security",
                    "cannot change after creation (the brokers' listener is fixed)",
                ));
            }
            let mut current = existing.spec.clone();
            current.drain = false;
            if current == spec {
                let operation = self.store.operation_running(existing.id).await?;
                return Ok(PutOutcome {
                    cluster: existing,
                    operation,
                    created: false,
                });
            }
            let resize_only = current.pools.len() == spec.pools.len()
                && current.pools.iter().zip(&spec.pools).all(|(a, b)| {
                    a.name == b.name
                        && a.size == b.size
                        && a.storage_gib == b.storage_gib
                        && a.role == b.role
                });
            if resize_only {
                self.check_scale_in(&existing, spec.replicas(), drain)
                    .await?;
            } else if current.pools != spec.pools {
                return Err(invalid(
                    "node_pools",
                    "only replicas can change after creation (size, storage and names are fixed)",
                ));
            }
            // A PUT that keeps the size keeps a drain in progress; a new size drains only when
            // asked (the operator's `drain`; a REST PUT never does).
            if current.replicas() == spec.replicas() {
                spec.drain = existing.spec.drain;
            } else {
                spec.drain = drain;
            }
            let op = NewOperation {
                id: OperationId::new_v4(),
                kind: if resize_only && current.replicas() != spec.replicas() {
                    OperationKind::Resize
                } else {
                    OperationKind::Update
                },
                created_by: actor.to_owned(),
            };
            match self
                .store
                .cluster_change(existing.id, existing.generation, &spec, false, &op, false)
                .await?
            {
                SpecChange::Done(done) => {
                    let (cluster, operation) = *done;
                    return Ok(PutOutcome {
                        cluster,
                        operation: Some(operation),
                        created: false,
                    });
                }
                SpecChange::Busy(running) => return Err(busy(&running)),
                SpecChange::Stale => continue,
            }
        }
        Err(ServiceError::Conflict {
            code: ErrorCode::ConcurrentChange,
            message: format!("cluster {name:?} changed concurrently; retry"),
        })
    }

    /// Resizes a pool or toggles deletion protection.
    ///
    /// # Errors
    /// As [`Service::cluster_put`], plus `brokers_hold_partitions` and `below_quorum`.
    pub async fn cluster_patch(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        patch: ClusterPatchInput,
        if_match: Option<&str>,
    ) -> Result<(ClusterRecord, OperationRecord), ServiceError> {
        let actor = caller.username.as_str();
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Operator).await?;
            let existing = self.cluster_record(&ws, name).await?;
            check_if_match(&existing, if_match)?;
            if existing.k8s_owner.is_some() && caller.username != OPERATOR_USER {
                return Err(managed(&existing));
            }
            if existing.deleting {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::ClusterDeleting,
                    message: format!("cluster {name:?} is being deleted"),
                });
            }
            let mut spec = existing.spec.clone();
            for (index, (pool, replicas)) in patch.pools.iter().enumerate() {
                let Some(target) = spec.pools.iter_mut().find(|p| &p.name == pool) else {
                    return Err(invalid(
                        &format!("node_pools[{index}].name"),
                        &format!("names no pool of cluster {name:?}"),
                    ));
                };
                target.replicas = *replicas;
            }
            if let Some(protect) = patch.deletion_protection {
                spec.deletion_protection = protect;
            }
            // Only a resize says whether to drain; a patch of other fields keeps the drain of a
            // resize still converging.
            if !patch.pools.is_empty() {
                spec.drain = patch.drain;
            }
            validate_spec(existing.kind, &mut spec)?;
            if patch.pools.is_empty() && patch.deletion_protection.is_none() {
                return Err(invalid("node_pools", "the patch changes nothing"));
            }
            self.check_scale_in(&existing, spec.replicas(), patch.drain)
                .await?;
            let op = NewOperation {
                id: OperationId::new_v4(),
                kind: if spec.replicas() != existing.spec.replicas() {
                    OperationKind::Resize
                } else {
                    OperationKind::Update
                },
                created_by: actor.to_owned(),
            };
            let change = self
                .store
                .cluster_change(existing.id, existing.generation, &spec, false, &op, false)
                .await?;
            changed(change, name)
        }
        .await;
        self.audited(
            actor,
            "cluster.resize",
            format!("workspaces/{workspace}/clusters/{name}"),
            result,
        )
        .await
    }

    /// Deletes a cluster (refused while deletion protection is on). A running operation is
    /// superseded.
    ///
    /// # Errors
    /// `not_found`, `deletion_protected`, `precondition_failed`.
    pub async fn cluster_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(ClusterRecord, OperationRecord), ServiceError> {
        let actor = caller.username.as_str();
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Operator).await?;
            let existing = self.cluster_record(&ws, name).await?;
            check_if_match(&existing, if_match)?;
            if existing.k8s_owner.is_some() && caller.username != OPERATOR_USER {
                return Err(managed(&existing));
            }
            if existing.spec.deletion_protection {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::DeletionProtected,
                    message: format!(
                        "cluster {name:?} has deletion_protection on; PATCH it off first"
                    ),
                });
            }
            // A source is refused while a link reads it; a target takes its links with it (they
            // live in its brokers' quorum).
            let links = self.store.links_of_cluster(existing.id).await?;
            if let Some(link) = links.iter().find(|l| l.source_cluster_id == existing.id) {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::ClusterHasLinks,
                    message: format!(
                        "cluster {name:?} is the source of replication link {:?}: fail it over \
                         and delete it, or delete it, first",
                        link.name
                    ),
                });
            }
            if existing.deleting
                && let Some(op) = self.store.operation_running(existing.id).await?
            {
                return Ok((existing, op));
            }
            let op = NewOperation {
                id: OperationId::new_v4(),
                kind: OperationKind::Delete,
                created_by: actor.to_owned(),
            };
            let change = self
                .store
                .cluster_change(
                    existing.id,
                    existing.generation,
                    &existing.spec,
                    true,
                    &op,
                    true,
                )
                .await?;
            changed(change, name)
        }
        .await;
        self.audited(
            actor,
            "cluster.delete",
            format!("workspaces/{workspace}/clusters/{name}"),
            result,
        )
        .await
    }

    async fn cluster_record(
        &self,
        ws: &WorkspaceRecord,
        name: &str,
    ) -> Result<ClusterRecord, ServiceError> {
        self.store
            .cluster_get(ws.id, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("cluster {name:?} in workspace {:?}", ws.name),
            })
    }

    /// Refuses a scale-in below the quorum, or off brokers that hold partitions without drain.
    async fn check_scale_in(
        &self,
        cluster: &ClusterRecord,
        replicas: u32,
        drain: bool,
    ) -> Result<(), ServiceError> {
        if cluster.kind != Kind::Kafka || replicas >= cluster.spec.replicas() {
            return Ok(());
        }
        if cluster.voters > 0 && replicas < cluster.voters {
            return Err(ServiceError::Conflict {
                code: ErrorCode::BelowQuorum,
                message: format!(
                    "the cluster's first {} brokers are its metadata quorum; it cannot shrink below {}",
                    cluster.voters, cluster.voters
                ),
            });
        }
        if drain {
            return Ok(());
        }
        let Some(bootstrap) = cluster.status.bootstrap_servers.clone() else {
            return Ok(());
        };
        let security = super::kafka_user::admin_security(&self.store, cluster).await?;
        let admin = KafkaAdmin::new(
            bootstrap.split(',').map(str::to_owned).collect(),
            Duration::from_secs(3),
        )
        .with_security(security);
        let Ok(metadata) = admin.metadata().await else {
            // The reconciler checks again before it removes anything.
            return Ok(());
        };
        let removed = |id: i32| u32::try_from(id).is_ok_and(|id| id > replicas);
        let held: Vec<String> = metadata
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .filter(|(_, p)| p.replicas.iter().any(|r| removed(*r)))
            .map(|(t, p)| format!("{}-{}", t.name, p.partition))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = held.iter().take(5).map(String::as_str).collect();
        Err(ServiceError::Conflict {
            code: ErrorCode::BrokersHoldPartitions,
            message: format!(
                "brokers above {replicas} hold {} partition replica(s) ({}{}); resize with drain to move them first",
                held.len(),
                shown.join(", "),
                if held.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        })
    }

    /// One cluster with its workloads, if the caller may view its workspace.
    ///
    /// # Errors
    /// `not_found` (also when the caller has no role in the workspace).
    pub async fn cluster_get_for(
        &self,
        caller: &Identity,
        workspace: &str,
        name: &str,
    ) -> Result<ClusterView, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        self.cluster_get_unchecked(workspace, name).await
    }

    /// One cluster with its workloads, without an access check (for other service calls that
    /// made theirs).
    ///
    /// # Errors
    /// `not_found`.
    pub(super) async fn cluster_get_unchecked(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<ClusterView, ServiceError> {
        let ws = self.workspace_get_unchecked(workspace).await?;
        let cluster = self.cluster_record(&ws, name).await?;
        self.cluster_view(cluster).await
    }

    async fn cluster_view(&self, cluster: ClusterRecord) -> Result<ClusterView, ServiceError> {
        let workloads = self
            .store
            .workloads_of_cluster(cluster.id, self.config.node_ready_timeout)
            .await?;
        let last_operation = self
            .store
            .operation_latest(cluster.id)
            .await?
            .map(|op| op.id);
        let authorities = self
            .store
            .cluster_authorities(&[cluster.id])
            .await?
            .remove(&cluster.id)
            .unwrap_or_default();
        Ok(ClusterView {
            cluster,
            workloads,
            last_operation,
            authorities,
        })
    }

    /// A page of a workspace's clusters.
    ///
    /// # Errors
    /// `not_found`, `invalid_field`.
    pub async fn clusters_list(
        &self,
        caller: &Identity,
        workspace: &str,
        page: PageRequest,
    ) -> Result<(Vec<ClusterView>, Option<String>), ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let size = page_size(&page)?;
        let after = page
            .page_token
            .as_deref()
            .map(super::node::decode_page_token)
            .transpose()?;
        let items = self
            .store
            .clusters_list(ws.id, after.as_deref(), size + 1)
            .await?;
        let (items, next) = paginate(items, size, |c| super::node::encode_page_token(&c.name));
        // Four queries per page, not three per cluster.
        let ids: Vec<ClusterId> = items.iter().map(|c| c.id).collect();
        let mut workloads = self
            .store
            .workloads_of_clusters(&ids, self.config.node_ready_timeout)
            .await?;
        let latest: std::collections::HashMap<ClusterId, OperationId> = self
            .store
            .operations_latest_ids(&ids)
            .await?
            .into_iter()
            .collect();
        let mut authorities = self.store.cluster_authorities(&ids).await?;
        let mut views = Vec::with_capacity(items.len());
        for cluster in items {
            let mine: Vec<WorkloadRecord>;
            (mine, workloads) = workloads
                .into_iter()
                .partition(|w| w.cluster_id == cluster.id);
            views.push(ClusterView {
                last_operation: latest.get(&cluster.id).copied(),
                authorities: authorities.remove(&cluster.id).unwrap_or_default(),
                workloads: mine,
                cluster,
            });
        }
        Ok((views, next))
    }
}

fn check_if_match(cluster: &ClusterRecord, if_match: Option<&str>) -> Result<(), ServiceError> {
    match if_match {
        None | Some("*") => Ok(()),
        Some(tag) if tag.split(',').any(|t| t.trim() == cluster.etag()) => Ok(()),
        Some(tag) => Err(ServiceError::PreconditionFailed {
            message: format!(
                "If-Match {tag} does not match the cluster's current ETag {}",
                cluster.etag()
            ),
        }),
    }
}

/// The answer to a PATCH or DELETE from the store's verdict on the change.
fn changed(
    change: SpecChange,
    name: &str,
) -> Result<(ClusterRecord, OperationRecord), ServiceError> {
    match change {
        SpecChange::Done(done) => Ok(*done),
        SpecChange::Busy(running) => Err(busy(&running)),
        SpecChange::Stale => Err(ServiceError::Conflict {
            code: ErrorCode::ConcurrentChange,
            message: format!("cluster {name:?} changed concurrently; retry"),
        }),
    }
}

fn busy(running: &OperationRecord) -> ServiceError {
    ServiceError::Conflict {
        code: ErrorCode::OperationInProgress,
        message: format!(
            "operation {} ({}) is still running on cluster {:?}; wait for it or delete the cluster",
            running.id,
            running.kind.as_str(),
            running.cluster_name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(tls: bool, mechanisms: &[&str], authorization: bool) -> Option<KafkaSecurity> {
        Some(KafkaSecurity {
            tls,
            mechanisms: mechanisms.iter().map(|m| (*m).to_owned()).collect(),
            authorization,
        })
    }

    fn field(result: Result<(), ServiceError>) -> Option<String> {
        match result {
            Err(ServiceError::InvalidField { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn kafka_security_is_checked_and_plaintext_is_stored_as_none() {
        let mut ok = security(true, &["SCRAM-SHA-512", "OAUTHBEARER"], true);
        assert!(validate_security(Kind::Kafka, &mut ok).is_ok());
        assert!(ok.is_some());
        let mut plain = security(false, &[], false);
        assert!(validate_security(Kind::Kafka, &mut plain).is_ok());
        assert_eq!(plain, None);
        let mut oauth_only = security(true, &["OAUTHBEARER"], true);
        assert_eq!(
            field(validate_security(Kind::Kafka, &mut oauth_only)).as_deref(),
            Some("security.authentication")
        );
        let mut anonymous_acls = security(true, &[], true);
        assert_eq!(
            field(validate_security(Kind::Kafka, &mut anonymous_acls)).as_deref(),
            Some("security.authorization")
        );
        let mut twice = security(true, &["SCRAM-SHA-512", "SCRAM-SHA-512"], true);
        assert_eq!(
            field(validate_security(Kind::Kafka, &mut twice)).as_deref(),
            Some("security.authentication[1]")
        );
        let mut spark = security(true, &["SCRAM-SHA-512"], true);
        assert_eq!(
            field(validate_security(Kind::Spark, &mut spark)).as_deref(),
            Some("security")
        );
    }
}
