//! `hdictl group`: consumer groups of Kafka clusters, through the control plane's REST API.
//!
//! - `list` shows each group's state, members, assignor and total lag.
//! - `describe` shows the members (with their assigned partitions) and, per partition, the
//!   committed offset, the end offset and the lag, as `kafka-consumer-groups.sh --describe`
//!   does.
//! - `reset-offsets` moves a group's committed offsets with one of `--to-earliest`,
//!   `--to-latest`, `--to-datetime` (RFC 3339, or `YYYY-MM-DDTHH:MM:SS[.sss]` in UTC) or
//!   `--to-offset`, for the topics given with `--topic` (repeatable; default: the partitions the
//!   group committed). `--dry-run` only prints the plan. The control plane refuses while the
//!   group has members (`group_not_empty`).
//! - `delete` deletes a group without members.

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDateTime};
use clap::{ArgGroup, Subcommand};
use hdi_api::{Client, ConsumerGroup, ConsumerGroupResetOffsets, ResetTo};

use crate::Format;
use crate::output::{Table, print_value};

/// `hdictl group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List a cluster's consumer groups with their state, members and total lag.
    List {
        /// Kafka cluster name.
        cluster: String,
    },
    /// Show a group's members and, per partition, the committed offset, end offset and lag.
    Describe {
        /// Kafka cluster name.
        cluster: String,
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (only while the group has no members).
    #[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_datetime", "to_offset"])))]
    ResetOffsets {
        /// Kafka cluster name.
        cluster: String,
        /// Group id.
        group: String,
        /// To each partition's first offset.
        #[arg(long)]
        to_earliest: bool,
        /// To each partition's end (skip what was not read).
        #[arg(long)]
        to_latest: bool,
        /// To the first record at or after this time: RFC 3339 (`2026-12-07T10:00:00Z`) or
        /// `YYYY-MM-DDTHH:MM:SS[.sss]` in UTC.
        #[arg(long, value_name = "DATETIME")]
        to_datetime: Option<String>,
        /// To this offset on every partition (clamped to each partition's earliest and end).
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Reset every partition of this topic (repeatable); default: the partitions the group
        /// committed offsets for.
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group (its committed offsets); only while it has no members.
    Delete {
        /// Kafka cluster name.
        cluster: String,
        /// Group id.
        group: String,
    },
}

/// Milliseconds since the epoch of `text`: RFC 3339, or a naive date-time taken as UTC.
fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    bail!(
        "--to-datetime {text:?}: expected RFC 3339 (2026-12-07T10:00:00Z) or YYYY-MM-DDTHH:MM:SS[.sss] (UTC)"
    )
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_group(group: &ConsumerGroup) {
    println!("group:        {}", group.group_id);
    println!("state:        {}", group.state);
    println!("members:      {}", group.members.len());
    if let Some(assignor) = &group.assignor {
        println!("assignor:     {assignor}");
    }
    println!("total lag:    {}", group.total_lag);
    if !group.offsets.is_empty() {
        println!();
        let mut table = Table::new([
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]);
        for o in &group.offsets {
            let member = o
                .member_id
                .as_ref()
                .and_then(|id| group.members.iter().find(|m| &m.member_id == id));
            table.row([
                o.topic.clone(),
                o.partition.to_string(),
                dash(o.committed_offset),
                dash(o.end_offset),
                dash(o.lag),
                dash(o.member_id.clone()),
                dash(member.map(|m| m.client_host.clone())),
                dash(member.map(|m| m.client_id.clone())),
            ]);
        }
        print!("{}", table.render());
    }
    let idle: Vec<&hdi_api::ConsumerGroupMember> = group
        .members
        .iter()
        .filter(|m| m.assignment.is_empty())
        .collect();
    for member in idle {
        println!(
            "member {} ({}, {}) has no partitions",
            member.member_id, member.client_id, member.client_host
        );
    }
}

/// Runs a group command.
pub async fn group(
    api: &Client,
    workspace: &str,
    command: GroupCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        GroupCommand::List { cluster } => {
            let groups = api.consumer_groups_list_all(workspace, &cluster).await?;
            match format {
                Format::Table => {
                    let mut table =
                        Table::new(["GROUP", "STATE", "MEMBERS", "ASSIGNOR", "TOTAL-LAG"]);
                    for g in &groups {
                        table.row([
                            g.group_id.clone(),
                            g.state.to_string(),
                            g.members.to_string(),
                            dash(g.assignor.clone()),
                            g.total_lag.to_string(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &groups)?,
            }
        }
        GroupCommand::Describe { cluster, group } => {
            let g = api.consumer_group_get(workspace, &cluster, &group).await?;
            match format {
                Format::Table => print_group(&g),
                _ => print_value(format, &g)?,
            }
        }
        GroupCommand::ResetOffsets {
            cluster,
            group,
            to_earliest,
            to_latest,
            to_datetime,
            to_offset,
            topics,
            dry_run,
        } => {
            let timestamp_ms = to_datetime.as_deref().map(parse_datetime).transpose()?;
            let to = match (to_earliest, to_latest, timestamp_ms, to_offset) {
                (true, _, _, _) => ResetTo::Earliest,
                (_, true, _, _) => ResetTo::Latest,
                (_, _, Some(_), _) => ResetTo::Timestamp,
                (_, _, _, Some(_)) => ResetTo::Offset,
                _ => bail!("give one of --to-earliest, --to-latest, --to-datetime, --to-offset"),
            };
            let body = ConsumerGroupResetOffsets {
                to,
                timestamp_ms,
                offset: to_offset,
                topics: (!topics.is_empty()).then_some(topics),
                dry_run,
            };
            let reset = api
                .consumer_group_reset_offsets(workspace, &cluster, &group, &body)
                .await
                .with_context(|| format!("cannot reset the offsets of group {group}"))?;
            match format {
                Format::Table => {
                    let mut table =
                        Table::new(["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]);
                    for o in &reset.offsets {
                        table.row([
                            o.topic.clone(),
                            o.partition.to_string(),
                            dash(o.previous_offset),
                            o.new_offset.to_string(),
                        ]);
                    }
                    print!("{}", table.render());
                    if reset.dry_run {
                        eprintln!("dry run: nothing was committed (run again without --dry-run)");
                    } else {
                        eprintln!(
                            "offsets of group {group} reset on {} partition(s)",
                            reset.offsets.len()
                        );
                    }
                }
                _ => print_value(format, &reset)?,
            }
        }
        GroupCommand::Delete { cluster, group } => {
            api.consumer_group_delete(workspace, &cluster, &group)
                .await?;
            match format {
                Format::Table => println!("group {group} deleted from cluster {cluster}"),
                _ => print_value(
                    format,
                    &serde_json::json!({"cluster": cluster, "group": group, "deleted": true}),
                )?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_rfc3339_or_naive_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z").unwrap(), 1_000);
        assert_eq!(parse_datetime("1970-01-01T00:00:01.500").unwrap(), 1_500);
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_datetime("yesterday").is_err());
    }
}
