//! `hdictl job`: streaming SQL jobs of Spark clusters, through the control plane's REST API.
//!
//! `submit` sends a SQL file (the job's name defaults to the file's stem); a SQL error the
//! executor finds is printed with its line and column and the line of the file it points at.
//! `list`, `show`, `progress` (one row per micro-batch: input rows, rows per second, duration,
//! watermark, state rows, rows dropped as late, output rows), `preview` (the latest rows the job
//! wrote) and `stop` (stops and deletes the job and its checkpoint) take the job by name or id.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use hdi_api::{Client, ClientError, ErrorCode, Job, JobCreate, JobPreview, Problem};
use serde_json::Value;

use crate::Format;
use crate::output::{Table, print_value};

/// `hdictl job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a streaming SQL job to a Spark cluster.
    Submit {
        /// Spark cluster name.
        cluster: String,
        /// The job's SQL.
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Job name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// A Kafka cluster of the workspace whose topics the job reads and writes.
        #[arg(long)]
        kafka_cluster: Option<String>,
    },
    /// List a Spark cluster's jobs.
    List {
        /// Spark cluster name.
        cluster: String,
    },
    /// Show a job: its state, last batch and SQL.
    Show {
        /// Spark cluster name.
        cluster: String,
        /// Job name or id.
        job: String,
    },
    /// Show a job's latest micro-batches, oldest first.
    Progress {
        /// Spark cluster name.
        cluster: String,
        /// Job name or id.
        job: String,
        /// How many batches.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show the latest rows a job wrote.
    Preview {
        /// Spark cluster name.
        cluster: String,
        /// Job name or id.
        job: String,
        /// How many rows.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Stop a job and delete it with its checkpoint.
    Stop {
        /// Spark cluster name.
        cluster: String,
        /// Job name or id.
        job: String,
    },
}

/// Runs a job command.
pub async fn job(
    api: &Client,
    workspace: &str,
    command: JobCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        JobCommand::Submit {
            cluster,
            file,
            name,
            kafka_cluster,
        } => {
            let sql = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let name = match name {
                Some(name) => name,
                None => stem(&file)?,
            };
            let body = JobCreate {
                name,
                sql: sql.clone(),
                kafka_cluster,
            };
            let job = api
                .job_create(workspace, &cluster, &body)
                .await
                .map_err(|error| sql_error(error, &file, &sql))?;
            match format {
                Format::Table => {
                    eprintln!("job {} submitted to cluster {cluster}", job.name);
                    print_job(&job);
                }
                _ => print_value(format, &job)?,
            }
        }
        JobCommand::List { cluster } => {
            let jobs = api.jobs_list_all(workspace, &cluster).await?;
            match format {
                Format::Table => {
                    let mut table = Table::new([
                        "NAME",
                        "STATE",
                        "BATCHES",
                        "ROWS/S",
                        "KAFKA-CLUSTER",
                        "CREATED-BY",
                        "ID",
                    ]);
                    for j in &jobs {
                        let rate = j
                            .status
                            .last_progress
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |p| rate(&document(p)));
                        table.row([
                            j.name.clone(),
                            j.status.state.to_string(),
                            j.status.batches_committed.to_string(),
                            rate,
                            j.kafka_cluster.clone().unwrap_or_else(|| "-".to_owned()),
                            j.created_by.clone(),
                            j.id.to_string(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &jobs)?,
            }
        }
        JobCommand::Show { cluster, job } => {
            let job = api.job_get(workspace, &cluster, &job).await?;
            match format {
                Format::Table => print_job(&job),
                _ => print_value(format, &job)?,
            }
        }
        JobCommand::Progress {
            cluster,
            job,
            limit,
        } => {
            let list = api
                .job_progress(workspace, &cluster, &job, Some(limit))
                .await?;
            match format {
                Format::Table => {
                    let documents: Vec<Value> = list.progress.iter().map(document).collect();
                    print!("{}", progress_table(&documents).render());
                }
                _ => print_value(format, &list.progress)?,
            }
        }
        JobCommand::Preview {
            cluster,
            job,
            limit,
        } => {
            let preview = api
                .job_preview(workspace, &cluster, &job, Some(limit))
                .await?;
            match format {
                Format::Table => print!("{}", preview_table(&preview).render()),
                _ => print_value(format, &preview)?,
            }
        }
        JobCommand::Stop { cluster, job } => {
            api.job_delete(workspace, &cluster, &job).await?;
            match format {
                Format::Table => println!("job {job} stopped and deleted from cluster {cluster}"),
                _ => print_value(
                    format,
                    &serde_json::json!({"cluster": cluster, "job": job, "deleted": true}),
                )?,
            }
        }
    }
    Ok(())
}

/// The default job name: the file's stem.
fn stem(file: &Path) -> anyhow::Result<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("cannot name the job after {}: pass --name", file.display()))
}

/// An `invalid_sql` problem as a message naming the file, line and column, with the line it
/// points at; any other error unchanged.
fn sql_error(error: ClientError, file: &Path, sql: &str) -> anyhow::Error {
    match &error {
        ClientError::Api { problem } if problem.code == ErrorCode::InvalidSql => {
            anyhow!(describe_sql_error(
                problem,
                &file.display().to_string(),
                sql
            ))
        }
        _ => error.into(),
    }
}

fn describe_sql_error(problem: &Problem, file: &str, sql: &str) -> String {
    let code = problem.sql_code.as_deref().unwrap_or("sql_error");
    let detail = problem.detail.as_deref().unwrap_or("the SQL is not valid");
    let mut text = match (problem.line, problem.column) {
        (Some(line), Some(column)) => {
            format!("invalid SQL ({code}) at {file}:{line}:{column}: {detail}")
        }
        (Some(line), None) => format!("invalid SQL ({code}) at {file}:{line}: {detail}"),
        _ => format!("invalid SQL ({code}) in {file}: {detail}"),
    };
    let source = problem
        .line
        .and_then(|line| sql.lines().nth(usize::try_from(line).ok()?.checked_sub(1)?));
    if let (Some(line), Some(source)) = (problem.line, source) {
        let gutter = line.to_string().len();
        text.push_str(&format!("\n {line} | {source}"));
        if let Some(column) = problem.column.filter(|c| *c >= 1) {
            let pad: String = source
                .chars()
                .take(column as usize - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            text.push_str(&format!("\n {:gutter$} | {pad}^", ""));
        }
    }
    text
}

fn print_job(job: &Job) {
    println!("name:        {}", job.name);
    println!("id:          {}", job.id);
    println!("cluster:     {}", job.cluster);
    if let Some(kafka) = &job.kafka_cluster {
        println!("kafka:       {kafka}");
    }
    println!("state:       {}", job.status.state);
    if let Some(error) = &job.status.error {
        println!("error:       {} ({})", error.detail, error.code);
    }
    println!("batches:     {}", job.status.batches_committed);
    if let Some(p) = &job.status.last_progress {
        let row = progress_row(&document(p));
        println!(
            "last batch:  {} ({} input rows, {} rows/s, {}, watermark {})",
            row[0], row[1], row[2], row[3], row[4]
        );
    }
    println!(
        "created:     {} by {}",
        job.created_at.to_rfc3339(),
        job.created_by
    );
    println!("sql:");
    for line in job.sql.lines() {
        println!("  {line}");
    }
}

fn number(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.as_u64().is_none() && n.as_i64().is_none() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::Null => "-".to_owned(),
        other => text(other),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A progress as the JSON document the table helpers read.
fn document(progress: &hdi_api::JobProgress) -> Value {
    serde_json::to_value(progress).unwrap_or(Value::Null)
}

fn rate(progress: &Value) -> String {
    number(&progress["processed_rows_per_second"])
}

/// The sum of `field` over a list of objects (`-` when there is none).
fn sum(list: &Value, field: &str) -> String {
    match list.as_array() {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(|i| i[field].as_u64())
            .sum::<u64>()
            .to_string(),
        _ => "-".to_owned(),
    }
}

/// A batch's duration: the whole trigger when the progress names it, else the longest phase.
fn duration(progress: &Value) -> String {
    let durations = &progress["duration_ms"];
    let total = ["trigger_execution", "triggerExecution", "total"]
        .iter()
        .find_map(|k| durations[*k].as_u64())
        .or_else(|| {
            durations
                .as_object()
                .and_then(|o| o.values().filter_map(Value::as_u64).max())
        });
    total.map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms"))
}

/// BATCH, INPUT-ROWS, ROWS/S, DURATION, WATERMARK, STATE-ROWS, LATE-DROPPED, OUTPUT-ROWS.
fn progress_row(p: &Value) -> [String; 8] {
    let watermark = match &p["event_time"]["watermark"] {
        Value::Null => "-".to_owned(),
        other => text(other),
    };
    [
        number(&p["batch_id"]),
        number(&p["num_input_rows"]),
        rate(p),
        duration(p),
        watermark,
        sum(&p["state_operators"], "num_rows_total"),
        sum(&p["state_operators"], "num_rows_dropped_by_watermark"),
        number(&p["sink"]["num_output_rows"]),
    ]
}

fn progress_table(progress: &[Value]) -> Table {
    let mut table = Table::new([
        "BATCH",
        "INPUT-ROWS",
        "ROWS/S",
        "DURATION",
        "WATERMARK",
        "STATE-ROWS",
        "LATE-DROPPED",
        "OUTPUT-ROWS",
    ]);
    for p in progress {
        table.row(progress_row(p));
    }
    table
}

fn preview_table(preview: &JobPreview) -> Table {
    let mut table = Table::with_headers(preview.columns.iter().map(|c| c.to_uppercase()).collect());
    for row in &preview.rows {
        table.push(preview.columns.iter().map(|c| text(&row[c])).collect());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(line: Option<u32>, column: Option<u32>) -> Problem {
        Problem {
            problem_type: "about:blank".into(),
            title: "Bad Request".into(),
            status: 400,
            detail: Some("column \"ts\" not found".into()),
            code: ErrorCode::InvalidSql,
            field: Some("sql".into()),
            sql_code: Some("unknown_column".into()),
            line,
            column,
        }
    }

    #[test]
    fn sql_errors_point_at_the_line_and_column() {
        let sql = "SELECT a\nFROM t\nWHERE ts > 1";
        assert_eq!(
            describe_sql_error(&problem(Some(3), Some(7)), "q.sql", sql),
            "invalid SQL (unknown_column) at q.sql:3:7: column \"ts\" not found\n 3 | WHERE ts > 1\n   |       ^"
        );
        assert_eq!(
            describe_sql_error(&problem(None, None), "q.sql", sql),
            "invalid SQL (unknown_column) in q.sql: column \"ts\" not found"
        );
        // A position past the text still names it.
        assert_eq!(
            describe_sql_error(&problem(Some(9), Some(1)), "q.sql", sql),
            "invalid SQL (unknown_column) at q.sql:9:1: column \"ts\" not found"
        );
    }

    #[test]
    fn progress_rows_show_the_batch_summary() {
        let p = json!({
            "batch_id": 7, "num_input_rows": 1200, "processed_rows_per_second": 412.25,
            "duration_ms": {"add_batch": 80, "trigger_execution": 120},
            "event_time": {"watermark": "2025-01-01T00:00:30Z"},
            "state_operators": [{"num_rows_total": 5, "num_rows_dropped_by_watermark": 2},
                                {"num_rows_total": 4, "num_rows_dropped_by_watermark": 1}],
            "sink": {"num_output_rows": 9}
        });
        assert_eq!(
            progress_row(&p),
            [
                "7",
                "1200",
                "412.2",
                "120ms",
                "2025-01-01T00:00:30Z",
                "9",
                "3",
                "9"
            ]
            .map(String::from)
        );
        let bare = json!({"batch_id": 0, "duration_ms": {"a": 3, "b": 9}});
        assert_eq!(
            progress_row(&bare),
            ["0", "-", "-", "9ms", "-", "-", "-", "-"].map(String::from)
        );
    }

    #[test]
    fn previews_render_every_column() {
        let preview = JobPreview {
            columns: vec!["w".into(), "n".into()],
            rows: vec![json!({"w": "00:00", "n": 3}), json!({"w": null, "n": 1.5})],
        };
        assert_eq!(
            preview_table(&preview).render(),
            "W       N\n00:00   3\n        1.5\n"
        );
    }
}
