//! hdi on a test Kubernetes control plane: the CRDs installed, the control plane with
//! `--provisioner kubernetes` and the operator started on a fresh database ([`start_hdi`]),
//! three [`LocalKubelet`] nodes in three zones ([`local_nodes`]), and the helpers the tests and
//! the `bench kubernetes` measurement share to apply resources and read their status.

use std::time::Duration;

use hdi_k8s::crd::{HdiCluster, HdiJob, HdiReplicationLink, HdiTopic};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt as _};
use serde_json::{Value, json};

use crate::kubelet::LocalKubelet;
use crate::{
    ControlPlane, KubeControlPlane, Proc, Secrets, TempDir, bin, eventually, fresh_database,
};

/// Applies the CRDs and waits until the API serves them.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        HdiCluster::crd(),
        HdiTopic::crd(),
        HdiJob::crd(),
        HdiReplicationLink::crd(),
    ] {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        eventually(
            &format!("CRD {name} established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// The control plane (Kubernetes provisioner) and the operator on a fresh database.
pub struct Hdi {
    /// The control plane (`--provisioner kubernetes`).
    pub control_plane: ControlPlane,
    /// `hdi-control-plane operator`.
    pub operator: Proc,
    /// Its tokens.
    pub secrets: Secrets,
    _dir: TempDir,
}

/// Starts the control plane (`--provisioner kubernetes`, pods reach it on loopback) and the
/// operator (with `operator_log` as its `RUST_LOG`) on a fresh database.
pub async fn start_hdi(kube: &KubeControlPlane, tag: &str, operator_log: &str) -> Hdi {
    start_hdi_with(kube, tag, operator_log, &[]).await
}

/// [`start_hdi`] with extra `hdi-control-plane operator` flags.
pub async fn start_hdi_with(
    kube: &KubeControlPlane,
    tag: &str,
    operator_log: &str,
    operator_args: &[&str],
) -> Hdi {
    let database_url = fresh_database().await;
    let dir = TempDir::new(tag);
    let secrets = Secrets::create(dir.path());
    let ports = hdi_test_support::ports::range(90);
    let ports = format!("{}-{}", ports.start(), ports.end());
    let kubeconfig = kube.kubeconfig();
    // Pods reach the control plane on loopback (the stand-in kubelet runs them here); its own
    // address is known only once it listens, so it is given as a fixed free port.
    let listen = hdi_test_support::ports::loopback();
    let url = format!("http://{listen}");
    let control_plane = ControlPlane::start_with_env(
        &database_url,
        &secrets,
        &listen,
        &[
            "--provisioner",
            "kubernetes",
            "--kubernetes-control-plane-url",
            &url,
            "--workload-ports",
            &ports,
            "--reconcile-interval",
            "300ms",
        ],
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    );
    let operator = Proc::spawn(
        "hdi-operator",
        std::process::Command::new(bin("hdi-control-plane"))
            .arg("operator")
            .args(operator_args)
            .env("DATABASE_URL", &database_url)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", operator_log),
    );
    Hdi {
        control_plane,
        operator,
        secrets,
        _dir: dir,
    }
}

/// The tails of the operator's, the control plane's and every stand-in container's output.
pub fn diagnose(hdi: &Hdi, root: &std::path::Path) -> String {
    let tail = |lines: Vec<String>| lines[lines.len().saturating_sub(40)..].join("\n");
    let mut out = format!(
        "--- operator ---\n{}\n--- control plane ---\n{}\n",
        tail(hdi.operator.lines()),
        tail(hdi.control_plane.proc.lines())
    );
    for entry in walk(root) {
        if entry.file_name().is_some_and(|n| n == "container.log") {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            out.push_str(&format!("--- {} ---\n{}\n", entry.display(), tail(lines)));
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs a blocking client call with a deadline.
pub async fn bounded<T: Send + 'static>(
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(call))
        .await
        .map_err(|_| anyhow::anyhow!("{what} took over 60 s"))?
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// An `HdiCluster` of `brokers` PLAINTEXT brokers (5 GiB each) as applied by a person.
pub fn cluster_resource(name: &str, brokers: u32) -> Value {
    json!({
        "apiVersion": "hdi.io/v1alpha1",
        "kind": "HdiCluster",
        "metadata": {"name": name},
        "spec": {
            "kind": "kafka",
            "nodePools": [{"name": "brokers", "role": "broker", "replicas": brokers, "storageGiB": 5}],
            "security": {"tls": false, "authentication": [], "authorization": false},
        },
    })
}

/// An `HdiCluster`'s status as JSON.
pub async fn status(api: &Api<HdiCluster>, name: &str) -> Option<Value> {
    let object = api.get(name).await.ok()?;
    serde_json::to_value(object.status?).ok()
}

/// A condition of a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Runs the test kubectl (`HDI_TEST_KUBECTL`, set by `cargo xtask test`) against `kube` with
/// `stdin`; returns (success, stdout, stderr).
///
/// # Errors
/// kubectl cannot be started.
pub fn kubectl(
    kube: &KubeControlPlane,
    args: &[&str],
    stdin: &str,
) -> anyhow::Result<(bool, String, String)> {
    use std::io::Write as _;
    let binary = std::env::var_os("HDI_TEST_KUBECTL").ok_or_else(|| {
        anyhow::anyhow!("HDI_TEST_KUBECTL is not set: run the tests with `cargo xtask test`")
    })?;
    let mut child = std::process::Command::new(binary)
        .arg("--kubeconfig")
        .arg(kube.kubeconfig())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The zones of the tests' nodes.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// A Kubernetes control plane with its controllers and a kwok node in each of [`ZONES`].
///
/// # Errors
/// As [`crate::KubeControlPlaneBuilder::start`].
pub async fn kube_in_three_zones() -> anyhow::Result<KubeControlPlane> {
    KubeControlPlane::builder()
        .with_controllers()
        .with_kwok_nodes(&ZONES)
        .start()
        .await
}

/// Three stand-in nodes (`local-zone-a/b/c`) running pods as local processes under `root`; the
/// kwok nodes (kept for the claims kwok provisions) are tainted so pods go to these only.
///
/// # Errors
/// A node cannot be registered or tainted.
pub async fn local_nodes(
    kube: &KubeControlPlane,
    root: &std::path::Path,
) -> anyhow::Result<Vec<LocalKubelet>> {
    let client = kube.client();
    let nodes: Api<Node> = Api::all(client.clone());
    for node in kube.kwok_nodes() {
        nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": [
                    {"key": "hdi.io/fake", "value": "true", "effect": "NoSchedule"}
                ]}})),
            )
            .await?;
    }
    let bin_dir = bin("hdi-node-agent")
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut kubelets = Vec::new();
    for zone in ZONES {
        let name = format!("local-{zone}");
        kubelets.push(
            LocalKubelet::start(
                client.clone(),
                &name,
                zone,
                &bin_dir,
                &root.join(&name),
                &root.join("volumes"),
            )
            .await?,
        );
    }
    Ok(kubelets)
}
