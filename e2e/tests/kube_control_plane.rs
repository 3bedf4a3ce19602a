//! The Kubernetes test harness (`hdi_e2e::KubeControlPlane`) against the real binaries: the API
//! serves and authorizes with RBAC; with the controller manager, the scheduler and kwok nodes in
//! three zones a StatefulSet with claims spreads over the zones, runs, binds its claims, and is
//! garbage-collected with everything it made when its owner goes; and objects survive a restart
//! of the API server. Each prints how long its steps took.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hdi_e2e::kube::{KWOK_STORAGE_CLASS, ZONE_LABEL};
use hdi_e2e::{KubeControlPlane, eventually};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

fn print_timings(what: &str, k8s: &KubeControlPlane) {
    for (step, took) in k8s.timings() {
        println!("{what}: {step}: {:.2}s", took.as_secs_f64());
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> anyhow::Result<ConfigMap> {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": data,
    }))?)
}

/// The API server alone: namespaces and ConfigMaps round-trip through `kube::Api`, RBAC denies a
/// service account what no role grants and allows what one does, and dropping the harness leaves
/// no process behind.
#[tokio::test]
async fn api_server_serves_objects_and_authorizes_with_rbac() -> anyhow::Result<()> {
    let k8s = KubeControlPlane::start().await?;
    print_timings("api only", &k8s);
    let client = k8s.client();
    let version = client.apiserver_version().await?;
    ensure!(version.git_version == "v1.37.2", "{version:?}");
    ensure!(k8s.kubeconfig().is_file());

    let step = Instant::now();
    k8s.create_namespace("hdi-a").await?;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "hdi-a");
    config_maps
        .create(
            &PostParams::default(),
            &config_map("settings", &[("retention", "7d"), ("brokers", "3")])?,
        )
        .await?;
    let read = config_maps.get("settings").await?;
    let data = read.data.context("the ConfigMap read back has no data")?;
    ensure!(
        data.get("retention").map(String::as_str) == Some("7d"),
        "{data:?}"
    );
    ensure!(
        data.get("brokers").map(String::as_str) == Some("3"),
        "{data:?}"
    );
    println!(
        "api only: namespace + ConfigMap round trip: {:.3}s",
        step.elapsed().as_secs_f64()
    );

    // A service account with no role may not read ConfigMaps; a Role and a RoleBinding let it.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "hdi-a");
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "reader"}}))?,
        )
        .await?;
    let reader = k8s.service_account_client("hdi-a", "reader").await?;
    let as_reader = Api::<ConfigMap>::namespaced(reader, "hdi-a");
    match as_reader.get("settings").await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => anyhow::bail!("expected 403 Forbidden without a role, got {other:?}"),
    }
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "config-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }))?;
    Api::<Role>::namespaced(client.clone(), "hdi-a")
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reader-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "hdi-a"}],
    }))?;
    Api::<RoleBinding>::namespaced(client.clone(), "hdi-a")
        .create(&PostParams::default(), &binding)
        .await?;
    let (_, took) = eventually("the role to apply", Duration::from_secs(10), || async {
        as_reader.get("settings").await.ok()
    })
    .await?;
    println!(
        "api only: RoleBinding effective after {:.3}s",
        took.as_secs_f64()
    );
    match as_reader.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => anyhow::bail!("expected 403 Forbidden for list, got {other:?}"),
    }

    let dir = k8s.dir().to_owned();
    ensure!(!hdi_e2e::processes_under(&dir).is_empty());
    drop(k8s);
    let left = hdi_e2e::processes_under(&dir);
    ensure!(left.is_empty(), "processes left after drop: {left:?}");
    Ok(())
}

/// A StatefulSet of 3 with a claim template and a zone spread constraint, owned by a ConfigMap,
/// on kwok nodes in 3 zones: 3 pods Running and Ready, one per zone, with loopback pod IPs, and 3
/// claims Bound to kwok volumes. Deleting the owner (background propagation) garbage-collects the
/// StatefulSet, its pods and (retention policy Delete) its claims and volumes.
#[tokio::test]
async fn statefulset_spreads_over_zones_binds_claims_and_is_garbage_collected() -> anyhow::Result<()>
{
    let zones = ["zone-a", "zone-b", "zone-c"];
    let k8s = KubeControlPlane::builder()
        .with_controllers()
        .with_kwok_nodes(&zones)
        .start()
        .await?;
    print_timings("controllers + kwok", &k8s);
    let client = k8s.client();
    let ns = "kafka";
    k8s.create_namespace(ns).await?;

    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let owner = config_maps
        .create(&PostParams::default(), &config_map("cluster-owner", &[])?)
        .await?;
    let owner_uid = owner.metadata.uid.context("the owner has no uid")?;
    let statefulset: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "kafka",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "cluster-owner", "uid": owner_uid,
            }],
        },
        "spec": {
            "replicas": 3,
            "serviceName": "kafka",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "kafka"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": {"app": "kafka"}},
                "spec": {
                    "containers": [{
                        "name": "broker",
                        "image": "hdi/node-agent:test",
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": ZONE_LABEL,
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": "kafka"}},
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }],
        },
    }))?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let step = Instant::now();
    statefulsets
        .create(&PostParams::default(), &statefulset)
        .await?;

    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let by_app = ListParams::default().labels("app=kafka");
    let (running, _) = eventually(
        "3 pods Running and Ready",
        Duration::from_secs(60),
        || async {
            let list = pods.list(&by_app).await.ok()?;
            let ready: Vec<Pod> = list.items.into_iter().filter(pod_ready).collect();
            (ready.len() == 3).then_some(ready)
        },
    )
    .await
    .with_context(|| k8s.logs())?;
    println!(
        "controllers + kwok: StatefulSet created -> 3 pods Running and Ready: {:.2}s",
        step.elapsed().as_secs_f64()
    );
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let zone_of: BTreeMap<String, String> = nodes
        .items
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            let zone = node.metadata.labels.as_ref()?.get(ZONE_LABEL)?.clone();
            Some((name, zone))
        })
        .collect();
    let mut used_zones = BTreeSet::new();
    for pod in &running {
        let spec = pod.spec.as_ref().context("a pod without spec")?;
        let node = spec.node_name.clone().context("a Ready pod on no node")?;
        ensure!(
            k8s.kwok_nodes().contains(&node),
            "{node} is not a kwok node"
        );
        used_zones.insert(zone_of.get(&node).cloned().unwrap_or_default());
        let ip = pod
            .status
            .as_ref()
            .and_then(|status| status.pod_ip.clone())
            .unwrap_or_default();
        ensure!(
            ip.starts_with("127.64."),
            "pod IP {ip:?} is not in the loopback pod CIDR"
        );
    }
    ensure!(
        used_zones == zones.iter().map(|z| (*z).to_owned()).collect(),
        "pods in zones {used_zones:?}"
    );

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    let (bound, _) = eventually("3 claims Bound", Duration::from_secs(30), || async {
        let list = claims.list(&ListParams::default()).await.ok()?;
        let bound: Vec<String> = list
            .items
            .iter()
            .filter(|claim| {
                claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                    && claim
                        .spec
                        .as_ref()
                        .and_then(|s| s.storage_class_name.as_deref())
                        == Some(KWOK_STORAGE_CLASS)
            })
            .filter_map(|claim| claim.metadata.name.clone())
            .collect();
        (bound.len() == 3).then_some(bound)
    })
    .await
    .with_context(|| k8s.logs())?;
    ensure!(
        bound.iter().all(|name| name.starts_with("data-kafka-")),
        "{bound:?}"
    );
    let volumes = Api::<PersistentVolume>::all(client.clone());
    eventually(
        "3 kwok volumes Bound to the claims",
        Duration::from_secs(30),
        || async {
            let list = volumes.list(&ListParams::default()).await.ok()?;
            let bound = list
                .items
                .iter()
                .filter(|volume| {
                    let spec = volume.spec.as_ref();
                    let claim = spec.and_then(|s| s.claim_ref.as_ref());
                    claim.and_then(|c| c.namespace.as_deref()) == Some(ns)
                        && claim
                            .and_then(|c| c.name.as_ref())
                            .is_some_and(|name| bound.contains(name))
                        && spec.and_then(|s| s.storage_class_name.as_deref())
                            == Some(KWOK_STORAGE_CLASS)
                        && volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                })
                .count();
            (bound == 3).then_some(())
        },
    )
    .await
    .with_context(|| k8s.logs())?;
    eventually("readyReplicas 3", Duration::from_secs(30), || async {
        let status = statefulsets.get("kafka").await.ok()?.status?;
        (status.ready_replicas == Some(3)).then_some(())
    })
    .await?;

    let step = Instant::now();
    config_maps
        .delete("cluster-owner", &DeleteParams::background())
        .await?;
    eventually(
        "the StatefulSet, its pods, claims and volumes to be collected",
        Duration::from_secs(60),
        || async {
            let statefulset = statefulsets.get_opt("kafka").await.ok()?;
            let pods = pods.list(&by_app).await.ok()?.items.len();
            let claims = claims.list(&ListParams::default()).await.ok()?.items.len();
            let volumes = volumes.list(&ListParams::default()).await.ok()?.items.len();
            (statefulset.is_none() && pods == 0 && claims == 0 && volumes == 0).then_some(())
        },
    )
    .await
    .with_context(|| k8s.logs())?;
    println!(
        "controllers + kwok: owner deleted -> StatefulSet, pods, claims, volumes gone: {:.2}s",
        step.elapsed().as_secs_f64()
    );
    Ok(())
}

fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status.conditions.as_ref().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Objects live in etcd: after the API server is killed and started again, what was written
/// reads back unchanged (same uid), and the same client writes again.
#[tokio::test]
async fn objects_survive_an_api_server_restart() -> anyhow::Result<()> {
    let mut k8s = KubeControlPlane::start().await?;
    print_timings("restart", &k8s);
    let client = k8s.client();
    k8s.create_namespace("hdi-c").await?;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "hdi-c");
    let before = config_maps
        .create(
            &PostParams::default(),
            &config_map("survivor", &[("k", "v")])?,
        )
        .await?;

    let down = k8s.restart_apiserver().await?;
    println!(
        "restart: kube-apiserver killed -> ready again: {:.2}s",
        down.as_secs_f64()
    );

    let after = config_maps.get("survivor").await?;
    ensure!(after.metadata.uid == before.metadata.uid, "{after:?}");
    ensure!(after.data == before.data, "{after:?}");
    config_maps
        .create(&PostParams::default(), &config_map("after", &[])?)
        .await?;
    let names: Vec<String> = config_maps
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    ensure!(
        names.contains(&"survivor".to_owned()) && names.contains(&"after".to_owned()),
        "{names:?}"
    );
    Ok(())
}
