//! The web portal: the built single-page app of `portal/` (its `dist/`, checked in, so `cargo
//! build` never needs Node) embedded in the binary and served at `/` as the router's fallback.
//!
//! - A file of `dist/` is served as is: hashed files under `assets/` are cached for a year as
//!   immutable, every other file (`index.html`) must be revalidated (`no-cache`, with an ETag).
//! - Any other `GET` or `HEAD` whose path is not the API's (`/v1/…`, `/openapi.json`, `/healthz`,
//!   `/readyz`, `/.well-known/…`) and does not name a file (no `.` in its last segment) is a page
//!   of the app: `index.html`, whose script routes it in the browser.
//! - Everything else is the API's `404 not_found` problem, as before the portal existed.
//!
//! Every answer carries a Content-Security-Policy allowing only this origin's scripts, styles,
//! images (and `data:` images), connections and forms; the app needs nothing inline (uPlot and
//! React set styles through the CSSOM, which `style-src` does not restrict).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};

use super::error::ApiError;

/// The portal's built files, embedded at compile time (also in debug builds).
#[derive(rust_embed::Embed)]
#[folder = "../portal/dist"]
struct Dist;

/// The Content-Security-Policy of every portal answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `Cache-Control` of hashed assets.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html` and other unhashed files.
const REVALIDATE: &str = "no-cache";

/// The router's fallback: a file or page of the portal, else the API's not-found problem.
pub(super) async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD || is_api_path(uri.path()) {
        return ApiError::route_not_found().into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let name = match Dist::get(path) {
        Some(_) if !path.is_empty() => path,
        _ if names_a_file(path) => return ApiError::route_not_found().into_response(),
        _ => "index.html",
    };
    let Some(file) = Dist::get(name) else {
        return ApiError::route_not_found().into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let cache = if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if method == Method::HEAD {
        (StatusCode::OK, Body::empty())
    } else {
        (StatusCode::OK, Body::from(file.data.into_owned()))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Paths the API owns: never answered with the portal.
fn is_api_path(path: &str) -> bool {
    path == "/v1"
        || path.starts_with("/v1/")
        || path == "/openapi.json"
        || path == "/healthz"
        || path == "/readyz"
        || path.starts_with("/.well-known/")
}

/// Whether the path's last segment looks like a file name (`app.js`): a missing file is a 404,
/// not the app.
fn names_a_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    async fn get(
        method: Method,
        path: &str,
        headers: HeaderMap,
    ) -> (StatusCode, HeaderMap, String) {
        let response = fallback(method, path.parse().unwrap(), headers).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn hashed_asset() -> String {
        Dist::iter()
            .find(|name| name.starts_with("assets/") && name.ends_with(".js"))
            .unwrap()
            .into_owned()
    }

    #[tokio::test]
    async fn pages_get_the_app_with_a_policy_and_no_cache() {
        for path in ["/", "/workspaces/ws/clusters/k", "/login", "/index.html"] {
            let (status, headers, body) = get(Method::GET, path, HeaderMap::new()).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(body.contains("<div id=\"root\">"), "{path}: {body}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_and_revalidate_by_etag() {
        let asset = hashed_asset();
        let (status, headers, body) =
            get(Method::GET, &format!("/{asset}"), HeaderMap::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(body.len() > 1000);
        let mut conditional = HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, headers[header::ETAG].clone());
        let (status, _, body) = get(Method::GET, &format!("/{asset}"), conditional).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, body) = get(Method::HEAD, "/", HeaderMap::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn api_paths_missing_files_and_other_methods_stay_not_found() {
        for (method, path) in [
            (Method::GET, "/v1/nope"),
            (Method::GET, "/v1"),
            (Method::GET, "/.well-known/nope"),
            (Method::GET, "/assets/missing-abc123.js"),
            (Method::GET, "/favicon.ico"),
            (Method::POST, "/workspaces"),
            (Method::DELETE, "/"),
        ] {
            let (status, headers, body) = get(method.clone(), path, HeaderMap::new()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            assert!(body.contains("\"code\":\"not_found\""), "{body}");
        }
    }
}
