//! `cargo xtask up`: the whole platform on this machine — a private PostgreSQL, the control plane
//! and three node agents (fault domains 0, 1, 2) — until Ctrl-C or SIGTERM stops everything.
//!
//! State lives in one directory (default `.hdi/`): the database, the node agents' data directories
//! (so nodes keep their identity across restarts), generated secrets and logs. `up` also writes the
//! `local` hdictl context so that `hdictl node list` works with no further set-up, and ends by
//! creating the demo: a 3-broker Kafka cluster and a 2-executor Spark cluster in workspace
//! `default`, and says how to open the example notebook on it in JupyterLab. Stopping `up` stops
//! the brokers and executors too; the next `up` restarts them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::postgres::{Durability, Postgres};
use crate::sys;
use crate::util::{
    cargo_build, http_get, http_request, random_token, repo_root, tail, target_dir, wait_for,
};

/// The number of node agents `up` starts first, one per fault domain (the demo's primary
/// clusters go there); one more, in a fault domain of its own, joins for the disaster-recovery
/// cluster (see [`create_dr_pair`]).
const NODES: u32 = 3;

/// Flags of `cargo xtask up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the platform keeps its state (database, node data, secrets, logs).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Port of the control-plane API on 127.0.0.1.
    #[arg(long, default_value_t = 7420)]
    api_port: u16,
    /// Use debug binaries instead of release ones.
    #[arg(long)]
    debug: bool,
    /// Do not build; use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
}

/// Brings the platform up and keeps it running until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs, shutdown: &Receiver<()>) -> anyhow::Result<()> {
    let state = std::path::absolute(
        args.state_dir
            .clone()
            .unwrap_or_else(|| repo_root().join(".hdi")),
    )
    .context("cannot resolve --state-dir")?;
    for dir in ["secrets", "logs", "nodes"] {
        std::fs::create_dir_all(state.join(dir))
            .with_context(|| format!("cannot create {}", state.display()))?;
    }
    let profile = if args.debug { "debug" } else { "release" };
    if !args.no_build {
        eprintln!("xtask: building the {profile} binaries");
        let mut build = cargo_build(
            &[
                "hdi-control-plane",
                "hdi-node-agent",
                "hdictl",
                "hdi-broker",
                "hdi-executor",
            ],
            !args.debug,
        );
        crate::tools::ensure_build_dependencies()?;
        crate::util::run("cargo build", &mut build)?;
    }
    let bin_dir = target_dir()?.join(profile);
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let path = bin_dir.join(name);
        if !path.exists() {
            bail!("{} is missing; run without --no-build", path.display());
        }
        Ok(path)
    };

    let pg_bin = crate::postgres::find_or_install()?;
    let postgres = Postgres::start(&pg_bin, &state.join("postgres"), Durability::Durable)?;
    let mut platform = Platform {
        children: Vec::new(),
        postgres,
        workloads: state.join("nodes"),
    };
    let result = bring_up(&args, &state, &bin, &mut platform).map(|_api| {
        eprintln!("\nPress Ctrl-C to stop everything.");
        let _ = shutdown.recv();
        eprintln!("\nxtask: stopping");
    });
    platform.stop();
    result
}

struct Platform {
    children: Vec<(String, Child)>,
    postgres: Postgres,
    /// The agents' data directories: workloads (brokers, executors) run from under it and,
    /// by design, outlive their agent, so `stop` stops them explicitly.
    workloads: PathBuf,
}

impl Platform {
    fn spawn(&mut self, name: &str, log: &Path, command: &mut Command) -> anyhow::Result<()> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = sys::die_with_parent(command)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name)?;
        child.try_wait().ok().flatten()
    }

    /// SIGTERM to every child (agents first, the control plane last), SIGKILL after 10 s, then
    /// PostgreSQL's fast shutdown.
    fn stop(&mut self) {
        for (_, child) in self.children.iter().rev() {
            sys::signal(child.id(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, child) in self.children.iter_mut().rev() {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("xtask: {name} ignored SIGTERM for 10 s; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        self.children.clear();
        // Brokers and executors: SIGTERM (brokers flush and move leaderships), SIGKILL after 15 s.
        // The agents start them again from their saved assignments at the next `up`.
        for (pid, _) in crate::util::pids_mentioning(&self.workloads) {
            sys::signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !crate::util::pids_mentioning(&self.workloads).is_empty() {
            if Instant::now() > deadline {
                for (pid, command) in crate::util::pids_mentioning(&self.workloads) {
                    eprintln!("xtask: {command} ignored SIGTERM for 15 s; killing it");
                    sys::signal(pid, libc::SIGKILL);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Err(error) = self.postgres.stop() {
            eprintln!("xtask: warning: {error:#}");
        }
    }
}

/// Starts the control plane and the agents; returns the API address once all nodes are Ready.
fn bring_up(
    args: &UpArgs,
    state: &Path,
    bin: &dyn Fn(&str) -> anyhow::Result<PathBuf>,
    platform: &mut Platform,
) -> anyhow::Result<SocketAddr> {
    platform.postgres.ensure_database("hdi")?;
    let admin_token_file = state.join("secrets/admin-token");
    let agent_token_file = state.join("secrets/agent-token");
    let admin_token = secret(&admin_token_file)?;
    secret(&agent_token_file)?;
    let api: SocketAddr = SocketAddr::from(([127, 0, 0, 1], args.api_port));
    let api_url = format!("http://{api}");

    let cp_log = state.join("logs/control-plane.log");
    platform.spawn(
        "control-plane",
        &cp_log,
        Command::new(bin("hdi-control-plane")?)
            .arg("serve")
            .args(["--listen", &api.to_string()])
            .arg("--admin-token-file")
            .arg(&admin_token_file)
            .arg("--agent-token-file")
            .arg(&agent_token_file)
            .env("DATABASE_URL", platform.postgres.url("hdi")),
    )?;
    wait_for(
        "the control plane to be ready",
        Duration::from_secs(60),
        || {
            if platform.exited("control-plane").is_some() {
                return Some(false);
            }
            matches!(http_get(api, "/readyz", None), Ok((200, _))).then_some(true)
        },
    )
    .and_then(|ready| {
        if ready {
            Ok(())
        } else {
            bail!("the control plane exited")
        }
    })
    .with_context(|| {
        format!(
            "control plane log {}:\n{}",
            cp_log.display(),
            tail(&cp_log, 20)
        )
    })?;

    // As root the agents run each cluster's workloads as the cluster's own user, who must reach
    // the binaries and the state directory; where they cannot (a checkout under a closed home
    // directory), the demo still runs, as the agents' user, and says so.
    let closed = (crate::sys::effective_uid() == 0)
        .then(|| {
            let agent = bin("hdi-node-agent").ok()?;
            hdi_stdx::closed_ancestor(agent.parent()?).or_else(|| hdi_stdx::closed_ancestor(state))
        })
        .flatten();
    if let Some(dir) = &closed {
        eprintln!(
            "xtask up: warning: {} is closed to other users (no o+x), so the workloads run as \
             the agents' user instead of each cluster's own; `chmod o+x` it for tenant isolation",
            dir.display()
        );
    }
    let spawn_agent = |platform: &mut Platform, domain: u32| -> anyhow::Result<()> {
        let name = format!("node-{domain}");
        let log = state.join(format!("logs/{name}.log"));
        let mut agent = Command::new(bin("hdi-node-agent")?);
        if closed.is_some() {
            agent.args(["--run-workloads-as", "agent-user"]);
        }
        platform.spawn(
            &name,
            &log,
            agent
                .args([
                    "--control-plane",
                    &api_url,
                    "--fault-domain",
                    &domain.to_string(),
                    "--name",
                    &name,
                ])
                .arg("--data-dir")
                .arg(state.join("nodes").join(&name))
                // One storage directory for the fleet (workspaces' storage roots), outside
                // every workload's directory and apart from the platform's secrets.
                .arg("--storage-dir")
                .arg(state.join("storage"))
                .arg("--token-file")
                .arg(&agent_token_file),
        )?;
        Ok(())
    };
    for domain in 0..NODES {
        spawn_agent(platform, domain)?;
    }
    wait_for("3 Ready nodes", Duration::from_secs(60), || {
        for domain in 0..NODES {
            if platform.exited(&format!("node-{domain}")).is_some() {
                return Some(Err(domain));
            }
        }
        let (status, body) = http_get(api, "/v1/nodes", Some(&admin_token)).ok()?;
        let nodes: serde_json::Value = serde_json::from_str(&body).ok()?;
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"] == "Ready" && n["name"].as_str().is_some_and(|s| s.starts_with("node-"))
            })
            .count();
        (status == 200 && ready == NODES as usize).then_some(Ok(()))
    })?
    .map_err(|domain| {
        let log = state.join(format!("logs/node-{domain}.log"));
        anyhow::anyhow!(
            "node agent node-{domain} exited; its log {}:\n{}",
            log.display(),
            tail(&log, 20)
        )
    })?;

    let demo = create_demo(api, &admin_token)?;
    let demo_password = demo_kafka_user(api, &admin_token, state)?;
    // The disaster-recovery half: a node in a fault domain of its own joins now, so that the
    // secondary cluster's broker is placed there (the emptiest node) and the pair shares no
    // fault domain.
    spawn_agent(platform, NODES)?;
    wait_for("the DR node to be Ready", Duration::from_secs(60), || {
        if platform.exited(&format!("node-{NODES}")).is_some() {
            return Some(Err(anyhow::anyhow!(
                "node agent node-{NODES} exited; its log {}:\n{}",
                state.join(format!("logs/node-{NODES}.log")).display(),
                tail(&state.join(format!("logs/node-{NODES}.log")), 20)
            )));
        }
        let (status, body) = http_get(api, "/v1/nodes", Some(&admin_token)).ok()?;
        let nodes: serde_json::Value = serde_json::from_str(&body).ok()?;
        let ready = nodes["items"].as_array()?.iter().any(|n| {
            n["status"] == "Ready" && n["name"].as_str() == Some(&format!("node-{NODES}"))
        });
        (status == 200 && ready).then_some(Ok(()))
    })??;
    let dr = create_dr_pair(api, &admin_token)?;
    let config_path = write_hdictl_context(&api_url, &admin_token)?;
    println!("hdi is up.");
    println!("  demo Kafka:     demo-kafka, bootstrap servers {}", demo.0);
    println!("  demo Spark:     demo-spark, job API {}", demo.1);
    println!(
        "  DR Kafka:       demo-kafka-dr, bootstrap servers {dr} (link demo-dr mirrors transactions and alerts)"
    );
    println!("  API:            {api_url}   (OpenAPI document: {api_url}/openapi.json)");
    println!(
        "  portal:         {api_url}/   (sign in with the admin token: \"Use an API token instead\")"
    );
    println!("  admin token:    {admin_token}");
    println!("                  (kept in {})", admin_token_file.display());
    println!(
        "  hdictl context: 'local', written to {}",
        config_path.display()
    );
    println!("  state and logs: {}", state.display());
    println!("Try:");
    println!("  {} node list", bin("hdictl")?.display());
    println!("  {} cluster show demo-kafka", bin("hdictl")?.display());
    println!(
        "  {} cluster client-config demo-kafka --user demo --password-file {} > demo-kafka.conf",
        bin("hdictl")?.display(),
        demo_password.display()
    );
    println!("  kcat -F demo-kafka.conf -L");
    println!(
        "  {} job progress demo-spark card-alerts",
        bin("hdictl")?.display()
    );
    println!(
        "  {} topic consume demo-kafka alerts --from-beginning --max 5   (as yourself, OAUTHBEARER)",
        bin("hdictl")?.display()
    );
    println!(
        "  {} topic consume demo-kafka alerts --user demo --password-file {} --from-beginning --max 5",
        bin("hdictl")?.display(),
        demo_password.display()
    );
    println!("  {} link lag demo-dr", bin("hdictl")?.display());
    println!(
        "  {} link promote demo-dr   (a planned switchover; then `link reverse demo-dr`)",
        bin("hdictl")?.display()
    );
    println!(
        "  curl -H \"Authorization: Bearer $(cat {})\" {api_url}/v1/nodes",
        admin_token_file.display()
    );
    println!(
        "The notebook (transactions live into pandas, the card-alerts job's progress and alerts):"
    );
    println!("  pip install jupyterlab ./python && jupyter lab examples/notebooks");
    println!(
        "  open card-transactions.ipynb; its parameters: api_url = \"{api_url}\", token_file = \"{}\",",
        admin_token_file.display()
    );
    println!(
        "  workspace = \"default\", kafka = \"demo-kafka\", spark = \"demo-spark\" (the defaults)"
    );
    Ok(api)
}

/// The demo: workspace `default` with a 3-broker Kafka cluster and a 2-executor Spark cluster,
/// created through the REST API (idempotent: an existing demo is left as it is) and awaited until
/// Running. Returns the bootstrap servers and the job API URL.
fn create_demo(api: SocketAddr, token: &str) -> anyhow::Result<(String, String)> {
    let (status, body) = http_request(
        api,
        "POST",
        "/v1/workspaces",
        Some(token),
        Some(r#"{"name":"default"}"#),
    )?;
    if status != 201 && status != 409 {
        bail!("cannot create workspace default: HTTP {status}: {body}");
    }
    // demo-kafka is secured as every new Kafka cluster is: SASL_SSL, SCRAM-SHA-512 and
    // OAUTHBEARER, ACLs.
    let clusters = [
        (
            "demo-kafka",
            r#"{"kind":"kafka","node_pools":[{"name":"brokers","role":"broker","replicas":3}]}"#,
        ),
        (
            "demo-spark",
            r#"{"kind":"spark","node_pools":[{"name":"executors","role":"executor","replicas":2}]}"#,
        ),
    ];
    for (name, spec) in clusters {
        let path = format!("/v1/workspaces/default/clusters/{name}");
        let (status, body) = http_request(api, "PUT", &path, Some(token), Some(spec))?;
        if status != 200 && status != 202 {
            bail!("cannot create {name}: HTTP {status}: {body}");
        }
        eprintln!("xtask: {name} requested");
    }
    let mut endpoints = Vec::new();
    for (name, _) in clusters {
        let path = format!("/v1/workspaces/default/clusters/{name}");
        let cluster = wait_for(
            &format!("{name} to be Running"),
            Duration::from_secs(120),
            || {
                let (status, body) = http_get(api, &path, Some(token)).ok()?;
                let cluster: serde_json::Value = serde_json::from_str(&body).ok()?;
                (status == 200 && cluster["status"]["state"] == "Running").then_some(cluster)
            },
        )?;
        let endpoint = &cluster["status"]["endpoints"];
        let value = endpoint["bootstrap_servers"]
            .as_str()
            .or_else(|| endpoint["job_api"].as_str())
            .unwrap_or("-")
            .to_owned();
        eprintln!("xtask: {name} is Running ({value})");
        endpoints.push(value);
    }
    submit_demo_jobs(api, token)?;
    Ok((endpoints[0].clone(), endpoints[1].clone()))
}

/// The demo's disaster-recovery pair: a 1-broker Kafka cluster `demo-kafka-dr` (created once
/// the DR node has joined, so that it lands there) and a replication link `demo-dr` from
/// demo-kafka mirroring `transactions` and `alerts` with the demo's consumer groups. Idempotent.
/// Returns the DR cluster's bootstrap servers.
fn create_dr_pair(api: SocketAddr, token: &str) -> anyhow::Result<String> {
    let path = "/v1/workspaces/default/clusters/demo-kafka-dr";
    let spec = r#"{"kind":"kafka","node_pools":[{"name":"brokers","role":"broker","replicas":1}]}"#;
    let (status, body) = http_request(api, "PUT", path, Some(token), Some(spec))?;
    if status != 200 && status != 202 {
        bail!("cannot create demo-kafka-dr: HTTP {status}: {body}");
    }
    let cluster = wait_for(
        "demo-kafka-dr to be Running",
        Duration::from_secs(120),
        || {
            let (status, body) = http_get(api, path, Some(token)).ok()?;
            let cluster: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && cluster["status"]["state"] == "Running").then_some(cluster)
        },
    )?;
    let bootstrap = cluster["status"]["endpoints"]["bootstrap_servers"]
        .as_str()
        .unwrap_or("-")
        .to_owned();
    eprintln!("xtask: demo-kafka-dr is Running ({bootstrap})");
    let link = serde_json::json!({
        "source_cluster": "demo-kafka",
        "target_cluster": "demo-kafka-dr",
        "topics": ["transactions", "alerts"],
        "groups": ["hdi-executor", "demo*"],
    });
    let path = "/v1/workspaces/default/replication-links/demo-dr";
    let done = wait_for(
        "link demo-dr to be accepted",
        Duration::from_secs(60),
        || {
            let (status, answer) =
                http_request(api, "PUT", path, Some(token), Some(&link.to_string())).ok()?;
            match status {
                200..=299 => Some(Ok(())),
                // The clusters' Kafka credentials may not be made yet.
                409 | 503 if answer.contains("not_ready") => None,
                _ => Some(Err(anyhow::anyhow!(
                    "cannot create link demo-dr: HTTP {status}: {answer}"
                ))),
            }
        },
    )?;
    done?;
    eprintln!("xtask: link demo-dr mirrors transactions and alerts to demo-kafka-dr");
    Ok(bootstrap)
}

/// The demo pipeline: topics `transactions` and `alerts` on demo-kafka, and two jobs on
/// demo-spark reading and writing them (`examples/card-generator.sql` makes card transactions,
/// `examples/card-alerts.sql` is the windowed alert query). Idempotent: what exists is kept.
fn submit_demo_jobs(api: SocketAddr, token: &str) -> anyhow::Result<()> {
    for topic in ["transactions", "alerts"] {
        let body = serde_json::json!({"name": topic, "partitions": 3, "replication_factor": 3});
        let (status, answer) = http_request(
            api,
            "POST",
            "/v1/workspaces/default/clusters/demo-kafka/topics",
            Some(token),
            Some(&body.to_string()),
        )?;
        if !(200..300).contains(&status) && status != 409 {
            bail!("cannot create topic {topic}: HTTP {status}: {answer}");
        }
    }
    let jobs = [
        (
            "card-generator",
            include_str!("../../examples/card-generator.sql"),
        ),
        (
            "card-alerts",
            include_str!("../../examples/card-alerts.sql"),
        ),
    ];
    for (name, sql) in jobs {
        let body = serde_json::json!({"name": name, "sql": sql, "kafka_cluster": "demo-kafka"});
        // The driver may still be loading its topics' metadata right after the cluster is up.
        let submitted = wait_for(
            &format!("job {name} to be accepted"),
            Duration::from_secs(60),
            || {
                let (status, answer) = http_request(
                    api,
                    "POST",
                    "/v1/workspaces/default/clusters/demo-spark/jobs",
                    Some(token),
                    Some(&body.to_string()),
                )
                .ok()?;
                match status {
                    201 => Some(Ok(())),
                    409 if answer.contains("job_exists") => Some(Ok(())),
                    // The jobs' Kafka user of a new secured cluster may not be ready yet.
                    409 | 503 => None,
                    _ => Some(Err(anyhow::anyhow!(
                        "cannot submit job {name}: HTTP {status}: {answer}"
                    ))),
                }
            },
        )?;
        submitted?;
        eprintln!("xtask: job {name} submitted");
    }
    Ok(())
}

/// The demo's Kafka user `demo` (may read and describe every topic and group of demo-kafka),
/// its password kept in `<state>/demo-kafka-demo.password` (0600): created once, rotated if the
/// user exists but the file was lost. Returns the file's path.
fn demo_kafka_user(api: SocketAddr, token: &str, state: &Path) -> anyhow::Result<PathBuf> {
    let file = state.join("demo-kafka-demo.password");
    let base = "/v1/workspaces/default/clusters/demo-kafka/kafka-users";
    let body = serde_json::json!({"name": "demo", "acls": [
        {"resource_type": "topic", "resource_name": "*", "operations": ["read", "describe"]},
        {"resource_type": "group", "resource_name": "*", "operations": ["read", "describe"]},
    ]});
    let (status, answer) = http_request(api, "POST", base, Some(token), Some(&body.to_string()))?;
    let answer = match status {
        201 => answer,
        409 if std::fs::metadata(&file).is_ok() => return Ok(file),
        409 => {
            let (status, answer) = http_request(
                api,
                "POST",
                &format!("{base}/demo/rotate"),
                Some(token),
                None,
            )?;
            if status != 200 {
                bail!("cannot rotate Kafka user demo: HTTP {status}: {answer}");
            }
            answer
        }
        _ => bail!("cannot create Kafka user demo: HTTP {status}: {answer}"),
    };
    let created: serde_json::Value =
        serde_json::from_str(&answer).context("the Kafka user answer is not JSON")?;
    let password = created["password"]
        .as_str()
        .context("the Kafka user answer has no password")?;
    write_private(&file, format!("{password}\n").as_bytes())?;
    Ok(file)
}

/// Reads a secret file, creating it (mode 0600) with a random token first if missing.
fn secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let token = random_token()?;
    write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Writes a file readable by its owner only, from the moment it exists (via a fresh temp file
/// renamed into place, so an existing file's wider mode never applies).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Merges the `local` context into hdictl's config file and makes it current.
fn write_hdictl_context(api_url: &str, token: &str) -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("HDI_CONFIG").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("hdi/config.json"),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".config/hdi/config.json"),
        },
    };
    let mut config: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let mut contexts: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(config["contexts"].clone()).unwrap_or_default();
    contexts.insert(
        "local".into(),
        serde_json::json!({"api_url": api_url, "token": token}),
    );
    config["contexts"] = serde_json::to_value(contexts)?;
    config["current_context"] = serde_json::json!("local");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(&path, &serde_json::to_vec_pretty(&config)?)?;
    Ok(path)
}
