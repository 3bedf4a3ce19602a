//! The admin client's side of secured clusters: how it connects (TLS trusting the cluster's
//! Kafka CA, SCRAM-SHA-512 as the platform's administrator) and the calls that manage who may
//! do what: ACLs (`DescribeAcls`, `CreateAcls`, `DeleteAcls`, v2/v1/v1) and SCRAM credentials
//! (`AlterUserScramCredentials` v0), and users' client quotas (`DescribeClientQuotas`,
//! `AlterClientQuotas`, v0).

use std::sync::Arc;

use bytes::Bytes;
use hdi_kafka_client::codes::NOT_CONTROLLER;
use hdi_kafka_client::scram::Credential;
use hdi_kafka_client::{SaslLogin, Security};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest, DescribeClientQuotasRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::{AdminError, KafkaAdmin, check};

const DESCRIBE_ACLS_VERSION: i16 = 1;
const CREATE_ACLS_VERSION: i16 = 2;
const DELETE_ACLS_VERSION: i16 = 1;
const ALTER_SCRAM_VERSION: i16 = 0;
const DESCRIBE_QUOTAS_VERSION: i16 = 0;
const ALTER_QUOTAS_VERSION: i16 = 0;
/// Kafka's entity type of a principal's quotas.
const USER_ENTITY: &str = "user";
/// Kafka's `ANY` in ACL filters (resource type, pattern type, operation, permission).
const ANY: i8 = 1;

/// How the admin client reaches a secured listener.
#[derive(Clone)]
pub struct AdminSecurity {
    /// TLS trusting only this configuration's roots (the cluster's Kafka CA); the server name
    /// checked is each broker's host.
    pub tls: Option<Arc<hdi_pki::rustls::ClientConfig>>,
    /// The SASL login.
    pub sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for AdminSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl AdminSecurity {
    /// What connecting to `addr` (`host:port`) needs.
    ///
    /// # Errors
    /// A host that is not a valid TLS server name.
    pub(super) fn for_address(&self, addr: &str) -> Result<Security, String> {
        Security::for_address(addr, self.tls.as_ref(), self.sasl.as_ref())
    }
}

/// One ACL binding in Kafka's numbers: resource type (2 topic, 3 group, 4 cluster, 5
/// transactional id), name, pattern type (3 literal, 4 prefixed), principal, host, operation
/// (2 all, 3 read, ... 12 idempotent write) and permission (2 deny, 3 allow).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    /// Resource type.
    pub resource_type: i8,
    /// Resource name or prefix.
    pub resource_name: String,
    /// Pattern type.
    pub pattern_type: i8,
    /// `User:<name>`.
    pub principal: String,
    /// Host (`*`).
    pub host: String,
    /// Operation.
    pub operation: i8,
    /// Permission.
    pub permission: i8,
}

/// A change of one user's quotas: each key set to a value, or removed (`None`).
pub type QuotaChange = (String, Vec<(String, Option<f64>)>);

/// Users' quotas: user → quota key → value.
pub type UserQuotas = std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

impl KafkaAdmin {
    /// Every ACL binding of the cluster.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; a Kafka error (`CLUSTER_AUTHORIZATION_FAILED`, ...).
    pub async fn describe_acls(&self) -> Result<Vec<AclBinding>, AdminError> {
        const API: &str = "DescribeAcls";
        let deadline = self.deadline();
        // Nullable filters default to `Some("")` in kafka-protocol: set every one.
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(ANY)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY);
        let response = self
            .send_bootstrap(API, &request, DESCRIBE_ACLS_VERSION, deadline, true)
            .await?;
        check(API, response.error_code, response.error_message.as_ref())?;
        let mut bindings = Vec::new();
        for resource in &response.resources {
            for acl in &resource.acls {
                bindings.push(AclBinding {
                    resource_type: resource.resource_type,
                    resource_name: resource.resource_name.as_str().to_owned(),
                    pattern_type: resource.pattern_type,
                    principal: acl.principal.as_str().to_owned(),
                    host: acl.host.as_str().to_owned(),
                    operation: acl.operation,
                    permission: acl.permission_type,
                });
            }
        }
        bindings.sort();
        Ok(bindings)
    }

    /// Creates ACL bindings (an existing one is left as it is).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the first binding's Kafka error.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<(), AdminError> {
        const API: &str = "CreateAcls";
        if bindings.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline();
        let request = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type)
                        .with_resource_name(text(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type)
                        .with_principal(text(&b.principal))
                        .with_host(text(&b.host))
                        .with_operation(b.operation)
                        .with_permission_type(b.permission)
                })
                .collect(),
        );
        let response = self
            .send_controller(API, &request, CREATE_ACLS_VERSION, deadline, |r| {
                r.results.iter().any(|x| x.error_code == NOT_CONTROLLER)
            })
            .await?;
        for result in &response.results {
            check(API, result.error_code, result.error_message.as_ref())?;
        }
        Ok(())
    }

    /// Deletes exactly these ACL bindings.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the first filter's Kafka error.
    pub async fn delete_acls(&self, bindings: &[AclBinding]) -> Result<(), AdminError> {
        const API: &str = "DeleteAcls";
        if bindings.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline();
        let request = DeleteAclsRequest::default().with_filters(
            bindings
                .iter()
                .map(|b| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(b.resource_type)
                        .with_resource_name_filter(Some(text(&b.resource_name)))
                        .with_pattern_type_filter(b.pattern_type)
                        .with_principal_filter(Some(text(&b.principal)))
                        .with_host_filter(Some(text(&b.host)))
                        .with_operation(b.operation)
                        .with_permission_type(b.permission)
                })
                .collect(),
        );
        let response = self
            .send_controller(API, &request, DELETE_ACLS_VERSION, deadline, |r| {
                r.filter_results
                    .iter()
                    .any(|x| x.error_code == NOT_CONTROLLER)
            })
            .await?;
        for result in &response.filter_results {
            check(API, result.error_code, result.error_message.as_ref())?;
        }
        Ok(())
    }

    /// Sets `user`'s SCRAM credential (its salted password: never the password).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the Kafka error of the upsert.
    pub async fn upsert_scram(
        &self,
        user: &str,
        credential: &Credential,
    ) -> Result<(), AdminError> {
        let upsert = ScramCredentialUpsertion::default()
            .with_name(text(user))
            .with_mechanism(credential.hash.kafka_type())
            .with_iterations(i32::try_from(credential.iterations).unwrap_or(i32::MAX))
            .with_salt(Bytes::from(credential.salt.clone()))
            .with_salted_password(Bytes::from(credential.salted_password.clone()));
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert]))
            .await
    }

    /// Removes `user`'s SCRAM credential of `mechanism` (Kafka's type: 1 SHA-256, 2 SHA-512);
    /// a user without one is not an error.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the Kafka error of the deletion.
    pub async fn delete_scram(&self, user: &str, mechanism: i8) -> Result<(), AdminError> {
        let deletion = ScramCredentialDeletion::default()
            .with_name(text(user))
            .with_mechanism(mechanism);
        match self
            .alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]))
            .await
        {
            Err(AdminError::Kafka { name, .. }) if name == "RESOURCE_NOT_FOUND" => Ok(()),
            other => other,
        }
    }

    /// The quotas of every `user=<name>` entity (those with no client-id part), by user.
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the Kafka error of the describe.
    pub async fn describe_user_quotas(&self) -> Result<UserQuotas, AdminError> {
        use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
        const API: &str = "DescribeClientQuotas";
        let deadline = self.deadline();
        // Match type 2: any named user (not the default entity); strict: no other component.
        let request = DescribeClientQuotasRequest::default()
            .with_components(vec![
                ComponentData::default()
                    .with_entity_type(text(USER_ENTITY))
                    .with_match_type(2)
                    .with_match(None),
            ])
            .with_strict(true);
        let response = self
            .send_bootstrap(API, &request, DESCRIBE_QUOTAS_VERSION, deadline, true)
            .await?;
        check(API, response.error_code, response.error_message.as_ref())?;
        let mut quotas = UserQuotas::new();
        for entry in response.entries.iter().flatten() {
            let [entity] = entry.entity.as_slice() else {
                continue;
            };
            let Some(name) = entity
                .entity_name
                .as_ref()
                .filter(|_| entity.entity_type.as_str() == USER_ENTITY)
            else {
                continue;
            };
            quotas.insert(
                name.as_str().to_owned(),
                entry
                    .values
                    .iter()
                    .map(|v| (v.key.as_str().to_owned(), v.value))
                    .collect(),
            );
        }
        Ok(quotas)
    }

    /// Changes users' quotas: for each user, each key to a value, or removed (`None`).
    ///
    /// # Errors
    /// As [`KafkaAdmin::metadata`]; the first entry's Kafka error.
    pub async fn alter_user_quotas(&self, changes: &[QuotaChange]) -> Result<(), AdminError> {
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        const API: &str = "AlterClientQuotas";
        if changes.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline();
        let request = AlterClientQuotasRequest::default().with_entries(
            changes
                .iter()
                .map(|(user, ops)| {
                    EntryData::default()
                        .with_entity(vec![
                            EntityData::default()
                                .with_entity_type(text(USER_ENTITY))
                                .with_entity_name(Some(text(user))),
                        ])
                        .with_ops(
                            ops.iter()
                                .map(|(key, value)| {
                                    OpData::default()
                                        .with_key(text(key))
                                        .with_value(value.unwrap_or(0.0))
                                        .with_remove(value.is_none())
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let response = self
            .send_controller(API, &request, ALTER_QUOTAS_VERSION, deadline, |r| {
                r.entries.iter().any(|x| x.error_code == NOT_CONTROLLER)
            })
            .await?;
        for entry in &response.entries {
            check(API, entry.error_code, entry.error_message.as_ref())?;
        }
        Ok(())
    }

    async fn alter_scram(
        &self,
        request: AlterUserScramCredentialsRequest,
    ) -> Result<(), AdminError> {
        const API: &str = "AlterUserScramCredentials";
        let deadline = self.deadline();
        let response = self
            .send_controller(API, &request, ALTER_SCRAM_VERSION, deadline, |r| {
                r.results.iter().any(|x| x.error_code == NOT_CONTROLLER)
            })
            .await?;
        for result in &response.results {
            check(API, result.error_code, result.error_message.as_ref())?;
        }
        Ok(())
    }
}
