//! The `HdiTopic` controller: a topic of a Kafka cluster of the same namespace (workspace),
//! created, grown and reconfigured through the service layer's topic calls (the same checks
//! and Kafka refusals as REST), deleted when the resource is. The resource is the topic's
//! desired state: partitions only grow, and the configs it names are exactly the topic's
//! explicit configs (others are reset) on every reconcile, so a change made over REST or Kafka
//! is undone at the next resync.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdi_k8s::crd::{HdiTopic, HdiTopicStatus};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt as _};

use super::{
    Context, Observed, OperatorError, Reconciled, cluster_going, conditions, deleted, failed,
    same_conditions, write_status,
};
use crate::service::{ServiceError, TopicInput, TopicPatchInput};

impl Reconciled for HdiTopic {
    async fn apply(
        object: Arc<Self>,
        context: Arc<Context>,
        api: Api<Self>,
    ) -> Result<Action, OperatorError> {
        apply(&object, &context, &api).await
    }

    async fn cleanup(object: Arc<Self>, context: Arc<Context>) -> Result<Action, OperatorError> {
        cleanup(&object, &context).await
    }
}

fn topic_name(object: &HdiTopic) -> String {
    object
        .spec
        .topic_name
        .clone()
        .unwrap_or_else(|| object.name_any())
}

/// What to change on an existing topic so it matches the spec (`None`: nothing).
pub fn changes(
    spec_partitions: u32,
    spec_configs: &BTreeMap<String, String>,
    partitions: u32,
    explicit: &BTreeMap<String, String>,
) -> Option<TopicPatchInput> {
    let mut configs: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (key, value) in spec_configs {
        if explicit.get(key) != Some(value) {
            configs.insert(key.clone(), Some(value.clone()));
        }
    }
    for key in explicit.keys() {
        if !spec_configs.contains_key(key) {
            configs.insert(key.clone(), None);
        }
    }
    let grow = (spec_partitions > partitions).then_some(spec_partitions);
    (grow.is_some() || !configs.is_empty()).then(|| TopicPatchInput {
        partitions: grow,
        configs: (!configs.is_empty()).then_some(configs),
    })
}

async fn apply(
    object: &HdiTopic,
    context: &Context,
    api: &Api<HdiTopic>,
) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let cluster = &object.spec.cluster_ref;
    let topic = topic_name(object);
    let generation = object.metadata.generation.unwrap_or(0);
    let previous = object.status.clone().unwrap_or_default();
    let mut status = HdiTopicStatus {
        observed_generation: generation,
        ..previous.clone()
    };
    let mut observed = Observed::default();
    super::cluster::ensure_workspace(context, &namespace).await?;
    let service = &context.service;
    let identity = &context.identity;
    let result: Result<(), ServiceError> = async {
        let current = match service
            .topic_get(identity, &namespace, cluster, &topic)
            .await
        {
            Ok(view) => view,
            Err(ServiceError::NotFound { what }) if what.contains("topic") => {
                let created = service
                    .topic_create(
                        identity,
                        &namespace,
                        cluster,
                        TopicInput {
                            name: topic.clone(),
                            partitions: object.spec.partitions,
                            replication_factor: object.spec.replication_factor,
                            configs: object.spec.config.clone(),
                        },
                    )
                    .await?;
                context
                    .event(object, false, "Created", format!("topic {topic} created"))
                    .await;
                created
            }
            Err(other) => return Err(other),
        };
        let explicit = current
            .configs
            .as_ref()
            .map(|c| c.explicit.clone())
            .unwrap_or_default();
        let partitions = u32::try_from(current.partitions.len()).unwrap_or(u32::MAX);
        let current = match changes(
            object.spec.partitions,
            &object.spec.config,
            partitions,
            &explicit,
        ) {
            Some(patch) => {
                let note = format!("{patch:?}");
                let changed = service
                    .topic_patch(identity, &namespace, cluster, &topic, patch)
                    .await?;
                context.event(object, false, "Updated", note).await;
                changed
            }
            None => current,
        };
        status.topic_id = current.topic_id.map(|id| id.to_string());
        status.partitions = u32::try_from(current.partitions.len()).unwrap_or(u32::MAX);
        Ok(())
    }
    .await;
    let mut again = context.resync;
    match result {
        Ok(()) => {
            observed.ready = true;
            observed.reason = "Created".to_owned();
            observed.message = format!("topic {topic} of cluster {cluster}");
        }
        Err(error) => {
            let new_generation = previous.observed_generation != generation;
            (observed, again) =
                failed(context, object, &previous.conditions, new_generation, error).await?;
        }
    }
    status.conditions = conditions(&observed, generation, &previous.conditions);
    let unchanged = status.observed_generation == previous.observed_generation
        && status.topic_id == previous.topic_id
        && status.partitions == previous.partitions
        && same_conditions(&status.conditions, &previous.conditions);
    if !unchanged {
        write_status(api, &object.name_any(), &status).await?;
    }
    Ok(Action::requeue(again))
}

async fn cleanup(object: &HdiTopic, context: &Context) -> Result<Action, OperatorError> {
    let namespace = object.namespace().unwrap_or_default();
    let cluster = &object.spec.cluster_ref;
    // A cluster that is gone or going takes its topics with it: nothing to call.
    if cluster_going(context, &namespace, cluster).await? {
        return Ok(Action::await_change());
    }
    let topic = topic_name(object);
    let delete = context
        .service
        .topic_delete(&context.identity, &namespace, cluster, &topic);
    deleted(context, object, format!("topic {topic}"), delete).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_grows_and_its_configs_follow_the_spec() {
        let spec = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        assert_eq!(changes(3, &spec, 3, &spec.clone()), None);
        let explicit = BTreeMap::from([
            ("retention.ms".to_owned(), "5".to_owned()),
            ("cleanup.policy".to_owned(), "delete".to_owned()),
        ]);
        let patch = changes(6, &spec, 3, &explicit).expect("a patch");
        assert_eq!(patch.partitions, Some(6));
        let configs = patch.configs.expect("configs");
        assert_eq!(configs.get("retention.ms"), Some(&Some("1000".to_owned())));
        assert_eq!(configs.get("cleanup.policy"), Some(&None));
        // Partitions never shrink.
        assert_eq!(changes(2, &spec, 3, &spec.clone()), None);
    }
}
