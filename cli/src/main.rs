//! `hdictl`: the command-line client of hdi, on `hdi-api`'s typed client.
//!
//! Commands talk to the control plane named by the current context of the config file (written
//! by `cargo xtask up` or `hdictl login`). Errors print one line naming the problem and exit
//! non-zero; data goes to stdout as a table or JSON.

mod break_glass;
mod clusters;
mod context;
mod groups;
mod jobs;
mod kafka_users;
mod links;
mod login;
mod output;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use hdi_api::Client;

use crate::context::ContextFile;
use crate::output::Table;

/// Command line of `hdictl`.
#[derive(Debug, Parser)]
#[command(
    name = "hdictl",
    version,
    about = "Command-line client of hdi: Kafka and Spark clusters as a service"
)]
struct Cli {
    /// Config file with contexts (default: $HDI_CONFIG, else ~/.config/hdi/config.json).
    #[arg(long, global = true, env = "HDI_CONFIG")]
    config: Option<PathBuf>,
    /// Context to use instead of the current one.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Workspace (default: the context's, else `default`).
    #[arg(short, long, global = true, env = "HDI_WORKSPACE")]
    workspace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in to a control plane and save the context (named by --context, default `default`).
    Login(login::LoginArgs),
    /// Print the versions of hdictl and of the control plane.
    Version {
        /// Only the client's version; do not contact the control plane.
        #[arg(long)]
        client: bool,
    },
    /// Nodes: the machines (node agents) of the fleet.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Workspaces: the tenants clusters live in.
    Workspace {
        #[command(subcommand)]
        command: clusters::WorkspaceCommand,
    },
    /// Kafka and Spark clusters.
    Cluster {
        #[command(subcommand)]
        command: clusters::ClusterCommand,
    },
    /// Long-running operations (every mutation is one).
    Operation {
        #[command(subcommand)]
        command: clusters::OperationCommand,
    },
    /// Topics of Kafka clusters: create, list, describe, delete, produce, consume.
    Topic {
        #[command(subcommand)]
        command: topics::TopicCommand,
    },
    /// Consumer groups of Kafka clusters: list, describe (lag), reset-offsets, delete.
    Group {
        #[command(subcommand)]
        command: groups::GroupCommand,
    },
    /// Kafka users of secured Kafka clusters: create, list, show, set-acls, rotate, delete.
    KafkaUser {
        #[command(subcommand)]
        command: kafka_users::KafkaUserCommand,
    },
    /// Replication links between Kafka clusters: create, list, show, lag, pause, resume,
    /// promote, failover, reverse, delete.
    Link {
        #[command(subcommand)]
        command: links::LinkCommand,
    },
    /// Streaming SQL jobs of Spark clusters: submit, list, show, progress, preview, stop.
    Job {
        #[command(subcommand)]
        command: jobs::JobCommand,
    },
    /// A user's API tokens: list, revoke (`hdictl login` makes one per login).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// List a user's API tokens (never their secrets).
    List {
        /// The user (platform admins may name anyone; others only themselves).
        #[arg(long)]
        user: String,
    },
    /// Revoke one of a user's API tokens: it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
        /// The user (platform admins may name anyone; others only themselves).
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// List registered nodes with their readiness.
    List,
    /// Revoke a node agent's credential (platform admins): its calls are refused until it enrols
    /// again with the bootstrap token.
    RevokeCredential {
        /// The node's name or id.
        node: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hdictl: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hdictl: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Login(args) => {
            let path = match cli.config {
                Some(path) => path,
                None => context::default_path()?,
            };
            let name = cli.context.unwrap_or_else(|| "default".to_owned());
            let name = login::login(&path, &name, cli.workspace, args).await?;
            eprintln!("logged in; context {name:?} saved in {}", path.display());
        }
        Command::Workspace { command } => {
            let (api, _) = connect_with_workspace(cli.config, cli.context.as_deref(), None).await?;
            clusters::workspace(&api, command, cli.output).await?;
        }
        Command::Cluster { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            clusters::cluster(&api, &ws, command, cli.output).await?;
        }
        Command::Topic { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            topics::topic(&api, &ws, command, cli.output).await?;
        }
        Command::Group { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            groups::group(&api, &ws, command, cli.output).await?;
        }
        Command::KafkaUser { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            kafka_users::kafka_user(&api, &ws, command, cli.output).await?;
        }
        Command::Link { command } if command.break_glass().is_some() => {
            if let Some((name, file, timeout)) = command.break_glass() {
                break_glass::failover(name, file, timeout, cli.output).await?;
            }
        }
        Command::Link { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            links::link(&api, &ws, command, cli.output).await?;
        }
        Command::Job { command } => {
            let (api, ws) =
                connect_with_workspace(cli.config, cli.context.as_deref(), cli.workspace).await?;
            jobs::job(&api, &ws, command, cli.output).await?;
        }
        Command::Operation { command } => {
            let (api, _) = connect_with_workspace(cli.config, cli.context.as_deref(), None).await?;
            clusters::operation(&api, command, cli.output).await?;
        }
        Command::Version { client } => {
            let mut versions = serde_json::json!({"client": hdi_api::VERSION});
            let server = if client {
                None
            } else {
                let api = connect(cli.config, cli.context.as_deref()).await?;
                let health = api.health().await?;
                versions["server"] = serde_json::json!(health.version);
                versions["server_url"] = serde_json::json!(api.base_url());
                Some((health.version, api.base_url().to_owned()))
            };
            match cli.output {
                Format::Json | Format::Yaml => output::print_value(cli.output, &versions)?,
                Format::Table => {
                    println!("hdictl {}", hdi_api::VERSION);
                    if let Some((version, url)) = server {
                        println!("control plane {version} at {url}");
                    }
                }
            }
        }
        Command::Node {
            command: NodeCommand::List,
        } => {
            let api = connect(cli.config, cli.context.as_deref()).await?;
            let nodes = api.nodes_list_all().await?;
            match cli.output {
                Format::Json | Format::Yaml => output::print_value(cli.output, &nodes)?,
                Format::Table => {
                    let mut table = Table::new([
                        "NAME",
                        "STATUS",
                        "FAULT-DOMAIN",
                        "CPU",
                        "MEMORY",
                        "ADDRESS",
                        "LAST-SEEN",
                        "ID",
                    ]);
                    for node in &nodes {
                        table.row([
                            node.name.clone(),
                            node.status.to_string(),
                            node.fault_domain.to_string(),
                            output::cpu(node.capacity.cpu_millis),
                            output::bytes(node.capacity.memory_bytes),
                            node.address.clone(),
                            output::age(node.heartbeat_age_seconds),
                            node.id.to_string(),
                        ]);
                    }
                    print!("{}", table.render());
                }
            }
        }
        Command::Token {
            command: TokenCommand::List { user },
        } => {
            let api = connect(cli.config, cli.context.as_deref()).await?;
            let tokens = api.api_tokens_list(&user).await?;
            match cli.output {
                Format::Json | Format::Yaml => output::print_value(cli.output, &tokens)?,
                Format::Table => {
                    let mut table = Table::new(["NAME", "CREATED", "EXPIRES", "LAST-USED"]);
                    let when = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
                        t.map_or_else(
                            || none.to_owned(),
                            |t| t.format("%Y-%m-%d %H:%M").to_string(),
                        )
                    };
                    for token in &tokens {
                        table.row([
                            token.name.clone(),
                            when(Some(token.created_at), "-"),
                            when(token.expires_at, "never"),
                            when(token.last_used_at, "never"),
                        ]);
                    }
                    print!("{}", table.render());
                }
            }
        }
        Command::Token {
            command: TokenCommand::Revoke { name, user },
        } => {
            let api = connect(cli.config, cli.context.as_deref()).await?;
            api.api_token_revoke(&user, &name).await?;
            eprintln!("API token {name:?} of user {user:?} is revoked");
        }
        Command::Node {
            command: NodeCommand::RevokeCredential { node },
        } => {
            let api = connect(cli.config, cli.context.as_deref()).await?;
            let nodes = api.nodes_list_all().await?;
            let Some(found) = nodes
                .iter()
                .find(|n| n.name == node || n.id.to_string() == node)
            else {
                anyhow::bail!("node: no node is named {node:?}");
            };
            api.node_credential_revoke(found.id).await?;
            eprintln!(
                "the credential of node {} is revoked; its agent enrols again with the bootstrap token",
                found.name
            );
        }
    }
    Ok(())
}

/// A client for the chosen context and the workspace to use.
async fn connect_with_workspace(
    config: Option<PathBuf>,
    context: Option<&str>,
    workspace: Option<String>,
) -> anyhow::Result<(Client, String)> {
    let path = match config {
        Some(path) => path,
        None => context::default_path()?,
    };
    let file = ContextFile::load(&path)?;
    let (name, ctx) = file
        .select(context)
        .with_context(|| format!("config {}", path.display()))?;
    let bearer = login::bearer(&path, &name, ctx).await?;
    let client = Client::new(&ctx.api_url, bearer).with_context(|| format!("context {name:?}"))?;
    let workspace = workspace
        .or_else(|| ctx.workspace.clone())
        .unwrap_or_else(|| "default".to_owned());
    Ok((client, workspace))
}

/// A client for the chosen context.
async fn connect(config: Option<PathBuf>, context: Option<&str>) -> anyhow::Result<Client> {
    let path = match config {
        Some(path) => path,
        None => context::default_path()?,
    };
    let file = ContextFile::load(&path)?;
    let (name, ctx) = file
        .select(context)
        .with_context(|| format!("config {}", path.display()))?;
    let bearer = login::bearer(&path, &name, ctx).await?;
    Client::new(&ctx.api_url, bearer).with_context(|| format!("context {name:?}"))
}
