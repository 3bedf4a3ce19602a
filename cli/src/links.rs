//! `hdictl link`: replication links (geo-replication pairs) between two Kafka clusters of a
//! workspace: create, list, show, lag, pause, resume, promote, failover, reverse, delete.
//!
//! Operations (pause, resume, promote, failover, reverse) wait for their operation and print its
//! steps as other mutations do (`--no-wait`, `--timeout`); `create` waits until the target's
//! brokers hold the link.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use hdi_api::{Client, Operation, ReplicationLink, ReplicationLinkSpec, ReplicationLinkStatus};

use crate::Format;
use crate::clusters::{WaitArgs, finish, parse_duration};
use crate::output::{Table, print_value};

/// `hdictl link ...`
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Create a link (or replace its filters): the target mirrors the source's matching topics
    /// at the same offsets, and copies the matching groups' committed offsets.
    Create {
        /// Link name (letters, digits, '-', '_').
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Return at once instead of waiting for the target's brokers to hold the link.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List the workspace's links.
    List,
    /// Show a link with its status.
    Show {
        /// Link name.
        name: String,
    },
    /// Lag per topic and partition (records, bytes, seconds) and the RPO estimate.
    Lag {
        /// Link name.
        name: String,
    },
    /// Pause mirroring.
    Pause(OperationArgs),
    /// Resume a paused link.
    Resume(OperationArgs),
    /// Planned switchover: the source stops taking writes, the target catches up (RPO 0),
    /// syncs group offsets and its topics become writable.
    Promote(OperationArgs),
    /// Forced failover: stop mirroring now; prints the loss bound. With `--break-glass`, without
    /// the control plane: straight to the target's brokers as the Kafka user of
    /// `--client-config` (a file `hdictl cluster client-config` wrote, for a user with
    /// alter_configs and describe_configs on `kafka-cluster`).
    Failover {
        #[command(flatten)]
        args: OperationArgs,
        /// Talk to the target's brokers directly (the control plane is down).
        #[arg(long, requires = "client_config")]
        break_glass: bool,
        /// The target cluster's client configuration (librdkafka properties), for --break-glass.
        #[arg(long, requires = "break_glass")]
        client_config: Option<std::path::PathBuf>,
    },
    /// After promote or failover: the old source mirrors the new primary (its diverged records
    /// go to `<topic>.quarantine`); source and target swap.
    Reverse(OperationArgs),
    /// Delete a link (promote or fail it over first while it feeds mirror topics).
    Delete {
        /// Link name.
        name: String,
    },
}

impl LinkCommand {
    /// `link failover NAME --break-glass --client-config FILE`: the name, the file and the
    /// timeout, when the control plane is not to be asked.
    pub fn break_glass(&self) -> Option<(&str, &std::path::Path, Duration)> {
        match self {
            LinkCommand::Failover {
                args,
                break_glass: true,
                client_config: Some(file),
            } => Some((&args.name, file, args.wait.timeout)),
            _ => None,
        }
    }
}

/// What a link joins and copies.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The Kafka cluster copied from.
    #[arg(long)]
    source: String,
    /// The Kafka cluster holding the mirror topics (other fault domains than the source's).
    #[arg(long)]
    target: String,
    /// Topics: literal names or `prefix*` patterns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    topics: Vec<String>,
    /// Topics never mirrored (exclusions win).
    #[arg(long, value_delimiter = ',')]
    exclude_topics: Vec<String>,
    /// Consumer groups whose committed offsets are copied.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Groups never copied.
    #[arg(long, value_delimiter = ',')]
    exclude_groups: Vec<String>,
}

/// A link operation's arguments.
#[derive(Debug, Args)]
pub struct OperationArgs {
    /// Link name.
    name: String,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Runs `hdictl link ...`.
///
/// # Errors
/// The control plane's refusal, a timeout, or a failed operation.
pub async fn link(
    api: &Client,
    workspace: &str,
    command: LinkCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        LinkCommand::Create {
            name,
            spec,
            no_wait,
            timeout,
        } => {
            let spec = ReplicationLinkSpec {
                source_cluster: spec.source,
                target_cluster: spec.target,
                topics: spec.topics,
                topics_exclude: spec.exclude_topics,
                groups: spec.groups,
                groups_exclude: spec.exclude_groups,
                sync_configs: true,
            };
            let mut link = api.link_put(workspace, &name, &spec).await?;
            if !no_wait {
                link = wait_defined(api, workspace, &name, timeout).await?;
            }
            match format {
                Format::Table => print_link(&link),
                _ => print_value(format, &link)?,
            }
        }
        LinkCommand::List => {
            let links =
                hdi_api::client::every_page(async |token| api.links_list(workspace, token).await)
                    .await?;
            match format {
                Format::Table => {
                    let mut table =
                        Table::new(["NAME", "SOURCE", "TARGET", "STATE", "APPLIED", "TOPICS"]);
                    for l in &links {
                        table.row([
                            l.name.clone(),
                            l.source_cluster.clone(),
                            l.target_cluster.clone(),
                            l.state.to_string(),
                            l.applied.to_string(),
                            l.topics.join(","),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &links)?,
            }
        }
        LinkCommand::Show { name } => {
            let link = api.link_get(workspace, &name).await?;
            match format {
                Format::Table => print_link(&link),
                _ => print_value(format, &link)?,
            }
        }
        LinkCommand::Lag { name } => {
            let status = api.link_lag(workspace, &name).await?;
            match format {
                Format::Table => print_lag(&status),
                _ => print_value(format, &status)?,
            }
        }
        LinkCommand::Pause(args) => {
            let op = api.link_pause(workspace, &args.name).await?;
            done(api, op, &args.wait, format).await?;
        }
        LinkCommand::Resume(args) => {
            let op = api.link_resume(workspace, &args.name).await?;
            done(api, op, &args.wait, format).await?;
        }
        LinkCommand::Promote(args) => {
            let op = api.link_promote(workspace, &args.name).await?;
            done(api, op, &args.wait, format).await?;
        }
        LinkCommand::Failover { args, .. } => {
            let op = api.link_failover(workspace, &args.name).await?;
            done(api, op, &args.wait, format).await?;
        }
        LinkCommand::Reverse(args) => {
            let op = api.link_reverse(workspace, &args.name).await?;
            done(api, op, &args.wait, format).await?;
        }
        LinkCommand::Delete { name } => {
            api.link_delete(workspace, &name).await?;
            if format == Format::Table {
                println!("replication link {name} deleted");
            }
        }
    }
    Ok(())
}

/// Waits for a link operation like other mutations, then prints what it measured.
async fn done(api: &Client, op: Operation, wait: &WaitArgs, format: Format) -> anyhow::Result<()> {
    let id = op.id;
    finish(api, op, wait, format, None).await?;
    if format == Format::Table && !wait.no_wait {
        let op = api.operation_get(id).await?;
        if let Some(result) = &op.result {
            println!(
                "stopped {} partition(s); loss bound {} record(s), {} ms; {} record(s) quarantined",
                result.partitions.len(),
                result.loss_records,
                result.loss_ms,
                result.quarantined_records
            );
        }
    }
    Ok(())
}

/// Polls until the target's brokers hold the link's latest definition.
async fn wait_defined(
    api: &Client,
    workspace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<ReplicationLink> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let link = api.link_get(workspace, name).await?;
        let defined = link.status.as_ref().is_some_and(|s| s.defined);
        if link.applied && defined {
            return Ok(link);
        }
        if std::time::Instant::now() >= deadline {
            let why = link
                .status
                .as_ref()
                .and_then(|s| s.error.clone().or_else(|| s.data_plane_status.clone()))
                .unwrap_or_else(|| "not applied yet".to_owned());
            bail!(
                "link {name} is stored but its target {} does not hold it after {}s: {why}",
                link.target_cluster,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn print_link(link: &ReplicationLink) {
    println!("name:        {}", link.name);
    println!("source:      {}", link.source_cluster);
    println!("target:      {}", link.target_cluster);
    println!("state:       {}", link.state);
    println!("topics:      {}", link.topics.join(","));
    if !link.topics_exclude.is_empty() {
        println!("excluded:    {}", link.topics_exclude.join(","));
    }
    if !link.groups.is_empty() {
        println!("groups:      {}", link.groups.join(","));
    }
    if !link.groups_exclude.is_empty() {
        println!("excl.groups: {}", link.groups_exclude.join(","));
    }
    println!("applied:     {}", link.applied);
    if let Some(user) = &link.source_user {
        println!("reads as:    {user}");
    }
    if let Some(op) = link.operation {
        println!("operation:   {op}");
    }
    if let Some(status) = &link.status {
        print_lag(status);
    }
}

fn print_lag(status: &ReplicationLinkStatus) {
    for warning in &status.warnings {
        println!("warning:     {warning}");
    }
    if !status.observed {
        println!(
            "status:      unknown ({})",
            status.error.as_deref().unwrap_or("the target was not read")
        );
        return;
    }
    println!(
        "brokers:     {} ({})",
        status.data_plane_state.as_deref().unwrap_or("-"),
        status.data_plane_status.as_deref().unwrap_or("-")
    );
    if !status.partitions_reported {
        println!("lag:         not reported by the target's brokers");
        return;
    }
    println!(
        "lag:         {} record(s), {} byte(s); RPO {:.3} s",
        status.lag_records.unwrap_or(0),
        status.lag_bytes.unwrap_or(0),
        status.rpo_seconds.unwrap_or(0.0)
    );
    let mut table = Table::new([
        "TOPIC",
        "PARTITION",
        "STATE",
        "END",
        "SOURCE END",
        "LAG",
        "LAG BYTES",
        "LAG S",
    ]);
    for topic in &status.topics {
        table.row([
            topic.topic.clone(),
            "*".to_owned(),
            topic.state.clone(),
            String::new(),
            String::new(),
            topic.lag_records.to_string(),
            topic.lag_bytes.to_string(),
            format!("{:.3}", topic.lag_seconds),
        ]);
        for p in &topic.partitions {
            let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            table.row([
                String::new(),
                p.partition.to_string(),
                match &p.reason {
                    Some(reason) => format!("{} ({reason})", p.state),
                    None => p.state.clone(),
                },
                show(p.log_end),
                show(p.source_end),
                p.lag_records
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                p.lag_bytes
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                p.lag_seconds
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            ]);
        }
    }
    print!("{}", table.render());
}
