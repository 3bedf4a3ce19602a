//! Kafka users of secured Kafka clusters and the ACLs the control plane keeps on them.
//!
//! A Kafka user is a SCRAM principal (`User:<name>`) of one cluster. Its password is made here,
//! set on the cluster as a salted credential (`AlterUserScramCredentials`) and shown once; hdi
//! stores only the user's name, ACLs and quotas. The ACLs are desired state: [`Service::kafka_acls_sync`]
//! (after every change, and periodically from the reconciler) makes the cluster's ACLs exactly
//! the union of its users' (the control plane owns every ACL of a managed cluster: one added
//! over Kafka by anyone else is removed). Users' client quotas are desired state the same way:
//! every `user=<name>` quota entity of the cluster is exactly its Kafka users' quotas.

use std::collections::{BTreeMap, BTreeSet};

use hdi_kafka_client::SaslLogin;
use hdi_kafka_client::scram::{Credential, Hash};

use super::topic::admin_error;
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::{AclBinding, AdminSecurity, KafkaAdmin, QuotaChange, UserQuotas};
use crate::model::{
    ClusterRecord, KAFKA_ADMIN_USER, KAFKA_JOBS_USER, KafkaAclSpec, KafkaQuotaSpec, KafkaUserRecord,
};
use crate::store::{Store, StoreError};

/// PBKDF2 iterations of Kafka users' credentials (Kafka's default is 4096).
const SCRAM_ITERATIONS: u32 = 8192;

/// How the control plane connects to `cluster` (`None`: PLAINTEXT).
///
/// # Errors
/// The store failing, or a secured cluster whose secrets are not made yet (`cluster_not_ready`).
pub(crate) async fn admin_security(
    store: &Store,
    cluster: &ClusterRecord,
) -> Result<Option<AdminSecurity>, ServiceError> {
    let Some(security) = &cluster.spec.security else {
        return Ok(None);
    };
    let not_ready = || ServiceError::Conflict {
        code: ErrorCode::ClusterNotReady,
        message: format!(
            "cluster {:?} has no Kafka credentials yet (its brokers are being placed)",
            cluster.name
        ),
    };
    let secrets = store
        .kafka_client_secrets(cluster.id)
        .await?
        .ok_or_else(not_ready)?;
    let tls = if security.tls {
        let config =
            hdi_pki::trust_config(&secrets.ca_trust).map_err(|e| ServiceError::Upstream {
                code: ErrorCode::Internal,
                message: format!("the cluster's Kafka CA is unusable: {e}"),
            })?;
        Some(std::sync::Arc::new(config))
    } else {
        None
    };
    let sasl = (!security.mechanisms.is_empty()).then(|| SaslLogin {
        mechanism: "SCRAM-SHA-512".to_owned(),
        username: KAFKA_ADMIN_USER.to_owned(),
        password: secrets.admin_password.expose().to_owned(),
    });
    Ok(Some(AdminSecurity { tls, sasl }))
}

fn resource_type(name: &str) -> Option<i8> {
    Some(match name {
        "topic" => 2,
        "group" => 3,
        "cluster" => 4,
        "transactional_id" => 5,
        _ => return None,
    })
}

fn operation(name: &str) -> Option<i8> {
    Some(match name {
        "all" => 2,
        "read" => 3,
        "write" => 4,
        "create" => 5,
        "delete" => 6,
        "alter" => 7,
        "describe" => 8,
        "describe_configs" => 10,
        "alter_configs" => 11,
        "idempotent_write" => 12,
        _ => return None,
    })
}

/// The ACL bindings the users' specs ask for, in Kafka's numbers (host `*`). Entries whose
/// names are unknown cannot occur (the API's types admit only known ones) and are skipped.
pub(crate) fn desired_bindings(users: &[KafkaUserRecord]) -> BTreeSet<AclBinding> {
    let mut bindings = BTreeSet::new();
    for user in users {
        for acl in &user.acls {
            let (Some(resource_type), pattern_type, permission) = (
                resource_type(&acl.resource_type),
                if acl.pattern == "prefixed" { 4 } else { 3 },
                if acl.permission == "deny" { 2 } else { 3 },
            ) else {
                continue;
            };
            for op in acl.operations.iter().filter_map(|o| operation(o)) {
                bindings.insert(AclBinding {
                    resource_type,
                    resource_name: acl.resource_name.clone(),
                    pattern_type,
                    principal: format!("User:{}", user.name),
                    host: "*".to_owned(),
                    operation: op,
                    permission,
                });
            }
        }
    }
    bindings
}

/// Checks a Kafka user's name and ACLs.
fn validate_user(name: &str, acls: &[KafkaAclSpec]) -> Result<(), ServiceError> {
    let invalid = |field: String, message: &str| ServiceError::InvalidField {
        field,
        message: message.to_owned(),
    };
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "name".into(),
            "must be 1-64 letters, digits, '.', '_' or '-'",
        ));
    }
    if name.starts_with("hdi-") {
        return Err(invalid(
            "name".into(),
            "names starting with 'hdi-' are the platform's",
        ));
    }
    if acls.len() > 100 {
        return Err(invalid("acls".into(), "at most 100 entries"));
    }
    for (index, acl) in acls.iter().enumerate() {
        let field = |name: &str| format!("acls[{index}].{name}");
        if acl.resource_name.is_empty() || acl.resource_name.len() > 249 {
            return Err(invalid(field("resource_name"), "must be 1-249 characters"));
        }
        if acl.resource_type == "cluster" && acl.resource_name != "kafka-cluster" {
            return Err(invalid(
                field("resource_name"),
                "the cluster resource is named 'kafka-cluster'",
            ));
        }
        if acl.pattern == "prefixed" && acl.resource_name == "*" {
            return Err(invalid(
                field("resource_name"),
                "'*' is literal: a prefixed pattern needs a prefix",
            ));
        }
        if acl.operations.is_empty() {
            return Err(invalid(field("operations"), "must name at least one"));
        }
    }
    Ok(())
}

/// The largest byte-rate quota (a terabyte per second: beyond it, no limit is meant).
const MAX_BYTE_RATE: u64 = 1_000_000_000_000;
/// The largest request quota (100 threads' time).
const MAX_REQUEST_PERCENTAGE: u64 = 10_000;

/// Checks a Kafka user's quotas.
fn validate_quotas(quotas: &KafkaQuotaSpec) -> Result<(), ServiceError> {
    for (key, value) in quotas.entries() {
        let most = if key == "request_percentage" {
            MAX_REQUEST_PERCENTAGE
        } else {
            MAX_BYTE_RATE
        };
        if !(1..=most).contains(&value) {
            return Err(ServiceError::InvalidField {
                field: format!("quotas.{key}"),
                message: format!("must be 1 to {most} (leave it out for no limit)"),
            });
        }
    }
    Ok(())
}

impl Service {
    /// The cluster of a Kafka-user call: a ready Kafka cluster with SCRAM, and its admin.
    async fn scram_cluster(
        &self,
        workspace: &str,
        cluster: &str,
    ) -> Result<(ClusterRecord, KafkaAdmin, Hash), ServiceError> {
        let (record, admin) = self
            .kafka_admin_of(workspace, cluster, "Kafka users")
            .await?;
        let hash = scram_hash(&record)
            .ok_or_else(|| ServiceError::Refused {
                code: ErrorCode::KafkaUsersUnsupported,
                message: format!(
                    "cluster {cluster:?} has no SCRAM authentication (spec.security), so it has no Kafka users"
                ),
            })?;
        Ok((record, admin, hash))
    }

    /// Sets a fresh password for `user` on the cluster; the password.
    async fn set_password(
        &self,
        cluster: &str,
        admin: &KafkaAdmin,
        hash: Hash,
        user: &str,
    ) -> Result<String, ServiceError> {
        let failed = |e: String| ServiceError::Upstream {
            code: ErrorCode::Internal,
            message: format!("cannot make a password: {e}"),
        };
        let password = crate::auth::new_kafka_password().map_err(|e| failed(e.to_string()))?;
        let credential = Credential::new(hash, &password, SCRAM_ITERATIONS).map_err(failed)?;
        admin
            .upsert_scram(user, &credential)
            .await
            .map_err(|e| admin_error(cluster, user, &[], e))?;
        Ok(password)
    }

    /// Creates a Kafka user with a new password (returned, shown once) and applies its ACLs.
    ///
    /// # Errors
    /// `invalid_field`, `not_found`, `forbidden`, `not_a_kafka_cluster`,
    /// `kafka_users_unsupported`, `cluster_not_ready`, `kafka_user_exists`,
    /// `cluster_unreachable`, `kafka_error`.
    pub async fn kafka_user_create(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        name: &str,
        acls: Vec<KafkaAclSpec>,
        quotas: KafkaQuotaSpec,
    ) -> Result<(KafkaUserRecord, String), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            validate_user(name, &acls)?;
            validate_quotas(&quotas)?;
            let (record, admin, hash) = self.scram_cluster(workspace, cluster).await?;
            // A Kafka user and an hdi user of one name would be one principal (OAUTHBEARER).
            if self.store.user_by_name(name).await?.is_some() {
                return Err(ServiceError::InvalidField {
                    field: "name".into(),
                    message:
                        "is an hdi user's name: people reach Kafka as themselves with OAUTHBEARER"
                            .into(),
                });
            }
            // The row first: a concurrent create of the same name stops here, before it can
            // overwrite this user's credential.
            let user = match self
                .store
                .kafka_user_insert(
                    record.id,
                    name,
                    hash.name(),
                    &acls,
                    &quotas,
                    &caller.username,
                )
                .await
            {
                Ok(user) => user,
                Err(StoreError::Conflict { .. }) => {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::KafkaUserExists,
                        message: format!("cluster {cluster:?} already has a Kafka user {name:?}"),
                    });
                }
                Err(other) => return Err(other.into()),
            };
            let password = match self.set_password(cluster, &admin, hash, name).await {
                Ok(password) => password,
                Err(error) => {
                    self.store.kafka_user_delete(record.id, name).await?;
                    return Err(error);
                }
            };
            self.kafka_acls_sync_with(&admin, &record).await?;
            let user = self
                .store
                .kafka_user_get(record.id, name)
                .await?
                .unwrap_or(user);
            Ok((user, password))
        }
        .await;
        self.audited(
            &caller.username,
            "kafka_user.create",
            format!("workspaces/{workspace}/clusters/{cluster}/kafka-users/{name}"),
            result,
        )
        .await
    }

    /// A cluster's Kafka users by name.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `not_a_kafka_cluster`.
    pub async fn kafka_users_list(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
    ) -> Result<Vec<KafkaUserRecord>, ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let record = self.kafka_record(&ws, cluster).await?;
        Ok(self.store.kafka_users_list(record.id).await?)
    }

    /// One Kafka user.
    ///
    /// # Errors
    /// `not_found`, `forbidden`, `not_a_kafka_cluster`.
    pub async fn kafka_user_get(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<KafkaUserRecord, ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let record = self.kafka_record(&ws, cluster).await?;
        self.store
            .kafka_user_get(record.id, name)
            .await?
            .ok_or_else(|| user_not_found(cluster, name))
    }

    /// Replaces a Kafka user's ACLs, its quotas or both (`None` keeps them) and applies them.
    ///
    /// # Errors
    /// As [`Service::kafka_user_create`], `not_found` for an unknown user.
    pub async fn kafka_user_update(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        name: &str,
        acls: Option<Vec<KafkaAclSpec>>,
        quotas: Option<KafkaQuotaSpec>,
    ) -> Result<KafkaUserRecord, ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            validate_user(name, acls.as_deref().unwrap_or_default())?;
            if let Some(quotas) = &quotas {
                validate_quotas(quotas)?;
            }
            let (record, admin, _) = self.scram_cluster(workspace, cluster).await?;
            if !self
                .store
                .kafka_user_update(record.id, name, acls.as_deref(), quotas.as_ref())
                .await?
            {
                return Err(user_not_found(cluster, name));
            }
            self.kafka_acls_sync_with(&admin, &record).await?;
            self.store
                .kafka_user_get(record.id, name)
                .await?
                .ok_or_else(|| user_not_found(cluster, name))
        }
        .await;
        self.audited(
            &caller.username,
            "kafka_user.update",
            format!("workspaces/{workspace}/clusters/{cluster}/kafka-users/{name}"),
            result,
        )
        .await
    }

    /// Gives a Kafka user a new password (returned, shown once); the old one stops working.
    ///
    /// # Errors
    /// As [`Service::kafka_user_create`], `not_found` for an unknown user.
    pub async fn kafka_user_rotate(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(KafkaUserRecord, String), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            let (record, admin, hash) = self.scram_cluster(workspace, cluster).await?;
            if self.store.kafka_user_get(record.id, name).await?.is_none() {
                return Err(user_not_found(cluster, name));
            }
            let password = self.set_password(cluster, &admin, hash, name).await?;
            self.store.kafka_user_password_set(record.id, name).await?;
            let user = self
                .store
                .kafka_user_get(record.id, name)
                .await?
                .ok_or_else(|| user_not_found(cluster, name))?;
            Ok((user, password))
        }
        .await;
        self.audited(
            &caller.username,
            "kafka_user.rotate",
            format!("workspaces/{workspace}/clusters/{cluster}/kafka-users/{name}"),
            result,
        )
        .await
    }

    /// Deletes a Kafka user: its credential and ACLs leave the cluster.
    ///
    /// # Errors
    /// As [`Service::kafka_user_create`], `not_found` for an unknown user.
    pub async fn kafka_user_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            let (record, admin, hash) = self.scram_cluster(workspace, cluster).await?;
            if !self.store.kafka_user_delete(record.id, name).await? {
                return Err(user_not_found(cluster, name));
            }
            admin
                .delete_scram(name, hash.kafka_type())
                .await
                .map_err(|e| admin_error(cluster, name, &[], e))?;
            self.kafka_acls_sync_with(&admin, &record).await
        }
        .await;
        self.audited(
            &caller.username,
            "kafka_user.delete",
            format!("workspaces/{workspace}/clusters/{cluster}/kafka-users/{name}"),
            result,
        )
        .await
    }

    /// The Kafka cluster `cluster` of workspace `ws`.
    ///
    /// # Errors
    /// `not_found`, `not_a_kafka_cluster`.
    pub(super) async fn kafka_record(
        &self,
        ws: &crate::model::WorkspaceRecord,
        cluster: &str,
    ) -> Result<ClusterRecord, ServiceError> {
        let record = self
            .store
            .cluster_get(ws.id, cluster)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("cluster {cluster:?} in workspace {:?}", ws.name),
            })?;
        if record.kind != crate::model::Kind::Kafka {
            return Err(ServiceError::Refused {
                code: ErrorCode::NotAKafkaCluster,
                message: format!("cluster {cluster:?} is a spark cluster, not a Kafka cluster"),
            });
        }
        Ok(record)
    }

    async fn kafka_acls_sync_with(
        &self,
        admin: &KafkaAdmin,
        cluster: &ClusterRecord,
    ) -> Result<(), ServiceError> {
        sync_acls(&self.store, admin, cluster).await
    }
}

/// The ACLs of [`KAFKA_JOBS_USER`]: read, write and describe every topic, read every group,
/// describe the cluster and write idempotently.
pub(crate) fn jobs_bindings() -> Vec<AclBinding> {
    let binding = allow_literal(KAFKA_JOBS_USER);
    vec![
        binding(2, "*", 3),
        binding(2, "*", 4),
        binding(2, "*", 8),
        binding(3, "*", 3),
        binding(3, "*", 8),
        binding(4, "kafka-cluster", 8),
        binding(4, "kafka-cluster", 12),
    ]
}

/// The ACLs of an hdi user reaching the cluster with its access token (OAUTHBEARER), by its
/// role in the cluster's workspace (platform administrators as operators): a viewer reads and
/// describes every topic and group; an operator or admin may do everything with topics,
/// groups and transactional ids, and describe the cluster and write idempotently (never alter
/// ACLs or the cluster: Kafka users are managed through the API).
pub(crate) fn role_bindings(username: &str, role: Role) -> Vec<AclBinding> {
    let binding = allow_literal(username);
    match role {
        Role::Viewer => vec![
            binding(2, "*", 3),
            binding(2, "*", 8),
            binding(2, "*", 10),
            binding(3, "*", 3),
            binding(3, "*", 8),
        ],
        Role::Operator | Role::Admin => vec![
            binding(2, "*", 2),
            binding(3, "*", 2),
            binding(5, "*", 2),
            binding(4, "kafka-cluster", 8),
            binding(4, "kafka-cluster", 12),
        ],
    }
}

/// Makes bindings that allow `User:<username>` an operation (Kafka's code) on a literal
/// resource (type code, name) from any host.
fn allow_literal(username: &str) -> impl Fn(i8, &str, i8) -> AclBinding {
    let principal = format!("User:{username}");
    move |resource_type, name, operation| AclBinding {
        resource_type,
        resource_name: name.to_owned(),
        pattern_type: 3,
        principal: principal.clone(),
        host: "*".to_owned(),
        operation,
        permission: 3,
    }
}

/// Gives a SCRAM cluster its [`KAFKA_JOBS_USER`] credential once (the password is made and
/// stored first, so a retry sets the same one).
async fn ensure_jobs_user(
    store: &Store,
    admin: &KafkaAdmin,
    cluster: &ClusterRecord,
    hash: Hash,
) -> Result<(), ServiceError> {
    let candidate = crate::auth::new_kafka_password().map_err(|e| ServiceError::Upstream {
        code: ErrorCode::Internal,
        message: format!("cannot make a password: {e}"),
    })?;
    let (password, ready) = store.kafka_jobs_login(cluster.id, &candidate).await?;
    if ready {
        return Ok(());
    }
    let credential = Credential::new(hash, password.expose(), SCRAM_ITERATIONS).map_err(|e| {
        ServiceError::Upstream {
            code: ErrorCode::Internal,
            message: format!("cannot make a credential: {e}"),
        }
    })?;
    admin
        .upsert_scram(KAFKA_JOBS_USER, &credential)
        .await
        .map_err(|e| admin_error(&cluster.name, KAFKA_JOBS_USER, &[], e))?;
    store.kafka_jobs_ready(cluster.id).await?;
    tracing::info!(cluster = %cluster.name, "jobs' Kafka user created");
    Ok(())
}

/// The SCRAM hash of a cluster's first SCRAM mechanism.
pub(crate) fn scram_hash(cluster: &ClusterRecord) -> Option<Hash> {
    let security = cluster.spec.security.as_ref()?;
    let mechanism = security
        .mechanisms
        .iter()
        .find(|m| m.starts_with("SCRAM-"))?;
    Some(if mechanism == "SCRAM-SHA-256" {
        Hash::Sha256
    } else {
        Hash::Sha512
    })
}

/// Keeps a secured cluster's principals: the jobs' user exists, (with authorization) the
/// cluster's ACLs are exactly its users', the jobs user's and those of the replication links
/// that read it (`service::link::link_bindings`; others are deleted first, then the missing
/// ones created), and its user quotas exactly its users' (after the ACLs); records
/// each user's generation as applied.
///
/// # Errors
/// The store, or the cluster refusing or not answering.
pub(crate) async fn sync_acls(
    store: &Store,
    admin: &KafkaAdmin,
    cluster: &ClusterRecord,
) -> Result<(), ServiceError> {
    let Some(security) = &cluster.spec.security else {
        return Ok(());
    };
    let hash = scram_hash(cluster);
    if let Some(hash) = hash {
        ensure_jobs_user(store, admin, cluster, hash).await?;
    }
    let name = cluster.name.as_str();
    let users = store.kafka_users_list(cluster.id).await?;
    if !security.authorization {
        sync_quotas(admin, name, &users).await?;
        return record_applied(store, &users).await;
    }
    let mut desired = desired_bindings(&users);
    // Replication links reading this cluster, and the write fence of stopped ones.
    let links = store.links_of_cluster(cluster.id).await?;
    desired.extend(super::link::link_bindings(&links, cluster.id));
    if hash.is_some() {
        desired.extend(jobs_bindings());
    }
    if security.has_oauth() {
        // People reach the cluster as themselves: their ACLs follow their roles.
        let mut roles: std::collections::BTreeMap<String, Role> = store
            .role_bindings_list(cluster.workspace_id)
            .await?
            .into_iter()
            .map(|b| (b.username, b.role))
            .collect();
        for admin in store.platform_admin_names().await? {
            roles.entry(admin).or_insert(Role::Operator);
        }
        for (username, role) in roles {
            desired.extend(role_bindings(&username, role));
        }
    }
    let actual: BTreeSet<AclBinding> = admin
        .describe_acls()
        .await
        .map_err(|e| admin_error(name, "", &[], e))?
        .into_iter()
        .collect();
    let extra: Vec<AclBinding> = actual.difference(&desired).cloned().collect();
    let missing: Vec<AclBinding> = desired.difference(&actual).cloned().collect();
    admin
        .delete_acls(&extra)
        .await
        .map_err(|e| admin_error(name, "", &[], e))?;
    admin
        .create_acls(&missing)
        .await
        .map_err(|e| admin_error(name, "", &[], e))?;
    if !extra.is_empty() || !missing.is_empty() {
        tracing::info!(
            cluster = name,
            removed = extra.len(),
            added = missing.len(),
            "Kafka ACLs synced"
        );
    }
    // After the ACLs: a quota the cluster refuses never holds up who may do what.
    sync_quotas(admin, name, &users).await?;
    record_applied(store, &users).await
}

/// Records each user's generation as applied.
async fn record_applied(store: &Store, users: &[KafkaUserRecord]) -> Result<(), ServiceError> {
    for user in users {
        if user.applied_generation < user.generation {
            store.kafka_user_applied(user.id, user.generation).await?;
        }
    }
    Ok(())
}

/// The changes that make the cluster's user quotas `actual` exactly `users`' quotas: keys set
/// to the users' values, and every other key of a user entity removed (quotas set over Kafka's
/// API to names that are not the cluster's Kafka users included: the spec is what holds).
pub(crate) fn quota_changes(users: &[KafkaUserRecord], actual: &UserQuotas) -> Vec<QuotaChange> {
    let mut desired: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for user in users {
        let entries: BTreeMap<&str, f64> = user
            .quotas
            .entries()
            .into_iter()
            .map(|(key, value)| (key, value as f64))
            .collect();
        if !entries.is_empty() {
            desired.insert(user.name.as_str(), entries);
        }
    }
    let mut names: BTreeSet<&str> = desired.keys().copied().collect();
    names.extend(actual.keys().map(String::as_str));
    let mut changes = Vec::new();
    for name in names {
        let want = desired.get(name);
        let have = actual.get(name);
        let mut ops = Vec::new();
        for (key, value) in want.into_iter().flatten() {
            if have.and_then(|h| h.get(*key)) != Some(value) {
                ops.push(((*key).to_owned(), Some(*value)));
            }
        }
        for key in have.into_iter().flat_map(BTreeMap::keys) {
            if want.is_none_or(|w| !w.contains_key(key.as_str())) {
                ops.push((key.clone(), None));
            }
        }
        if !ops.is_empty() {
            changes.push((name.to_owned(), ops));
        }
    }
    changes
}

/// Makes the cluster's user quotas exactly its Kafka users'.
async fn sync_quotas(
    admin: &KafkaAdmin,
    cluster: &str,
    users: &[KafkaUserRecord],
) -> Result<(), ServiceError> {
    let actual = admin
        .describe_user_quotas()
        .await
        .map_err(|e| admin_error(cluster, "", &[], e))?;
    let changes = quota_changes(users, &actual);
    if changes.is_empty() {
        return Ok(());
    }
    admin
        .alter_user_quotas(&changes)
        .await
        .map_err(|e| admin_error(cluster, "", &[], e))?;
    tracing::info!(cluster, users = changes.len(), "Kafka user quotas synced");
    Ok(())
}

fn user_not_found(cluster: &str, name: &str) -> ServiceError {
    ServiceError::NotFound {
        what: format!("Kafka user {name:?} in cluster {cluster:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClusterId;

    fn user(name: &str, acls: Vec<KafkaAclSpec>) -> KafkaUserRecord {
        KafkaUserRecord {
            id: crate::model::KafkaUserId::from_uuid(uuid::Uuid::nil()),
            cluster_id: ClusterId::from_uuid(uuid::Uuid::nil()),
            name: name.into(),
            mechanism: "SCRAM-SHA-512".into(),
            acls,
            quotas: KafkaQuotaSpec::default(),
            generation: 1,
            applied_generation: 0,
            created_by: "admin".into(),
            created_at: chrono::Utc::now(),
            password_set_at: chrono::Utc::now(),
        }
    }

    fn acl(kind: &str, name: &str, pattern: &str, ops: &[&str], permission: &str) -> KafkaAclSpec {
        KafkaAclSpec {
            resource_type: kind.into(),
            resource_name: name.into(),
            pattern: pattern.into(),
            operations: ops.iter().map(|o| (*o).to_owned()).collect(),
            permission: permission.into(),
        }
    }

    #[test]
    fn bindings_are_one_per_operation_in_kafkas_numbers() {
        let users = [
            user(
                "app",
                vec![
                    acl("topic", "pay-", "prefixed", &["read", "describe"], "allow"),
                    acl("group", "app", "literal", &["read"], "allow"),
                ],
            ),
            user(
                "ops",
                vec![acl("topic", "secret", "literal", &["all"], "deny")],
            ),
        ];
        let bindings: Vec<(i8, String, i8, String, i8, i8)> = desired_bindings(&users)
            .into_iter()
            .map(|b| {
                (
                    b.resource_type,
                    b.resource_name,
                    b.pattern_type,
                    b.principal,
                    b.operation,
                    b.permission,
                )
            })
            .collect();
        let expected = [
            (2, "pay-", 4, "User:app", 3, 3),
            (2, "pay-", 4, "User:app", 8, 3),
            (2, "secret", 3, "User:ops", 2, 2),
            (3, "app", 3, "User:app", 3, 3),
        ]
        .map(|(t, n, p, u, o, m)| (t, n.to_owned(), p, u.to_owned(), o, m));
        assert_eq!(bindings, expected);
    }

    #[test]
    fn names_and_acls_are_checked() {
        assert!(validate_user("orders-app.v2", &[]).is_ok());
        for bad in ["", "hdi-admin", "a b", "x:y", &"a".repeat(65)] {
            assert!(validate_user(bad, &[]).is_err(), "{bad:?}");
        }
        let err = validate_user(
            "a",
            &[acl("cluster", "other", "literal", &["alter"], "allow")],
        );
        assert!(
            matches!(err, Err(ServiceError::InvalidField { field, .. }) if field == "acls[0].resource_name")
        );
        let err = validate_user("a", &[acl("topic", "*", "prefixed", &["read"], "allow")]);
        assert!(err.is_err());
        let err = validate_user("a", &[acl("topic", "t", "literal", &[], "allow")]);
        assert!(
            matches!(err, Err(ServiceError::InvalidField { field, .. }) if field == "acls[0].operations")
        );
    }

    #[test]
    fn quotas_converge_on_the_users_and_nothing_else() {
        let mut limited = user("app", Vec::new());
        limited.quotas = KafkaQuotaSpec {
            producer_byte_rate: Some(1_048_576),
            consumer_byte_rate: None,
            request_percentage: Some(50),
        };
        let free = user("free", Vec::new());
        let users = vec![limited, free];
        // Nothing on the cluster yet: the limited user's two keys are set, nothing else.
        assert_eq!(
            quota_changes(&users, &UserQuotas::new()),
            vec![(
                "app".to_owned(),
                vec![
                    ("producer_byte_rate".to_owned(), Some(1_048_576.0)),
                    ("request_percentage".to_owned(), Some(50.0)),
                ]
            )]
        );
        // The cluster has them, a stale key of the user, a quota of a user no longer limited
        // and one set over Kafka for a name hdi does not know: the stale ones are removed.
        let mut actual = UserQuotas::new();
        actual.insert(
            "app".into(),
            BTreeMap::from([
                ("producer_byte_rate".to_owned(), 1_048_576.0),
                ("request_percentage".to_owned(), 50.0),
                ("consumer_byte_rate".to_owned(), 10.0),
            ]),
        );
        actual.insert(
            "free".into(),
            BTreeMap::from([("producer_byte_rate".to_owned(), 5.0)]),
        );
        actual.insert(
            "stranger".into(),
            BTreeMap::from([("request_percentage".to_owned(), 1.0)]),
        );
        assert_eq!(
            quota_changes(&users, &actual),
            vec![
                (
                    "app".to_owned(),
                    vec![("consumer_byte_rate".to_owned(), None)]
                ),
                (
                    "free".to_owned(),
                    vec![("producer_byte_rate".to_owned(), None)]
                ),
                (
                    "stranger".to_owned(),
                    vec![("request_percentage".to_owned(), None)]
                ),
            ]
        );
        // Converged: nothing to do.
        actual.remove("free");
        actual.remove("stranger");
        if let Some(app) = actual.get_mut("app") {
            app.remove("consumer_byte_rate");
        }
        assert!(quota_changes(&users, &actual).is_empty());
    }

    #[test]
    fn quotas_are_checked() {
        assert!(validate_quotas(&KafkaQuotaSpec::default()).is_ok());
        for (quotas, field) in [
            (
                KafkaQuotaSpec {
                    producer_byte_rate: Some(0),
                    ..KafkaQuotaSpec::default()
                },
                "quotas.producer_byte_rate",
            ),
            (
                KafkaQuotaSpec {
                    consumer_byte_rate: Some(MAX_BYTE_RATE + 1),
                    ..KafkaQuotaSpec::default()
                },
                "quotas.consumer_byte_rate",
            ),
            (
                KafkaQuotaSpec {
                    request_percentage: Some(10_001),
                    ..KafkaQuotaSpec::default()
                },
                "quotas.request_percentage",
            ),
        ] {
            match validate_quotas(&quotas) {
                Err(ServiceError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{quotas:?}: {other:?}"),
            }
        }
    }
}
