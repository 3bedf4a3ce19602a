//! The job planner: turns a parsed [`Script`] into what runs each micro-batch.
//!
//! A job has one streaming source (a `kafka`, `files` or `rate` table), optional static tables
//! joined to it (`file` tables: CSV, Parquet or JSON; `upsert-kafka`: a topic read as a table),
//! and one sink. The query takes one of three shapes:
//! - **map**: projections, filters and static joins; each task's rows are the output;
//! - **dedup**: `SELECT DISTINCT ...`; tasks de-duplicate their rows, the state partitions drop
//!   rows seen in earlier batches (kept until the watermark passes the row's event time);
//! - **aggregate**: `GROUP BY` with count, sum, min, max, avg, approx_distinct, optionally over a
//!   window (`TUMBLE`, `HOP`, `SESSION` in `FROM`). The query is split in two: the **task query**
//!   computes partial aggregates per group over one task's rows (DataFusion), the state
//!   partitions merge them across batches ([`crate::state`], [`crate::stateful`]), and the
//!   **final query** turns emitted groups into output rows (projection and `HAVING`, DataFusion
//!   again).
//!
//! Settings (`SET key = 'value'`): `trigger` (`processing_time 1s`, `available_now`),
//! `max_records_per_trigger`, `state_partitions` (see [`state_partitions`]).
//!
//! Windows (our dialect): `FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE)`,
//! `FROM HOP(tx, ts, INTERVAL '10' SECOND, INTERVAL '1' MINUTE)` (slide, then size),
//! `FROM SESSION(tx, ts, INTERVAL '30' SECOND)` (gap); each adds the columns `window_start` and
//! `window_end` to the source's, and the `GROUP BY` must name both. `DESCRIPTOR(ts)` is accepted
//! for the time column.
//!
//! Planning validates the whole job against the declared schemas with DataFusion, so an unknown
//! column is an error at submit time, located in the script.

mod aggregate;
mod relations;
mod settings;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{self, Distinct, GroupByExpr, SetExpr};

use crate::sql::{JobError, Script, TableDef};
use aggregate::{collect_aggregates, plan_aggregation};
use relations::{Streaming, check_connectors, sink_table};
pub use settings::{DEFAULT_STATE_PARTITIONS, MAX_STATE_PARTITIONS, SETTINGS, state_partitions};
use settings::{check_settings, max_records_per_trigger, output_mode, trigger};
pub use validate::{datafusion_error, session_config};
use validate::{locate, plan_schema, validation_context};

/// The name the streaming source's rows are registered under in each task.
pub const SOURCE_TABLE: &str = "__src";
/// The name emitted groups are registered under for the final query.
pub const GROUPS_TABLE: &str = "__groups";

/// A window over event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumble {
        /// Window length.
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `slide_ms`.
    Hop {
        /// Distance between window starts.
        slide_ms: i64,
        /// Window length.
        size_ms: i64,
    },
    /// Per key, events closer than `gap_ms` share a session.
    Session {
        /// Inactivity gap that closes a session.
        gap_ms: i64,
    },
}

/// The window of an aggregation and its time column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// Which window.
    pub kind: WindowKind,
    /// The event-time column of the source.
    pub time_column: String,
}

/// An aggregate function we keep streaming state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    /// `count(*)` or `count(x)`.
    Count,
    /// `sum(x)`.
    Sum,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `avg(x)`.
    Avg,
    /// `approx_distinct(x)` / `approx_count_distinct(x)` (HyperLogLog).
    ApproxDistinct,
}

impl AggFn {
    fn named(name: &str) -> Option<AggFn> {
        Some(match name {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" | "mean" => AggFn::Avg,
            "approx_distinct" | "approx_count_distinct" => AggFn::ApproxDistinct,
            _ => return None,
        })
    }

    /// How many partial columns the task query produces for it.
    pub fn partial_width(self) -> usize {
        match self {
            AggFn::Avg => 2,
            _ => 1,
        }
    }
}

/// How output rows are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Each output row once, final (a window when the watermark passes its end).
    Append,
    /// Every group changed by a batch, with its current value.
    Update,
}

/// When batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A batch every interval (if there is new data).
    ProcessingTime(Duration),
    /// Process what exists at start, in as many batches as the bounds need, then stop.
    AvailableNow,
}

/// The aggregation part of a plan.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    /// Number of group keys (the task query's first columns).
    pub keys: usize,
    /// Positions of `window_start` and `window_end` among the keys, when windowed.
    pub window_keys: Option<(usize, usize)>,
    /// The aggregates, in partial-column order.
    pub aggs: Vec<AggFn>,
    /// The final query over [`GROUPS_TABLE`].
    pub final_sql: String,
    /// The schema of [`GROUPS_TABLE`]: keys then finalized aggregates.
    pub groups_schema: SchemaRef,
}

/// What shape the query has (see the module doc).
#[derive(Debug, Clone)]
pub enum Shape {
    /// Rows straight through.
    Map,
    /// `SELECT DISTINCT`; `time_column` is the output column holding the watermark's event time.
    Dedup {
        /// Index of the event-time column in the output, if selected.
        time_column: Option<usize>,
    },
    /// Windowed or global aggregation.
    Aggregate(AggregatePlan),
}

/// A planned job.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// The parsed script.
    pub script: Script,
    /// The streaming source table.
    pub source: TableDef,
    /// Static tables the query joins, by name.
    pub statics: Vec<TableDef>,
    /// The sink table.
    pub sink: TableDef,
    /// The window, if any.
    pub window: Option<WindowSpec>,
    /// The schema of [`SOURCE_TABLE`] in a task: the source's columns, plus the window columns.
    pub task_input_schema: SchemaRef,
    /// The per-task query over [`SOURCE_TABLE`] and the static tables.
    pub task_sql: String,
    /// The schema the task query produces.
    pub task_output_schema: SchemaRef,
    /// The schema of the rows the sink gets.
    pub output_schema: SchemaRef,
    /// The query's shape.
    pub shape: Shape,
    /// Output mode (sink option `output_mode`).
    pub output_mode: OutputMode,
    /// The trigger (`SET trigger`).
    pub trigger: Trigger,
    /// The most records one batch reads (`SET max_records_per_trigger` or the source option).
    pub max_records_per_trigger: Option<u64>,
}

/// Source connectors.
pub const STREAMING_CONNECTORS: &[&str] = &["kafka", "files", "rate"];
/// Static-table connectors: `file` (CSV, Parquet, JSON) and `upsert-kafka` (a compacted topic:
/// the latest value per record key, a null value deleting the key).
pub const STATIC_CONNECTORS: &[&str] = &["file", "upsert-kafka"];
/// Sink connectors.
pub const SINK_CONNECTORS: &[&str] = &["kafka", "files", "memory", "blackhole"];

impl JobPlan {
    /// Plans and validates `script`. Static tables are registered empty (their declared schema)
    /// for validation; the runtime loads their rows.
    pub async fn new(script: Script) -> Result<JobPlan, JobError> {
        let mut select = streaming_select(&script)?;
        check_connectors(&script)?;
        let sink = sink_table(&script)?;
        // FROM: find the streaming relation (maybe inside a window function), replace it by the
        // task's source table, and note the static ones.
        let Streaming {
            source,
            window,
            statics,
        } = Streaming::find(&script, &mut select)?;
        let task_input_schema = task_input_schema(&source.schema, window.is_some());

        let output_mode = output_mode(&sink)?;
        check_settings(&script)?;
        let trigger = trigger(&script)?;
        state_partitions(&script)?;
        let max_records_per_trigger = max_records_per_trigger(&script, &source)?;

        let ctx = validation_context(&task_input_schema, &statics)?;
        let aggregates = collect_aggregates(&select)?;
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        let queries = if grouped || !aggregates.is_empty() {
            let query = AggregateQuery {
                script: &script,
                source: &source,
                window: window.as_ref(),
                output_mode,
                ctx: &ctx,
            };
            plan_aggregation(&query, &mut select, &aggregates).await?
        } else {
            plan_rows(&script, &select, &source, window.as_ref(), &ctx).await?
        };
        check_output(&script, &sink, &queries.output_schema)?;
        Ok(JobPlan {
            script,
            source,
            statics,
            sink,
            window,
            task_input_schema,
            task_sql: queries.task_sql,
            task_output_schema: queries.task_output_schema,
            output_schema: queries.output_schema,
            shape: queries.shape,
            output_mode,
            trigger,
            max_records_per_trigger,
        })
    }

    /// The aggregation plan, if the query aggregates.
    pub fn aggregate(&self) -> Option<&AggregatePlan> {
        match &self.shape {
            Shape::Aggregate(plan) => Some(plan),
            _ => None,
        }
    }
}

/// The queries a job runs, with their schemas.
#[derive(Debug)]
struct Queries {
    /// The per-task query over [`SOURCE_TABLE`] and the static tables.
    task_sql: String,
    /// Its schema.
    task_output_schema: SchemaRef,
    /// The schema of the rows the sink gets.
    output_schema: SchemaRef,
    /// The query's shape.
    shape: Shape,
}

/// What planning an aggregation needs of the job.
struct AggregateQuery<'a> {
    script: &'a Script,
    source: &'a TableDef,
    window: Option<&'a WindowSpec>,
    output_mode: OutputMode,
    /// The tables registered empty, for validation.
    ctx: &'a SessionContext,
}

/// The script's query as one `SELECT`, refusing what a stream cannot run.
fn streaming_select(script: &Script) -> Result<ast::Select, JobError> {
    let query = script.query.clone();
    if query.with.is_some() {
        return Err(unsupported(script, "WITH (common table expressions)"));
    }
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(unsupported(
            script,
            "ORDER BY and LIMIT (a stream has no end to sort or cut at)",
        ));
    }
    let SetExpr::Select(select) = *query.body else {
        return Err(unsupported(script, "set operations"));
    };
    Ok(*select)
}

/// A query without aggregates: rows straight through (map) or `SELECT DISTINCT` (dedup).
async fn plan_rows(
    script: &Script,
    select: &ast::Select,
    source: &TableDef,
    window: Option<&WindowSpec>,
    ctx: &SessionContext,
) -> Result<Queries, JobError> {
    let dedup = select.distinct.is_some();
    if dedup && !matches!(select.distinct, Some(Distinct::Distinct)) {
        return Err(unsupported(script, "DISTINCT ON"));
    }
    if window.is_some() {
        return Err(unsupported(script, "a window without GROUP BY"));
    }
    let task_sql = render_select(select);
    let task_schema = plan_schema(ctx, &task_sql)
        .await
        .map_err(|e| locate(e, &script.query, script))?;
    let shape = if dedup {
        Shape::Dedup {
            time_column: source
                .watermark
                .as_ref()
                .and_then(|w| task_schema.index_of(&w.column).ok()),
        }
    } else {
        Shape::Map
    };
    Ok(Queries {
        task_sql,
        output_schema: Arc::clone(&task_schema),
        task_output_schema: task_schema,
        shape,
    })
}

/// Checks the output against the sink's options (`key`, `partition_by`) and for duplicate
/// column names.
fn check_output(script: &Script, sink: &TableDef, output_schema: &Schema) -> Result<(), JobError> {
    if let Some(key) = sink.option("key")
        && output_schema.index_of(key).is_err()
    {
        return Err(JobError::new(
            "unknown_column",
            format!(
                "the sink's key column {key} is not an output column ({})",
                column_names(output_schema)
            ),
        )
        .at_span(sink.span));
    }
    if let Some(columns) = sink.option("partition_by") {
        for column in columns.split(',').map(str::trim) {
            if output_schema.index_of(column).is_err() {
                return Err(JobError::new(
                    "unknown_column",
                    format!(
                        "partition_by names {column}, which is not an output column ({})",
                        column_names(output_schema)
                    ),
                )
                .at_span(sink.span));
            }
        }
    }
    for name in output_schema.fields().iter().map(|f| f.name()) {
        if output_schema
            .fields()
            .iter()
            .filter(|f| f.name() == name)
            .count()
            > 1
        {
            return Err(JobError::new(
                "sql_error",
                format!("two output columns are named {name}: alias one with AS"),
            )
            .at_span(script.insert_span));
        }
    }
    Ok(())
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unsupported(script: &Script, what: &str) -> JobError {
    JobError::new(
        "unsupported",
        format!("{what} is not supported in a streaming query"),
    )
    .at_span(script.insert_span)
}

/// A task's source rows: the source table's columns, then `window_start` and `window_end` when
/// the query is windowed.
pub fn task_input_schema(source: &Schema, windowed: bool) -> SchemaRef {
    let mut fields: Vec<Field> = source.fields().iter().map(|f| f.as_ref().clone()).collect();
    if windowed {
        fields.push(Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
        fields.push(Field::new(
            "window_end",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// A SELECT as SQL text.
fn render_select(select: &ast::Select) -> String {
    select.to_string()
}

/// The per-batch task query's statics and their options, for loading.
pub fn static_options(table: &TableDef) -> BTreeMap<String, String> {
    table.options.clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::sql::parse_script;

    async fn plan(sql: &str) -> Result<JobPlan, JobError> {
        JobPlan::new(parse_script(sql)?).await
    }

    #[tokio::test]
    async fn the_banking_query_splits_into_partials_and_a_final_query() {
        let plan = plan(
            "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND) WITH (connector = 'kafka', topic = 't');
             CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts');
             INSERT INTO alerts SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n
             FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end, account HAVING sum(amount) > 10000;",
        )
        .await
        .unwrap();
        let agg = plan.aggregate().unwrap();
        assert_eq!(agg.keys, 3);
        assert_eq!(agg.window_keys, Some((0, 1)));
        assert_eq!(agg.aggs, vec![AggFn::Sum, AggFn::Count]);
        assert_eq!(
            plan.task_sql,
            "SELECT window_start AS __k0, window_end AS __k1, account AS __k2, sum(amount) AS __p0_0, count(*) AS __p1_0 FROM __src AS tx GROUP BY window_start, window_end, account"
        );
        assert_eq!(
            agg.final_sql,
            "SELECT __k0 AS \"window_start\", __k1 AS \"window_end\", __k2 AS \"account\", __a0 AS total, __a1 AS n FROM __groups WHERE __a0 > 10000"
        );
        let names: Vec<&str> = plan
            .output_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["window_start", "window_end", "account", "total", "n"]
        );
    }
}
