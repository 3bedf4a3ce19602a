//! hdi on Kubernetes against a real API server, controller manager and scheduler (built from
//! Go modules, `HDI_TEST_K8S_BIN`): the operator (`hdi-control-plane operator`) and the control
//! plane with `--provisioner kubernetes`, both on a fresh database.
//!
//! - API tier (kwok nodes in three zones; pods are fake): an `HdiCluster` of 3 brokers applied
//!   with kubectl becomes a StatefulSet of node agents, headless and bootstrap Services, a
//!   PodDisruptionBudget, a NetworkPolicy and an enrolment Secret, all owned by the resource;
//!   the pods run in three zones with their claims bound; the status says Reconciling with
//!   PodsReady; REST refuses to change the cluster; the schema and CEL refuse bad resources at
//!   the API server (kubectl says why), a semantically bad one is `Stalled`; `kubectl delete`
//!   removes the cluster and every object.
//! - Full path (`LocalKubelet` nodes, the stand-in for kubelet and a container runtime, run the
//!   pods as local processes): `HdiCluster` + `HdiTopic` become Ready, kcat and confluent-kafka
//!   produce and consume at the bootstrap address from the status, a Spark cluster runs an
//!   `HdiJob` whose output is checked, a scale-down below the quorum is `ScaleDownBlocked`,
//!   3 → 4 → 3 brokers (drained), a broker pod deleted comes back on the same claim with every
//!   acknowledged record.
//! - Faults: a topic and a link naming missing clusters are `Stalled`; the API server restarted
//!   mid-reconcile expires the operator's watches (410 Gone), which list again and converge; a
//!   namespace deleted takes its resources and their clusters with it.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use hdi_e2e::hdi_on_kube::{
    Hdi, bounded, cluster_resource, condition, diagnose, install_crds, kube_in_three_zones,
    kubectl, local_nodes, start_hdi, status,
};
use hdi_e2e::{KubeControlPlane, TempDir, eventually, kcat_consume_all, kcat_produce};
use hdi_k8s::crd::{HdiCluster, HdiJob, HdiReplicationLink, HdiTopic};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The operator's log filter in these tests.
const OPERATOR_LOG: &str = "info,kube=warn";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_hdi_cluster_becomes_its_objects_and_goes_away_with_them() -> anyhow::Result<()> {
    let kube = kube_in_three_zones().await?;
    let client = kube.client();
    install_crds(&client).await?;
    kube.create_namespace("bank").await?;
    let hdi = start_hdi(&kube, "kube-api-tier", OPERATOR_LOG).await;
    let result = api_tier(&kube, &hdi).await;
    if result.is_err() {
        eprintln!("{}", diagnose(&hdi, std::path::Path::new("/nonexistent")));
        eprintln!("{}", kube.log_tail("kube-controller-manager", 80));
    }
    result
}

async fn api_tier(kube: &KubeControlPlane, hdi: &Hdi) -> anyhow::Result<()> {
    let client = &kube.client();
    let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "bank");

    // The schema and CEL refuse bad resources at the API server, before hdi sees them: kubectl
    // says why.
    let mut zero = cluster_resource("zero", 3);
    zero["spec"]["nodePools"][0]["replicas"] = json!(0);
    let (ok, _, err) = kubectl(kube, &["apply", "-n", "bank", "-f", "-"], &zero.to_string())?;
    anyhow::ensure!(!ok, "kubectl apply of 0 replicas must be refused");
    anyhow::ensure!(err.contains("replicas"), "kubectl says why: {err}");
    let mut mixed = cluster_resource("mixed", 3);
    mixed["spec"]["kind"] = json!("spark");
    let refused = clusters
        .patch("mixed", &PatchParams::apply("test"), &Patch::Apply(&mixed))
        .await
        .expect_err("a spark cluster of brokers is refused by CEL");
    assert!(refused.to_string().contains("Invalid value"), "{refused}");

    // A semantically bad resource is Stalled with the service's reason.
    let mut huge = cluster_resource("huge", 3);
    huge["spec"]["nodePools"][0]["size"] = json!("galactic");
    clusters
        .patch("huge", &PatchParams::apply("test"), &Patch::Apply(&huge))
        .await?;
    let (stalled, _) = eventually("huge to be Stalled", Duration::from_secs(30), || async {
        let status = status(&clusters, "huge").await?;
        let stalled = condition(&status, "Stalled")?;
        (stalled["status"] == "True").then(|| stalled.clone())
    })
    .await?;
    assert_eq!(stalled["reason"], "InvalidSpec", "{stalled:#}");
    assert!(
        stalled["message"].as_str().unwrap().contains("size"),
        "{stalled:#}"
    );

    // A good one, with kubectl: its objects appear, owned by it.
    let (ok, out, err) = kubectl(
        kube,
        &["apply", "-n", "bank", "-f", "-"],
        &cluster_resource("payments", 3).to_string(),
    )?;
    anyhow::ensure!(ok, "kubectl apply: {out}{err}");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "bank");
    let (set, took) = eventually(
        "the brokers' StatefulSet",
        Duration::from_secs(60),
        || async { sets.get("hdi-payments-brokers").await.ok() },
    )
    .await?;
    println!("HdiCluster applied -> StatefulSet in {took:?}");
    let owner = &set.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("HdiCluster", "payments")
    );
    assert_eq!(set.spec.replicas, Some(3));
    // Each kind is read through its own watch cache: wait for each.
    let services: Api<Service> = Api::namespaced(client.clone(), "bank");
    let (headless, _) = eventually("the headless Service", Duration::from_secs(30), || async {
        services.get("hdi-payments-brokers").await.ok()
    })
    .await?;
    assert_eq!(
        headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some("None")
    );
    eventually("the bootstrap Service", Duration::from_secs(30), || async {
        services.get("hdi-payments-bootstrap").await.ok()
    })
    .await?;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "bank");
    eventually(
        "the PodDisruptionBudget",
        Duration::from_secs(30),
        || async { budgets.get("hdi-payments-brokers").await.ok() },
    )
    .await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "bank");
    eventually("the NetworkPolicy", Duration::from_secs(30), || async {
        policies.get("hdi-payments").await.ok()
    })
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "bank");
    let (enrolment, _) = eventually("the enrolment Secret", Duration::from_secs(30), || async {
        secrets.get("hdi-payments-enrolment").await.ok()
    })
    .await?;
    assert!(enrolment.data.unwrap().contains_key("token"));

    // kwok runs the pods, one per zone, with their claims bound.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bank");
    let nodes: Api<Node> = Api::all(client.clone());
    let (zones, took) = eventually(
        "3 running pods in 3 zones",
        Duration::from_secs(90),
        || async {
            let list = pods
                .list(&ListParams::default().labels("hdi.io/cluster=payments"))
                .await
                .ok()?;
            let running: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            if running.len() != 3 {
                return None;
            }
            let mut zones = std::collections::BTreeSet::new();
            for pod in running {
                let node = pod.spec.as_ref()?.node_name.clone()?;
                let node = nodes.get(&node).await.ok()?;
                zones.insert(
                    node.metadata
                        .labels?
                        .get("topology.kubernetes.io/zone")?
                        .clone(),
                );
            }
            Some(zones)
        },
    )
    .await?;
    println!("pods running in {took:?}");
    assert_eq!(zones.len(), 3, "one pod per zone: {zones:?}");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "bank");
    let bound = claims
        .list(&ListParams::default().labels("hdi.io/cluster=payments"))
        .await?
        .items
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count();
    assert_eq!(bound, 3, "every pod's claim is bound");

    // The status: observed, not Ready (the fake pods run no agents), reconciling.
    let (status_now, _) = eventually(
        "the status to say Reconciling",
        Duration::from_secs(30),
        || async {
            let status = status(&clusters, "payments").await?;
            // kwok's pods are ready as far as Kubernetes knows; no broker runs in them.
            (status["observedGeneration"] == 1
                && condition(&status, "Reconciling")?["status"] == "True"
                && condition(&status, "PodsReady")?["status"] == "True")
                .then_some(status)
        },
    )
    .await?;
    assert_eq!(status_now["state"], "Creating", "{status_now:#}");
    assert_eq!(condition(&status_now, "Ready").unwrap()["status"], "False");

    // REST reads it and refuses changes.
    let api = hdi.control_plane.admin(&hdi.secrets);
    let cluster = api.cluster_get("bank", "payments").await?;
    assert_eq!(cluster.name, "payments");
    let refused = api
        .cluster_delete("bank", "payments")
        .await
        .expect_err("REST cannot delete a cluster a resource owns");
    assert!(
        refused.to_string().contains("managed_by_kubernetes"),
        "{refused}"
    );

    // Delete (kubectl): the cluster goes, then the resource, then (garbage collection) every
    // object.
    let (ok, out, err) = kubectl(
        kube,
        &[
            "delete",
            "-n",
            "bank",
            "hdicluster",
            "payments",
            "--wait=false",
        ],
        "",
    )?;
    anyhow::ensure!(ok, "kubectl delete: {out}{err}");
    clusters.delete("huge", &DeleteParams::default()).await?;
    let (_, took) = eventually("the resources gone", Duration::from_secs(90), || async {
        clusters
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await?;
    println!("HdiCluster deleted in {took:?}");
    assert!(
        api.cluster_get("bank", "payments").await.is_err(),
        "the hdi cluster is gone"
    );
    eventually(
        "every object collected",
        Duration::from_secs(90),
        || async {
            let selector = ListParams::default().labels("hdi.io/cluster=payments");
            let left = sets.list(&selector).await.ok()?.items.len()
                + services.list(&selector).await.ok()?.items.len()
                + pods.list(&selector).await.ok()?.items.len()
                + Api::<Secret>::namespaced(client.clone(), "bank")
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len();
            (left == 0).then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_cluster_and_topic_from_resources_serve_clients() -> anyhow::Result<()> {
    let kube = kube_in_three_zones().await?;
    let client = kube.client();
    let root = TempDir::new("kube-full-path");
    let kubelets = local_nodes(&kube, root.path()).await?;
    install_crds(&client).await?;
    kube.create_namespace("bank").await?;
    let hdi = start_hdi(&kube, "kube-full-path", OPERATOR_LOG).await;
    let result = full_path(&client).await;
    if result.is_err() {
        eprintln!("{}", diagnose(&hdi, root.path()));
    }
    drop(kubelets);
    result
}

async fn full_path(client: &Client) -> anyhow::Result<()> {
    let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "bank");
    let started = std::time::Instant::now();
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster_resource("payments", 3)),
        )
        .await?;
    let (ready, took) = eventually("payments Ready", Duration::from_secs(120), || async {
        let status = status(&clusters, "payments").await?;
        (condition(&status, "Ready")?["status"] == "True").then_some(status)
    })
    .await?;
    println!("kubectl apply -> Ready (3 brokers) in {took:?}");
    let bootstrap = ready["endpoints"]["bootstrapServers"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bootstrap.starts_with("127.66."), "{bootstrap}");

    let topics: Api<HdiTopic> = Api::namespaced(client.clone(), "bank");
    topics
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({
                "apiVersion": "hdi.io/v1alpha1", "kind": "HdiTopic",
                "metadata": {"name": "payments"},
                "spec": {"clusterRef": "payments", "partitions": 6, "replicationFactor": 3,
                         "config": {"min.insync.replicas": "2"}},
            })),
        )
        .await?;
    eventually("the topic Ready", Duration::from_secs(60), || async {
        let status = serde_json::to_value(topics.get("payments").await.ok()?.status?).ok()?;
        (condition(&status, "Ready")?["status"] == "True" && status["partitions"] == 6)
            .then_some(())
    })
    .await?;
    println!("topic Ready after {:?}", started.elapsed());
    let records: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id":{i},"account":"acct-{}","amount":{i}.5}}"#, i % 7))
        .collect();
    let produce = bootstrap.clone();
    let sent = records.clone();
    bounded("kcat produce", move || {
        kcat_produce(&produce, "payments", &sent)
    })
    .await?;
    let mut expected = records.clone();
    expected.sort();
    let consume = bootstrap.clone();
    let got = bounded("kcat consume", move || {
        kcat_consume_all(&consume, "payments")
    })
    .await?;
    anyhow::ensure!(
        got == expected,
        "consumed {} records, not the 200 produced",
        got.len()
    );

    // confluent-kafka too (its own librdkafka), at the same bootstrap address.
    let script = format!(
        "from confluent_kafka import Producer, Consumer\n\
         p = Producer({{'bootstrap.servers': '{bootstrap}', 'acks': 'all'}})\n\
         for i in range(50): p.produce('payments', value=('{{\"id\":%d,\"account\":\"py\",\"amount\":1.0}}' % (1000 + i)).encode())\n\
         assert p.flush(30) == 0\n\
         c = Consumer({{'bootstrap.servers': '{bootstrap}', 'group.id': 'py', 'auto.offset.reset': 'earliest'}})\n\
         c.subscribe(['payments'])\n\
         n = 0\n\
         import time\n\
         deadline = time.time() + 60\n\
         while n < 250 and time.time() < deadline:\n\
         \x20   m = c.poll(1.0)\n\
         \x20   if m is not None and m.error() is None: n += 1\n\
         c.close()\n\
         print(n)\n"
    );
    let out = bounded("confluent-kafka", move || {
        hdi_e2e::client_command(hdi_e2e::test_python())
            .args(["-c", &script])
            .output()
    })
    .await??;
    anyhow::ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "250",
        "confluent-kafka read {:?} records: {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr)
    );
    expected.extend((1000..1050).map(|i| format!(r#"{{"id":{i},"account":"py","amount":1.0}}"#)));
    expected.sort();

    // A Spark cluster and a job from resources: it reads the topic and writes the large
    // payments to another, which kcat reads back.
    topics
        .patch(
            "large-payments",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({
                "apiVersion": "hdi.io/v1alpha1", "kind": "HdiTopic",
                "metadata": {"name": "large-payments"},
                "spec": {"clusterRef": "payments", "partitions": 3, "replicationFactor": 3},
            })),
        )
        .await?;
    clusters
        .patch(
            "etl",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({
                "apiVersion": "hdi.io/v1alpha1", "kind": "HdiCluster",
                "metadata": {"name": "etl"},
                "spec": {"kind": "spark", "nodePools": [
                    {"name": "executors", "role": "executor", "replicas": 2, "storageGiB": 5}
                ]},
            })),
        )
        .await?;
    let (_, took) = eventually("etl Ready", Duration::from_secs(120), || async {
        let status = status(&clusters, "etl").await?;
        (condition(&status, "Ready")?["status"] == "True").then_some(())
    })
    .await?;
    println!("spark cluster (driver + 2 executors) Ready in {took:?}");
    let jobs: Api<HdiJob> = Api::namespaced(client.clone(), "bank");
    jobs.patch(
        "large-payments",
        &PatchParams::apply("test"),
        &Patch::Apply(json!({
            "apiVersion": "hdi.io/v1alpha1", "kind": "HdiJob",
            "metadata": {"name": "large-payments"},
            "spec": {"clusterRef": "etl", "kafkaClusterRef": "payments", "sql":
                "CREATE TABLE payments (id BIGINT, account TEXT, amount DOUBLE) \
                   WITH (connector = 'kafka', topic = 'payments', format = 'json', starting_offsets = 'earliest');\n\
                 CREATE TABLE large WITH (connector = 'kafka', topic = 'large-payments', format = 'json');\n\
                 SET trigger = 'processing_time 1s';\n\
                 INSERT INTO large SELECT id, account, amount FROM payments WHERE amount > 100;"},
        })),
    )
    .await?;
    let (large, took) = eventually("the job's output", Duration::from_secs(120), || {
        let bootstrap = bootstrap.clone();
        async move {
            let got = bounded("kcat consume", move || {
                kcat_consume_all(&bootstrap, "large-payments")
            })
            .await
            .ok()?;
            (got.len() >= 100).then_some(got)
        }
    })
    .await?;
    println!("job output complete in {took:?}");
    let ids: std::collections::BTreeSet<i64> = large
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    anyhow::ensure!(
        ids == (100..200).collect(),
        "the job wrote exactly the payments above 100: {ids:?}"
    );
    let job = serde_json::to_value(jobs.get("large-payments").await?.status).unwrap_or_default();
    anyhow::ensure!(
        condition(&job, "Ready").is_some_and(|c| c["status"] == "True"),
        "the job's resource says it runs: {job:#}"
    );

    // A resize the cluster cannot take (2 brokers: below the metadata quorum) is refused and
    // shown; everything else keeps running, and asking for 3 again clears it.
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster_resource("payments", 2)),
        )
        .await?;
    let (blocked, _) = eventually("ScaleDownBlocked", Duration::from_secs(30), || async {
        let status = status(&clusters, "payments").await?;
        let blocked = condition(&status, "ScaleDownBlocked")?;
        (blocked["status"] == "True").then(|| status.clone())
    })
    .await?;
    anyhow::ensure!(
        condition(&blocked, "Ready").is_some_and(|c| c["status"] == "False"),
        "a refused resize is not Ready: {blocked:#}"
    );
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster_resource("payments", 3)),
        )
        .await?;
    eventually(
        "ScaleDownBlocked cleared",
        Duration::from_secs(30),
        || async {
            let status = status(&clusters, "payments").await?;
            (condition(&status, "ScaleDownBlocked")?["status"] == "False"
                && condition(&status, "Ready")?["status"] == "True")
                .then_some(())
        },
    )
    .await?;

    // 3 -> 4 -> 3: the new broker's pod joins and takes partitions; the way back drains it
    // first (spec.drain), then the StatefulSet shrinks.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "bank");
    let ready_at = |brokers: i32| {
        let clusters = clusters.clone();
        let sets = sets.clone();
        async move {
            let object = clusters.get("payments").await.ok()?;
            let generation = object.metadata.generation?;
            let status = serde_json::to_value(object.status?).ok()?;
            let pools = status["nodePools"].as_array()?.clone();
            (condition(&status, "Ready")?["status"] == "True"
                && status["observedGeneration"].as_i64()? == generation
                && pools
                    .iter()
                    .any(|p| p["ready"] == brokers && p["desired"] == brokers)
                && sets.get("hdi-payments-brokers").await.ok()?.spec.replicas == Some(brokers))
            .then_some(())
        }
    };
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster_resource("payments", 4)),
        )
        .await?;
    let (_, took) = eventually("4 brokers Ready", Duration::from_secs(120), || ready_at(4)).await?;
    println!("3 -> 4 brokers in {took:?}");
    let mut back = cluster_resource("payments", 3);
    back["spec"]["drain"] = json!(true);
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&back),
        )
        .await?;
    let (_, took) = eventually("3 brokers Ready again", Duration::from_secs(180), || {
        ready_at(3)
    })
    .await?;
    println!("4 -> 3 brokers (drained) in {took:?}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bank");
    eventually("the fourth pod gone", Duration::from_secs(60), || async {
        pods.get("hdi-payments-brokers-3")
            .await
            .is_err()
            .then_some(())
    })
    .await?;
    let consume = bootstrap.clone();
    let got = bounded("kcat consume", move || {
        kcat_consume_all(&consume, "payments")
    })
    .await?;
    anyhow::ensure!(got == expected, "nothing lost across the resizes");

    // A broker pod deleted comes back on the same claim with every acknowledged record.
    let old = pods.get("hdi-payments-brokers-1").await?;
    pods.delete("hdi-payments-brokers-1", &DeleteParams::default())
        .await?;
    eventually(
        "the pod recreated and the cluster Ready",
        Duration::from_secs(120),
        || async {
            let pod = pods.get("hdi-payments-brokers-1").await.ok()?;
            if pod.metadata.uid == old.metadata.uid {
                return None;
            }
            let status = status(&clusters, "payments").await?;
            (condition(&status, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await?;
    let consume = bootstrap.clone();
    let got = bounded("kcat consume", move || {
        kcat_consume_all(&consume, "payments")
    })
    .await?;
    anyhow::ensure!(got == expected, "nothing lost across the pod's replacement");
    println!("full path in {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_references_an_api_server_restart_and_a_deleted_namespace() -> anyhow::Result<()> {
    let mut kube = kube_in_three_zones().await?;
    let client = kube.client();
    install_crds(&client).await?;
    kube.create_namespace("lab").await?;
    let hdi = start_hdi(&kube, "kube-faults", OPERATOR_LOG).await;
    let result = async {
        let topics: Api<HdiTopic> = Api::namespaced(client.clone(), "lab");
        let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "lab");
        // A topic of a cluster that does not exist: Stalled, with the reason, and no hot loop.
        topics
            .patch(
                "orphan",
                &PatchParams::apply("test"),
                &Patch::Apply(json!({
                    "apiVersion": "hdi.io/v1alpha1", "kind": "HdiTopic",
                    "metadata": {"name": "orphan"},
                    "spec": {"clusterRef": "nope", "partitions": 1, "replicationFactor": 1},
                })),
            )
            .await?;
        let (stalled, _) = eventually(
            "the orphan topic Stalled",
            Duration::from_secs(30),
            || async {
                let status = serde_json::to_value(topics.get("orphan").await.ok()?.status?).ok()?;
                let stalled = condition(&status, "Stalled")?;
                (stalled["status"] == "True").then(|| stalled.clone())
            },
        )
        .await?;
        anyhow::ensure!(stalled["reason"] == "NotFound", "{stalled:#}");
        anyhow::ensure!(
            stalled["message"]
                .as_str()
                .unwrap_or_default()
                .contains("nope"),
            "{stalled:#}"
        );

        // A replication link between clusters that do not exist: Stalled too.
        let links: Api<HdiReplicationLink> = Api::namespaced(client.clone(), "lab");
        links
            .patch(
                "dr",
                &PatchParams::apply("test"),
                &Patch::Apply(json!({
                    "apiVersion": "hdi.io/v1alpha1", "kind": "HdiReplicationLink",
                    "metadata": {"name": "dr"},
                    "spec": {"sourceCluster": "nope", "targetCluster": "nope-dr", "topics": ["*"]},
                })),
            )
            .await?;
        let (stalled, _) = eventually("the link Stalled", Duration::from_secs(30), || async {
            let status = serde_json::to_value(links.get("dr").await.ok()?.status?).ok()?;
            let stalled = condition(&status, "Stalled")?;
            (stalled["status"] == "True").then(|| stalled.clone())
        })
        .await?;
        anyhow::ensure!(stalled["reason"] == "NotFound", "{stalled:#}");

        // The API server restarted right after a resource is applied: it converges anyway.
        clusters
            .patch(
                "ledger",
                &PatchParams::apply("test"),
                &Patch::Apply(&cluster_resource("ledger", 3)),
            )
            .await?;
        // A write of another kind first: the operator's watches resume from resource versions
        // older than the restarted API server's cache, which expires them (410 Gone).
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "lab")
            .create(
                &kube::api::PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "bump"}}))?,
            )
            .await?;
        let down = kube.restart_apiserver().await?;
        println!("API server down for {down:?}");
        let client = kube.client();
        let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "lab");
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "lab");
        eventually(
            "ledger's StatefulSet and status after the restart",
            Duration::from_secs(60),
            || async {
                sets.get("hdi-ledger-brokers").await.ok()?;
                let status = status(&clusters, "ledger").await?;
                (status["observedGeneration"] == 1).then_some(())
            },
        )
        .await?;

        let expired: Vec<String> = hdi
            .operator
            .lines()
            .into_iter()
            .filter(|l| l.contains("watch failed") && l.contains("Expired"))
            .collect();
        println!(
            "expired watches the operator listed again after:\n{}",
            expired.join("\n")
        );
        anyhow::ensure!(
            !expired.is_empty(),
            "the restart expired the operator's watches (410), and it converged anyway"
        );

        // The namespace deleted: its resources go, their clusters with them, nothing left.
        let api = hdi.control_plane.admin(&hdi.secrets);
        api.cluster_get("lab", "ledger").await?;
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .delete("lab", &DeleteParams::default())
            .await?;
        let (_, took) = eventually("the namespace gone", Duration::from_secs(120), || async {
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .get("lab")
                .await
                .is_err()
                .then_some(())
        })
        .await?;
        println!("namespace deleted in {took:?}");
        anyhow::ensure!(
            api.cluster_get("lab", "ledger").await.is_err(),
            "the hdi cluster went with its resource"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", diagnose(&hdi, std::path::Path::new("/nonexistent")));
    }
    result
}
