//! `hdictl workspace|cluster|operation`: cluster lifecycle commands.
//!
//! Mutations wait for their operation by default, printing each step as it starts (to stderr, so
//! stdout stays the result); `--no-wait` prints the operation and returns at once. A failed
//! operation exits non-zero with its error code and detail.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use hdi_api::client::every_page;
use hdi_api::{
    Client, Cluster, ClusterKind, ClusterPatch, ClusterSpec, NodePool, NodePoolPatch, Operation,
    OperationState, PoolRole,
};
use uuid::Uuid;

use crate::Format;
use crate::output::{Table, print_value};

/// `hdictl workspace ...`
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Name (a DNS label).
        name: String,
    },
    /// List workspaces.
    List,
}

/// How long mutations wait for their operation.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Return as soon as the change is accepted, without waiting for the operation.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Give up waiting after this long (the operation goes on).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 7d"))?;
    let seconds = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        "ms" => Ok(Duration::from_millis(n)),
        "d" => seconds(86_400),
        _ => Err(format!("{text:?} is not a duration like 90s, 10m or 7d")),
    }
}

/// `hdictl cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a Kafka cluster (`--kind kafka --brokers N`) or a Spark cluster (`--kind spark --executors N`).
    Create {
        /// Cluster name (a DNS label).
        name: String,
        /// `kafka` or `spark`.
        #[arg(long)]
        kind: String,
        /// Brokers (Kafka).
        #[arg(long)]
        brokers: Option<u32>,
        /// Executors (Spark).
        #[arg(long)]
        executors: Option<u32>,
        /// Workload size (see `GET /v1/capabilities`).
        #[arg(long, default_value = "small")]
        size: String,
        /// Disk per workload in GiB.
        #[arg(long, default_value_t = 10)]
        storage_gib: u32,
        /// Refuse deletion until turned off.
        #[arg(long)]
        deletion_protection: bool,
        /// Kafka: how clients connect. `sasl-ssl` (default): TLS, SCRAM-SHA-512 Kafka users,
        /// OAUTHBEARER with hdi tokens, and ACLs; `sasl-plaintext`: SCRAM and ACLs without TLS; `ssl`: TLS only, no
        /// authentication; `plaintext`: neither (anyone may do anything).
        #[arg(long, value_enum, default_value = "sasl-ssl")]
        security: SecurityPreset,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print a ready Kafka client configuration for a cluster (and write its CA certificate).
    ClientConfig {
        /// Kafka cluster name.
        name: String,
        #[command(flatten)]
        login: crate::kafka_users::LoginArgs,
        /// Which client: librdkafka (kcat -F, confluent-kafka), java (.properties), kafkajs.
        #[arg(long, value_enum, default_value = "librdkafka")]
        client: crate::kafka_users::ClientKind,
        /// Where to write the CA certificate (default `./<cluster>-ca.pem`).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        oauth: crate::kafka_users::OauthClientArgs,
    },
    /// Renew a Kafka cluster's broker certificates now (the CA stays; brokers reload them
    /// without a restart within a poll interval).
    RotateCertificates {
        /// Kafka cluster name.
        name: String,
    },
    /// Rotate a Kafka cluster's certificate authorities (the Kafka CA clients trust and the
    /// quorum CA): new ones are trusted at once beside the current ones, start signing after
    /// the trust period (every broker certificate is then issued again and reloaded in place),
    /// and the old ones are dropped once every broker has loaded its new certificates. Clients
    /// must load the CA file written here (both certificates) within the trust period.
    RotateAuthorities {
        /// Kafka cluster name.
        name: String,
        /// How long both authorities are trusted before the new ones sign, e.g. 7d or 12h.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        trust_period: Duration,
        /// Where to write the CA certificates clients must trust from now on (TLS clusters;
        /// default `<cluster>-ca.pem`).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// List clusters.
    List,
    /// Show a cluster with its status and workloads.
    Show {
        /// Cluster name.
        name: String,
    },
    /// Resize the broker or executor pool.
    Resize {
        /// Cluster name.
        name: String,
        /// New broker count (Kafka).
        #[arg(long)]
        brokers: Option<u32>,
        /// New executor count (Spark).
        #[arg(long)]
        executors: Option<u32>,
        /// Move partitions off brokers before removing them.
        #[arg(long)]
        drain: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a cluster: its processes stop and their data is removed.
    Delete {
        /// Cluster name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `hdictl operation ...`
#[derive(Debug, Subcommand)]
pub enum OperationCommand {
    /// Show an operation and its steps.
    Show {
        /// Operation id.
        id: Uuid,
    },
    /// Wait for an operation to end, showing its steps.
    Wait {
        /// Operation id.
        id: Uuid,
        /// Give up waiting after this long.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// Runs a workspace command.
pub async fn workspace(
    api: &Client,
    command: WorkspaceCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        WorkspaceCommand::Create { name } => {
            let ws = api.workspace_create(&name).await?;
            match format {
                Format::Table => println!("workspace {} created", ws.name),
                _ => print_value(format, &ws)?,
            }
        }
        WorkspaceCommand::List => {
            let items = every_page(async |token| api.workspaces_list(token).await).await?;
            match format {
                Format::Table => {
                    let mut table = Table::new(["NAME", "CREATED", "ID"]);
                    for ws in &items {
                        table.row([
                            ws.name.clone(),
                            ws.created_at.to_rfc3339(),
                            ws.id.to_string(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &items)?,
            }
        }
    }
    Ok(())
}

fn pool_for(
    kind: &str,
    brokers: Option<u32>,
    executors: Option<u32>,
) -> anyhow::Result<(ClusterKind, PoolRole, &'static str, u32)> {
    match kind {
        "kafka" => {
            if executors.is_some() {
                bail!("--executors is for Spark clusters; a Kafka cluster takes --brokers");
            }
            Ok((
                ClusterKind::Kafka,
                PoolRole::Broker,
                "brokers",
                brokers.unwrap_or(3),
            ))
        }
        "spark" => {
            if brokers.is_some() {
                bail!("--brokers is for Kafka clusters; a Spark cluster takes --executors");
            }
            Ok((
                ClusterKind::Spark,
                PoolRole::Executor,
                "executors",
                executors.unwrap_or(2),
            ))
        }
        other => bail!("--kind {other:?} must be kafka or spark"),
    }
}

/// A Kafka cluster's client security, as `hdictl cluster create --security` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityPreset {
    /// TLS, SCRAM-SHA-512 and ACLs.
    SaslSsl,
    /// SCRAM-SHA-512 and ACLs without TLS.
    SaslPlaintext,
    /// TLS only.
    Ssl,
    /// Nothing.
    Plaintext,
}

impl SecurityPreset {
    fn spec(self) -> hdi_api::KafkaSecurity {
        let scram = vec![hdi_api::KafkaMechanism::ScramSha512];
        let (tls, authentication, authorization) = match self {
            SecurityPreset::SaslSsl => (
                true,
                vec![
                    hdi_api::KafkaMechanism::ScramSha512,
                    hdi_api::KafkaMechanism::Oauthbearer,
                ],
                true,
            ),
            SecurityPreset::SaslPlaintext => (false, scram, true),
            SecurityPreset::Ssl => (true, Vec::new(), false),
            SecurityPreset::Plaintext => (false, Vec::new(), false),
        };
        hdi_api::KafkaSecurity {
            tls,
            authentication,
            authorization,
        }
    }
}

/// Runs a cluster command.
pub async fn cluster(
    api: &Client,
    workspace: &str,
    command: ClusterCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Create {
            name,
            kind,
            brokers,
            executors,
            size,
            storage_gib,
            deletion_protection,
            security,
            wait,
        } => {
            let (kind, role, pool, replicas) = pool_for(&kind, brokers, executors)?;
            let security = (kind == ClusterKind::Kafka).then(|| security.spec());
            let spec = ClusterSpec {
                kind,
                version: None,
                node_pools: vec![NodePool {
                    name: pool.to_owned(),
                    role,
                    replicas,
                    size,
                    storage_gib,
                }],
                config: Default::default(),
                deletion_protection,
                security,
            };
            let op = api.cluster_put(workspace, &name, &spec).await?;
            finish(api, op, &wait, format, Some((workspace, &name))).await
        }
        ClusterCommand::ClientConfig {
            name,
            login,
            client,
            ca_file,
            oauth,
        } => {
            crate::kafka_users::client_config(
                api, workspace, &name, &login, &oauth, client, ca_file,
            )
            .await
        }
        ClusterCommand::RotateCertificates { name } => {
            let rotation = api.cluster_certificates_rotate(workspace, &name).await?;
            match format {
                Format::Table => println!(
                    "certificates of {} brokers of {name} are being renewed (the brokers reload them in place)",
                    rotation.brokers
                ),
                _ => print_value(format, &rotation)?,
            }
            Ok(())
        }
        ClusterCommand::RotateAuthorities {
            name,
            trust_period,
            ca_file,
        } => {
            let request = hdi_api::AuthorityRotationRequest {
                trust_period_seconds: Some(trust_period.as_secs()),
            };
            let rotation = api
                .cluster_authorities_rotate(workspace, &name, &request)
                .await?;
            let written = match &rotation.ca_certificate {
                Some(pem) => {
                    let path = ca_file
                        .unwrap_or_else(|| std::path::PathBuf::from(format!("{name}-ca.pem")));
                    std::fs::write(&path, pem).with_context(|| {
                        format!("cannot write the CA certificates to {}", path.display())
                    })?;
                    Some(path)
                }
                None => None,
            };
            match format {
                Format::Table => {
                    println!(
                        "the certificate authorities of {name} are rotating: the new ones sign from {}",
                        rotation
                            .at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    if let Some(path) = written {
                        println!(
                            "clients must trust {} (the current and the new CA) before then",
                            path.display()
                        );
                    }
                }
                _ => print_value(format, &rotation)?,
            }
            Ok(())
        }
        ClusterCommand::List => {
            let items = every_page(async |token| api.clusters_list(workspace, token).await).await?;
            match format {
                Format::Table => {
                    let mut table =
                        Table::new(["NAME", "KIND", "STATE", "READY", "ENDPOINT", "AGE"]);
                    for c in &items {
                        table.row([
                            c.name.clone(),
                            c.spec.kind.to_string(),
                            c.status.state.to_string(),
                            ready(c),
                            endpoint(c),
                            crate::output::age(
                                (chrono::Utc::now() - c.created_at).num_milliseconds() as f64
                                    / 1000.0,
                            ),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &items)?,
            }
            Ok(())
        }
        ClusterCommand::Show { name } => {
            let c = api.cluster_get(workspace, &name).await?;
            match format {
                Format::Table => print_cluster(&c),
                _ => print_value(format, &c)?,
            }
            Ok(())
        }
        ClusterCommand::Resize {
            name,
            brokers,
            executors,
            drain,
            wait,
        } => {
            let current = api.cluster_get(workspace, &name).await?;
            let replicas = match (current.spec.kind, brokers, executors) {
                (ClusterKind::Kafka, Some(n), None) => n,
                (ClusterKind::Spark, None, Some(n)) => n,
                (ClusterKind::Kafka, _, _) => bail!(
                    "cluster {name:?} is a Kafka cluster: pass --brokers N (and no --executors)"
                ),
                (ClusterKind::Spark, _, _) => bail!(
                    "cluster {name:?} is a Spark cluster: pass --executors N (and no --brokers)"
                ),
            };
            if drain && current.spec.kind == ClusterKind::Spark {
                bail!("--drain applies to Kafka brokers only");
            }
            let pool = current
                .spec
                .node_pools
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let patch = ClusterPatch {
                node_pools: Some(vec![NodePoolPatch {
                    name: pool,
                    replicas,
                }]),
                deletion_protection: None,
                drain,
            };
            let op = api.cluster_patch(workspace, &name, &patch).await?;
            finish(api, op, &wait, format, Some((workspace, &name))).await
        }
        ClusterCommand::Delete { name, wait } => {
            let op = api.cluster_delete(workspace, &name).await?;
            finish(api, op, &wait, format, None).await
        }
    }
}

/// Runs an operation command.
pub async fn operation(
    api: &Client,
    command: OperationCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        OperationCommand::Show { id } => {
            let op = api.operation_get(id).await?;
            match format {
                Format::Table => print_operation(&op),
                _ => print_value(format, &op)?,
            }
            Ok(())
        }
        OperationCommand::Wait { id, timeout } => {
            let op = api.operation_get(id).await?;
            finish(
                api,
                op,
                &WaitArgs {
                    no_wait: false,
                    timeout,
                },
                format,
                None,
            )
            .await
        }
    }
}

pub(crate) async fn finish(
    api: &Client,
    op: Operation,
    wait: &WaitArgs,
    format: Format,
    show: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    if wait.no_wait {
        match format {
            Format::Table => println!("operation {} ({:?}) {}", op.id, op.kind, op.state),
            _ => print_value(format, &op)?,
        }
        return Ok(());
    }
    eprintln!("operation {} ({:?} of {}):", op.id, op.kind, op.cluster);
    let mut shown = 0usize;
    let done = api
        .operation_wait(op.id, wait.timeout, |op| {
            for step in op.steps.iter().skip(shown) {
                eprintln!(
                    "  - {}{}",
                    step.name,
                    step.detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                );
            }
            shown = op.steps.len();
        })
        .await?;
    if done.state == OperationState::Failed {
        let (code, detail) = done
            .error
            .as_ref()
            .map(|e| (e.code.as_str(), e.detail.as_str()))
            .unwrap_or(("failed", "no detail"));
        bail!("operation {} failed: {detail} ({code})", done.id);
    }
    match (format, show) {
        (Format::Table, Some((ws, name))) => {
            let c = api.cluster_get(ws, name).await?;
            eprintln!("operation {} {}", done.id, done.state);
            print_cluster(&c);
        }
        (Format::Table, None) => println!("operation {} {}", done.id, done.state),
        _ => print_value(format, &done)?,
    }
    Ok(())
}

fn ready(c: &Cluster) -> String {
    c.status
        .pools
        .iter()
        .map(|p| format!("{}/{}", p.ready, p.desired))
        .collect::<Vec<_>>()
        .join(" ")
}

fn endpoint(c: &Cluster) -> String {
    c.status
        .endpoints
        .bootstrap_servers
        .clone()
        .or_else(|| c.status.endpoints.job_api.clone())
        .unwrap_or_else(|| "-".to_owned())
}

fn print_cluster(c: &Cluster) {
    println!("name:        {}", c.name);
    println!("workspace:   {}", c.workspace);
    println!(
        "kind:        {} {}",
        c.spec.kind,
        c.spec.version.as_deref().unwrap_or("")
    );
    println!("state:       {}", c.status.state);
    println!(
        "generation:  {} (observed {})",
        c.generation, c.status.observed_generation
    );
    for pool in &c.status.pools {
        println!(
            "pool {:<7} {}/{} ready",
            pool.name, pool.ready, pool.desired
        );
    }
    if let Some(servers) = &c.status.endpoints.bootstrap_servers {
        println!("bootstrap:   {servers}");
    }
    if let Some(protocol) = &c.status.endpoints.security_protocol {
        let mechanisms = &c.status.endpoints.sasl_mechanisms;
        let acls = c.spec.security.as_ref().is_some_and(|s| s.authorization);
        println!(
            "security:    {protocol}{}{}",
            if mechanisms.is_empty() {
                String::new()
            } else {
                format!(" ({})", mechanisms.join(", "))
            },
            if acls { ", ACLs enforced" } else { "" }
        );
    }
    if let Some(url) = &c.status.endpoints.job_api {
        println!("job API:     {url}");
    }
    if let Some(rotation) = &c.status.authority_rotation {
        let at = rotation
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        println!(
            "authorities: rotating, {}",
            match rotation.phase {
                hdi_api::AuthorityRotationPhase::Trusting =>
                    format!("both trusted; the new ones sign from {at}"),
                hdi_api::AuthorityRotationPhase::Issuing =>
                    format!("the new ones sign since {at}; broker certificates being issued again"),
                hdi_api::AuthorityRotationPhase::Settling => format!(
                    "every broker certificate is the new ones' since {at}; the old ones are dropped soon"
                ),
            }
        );
    }
    for condition in &c.status.conditions {
        println!(
            "condition:   {}={} ({}): {}",
            condition.condition_type, condition.status, condition.reason, condition.message
        );
    }
    if let Some(op) = c.status.last_operation {
        println!("operation:   {op}");
    }
    if !c.status.workloads.is_empty() {
        let mut table = Table::new([
            "WORKLOAD",
            "ROLE",
            "ID",
            "NODE",
            "FAULT-DOMAIN",
            "ADDRESS",
            "STATE",
            "RESTARTS",
        ]);
        for w in &c.status.workloads {
            table.row([
                w.name.clone(),
                w.role.clone(),
                w.ordinal.to_string(),
                w.node.clone(),
                w.fault_domain.to_string(),
                w.address.clone(),
                if w.removing {
                    format!("{} (removing)", w.state)
                } else {
                    w.state.clone()
                },
                w.restarts.to_string(),
            ]);
        }
        print!("{}", table.render());
    }
}

pub(crate) fn print_operation(op: &Operation) {
    println!("operation:   {}", op.id);
    println!("kind:        {:?}", op.kind);
    println!("cluster:     {}/{}", op.workspace, op.cluster);
    if let Some(link) = &op.link {
        println!("link:        {link}");
    }
    println!("state:       {}", op.state);
    println!("by:          {}", op.created_by);
    for step in &op.steps {
        println!(
            "  [{}] {}{}",
            step.state,
            step.name,
            step.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    if let Some(error) = &op.error {
        println!("error:       {} ({})", error.detail, error.code);
    }
    if let Some(result) = &op.result {
        println!(
            "result:      loss bound {} record(s), {} ms; {} record(s) quarantined",
            result.loss_records, result.loss_ms, result.quarantined_records
        );
        for p in &result.partitions {
            let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            println!(
                "  {}-{}: stopped at {}, lost {} record(s)",
                p.topic,
                p.partition,
                show(p.stop_offset),
                p.loss_records.unwrap_or(0)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units_and_refuse_what_overflows() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
        let huge = format!("{}d", u64::MAX / 2);
        assert_eq!(parse_duration(&huge), Err(format!("{huge:?} is too long")));
    }
}
