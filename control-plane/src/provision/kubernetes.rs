//! The Kubernetes provisioner (`--provisioner kubernetes`): a cluster's workloads run in pods.
//!
//! Each cluster lives in the namespace named like its workspace. Its pods are node agents that
//! enrol with the cluster's own enrolment token (a Secret the provisioner writes; only the
//! digest is stored), so each registers as a node of that cluster only; from there placement is
//! the local fleet's ([`LocalProvisioner::place_on`] over the cluster's own nodes), with broker
//! (or worker) `k` pinned to the pool's pod `k - 1` and the driver to the `driver` pool's pod 0,
//! so the pod a StatefulSet scale-in removes is always the one whose workload was drained and
//! forgotten. After every pass, [`Provisioner::sync`] applies the objects of `hdi_k8s::children`
//! with pool replicas = max(the spec's, the highest ordinal still placed): a pool grows at once
//! and shrinks only once its highest workload is gone. Objects are applied only when they
//! change (and every [`RESYNC`] against drift), so an idle cluster costs no API requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdi_k8s::apply::Applier;
use hdi_k8s::children::{self, ClusterPlan, PoolPlan, Ports};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{Patch, PatchParams};
use sha2::{Digest as _, Sha256};

use super::local::LocalProvisioner;
use super::{PlaceRequest, ProvisionError, Provisioner};
use crate::model::{
    ClusterId, ClusterRecord, Kind, WorkloadId, WorkloadRecord, WorkloadRole, size_spec,
};
use crate::store::Store;

/// How often unchanged objects are applied again (drift made by hand is undone by then).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Settings of the Kubernetes provisioner.
#[derive(Clone, Debug)]
pub struct KubernetesSettings {
    /// The image pods run.
    pub image: String,
    /// The control plane's URL as pods reach it.
    pub control_plane_url: String,
    /// The volume claims' storage class (the cluster's default when absent).
    pub storage_class: Option<String>,
}

/// The Kubernetes provisioner.
pub struct KubernetesProvisioner {
    local: LocalProvisioner,
    store: Store,
    applier: Applier,
    settings: KubernetesSettings,
    ports: Ports,
    /// Per cluster: the digest of the objects last applied, and when.
    applied: Mutex<HashMap<ClusterId, ([u8; 32], Instant)>>,
}

impl std::fmt::Debug for KubernetesProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProvisioner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn kube_error(what: &str, error: &kube::Error) -> ProvisionError {
    ProvisionError::Kubernetes(format!("{what}: {error}"))
}

/// The pool a workload runs in, and its pod's ordinal there.
fn pod_of(cluster: &ClusterRecord, role: WorkloadRole, ordinal: u32) -> (String, u32) {
    match role {
        WorkloadRole::Driver => ("driver".to_owned(), 0),
        WorkloadRole::Broker | WorkloadRole::Worker => (
            cluster
                .spec
                .pools
                .first()
                .map_or_else(|| "pool".to_owned(), |p| p.name.clone()),
            ordinal.saturating_sub(1),
        ),
    }
}

/// Pods wanted per pool: the spec's count, or more while a higher workload is still placed
/// (a scale-in shrinks the pool only once that workload is forgotten). Zero while deleting.
pub fn pods_wanted(cluster: &ClusterRecord, workloads: &[WorkloadRecord]) -> BTreeMap<String, u32> {
    let mut wanted = BTreeMap::new();
    let spec = if cluster.deleting {
        0
    } else {
        cluster.spec.replicas()
    };
    if let Some(pool) = cluster.spec.pools.first() {
        wanted.insert(pool.name.clone(), spec);
    }
    if cluster.kind == Kind::Spark {
        wanted.insert("driver".to_owned(), u32::from(!cluster.deleting));
    }
    for workload in workloads {
        let (pool, pod) = pod_of(cluster, workload.role, workload.ordinal);
        let entry = wanted.entry(pool).or_insert(0);
        *entry = (*entry).max(pod + 1);
    }
    wanted
}

impl KubernetesProvisioner {
    /// A provisioner placing through `local` (its port range's first ports are the pods'
    /// listener ports) and applying objects through `applier`.
    pub fn new(
        local: LocalProvisioner,
        store: Store,
        applier: Applier,
        settings: KubernetesSettings,
        ports: std::ops::RangeInclusive<u16>,
    ) -> KubernetesProvisioner {
        let first = *ports.start();
        KubernetesProvisioner {
            local,
            store,
            applier,
            settings,
            // What the scheduler gives the first workload at a fresh address (one per pod).
            ports: Ports {
                kafka: first,
                quorum: first.saturating_add(1),
                executor: first,
            },
            applied: Mutex::new(HashMap::new()),
        }
    }

    /// The namespace a cluster's objects live in: its workspace's name.
    pub fn namespace(cluster: &ClusterRecord) -> &str {
        &cluster.workspace
    }

    fn plan(
        &self,
        cluster: &ClusterRecord,
        workloads: &[WorkloadRecord],
        owner: OwnerReference,
    ) -> Result<ClusterPlan, ProvisionError> {
        let size = size_spec(cluster.spec.size()).ok_or_else(|| {
            ProvisionError::InsufficientCapacity(format!("unknown size {:?}", cluster.spec.size()))
        })?;
        let storage = cluster.spec.pools.first().map_or(10, |p| p.storage_gib);
        let pools = pods_wanted(cluster, workloads)
            .into_iter()
            .map(|(name, replicas)| PoolPlan {
                name,
                replicas,
                cpu_millis: size.cpu_millis,
                memory_bytes: size.memory_bytes,
                storage_gib: storage,
            })
            .collect();
        Ok(ClusterPlan {
            name: cluster.name.clone(),
            namespace: Self::namespace(cluster).to_owned(),
            cluster_id: cluster.id.into_uuid().to_string(),
            kind: match cluster.kind {
                Kind::Kafka => hdi_api::ClusterKind::Kafka,
                Kind::Spark => hdi_api::ClusterKind::Spark,
            },
            pools,
            image: self.settings.image.clone(),
            control_plane_url: self.settings.control_plane_url.clone(),
            enrolment_secret: enrolment_secret(&cluster.name),
            owner,
            storage_class: self.settings.storage_class.clone(),
            ports: self.ports,
        })
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<(), ProvisionError> {
        let api: Api<Namespace> = Api::all(self.applier.client().clone());
        if api
            .get_opt(namespace)
            .await
            .map_err(|e| kube_error("read the namespace", &e))?
            .is_some()
        {
            return Ok(());
        }
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.patch(
            namespace,
            &PatchParams::apply(hdi_k8s::apply::FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| kube_error("create the namespace", &e))?;
        Ok(())
    }

    /// Writes the enrolment Secret unless it exists (a new token each time it has to).
    async fn ensure_enrolment(
        &self,
        cluster: &ClusterRecord,
        owner: &OwnerReference,
    ) -> Result<(), ProvisionError> {
        let namespace = Self::namespace(cluster);
        let name = enrolment_secret(&cluster.name);
        let api: Api<Secret> = Api::namespaced(self.applier.client().clone(), namespace);
        if api
            .get_opt(&name)
            .await
            .map_err(|e| kube_error("read the enrolment secret", &e))?
            .is_some()
        {
            return Ok(());
        }
        let token = crate::auth::new_api_token_secret()
            .map_err(|e| ProvisionError::Kubernetes(format!("enrolment token: {e}")))?;
        let token = format!("enrol_{}", token.trim_start_matches("hdi_"));
        self.store
            .cluster_enrolment_token_set(cluster.id, &crate::auth::digest(&token))
            .await?;
        self.applier
            .secret(
                namespace,
                &name,
                &cluster.name,
                owner,
                BTreeMap::from([("token".to_owned(), token.into_bytes())]),
            )
            .await
            .map_err(|e| kube_error("write the enrolment secret", &e))?;
        tracing::info!(cluster = %cluster.name, namespace, "enrolment token issued");
        Ok(())
    }
}

/// The Secret holding a cluster's enrolment token.
pub fn enrolment_secret(cluster: &str) -> String {
    format!("hdi-{cluster}-enrolment")
}

impl Provisioner for KubernetesProvisioner {
    async fn workloads(
        &self,
        cluster: &ClusterRecord,
    ) -> Result<Vec<WorkloadRecord>, ProvisionError> {
        self.local.workloads(cluster).await
    }

    async fn place(
        &self,
        cluster: &ClusterRecord,
        requests: &[PlaceRequest],
    ) -> Result<Vec<String>, ProvisionError> {
        let namespace = Self::namespace(cluster);
        let pins: BTreeMap<PlaceRequest, String> = requests
            .iter()
            .map(|request| {
                let (pool, pod) = pod_of(cluster, request.role, request.ordinal);
                let pod = format!("{}-{pod}", children::pool_object(&cluster.name, &pool));
                (*request, children::node_name(namespace, &pod))
            })
            .collect();
        self.local.place_on(cluster, requests, true, &pins).await
    }

    async fn remove(&self, workload: WorkloadId) -> Result<(), ProvisionError> {
        self.local.remove(workload).await
    }

    async fn forget(&self, workload: WorkloadId) -> Result<(), ProvisionError> {
        self.local.forget(workload).await
    }

    async fn sync(&self, cluster: &ClusterRecord) -> Result<(), ProvisionError> {
        let workloads = self.local.workloads(cluster).await?;
        let namespace = Self::namespace(cluster).to_owned();
        // The objects (and so their digest) are a pure function of the cluster and its
        // workloads, given the owner: compute them with a placeholder owner first.
        let probe = self.plan(cluster, &workloads, Default::default())?;
        let digest: [u8; 32] = Sha256::digest(format!("{:?}", children::build(&probe))).into();
        let fresh = self
            .applied
            .lock()
            .ok()
            .and_then(|applied| applied.get(&cluster.id).copied())
            .is_some_and(|(last, at)| last == digest && at.elapsed() < RESYNC);
        if fresh {
            return Ok(());
        }
        self.ensure_namespace(&namespace).await?;
        // The custom resource that made the cluster owns its objects; a REST cluster's owner is
        // its anchor ConfigMap.
        let owner = match &cluster.k8s_owner {
            Some(owner) => OwnerReference {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            None => self
                .applier
                .anchor(
                    &namespace,
                    &cluster.name,
                    &cluster.id.into_uuid().to_string(),
                )
                .await
                .map_err(|e| kube_error("apply the cluster's anchor", &e))?,
        };
        self.ensure_enrolment(cluster, &owner).await?;
        let plan = self.plan(cluster, &workloads, owner)?;
        let pruned = self
            .applier
            .apply(&namespace, &cluster.name, &children::build(&plan))
            .await
            .map_err(|e| kube_error("apply the cluster's objects", &e))?;
        let pools: Vec<String> = plan
            .pools
            .iter()
            .map(|p| format!("{}={}", p.name, p.replicas))
            .collect();
        tracing::info!(cluster = %cluster.name, namespace, pools = %pools.join(","), ?pruned, "kubernetes objects applied");
        if let Ok(mut applied) = self.applied.lock() {
            applied.insert(cluster.id, (digest, Instant::now()));
        }
        Ok(())
    }

    async fn cluster_removed(&self, cluster: &ClusterRecord) -> Result<(), ProvisionError> {
        // A custom resource's objects go with it (its finalizer waits for this removal).
        if cluster.k8s_owner.is_none() {
            self.applier
                .delete_anchor(Self::namespace(cluster), &cluster.name)
                .await
                .map_err(|e| kube_error("delete the cluster's anchor", &e))?;
        }
        if let Ok(mut applied) = self.applied.lock() {
            applied.remove(&cluster.id);
        }
        Ok(())
    }
}
