//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and DescribeCluster.
//!
//! With ACLs (Kafka's rules): creating a topic needs `CREATE` on the cluster or the topic;
//! deleting `DELETE`, adding partitions `ALTER`, describing configs `DESCRIBE_CONFIGS` and
//! altering them `ALTER_CONFIGS`, on the topic (or on the cluster for broker configs). Refusals
//! are `TOPIC_AUTHORIZATION_FAILED` (29) and `CLUSTER_AUTHORIZATION_FAILED` (31).

use hdi_kafka_client::codes;
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
use crate::cluster::topics::NewTopic;
use crate::security::acl::Operation;
use crate::state::KafkaError;
use crate::topic_config::{self, TopicConfigs};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// `config_source` values of DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG: a cluster-wide config (the cluster links).
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;

/// Handles CreateTopics.
pub async fn create_topics(cx: &Context<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = cx.broker;
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.0.as_str().to_owned();
        let partitions = if wanted.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            wanted.num_partitions
        };
        let result = CreatableTopicResult::default().with_name(wanted.name.clone());
        let mut configs = TopicConfigs::new();
        for config in &wanted.configs {
            if let Some(value) = &config.value {
                configs.insert(config.name.as_str().to_owned(), value.as_str().to_owned());
            }
        }
        let assignments = (!wanted.assignments.is_empty()).then(|| {
            let mut lists: Vec<(i32, Vec<i32>)> = wanted
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            lists.sort_by_key(|(p, _)| *p);
            lists.into_iter().map(|(_, l)| l).collect::<Vec<_>>()
        });
        let may_create = cx.allowed_cluster(Operation::Create)
            || cx.allowed_topic(Operation::Create, wanted.name.0.as_str());
        let outcome = if !may_create {
            Err(KafkaError::new(
                codes::TOPIC_AUTHORIZATION_FAILED,
                format!(
                    "{} may not create topic {:?}",
                    cx.principal,
                    wanted.name.0.as_str()
                ),
            ))
        } else if assignments.is_some()
            && (wanted.num_partitions != -1 || wanted.replication_factor != -1)
        {
            Err(KafkaError::new(
                codes::INVALID_REQUEST,
                "with replica assignments, num_partitions and replication_factor must be -1",
            ))
        } else {
            broker
                .cluster
                .create_topic(
                    NewTopic {
                        name,
                        partitions,
                        replication_factor: wanted.replication_factor,
                        assignments,
                        configs,
                    },
                    broker.config.default_replication_factor,
                    request.validate_only,
                )
                .await
        };
        topics.push(match outcome {
            // topic_id exists from v7; num_partitions and replication_factor from v5.
            Ok((id, rf)) if cx.version >= 5 => result
                .with_topic_id(if cx.version >= 7 {
                    id
                } else {
                    uuid::Uuid::nil()
                })
                .with_num_partitions(partitions)
                .with_replication_factor(rf),
            Ok(_) => result,
            Err(error) => result
                .with_error_code(error.code)
                .with_error_message(Some(sb(error.message))),
        });
    }
    broker
        .replicas
        .wait_reconciled(broker.cluster.view().applied_index)
        .await;
    CreateTopicsResponse::default().with_topics(topics)
}

/// Handles DeleteTopics (by name, or by id from v6).
pub async fn delete_topics(cx: &Context<'_>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
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
    let mut responses = Vec::with_capacity(names.len());
    for (name, id) in names {
        let view = broker.cluster.view();
        let name = name.or_else(|| {
            view.meta
                .topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(n, _)| n.clone())
        });
        // topic_id exists from v6, error_message from v5.
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(sb(n))))
            .with_topic_id(if cx.version >= 6 {
                id
            } else {
                uuid::Uuid::nil()
            });
        let outcome = match &name {
            Some(name) if !cx.allowed_topic(Operation::Delete, name) => Err(KafkaError::new(
                codes::TOPIC_AUTHORIZATION_FAILED,
                format!("{} may not delete topic {name:?}", cx.principal),
            )),
            Some(name) => broker.cluster.delete_topic(name).await,
            None => Err(KafkaError::new(
                codes::UNKNOWN_TOPIC_ID,
                format!("no topic with id {id}"),
            )),
        };
        responses.push(match outcome {
            Ok(()) => result,
            Err(error) if cx.version >= 5 => result
                .with_error_code(error.code)
                .with_error_message(Some(sb(error.message))),
            Err(error) => result.with_error_code(error.code),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions.
pub async fn create_partitions(
    cx: &Context<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.0.as_str().to_owned();
        let result = CreatePartitionsTopicResult::default().with_name(wanted.name);
        let outcome = if !cx.allowed_topic(Operation::Alter, &name) {
            Err(KafkaError::new(
                codes::TOPIC_AUTHORIZATION_FAILED,
                format!("{} may not alter topic {name:?}", cx.principal),
            ))
        } else if wanted.assignments.is_some() {
            Err(KafkaError::new(
                codes::INVALID_REQUEST,
                "explicit assignments of new partitions are not supported; omit them",
            ))
        } else {
            cx.broker
                .cluster
                .create_partitions(&name, wanted.count, request.validate_only)
                .await
        };
        results.push(match outcome {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(error.code)
                .with_error_message(Some(sb(error.message))),
        });
    }
    cx.broker
        .replicas
        .wait_reconciled(cx.broker.cluster.view().applied_index)
        .await;
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
                RESOURCE_TOPIC if !cx.allowed_topic(Operation::DescribeConfigs, &name) => {
                    Err(KafkaError::new(
                        codes::TOPIC_AUTHORIZATION_FAILED,
                        format!(
                            "{} may not describe the configs of topic {name:?}",
                            cx.principal
                        ),
                    ))
                }
                RESOURCE_BROKER if !cx.allowed_cluster(Operation::DescribeConfigs) => {
                    Err(KafkaError::new(
                        codes::CLUSTER_AUTHORIZATION_FAILED,
                        format!("{} may not describe broker configs", cx.principal),
                    ))
                }
                RESOURCE_TOPIC => match broker.cluster.view().meta.topics.get(&name) {
                    Some(topic) => Ok(topic_config::describe(&topic.configs)
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
                        .chain(
                            crate::mirror::topic_mirror_configs(topic)
                                .into_iter()
                                .map(|(k, v)| (k, v, SOURCE_DEFAULT)),
                        )
                        .collect()),
                    None => Err(KafkaError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no topic {name:?}"),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == broker.config.node_id.to_string() => {
                    let view = broker.cluster.view();
                    let links = if name.is_empty() {
                        crate::mirror::link_configs(&view.meta.links)
                    } else {
                        Vec::new()
                    };
                    // Each link's status as this broker sees it (read-only).
                    let statuses = view
                        .meta
                        .links
                        .keys()
                        .filter(|_| name.is_empty())
                        .map(|link| {
                            (
                                format!("hdi.link.{link}.status"),
                                crate::mirror::link_status(broker, link),
                                SOURCE_STATIC_BROKER,
                            )
                        });
                    // This broker's mirror partitions of each link (read-only, JSON).
                    let partitions =
                        view.meta
                            .links
                            .keys()
                            .filter(|_| !name.is_empty())
                            .map(|link| {
                                (
                                    format!("hdi.link.{link}.partitions"),
                                    crate::mirror::partitions_status(broker, link),
                                    SOURCE_STATIC_BROKER,
                                )
                            });
                    Ok(links
                        .into_iter()
                        .map(|(k, v)| (k, v, SOURCE_DYNAMIC_DEFAULT_BROKER))
                        .chain(statuses)
                        .chain(partitions)
                        .chain([
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
                        .collect())
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
                            // A link's password is kept, never shown (as Kafka's sensitive configs).
                            let sensitive = source == SOURCE_DYNAMIC_DEFAULT_BROKER
                                && k.ends_with(crate::mirror::SENSITIVE_SUFFIX);
                            let read_only = (resource.resource_type == RESOURCE_BROKER
                                && source != SOURCE_DYNAMIC_DEFAULT_BROKER)
                                || k.starts_with("hdi.mirror.");
                            DescribeConfigsResourceResult::default()
                                .with_name(sb(k))
                                .with_value((!sensitive).then(|| sb(v)))
                                .with_is_sensitive(sensitive)
                                .with_config_source(source)
                                .with_read_only(read_only)
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

async fn alter(
    cx: &Context<'_>,
    resource_type: i8,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), KafkaError> {
    if resource_type == RESOURCE_BROKER && name.is_empty() {
        // Cluster-wide configs: the cluster links (`crate::mirror`).
        if !cx.allowed_cluster(Operation::AlterConfigs) {
            return Err(KafkaError::new(
                codes::CLUSTER_AUTHORIZATION_FAILED,
                format!("{} may not alter cluster-wide configs", cx.principal),
            ));
        }
        return cx
            .broker
            .cluster
            .alter_links(changes, incremental, validate_only)
            .await;
    }
    if resource_type != RESOURCE_TOPIC {
        return Err(KafkaError::new(
            codes::INVALID_REQUEST,
            "only topic configs and cluster-wide configs (broker \"\") can be altered",
        ));
    }
    if !cx.allowed_topic(Operation::AlterConfigs, name) {
        return Err(KafkaError::new(
            codes::TOPIC_AUTHORIZATION_FAILED,
            format!(
                "{} may not alter the configs of topic {name:?}",
                cx.principal
            ),
        ));
    }
    cx.broker
        .cluster
        .alter_topic_configs(name, changes, incremental, validate_only)
        .await
}

/// Handles AlterConfigs (replaces a topic's explicit configs).
pub async fn alter_configs(cx: &Context<'_>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
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
        responses.push(
            match alter(
                cx,
                resource.resource_type,
                resource.resource_name.as_str(),
                changes,
                false,
                request.validate_only,
            )
            .await
            {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.code)
                    .with_error_message(Some(sb(error.message))),
            },
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Handles IncrementalAlterConfigs (SET and DELETE; APPEND/SUBTRACT apply to list configs, which
/// no supported topic config is).
pub async fn incremental_alter_configs(
    cx: &Context<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
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
            None => {
                alter(
                    cx,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    changes,
                    true,
                    request.validate_only,
                )
                .await
            }
        };
        responses.push(match outcome {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(error.code)
                .with_error_message(Some(sb(error.message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Handles DescribeCluster: the unfenced brokers and the controller (the quorum leader).
pub fn describe_cluster(cx: &Context<'_>) -> DescribeClusterResponse {
    let broker = cx.broker;
    let view = broker.cluster.view();
    DescribeClusterResponse::default()
        .with_cluster_id(sb(view.meta.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.cluster.leader_id().unwrap_or(-1)))
        .with_brokers(
            view.meta
                .live_brokers()
                .filter_map(|b| b.endpoint(cx.listener).map(|endpoint| (b, endpoint)))
                .map(|(b, (host, port))| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(sb(host.to_owned()))
                        .with_port(port)
                        .with_rack(b.rack.clone().map(sb))
                })
                .collect(),
        )
}
