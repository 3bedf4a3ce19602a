//! `KubeControlPlane`: a real Kubernetes control plane for tests, started envtest-style on
//! loopback from the binaries `cargo xtask kube-bin` builds (their directory comes in
//! `HDI_TEST_K8S_BIN`, which `cargo xtask test` sets).
//!
//! Always etcd and kube-apiserver; with [`KubeControlPlaneBuilder::with_controllers`] also
//! kube-controller-manager (StatefulSets, garbage collection, service accounts, …) and
//! kube-scheduler; with [`KubeControlPlaneBuilder::with_kwok_nodes`] also kwok, which plays the
//! kubelets of fake Nodes (one per zone, labelled `topology.kubernetes.io/zone`): pods bound to
//! them turn Running and Ready, and claims of the StorageClass [`KWOK_STORAGE_CLASS`] (the default
//! class) are provisioned and bound, so StatefulSets with `volumeClaimTemplates` come up. No
//! container runs and no fake IP is ever served.
//!
//! **Loopback only.** Every process listens on 127.0.0.1 on ports from [`crate::ports`]; the
//! controller manager and the scheduler serve nothing (`--secure-port=0`); kwok runs no server.
//! Pod IPs come from [`POD_CIDR`] and ClusterIPs from [`SERVICE_CIDR`], both loopback ranges, so
//! that an accidental dial of one stays on this machine. A consequence: the API refuses loopback
//! addresses in EndpointSlices, so Services get no endpoints for kwok's pods.
//!
//! **Certificates** come from `hdi-pki`: one CA signs the API server's serving certificate
//! (127.0.0.1, localhost, kubernetes.default.svc, …) and an admin client certificate in group
//! `system:masters`; an ECDSA key pair signs service-account tokens. Authorization is RBAC, so a
//! client for a service account ([`KubeControlPlane::service_account_client`]) has only what its
//! roles grant. The admin kubeconfig ([`KubeControlPlane::kubeconfig`]) names files in the
//! control plane's directory, so kubectl and the Go components can use it.
//!
//! **Processes** each run in a process group of their own, with their output in
//! `<dir>/logs/<name>.log` (appended across restarts; the tails are in every error). They are
//! SIGKILLed, group and all, when the `KubeControlPlane` drops, and also when the test process
//! dies, however it dies (`PR_SET_PDEATHSIG`, armed from a thread that lives as long as the
//! process). When a test panics, the directory is kept and its path and the logs' tails printed.
//!
//! Flags follow controller-runtime's envtest and kwokctl (see `research/polyglot-k8s-kafka.md`
//! A.4): etcd with `--unsafe-no-fsync`; kube-apiserver with RBAC,
//! `--enable-priority-and-fairness=false`, `--endpoint-reconciler-type=none`, and the
//! ServiceAccount admission plugin only when the controller manager runs (it creates the
//! `default` service accounts pods need).

#![allow(
    unsafe_code,
    reason = "pre_exec, prctl and kill(2) on our own children"
)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, NodeStatus, ServiceAccount, Taint};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The environment variable naming the directory of the binaries (`target/k8s/<version>/bin`).
pub const K8S_BIN_ENV: &str = "HDI_TEST_K8S_BIN";
/// The pod IPs kwok hands out: loopback, so nothing can dial out through them.
pub const POD_CIDR: &str = "127.64.0.0/16";
/// The ClusterIPs of Services: loopback too (nothing serves them; no kube-proxy runs).
pub const SERVICE_CIDR: &str = "127.65.0.0/24";
/// The StorageClass whose claims kwok provisions and binds (the default class).
pub const KWOK_STORAGE_CLASS: &str = "kwok-volume";
/// The annotation that hands a Node to kwok.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// The label of the zone, the fault domain topology spread constraints use.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// What each fake Node offers: cpu, memory, pods.
pub const KWOK_NODE_ALLOCATABLE: (&str, &str, &str) = ("32", "256Gi", "110");

/// How long a component may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How many lines of each log an error or a failed test shows.
const TAIL_LINES: usize = 40;

/// Options of a control plane, then [`KubeControlPlaneBuilder::start`].
#[derive(Debug, Default, Clone)]
pub struct KubeControlPlaneBuilder {
    controllers: bool,
    zones: Vec<String>,
}

impl KubeControlPlaneBuilder {
    /// Also run kube-controller-manager (every default controller) and kube-scheduler.
    pub fn with_controllers(mut self) -> Self {
        self.controllers = true;
        self
    }

    /// Also run kwok with one fake Node per zone, named `kwok-<zone>` (so zones must be DNS
    /// labels), labelled with its zone, offering [`KWOK_NODE_ALLOCATABLE`]; and create the
    /// StorageClass [`KWOK_STORAGE_CLASS`]. Pods get scheduled only
    /// [`with_controllers`](Self::with_controllers).
    pub fn with_kwok_nodes(mut self, zones: &[&str]) -> Self {
        self.zones = zones.iter().map(|zone| (*zone).to_owned()).collect();
        self
    }

    /// Starts every process and waits until the API server is ready (and, with the options, the
    /// `default` service account exists and the kwok Nodes are Ready and untainted).
    ///
    /// # Errors
    /// When `HDI_TEST_K8S_BIN` is unset or a binary is missing, a process fails to start or to
    /// become ready (the error carries the tails of the logs).
    pub async fn start(self) -> anyhow::Result<KubeControlPlane> {
        KubeControlPlane::start_with(self).await
    }
}

/// A running control plane; everything it started is killed when it drops.
pub struct KubeControlPlane {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    bin: PathBuf,
    apiserver_port: u16,
    etcd: Component,
    apiserver: Component,
    apiserver_args: Vec<OsString>,
    controller_manager: Option<Component>,
    scheduler: Option<Component>,
    kwok: Option<Component>,
    nodes: Vec<String>,
    client: kube::Client,
    timings: Vec<(&'static str, Duration)>,
}

impl std::fmt::Debug for KubeControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeControlPlane")
            .field("dir", &self.root)
            .field("server", &self.server())
            .finish_non_exhaustive()
    }
}

impl KubeControlPlane {
    /// The options, to start one with more than the API server.
    pub fn builder() -> KubeControlPlaneBuilder {
        KubeControlPlaneBuilder::default()
    }

    /// etcd and kube-apiserver only.
    ///
    /// # Errors
    /// As [`KubeControlPlaneBuilder::start`].
    pub async fn start() -> anyhow::Result<KubeControlPlane> {
        Self::builder().start().await
    }

    async fn start_with(options: KubeControlPlaneBuilder) -> anyhow::Result<KubeControlPlane> {
        let started = Instant::now();
        let bin = binaries_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("hdi-e2e-kube-")
            .tempdir()
            .context("cannot create the control plane's directory")?;
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join("logs"))?;
        write_certificates(&root)?;
        let ports = hdi_test_support::ports::take(3).context("cannot allocate ports")?;
        let [etcd_port, peer_port, apiserver_port] = ports[..] else {
            bail!("asked for 3 ports, got {ports:?}");
        };
        std::fs::write(
            root.join("admin.kubeconfig"),
            kubeconfig_json(&root, apiserver_port),
        )?;
        let mut timings = Vec::new();

        let step = Instant::now();
        let etcd = Component::spawn("etcd", &bin, &etcd_args(&root, etcd_port, peer_port), &root)?;
        wait_etcd(&etcd, etcd_port).await?;
        timings.push(("etcd ready", step.elapsed()));

        let step = Instant::now();
        let apiserver_args = apiserver_args(&root, etcd_port, apiserver_port, options.controllers);
        let apiserver = Component::spawn("kube-apiserver", &bin, &apiserver_args, &root)?;
        let client = admin_client(&root).await?;
        let mut plane = KubeControlPlane {
            dir: Some(dir),
            root,
            bin,
            apiserver_port,
            etcd,
            apiserver,
            apiserver_args,
            controller_manager: None,
            scheduler: None,
            kwok: None,
            nodes: Vec::new(),
            client,
            timings: Vec::new(),
        };
        plane.wait_apiserver_ready().await?;
        timings.push(("kube-apiserver ready", step.elapsed()));

        if options.controllers {
            let step = Instant::now();
            plane.start_controllers()?;
            plane.wait_default_service_account("default").await?;
            timings.push(("controllers: default service account", step.elapsed()));
        }
        if !options.zones.is_empty() {
            let step = Instant::now();
            plane
                .start_kwok(&options.zones, options.controllers)
                .await?;
            timings.push(("kwok nodes ready", step.elapsed()));
        }
        timings.push(("total", started.elapsed()));
        plane.timings = timings;
        Ok(plane)
    }

    /// A client with the admin identity (`system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig file (for kubectl, `KUBECONFIG`, the Go components).
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// The CA certificate the API server's serving certificate chains to (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.root.join("ca.crt")
    }

    /// The control plane's directory (certificates, kubeconfig, etcd's data, `logs/`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The directory of the binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The names of the kwok Nodes, in the order of their zones.
    pub fn kwok_nodes(&self) -> &[String] {
        &self.nodes
    }

    /// How long each start-up step took.
    pub fn timings(&self) -> &[(&'static str, Duration)] {
        &self.timings
    }

    /// The last `lines` lines of a component's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`, `kube-scheduler`, `kwok`).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail(&log_path(&self.root, component), lines)
    }

    /// The tails of every log, for an error message.
    pub fn logs(&self) -> String {
        tails(&self.components())
    }

    fn components(&self) -> Vec<&Component> {
        let mut all = vec![&self.etcd, &self.apiserver];
        all.extend(self.controller_manager.iter());
        all.extend(self.scheduler.iter());
        all.extend(self.kwok.iter());
        all
    }

    /// SIGKILLs kube-apiserver (etcd and the rest keep running): the API is down until
    /// [`start_apiserver`](Self::start_apiserver).
    pub fn kill_apiserver(&mut self) {
        self.apiserver.kill();
    }

    /// Starts kube-apiserver again on the same port, certificates and etcd, and waits until it
    /// is ready. Clients reconnect by themselves.
    ///
    /// # Errors
    /// When it does not become ready.
    pub async fn start_apiserver(&mut self) -> anyhow::Result<()> {
        self.apiserver.kill();
        self.apiserver = Component::spawn(
            "kube-apiserver",
            &self.bin,
            &self.apiserver_args,
            &self.root,
        )?;
        self.wait_apiserver_ready().await
    }

    /// Kills kube-apiserver and starts it again ([`kill_apiserver`](Self::kill_apiserver) then
    /// [`start_apiserver`](Self::start_apiserver)); answers how long the API was down.
    ///
    /// # Errors
    /// When it does not become ready again.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.kill_apiserver();
        self.start_apiserver().await?;
        Ok(started.elapsed())
    }

    /// Creates namespace `name` and, when the controller manager runs, waits for its `default`
    /// service account (pods cannot be created in it before).
    ///
    /// # Errors
    /// When the API refuses it or the service account does not appear.
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("cannot create namespace {name}"))?;
        if self.controller_manager.is_some() {
            self.wait_default_service_account(name).await?;
        }
        Ok(())
    }

    /// A token of service account `namespace/name`, issued by the API server (TokenRequest,
    /// valid for an hour). The account must exist.
    ///
    /// # Errors
    /// When the token request fails.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = Api::<ServiceAccount>::namespaced(self.client(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("cannot get a token for {namespace}/{name}"))?;
        issued
            .status
            .and_then(|status| status.token)
            .with_context(|| format!("the token request for {namespace}/{name} has no token"))
    }

    /// A client that authenticates as service account `namespace/name` with a token the API
    /// server issues ([`service_account_token`](Self::service_account_token)): it can do only
    /// what RBAC grants that account. The account must exist.
    ///
    /// # Errors
    /// When the token request fails or the client cannot be built.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<kube::Client> {
        let token = self.service_account_token(namespace, name).await?;
        let mut config = kube::Config::new(
            self.server()
                .parse()
                .context("the server URL does not parse")?,
        );
        config.root_cert = Some(vec![pem_der(&std::fs::read_to_string(self.ca_file())?)?]);
        config.default_namespace = namespace.to_owned();
        config.auth_info.token = Some(token.into());
        kube::Client::try_from(config).context("cannot build a service account client")
    }

    /// A kubeconfig file (`<dir>/sa-<namespace>-<name>.kubeconfig`, 0600) whose user is service
    /// account `namespace/name` with a token as [`service_account_client`](Self::service_account_client)'s,
    /// for a process (`KUBECONFIG`) that must run with exactly that account's grants.
    ///
    /// # Errors
    /// When the token request fails or the file cannot be written.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let token = self.service_account_token(namespace, name).await?;
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hdi-test", "cluster": {
                "server": self.server(),
                "certificate-authority": self.ca_file(),
            }}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "hdi-test", "context": {
                "cluster": "hdi-test", "user": name, "namespace": namespace,
            }}],
            "current-context": "hdi-test",
        });
        let path = self.root.join(format!("sa-{namespace}-{name}.kubeconfig"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::io::Write::write_all(&mut file, config.to_string().as_bytes())?;
        Ok(path)
    }

    /// Polls `/readyz` until it answers `ok`.
    async fn wait_apiserver_ready(&self) -> anyhow::Result<()> {
        self.wait_until("kube-apiserver's /readyz", || async {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|error| error.to_string())?;
            match self.client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => Ok(()),
                Ok(body) => Err(body),
                Err(error) => Err(error.to_string()),
            }
        })
        .await
    }

    /// Waits for service account `default` in `namespace` (made by the controller manager).
    async fn wait_default_service_account(&self, namespace: &str) -> anyhow::Result<()> {
        let accounts = Api::<ServiceAccount>::namespaced(self.client(), namespace);
        self.wait_until(&format!("service account {namespace}/default"), || async {
            match accounts.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not created yet".to_owned()),
                Err(error) => Err(error.to_string()),
            }
        })
        .await
    }

    /// [`poll`] with every process of the control plane.
    async fn wait_until<T, F, Fut>(&self, what: &str, check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        poll(what, &self.components(), check).await
    }

    fn start_controllers(&mut self) -> anyhow::Result<()> {
        let root = &self.root;
        let kubeconfig = root.join("admin.kubeconfig");
        let flag = |name: &str, value: &Path| {
            let mut flag = OsString::from(format!("--{name}="));
            flag.push(value);
            flag
        };
        let mut kcm_args = vec![
            flag("kubeconfig", &kubeconfig),
            flag("root-ca-file", &root.join("ca.crt")),
            flag("service-account-private-key-file", &root.join("sa.key")),
        ];
        kcm_args.extend(
            [
                "--leader-elect=false",
                "--secure-port=0",
                "--bind-address=127.0.0.1",
                "--use-service-account-credentials=false",
                "--controllers=*",
                "--cluster-name=hdi-test",
                // No cloud provider, no node CIDRs: nothing here dials out.
                "--allocate-node-cidrs=false",
            ]
            .map(OsString::from),
        );
        self.controller_manager = Some(Component::spawn(
            "kube-controller-manager",
            &self.bin,
            &kcm_args,
            root,
        )?);
        let config = root.join("kube-scheduler.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": kubeconfig},
                "leaderElection": {"leaderElect": false},
            })
            .to_string(),
        )?;
        let scheduler_args = vec![
            flag("config", &config),
            OsString::from("--secure-port=0"),
            OsString::from("--bind-address=127.0.0.1"),
        ];
        self.scheduler = Some(Component::spawn(
            "kube-scheduler",
            &self.bin,
            &scheduler_args,
            root,
        )?);
        Ok(())
    }

    async fn start_kwok(&mut self, zones: &[String], controllers: bool) -> anyhow::Result<()> {
        let client = self.client();
        let class = StorageClass {
            metadata: ObjectMeta {
                name: Some(KWOK_STORAGE_CLASS.to_owned()),
                annotations: Some(BTreeMap::from([(
                    "storageclass.kubernetes.io/is-default-class".to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            provisioner: "kwok.x-k8s.io/volume".to_owned(),
            reclaim_policy: Some("Delete".to_owned()),
            volume_binding_mode: Some("Immediate".to_owned()),
            ..StorageClass::default()
        };
        Api::<StorageClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await
            .context("cannot create the kwok StorageClass")?;
        let nodes = Api::<Node>::all(client);
        for zone in zones {
            let node = kwok_node(zone);
            nodes
                .create(&PostParams::default(), &node)
                .await
                .with_context(|| format!("cannot create the kwok Node of zone {zone}"))?;
            self.nodes.push(node.metadata.name.unwrap_or_default());
        }
        let stages_dir = self.bin.join("kwok-stages");
        let mut stages: Vec<PathBuf> = std::fs::read_dir(&stages_dir)
            .with_context(|| {
                format!(
                    "no kwok stages in {}: run the tests with `cargo xtask test` (or build them \
                     with `cargo xtask kube-bin`)",
                    stages_dir.display()
                )
            })?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        stages.sort();
        let home = self.root.join("kwok-home");
        std::fs::create_dir_all(&home)?;
        let mut args = vec![
            OsString::from(format!(
                "--kubeconfig={}",
                self.root.join("admin.kubeconfig").display()
            )),
            OsString::from("--manage-all-nodes=false"),
            OsString::from(format!(
                "--manage-nodes-with-annotation-selector={}={}",
                KWOK_NODE_ANNOTATION.0, KWOK_NODE_ANNOTATION.1
            )),
            OsString::from(format!("--cidr={POD_CIDR}")),
            OsString::from("--node-ip=127.0.0.1"),
        ];
        for stage in &stages {
            let mut flag = OsString::from("--config=");
            flag.push(stage);
            args.push(flag);
        }
        let mut kwok = Component::spawn_with(
            "kwok",
            &self.bin,
            &args,
            &self.root,
            // Not the user's ~/.kwok/kwok.yaml: kwok loads it when it exists.
            &[("HOME", home.as_os_str())],
        )?;
        if let Some(status) = kwok.exited_after(Duration::from_millis(300)) {
            bail!("kwok exited ({status}):\n{}", kwok.describe_tail());
        }
        self.kwok = Some(kwok);
        let api = Api::<Node>::all(self.client());
        let names = self.nodes.clone();
        self.wait_until("the kwok Nodes to be Ready", || async {
            let list = api
                .list(&ListParams::default().labels("type=kwok"))
                .await
                .map_err(|error| error.to_string())?;
            let ready = list
                .items
                .iter()
                .filter(|node| node_ready(node) && !(controllers && node_not_ready_tainted(node)))
                .count();
            if ready == names.len() {
                Ok(())
            } else {
                Err(format!("{ready} of {} Ready and untainted", names.len()))
            }
        })
        .await
    }
}

impl Drop for KubeControlPlane {
    fn drop(&mut self) {
        let mut all = vec![&mut self.etcd, &mut self.apiserver];
        all.extend(self.controller_manager.iter_mut());
        all.extend(self.scheduler.iter_mut());
        all.extend(self.kwok.iter_mut());
        for component in all.iter_mut().rev() {
            component.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- KubeControlPlane (kept in {}) -----\n{}",
                self.root.display(),
                self.logs()
            );
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// The directory of the binaries, from `HDI_TEST_K8S_BIN`, checked.
fn binaries_dir() -> anyhow::Result<PathBuf> {
    let Some(dir) = std::env::var_os(K8S_BIN_ENV) else {
        bail!(
            "{K8S_BIN_ENV} is not set: run the tests with `cargo xtask test` (it builds \
             kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok under \
             target/k8s/ and sets it), or build them with `cargo xtask kube-bin` and set \
             {K8S_BIN_ENV} to the directory it prints"
        );
    };
    let dir = PathBuf::from(dir);
    for binary in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        if !dir.join(binary).is_file() {
            bail!(
                "{} is missing ({K8S_BIN_ENV}={}): build it with `cargo xtask kube-bin`",
                dir.join(binary).display(),
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// Writes the CA, the API server's serving certificate, the admin's client certificate and the
/// service-account key pair into `root`.
fn write_certificates(root: &Path) -> anyhow::Result<()> {
    let ca = hdi_pki::Authority::generate_for("kubernetes-test", hdi_pki::Purpose::Kafka)?;
    let names = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(str::to_owned);
    let server = ca.issue_server(&names)?;
    let admin = ca.issue_client_in_group("hdi-admin", "system:masters")?;
    let signing = hdi_pki::SigningKey::generate()?;
    for (file, pem) in [
        ("ca.crt", &ca.cert_pem),
        ("apiserver.crt", &server.cert_pem),
        ("apiserver.key", &server.key_pem),
        ("admin.crt", &admin.cert_pem),
        ("admin.key", &admin.key_pem),
        ("sa.key", &signing.private_pem),
        ("sa.pub", &signing.public_pem),
    ] {
        std::fs::write(root.join(file), pem)?;
    }
    Ok(())
}

/// The admin kubeconfig (JSON, which every kubeconfig reader takes as YAML).
fn kubeconfig_json(root: &Path, port: u16) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hdi-test", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority": root.join("ca.crt"),
        }}],
        "users": [{"name": "hdi-admin", "user": {
            "client-certificate": root.join("admin.crt"),
            "client-key": root.join("admin.key"),
        }}],
        "contexts": [{"name": "hdi-test", "context": {"cluster": "hdi-test", "user": "hdi-admin"}}],
        "current-context": "hdi-test",
    })
    .to_string()
}

async fn admin_client(root: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(root.join("admin.kubeconfig"))
        .context("cannot read the admin kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("cannot load the admin kubeconfig")?;
    kube::Client::try_from(config).context("cannot build the admin client")
}

/// The DER bytes of the first certificate of a PEM document.
fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).context("the CA is not PEM")?;
    Ok(der.to_vec())
}

fn etcd_args(root: &Path, client_port: u16, peer_port: u16) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        OsString::from("--name=hdi-test"),
        OsString::from(format!("--data-dir={}", root.join("etcd").display())),
        OsString::from(format!("--listen-client-urls={client}")),
        OsString::from(format!("--advertise-client-urls={client}")),
        OsString::from(format!("--listen-peer-urls={peer}")),
        OsString::from(format!("--initial-advertise-peer-urls={peer}")),
        OsString::from(format!("--initial-cluster=hdi-test={peer}")),
        OsString::from("--unsafe-no-fsync"),
        OsString::from("--log-level=warn"),
    ]
}

fn apiserver_args(root: &Path, etcd_port: u16, port: u16, controllers: bool) -> Vec<OsString> {
    let file = |name: &str| root.join(name).display().to_string();
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--advertise-address=127.0.0.1".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", file("apiserver-certs")),
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=RBAC".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--enable-priority-and-fairness=false".to_owned(),
        "--endpoint-reconciler-type=none".to_owned(),
        "--profiling=false".to_owned(),
    ];
    if !controllers {
        // No controller manager makes the `default` service accounts this plugin requires.
        args.push("--disable-admission-plugins=ServiceAccount".to_owned());
    }
    args.into_iter().map(OsString::from).collect()
}

/// Waits until etcd answers `/health` with `"health":"true"`.
async fn wait_etcd(etcd: &Component, port: u16) -> anyhow::Result<()> {
    poll("etcd's /health", &[etcd], || async {
        let body = http_get(port, "/health")
            .await
            .map_err(|error| error.to_string())?;
        if body.contains("\"health\":\"true\"") {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await
}

/// Polls `check` every 100 ms until it answers `Ok`; fails, with its last answer and the tails
/// of the logs of `components`, after [`READY_TIMEOUT`] or as soon as one of them exits.
async fn poll<T, F, Fut>(what: &str, components: &[&Component], mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if let Some(component) = components.iter().find(|c| c.has_exited()) {
            bail!(
                "{} exited while waiting for {what} (last: {last})\n{}",
                component.name,
                tails(components)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {READY_TIMEOUT:?} waiting for {what} (last: {last})\n{}",
                tails(components)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tails of the logs of `components`.
fn tails(components: &[&Component]) -> String {
    components.iter().map(|c| c.describe_tail()).collect()
}

/// A plain HTTP/1.0 GET on 127.0.0.1:`port`; the whole response.
async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut response))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    Ok(response)
}

/// A Node for kwok in `zone`.
fn kwok_node(zone: &str) -> Node {
    let name = format!("kwok-{zone}");
    let (cpu, memory, pods) = KWOK_NODE_ALLOCATABLE;
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
        ("pods".to_owned(), Quantity(pods.to_owned())),
    ]);
    let labels = BTreeMap::from(
        [
            ("type", "kwok"),
            ("kubernetes.io/hostname", name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/role", "agent"),
            ("node.kubernetes.io/instance-type", "kwok"),
            (ZONE_LABEL, zone),
            ("topology.kubernetes.io/region", "hdi-test"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    let annotations = BTreeMap::from(
        [KWOK_NODE_ANNOTATION, ("node.alpha.kubernetes.io/ttl", "0")]
            .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..NodeStatus::default()
        }),
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Whether the node still carries the taint the node lifecycle controller removes once it is
/// Ready (the scheduler keeps pods off it until then).
fn node_not_ready_tainted(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|spec| spec.taints.as_ref())
        .is_some_and(|taints: &Vec<Taint>| {
            taints
                .iter()
                .any(|t| t.key.starts_with("node.kubernetes.io/not-ready"))
        })
}

fn log_path(root: &Path, name: &str) -> PathBuf {
    root.join("logs").join(format!("{name}.log"))
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A process of the control plane, in a process group of its own, its output in its log file.
struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
    killed: bool,
}

impl Component {
    /// Starts binary `name` of `bin` with `args` in `root`, its output in `root/logs/<name>.log`.
    fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[OsString],
        root: &Path,
    ) -> anyhow::Result<Component> {
        Self::spawn_with(name, bin, args, root, &[])
    }

    /// [`Component::spawn`] with more environment variables.
    fn spawn_with(
        name: &'static str,
        bin: &Path,
        args: &[OsString],
        root: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<Component> {
        let program = bin.join(name);
        let log = log_path(root, name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut command = Command::new(&program);
        command
            .args(args)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_from_lasting_thread(command)
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Component {
            name,
            child,
            log,
            killed: false,
        })
    }

    /// The exit status, if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Whether it has exited or was killed (without reaping it: until then its pid is not
    /// reused).
    fn has_exited(&self) -> bool {
        if self.killed {
            return true;
        }
        // /proc/<pid>/stat's third field is the state; Z is a zombie (exited, not reaped).
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return true;
        };
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    }

    /// Waits up to `wait`, answering the exit status if it exits meanwhile.
    fn exited_after(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }

    /// SIGKILLs its process group and reaps it.
    fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the group is the child's own.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn describe_tail(&self) -> String {
        format!(
            "----- {} ({}), last {TAIL_LINES} lines -----\n{}\n",
            self.name,
            self.log.display(),
            tail(&self.log, TAIL_LINES)
        )
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process: `PR_SET_PDEATHSIG` fires
/// when the thread that forked the child exits, not the process, so forking from a test's
/// (or a runtime's) thread could kill the child early.
fn spawn_from_lasting_thread(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("kube-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| requests)
    });
    let spawner = spawner
        .as_ref()
        .ok_or_else(|| std::io::Error::other("cannot start the spawner thread"))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}
