//! Metadata: brokers (this one), the cluster id, and topics with their partitions; auto-creates
//! unknown topics when the request and the broker allow it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{Context, sb};
use crate::codes;
use crate::state::{Topic, validate_topic_name};

/// Handles Metadata.
pub fn metadata(cx: &Context<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = cx.broker;
    let node = BrokerId(broker.config.node_id);
    let mut topics = Vec::new();
    // In v0 the topic list is not nullable: an empty list means every topic.
    let requested = match request.topics {
        Some(list) if list.is_empty() && cx.version == 0 => None,
        other => other,
    };
    match requested {
        None => topics.extend(
            broker
                .topics
                .all()
                .iter()
                .map(|t| describe(t, node, cx.version)),
        ),
        Some(requested) => {
            // Before v4 auto-creation was implied.
            let allow_create = (cx.version < 4 || request.allow_auto_topic_creation)
                && broker.config.auto_create_topics;
            for wanted in requested {
                let topic = match &wanted.name {
                    Some(name) => {
                        let name = name.0.as_str();
                        match broker.topics.get(name) {
                            Some(topic) => Ok(topic),
                            None if allow_create => match validate_topic_name(name) {
                                Err(e) => Err((e.code, name.to_owned())),
                                Ok(()) => super::blocking(|| {
                                    broker
                                        .topics
                                        .create(
                                            name,
                                            broker.config.default_partitions,
                                            Default::default(),
                                            false,
                                        )
                                        .or_else(|e| broker.topics.get(name).ok_or(e))
                                        .map_err(|e| (e.code, name.to_owned()))
                                }),
                            },
                            None => Err((codes::UNKNOWN_TOPIC_OR_PARTITION, name.to_owned())),
                        }
                    }
                    None => broker
                        .topics
                        .get_by_id(wanted.topic_id)
                        .ok_or((codes::UNKNOWN_TOPIC_ID, String::new())),
                };
                topics.push(match topic {
                    Ok(topic) => describe(&topic, node, cx.version),
                    Err((code, name)) => MetadataResponseTopic::default()
                        .with_error_code(code)
                        .with_name(if name.is_empty() {
                            None
                        } else {
                            Some(TopicName(sb(name)))
                        })
                        .with_topic_id(if cx.version >= 10 {
                            wanted.topic_id
                        } else {
                            uuid::Uuid::nil()
                        }),
                });
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(sb(broker.config.advertised_host.clone()))
                .with_port(broker.config.advertised_port),
        ])
        // cluster_id exists from v2, controller_id from v1.
        .with_cluster_id((cx.version >= 2).then(|| sb(broker.cluster_id.clone())))
        .with_controller_id(if cx.version >= 1 { node } else { BrokerId(-1) })
        .with_topics(topics)
}

fn describe(topic: &Arc<Topic>, node: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(topic.name.clone()))))
        .with_topic_id(if version >= 10 {
            topic.id
        } else {
            uuid::Uuid::nil()
        })
        .with_partitions(partitions)
}
