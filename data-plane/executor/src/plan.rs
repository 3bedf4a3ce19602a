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

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{
    self, Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    ObjectName, SelectItem, SetExpr, TableFactor, Visit as _,
};

use crate::sql::{JobError, Script, TableDef, WatermarkDef, duration_text, interval, object_name};

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
/// Static-table connectors.
/// Static-table connectors: `file` (CSV, Parquet, JSON) and `upsert-kafka` (a compacted topic:
/// the latest value per record key, a null value deleting the key).
pub const STATIC_CONNECTORS: &[&str] = &["file", "upsert-kafka"];
/// Sink connectors.
pub const SINK_CONNECTORS: &[&str] = &["kafka", "files", "memory", "blackhole"];

impl JobPlan {
    /// Plans and validates `script`. Static tables are registered empty (their declared schema)
    /// for validation; the runtime loads their rows.
    pub async fn new(script: Script) -> Result<JobPlan, JobError> {
        let query = script.query.clone();
        if query.with.is_some() {
            return Err(unsupported(&script, "WITH (common table expressions)"));
        }
        if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return Err(unsupported(
                &script,
                "ORDER BY and LIMIT (a stream has no end to sort or cut at)",
            ));
        }
        let SetExpr::Select(select) = *query.body else {
            return Err(unsupported(&script, "set operations"));
        };
        let mut select = *select;
        for table in &script.tables {
            let connector = table.connector()?;
            let known = STREAMING_CONNECTORS.contains(&connector)
                || STATIC_CONNECTORS.contains(&connector)
                || SINK_CONNECTORS.contains(&connector);
            if !known {
                return Err(JobError::new(
                    "invalid_option",
                    format!(
                        "table {} has connector '{connector}'; known: kafka, files, file, memory, blackhole",
                        table.name
                    ),
                )
                .at_span(table.span));
            }
        }
        let sink = script
            .table(&script.sink)
            .cloned()
            .ok_or_else(|| JobError::new("unknown_table", "no sink"))?;
        if !SINK_CONNECTORS.contains(&sink.connector()?) {
            return Err(JobError::new(
                "invalid_option",
                format!(
                    "the sink {} has connector '{}', which cannot be written (kafka, files, memory, blackhole)",
                    sink.name,
                    sink.connector()?
                ),
            )
            .at_span(sink.span));
        }

        // FROM: find the streaming relation (maybe inside a window function), replace it by the
        // task's source table, and note the static ones.
        let mut found = Relations::default();
        for table_with_joins in &mut select.from {
            visit_factor(&script, &mut table_with_joins.relation, &mut found)?;
            for join in &mut table_with_joins.joins {
                visit_factor(&script, &mut join.relation, &mut found)?;
            }
        }
        let Some(source) = found.source else {
            return Err(JobError::new(
                "sql_error",
                "the query reads no streaming table (a table with connector 'kafka' or 'files')",
            )
            .at_span(script.insert_span));
        };
        let window = found.window;
        if let Some(window) = &window
            && let Some(WatermarkDef { column, .. }) = &source.watermark
            && column != &window.time_column
        {
            return Err(JobError::new(
                "unsupported",
                format!(
                    "the window is over {} but the watermark is on {column}: window by the watermark column",
                    window.time_column
                ),
            )
            .at_span(script.insert_span));
        }
        if let Some(window) = &window
            && source.schema.field_with_name(&window.time_column).is_err()
        {
            return Err(JobError::new(
                "unknown_column",
                format!(
                    "the window's time column {} is not a column of {}",
                    window.time_column, source.name
                ),
            )
            .at_span(script.insert_span));
        }
        let task_input_schema = task_input_schema(&source.schema, window.is_some());

        let output_mode = match sink.option("output_mode").unwrap_or("append") {
            "append" => OutputMode::Append,
            "update" => OutputMode::Update,
            other => {
                return Err(JobError::new(
                    "invalid_option",
                    format!("output_mode '{other}': use append or update"),
                )
                .at_span(sink.span));
            }
        };
        if let Some(key) = script
            .settings
            .keys()
            .find(|k| !SETTINGS.contains(&k.as_str()))
        {
            return Err(JobError::new(
                "invalid_option",
                format!(
                    "unknown setting '{key}' (settings: {})",
                    SETTINGS.join(", ")
                ),
            )
            .at_span(script.setting_span(key)));
        }
        let trigger = trigger(&script)?;
        state_partitions(&script)?;
        let max_records_per_trigger = match script
            .settings
            .get("max_records_per_trigger")
            .map(String::as_str)
            .or(source.option("max_records_per_trigger"))
        {
            None => None,
            Some(text) => Some(text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                JobError::new(
                    "invalid_option",
                    format!("max_records_per_trigger '{text}' is not a positive number"),
                )
                .at_span(
                    if script.settings.contains_key("max_records_per_trigger") {
                        script.setting_span("max_records_per_trigger")
                    } else {
                        source.span
                    },
                )
            })?),
        };

        let ctx = validation_context(&task_input_schema, &found.statics)?;
        let aggregates = collect_aggregates(&select)?;
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        let original_query = script.query.clone();
        let (task_sql, shape) = if grouped || !aggregates.is_empty() {
            if select.distinct.is_some() {
                return Err(unsupported(&script, "DISTINCT together with GROUP BY"));
            }
            let (task_sql, mut aggregate) =
                split_aggregate(&mut select, &aggregates, window.is_some())
                    .map_err(|e| locate(e, &original_query, &script))?;
            if window.is_none() && output_mode == OutputMode::Append {
                return Err(JobError::new(
                    "unsupported",
                    "an aggregation without a window never closes a group: append output needs a window (TUMBLE, HOP or SESSION) and a watermark, or set output_mode = 'update' on the sink",
                )
                .at_span(script.insert_span));
            }
            if window.is_some() && output_mode == OutputMode::Append && source.watermark.is_none() {
                return Err(JobError::new(
                    "unsupported",
                    format!(
                        "append output emits a window when the watermark passes it: declare WATERMARK FOR {} on {}",
                        window.as_ref().map_or("", |w| w.time_column.as_str()),
                        source.name
                    ),
                )
                .at_span(source.span));
            }
            if matches!(
                window.as_ref().map(|w| w.kind),
                Some(WindowKind::Session { .. })
            ) && output_mode == OutputMode::Update
            {
                return Err(unsupported(
                    &script,
                    "session windows in update mode (sessions merge; use append)",
                ));
            }
            let task_schema = plan_schema(&ctx, &task_sql)
                .await
                .map_err(|e| locate(e, &original_query, &script))?;
            aggregate.groups_schema = groups_schema(&task_schema, &aggregate)?;
            let groups_ctx = SessionContext::new_with_config(session_config());
            register_empty(
                &groups_ctx,
                GROUPS_TABLE,
                Arc::clone(&aggregate.groups_schema),
            )?;
            let output = plan_schema(&groups_ctx, &aggregate.final_sql)
                .await
                .map_err(|e| locate(e, &original_query, &script))?;
            return finish(
                script,
                source,
                found.statics,
                sink,
                window,
                task_input_schema,
                task_sql,
                task_schema,
                output,
                Shape::Aggregate(aggregate),
                output_mode,
                trigger,
                max_records_per_trigger,
            );
        } else if select.distinct.is_some() {
            if !matches!(select.distinct, Some(Distinct::Distinct)) {
                return Err(unsupported(&script, "DISTINCT ON"));
            }
            if window.is_some() {
                return Err(unsupported(&script, "a window without GROUP BY"));
            }
            (render_select(&select), Shape::Dedup { time_column: None })
        } else {
            if window.is_some() {
                return Err(unsupported(&script, "a window without GROUP BY"));
            }
            (render_select(&select), Shape::Map)
        };
        let task_schema = plan_schema(&ctx, &task_sql)
            .await
            .map_err(|e| locate(e, &original_query, &script))?;
        let shape = match shape {
            Shape::Dedup { .. } => Shape::Dedup {
                time_column: source
                    .watermark
                    .as_ref()
                    .and_then(|w| task_schema.index_of(&w.column).ok()),
            },
            other => other,
        };
        let output = Arc::clone(&task_schema);
        finish(
            script,
            source,
            found.statics,
            sink,
            window,
            task_input_schema,
            task_sql,
            task_schema,
            output,
            shape,
            output_mode,
            trigger,
            max_records_per_trigger,
        )
    }

    /// The aggregation plan, if the query aggregates.
    pub fn aggregate(&self) -> Option<&AggregatePlan> {
        match &self.shape {
            Shape::Aggregate(plan) => Some(plan),
            _ => None,
        }
    }
}

#[allow(clippy::too_many_arguments, reason = "assembles the plan's parts")]
fn finish(
    script: Script,
    source: TableDef,
    statics: Vec<TableDef>,
    sink: TableDef,
    window: Option<WindowSpec>,
    task_input_schema: SchemaRef,
    task_sql: String,
    task_output_schema: SchemaRef,
    output_schema: SchemaRef,
    shape: Shape,
    output_mode: OutputMode,
    trigger: Trigger,
    max_records_per_trigger: Option<u64>,
) -> Result<JobPlan, JobError> {
    if let Some(key) = sink.option("key")
        && output_schema.index_of(key).is_err()
    {
        return Err(JobError::new(
            "unknown_column",
            format!(
                "the sink's key column {key} is not an output column ({})",
                column_names(&output_schema)
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
                        column_names(&output_schema)
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
    Ok(JobPlan {
        script,
        source,
        statics,
        sink,
        window,
        task_input_schema,
        task_sql,
        task_output_schema,
        output_schema,
        shape,
        output_mode,
        trigger,
        max_records_per_trigger,
    })
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

fn trigger(script: &Script) -> Result<Trigger, JobError> {
    let Some(text) = script.settings.get("trigger") else {
        return Ok(Trigger::ProcessingTime(Duration::from_secs(1)));
    };
    let lower = text.trim().to_ascii_lowercase();
    if lower == "available_now" || lower == "availablenow" || lower == "once" {
        return Ok(Trigger::AvailableNow);
    }
    let interval = lower
        .strip_prefix("processing_time")
        .map(str::trim)
        .and_then(humantime_like);
    match interval {
        Some(interval) if !interval.is_zero() => Ok(Trigger::ProcessingTime(interval)),
        _ => Err(JobError::new(
            "invalid_option",
            format!(
                "trigger '{text}': use 'processing_time 1s' (any interval above 0) or 'available_now'"
            ),
        )
        .at_span(script.setting_span("trigger"))),
    }
}

/// `1s`, `500ms`, `2 seconds`, `1 minute`.
fn humantime_like(text: &str) -> Option<Duration> {
    humantime::parse_duration(text)
        .ok()
        .or_else(|| duration_text(text))
}

#[derive(Default)]
struct Relations {
    source: Option<TableDef>,
    window: Option<WindowSpec>,
    statics: Vec<TableDef>,
}

fn visit_factor(
    script: &Script,
    factor: &mut TableFactor,
    found: &mut Relations,
) -> Result<(), JobError> {
    let TableFactor::Table {
        name, alias, args, ..
    } = factor
    else {
        return Err(JobError::new(
            "unsupported",
            format!(
                "{factor} in FROM: a streaming query reads tables (and window functions over them)"
            ),
        )
        .at_span(ast::Spanned::span(factor)));
    };
    let name_span = ast::Spanned::span(&*name);
    let relation = object_name(name);
    let (table_name, window) = match args.take() {
        Some(args) => {
            let (table, window) = window_function(&relation, &args.args).map_err(|e| {
                if e.line.is_none() {
                    e.at_span(name_span)
                } else {
                    e
                }
            })?;
            (table, Some(window))
        }
        None => (relation, None),
    };
    let Some(table) = script.table(&table_name) else {
        return Err(JobError::new(
            "unknown_table",
            format!("{table_name} is not declared with CREATE TABLE"),
        )
        .at_span(name_span));
    };
    let connector = table.connector()?;
    if STREAMING_CONNECTORS.contains(&connector) {
        if found.source.is_some() {
            return Err(JobError::new(
                "unsupported",
                "the query reads two streaming tables: stream-stream joins are not supported (join a static table: connector 'file')",
            )
            .at_span(name_span));
        }
        let alias_name = alias
            .as_ref()
            .map_or_else(|| table.name.clone(), |a| a.name.value.clone());
        *name = ObjectName::from(vec![Ident::new(SOURCE_TABLE)]);
        *alias = Some(ast::TableAlias {
            explicit: true,
            name: Ident::new(alias_name),
            columns: vec![],
            at: None,
        });
        let mut table = table.clone();
        if connector == "rate" {
            // Spark's rate source: fixed columns.
            let fixed = Schema::new(vec![
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
                Field::new("value", DataType::Int64, true),
            ]);
            let declared: Vec<&str> = table
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            if !declared.is_empty() && declared != ["ts", "value"] {
                return Err(JobError::new(
                    "invalid_option",
                    format!(
                        "a rate table has the columns (ts TIMESTAMP, value BIGINT), not ({})",
                        declared.join(", ")
                    ),
                )
                .at_span(table.span));
            }
            table.schema = fixed;
        }
        found.source = Some(table);
        found.window = window;
    } else if STATIC_CONNECTORS.contains(&connector) {
        if window.is_some() {
            return Err(JobError::new(
                "unsupported",
                format!("a window over the static table {}", table.name),
            )
            .at_span(name_span));
        }
        if table.schema.fields().is_empty() {
            return Err(JobError::new(
                "invalid_option",
                format!("the static table {} must declare its columns", table.name),
            )
            .at_span(table.span));
        }
        if !found.statics.iter().any(|t| t.name == table.name) {
            found.statics.push(table.clone());
        }
    } else {
        return Err(JobError::new(
            "unsupported",
            format!("{} is a sink ({connector}); it cannot be read", table.name),
        )
        .at_span(name_span));
    }
    Ok(())
}

fn window_function(name: &str, args: &[FunctionArg]) -> Result<(String, WindowSpec), JobError> {
    let exprs: Vec<&Expr> = args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(JobError::new(
                "sql_error",
                format!("window argument {other} is not an expression"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let usage = match name {
        "tumble" => "TUMBLE(table, time_column, INTERVAL size)",
        "hop" => "HOP(table, time_column, INTERVAL slide, INTERVAL size)",
        "session" => "SESSION(table, time_column, INTERVAL gap)",
        other => {
            return Err(JobError::new(
                "unsupported",
                format!("{other}(...) in FROM: the table functions are TUMBLE, HOP and SESSION"),
            ));
        }
    };
    let wanted = if name == "hop" { 4 } else { 3 };
    let bad = || JobError::new("sql_error", format!("write {usage}"));
    if exprs.len() != wanted {
        return Err(bad());
    }
    let table = match exprs[0] {
        Expr::Identifier(ident) => ident.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .iter()
            .map(|p| p.value.to_lowercase())
            .collect::<Vec<_>>()
            .join("."),
        _ => return Err(bad()),
    };
    let time_column = match exprs[1] {
        Expr::Identifier(ident) => ident.value.to_lowercase(),
        Expr::Function(f) if object_name(&f.name) == "descriptor" => match &f.args {
            FunctionArguments::List(list) => match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident)))] => {
                    ident.value.to_lowercase()
                }
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let millis = |e: &Expr| -> Result<i64, JobError> {
        let d = interval(e).ok_or_else(|| {
            JobError::new(
                "sql_error",
                format!("{e} is not an interval like INTERVAL '1' MINUTE; write {usage}"),
            )
            .at_span(ast::Spanned::span(e))
        })?;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if ms <= 0 {
            return Err(
                JobError::new("sql_error", format!("{e} must be at least 1 ms"))
                    .at_span(ast::Spanned::span(e)),
            );
        }
        Ok(ms)
    };
    let kind = match name {
        "tumble" => WindowKind::Tumble {
            size_ms: millis(exprs[2])?,
        },
        "hop" => {
            let slide_ms = millis(exprs[2])?;
            let size_ms = millis(exprs[3])?;
            if size_ms % slide_ms != 0 {
                return Err(JobError::new(
                    "sql_error",
                    "a HOP window's size must be a multiple of its slide",
                )
                .at_span(ast::Spanned::span(exprs[3])));
            }
            WindowKind::Hop { slide_ms, size_ms }
        }
        _ => WindowKind::Session {
            gap_ms: millis(exprs[2])?,
        },
    };
    Ok((table, WindowSpec { kind, time_column }))
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

/// The settings a script may `SET`.
pub const SETTINGS: &[&str] = &["trigger", "max_records_per_trigger", "state_partitions"];

/// State partitions of a job that does not set `state_partitions`.
pub const DEFAULT_STATE_PARTITIONS: u32 = 4;
/// The most state partitions a job may have.
pub const MAX_STATE_PARTITIONS: u32 = 256;

/// `SET state_partitions = N`: how many partitions the streaming state is split into; 1 to
/// [`MAX_STATE_PARTITIONS`], default [`DEFAULT_STATE_PARTITIONS`].
pub fn state_partitions(script: &Script) -> Result<u32, JobError> {
    match script.settings.get("state_partitions") {
        None => Ok(DEFAULT_STATE_PARTITIONS),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_STATE_PARTITIONS).contains(n))
            .ok_or_else(|| {
                JobError::new(
                    "invalid_option",
                    format!("state_partitions '{text}': a number from 1 to {MAX_STATE_PARTITIONS}"),
                )
                .at_span(script.setting_span("state_partitions"))
            }),
    }
}

/// DataFusion settings for our small per-batch plans: one partition keeps output order stable.
pub fn session_config() -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false)
}

fn register_empty(ctx: &SessionContext, name: &str, schema: SchemaRef) -> Result<(), JobError> {
    let table = MemTable::try_new(
        Arc::clone(&schema),
        vec![vec![RecordBatch::new_empty(schema)]],
    )
    .map_err(|e| JobError::new("sql_error", e.to_string()))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| JobError::new("sql_error", e.to_string()))?;
    Ok(())
}

fn validation_context(
    task_input: &SchemaRef,
    statics: &[TableDef],
) -> Result<SessionContext, JobError> {
    let ctx = SessionContext::new_with_config(session_config());
    register_empty(&ctx, SOURCE_TABLE, Arc::clone(task_input))?;
    for table in statics {
        register_empty(&ctx, &table.name, Arc::new(table.schema.clone()))?;
    }
    Ok(ctx)
}

/// The output schema of `sql` planned in `ctx`, or the planner's error.
async fn plan_schema(ctx: &SessionContext, sql: &str) -> Result<SchemaRef, JobError> {
    let frame = ctx.sql(sql).await.map_err(datafusion_error)?;
    Ok(Arc::new(frame.schema().as_arrow().clone()))
}

/// Maps a DataFusion planning error to ours.
pub fn datafusion_error(error: datafusion::error::DataFusionError) -> JobError {
    let text = error.to_string();
    let message = text
        .strip_prefix("Error during planning: ")
        .or_else(|| text.strip_prefix("Schema error: "))
        .unwrap_or(&text)
        .to_string();
    let code = if text.contains("No field named") {
        "unknown_column"
    } else if text.contains("table") && text.contains("not found") {
        "unknown_table"
    } else {
        "sql_error"
    };
    JobError::new(code, message)
}

/// Puts a position on an error that names a column: the first place the script's query uses it.
fn locate(mut error: JobError, query: &ast::Query, script: &Script) -> JobError {
    if error.line.is_some() {
        return error;
    }
    let mut span = None;
    if let Some(rest) = error.message.split("No field named ").nth(1) {
        let name: String = rest
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let name = name
            .trim_end_matches('.')
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_string();
        let _ = query.visit(&mut ExprFinder {
            f: |expr: &Expr| {
                let ident = match expr {
                    Expr::Identifier(ident) => Some(ident),
                    Expr::CompoundIdentifier(parts) => parts.last(),
                    _ => None,
                };
                if let Some(ident) = ident
                    && ident.value.eq_ignore_ascii_case(&name)
                    && span.is_none()
                {
                    span = Some(ident.span);
                }
            },
        });
    }
    match span {
        Some(span) => error.at_span(span),
        None => {
            error = error.at_span(script.insert_span);
            error
        }
    }
}

struct ExprFinder<F: FnMut(&Expr)> {
    f: F,
}

impl<F: FnMut(&Expr)> ast::Visitor for ExprFinder<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        (self.f)(expr);
        ControlFlow::Continue(())
    }
}

/// One aggregate call of the query.
#[derive(Debug, Clone, PartialEq)]
struct AggCall {
    func: AggFn,
    /// `None` for `count(*)`.
    arg: Option<Expr>,
    /// The call as written.
    call: Expr,
}

fn aggregate_call(expr: &Expr) -> Result<Option<AggCall>, JobError> {
    let Expr::Function(function) = expr else {
        return Ok(None);
    };
    let name = object_name(&function.name);
    let Some(func) = AggFn::named(&name) else {
        return Ok(None);
    };
    let span = ast::Spanned::span(expr);
    if function.over.is_some() {
        return Err(JobError::new(
            "unsupported",
            format!("{name}(...) OVER (...): window functions are not supported in a streaming query; use TUMBLE, HOP or SESSION"),
        )
        .at_span(span));
    }
    if function.filter.is_some() {
        return Err(
            JobError::new("unsupported", format!("{name}(...) FILTER (...)")).at_span(span),
        );
    }
    let FunctionArguments::List(list) = &function.args else {
        return Err(JobError::new("sql_error", format!("{name} needs an argument")).at_span(span));
    };
    if list.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct) {
        return Err(JobError::new(
            "unsupported",
            format!("{name}(DISTINCT ...) in a streaming query: use approx_distinct(...)"),
        )
        .at_span(span));
    }
    let arg = match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if func == AggFn::Count => None,
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.clone()),
        _ => {
            return Err(
                JobError::new("sql_error", format!("{name} takes one argument")).at_span(span),
            );
        }
    };
    if let Some(arg) = &arg {
        let mut nested = false;
        let _ = arg.visit(&mut ExprFinder {
            f: |e: &Expr| {
                if matches!(aggregate_call(e), Ok(Some(_))) {
                    nested = true;
                }
            },
        });
        if nested {
            return Err(
                JobError::new("sql_error", format!("aggregate inside {name}(...)")).at_span(span),
            );
        }
    }
    Ok(Some(AggCall {
        func,
        arg,
        call: expr.clone(),
    }))
}

/// Every distinct aggregate call in the projection and `HAVING`.
fn collect_aggregates(select: &ast::Select) -> Result<Vec<AggCall>, JobError> {
    let mut calls: Vec<AggCall> = Vec::new();
    let mut error = None;
    let mut visit = |e: &Expr| match aggregate_call(e) {
        Ok(Some(call)) => {
            if !calls.iter().any(|c| c.call == call.call) {
                calls.push(call);
            }
        }
        Ok(None) => {}
        Err(e) => {
            error.get_or_insert(e);
        }
    };
    for item in &select.projection {
        let _ = item.visit(&mut ExprFinder { f: &mut visit });
    }
    if let Some(having) = &select.having {
        let _ = having.visit(&mut ExprFinder { f: &mut visit });
    }
    if let Some(selection) = &select.selection {
        let mut in_where = None;
        let _ = selection.visit(&mut ExprFinder {
            f: |e: &Expr| {
                if matches!(aggregate_call(e), Ok(Some(_))) && in_where.is_none() {
                    in_where = Some(ast::Spanned::span(e));
                }
            },
        });
        if let Some(span) = in_where {
            return Err(JobError::new(
                "sql_error",
                "an aggregate in WHERE: filter groups with HAVING",
            )
            .at_span(span));
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(calls),
    }
}

fn ident_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.to_lowercase()),
        _ => None,
    }
}

/// Splits an aggregating SELECT into the task query (partials per group) and the final query
/// (over [`GROUPS_TABLE`]).
fn split_aggregate(
    select: &mut ast::Select,
    aggregates: &[AggCall],
    windowed: bool,
) -> Result<(String, AggregatePlan), JobError> {
    let GroupByExpr::Expressions(group_exprs, modifiers) = &select.group_by else {
        return Err(JobError::new(
            "unsupported",
            "GROUP BY ALL: name the grouping columns",
        ));
    };
    if !modifiers.is_empty() {
        return Err(JobError::new(
            "unsupported",
            "GROUP BY modifiers (ROLLUP, CUBE, GROUPING SETS, WITH TOTALS)",
        ));
    }
    // Resolve `GROUP BY 1` and `GROUP BY alias` to the projected expression.
    let mut keys: Vec<Expr> = Vec::new();
    for expr in group_exprs {
        let resolved = match expr {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => {
                    let index: usize = n.parse().unwrap_or(0);
                    match index.checked_sub(1).and_then(|i| select.projection.get(i)) {
                        Some(SelectItem::UnnamedExpr(e))
                        | Some(SelectItem::ExprWithAlias { expr: e, .. }) => e.clone(),
                        _ => {
                            return Err(JobError::new(
                                "sql_error",
                                format!("GROUP BY {n} names no projected expression"),
                            )
                            .at_span(ast::Spanned::span(expr)));
                        }
                    }
                }
                _ => expr.clone(),
            },
            Expr::Identifier(ident) => select
                .projection
                .iter()
                .find_map(|item| match item {
                    SelectItem::ExprWithAlias { expr: e, alias }
                        if alias.value.eq_ignore_ascii_case(&ident.value)
                            && ident_name(e).as_deref() != Some(&ident.value.to_lowercase()) =>
                    {
                        Some(e.clone())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| expr.clone()),
            other => other.clone(),
        };
        if !keys.contains(&resolved) {
            keys.push(resolved);
        }
    }
    let window_keys = if windowed {
        let start = keys
            .iter()
            .position(|k| ident_name(k).as_deref() == Some("window_start"));
        let end = keys
            .iter()
            .position(|k| ident_name(k).as_deref() == Some("window_end"));
        match (start, end) {
            (Some(s), Some(e)) => Some((s, e)),
            _ => {
                return Err(JobError::new(
                    "sql_error",
                    "a windowed aggregation must GROUP BY window_start, window_end (and any keys)",
                ));
            }
        }
    } else {
        None
    };

    // Task query: keys and partial aggregates per group.
    let mut items: Vec<String> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        items.push(format!("{key} AS __k{i}"));
    }
    for (i, agg) in aggregates.iter().enumerate() {
        let arg = agg
            .arg
            .as_ref()
            .map_or_else(|| "*".to_string(), ToString::to_string);
        match agg.func {
            AggFn::Count => items.push(format!("count({arg}) AS __p{i}_0")),
            AggFn::Sum => items.push(format!("sum({arg}) AS __p{i}_0")),
            AggFn::Min => items.push(format!("min({arg}) AS __p{i}_0")),
            AggFn::Max => items.push(format!("max({arg}) AS __p{i}_0")),
            AggFn::Avg => {
                items.push(format!("sum(CAST({arg} AS DOUBLE)) AS __p{i}_0"));
                items.push(format!("count({arg}) AS __p{i}_1"));
            }
            AggFn::ApproxDistinct => items.push(format!("array_agg(DISTINCT {arg}) AS __p{i}_0")),
        }
    }
    let mut from = String::new();
    for (n, table) in select.from.iter().enumerate() {
        if n > 0 {
            from.push_str(", ");
        }
        from.push_str(&table.to_string());
    }
    let mut task_sql = format!("SELECT {} FROM {from}", items.join(", "));
    if let Some(selection) = &select.selection {
        task_sql.push_str(&format!(" WHERE {selection}"));
    }
    if !keys.is_empty() {
        let list: Vec<String> = keys.iter().map(ToString::to_string).collect();
        task_sql.push_str(&format!(" GROUP BY {}", list.join(", ")));
    }

    // Final query: aggregates become __a{i}, keys become __k{i}.
    let mut projection = select.projection.clone();
    let mut having = select.having.clone();
    let replace = |expr: &mut Expr| {
        let _ = ast::visit_expressions_mut(expr, |e: &mut Expr| {
            if let Some(i) = aggregates.iter().position(|a| &a.call == e) {
                *e = Expr::Identifier(Ident::new(format!("__a{i}")));
            }
            ControlFlow::<()>::Continue(())
        });
        let _ = ast::visit_expressions_mut(expr, |e: &mut Expr| {
            if let Some(i) = keys.iter().position(|k| k == e) {
                *e = Expr::Identifier(Ident::new(format!("__k{i}")));
            }
            ControlFlow::<()>::Continue(())
        });
    };
    for item in &mut projection {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = ident_name(expr).unwrap_or_else(|| expr.to_string());
                let mut rewritten = expr.clone();
                replace(&mut rewritten);
                *item = SelectItem::ExprWithAlias {
                    expr: rewritten,
                    alias: Ident::with_quote('"', name),
                };
            }
            SelectItem::ExprWithAlias { expr, .. } => replace(expr),
            _ => {
                return Err(JobError::new(
                    "unsupported",
                    "SELECT * in an aggregation: name the columns",
                ));
            }
        }
    }
    if let Some(having) = &mut having {
        replace(having);
    }
    let list: Vec<String> = projection.iter().map(ToString::to_string).collect();
    let mut final_sql = format!("SELECT {} FROM {GROUPS_TABLE}", list.join(", "));
    if let Some(having) = having {
        final_sql.push_str(&format!(" WHERE {having}"));
    }
    Ok((
        task_sql,
        AggregatePlan {
            keys: keys.len(),
            window_keys,
            aggs: aggregates.iter().map(|a| a.func).collect(),
            final_sql,
            groups_schema: Arc::new(Schema::empty()),
        },
    ))
}

/// The schema of [`GROUPS_TABLE`]: the task's key columns, then one finalized column per
/// aggregate.
fn groups_schema(task: &Schema, plan: &AggregatePlan) -> Result<SchemaRef, JobError> {
    let mut fields: Vec<Field> = task.fields()[..plan.keys]
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let mut column = plan.keys;
    for (i, func) in plan.aggs.iter().enumerate() {
        let partial = task
            .fields()
            .get(column)
            .ok_or_else(|| JobError::new("sql_error", "partial aggregate missing"))?;
        let data_type = match func {
            AggFn::Count | AggFn::ApproxDistinct => DataType::Int64,
            AggFn::Avg => DataType::Float64,
            AggFn::Sum | AggFn::Min | AggFn::Max => partial.data_type().clone(),
        };
        fields.push(Field::new(format!("__a{i}"), data_type, true));
        column += func.partial_width();
    }
    Ok(Arc::new(Schema::new(fields)))
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
