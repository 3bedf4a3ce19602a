//! Splitting an aggregation in two: the **task query** computes partial aggregates per group
//! over one task's rows, and the **final query** turns the groups the state emits (over
//! [`GROUPS_TABLE`]) into output rows.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, SelectItem,
    Visit as _,
};

use datafusion::prelude::SessionContext;

use super::validate::{ExprFinder, locate, plan_schema, register_empty, session_config};
use super::{
    AggFn, AggregatePlan, AggregateQuery, GROUPS_TABLE, OutputMode, Queries, Shape, WindowKind,
    unsupported,
};
use crate::sql::{JobError, object_name};

/// Plans an aggregating `select`: splits it into the task and final queries, checks the window,
/// watermark and output mode go together, and plans both queries for their schemas.
pub(super) async fn plan_aggregation(
    query: &AggregateQuery<'_>,
    select: &mut ast::Select,
    aggregates: &[AggCall],
) -> Result<Queries, JobError> {
    let AggregateQuery {
        script,
        source,
        window,
        output_mode,
        ctx,
    } = *query;
    if select.distinct.is_some() {
        return Err(unsupported(script, "DISTINCT together with GROUP BY"));
    }
    let (task_sql, mut aggregate) = split_aggregate(select, aggregates, window.is_some())
        .map_err(|e| locate(e, &script.query, script))?;
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
                window.map_or("", |w| w.time_column.as_str()),
                source.name
            ),
        )
        .at_span(source.span));
    }
    if matches!(window.map(|w| w.kind), Some(WindowKind::Session { .. }))
        && output_mode == OutputMode::Update
    {
        return Err(unsupported(
            script,
            "session windows in update mode (sessions merge; use append)",
        ));
    }
    let task_schema = plan_schema(ctx, &task_sql)
        .await
        .map_err(|e| locate(e, &script.query, script))?;
    aggregate.groups_schema = groups_schema(&task_schema, &aggregate)?;
    let groups_ctx = SessionContext::new_with_config(session_config());
    register_empty(
        &groups_ctx,
        GROUPS_TABLE,
        Arc::clone(&aggregate.groups_schema),
    )?;
    let output_schema = plan_schema(&groups_ctx, &aggregate.final_sql)
        .await
        .map_err(|e| locate(e, &script.query, script))?;
    Ok(Queries {
        task_sql,
        task_output_schema: task_schema,
        output_schema,
        shape: Shape::Aggregate(aggregate),
    })
}

/// One aggregate call of the query.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AggCall {
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
pub(super) fn collect_aggregates(select: &ast::Select) -> Result<Vec<AggCall>, JobError> {
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
