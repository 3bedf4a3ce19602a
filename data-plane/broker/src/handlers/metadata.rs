//! Metadata: the cluster's live brokers, its id and controller, and topics with each partition's
//! leader, leader epoch, replicas, ISR and offline replicas; auto-creates unknown topics when the
//! request and the broker allow it. Any broker answers for the whole cluster.
//!
//! With ACLs: topics the client may not `DESCRIBE` are left out of a full listing and answered
//! `TOPIC_AUTHORIZATION_FAILED` when named; auto-creation needs `CREATE` on the cluster or the
//! topic. Brokers are given by their address on the listener the client used.

use hdi_kafka_client::codes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{Context, sb};
use crate::cluster::metadata::{ClusterMetadata, TopicRecord};
use crate::cluster::topics::NewTopic;
use crate::security::acl::Operation;
use crate::state::validate_topic_name;

/// Handles Metadata.
pub async fn metadata(cx: &Context<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = cx.broker;
    let mut topics = Vec::new();
    // In v0 the topic list is not nullable: an empty list means every topic.
    let requested = match request.topics {
        Some(list) if list.is_empty() && cx.version == 0 => None,
        other => other,
    };
    match requested {
        None => {
            let view = broker.cluster.view();
            topics.extend(
                view.meta
                    .topics
                    .iter()
                    // Topics the client may not describe are left out.
                    .filter(|(name, _)| cx.allowed_topic(Operation::Describe, name))
                    .map(|(name, t)| describe(&view.meta, name, t, cx.version)),
            );
        }
        Some(requested) => {
            // Before v4 auto-creation was implied.
            let allow_create = (cx.version < 4 || request.allow_auto_topic_creation)
                && broker.config.auto_create_topics;
            for wanted in requested {
                let found: Result<String, (i16, String)> = match &wanted.name {
                    Some(name) => {
                        let name = name.0.as_str().to_owned();
                        let exists = broker.cluster.view().meta.topics.contains_key(&name);
                        let may_create = cx.allowed_cluster(Operation::Create)
                            || cx.allowed_topic(Operation::Create, &name);
                        let may_see = cx.allowed_topic(Operation::Describe, &name)
                            || (may_create && !exists && allow_create);
                        if !may_see {
                            Err((codes::TOPIC_AUTHORIZATION_FAILED, name))
                        } else if exists {
                            Ok(name)
                        } else if !allow_create || !may_create {
                            Err((codes::UNKNOWN_TOPIC_OR_PARTITION, name))
                        } else if let Err(e) = validate_topic_name(&name) {
                            Err((e.code, name))
                        } else {
                            let created = broker
                                .cluster
                                .create_topic(
                                    NewTopic {
                                        name: name.clone(),
                                        partitions: broker.config.default_partitions,
                                        replication_factor: -1,
                                        assignments: None,
                                        configs: Default::default(),
                                    },
                                    broker.config.default_replication_factor,
                                    false,
                                )
                                .await;
                            match created {
                                Ok(_) => {
                                    let index = broker.cluster.view().applied_index;
                                    broker.replicas.wait_reconciled(index).await;
                                    Ok(name)
                                }
                                Err(_) if broker.cluster.view().meta.topics.contains_key(&name) => {
                                    Ok(name)
                                }
                                // Kafka answers LEADER_NOT_AVAILABLE while a topic is being created.
                                Err(e) if e.code == codes::REQUEST_TIMED_OUT => {
                                    Err((codes::LEADER_NOT_AVAILABLE, name))
                                }
                                Err(e) => Err((e.code, name)),
                            }
                        }
                    }
                    None => broker
                        .cluster
                        .view()
                        .meta
                        .topics
                        .iter()
                        .find(|(_, t)| t.id == wanted.topic_id)
                        .map(|(n, _)| n.clone())
                        .ok_or((codes::UNKNOWN_TOPIC_ID, String::new()))
                        .and_then(|name| {
                            if cx.allowed_topic(Operation::Describe, &name) {
                                Ok(name)
                            } else {
                                Err((codes::TOPIC_AUTHORIZATION_FAILED, String::new()))
                            }
                        }),
                };
                let view = broker.cluster.view();
                topics.push(match found.as_ref().map(|n| (n, view.meta.topics.get(n))) {
                    Ok((name, Some(topic))) => describe(&view.meta, name, topic, cx.version),
                    Ok((name, None)) => error_topic(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        name.clone(),
                        wanted.topic_id,
                        cx.version,
                    ),
                    Err((code, name)) => {
                        error_topic(*code, name.clone(), wanted.topic_id, cx.version)
                    }
                });
            }
        }
    }
    let view = broker.cluster.view();
    let brokers = view
        .meta
        .live_brokers()
        // Each broker's address on the listener this client came in on.
        .filter_map(|b| b.endpoint(cx.listener).map(|endpoint| (b, endpoint)))
        .map(|(b, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(sb(host.to_owned()))
                .with_port(port)
                // rack exists from v1.
                .with_rack(if cx.version >= 1 {
                    b.rack.clone().map(sb)
                } else {
                    None
                })
        })
        .collect();
    let controller = broker.cluster.leader_id().unwrap_or(-1);
    MetadataResponse::default()
        .with_brokers(brokers)
        // cluster_id exists from v2, controller_id from v1.
        .with_cluster_id((cx.version >= 2).then(|| sb(view.meta.cluster_id.clone())))
        .with_controller_id(BrokerId(if cx.version >= 1 { controller } else { -1 }))
        .with_topics(topics)
}

fn error_topic(code: i16, name: String, id: uuid::Uuid, version: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(if name.is_empty() {
            None
        } else {
            Some(TopicName(sb(name)))
        })
        .with_topic_id(if version >= 10 { id } else { uuid::Uuid::nil() })
}

fn describe(
    meta: &ClusterMetadata,
    name: &str,
    topic: &TopicRecord,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let ids = |list: &[i32]| list.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| meta.brokers.get(r).is_none_or(|b| b.fenced))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    codes::LEADER_NOT_AVAILABLE
                } else {
                    codes::NONE
                })
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                // leader_epoch exists from v7, offline_replicas from v5.
                .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(if version >= 5 {
                    ids(&offline)
                } else {
                    Vec::new()
                })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(name.to_owned()))))
        .with_topic_id(if version >= 10 {
            topic.id
        } else {
            uuid::Uuid::nil()
        })
        .with_partitions(partitions)
}
