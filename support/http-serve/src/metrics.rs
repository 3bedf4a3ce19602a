//! Prometheus metrics for every hdi process: the pieces each binary would otherwise copy.
//!
//! - [`exposition`] encodes a `prometheus-client` [`Registry`] as OpenMetrics text (what
//!   Prometheus scrapes; served with [`CONTENT_TYPE`]);
//! - [`bearer_matches`] checks an `Authorization: Bearer` header against a token in constant
//!   time; [`read_token_file`] reads such a token;
//! - [`check_listen`] refuses an unauthenticated metrics listener on anything but loopback;
//! - [`router`] is the `GET /metrics` router of a dedicated metrics listener (the broker's, the
//!   node agent's): `401` without the token when one is set;
//! - [`HttpMetrics`] counts the requests of an axum API by route template (never by path: the
//!   number of series stays bounded) and status, with a latency histogram.
//!
//! Collection itself (the counters and gauges) stays with the process that owns the numbers; this
//! module only names no metric but `http_server_*`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use prometheus_client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`exposition`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds, 1 ms to 10 s (requests of a broker or an API).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `registry` as OpenMetrics text, ending in `# EOF`.
pub fn exposition(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail; an encoder error would be a bug in a metric's labels.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    out
}

/// The response of `GET /metrics` for `text`.
pub fn exposition_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared in constant time).
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    // Length is not secret (tokens are fixed-size random strings); the bytes are.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token in `path` (surrounding whitespace removed).
///
/// # Errors
/// The file cannot be read, or holds only whitespace.
pub fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the metrics token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the metrics token file {} is empty",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

/// Refuses a metrics listener on `addr` without a token unless `addr` is loopback.
///
/// # Errors
/// The sentence to print at start-up.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(format!(
            "--metrics-listen {addr} is not a loopback address: give --metrics-token-file, or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

/// Produces the exposition text on each scrape (refreshing gauges first, if it has any).
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct Served {
    source: Source,
    token: Option<Arc<str>>,
}

/// `GET /metrics` answering `source()`, behind `Authorization: Bearer <token>` when `token` is
/// set (`401` otherwise).
pub fn router(source: Source, token: Option<String>) -> Router {
    let served = Served {
        source,
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(served)
}

async fn metrics(State(served): State<Served>, headers: HeaderMap) -> Response {
    if let Some(token) = &served.token
        && !bearer_matches(&headers, token)
    {
        return unauthorized();
    }
    exposition_response((served.source)())
}

/// `401` with a `WWW-Authenticate: Bearer` challenge, as a problem document.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "application/problem+json"),
        ],
        r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"GET /metrics needs Authorization: Bearer <token>","code":"unauthorized"}"#,
    )
        .into_response()
}

/// The labels of an HTTP request: method, route template (`/v1/clusters/{cluster}`), status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, ... (`OTHER` for extension methods).
    pub method: &'static str,
    /// The matched route template.
    pub route: String,
    /// The response status code.
    pub status: u16,
}

/// The labels of a request's latency: method and route template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// As in [`HttpLabels`].
    pub method: &'static str,
    /// As in [`HttpLabels`].
    pub route: String,
}

/// Requests of an axum API: `http_server_requests_total{method,route,status}` and
/// `http_server_request_duration_seconds{method,route}` (the OpenTelemetry HTTP server names).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> HttpMetrics {
        let requests = Family::<HttpLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "http_server_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            duration.clone(),
        );
        HttpMetrics { requests, duration }
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// An axum middleware counting requests by their matched route: add it with
    /// `Router::route_layer(axum::middleware::from_fn_with_state(metrics, HttpMetrics::track))`
    /// so that `MatchedPath` is known (requests no route matches are not counted).
    pub async fn track(
        State(metrics): State<HttpMetrics>,
        request: Request,
        next: Next,
    ) -> Response {
        let start = Instant::now();
        let method = method_name(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| Arc::<str>::from(p.as_str()));
        let response = next.run(request).await;
        if let Some(route) = route {
            metrics.observe(
                method,
                &route,
                response.status().as_u16(),
                start.elapsed().as_secs_f64(),
            );
        }
        response
    }
}

fn method_name(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The metric families an exposition declares (`# TYPE name kind`), as `name kind` lines in
/// order: what a test snapshots so that a renamed metric is a visible change.
pub fn declared_families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    #[test]
    fn bearer_is_checked_exactly() {
        assert!(bearer_matches(&headers("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(&headers("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(&headers("Bearer s3cret2"), "s3cret"));
        assert!(!bearer_matches(&headers("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn only_loopback_may_listen_without_a_token() {
        let lo: SocketAddr = "127.0.0.1:9100".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:9100".parse().expect("addr");
        assert!(check_listen(lo, None).is_ok());
        assert!(check_listen(any, None).is_err());
        assert!(check_listen(any, Some("t")).is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_metric_name(
            "kafka_server_brokertopicmetrics_bytesin_total"
        ));
        assert!(!valid_metric_name("9bytes"));
        assert!(!valid_metric_name("bytes-in"));
        assert!(!valid_metric_name(""));
    }

    #[tokio::test]
    async fn http_metrics_encode_by_route_template_and_the_router_wants_the_token() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let app = Router::new()
            .route("/v1/things/{id}", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(
                http.clone(),
                HttpMetrics::track,
            ));
        for id in ["a", "b"] {
            let response = app
                .clone()
                .oneshot(
                    Request::builder()
                        .uri(format!("/v1/things/{id}"))
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("answer");
            assert_eq!(response.status(), StatusCode::OK);
        }
        let text = exposition(&registry);
        assert!(
            text.contains(
                r#"http_server_requests_total{method="GET",route="/v1/things/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"http_server_request_duration_seconds_count{method="GET",route="/v1/things/{id}"} 2"#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            declared_families(&text),
            [
                "http_server_requests counter",
                "http_server_request_duration_seconds histogram"
            ]
        );

        let shared = Arc::new(text);
        let source: Source = Arc::new(move || shared.as_str().to_owned());
        let served = router(source, Some("tok".into()));
        let ask = |auth: Option<&'static str>| {
            let mut request = Request::builder().uri("/metrics");
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            served
                .clone()
                .oneshot(request.body(Body::empty()).expect("request"))
        };
        assert_eq!(ask(None).await.expect("answer").status(), 401);
        assert_eq!(
            ask(Some("Bearer nope")).await.expect("answer").status(),
            401
        );
        let ok = ask(Some("Bearer tok")).await.expect("answer");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
