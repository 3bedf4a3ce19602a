//! Applying a cluster's objects to a Kubernetes API server: server-side apply under one field
//! manager (forced, as controllers should: the desired state is ours), the anchor ConfigMap that
//! owns the objects of a cluster made through REST, and pruning what a smaller spec no longer
//! names (a removed pool). Deleting the owner lets the garbage collector remove everything else.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{ByteString, NamespaceResourceScope};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{self, Children};
use crate::{CLUSTER_LABEL, MANAGED_BY};

/// The field manager of everything the control plane applies.
pub const FIELD_MANAGER: &str = "hdi-control-plane";

/// Applies clusters' objects through one client.
#[derive(Clone)]
pub struct Applier {
    client: Client,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

async fn apply_one<K>(client: &Client, object: &K) -> Result<K, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
    K::DynamicType: Default,
{
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

/// Deletes the objects of kind `K` labelled for `cluster` whose names `keep` lacks.
async fn prune<K>(
    client: &Client,
    namespace: &str,
    cluster: &str,
    keep: &[String],
) -> Result<Vec<String>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + std::fmt::Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{CLUSTER_LABEL}={cluster},app.kubernetes.io/managed-by={MANAGED_BY}");
    let mut removed = Vec::new();
    for object in api.list(&ListParams::default().labels(&selector)).await? {
        let name = object.name_any();
        if !keep.contains(&name) {
            api.delete(&name, &DeleteParams::background()).await?;
            removed.push(name);
        }
    }
    Ok(removed)
}

fn names<K: Resource>(objects: &[K]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

impl Applier {
    /// An applier over `client`.
    pub fn new(client: Client) -> Applier {
        Applier { client }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Applies every object, then deletes those of the cluster the set no longer names.
    /// Returns the names pruned.
    ///
    /// # Errors
    /// The API server refused or could not be reached; applying again is safe.
    pub async fn apply(
        &self,
        namespace: &str,
        cluster: &str,
        children: &Children,
    ) -> Result<Vec<String>, kube::Error> {
        for set in &children.stateful_sets {
            apply_one(&self.client, set).await?;
        }
        for service in &children.services {
            apply_one(&self.client, service).await?;
        }
        for budget in &children.disruption_budgets {
            apply_one(&self.client, budget).await?;
        }
        for policy in &children.network_policies {
            apply_one(&self.client, policy).await?;
        }
        let mut pruned = Vec::new();
        pruned.extend(
            prune::<StatefulSet>(
                &self.client,
                namespace,
                cluster,
                &names(&children.stateful_sets),
            )
            .await?,
        );
        pruned.extend(
            prune::<Service>(&self.client, namespace, cluster, &names(&children.services)).await?,
        );
        pruned.extend(
            prune::<PodDisruptionBudget>(
                &self.client,
                namespace,
                cluster,
                &names(&children.disruption_budgets),
            )
            .await?,
        );
        pruned.extend(
            prune::<NetworkPolicy>(
                &self.client,
                namespace,
                cluster,
                &names(&children.network_policies),
            )
            .await?,
        );
        Ok(pruned)
    }

    /// Applies the anchor ConfigMap `hdi-<cluster>` of a cluster made through REST (it names the
    /// hdi cluster id) and returns it as the owner of the cluster's objects.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn anchor(
        &self,
        namespace: &str,
        cluster: &str,
        cluster_id: &str,
    ) -> Result<OwnerReference, kube::Error> {
        let mut labels = children::selector(cluster, None);
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        );
        let anchor = ConfigMap {
            metadata: ObjectMeta {
                name: Some(children::prefix(cluster)),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "cluster-id".to_owned(),
                cluster_id.to_owned(),
            )])),
            ..ConfigMap::default()
        };
        let applied = apply_one(&self.client, &anchor).await?;
        Ok(owner_of(&applied))
    }

    /// Applies a Secret owned by `owner`, with `data` as its keys.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn secret(
        &self,
        namespace: &str,
        name: &str,
        cluster: &str,
        owner: &OwnerReference,
        data: BTreeMap<String, Vec<u8>>,
    ) -> Result<(), kube::Error> {
        let mut labels = children::selector(cluster, None);
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        );
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                owner_references: Some(vec![owner.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        apply_one(&self.client, &secret).await?;
        Ok(())
    }

    /// Deletes the anchor of a REST cluster (foreground: its objects go first). Absent is fine.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn delete_anchor(&self, namespace: &str, cluster: &str) -> Result<(), kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        match api.delete(&children::prefix(cluster), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(other) => Err(other),
        }
    }
}

/// The controller owner reference to `object`.
pub fn owner_of<K: Resource<DynamicType = ()>>(object: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.meta().name.clone().unwrap_or_default(),
        uid: object.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
