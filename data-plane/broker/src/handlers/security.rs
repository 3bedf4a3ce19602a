//! The security APIs: `SaslHandshake` and `SaslAuthenticate` answers (the connection state is
//! the server's), `CreateAcls`/`DescribeAcls`/`DeleteAcls`, and
//! `DescribeUserScramCredentials`/`AlterUserScramCredentials`. ACL changes need `ALTER` on the
//! cluster and reading them `DESCRIBE`, as in Kafka; so do credentials. Without `--authorizer`
//! the ACL APIs answer `SECURITY_DISABLED`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hdi_kafka_client::codes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, SaslAuthenticateResponse, SaslHandshakeResponse,
};

use super::{Context, sb};
use crate::cluster::metadata::Command;
use crate::security::SaslMechanism;
use crate::security::acl::{AclBinding, AclFilter, Operation};
use crate::security::scram::{ScramCredential, ScramMechanism};

/// The `SaslHandshake` answer: `error` and the mechanisms offered.
pub fn sasl_handshake_response(error: i16, offered: &[SaslMechanism]) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(error)
        .with_mechanisms(offered.iter().map(|m| sb(m.name())).collect())
}

/// A `SaslAuthenticate` answer.
pub fn sasl_authenticate_response(
    error: i16,
    message: Option<String>,
    token: Vec<u8>,
    session_lifetime_ms: i64,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(error)
        .with_error_message(message.map(sb))
        .with_auth_bytes(Bytes::from(token))
        .with_session_lifetime_ms(session_lifetime_ms)
}

/// `CreateAcls`.
pub async fn create_acls(cx: &Context<'_>, request: CreateAclsRequest) -> CreateAclsResponse {
    let refused = |code: i16, message: String, count: usize| {
        CreateAclsResponse::default().with_results(
            (0..count)
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(code)
                        .with_error_message(Some(sb(message.clone())))
                })
                .collect(),
        )
    };
    let count = request.creations.len();
    if !cx.broker.config.security.current().authorizer {
        return refused(
            codes::SECURITY_DISABLED,
            "no authorizer is configured on the broker".into(),
            count,
        );
    }
    if !cx.allowed_cluster(Operation::Alter) {
        return refused(
            codes::CLUSTER_AUTHORIZATION_FAILED,
            "ALTER on the cluster is needed to create ACLs".into(),
            count,
        );
    }
    let parsed: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_codes(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )
            .map_err(|e| e.0)
        })
        .collect();
    let bindings: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let applied = if bindings.is_empty() {
        Ok(())
    } else {
        cx.broker
            .cluster
            .propose(Command::CreateAcls { bindings })
            .await
            .map(|_| ())
    };
    CreateAclsResponse::default().with_results(
        parsed
            .into_iter()
            .map(|p| match (p, &applied) {
                (Err(message), _) => AclCreationResult::default()
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb(message))),
                (Ok(_), Ok(())) => AclCreationResult::default(),
                (Ok(_), Err(error)) => AclCreationResult::default()
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message.clone()))),
            })
            .collect(),
    )
}

fn describe_resources(acls: &[&AclBinding]) -> Vec<DescribeAclsResource> {
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in acls {
        by_resource
            .entry((
                acl.resource_type.code(),
                acl.name.clone(),
                acl.pattern.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(acl.principal.clone()))
                    .with_host(sb(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    by_resource
        .into_iter()
        .map(|((resource_type, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
                .with_pattern_type(pattern)
                .with_acls(acls)
        })
        .collect()
}

/// `DescribeAcls`.
pub fn describe_acls(cx: &Context<'_>, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let error = |code: i16, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(sb(message)))
    };
    if !cx.broker.config.security.current().authorizer {
        return error(
            codes::SECURITY_DISABLED,
            "no authorizer is configured on the broker",
        );
    }
    if !cx.allowed_cluster(Operation::Describe) {
        return error(
            codes::CLUSTER_AUTHORIZATION_FAILED,
            "DESCRIBE on the cluster is needed to list ACLs",
        );
    }
    let filter = match AclFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_ref().map(|s| s.as_str()),
        request.pattern_type_filter,
        request.principal_filter.as_ref().map(|s| s.as_str()),
        request.host_filter.as_ref().map(|s| s.as_str()),
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(invalid) => return error(codes::INVALID_REQUEST, &invalid.0),
    };
    let view = cx.broker.cluster.view();
    let matching: Vec<&AclBinding> = view
        .meta
        .acls
        .iter()
        .filter(|a| filter.matches(a))
        .collect();
    DescribeAclsResponse::default().with_resources(describe_resources(&matching))
}

/// `DeleteAcls`: removes every ACL that any filter matches, answering per filter.
pub async fn delete_acls(cx: &Context<'_>, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let refused = |code: i16, message: &str, count: usize| {
        DeleteAclsResponse::default().with_filter_results(
            (0..count)
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(Some(sb(message)))
                })
                .collect(),
        )
    };
    let count = request.filters.len();
    if !cx.broker.config.security.current().authorizer {
        return refused(
            codes::SECURITY_DISABLED,
            "no authorizer is configured on the broker",
            count,
        );
    }
    if !cx.allowed_cluster(Operation::Alter) {
        return refused(
            codes::CLUSTER_AUTHORIZATION_FAILED,
            "ALTER on the cluster is needed to delete ACLs",
            count,
        );
    }
    let view = cx.broker.cluster.view();
    let per_filter: Vec<Result<Vec<AclBinding>, String>> = request
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter::from_codes(
                f.resource_type_filter,
                f.resource_name_filter.as_ref().map(|s| s.as_str()),
                f.pattern_type_filter,
                f.principal_filter.as_ref().map(|s| s.as_str()),
                f.host_filter.as_ref().map(|s| s.as_str()),
                f.operation,
                f.permission_type,
            )
            .map_err(|invalid| invalid.0)?;
            Ok(view
                .meta
                .acls
                .iter()
                .filter(|a| filter.matches(a))
                .cloned()
                .collect())
        })
        .collect();
    let doomed: BTreeSet<AclBinding> = per_filter
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let applied = if doomed.is_empty() {
        Ok(())
    } else {
        cx.broker
            .cluster
            .propose(Command::DeleteAcls {
                bindings: doomed.into_iter().collect(),
            })
            .await
            .map(|_| ())
    };
    DeleteAclsResponse::default().with_filter_results(
        per_filter
            .into_iter()
            .map(|r| match (r, &applied) {
                (Err(message), _) => DeleteAclsFilterResult::default()
                    .with_error_code(codes::INVALID_REQUEST)
                    .with_error_message(Some(sb(message))),
                (Ok(_), Err(error)) => DeleteAclsFilterResult::default()
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message.clone()))),
                (Ok(bindings), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(
                    bindings
                        .into_iter()
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.resource_type.code())
                                .with_resource_name(sb(acl.name))
                                .with_pattern_type(acl.pattern.code())
                                .with_principal(sb(acl.principal))
                                .with_host(sb(acl.host))
                                .with_operation(acl.operation.code())
                                .with_permission_type(acl.permission.code())
                        })
                        .collect(),
                ),
            })
            .collect(),
    )
}

/// `DescribeUserScramCredentials`: mechanisms and iterations, never the keys.
pub fn describe_user_scram_credentials(
    cx: &Context<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !cx.allowed_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(sb(
                "DESCRIBE on the cluster is needed to list credentials",
            )));
    }
    let view = cx.broker.cluster.view();
    let stored = &view.meta.scram;
    let describe = |user: &str, credentials: &BTreeMap<ScramMechanism, ScramCredential>| {
        DescribeUserScramCredentialsResult::default()
            .with_user(sb(user))
            .with_credential_infos(
                credentials
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.kafka_type())
                            .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                    })
                    .collect(),
            )
    };
    let results = match request.users {
        None => stored.iter().map(|(user, c)| describe(user, c)).collect(),
        Some(users) if users.is_empty() => {
            stored.iter().map(|(user, c)| describe(user, c)).collect()
        }
        Some(users) => {
            let mut seen = BTreeSet::new();
            users
                .iter()
                .map(|u| {
                    let name = u.name.as_str();
                    if !seen.insert(name.to_owned()) {
                        return DescribeUserScramCredentialsResult::default()
                            .with_user(sb(name))
                            .with_error_code(codes::DUPLICATE_RESOURCE)
                            .with_error_message(Some(sb(format!("user {name:?} is named twice"))));
                    }
                    match stored.get(name) {
                        Some(c) => describe(name, c),
                        None => DescribeUserScramCredentialsResult::default()
                            .with_user(sb(name))
                            .with_error_code(codes::RESOURCE_NOT_FOUND)
                            .with_error_message(Some(sb(format!(
                                "attempt to describe a user credential that does not exist: {name}"
                            )))),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// The checks a deletion and an upsertion of `user`'s credential of `kafka_type` share: not a
/// second change of that credential in the request (`seen`), a known mechanism, not a static
/// user of the broker. The mechanism, or the error code and message for the user.
fn checked_change(
    cx: &Context<'_>,
    seen: &mut BTreeSet<(String, i8)>,
    user: &str,
    kafka_type: i8,
) -> Result<ScramMechanism, (i16, String)> {
    if !seen.insert((user.to_owned(), kafka_type)) {
        return Err((
            codes::DUPLICATE_RESOURCE,
            format!("a credential of {user:?} is changed twice"),
        ));
    }
    let Some(mechanism) = ScramMechanism::from_kafka_type(kafka_type) else {
        return Err((
            codes::UNSUPPORTED_SASL_MECHANISM,
            format!("unknown SCRAM mechanism {kafka_type}"),
        ));
    };
    if cx
        .broker
        .config
        .security
        .current()
        .static_users
        .contains_key(user)
    {
        return Err((
            codes::UNACCEPTABLE_CREDENTIAL,
            format!("{user:?} is a static user of the broker"),
        ));
    }
    Ok(mechanism)
}

/// `AlterUserScramCredentials`: checked per user (a user with any bad change is left as it
/// was), then the good ones proposed together.
pub async fn alter_user_scram_credentials(
    cx: &Context<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let users: BTreeSet<String> = request
        .deletions
        .iter()
        .map(|d| d.name.as_str().to_owned())
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| u.name.as_str().to_owned()),
        )
        .collect();
    if !cx.allowed_cluster(Operation::Alter) {
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(sb(user.clone()))
                        .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                        .with_error_message(Some(sb(
                            "ALTER on the cluster is needed to change credentials",
                        )))
                })
                .collect(),
        );
    }
    let view = cx.broker.cluster.view();
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i8)> = BTreeSet::new();
    let mut deletions = Vec::new();
    let mut upsertions = Vec::new();
    let fail = |errors: &mut BTreeMap<String, (i16, String)>, user: &str, code, message: String| {
        errors.entry(user.to_owned()).or_insert((code, message));
    };
    for d in &request.deletions {
        let user = d.name.as_str();
        let mechanism = match checked_change(cx, &mut seen, user, d.mechanism) {
            Ok(mechanism) => mechanism,
            Err((code, message)) => {
                fail(&mut errors, user, code, message);
                continue;
            }
        };
        if !view
            .meta
            .scram
            .get(user)
            .is_some_and(|c| c.contains_key(&mechanism))
        {
            fail(
                &mut errors,
                user,
                codes::RESOURCE_NOT_FOUND,
                format!(
                    "attempt to delete a user credential that does not exist: {user} {}",
                    mechanism.name()
                ),
            );
            continue;
        }
        deletions.push((user.to_owned(), mechanism));
    }
    for u in &request.upsertions {
        let user = u.name.as_str();
        if user.is_empty() {
            fail(
                &mut errors,
                user,
                codes::UNACCEPTABLE_CREDENTIAL,
                "the user name is empty".into(),
            );
            continue;
        }
        let mechanism = match checked_change(cx, &mut seen, user, u.mechanism) {
            Ok(mechanism) => mechanism,
            Err((code, message)) => {
                fail(&mut errors, user, code, message);
                continue;
            }
        };
        match ScramCredential::from_salted_password(
            mechanism,
            &u.salt,
            &u.salted_password,
            i64::from(u.iterations),
        ) {
            Ok(credential) => upsertions.push((user.to_owned(), mechanism, credential)),
            Err(e) => fail(
                &mut errors,
                user,
                codes::UNACCEPTABLE_CREDENTIAL,
                e.to_string(),
            ),
        }
    }
    deletions.retain(|(user, _)| !errors.contains_key(user));
    upsertions.retain(|(user, _, _)| !errors.contains_key(user));
    let applied = if deletions.is_empty() && upsertions.is_empty() {
        Ok(())
    } else {
        cx.broker
            .cluster
            .propose(Command::AlterScramCredentials {
                deletions,
                upsertions,
            })
            .await
            .map(|_| ())
    };
    AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|user| {
                let (code, message) = match (errors.get(&user), &applied) {
                    (Some((code, message)), _) => (*code, Some(message.clone())),
                    (None, Err(error)) => (error.code, Some(error.message.clone())),
                    (None, Ok(())) => (codes::NONE, None),
                };
                AlterUserScramCredentialsResult::default()
                    .with_user(sb(user))
                    .with_error_code(code)
                    .with_error_message(message.map(sb))
            })
            .collect(),
    )
}
