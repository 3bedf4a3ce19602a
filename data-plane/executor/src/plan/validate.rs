//! Checking a job against DataFusion: the declared tables registered empty, each query planned
//! for its schema, and a planner error mapped to ours and located in the script.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{self, Expr, Visit as _};

use super::SOURCE_TABLE;
use crate::sql::{JobError, Script, TableDef};

/// DataFusion settings for our small per-batch plans: one partition keeps output order stable.
pub fn session_config() -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false)
}

pub(super) fn register_empty(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
) -> Result<(), JobError> {
    let table = MemTable::try_new(
        Arc::clone(&schema),
        vec![vec![RecordBatch::new_empty(schema)]],
    )
    .map_err(|e| JobError::new("sql_error", e.to_string()))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| JobError::new("sql_error", e.to_string()))?;
    Ok(())
}

pub(super) fn validation_context(
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
pub(super) async fn plan_schema(ctx: &SessionContext, sql: &str) -> Result<SchemaRef, JobError> {
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
pub(super) fn locate(mut error: JobError, query: &ast::Query, script: &Script) -> JobError {
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

/// Calls `f` on every expression of the AST node it visits.
pub(super) struct ExprFinder<F: FnMut(&Expr)> {
    pub(super) f: F,
}

impl<F: FnMut(&Expr)> ast::Visitor for ExprFinder<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        (self.f)(expr);
        ControlFlow::Continue(())
    }
}
