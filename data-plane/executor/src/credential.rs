//! The cluster credential: the secret the control plane issues to each Spark cluster and
//! delivers to its driver and workers as a 0600 file (`--credential-file`). Every endpoint of the
//! driver and the workers but `/healthz` requires it as `Authorization: Bearer <credential>`;
//! the driver sends it to the workers, the workers to the driver, the control plane to the
//! driver. Anything else gets `401 unauthorized`.

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hdi_executor_api::Problem;
use hdi_stdx::secret::{Secret, read_secret_file};

/// Reads the credential file.
///
/// # Errors
/// When it cannot be read, is readable by others than its owner, or is too short.
pub fn read(path: &std::path::Path) -> anyhow::Result<Secret> {
    read_secret_file(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("--credential-file")
}

/// Middleware answering `401` to a request without the credential (`/healthz` excepted).
pub async fn require(
    credential: axum::extract::State<Arc<Secret>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/healthz" || presents(&credential, &request) {
        return next.run(request).await;
    }
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this endpoint needs the cluster's credential (Authorization: Bearer)",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn presents(credential: &Secret, request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|token| credential.matches(token))
}

/// An HTTP client that sends the credential with every request.
///
/// # Errors
/// When the client cannot be built (or the credential is not a valid header value).
pub fn client(
    credential: &Secret,
    builder: reqwest::ClientBuilder,
) -> anyhow::Result<reqwest::Client> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", credential.expose()))
        .context("the credential is not a valid header value")?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    builder
        .default_headers(headers)
        .build()
        .context("cannot build the HTTP client")
}
