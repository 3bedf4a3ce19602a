//! The job script: parsing `CREATE TABLE` sources, sinks and static tables, `SET` settings and the
//! one `INSERT INTO sink SELECT ...`, with errors that carry a line and column.
//!
//! The dialect is DataFusion's (sqlparser's generic dialect) plus one clause of ours inside a
//! `CREATE TABLE` column list: `WATERMARK FOR <column> AS <column> - INTERVAL '<n>' <unit>`. The
//! clause is cut out of the text before sqlparser sees it (blanked with spaces, so every other
//! position in an error message stays true) and parsed here.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    self, CreateTableOptions, Expr, ObjectName, Query, SetExpr, SqlOption, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};
use serde::Serialize;

use crate::sandbox::JobScope;

/// A refusal of a job, with a stable code and, when known, where in the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// `sql_error`, `unknown_topic`, `unknown_column`, `unknown_table`, `unsupported`,
    /// `invalid_option`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<u64>,
    /// 1-based column of the offending text, when known.
    pub column: Option<u64>,
}

impl JobError {
    /// An error without a position.
    pub fn new(code: &'static str, message: impl Into<String>) -> JobError {
        JobError {
            code,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// The same error at `line`:`column` (ignored when 0, sqlparser's "unknown").
    pub fn at(mut self, line: u64, column: u64) -> JobError {
        if line > 0 {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    /// The same error at the start of `span`.
    pub fn at_span(self, span: Span) -> JobError {
        self.at(span.start.line, span.start.column)
    }
}

/// A watermark declared on a source: rows with an event time below `max seen - delay` are late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    /// The event-time column (a `TIMESTAMP`).
    pub column: String,
    /// How far behind the largest event time seen the watermark trails.
    pub delay: Duration,
}

/// One `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The table's name, lower-cased.
    pub name: String,
    /// Its columns (empty for a sink, whose columns are the query's).
    pub schema: Schema,
    /// Its watermark, if declared.
    pub watermark: Option<WatermarkDef>,
    /// The `WITH (...)` options, keys lower-cased.
    pub options: BTreeMap<String, String>,
    /// Where each option's key stands.
    pub option_spans: BTreeMap<String, Span>,
    /// Where the statement starts.
    pub span: Span,
}

impl TableDef {
    /// The option `key`, or an `invalid_option` error naming it.
    pub fn required(&self, key: &str) -> Result<&str, JobError> {
        self.options.get(key).map(String::as_str).ok_or_else(|| {
            JobError::new(
                "invalid_option",
                format!("table {} needs the option {key}", self.name),
            )
            .at_span(self.span)
        })
    }

    /// The table's Kafka cluster: its `bootstrap_servers` option, or the job's cluster.
    pub fn bootstrap(&self, job_cluster: Option<&str>) -> Result<String, JobError> {
        self.option("bootstrap_servers")
            .or(job_cluster)
            .map(str::to_string)
            .ok_or_else(|| {
                JobError::new(
                    "invalid_option",
                    format!(
                        "table {}: no Kafka cluster: give bootstrap_servers or submit the job with a Kafka cluster",
                        self.name
                    ),
                )
                .at_span(self.span)
            })
    }

    /// Where the option `key` stands (the statement's start when it is not given).
    pub fn option_span(&self, key: &str) -> Span {
        self.option_spans.get(key).copied().unwrap_or(self.span)
    }

    /// The option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The `connector` option.
    pub fn connector(&self) -> Result<&str, JobError> {
        self.required("connector")
    }
}

/// A parsed job script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Every `CREATE TABLE`, in order.
    pub tables: Vec<TableDef>,
    /// `SET key = value` settings, keys lower-cased.
    pub settings: BTreeMap<String, String>,
    /// Where each setting's `SET` starts.
    pub setting_spans: BTreeMap<String, Span>,
    /// The sink table named by `INSERT INTO`.
    pub sink: String,
    /// The query whose rows go to the sink.
    pub query: Box<Query>,
    /// Where the `INSERT` starts.
    pub insert_span: Span,
}

impl Script {
    /// Confines the script to `scope`: each file connector's `path` is resolved inside the files
    /// root (and replaced by the resolved path), and each `bootstrap_servers` must name a Kafka
    /// cluster the scope allows.
    ///
    /// # Errors
    /// `invalid_option` naming the table, the option and where it stands.
    pub fn confine(mut self, scope: &JobScope) -> Result<Script, JobError> {
        for table in &mut self.tables {
            let refused = |table: &TableDef, key: &str, why: String| {
                JobError::new(
                    "invalid_option",
                    format!("table {}: option {key} {why}", table.name),
                )
                .at_span(table.option_span(key))
            };
            if matches!(table.option("connector"), Some("files" | "file"))
                && let Some(path) = table.option("path")
            {
                let resolved = scope
                    .files
                    .resolve(path)
                    .map_err(|why| refused(table, "path", why))?;
                let resolved = resolved.to_str().map(str::to_owned).ok_or_else(|| {
                    refused(table, "path", "does not resolve to a UTF-8 path".into())
                })?;
                table.options.insert("path".into(), resolved);
            }
            if let Some(bootstrap) = table.option("bootstrap_servers") {
                scope
                    .kafka
                    .check(bootstrap)
                    .map_err(|why| refused(table, "bootstrap_servers", why))?;
            }
        }
        Ok(self)
    }

    /// Where setting `key`'s `SET` is (line 0 when it is not set).
    pub fn setting_span(&self, key: &str) -> Span {
        self.setting_spans
            .get(key)
            .copied()
            .unwrap_or(Span::empty())
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Parses a job script.
pub fn parse_script(text: &str) -> Result<Script, JobError> {
    let (text, watermarks) = cut_watermarks(text)?;
    let dialect = GenericDialect {};
    let statements = Parser::parse_sql(&dialect, &text).map_err(parser_error)?;
    let mut tables: Vec<TableDef> = Vec::new();
    let mut settings = BTreeMap::new();
    let mut setting_spans = BTreeMap::new();
    // sqlparser gives a `SET` statement no span: the n-th `SET` keyword is the n-th statement's.
    let mut set_keywords = Tokenizer::new(&dialect, &text)
        .tokenize_with_location()
        .map_err(parser_error_tokens)?
        .into_iter()
        .filter(|t| {
            matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("set"))
        })
        .map(|t| t.span);
    let mut insert = None;
    for statement in statements {
        let mut span = ast::Spanned::span(&statement);
        if matches!(statement, Statement::Set(_))
            && let Some(keyword) = set_keywords.next()
            && span.start.line == 0
        {
            span = keyword;
        }
        match statement {
            Statement::CreateTable(create) => {
                let name = object_name(&create.name);
                if tables.iter().any(|t| t.name == name) {
                    return Err(JobError::new(
                        "sql_error",
                        format!("table {name} is declared twice"),
                    )
                    .at_span(span));
                }
                let mut fields = Vec::new();
                for column in &create.columns {
                    let data_type =
                        data_type(&column.data_type).map_err(|e| e.at_span(column.name.span))?;
                    fields.push(Field::new(
                        column.name.value.to_lowercase(),
                        data_type,
                        true,
                    ));
                }
                let (options, option_spans) = match &create.table_options {
                    CreateTableOptions::With(options) | CreateTableOptions::Options(options) => {
                        table_options(options)?
                    }
                    CreateTableOptions::None => (BTreeMap::new(), BTreeMap::new()),
                    _ => {
                        return Err(JobError::new(
                            "sql_error",
                            "table options go in WITH (key = 'value', ...)",
                        )
                        .at_span(span));
                    }
                };
                let watermark = watermarks
                    .iter()
                    .find(|w| w.position >= span.start && w.position <= span.end)
                    .map(|w| w.def.clone());
                if let Some(watermark) = &watermark {
                    let column = fields.iter().find(|f| f.name() == &watermark.column);
                    match column {
                        Some(field) if matches!(field.data_type(), DataType::Timestamp(..)) => {}
                        Some(_) => {
                            return Err(JobError::new(
                                "sql_error",
                                format!(
                                    "the watermark column {} must be a TIMESTAMP",
                                    watermark.column
                                ),
                            )
                            .at_span(span));
                        }
                        None => {
                            return Err(JobError::new(
                                "unknown_column",
                                format!(
                                    "the watermark names column {}, which table {name} does not have",
                                    watermark.column
                                ),
                            )
                            .at_span(span));
                        }
                    }
                }
                tables.push(TableDef {
                    name,
                    schema: Schema::new(fields),
                    watermark,
                    options,
                    option_spans,
                    span,
                });
            }
            Statement::Set(set) => {
                let (key, value) = set_statement(&set).map_err(|e| e.at_span(span))?;
                setting_spans.insert(key.clone(), span);
                settings.insert(key, value);
            }
            Statement::Insert(insert_statement) => {
                if insert.is_some() {
                    return Err(JobError::new(
                        "unsupported",
                        "a job has one INSERT INTO ... SELECT",
                    )
                    .at_span(span));
                }
                let sink = match &insert_statement.table {
                    ast::TableObject::TableName(name) => object_name(name),
                    ast::TableObject::TableFunction(_) | ast::TableObject::TableQuery(_) => {
                        return Err(
                            JobError::new("sql_error", "INSERT INTO names a table").at_span(span)
                        );
                    }
                };
                if !insert_statement.columns.is_empty() {
                    return Err(JobError::new(
                        "unsupported",
                        "INSERT INTO takes no column list: the sink's columns are the query's",
                    )
                    .at_span(span));
                }
                let Some(query) = insert_statement.source else {
                    return Err(
                        JobError::new("sql_error", "INSERT INTO needs a SELECT").at_span(span)
                    );
                };
                insert = Some((sink, query, span));
            }
            other => {
                return Err(JobError::new(
                    "unsupported",
                    format!(
                        "a job script holds CREATE TABLE, SET and one INSERT INTO ... SELECT, not {}",
                        statement_kind(&other)
                    ),
                )
                .at_span(span));
            }
        }
    }
    let Some((sink, query, insert_span)) = insert else {
        return Err(JobError::new(
            "sql_error",
            "the job has no INSERT INTO <sink> SELECT ...",
        ));
    };
    if !matches!(*query.body, SetExpr::Select(_)) {
        return Err(JobError::new(
            "unsupported",
            "the query must be one SELECT (no UNION, VALUES or nested set operations)",
        )
        .at_span(insert_span));
    }
    if tables.iter().all(|t| t.name != sink) {
        return Err(JobError::new(
            "unknown_table",
            format!("INSERT INTO names {sink}, which no CREATE TABLE declares"),
        )
        .at_span(insert_span));
    }
    Ok(Script {
        tables,
        settings,
        setting_spans,
        sink,
        query,
        insert_span,
    })
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ")
}

/// A lower-cased, dot-joined table name.
pub fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_lowercase(),
            None => part.to_string().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn parser_error(error: datafusion::sql::sqlparser::parser::ParserError) -> JobError {
    let text = error.to_string();
    let message = text
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("SQL parser error: ")
        .to_string();
    let error = JobError::new("sql_error", message.clone());
    match position_in(&message) {
        Some((line, column)) => error.at(line, column),
        None => error,
    }
}

/// `... at Line: 3, Column: 14` → (3, 14).
fn position_in(message: &str) -> Option<(u64, u64)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(',')?;
    let column = rest.trim().strip_prefix("Column: ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

fn data_type(sql: &ast::DataType) -> Result<DataType, JobError> {
    use ast::DataType as S;
    Ok(match sql {
        S::Text | S::String(_) | S::Varchar(_) | S::Char(_) | S::CharVarying(_) => DataType::Utf8,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Float(_) | S::Real | S::Float4 | S::Float32 => DataType::Float32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 => DataType::Int32,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => DataType::Int16,
        S::Boolean | S::Bool => DataType::Boolean,
        S::Timestamp(_, _) | S::Datetime(_) => DataType::Timestamp(TimeUnit::Millisecond, None),
        S::Date => DataType::Date32,
        other => {
            return Err(JobError::new(
                "unsupported",
                format!(
                    "column type {other} is not supported (use TEXT, DOUBLE, FLOAT, BIGINT, INT, SMALLINT, BOOLEAN, TIMESTAMP or DATE)"
                ),
            ));
        }
    })
}

/// A table's options and where each key stands.
type Options = (BTreeMap<String, String>, BTreeMap<String, Span>);

fn table_options(options: &[SqlOption]) -> Result<Options, JobError> {
    let mut out = BTreeMap::new();
    let mut spans = BTreeMap::new();
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(JobError::new(
                "invalid_option",
                format!("table option {option} is not key = 'value'"),
            ));
        };
        let text = literal_text(value).ok_or_else(|| {
            JobError::new(
                "invalid_option",
                format!(
                    "option {} must be a string or number literal, not {value}",
                    key.value
                ),
            )
            .at_span(key.span)
        })?;
        let name = key.value.to_lowercase();
        spans.insert(name.clone(), key.span);
        out.insert(name, text);
    }
    Ok((out, spans))
}

fn literal_text(value: &Expr) -> Option<String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::Identifier(ident) => Some(ident.value.clone()),
        _ => None,
    }
}

fn set_statement(set: &ast::Set) -> Result<(String, String), JobError> {
    if let ast::Set::SingleAssignment {
        variable, values, ..
    } = set
        && let [value] = values.as_slice()
        && let Some(text) = literal_text(value)
    {
        return Ok((object_name(variable), text));
    }
    Err(JobError::new(
        "sql_error",
        "SET takes one setting: SET key = 'value'",
    ))
}

/// A `WATERMARK FOR` clause cut out of the text.
#[derive(Debug)]
struct CutWatermark {
    /// Where the clause was (used to find the statement it belongs to).
    position: Location,
    def: WatermarkDef,
}

fn parser_error_tokens(e: datafusion::sql::sqlparser::tokenizer::TokenizerError) -> JobError {
    JobError::new("sql_error", e.message.clone()).at(e.location.line, e.location.column)
}

/// Blanks every `WATERMARK FOR col AS col - INTERVAL '...' unit` clause (and the comma before it)
/// out of `text`, keeping every other character where it was.
fn cut_watermarks(text: &str) -> Result<(String, Vec<CutWatermark>), JobError> {
    let dialect = GenericDialect {};
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| {
            JobError::new("sql_error", e.message.clone()).at(e.location.line, e.location.column)
        })?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |loc: Location| -> usize {
        let line = usize::try_from(loc.line).unwrap_or(1).saturating_sub(1);
        let start = line_starts.get(line).copied().unwrap_or(text.len());
        // Columns count characters.
        let column = usize::try_from(loc.column).unwrap_or(1).saturating_sub(1);
        text[start..]
            .char_indices()
            .nth(column)
            .map_or(text.len(), |(i, _)| start + i)
    };
    let mut out: Vec<char> = text.chars().collect();
    let char_index = |byte: usize| text[..byte].chars().count();
    let mut cuts = Vec::new();
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut i = 0;
    while i < significant.len() {
        let token = &significant[i].token;
        let is_word = |t: &Token, w: &str| matches!(t, Token::Word(word) if word.value.eq_ignore_ascii_case(w));
        if is_word(token, "WATERMARK")
            && significant
                .get(i + 1)
                .is_some_and(|t| is_word(&t.token, "FOR"))
        {
            let start_token = significant[i];
            // The clause runs to the next top-level ',' or ')'.
            let mut depth = 0i32;
            let mut end = i;
            while let Some(t) = significant.get(end + 1) {
                match t.token {
                    Token::LParen => depth += 1,
                    Token::RParen if depth == 0 => break,
                    Token::RParen => depth -= 1,
                    Token::Comma if depth == 0 => break,
                    _ => {}
                }
                end += 1;
            }
            let clause_start = offset(start_token.span.start);
            let clause_end = offset(significant[end].span.end);
            let clause = &text[clause_start..clause_end];
            let def = parse_watermark(clause)
                .map_err(|e| e.at(start_token.span.start.line, start_token.span.start.column))?;
            // Blank the clause and the comma before it.
            let mut blank_from = char_index(clause_start);
            if i > 0 && matches!(significant[i - 1].token, Token::Comma) {
                blank_from = char_index(offset(significant[i - 1].span.start));
            }
            for c in out.iter_mut().take(char_index(clause_end)).skip(blank_from) {
                if *c != '\n' {
                    *c = ' ';
                }
            }
            cuts.push(CutWatermark {
                position: start_token.span.start,
                def,
            });
            i = end + 1;
            continue;
        }
        i += 1;
    }
    Ok((out.into_iter().collect(), cuts))
}

/// `WATERMARK FOR ts AS ts - INTERVAL '10' SECOND`.
fn parse_watermark(clause: &str) -> Result<WatermarkDef, JobError> {
    let bad = || {
        JobError::new(
            "sql_error",
            format!(
                "cannot read the watermark `{clause}`: write WATERMARK FOR <column> AS <column> - INTERVAL '<n>' <unit>"
            ),
        )
    };
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(clause)
        .map_err(|_| bad())?;
    let first = parser.parse_identifier().map_err(|_| bad())?;
    if !first.value.eq_ignore_ascii_case("watermark") {
        return Err(bad());
    }
    parser.expect_keyword(Keyword::FOR).map_err(|_| bad())?;
    let column = parser
        .parse_identifier()
        .map_err(|_| bad())?
        .value
        .to_lowercase();
    parser.expect_keyword(Keyword::AS).map_err(|_| bad())?;
    let expr = parser.parse_expr().map_err(|_| bad())?;
    let delay = match &expr {
        Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(&column) => Duration::ZERO,
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Minus,
            right,
        } => {
            match left.as_ref() {
                Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(&column) => {}
                _ => return Err(bad()),
            }
            interval(right).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    Ok(WatermarkDef { column, delay })
}

/// The duration of an `INTERVAL '10' SECOND` or `INTERVAL '1 minute'` literal.
pub fn interval(expr: &Expr) -> Option<Duration> {
    let Expr::Interval(interval) = expr else {
        return None;
    };
    let Expr::Value(value) = interval.value.as_ref() else {
        return None;
    };
    let (Value::SingleQuotedString(text) | Value::Number(text, _)) = &value.value else {
        return None;
    };
    let text = match &interval.leading_field {
        Some(unit) => format!("{text} {unit}"),
        None => text.clone(),
    };
    duration_text(&text)
}

/// `"10 second"`, `"1 MINUTE"`, `"500 milliseconds"`, `"2 hours"` → a duration.
pub fn duration_text(text: &str) -> Option<Duration> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("second").to_ascii_lowercase();
    if parts.next().is_some() || !number.is_finite() || number < 0.0 {
        return None;
    }
    let unit = unit.trim_end_matches('s');
    let seconds = match unit {
        "millisecond" | "m" => 0.001,
        "second" | "sec" => 1.0,
        "minute" | "min" => 60.0,
        "hour" | "h" => 3600.0,
        "day" | "d" => 86_400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(number * seconds))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const BANKING: &str = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', format = 'json', starting_offsets = 'earliest');
CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', format = 'json');
INSERT INTO alerts
SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n
FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE)
GROUP BY window_start, window_end, account HAVING sum(amount) > 10000;";

    #[test]
    fn the_banking_script_parses() {
        let script = parse_script(BANKING).unwrap();
        assert_eq!(script.tables.len(), 2);
        let tx = script.table("tx").unwrap();
        assert_eq!(tx.schema.fields().len(), 3);
        assert_eq!(
            tx.watermark,
            Some(WatermarkDef {
                column: "ts".into(),
                delay: Duration::from_secs(10)
            })
        );
        assert_eq!(tx.option("topic"), Some("transactions"));
        assert_eq!(script.sink, "alerts");
        assert!(script.table("alerts").unwrap().schema.fields().is_empty());
    }

    #[test]
    fn a_syntax_error_has_its_position() {
        let err = parse_script(
            "CREATE TABLE t (a TEXT) WITH (connector = 'kafka');\nINSERT INTO t SELEC a FROM t;",
        )
        .unwrap_err();
        assert_eq!(err.code, "sql_error");
        assert_eq!(err.line, Some(2), "{err:?}");
    }

    #[test]
    fn a_broken_watermark_is_an_error_at_its_clause() {
        let err = parse_script(
            "CREATE TABLE t (a TEXT,\n  ts TIMESTAMP, WATERMARK FOR ts AS ts + 3) WITH (connector = 'kafka'); INSERT INTO t SELECT a FROM t;",
        )
        .unwrap_err();
        assert_eq!(
            (err.code, err.line, err.column),
            ("sql_error", Some(2), Some(17)),
            "{err:?}"
        );
    }

    #[test]
    fn the_watermark_column_must_exist() {
        let err = parse_script(
            "CREATE TABLE t (a TEXT, WATERMARK FOR ts AS ts) WITH (connector = 'kafka'); INSERT INTO t SELECT a FROM t;",
        )
        .unwrap_err();
        assert_eq!(err.code, "unknown_column");
    }

    #[test]
    fn settings_and_durations() {
        let script = parse_script(
            "CREATE TABLE t (a TEXT) WITH (connector = 'memory'); SET trigger = 'processing_time 2s'; SET max_records_per_trigger = 10; INSERT INTO t SELECT a FROM t;",
        )
        .unwrap();
        assert_eq!(script.settings["trigger"], "processing_time 2s");
        assert_eq!(script.settings["max_records_per_trigger"], "10");
        assert_eq!(duration_text("1 MINUTE"), Some(Duration::from_secs(60)));
        assert_eq!(
            duration_text("500 milliseconds"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(duration_text("three seconds"), None);
    }

    #[test]
    fn only_one_insert_and_known_statements() {
        let err = parse_script("DROP TABLE x; INSERT INTO x SELECT 1;").unwrap_err();
        assert_eq!(err.code, "unsupported");
        let err = parse_script("CREATE TABLE t (a TEXT) WITH (connector = 'memory');").unwrap_err();
        assert_eq!(err.code, "sql_error");
        let err = parse_script(
            "CREATE TABLE t (a TEXT) WITH (connector = 'memory'); INSERT INTO u SELECT a FROM t;",
        )
        .unwrap_err();
        assert_eq!(err.code, "unknown_table");
    }
}
