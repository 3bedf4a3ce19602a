//! Topic administration through the metadata quorum: validation happens here (so a bad request
//! never reaches the Raft log), the change is proposed, and the caller gets the outcome once the
//! change is applied on this broker.

use hdi_kafka_client::codes;
use uuid::Uuid;

use super::Cluster;
use super::metadata::{BrokerId, Command, Outcome};
use crate::state::{KafkaError, validate_topic_name};
use crate::topic_config::{self, TopicConfigs};

fn unknown_topic(name: &str) -> KafkaError {
    KafkaError::new(
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        format!("no topic {name:?}"),
    )
}

/// What a topic creation asks for.
#[derive(Clone, Debug)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor; -1 for the broker default (capped at the live brokers).
    pub replication_factor: i16,
    /// Explicit replica lists, if given.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    /// Configs.
    pub configs: TopicConfigs,
}

impl Cluster {
    /// Creates a topic (or only validates it). Returns its id and replication factor.
    ///
    /// # Errors
    /// INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_CONFIG, INVALID_REPLICATION_FACTOR,
    /// INVALID_REPLICA_ASSIGNMENT, TOPIC_ALREADY_EXISTS, or REQUEST_TIMED_OUT.
    pub async fn create_topic(
        &self,
        topic: NewTopic,
        default_replication_factor: i16,
        validate_only: bool,
    ) -> Result<(Uuid, i16), KafkaError> {
        validate_topic_name(&topic.name)?;
        let partitions = topic
            .assignments
            .as_ref()
            .map_or(topic.partitions, |a| a.len() as i32);
        if !(1..=10_000).contains(&partitions) {
            return Err(KafkaError::new(
                codes::INVALID_PARTITIONS,
                format!("partitions must be 1-10000, got {partitions}"),
            ));
        }
        for (key, value) in &topic.configs {
            topic_config::validate(key, value)
                .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
        }
        topic_config::validate_together(&topic.configs)
            .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
        let view = self.view();
        let live = view.meta.live_brokers().count();
        let rf = match (&topic.assignments, topic.replication_factor) {
            (Some(lists), _) => lists.first().map_or(1, |l| l.len() as i16),
            (None, -1) => default_replication_factor
                .min(i16::try_from(live).unwrap_or(i16::MAX))
                .max(1),
            (None, rf) if rf < 1 => {
                return Err(KafkaError::new(
                    codes::INVALID_REPLICATION_FACTOR,
                    format!("replication factor must be at least 1, got {rf}"),
                ));
            }
            (None, rf) => rf,
        };
        if topic.assignments.is_none() && usize::try_from(rf).unwrap_or(0) > live {
            return Err(KafkaError::new(
                codes::INVALID_REPLICATION_FACTOR,
                format!("replication factor {rf} is larger than the {live} available brokers"),
            ));
        }
        if let Some(min) = topic.configs.get("min.insync.replicas")
            && min.parse::<i16>().is_ok_and(|m| m > rf)
        {
            return Err(KafkaError::new(
                codes::INVALID_CONFIG,
                format!("min.insync.replicas {min} is larger than the replication factor {rf}"),
            ));
        }
        if view.meta.topics.contains_key(&topic.name) {
            return Err(KafkaError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {:?} already exists", topic.name),
            ));
        }
        let id = Uuid::new_v4();
        if validate_only {
            return Ok((id, rf));
        }
        Outcome::of(
            self.propose(Command::CreateTopic {
                name: topic.name.clone(),
                id,
                partitions,
                replication_factor: rf,
                assignments: topic.assignments,
                configs: topic.configs,
                mirror: None,
            })
            .await,
        )?;
        tracing::info!(topic = %topic.name, partitions, replication_factor = rf, "created topic");
        Ok((id, rf))
    }

    /// Deletes a topic.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC_OR_PARTITION or REQUEST_TIMED_OUT.
    pub async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        if !self.view().meta.topics.contains_key(name) {
            return Err(unknown_topic(name));
        }
        Outcome::of(
            self.propose(Command::DeleteTopic {
                name: name.to_owned(),
            })
            .await,
        )?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS or REQUEST_TIMED_OUT.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let view = self.view();
        let Some(topic) = view.meta.topics.get(name) else {
            return Err(unknown_topic(name));
        };
        if let Some(link) = &topic.mirror {
            return Err(crate::state::mirror_read_only(name, link));
        }
        let current = topic.partitions.len() as i32;
        if count <= current || count > 10_000 {
            return Err(KafkaError::new(
                codes::INVALID_PARTITIONS,
                format!(
                    "topic has {current} partitions; the new count must be larger (and at most 10000), got {count}"
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        Outcome::of(
            self.propose(Command::CreatePartitions {
                name: name.to_owned(),
                count,
            })
            .await,
        )
    }

    /// Replaces (`incremental = false`) or updates a topic's explicit configs; `None` deletes a
    /// key.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG or REQUEST_TIMED_OUT.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let view = self.view();
        let Some(topic) = view.meta.topics.get(name) else {
            return Err(unknown_topic(name));
        };
        let mut configs = if incremental {
            topic.configs.clone()
        } else {
            TopicConfigs::new()
        };
        for (key, value) in changes {
            if let Some(link) = &topic.mirror
                && topic_config::SYNCED_CONFIGS.contains(&key.as_str())
            {
                return Err(KafkaError::new(
                    codes::POLICY_VIOLATION,
                    format!(
                        "{key} of topic {name:?} is copied from its source by cluster link {link:?}: change it there"
                    ),
                ));
            }
            match value {
                Some(value) => {
                    topic_config::validate(&key, &value)
                        .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
                    configs.insert(key, value);
                }
                None => {
                    configs.remove(&key);
                }
            }
        }
        topic_config::validate_together(&configs)
            .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
        if validate_only {
            return Ok(());
        }
        Outcome::of(
            self.propose(Command::SetTopicConfigs {
                name: name.to_owned(),
                configs,
            })
            .await,
        )
    }
}
