//! The one error document of the executor's HTTP endpoints (RFC 9457 `application/problem+json`):
//! the driver's job API and membership, and the workers' task and state endpoints.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// The media type of a [`Problem`].
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error answer. Absent optional members are left out of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type", default)]
    pub problem_type: AboutBlank,
    /// The status's reason phrase.
    #[serde(default)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    pub status: u16,
    /// A stable machine-readable code, e.g. `sql_error`, `job_not_found`, `invalid_field`.
    #[serde(default)]
    pub code: String,
    /// The request field at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What went wrong, for people. Never an internal fault's cause: that goes to the log.
    #[serde(default)]
    pub detail: String,
    /// 1-based line of a SQL error, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column of a SQL error, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// A problem's `type`: always `about:blank` (the status and `code` say what happened). Reads any
/// value, so that the problem stays small enough to be an error variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AboutBlank;

impl Serialize for AboutBlank {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("about:blank")
    }
}

impl<'de> Deserialize<'de> for AboutBlank {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AboutBlank, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| AboutBlank)
    }
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: AboutBlank,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            field: None,
            detail: detail.into(),
            line: None,
            column: None,
        }
    }

    /// `500 internal` with a generic detail: the caller learns that the fault is ours, the log
    /// gets its cause.
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The same problem naming the request field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// The same problem at `line`:`column` of the request's SQL.
    #[must_use]
    pub fn at(mut self, line: Option<u32>, column: Option<u32>) -> Problem {
        self.line = line;
        self.column = column;
        self
    }

    /// The HTTP status (500 when the document's is not one).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| {
            b"{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500,\"code\":\"internal\"}".to_vec()
        });
        (
            self.status_code(),
            [(axum::http::header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_members_are_left_out() {
        let problem =
            Problem::new(StatusCode::BAD_REQUEST, "invalid_field", "bad id").with_field("id");
        assert_eq!(
            serde_json::to_value(&problem).ok(),
            Some(
                serde_json::json!({"type": "about:blank", "title": "Bad Request", "status": 400,
                "code": "invalid_field", "field": "id", "detail": "bad id"})
            )
        );
        let sql =
            Problem::new(StatusCode::BAD_REQUEST, "unknown_column", "no x").at(Some(3), Some(41));
        assert_eq!(
            serde_json::to_value(&sql).ok(),
            Some(
                serde_json::json!({"type": "about:blank", "title": "Bad Request", "status": 400,
                "code": "unknown_column", "detail": "no x", "line": 3, "column": 41})
            )
        );
    }

    #[test]
    fn a_sparse_problem_reads() {
        let problem: Problem =
            serde_json::from_str(r#"{"code":"job_not_found"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (problem.code.as_str(), problem.line),
            ("job_not_found", None)
        );
    }
}
