//! `LocalKubelet`: a test node that runs the pods bound to it as local processes. It stands in
//! for kubelet and a container runtime, which cannot run here; the API server, the controller
//! manager and the scheduler it talks to are real ([`crate::kube::KubeControlPlane`]).
//!
//! It registers a Node (its zone label, capacity, `Ready`, a Lease renewed every few seconds as
//! kubelet's heartbeat), watches the pods the scheduler binds to it, and for each runs the first
//! container's command with its args and env, as a container would:
//! - the image's `/usr/local/bin/<x>` is `<bin dir>/<x>` (the image holds the same binaries);
//! - volumes are directories under the kubelet's root: a claim's is `pvc/<ns>/<claim>` (so a pod
//!   recreated on the same claim finds its data), a Secret's is written from the Secret's keys
//!   (0600), an emptyDir is fresh; args naming a mount path are rewritten to the directory;
//! - env comes from values and the downward API (`metadata.*`, labels, `status.podIP`), and
//!   `$(VAR)` in args is expanded as kubelet does;
//! - each pod gets an IP of its own on loopback (`127.66.x.y`, derived from its namespace and
//!   name, so a pod recreated under the same name has the same one, as its DNS name would be the
//!   same), and, since no cluster DNS runs here, an arg that is the pod's own DNS name
//!   (`<pod>.<subdomain>.<ns>.svc`) becomes that IP (what the name would resolve to);
//! - claims are directories under a volume root the test's kubelets share (a claim's volume
//!   follows its pod to another node, as a network volume would).
//!
//! It reports `Running`/`Ready` with the IP, restarts a process that exits (restart count in
//! the status), and on deletion stops the whole process tree (SIGTERM, then SIGKILL after the
//! grace period, as a container's cgroup would be) before removing the pod. Dropping it kills
//! every process it started.

#![allow(unsafe_code, reason = "kill(2) of the processes it started")]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};

/// One pod's processes as run here.
struct Running {
    child: Child,
    ip: String,
    restarts: i32,
    spec: Launch,
}

/// What is needed to (re)start a pod's container.
#[derive(Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

/// A test node running pods as local processes.
pub struct LocalKubelet {
    name: String,
    pods: Arc<Mutex<HashMap<String, Running>>>,
    task: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalKubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKubelet")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Every descendant of `pid` (children first found through `/proc/<pid>/stat`'s ppid).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command may contain spaces and parentheses: fields follow the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.entry(ppid).or_default().push(child);
            }
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        for &c in parents.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

fn signal_tree(pid: u32, signal: i32) {
    let mut all = descendants(pid);
    all.push(pid);
    for p in all {
        if let Ok(p) = i32::try_from(p) {
            // SAFETY: kill(2) on processes this kubelet started (or their children).
            unsafe {
                libc::kill(p, signal);
            }
        }
    }
}

/// Stops a pod's processes: SIGTERM to the tree, SIGKILL after `grace`.
fn stop(running: &mut Running, grace: Duration) {
    let pid = running.child.id();
    let tree = descendants(pid);
    signal_tree(pid, libc::SIGTERM);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        let alive = tree
            .iter()
            .chain(std::iter::once(&pid))
            .any(|p| Path::new(&format!("/proc/{p}")).exists());
        let _ = running.child.try_wait();
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in tree {
        if let Ok(p) = i32::try_from(p) {
            // SAFETY: as above.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
    }
    let _ = running.child.kill();
    let _ = running.child.wait();
}

fn spawn(launch: &Launch) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .spawn()
        .with_context(|| format!("cannot start {}", launch.program.display()))
}

fn field(pod: &Pod, path: &str, ip: &str) -> String {
    let meta = &pod.metadata;
    let from_map = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|k| k.strip_suffix("']"))
            .and_then(|k| map.as_ref()?.get(k).cloned())
            .unwrap_or_default()
    };
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ip.to_owned(),
        "status.hostIP" => "127.0.0.1".to_owned(),
        p if p.starts_with("metadata.labels['") => from_map(&meta.labels, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            from_map(&meta.annotations, "metadata.annotations['")
        }
        _ => String::new(),
    }
}

/// `$(VAR)` expanded from `env` (unknown references stay as they are, as kubelet leaves them).
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env.iter().find(|(k, _)| k == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

struct Node_ {
    name: String,
    root: PathBuf,
    volumes: PathBuf,
    bin_dir: PathBuf,
    client: Client,
    pods: Arc<Mutex<HashMap<String, Running>>>,
}

/// The stable loopback IP of pod `namespace/name` (FNV-1a of the two).
pub fn pod_ip(namespace: &str, name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("127.66.{}.{}", hash % 250 + 1, (hash / 250) % 250 + 2)
}

impl Node_ {
    /// Prepares a pod's container: volumes, env, args.
    async fn launch(&self, pod: &Pod, ip: &str) -> anyhow::Result<Launch> {
        let namespace = pod.namespace().unwrap_or_default();
        let uid = pod.uid().unwrap_or_default();
        let spec = pod.spec.as_ref().context("pod without spec")?;
        let container = spec.containers.first().context("pod without containers")?;
        let pod_dir = self.root.join("pods").join(&uid);
        std::fs::create_dir_all(&pod_dir)?;
        // Volumes as directories.
        let mut volumes: HashMap<String, PathBuf> = HashMap::new();
        for volume in spec.volumes.as_deref().unwrap_or_default() {
            let dir = if let Some(claim) = &volume.persistent_volume_claim {
                self.volumes.join(&namespace).join(&claim.claim_name)
            } else if let Some(secret) = &volume.secret {
                let dir = pod_dir.join("secrets").join(&volume.name);
                std::fs::create_dir_all(&dir)?;
                let name = secret.secret_name.clone().unwrap_or_default();
                let object = Api::<Secret>::namespaced(self.client.clone(), &namespace)
                    .get(&name)
                    .await
                    .with_context(|| format!("secret {name} of pod {}", pod.name_any()))?;
                for (key, value) in object.data.unwrap_or_default() {
                    let path = dir.join(&key);
                    std::fs::write(&path, &value.0)?;
                    std::fs::set_permissions(
                        &path,
                        std::os::unix::fs::PermissionsExt::from_mode(0o600),
                    )?;
                }
                dir
            } else {
                pod_dir.join("empty").join(&volume.name)
            };
            std::fs::create_dir_all(&dir)?;
            volumes.insert(volume.name.clone(), dir);
        }
        let mounts: Vec<(String, PathBuf)> = container
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| Some((m.mount_path.clone(), volumes.get(&m.name)?.clone())))
            .collect();
        // Env, then args expanded and mapped.
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container.env.as_deref().unwrap_or_default() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => expand(value, &env),
                (None, Some(from)) => from
                    .field_ref
                    .as_ref()
                    .map(|f| field(pod, &f.field_path, ip))
                    .unwrap_or_default(),
                (None, None) => String::new(),
            };
            env.push((var.name.clone(), value));
        }
        let own_name = format!(
            "{}.{}.{namespace}.svc",
            spec.hostname.clone().unwrap_or_else(|| pod.name_any()),
            spec.subdomain.clone().unwrap_or_default()
        );
        let map_path = |arg: String| -> String {
            for (mount, dir) in &mounts {
                if arg == *mount {
                    return dir.display().to_string();
                }
                if let Some(rest) = arg.strip_prefix(&format!("{mount}/")) {
                    return dir.join(rest).display().to_string();
                }
            }
            arg
        };
        let args: Vec<String> = container
            .args
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| expand(a, &env))
            .map(|a| if a == own_name { ip.to_owned() } else { a })
            .map(map_path)
            .collect();
        let command = container
            .command
            .as_ref()
            .and_then(|c| c.first())
            .context("the stand-in runs containers with a command only")?;
        let program = match command.strip_prefix("/usr/local/bin/") {
            Some(binary) => self.bin_dir.join(binary),
            None => PathBuf::from(command),
        };
        Ok(Launch {
            program,
            args,
            env,
            log: pod_dir.join("container.log"),
        })
    }

    async fn report(&self, pod: &Pod, ip: &str, restarts: i32) -> anyhow::Result<()> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .unwrap_or_default();
        let at = now();
        let status = serde_json::json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.0.1",
            "startTime": at,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": at},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": at},
                {"type": "Ready", "status": "True", "lastTransitionTime": at},
            ],
            "containerStatuses": [{
                "name": container.0, "image": container.1, "imageID": "",
                "ready": true, "started": true, "restartCount": restarts,
                "state": {"running": {"startedAt": at}},
            }],
        }});
        api.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
        Ok(())
    }

    async fn start_pod(&self, pod: &Pod) -> anyhow::Result<()> {
        let key = pod.uid().unwrap_or_default();
        let ip = pod_ip(&pod.namespace().unwrap_or_default(), &pod.name_any());
        let launch = self.launch(pod, &ip).await?;
        let child = spawn(&launch)?;
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(
                key,
                Running {
                    child,
                    ip: ip.clone(),
                    restarts: 0,
                    spec: launch,
                },
            );
        }
        self.report(pod, &ip, 0).await
    }

    async fn delete_pod(&self, pod: &Pod) -> anyhow::Result<()> {
        let key = pod.uid().unwrap_or_default();
        let running = self.pods.lock().ok().and_then(|mut pods| pods.remove(&key));
        if let Some(mut running) = running {
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(30).min(30));
            tokio::task::spawn_blocking(move || stop(&mut running, grace)).await?;
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Restarts exited containers and reports their restart counts.
    async fn supervise(&self) {
        let exited: Vec<(String, Launch, String, i32)> = match self.pods.lock() {
            Ok(mut pods) => pods
                .iter_mut()
                .filter_map(|(k, r)| {
                    matches!(r.child.try_wait(), Ok(Some(_)))
                        .then(|| (k.clone(), r.spec.clone(), r.ip.clone(), r.restarts))
                })
                .collect(),
            Err(_) => return,
        };
        for (key, launch, _ip, restarts) in exited {
            if let Ok(child) = spawn(&launch)
                && let Ok(mut pods) = self.pods.lock()
                && let Some(running) = pods.get_mut(&key)
            {
                running.child = child;
                running.restarts = restarts + 1;
            }
        }
    }
}

impl LocalKubelet {
    /// Registers Node `name` in `zone` and runs the pods bound to it: binaries from `bin_dir`,
    /// pods' directories under `root`, claims' under `volumes` (shared by the test's kubelets).
    ///
    /// # Errors
    /// The Node cannot be created.
    pub async fn start(
        client: Client,
        name: &str,
        zone: &str,
        bin_dir: &Path,
        root: &Path,
        volumes: &Path,
    ) -> anyhow::Result<LocalKubelet> {
        std::fs::create_dir_all(root)?;
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "topology.kubernetes.io/zone": zone,
                "kubernetes.io/hostname": name,
                "hdi.io/test-node": "local-processes",
            }},
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        let owned_name = name.to_owned();
        let status = move |at: &str| {
            let name = &owned_name;
            serde_json::json!({"status": {
                "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "stand-in kubelet running pods as local processes",
                    "lastHeartbeatTime": at, "lastTransitionTime": at}],
                "nodeInfo": {"kubeletVersion": "v1.37.2", "architecture": "amd64", "operatingSystem": "linux",
                    "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                    "containerRuntimeVersion": "local-processes://0", "kubeProxyVersion": ""},
            }})
        };
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&status(&now())),
            )
            .await?;
        let pods = Arc::new(Mutex::new(HashMap::new()));
        let node = Arc::new(Node_ {
            name: name.to_owned(),
            root: root.to_owned(),
            volumes: volumes.to_owned(),
            bin_dir: bin_dir.to_owned(),
            client: client.clone(),
            pods: pods.clone(),
        });
        // Heartbeat: the node's Lease and Ready condition, as kubelet renews them.
        let heartbeat = {
            let client = client.clone();
            let name = name.to_owned();
            let node = node.clone();
            tokio::spawn(async move {
                let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
                let nodes: Api<Node> = Api::all(client);
                loop {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some("kube-node-lease".to_owned()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(LeaseSpec {
                            holder_identity: Some(name.clone()),
                            lease_duration_seconds: Some(40),
                            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                            ..LeaseSpec::default()
                        }),
                    };
                    let _ = leases
                        .patch(
                            &name,
                            &PatchParams::apply("hdi-local-kubelet").force(),
                            &Patch::Apply(&lease),
                        )
                        .await;
                    let _ = nodes
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(&status(&now())),
                        )
                        .await;
                    node.supervise().await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            })
        };
        let task = {
            let node = node.clone();
            tokio::spawn(async move {
                let api: Api<Pod> = Api::all(node.client.clone());
                let config =
                    watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
                let mut events = watcher::watcher(api, config).boxed();
                while let Some(event) = events.next().await {
                    let pods: Vec<Pod> = match event {
                        Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                            vec![pod]
                        }
                        _ => continue,
                    };
                    for pod in pods {
                        let key = pod.uid().unwrap_or_default();
                        let known = node.pods.lock().is_ok_and(|p| p.contains_key(&key));
                        let result = if pod.metadata.deletion_timestamp.is_some() {
                            node.delete_pod(&pod).await
                        } else if !known {
                            node.start_pod(&pod).await
                        } else {
                            Ok(())
                        };
                        if let Err(error) = result {
                            eprintln!(
                                "local kubelet {}: pod {}: {error:#}",
                                node.name,
                                pod.name_any()
                            );
                        }
                    }
                }
            })
        };
        Ok(LocalKubelet {
            name: name.to_owned(),
            pods,
            task,
            heartbeat,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log of the pod with `uid`'s container, if it ran here.
    pub fn log_dir(root: &Path, uid: &str) -> PathBuf {
        root.join("pods").join(uid).join("container.log")
    }
}

impl Drop for LocalKubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.heartbeat.abort();
        if let Ok(mut pods) = self.pods.lock() {
            for (_, running) in pods.iter_mut() {
                signal_tree(running.child.id(), libc::SIGKILL);
                let _ = running.child.kill();
                let _ = running.child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_expand_like_kubelet() {
        let env = vec![
            ("POD_NAME".to_owned(), "p-0".to_owned()),
            ("NS".to_owned(), "bank".to_owned()),
        ];
        assert_eq!(expand("$(POD_NAME).svc.$(NS)", &env), "p-0.svc.bank");
        assert_eq!(expand("$(MISSING)-x", &env), "$(MISSING)-x");
        assert_eq!(expand("plain", &env), "plain");
    }

    #[test]
    fn a_pod_keeps_its_ip_under_its_name() {
        let ip = pod_ip("bank", "hdi-payments-brokers-1");
        assert_eq!(ip, pod_ip("bank", "hdi-payments-brokers-1"));
        assert_ne!(ip, pod_ip("bank", "hdi-payments-brokers-2"));
        assert!(ip.starts_with("127.66."), "{ip}");
    }

    #[test]
    fn now_is_rfc3339() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
