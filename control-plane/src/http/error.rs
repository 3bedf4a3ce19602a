//! The one error type of the HTTP layer, rendered as `application/problem+json`.
//!
//! Service errors map to a status and a stable `code`; internal faults are logged with their whole
//! chain while the client sees a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hdi_api::{ErrorCode, Problem};

use crate::auth::AuthError;
use crate::service::ServiceError;

/// An error answer of the REST API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    detail: Option<String>,
    field: Option<String>,
    sql: Option<SqlPosition>,
    retry_after_secs: Option<u64>,
}

/// Where a job's SQL is wrong, as the executor reported it.
#[derive(Debug)]
struct SqlPosition {
    code: String,
    line: Option<u32>,
    column: Option<u32>,
}

impl ApiError {
    /// An error with a status, a stable code and a detail for people.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: Some(detail.into()),
            field: None,
            sql: None,
            retry_after_secs: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// `404 not_found` for a path that names nothing.
    pub fn route_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource or endpoint",
        )
    }

    /// The problem document this error renders to.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            field: self.field.clone(),
            sql_code: self.sql.as_ref().map(|s| s.code.clone()),
            line: self.sql.as_ref().and_then(|s| s.line),
            column: self.sql.as_ref().and_then(|s| s.column),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match serde_json::to_vec(&self.problem()) {
            Ok(body) => body,
            Err(_) => b"{\"title\":\"Internal Server Error\",\"status\":500,\"code\":\"internal\"}"
                .to_vec(),
        };
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        let code = error.code();
        match error {
            ServiceError::InvalidField { field, message } => {
                ApiError::new(StatusCode::BAD_REQUEST, code, format!("{field} {message}"))
                    .with_field(field)
            }
            ServiceError::InvalidSql {
                sql_code,
                message,
                line,
                column,
            } => {
                let mut error =
                    ApiError::new(StatusCode::BAD_REQUEST, code, message).with_field("sql");
                error.sql = Some(SqlPosition {
                    code: sql_code,
                    line,
                    column,
                });
                error
            }
            ServiceError::NotFound { what } => {
                ApiError::new(StatusCode::NOT_FOUND, code, format!("{what} not found"))
            }
            ServiceError::Conflict { message, .. } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::PreconditionFailed { message } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, code, message)
            }
            ServiceError::Refused { message, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, code, message)
            }
            ServiceError::Unreachable { message, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            ServiceError::Upstream { message, .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, code, message)
            }
            ServiceError::Unauthenticated(reason) => ApiError::from(reason),
            ServiceError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                code,
                "unknown user, wrong password, or unknown or expired API token",
            ),
            ServiceError::Forbidden { message } => {
                ApiError::new(StatusCode::FORBIDDEN, code, message)
            }
            ServiceError::RateLimited {
                retry_after_secs,
                message,
            } => {
                let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message);
                error.retry_after_secs = Some(retry_after_secs.max(1));
                error
            }
            ServiceError::Unavailable(source) => {
                tracing::warn!(error = %error_chain(&source), "dependency unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the control plane cannot reach its database; retry later",
                )
            }
            ServiceError::Internal(source) => {
                tracing::error!(error = %error_chain(&source), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "internal error; see the control-plane log",
                )
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let detail = match error {
            AuthError::Missing => "this endpoint needs a bearer token",
            AuthError::NotBearer => "the Authorization header must be 'Bearer <token>'",
            AuthError::WrongToken { .. }
            | AuthError::InvalidJwt(_)
            | AuthError::UnknownApiToken
            | AuthError::UnknownUser(_) => "the bearer token is not valid for this endpoint",
            AuthError::UnknownSession => "the session has ended; log in again",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail)
    }
}

pub use crate::error_chain;
