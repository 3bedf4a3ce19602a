//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and DescribeCluster.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};

use super::{Context, sb};
use crate::codes;
use crate::state::KafkaError;
use crate::topic_config::{self, TopicConfigs};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// `config_source` values of DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_STATIC_BROKER: i8 = 4;

/// Handles CreateTopics.
pub fn create_topics(cx: &Context<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = cx.broker;
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.0.as_str().to_owned();
            let partitions = if wanted.num_partitions == -1 {
                broker.config.default_partitions
            } else {
                wanted.num_partitions
            };
            let result = CreatableTopicResult::default().with_name(wanted.name.clone());
            let outcome = (|| {
                if !wanted.assignments.is_empty() {
                    let bad = wanted.assignments.iter().any(|a| {
                        a.broker_ids.iter().any(|b| b.0 != broker.config.node_id)
                            || a.broker_ids.len() != 1
                    });
                    if bad {
                        return Err(KafkaError::new(
                            codes::INVALID_REPLICATION_FACTOR,
                            "this single-node cluster can only place replicas on itself",
                        ));
                    }
                }
                if !matches!(wanted.replication_factor, -1 | 1) {
                    return Err(KafkaError::new(
                        codes::INVALID_REPLICATION_FACTOR,
                        format!(
                            "replication factor {} is larger than the 1 available broker",
                            wanted.replication_factor
                        ),
                    ));
                }
                let mut configs = TopicConfigs::new();
                for config in &wanted.configs {
                    if let Some(value) = &config.value {
                        configs.insert(config.name.as_str().to_owned(), value.as_str().to_owned());
                    }
                }
                super::blocking(|| {
                    broker
                        .topics
                        .create(&name, partitions, configs, request.validate_only)
                })
            })();
            match outcome {
                // topic_id exists from v7; num_partitions and replication_factor from v5.
                Ok(topic) if cx.version >= 5 => result
                    .with_topic_id(if cx.version >= 7 {
                        topic.id
                    } else {
                        uuid::Uuid::nil()
                    })
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
                Ok(_) => result,
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Handles DeleteTopics (by name, or by id from v6).
pub fn delete_topics(cx: &Context<'_>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let broker = cx.broker;
    let mut names: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.as_str().to_owned()), uuid::Uuid::nil()))
        .collect();
    names.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.as_str().to_owned()), t.topic_id)),
    );
    let responses = names
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| broker.topics.get_by_id(id).map(|t| t.name.clone()));
            // topic_id exists from v6, error_message from v5.
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(sb(n))))
                .with_topic_id(if cx.version >= 6 {
                    id
                } else {
                    uuid::Uuid::nil()
                });
            let outcome = match &name {
                Some(name) => super::blocking(|| broker.topics.delete(name)),
                None => Err(KafkaError::new(
                    codes::UNKNOWN_TOPIC_ID,
                    format!("no topic with id {id}"),
                )),
            };
            match outcome {
                Ok(()) => result,
                Err(error) if cx.version >= 5 => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
                Err(error) => result.with_error_code(error.code),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions.
pub fn create_partitions(
    cx: &Context<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.0.as_str().to_owned();
            let result = CreatePartitionsTopicResult::default().with_name(wanted.name);
            match super::blocking(|| {
                cx.broker
                    .topics
                    .create_partitions(&name, wanted.count, request.validate_only)
            }) {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Handles DescribeConfigs for topics and this broker.
pub fn describe_configs(
    cx: &Context<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = cx.broker;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.as_str().to_owned();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let entries: Result<Vec<(String, String, i8)>, KafkaError> = match resource
                .resource_type
            {
                RESOURCE_TOPIC => match broker.topics.get(&name) {
                    Some(topic) => Ok(topic_config::describe(&topic.configs())
                        .into_iter()
                        .map(|(k, v, default)| {
                            (
                                k.to_owned(),
                                v,
                                if default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                },
                            )
                        })
                        .collect()),
                    None => Err(KafkaError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no topic {name:?}"),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == broker.config.node_id.to_string() => {
                    Ok(vec![
                        (
                            "broker.id".to_owned(),
                            broker.config.node_id.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "auto.create.topics.enable".to_owned(),
                            broker.config.auto_create_topics.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "num.partitions".to_owned(),
                            broker.config.default_partitions.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "socket.request.max.bytes".to_owned(),
                            broker.config.max_request_bytes.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                    ])
                }
                RESOURCE_BROKER => Err(KafkaError::new(
                    codes::INVALID_REQUEST,
                    format!("this is broker {}, not {name}", broker.config.node_id),
                )),
                other => Err(KafkaError::new(
                    codes::INVALID_REQUEST,
                    format!("unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, source)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(v)))
                                .with_config_source(source)
                                .with_read_only(resource.resource_type == RESOURCE_BROKER)
                        })
                        .collect(),
                ),
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn alter(
    cx: &Context<'_>,
    resource_type: i8,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), KafkaError> {
    if resource_type != RESOURCE_TOPIC {
        return Err(KafkaError::new(
            codes::INVALID_REQUEST,
            "only topic configs can be altered",
        ));
    }
    super::blocking(|| {
        cx.broker
            .topics
            .alter_configs(name, changes, incremental, validate_only)
    })
}

/// Handles AlterConfigs (replaces a topic's explicit configs).
pub fn alter_configs(cx: &Context<'_>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let changes = resource
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str().to_owned(),
                        c.value.as_ref().map(|v| v.as_str().to_owned()),
                    )
                })
                .collect();
            let result = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match alter(
                cx,
                resource.resource_type,
                resource.resource_name.as_str(),
                changes,
                false,
                request.validate_only,
            ) {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Handles IncrementalAlterConfigs (SET and DELETE; APPEND/SUBTRACT apply to list configs, which
/// no supported topic config is).
pub fn incremental_alter_configs(
    cx: &Context<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let mut changes = Vec::new();
            let mut bad = None;
            for config in &resource.configs {
                let name = config.name.as_str().to_owned();
                match config.config_operation {
                    0 => changes.push((
                        name,
                        Some(
                            config
                                .value
                                .as_ref()
                                .map(|v| v.as_str().to_owned())
                                .unwrap_or_default(),
                        ),
                    )),
                    1 => changes.push((name, None)),
                    op => {
                        bad = Some(KafkaError::new(
                            codes::INVALID_CONFIG,
                            format!("operation {op} is not supported for {name}"),
                        ))
                    }
                }
            }
            let outcome = match bad {
                Some(error) => Err(error),
                None => alter(
                    cx,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    changes,
                    true,
                    request.validate_only,
                ),
            };
            match outcome {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Handles DescribeCluster.
pub fn describe_cluster(cx: &Context<'_>) -> DescribeClusterResponse {
    let broker = cx.broker;
    DescribeClusterResponse::default()
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.config.node_id))
                .with_host(sb(broker.config.advertised_host.clone()))
                .with_port(broker.config.advertised_port),
        ])
}
