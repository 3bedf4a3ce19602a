//! The tables a job names: every declared connector known, the sink writable, and the query's
//! `FROM` analysed into its one streaming source (maybe inside a window function, replaced by
//! the task's source table) and the static tables joined to it.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, TableFactor,
};

use super::{
    SINK_CONNECTORS, SOURCE_TABLE, STATIC_CONNECTORS, STREAMING_CONNECTORS, WindowKind, WindowSpec,
};
use crate::sql::{JobError, Script, TableDef, WatermarkDef, interval, object_name};

/// Refuses a table whose connector is none of ours.
pub(super) fn check_connectors(script: &Script) -> Result<(), JobError> {
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
    Ok(())
}

/// The table the script inserts into, if a sink connector can write it.
pub(super) fn sink_table(script: &Script) -> Result<TableDef, JobError> {
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
    Ok(sink)
}

/// What a query's `FROM` reads.
#[derive(Debug)]
pub(super) struct Streaming {
    /// The streaming source table.
    pub(super) source: TableDef,
    /// The window over it, if any.
    pub(super) window: Option<WindowSpec>,
    /// The static tables, by first use.
    pub(super) statics: Vec<TableDef>,
}

impl Streaming {
    /// Finds the streaming relation of `select` (replacing it by the task's source table) and
    /// the static ones, and checks the window against the source.
    pub(super) fn find(script: &Script, select: &mut ast::Select) -> Result<Streaming, JobError> {
        let mut found = Relations::default();
        for table_with_joins in &mut select.from {
            visit_factor(script, &mut table_with_joins.relation, &mut found)?;
            for join in &mut table_with_joins.joins {
                visit_factor(script, &mut join.relation, &mut found)?;
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
        Ok(Streaming {
            source,
            window,
            statics: found.statics,
        })
    }
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
