//! The measurement behind `cargo xtask bench kubernetes` (ignored in the suite; the xtask runs it
//! with release binaries): on the full path (the real API server, controller manager and
//! scheduler; `LocalKubelet` nodes running the pods as processes),
//! 1. `kubectl apply` of an `HdiCluster` of 3 brokers → its `Ready` condition (three runs, each
//!    cluster deleted before the next; target ≤ 10 s),
//! 2. 500 `HdiTopic`s applied at once → all `Ready` (target ≤ 60 s),
//! 3. the operator's API requests at idle with those resources, counted from its client's own
//!    log of every request it sends (`kube_client`'s "requesting" at debug), over four resync
//!    periods (`--resync` shortened to 30 s so the window spans several): target ≤ 1 request per
//!    resource per resync period.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use hdi_e2e::hdi_on_kube::{
    cluster_resource, condition, install_crds, kube_in_three_zones, local_nodes, start_hdi_with,
    status,
};
use hdi_e2e::{TempDir, eventually};
use hdi_k8s::crd::{HdiCluster, HdiTopic};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

/// Resync period of the operator in this measurement.
const RESYNC: Duration = Duration::from_secs(30);

/// Requests the operator's client has logged so far.
fn requests(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("kube_client::client::builder") && l.ends_with("requesting"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: run by `cargo xtask bench kubernetes`"]
async fn kubernetes_figures() -> anyhow::Result<()> {
    let kube = kube_in_three_zones().await?;
    let client = kube.client();
    install_crds(&client).await?;
    kube.create_namespace("bench").await?;
    let root = TempDir::new("kube-bench");
    let _kubelets = local_nodes(&kube, root.path()).await?;
    let hdi = start_hdi_with(
        &kube,
        "kube-bench",
        "info,kube=warn,kube_client::client::builder=debug",
        &["--resync", &format!("{}s", RESYNC.as_secs())],
    )
    .await;
    let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "bench");

    // 1. apply -> Ready, three times.
    let mut ready = Vec::new();
    for run in 1..=3 {
        let name = format!("run{run}");
        clusters
            .patch(
                &name,
                &PatchParams::apply("bench"),
                &Patch::Apply(&cluster_resource(&name, 3)),
            )
            .await?;
        let (_, took) = eventually(
            &format!("{name} Ready"),
            Duration::from_secs(180),
            || async {
                let status = status(&clusters, &name).await?;
                (condition(&status, "Ready")?["status"] == "True").then_some(())
            },
        )
        .await?;
        println!(
            "run {run}: kubectl apply -> Ready (3 brokers) in {:.2} s",
            took.as_secs_f64()
        );
        ready.push(took.as_secs_f64());
        if run < 3 {
            clusters.delete(&name, &DeleteParams::default()).await?;
            eventually(
                &format!("{name} gone"),
                Duration::from_secs(180),
                || async { clusters.get(&name).await.is_err().then_some(()) },
            )
            .await?;
        }
    }
    ready.sort_by(f64::total_cmp);

    // 2. 500 topics applied at once.
    let topics: Api<HdiTopic> = Api::namespaced(client.clone(), "bench");
    let count = 500;
    let started = Instant::now();
    for i in 0..count {
        let name = format!("t{i:03}");
        topics
            .patch(
                &name,
                &PatchParams::apply("bench"),
                &Patch::Apply(json!({
                    "apiVersion": "hdi.io/v1alpha1", "kind": "HdiTopic",
                    "metadata": {"name": name},
                    "spec": {"clusterRef": "run3", "partitions": 1, "replicationFactor": 3},
                })),
            )
            .await?;
    }
    let applied = started.elapsed();
    eventually("500 topics Ready", Duration::from_secs(600), || async {
        let list = topics.list(&ListParams::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|t| {
                t.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        (ready == count).then_some(())
    })
    .await?;
    let topics_took = started.elapsed();
    println!(
        "{count} HdiTopics: applied in {:.1} s, all Ready in {:.1} s",
        applied.as_secs_f64(),
        topics_took.as_secs_f64()
    );

    // 3. Idle: the operator's requests over four resync periods.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let resources = count + 1;
    let before = requests(&hdi.operator.lines());
    let window = RESYNC * 4;
    tokio::time::sleep(window).await;
    let idle = requests(&hdi.operator.lines()) - before;
    let per_minute = idle as f64 * 60.0 / window.as_secs_f64();
    let per_resource_per_resync =
        idle as f64 / (resources as f64 * (window.as_secs_f64() / RESYNC.as_secs_f64()));
    println!(
        "idle, {resources} resources, resync {} s: {idle} API requests in {} s = {per_minute:.1}/min, {per_resource_per_resync:.3} per resource per resync period",
        RESYNC.as_secs(),
        window.as_secs()
    );

    println!(
        "\nhdi on Kubernetes (real kube-apiserver/controller-manager/scheduler v1.37.2; pods as local processes)"
    );
    println!(
        "kubectl apply -> Ready, 3 brokers: median {:.2} s (runs {:?} s; target <= 10 s; HDInsight about 10 minutes, Strimzi a few minutes on real nodes)",
        ready[1],
        ready
            .iter()
            .map(|t| (t * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    println!(
        "{count} HdiTopics reconciled: {:.1} s (target <= 60 s)",
        topics_took.as_secs_f64()
    );
    println!(
        "operator API requests at idle: {per_resource_per_resync:.3} per resource per resync period (target <= 1)"
    );
    Ok(())
}
