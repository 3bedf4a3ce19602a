//! `hdi-http-serve`: serves an axum router with the limits every hdi HTTP listener needs, which
//! `axum::serve` does not set (it gives hyper no timer, so hyper's header timeout is off and a
//! client trickling one header byte at a time holds a connection forever):
//!
//! - **header timeout**: a request's headers must arrive within [`Limits::header_timeout`] of the
//!   connection becoming ready to read one (also the longest an idle keep-alive connection is
//!   kept); then the connection is closed;
//! - **request timeout**: reading the body and answering take at most
//!   [`Limits::request_timeout`]; then the answer is `408` (a problem document,
//!   `code: request_timeout`) and the connection is closed;
//! - **connection cap**: at most [`Limits::max_connections`] connections at once; more are
//!   closed at accept (and logged, at most once a minute).
//!
//! HTTP/1.1 only, as every hdi client speaks. Stopping (the `shutdown` future) stops accepting,
//! lets in-flight requests finish for up to [`DRAIN`], then returns.
//!
//! [`metrics`] holds what every process needs to serve Prometheus metrics.

pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long in-flight connections may finish after the shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request's headers (and the longest idle keep-alive wait).
    pub header_timeout: Duration,
    /// Time for reading a request's body and answering it.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// 10 s for headers, `request_timeout` for the rest, 1,024 connections.
    pub fn with_request_timeout(request_timeout: Duration) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout,
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes.
///
/// # Errors
/// Never on a single connection's failure (those are logged); only when accepting fails in a way
/// that cannot pass.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_full_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: wait, go on.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if last_full_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached: closing new connections"
                );
                last_full_warning = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { let _ = closed.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, "connection ended: {error}");
            }
            drop(slot);
        });
    }
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
    Ok(())
}

/// Answers `408 request_timeout` when reading the body and answering take longer than allowed.
async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let body = format!(
                r#"{{"type":"about:blank","title":"Request Timeout","status":408,"code":"request_timeout","detail":"the request took longer than {} s"}}"#,
                limit.as_secs()
            );
            let mut response = (StatusCode::REQUEST_TIMEOUT, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(800),
            max_connections: 4,
        }
    }

    /// Reads until the peer closes (or `limit` passes); returns what came and when it closed.
    async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
        let started = Instant::now();
        let mut out = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => {
                    return (
                        String::from_utf8_lossy(&out).into(),
                        Some(started.elapsed()),
                    );
                }
                Ok(Ok(n)) => out.extend_from_slice(&buffer[..n]),
                Err(_) => return (String::from_utf8_lossy(&out).into(), None),
            }
        }
    }

    #[tokio::test]
    async fn a_trickled_header_is_cut_at_the_timeout() {
        let (address, _stop) = start(limits()).await;
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        writer
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // One header line every 100 ms, forever: without a timeout the request never ends.
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if writer.write_all(b"X-a: b\r\n").await.is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        trickle.abort();
        assert!(closed.is_ok(), "the connection was not closed within 5 s");
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(400) && after < Duration::from_millis(2500),
            "closed after {after:?}, the header timeout being 500 ms"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_a_prompt_request_is_served() {
        let (address, _stop) = start(limits()).await;
        let mut idle = TcpStream::connect(address).await.unwrap();
        let (_, closed) = read_to_close(&mut idle, Duration::from_secs(5)).await;
        assert!(closed.unwrap() < Duration::from_secs(3));

        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
    }

    #[tokio::test]
    async fn a_slow_body_or_handler_gets_408() {
        let (address, _stop) = start(limits()).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (answer, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
        assert!(closed.is_some());

        // A body promised but trickled.
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
            .await
            .unwrap();
        let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed() {
        let (address, _stop) = start(limits()).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            // A complete request keeps each connection busy in /slow.
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut extra = TcpStream::connect(address).await.unwrap();
        let (answer, closed) = read_to_close(&mut extra, Duration::from_secs(2)).await;
        assert!(
            answer.is_empty() && closed.is_some(),
            "{answer:?} {closed:?}"
        );
    }
}
