//! `DescribeClientQuotas` and `AlterClientQuotas` (KIP-546): the client quotas of
//! `security::quota`, for `user` and `client-id` entities (named or `<default>`, a null name),
//! with the keys `producer_byte_rate`, `consumer_byte_rate` and `request_percentage`. Describing needs
//! `DESCRIBE_CONFIGS` on the cluster, altering `ALTER_CONFIGS`, as in Kafka.

use hdi_kafka_client::codes;
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};

use super::{Context, sb};
use crate::cluster::metadata::Command;
use crate::security::acl::Operation;
use crate::security::quota::{Entity, Name, known_key, stored_value};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";

fn entity_of<'a>(
    parts: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Entity, String> {
    let mut entity = Entity {
        user: None,
        client_id: None,
    };
    for (kind, name) in parts {
        let name = name.map_or(Name::Default, |n| Name::Named(n.to_owned()));
        let slot = match kind {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            other => {
                return Err(format!(
                    "entity type {other:?} is not supported: use user or client-id"
                ));
            }
        };
        if slot.replace(name).is_some() {
            return Err(format!("entity type {kind:?} is given twice"));
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err("an entity needs a user or a client-id".into());
    }
    Ok(entity)
}

fn described(entity: &Entity) -> Vec<DescribedEntity> {
    let part = |kind: &str, name: &Name| {
        DescribedEntity::default()
            .with_entity_type(sb(kind))
            .with_entity_name(match name {
                Name::Default => None,
                Name::Named(n) => Some(sb(n.clone())),
            })
    };
    entity
        .user
        .iter()
        .map(|n| part(USER, n))
        .chain(entity.client_id.iter().map(|n| part(CLIENT_ID, n)))
        .collect()
}

/// `AlterClientQuotas`.
pub async fn alter_client_quotas(
    cx: &Context<'_>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    let allowed = cx.allowed_cluster(Operation::AlterConfigs);
    let mut accepted = Vec::new();
    let mut results = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        let echo: Vec<EntityData> = entry
            .entity
            .iter()
            .map(|e| {
                EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let checked = if allowed {
            entity_of(entry.entity.iter().map(|e| {
                (
                    e.entity_type.as_str(),
                    e.entity_name.as_ref().map(|n| n.as_str()),
                )
            }))
            .and_then(|entity| {
                let mut changes = Vec::new();
                for op in &entry.ops {
                    let key = op.key.as_str();
                    if !known_key(key) {
                        return Err(format!(
                            "quota {key:?} is not supported: use producer_byte_rate, \
                             consumer_byte_rate or request_percentage"
                        ));
                    }
                    if op.remove {
                        changes.push((key.to_owned(), None));
                    } else {
                        changes.push((key.to_owned(), Some(stored_value(key, op.value)?)));
                    }
                }
                Ok((entity, changes))
            })
            .map_err(|message| (codes::INVALID_REQUEST, message))
        } else {
            Err((
                codes::CLUSTER_AUTHORIZATION_FAILED,
                "ALTER_CONFIGS on the cluster is needed to change quotas".to_owned(),
            ))
        };
        let result = EntryData::default().with_entity(echo);
        results.push(match checked {
            Ok(change) => {
                accepted.push(change);
                result
            }
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(sb(message))),
        });
    }
    if !request.validate_only
        && !accepted.is_empty()
        && let Err(error) = cx
            .broker
            .cluster
            .propose(Command::AlterClientQuotas { entries: accepted })
            .await
    {
        for result in results.iter_mut().filter(|r| r.error_code == codes::NONE) {
            result.error_code = error.code;
            result.error_message = Some(sb(error.message.clone()));
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}

/// `DescribeClientQuotas`.
pub fn describe_client_quotas(
    cx: &Context<'_>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let error = |code: i16, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(sb(message)))
            .with_entries(None)
    };
    if !cx.allowed_cluster(Operation::DescribeConfigs) {
        return error(
            codes::CLUSTER_AUTHORIZATION_FAILED,
            "DESCRIBE_CONFIGS on the cluster is needed to list quotas".into(),
        );
    }
    let mut filters = Vec::new();
    for component in &request.components {
        let kind = component.entity_type.as_str();
        if kind != USER && kind != CLIENT_ID {
            return error(
                codes::INVALID_REQUEST,
                format!("entity type {kind:?} is not supported"),
            );
        }
        let wanted = match component.match_type {
            0 => match &component._match {
                Some(name) => Some(Some(Name::Named(name.as_str().to_owned()))),
                None => return error(codes::INVALID_REQUEST, "an exact match needs a name".into()),
            },
            1 => Some(Some(Name::Default)),
            2 => None,
            other => {
                return error(
                    codes::INVALID_REQUEST,
                    format!("match type {other} is not valid"),
                );
            }
        };
        filters.push((kind, wanted));
    }
    let view = cx.broker.cluster.view();
    let entries = view
        .meta
        .quotas
        .iter()
        .filter(|(entity, _)| {
            let side = |kind: &str| {
                if kind == USER {
                    &entity.user
                } else {
                    &entity.client_id
                }
            };
            let components_match =
                filters
                    .iter()
                    .all(|(kind, wanted)| match (side(kind), wanted) {
                        (None, _) => false,
                        (Some(_), None) => true,
                        (Some(have), Some(Some(want))) => have == want,
                        (Some(_), Some(None)) => false,
                    });
            let strict_ok = !request.strict
                || [USER, CLIENT_ID]
                    .into_iter()
                    .all(|kind| side(kind).is_none() || filters.iter().any(|(k, _)| *k == kind));
            components_match && strict_ok
        })
        .map(|(entity, values)| {
            DescribedEntry::default()
                .with_entity(described(entity))
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(sb(key.clone()))
                                .with_value(*value as f64)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
