//! The Helm chart `charts/hdi`, with helm v4 and kubernetes-validate as `cargo xtask test`
//! installs them (`HDI_TEST_HELM`, `HDI_TEST_KUBERNETES_VALIDATE`):
//!
//! - `helm lint --strict` with the bundled and the external database; the chart's appVersion and
//!   image are the workspace's; the values schema refuses unknown keys and bad types.
//! - `helm template` of three sets of values, checked for what the objects must say (tokens as
//!   mounted files, never on a command line; probes; non-root, read-only root file system, no
//!   capabilities) and validated by `kubernetes-validate --strict` against Kubernetes 1.35, 1.36
//!   and 1.37. Every object must find its schema: the CRDs are `apiextensions.k8s.io/v1`
//!   objects and validate as such (their own schemas, what they validate, are enforced by the
//!   real API server below and in `kube_operator.rs`); the chart renders no custom resource.
//! - `helm install` into a real API server with the controller manager (no nodes: pods stay
//!   Pending, which is all this needs; the image cannot run here), into a namespace that
//!   enforces the `restricted` Pod Security Standard, so the pods exist only if they comply.
//!   Then `hdi-control-plane operator` and `serve --provisioner kubernetes` run as local
//!   processes on a fresh database, each with a kubeconfig holding its chart ServiceAccount's
//!   token, so they have exactly the chart's RBAC: an `HdiCluster` gets its finalizer, status
//!   and Events, the control plane applies its StatefulSet and the rest, a REST
//!   cluster gets its namespace and anchor ConfigMap, deletion goes through; and both accounts
//!   are refused what their roles do not grant. `helm upgrade` changes the replicas and keeps
//!   the generated secrets; `helm uninstall` removes everything but the CRDs.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hdi_api::{ClusterKind, ClusterSpec, NodePool, PoolRole};
use hdi_e2e::{ControlPlane, KubeControlPlane, Proc, Secrets, TempDir, bin, eventually};
use hdi_k8s::crd::HdiCluster;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The namespace the chart is installed into.
const NAMESPACE: &str = "hdi-system";
/// The Kubernetes versions the rendered chart is validated against.
const KUBERNETES_VERSIONS: [&str; 3] = ["1.35", "1.36", "1.37"];
/// The CRDs the chart installs.
const CRDS: [&str; 4] = [
    "hdiclusters.hdi.io",
    "hditopics.hdi.io",
    "hdijobs.hdi.io",
    "hdireplicationlinks.hdi.io",
];

/// A test tool `cargo xtask test` installs and names in `variable`.
fn tool(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{variable} is unset: run the tests with `cargo xtask test`"));
    assert!(path.exists(), "{variable}={} is missing", path.display());
    path
}

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/hdi")
}

/// helm with its cache, configuration and data in a directory of its own.
struct Helm {
    binary: PathBuf,
    home: TempDir,
}

impl Helm {
    fn new() -> Helm {
        Helm {
            binary: tool("HDI_TEST_HELM"),
            home: TempDir::new("helm"),
        }
    }

    /// Runs helm with `args`: its stdout, or an error with its stderr.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let home = self.home.path();
        hdi_test_support::command::output(
            &format!("helm {}", args.join(" ")),
            Command::new(&self.binary)
                .args(args)
                .env("HELM_CACHE_HOME", home.join("cache"))
                .env("HELM_CONFIG_HOME", home.join("config"))
                .env("HELM_DATA_HOME", home.join("data"))
                .env_remove("KUBECONFIG"),
        )
    }

    /// `helm template hdi charts/hdi -n hdi-system` with `values` (more arguments).
    fn template(&self, values: &[&str]) -> anyhow::Result<String> {
        let chart = chart_dir();
        let mut args = vec!["template", "hdi", chart.to_str().unwrap(), "-n", NAMESPACE];
        args.extend(values);
        self.run(&args)
    }
}

/// The documents of a multi-document YAML stream, as JSON (empty ones dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| {
            <Value as k8s_openapi::serde::Deserialize>::deserialize(document)
                .expect("helm renders YAML")
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// The rendered object of `kind` named `name`.
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"]))
        .collect()
}

/// The strings of a JSON array.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_chart_lints_strictly_and_is_the_workspace_version() {
    let helm = Helm::new();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let out = helm.run(&["lint", "--strict", chart]).unwrap();
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let out = helm
        .run(&[
            "lint",
            "--strict",
            chart,
            "--set",
            "database.externalUrl.secretName=hdi-database",
        ])
        .unwrap();
    assert!(out.contains("0 chart(s) failed"), "{out}");

    let meta: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        meta["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml's appVersion is the workspace version (the image's tag)"
    );
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        values["image"]["repository"].as_str(),
        Some("hdi"),
        "the image `cargo xtask image` builds"
    );

    // The schema refuses what the chart does not know, and bad types.
    for bad in [
        "controlPlane.replica=2",
        "controlPlane.replicas=0",
        "database.externalUrl.secret=x",
        "image.pullPolicy=Sometimes",
        "operator.replicas=2",
    ] {
        let refused = helm
            .template(&["--set", bad])
            .expect_err("the values schema refuses it");
        assert!(refused.to_string().contains("schema"), "{bad}: {refused:#}");
    }
}

#[test]
fn the_rendered_chart_says_what_it_must() {
    let helm = Helm::new();
    let version = env!("CARGO_PKG_VERSION");
    let objects = documents(&helm.template(&[]).unwrap());

    let deployment = object(&objects, "Deployment", "hdi-control-plane");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "hdi-control-plane");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], format!("hdi:{version}"));
    let args = strings(&container["args"]);
    for (flag, value) in [
        ("--provisioner", "kubernetes".to_owned()),
        ("--kubernetes-image", format!("hdi:{version}")),
        (
            "--kubernetes-control-plane-url",
            "http://hdi-control-plane.hdi-system.svc:8080".to_owned(),
        ),
        (
            "--admin-token-file",
            "/etc/hdi/tokens/admin-token".to_owned(),
        ),
        (
            "--agent-token-file",
            "/etc/hdi/tokens/agent-token".to_owned(),
        ),
    ] {
        let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| {
            panic!("{flag} missing from {args:?}");
        });
        assert_eq!(args[at + 1], value, "{flag}");
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    // Secrets only as files or from Secrets: no literal value but the URL template.
    for env in container["env"].as_array().unwrap() {
        match env["name"].as_str().unwrap() {
            "RUST_LOG" => {}
            "PGPASSWORD" => assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], "password"),
            "DATABASE_URL" => assert_eq!(
                env["value"],
                "postgres://hdi:$(PGPASSWORD)@hdi-postgresql.hdi-system.svc:5432/hdi"
            ),
            other => panic!("unexpected env {other}"),
        }
    }
    let tokens = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tokens")
        .unwrap();
    assert_eq!(tokens["secret"]["secretName"], "hdi-tokens");
    for (name, pod) in [
        ("hdi-control-plane", pod),
        (
            "hdi-operator",
            &object(&objects, "Deployment", "hdi-operator")["spec"]["template"]["spec"],
        ),
        (
            "hdi-postgresql",
            &object(&objects, "StatefulSet", "hdi-postgresql")["spec"]["template"]["spec"],
        ),
    ] {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        for container in pod["containers"].as_array().unwrap() {
            let context = &container["securityContext"];
            assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(strings(&context["capabilities"]["drop"]), ["ALL"], "{name}");
        }
    }
    let operator = object(&objects, "Deployment", "hdi-operator");
    assert_eq!(operator["spec"]["replicas"], 1);
    assert_eq!(
        strings(&operator["spec"]["template"]["spec"]["containers"][0]["args"]),
        ["operator"]
    );
    // Generated tokens: 48 characters (64 in base64), different.
    let secret = object(&objects, "Secret", "hdi-tokens");
    let admin = secret["data"]["admin-token"].as_str().unwrap();
    let agent = secret["data"]["agent-token"].as_str().unwrap();
    assert_eq!((admin.len(), agent.len()), (64, 64));
    assert_ne!(admin, agent);
    for crd in CRDS {
        let crd = object(&objects, "CustomResourceDefinition", crd);
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    let role = object(&objects, "ClusterRole", "hdi-operator");
    assert!(
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|rule| !strings(&rule["verbs"]).contains(&"*")
                && !strings(&rule["resources"]).contains(&"*")),
        "no wildcard grants: {role:#}"
    );

    // An external database: no PostgreSQL, the URL from the Secret.
    let objects = documents(
        &helm
            .template(&["--set", "database.externalUrl.secretName=hdi-database"])
            .unwrap(),
    );
    let rendered = kinds(&objects);
    assert!(
        !rendered.iter().any(|k| k.contains("postgresql")),
        "{rendered:?}"
    );
    for name in ["hdi-control-plane", "hdi-operator"] {
        let env = &object(&objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
            [0]["env"];
        let url = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "DATABASE_URL")
            .unwrap();
        assert_eq!(
            url["valueFrom"]["secretKeyRef"],
            json!({"name": "hdi-database", "key": "url"}),
            "{name}"
        );
    }

    // The tag follows image.tag; crds.install=false drops the CRDs; no operator on request.
    let objects = documents(
        &helm
            .template(&[
                "--set",
                "image.tag=9.9.9,crds.install=false,operator.enabled=false",
            ])
            .unwrap(),
    );
    let rendered = kinds(&objects);
    assert!(
        !rendered
            .iter()
            .any(|k| k.starts_with("CustomResourceDefinition/") || k.contains("operator")),
        "{rendered:?}"
    );
    let container = &object(&objects, "Deployment", "hdi-control-plane")["spec"]["template"]["spec"]
        ["containers"][0];
    assert_eq!(container["image"], "hdi:9.9.9");
    assert!(strings(&container["args"]).contains(&"hdi:9.9.9"));
}

/// Values that turn on every optional piece of the templates.
const EVERYTHING: &str = r#"
imagePullSecrets: [registry]
controlPlane:
  replicas: 3
  storageClass: fast
  extraArgs: ["--operation-timeout", "30m"]
  logLevel: debug
  service:
    type: LoadBalancer
    annotations: {example.com/lb: internal}
  podAnnotations: {example.com/scrape: "true"}
  nodeSelector: {example.com/pool: system}
  tolerations: [{key: dedicated, operator: Equal, value: system, effect: NoSchedule}]
operator:
  podAnnotations: {example.com/scrape: "true"}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: example.com/pool, operator: In, values: [system]}]}]
auth:
  existingSecret: hdi-tokens-from-vault
serviceAccount:
  annotations: {example.com/role: hdi}
database:
  postgresql:
    existingSecret: hdi-postgresql-from-vault
    storage: {size: 20Gi, storageClass: fast}
"#;

#[test]
fn the_rendered_chart_validates_against_three_kubernetes_versions() {
    let helm = Helm::new();
    let validate = tool("HDI_TEST_KUBERNETES_VALIDATE");
    let dir = TempDir::new("chart-validate");
    let everything = dir.path().join("everything.yaml");
    std::fs::write(&everything, EVERYTHING).unwrap();
    let cases: [(&str, Vec<&str>); 3] = [
        ("default", vec![]),
        (
            "external-database",
            vec!["--set", "database.externalUrl.secretName=hdi-database"],
        ),
        ("everything", vec!["-f", everything.to_str().unwrap()]),
    ];
    for (name, values) in cases {
        let rendered = helm.template(&values).unwrap();
        let count = documents(&rendered).len();
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let mut command = Command::new(&validate);
        command.arg("--strict");
        for version in KUBERNETES_VERSIONS {
            command.args(["-k", version]);
        }
        let out = command.arg(&file).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: kubernetes-validate failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A WARN is an object without a schema: nothing may slip through unvalidated.
        let unchecked: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("INFO")).collect();
        assert!(unchecked.is_empty(), "{name}: {unchecked:#?}");
        for version in KUBERNETES_VERSIONS {
            let passed = stdout
                .lines()
                .filter(|l| l.contains(" passed ") && l.ends_with(&format!("version {version}")))
                .count();
            assert_eq!(
                passed, count,
                "{name}: every object against {version}:\n{stdout}"
            );
        }
        println!("{name}: {count} objects valid against {KUBERNETES_VERSIONS:?}");
    }
}

/// `name` in `api` exists (retrying: every kind is read through its own watch cache).
async fn exists<K>(api: &Api<K>, name: &str) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
{
    let (object, _) = eventually(
        &format!("{name} to exist"),
        Duration::from_secs(60),
        || async { api.get(name).await.ok() },
    )
    .await?;
    Ok(object)
}

/// `name` in `api` is gone.
async fn gone<K>(api: &Api<K>, name: &str) -> anyhow::Result<Duration>
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
{
    let (_, took) = eventually(
        &format!("{name} to be gone"),
        Duration::from_secs(90),
        || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
    )
    .await?;
    Ok(took)
}

/// A call the account's role does not grant: the API answers 403.
fn forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn pods_of(client: &Client, component: &str) -> (Api<Pod>, ListParams) {
    (
        Api::namespaced(client.clone(), NAMESPACE),
        ListParams::default().labels(&format!("app.kubernetes.io/component={component}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_installs_into_a_real_api_server_and_its_rbac_is_exactly_enough() -> anyhow::Result<()>
{
    let kube = KubeControlPlane::builder()
        .with_controllers()
        .start()
        .await?;
    let result = install_run_upgrade_uninstall(&kube).await;
    if result.is_err() {
        eprintln!("{}", kube.log_tail("kube-controller-manager", 60));
    }
    result
}

async fn install_run_upgrade_uninstall(kube: &KubeControlPlane) -> anyhow::Result<()> {
    let client = kube.client();
    let helm = Helm::new();
    let kubeconfig = kube.kubeconfig();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();

    // The namespace enforces the restricted Pod Security Standard: the chart's pods are
    // created only if they comply.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(NAMESPACE.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "pod-security.kubernetes.io/enforce".to_owned(),
                        "restricted".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await?;
    let out = helm.run(&[
        "install",
        "hdi",
        chart,
        "-n",
        NAMESPACE,
        "--kubeconfig",
        kubeconfig,
    ])?;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(
        out.contains("kubectl -n hdi-system port-forward"),
        "NOTES: {out}"
    );

    // What it installed.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let control_plane = exists(&deployments, "hdi-control-plane").await?;
    assert_eq!(control_plane.spec.replicas, Some(2));
    exists(&deployments, "hdi-operator").await?;
    exists(
        &Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE),
        "hdi-postgresql",
    )
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for name in ["hdi-control-plane", "hdi-postgresql"] {
        exists(&services, name).await?;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for name in ["hdi-control-plane", "hdi-operator"] {
        exists(&accounts, name).await?;
        exists(&roles, name).await?;
        exists(&bindings, name).await?;
    }
    exists(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE),
        "hdi-control-plane",
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let tokens = exists(&secrets, "hdi-tokens").await?.data;
    let database_password = exists(&secrets, "hdi-postgresql").await?.data;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        eventually(
            &format!("CRD {name} established"),
            Duration::from_secs(30),
            || async {
                crds.get(name)
                    .await
                    .ok()?
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await?;
    }
    // The controllers made the pods (Pending: there are no nodes) under the restricted
    // standard.
    for (component, count) in [("control-plane", 2), ("operator", 1), ("postgresql", 1)] {
        let (pods, selector) = pods_of(&client, component);
        let (_, took) = eventually(
            &format!("{count} {component} pods admitted"),
            Duration::from_secs(60),
            || async { (pods.list(&selector).await.ok()?.items.len() == count).then_some(()) },
        )
        .await?;
        println!("{component}: {count} pods admitted under the restricted standard in {took:?}");
    }

    // hdi with exactly the chart's grants: both processes authenticate as its ServiceAccounts.
    let database_url = hdi_e2e::fresh_database().await;
    let operator_config = kube
        .service_account_kubeconfig(NAMESPACE, "hdi-operator")
        .await?;
    let control_plane_config = kube
        .service_account_kubeconfig(NAMESPACE, "hdi-control-plane")
        .await?;
    let mut operator = Proc::spawn(
        "hdi-operator",
        Command::new(bin("hdi-control-plane"))
            .arg("operator")
            .env("DATABASE_URL", &database_url)
            .env("KUBECONFIG", &operator_config)
            .env("RUST_LOG", "info,kube=warn"),
    );
    let dir = TempDir::new("kube-chart");
    let secrets_files = Secrets::create(dir.path());
    let listen = hdi_test_support::ports::loopback();
    let mut hdi = ControlPlane::start_with_env(
        &database_url,
        &secrets_files,
        &listen,
        &[
            "--provisioner",
            "kubernetes",
            "--kubernetes-control-plane-url",
            &format!("http://{listen}"),
            "--reconcile-interval",
            "300ms",
        ],
        &[("KUBECONFIG", control_plane_config.as_os_str())],
    );
    let result = with_the_chart_rbac(kube, &client, &hdi, &secrets_files).await;
    if result.is_err() {
        let tail = |lines: Vec<String>| lines[lines.len().saturating_sub(60)..].join("\n");
        eprintln!(
            "--- operator ---\n{}\n--- control plane ---\n{}",
            tail(operator.lines()),
            tail(hdi.proc.lines())
        );
    }
    result?;
    assert!(
        hdi.proc
            .lines()
            .iter()
            .any(|l| l.contains("kubernetes objects applied")),
        "the control plane's output is collected"
    );
    let denied: Vec<String> = operator
        .lines()
        .into_iter()
        .chain(hdi.proc.lines())
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "a call the chart's RBAC refused: {denied:#?}"
    );
    operator.terminate(Duration::from_secs(10))?;
    hdi.proc.terminate(Duration::from_secs(10))?;

    // helm upgrade: a value changes, the generated secrets stay.
    let out = helm.run(&[
        "upgrade",
        "hdi",
        chart,
        "-n",
        NAMESPACE,
        "--kubeconfig",
        kubeconfig,
        "--set",
        "controlPlane.replicas=3",
    ])?;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let (_, took) = eventually(
        "3 control plane replicas",
        Duration::from_secs(30),
        || async {
            let spec = deployments.get("hdi-control-plane").await.ok()?.spec;
            (spec.replicas == Some(3)).then_some(())
        },
    )
    .await?;
    println!("helm upgrade: 3 replicas in {took:?}");
    assert_eq!(secrets.get("hdi-tokens").await?.data, tokens, "tokens kept");
    assert_eq!(
        secrets.get("hdi-postgresql").await?.data,
        database_password,
        "the database password kept"
    );

    // helm uninstall: everything goes but the CRDs.
    let out = helm.run(&[
        "uninstall",
        "hdi",
        "-n",
        NAMESPACE,
        "--kubeconfig",
        kubeconfig,
    ])?;
    assert!(out.contains("uninstalled"), "{out}");
    for name in ["hdi-control-plane", "hdi-operator"] {
        gone(&deployments, name).await?;
        gone(&accounts, name).await?;
        gone(&roles, name).await?;
        gone(&bindings, name).await?;
    }
    gone(
        &Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE),
        "hdi-postgresql",
    )
    .await?;
    for name in ["hdi-control-plane", "hdi-postgresql"] {
        gone(&services, name).await?;
    }
    for name in ["hdi-tokens", "hdi-postgresql"] {
        gone(&secrets, name).await?;
    }
    gone(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE),
        "hdi-control-plane",
    )
    .await?;
    let left = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    eventually("the pods collected", Duration::from_secs(90), || async {
        left.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await?;
    for name in CRDS {
        assert!(
            crds.get_opt(name).await?.is_some(),
            "{name} is kept by helm uninstall"
        );
    }
    Ok(())
}

fn cluster_resource(name: &str) -> Value {
    json!({
        "apiVersion": "hdi.io/v1alpha1",
        "kind": "HdiCluster",
        "metadata": {"name": name},
        "spec": {
            "kind": "kafka",
            "nodePools": [{"name": "brokers", "role": "broker", "replicas": 3, "storageGiB": 5}],
        },
    })
}

/// The operator and the control plane, with the chart's ServiceAccounts, do their work; each
/// account is refused what its role does not grant.
async fn with_the_chart_rbac(
    kube: &KubeControlPlane,
    client: &Client,
    hdi: &ControlPlane,
    secrets_files: &Secrets,
) -> anyhow::Result<()> {
    kube.create_namespace("bank").await?;
    let clusters: Api<HdiCluster> = Api::namespaced(client.clone(), "bank");
    clusters
        .patch(
            "payments",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster_resource("payments")),
        )
        .await?;
    // The operator: finalizer (patch), status (patch on status), Events.
    let (resource, took) = eventually(
        "the finalizer and the status",
        Duration::from_secs(60),
        || async {
            let object = clusters.get("payments").await.ok()?;
            let status = serde_json::to_value(object.status.as_ref()?).ok()?;
            (object
                .metadata
                .finalizers
                .as_ref()?
                .iter()
                .any(|f| f == "hdi.io/cleanup")
                && status["observedGeneration"] == 1
                && status["conditions"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()))
            .then_some(object)
        },
    )
    .await?;
    println!("operator (its ServiceAccount): finalizer and status in {took:?}");
    let events: Api<Event> = Api::namespaced(client.clone(), "bank");
    eventually(
        "an Event of the operator",
        Duration::from_secs(30),
        || async {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .any(|e| {
                    e.reporting_controller.as_deref() == Some("hdi-operator")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("payments")
                })
                .then_some(())
        },
    )
    .await?;
    // (The CA Secret `hdi-payments-ca` comes once the cluster's authority is issued, which
    // needs placed brokers: pods do not run here.)
    let bank_secrets: Api<Secret> = Api::namespaced(client.clone(), "bank");

    // The control plane: the cluster's objects, owned by the resource.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "bank");
    let (set, took) = eventually(
        "the brokers' StatefulSet",
        Duration::from_secs(60),
        || async { sets.get("hdi-payments-brokers").await.ok() },
    )
    .await?;
    println!("control plane (its ServiceAccount): StatefulSet in {took:?}");
    let owner = &set.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.uid, resource.metadata.uid.unwrap());
    exists(
        &Api::<Service>::namespaced(client.clone(), "bank"),
        "hdi-payments-bootstrap",
    )
    .await?;
    exists(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), "bank"),
        "hdi-payments-brokers",
    )
    .await?;
    exists(
        &Api::<NetworkPolicy>::namespaced(client.clone(), "bank"),
        "hdi-payments",
    )
    .await?;
    exists(&bank_secrets, "hdi-payments-enrolment").await?;

    // A REST cluster in a workspace without a namespace: the control plane makes the namespace
    // and the anchor ConfigMap, and deletes the anchor with the cluster.
    let api = hdi.admin(secrets_files);
    api.workspace_create("retail").await?;
    api.cluster_put(
        "retail",
        "orders",
        &ClusterSpec {
            kind: ClusterKind::Kafka,
            version: None,
            node_pools: vec![NodePool {
                name: "brokers".into(),
                role: PoolRole::Broker,
                replicas: 1,
                size: "small".into(),
                storage_gib: 5,
            }],
            config: Default::default(),
            deletion_protection: false,
            security: Some(hdi_api::KafkaSecurity::plaintext()),
        },
    )
    .await?;
    let anchors: Api<ConfigMap> = Api::namespaced(client.clone(), "retail");
    exists(&anchors, "hdi-orders").await?;
    exists(
        &Api::<StatefulSet>::namespaced(client.clone(), "retail"),
        "hdi-orders-brokers",
    )
    .await?;
    api.cluster_delete("retail", "orders").await?;
    let took = gone(&anchors, "hdi-orders").await?;
    println!("REST cluster deleted: its anchor ConfigMap gone in {took:?}");

    // What the roles do not grant.
    let operator = kube
        .service_account_client(NAMESPACE, "hdi-operator")
        .await?;
    let control_plane = kube
        .service_account_client(NAMESPACE, "hdi-control-plane")
        .await?;
    for (who, account) in [("operator", &operator), ("control plane", &control_plane)] {
        forbidden(
            &format!("{who}: list Secrets in kube-system"),
            Api::<Secret>::namespaced(account.clone(), "kube-system")
                .list(&ListParams::default())
                .await,
        );
        forbidden(
            &format!("{who}: delete namespace bank"),
            Api::<Namespace>::all(account.clone())
                .delete("bank", &DeleteParams::default())
                .await,
        );
        forbidden(
            &format!("{who}: list pods"),
            Api::<Pod>::all(account.clone())
                .list(&ListParams::default())
                .await,
        );
        forbidden(
            &format!("{who}: delete its own ClusterRole"),
            Api::<ClusterRole>::all(account.clone())
                .delete("hdi-operator", &DeleteParams::default())
                .await,
        );
        forbidden(
            &format!("{who}: delete an HdiCluster"),
            Api::<HdiCluster>::namespaced(account.clone(), "bank")
                .delete("payments", &DeleteParams::default())
                .await,
        );
    }
    forbidden(
        "operator: read a Secret (it only writes the CA's)",
        Api::<Secret>::namespaced(operator.clone(), "bank")
            .get("hdi-payments-enrolment")
            .await,
    );
    forbidden(
        "operator: delete a StatefulSet",
        Api::<StatefulSet>::namespaced(operator.clone(), "bank")
            .delete("hdi-payments-brokers", &DeleteParams::default())
            .await,
    );
    forbidden(
        "control plane: write an HdiCluster's status",
        Api::<HdiCluster>::namespaced(control_plane.clone(), "bank")
            .patch_status(
                "payments",
                &PatchParams::apply("test"),
                &Patch::Apply(json!({
                    "apiVersion": "hdi.io/v1alpha1", "kind": "HdiCluster", "status": {},
                })),
            )
            .await,
    );

    // Deleting the resource: the operator's cleanup, its finalizer dropped, the objects
    // collected.
    clusters
        .delete("payments", &DeleteParams::default())
        .await?;
    let took = gone(&clusters, "payments").await?;
    println!("HdiCluster deleted (finalizer removed by the operator) in {took:?}");
    gone(&sets, "hdi-payments-brokers").await?;
    Ok(())
}
