//! The Kafka protocol server, the top of the broker: accepts connections, frames requests (4-byte
//! length prefix), decodes headers and bodies with `kafka-protocol`, dispatches to
//! [`crate::handlers`], and writes responses in request order. Also the quorum listener's
//! dispatch (Raft, proposals, heartbeats, replica fetches).
//!
//! Each listener has a security protocol: on `SSL` and `SASL_SSL` listeners connections run TLS
//! first (a verified client certificate names the principal); on `SASL_*` listeners nothing but
//! `ApiVersions`, `SaslHandshake` and `SaslAuthenticate` is answered until the client has
//! authenticated ([`Session`]), frames before that are capped at 512 KiB, and a failed
//! authentication answers `SASL_AUTHENTICATION_FAILED` and closes the connection.
//!
//! Malformed input never takes the broker down: a frame larger than `socket.request.max.bytes`,
//! an unknown API key, an unsupported version (other than ApiVersions, which answers
//! UNSUPPORTED_VERSION with the supported list, as Kafka does) or an undecodable request closes
//! that connection only, with a log line saying why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::broker::Broker;
use crate::cluster::transport::Io;
use crate::security::SaslMechanism;
use crate::security::SecurityProtocol;
use crate::security::quota::REQUEST_PERCENTAGE;
use crate::security::sasl::{Auth, Token};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::{handlers, replication};

/// Serves the quorum listener (Raft, proposals, heartbeats, replica fetches) until dropped.
pub async fn serve_quorum(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let broker = Arc::clone(&broker);
                tokio::spawn(async move {
                    if let Err(error) = quorum_connection(&broker, stream).await {
                        tracing::debug!(%peer, %error, "quorum connection closed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn quorum_connection(broker: &Broker, stream: TcpStream) -> std::io::Result<()> {
    use crate::cluster::rpc::{Request, read_frame, write_response, write_response_sized};
    let _ = stream.set_nodelay(true);
    let (mut stream, caller) = crate::cluster::transport::accept(stream).await?;
    loop {
        let body = match read_frame(&mut stream).await {
            Ok(body) => body,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        };
        let request: Request =
            crate::cluster::rpc::decode_request(&body).map_err(std::io::Error::other)?;
        let raft = &broker.cluster.raft;
        // A broker speaks only for itself: its heartbeats and its replica fetches.
        let claimed = match &request {
            Request::Heartbeat(heartbeat) => Some(heartbeat.id),
            Request::Fetch(fetch) => Some(fetch.replica_id),
            Request::WriteTxnMarkers(markers) => Some(markers.from),
            Request::VerifyTxnPartitions(verify) => Some(verify.from),
            _ => None,
        };
        if let Some(id) = claimed
            && !caller.may_speak_for(id)
        {
            tracing::warn!(
                claimed = id,
                "quorum request refused: the caller's certificate does not name that broker"
            );
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the caller's certificate does not name broker {id}"),
            ));
        }
        match request {
            Request::AppendEntries(rpc) => {
                write_response(&mut stream, &raft.append_entries(rpc).await, &[]).await?;
            }
            Request::Vote(rpc) => write_response(&mut stream, &raft.vote(rpc).await, &[]).await?,
            Request::InstallSnapshot(rpc) => {
                write_response(&mut stream, &raft.install_snapshot(rpc).await, &[]).await?;
            }
            Request::Propose(_) | Request::Heartbeat(_) => {
                let answer = broker.cluster.handle_locally(&request).await;
                write_response(&mut stream, &answer, &[]).await?;
            }
            Request::Fetch(fetch) => {
                let (answer, chunks, incremental) = replication::serve_fetch(broker, &fetch).await;
                let sent = write_response_sized(&mut stream, &answer, &chunks).await?;
                broker.metrics.replica_fetch_served(
                    fetch.partitions.len(),
                    4 + body.len(),
                    sent,
                    incremental,
                );
            }
            Request::EpochEnd(request) => {
                let answer = replication::serve_epoch_end(broker, &request);
                write_response(&mut stream, &answer, &[]).await?;
            }
            Request::WriteTxnMarkers(request) => {
                let answer = crate::txn_markers::serve_write_txn_markers(broker, request).await;
                write_response(&mut stream, &answer, &[]).await?;
            }
            Request::VerifyTxnPartitions(request) => {
                let answer = crate::txn_verification::serve(broker, &request);
                write_response(&mut stream, &answer, &[]).await?;
            }
        }
    }
}

/// The largest frame a client may send before it has authenticated (Kafka's
/// `sasl.server.max.receive.size`).
pub const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// Accepts clients of the broker's listener `index` (in `config.listeners`) until the task is
/// dropped.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, index: usize) {
    let protocol = broker.config.listeners[index].protocol;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let broker = Arc::clone(&broker);
                tokio::spawn(async move {
                    if let Err(reason) = connection(broker, stream, peer, protocol).await {
                        tracing::debug!(%peer, %reason, "connection closed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One client connection's security state: its listener and where it is in authenticating.
#[derive(Debug)]
pub struct Session {
    listener: SecurityProtocol,
    auth: Auth,
    /// The last answer is sent, then the connection closes (a refused authentication).
    closing: bool,
    /// When the authenticated session ends (an OAUTHBEARER token's expiry, seconds since the
    /// epoch): later requests close the connection unless the client re-authenticated.
    expires_at: Option<i64>,
    /// How long to read nothing more after the last answer (a quota's throttle).
    mute: Duration,
}

impl Session {
    /// A connection on a listener of `protocol`; `certificate_principal` is the verified client
    /// certificate's (`User:<common name>`), if any.
    pub fn new(protocol: SecurityProtocol, certificate_principal: Option<String>) -> Session {
        Session {
            listener: protocol,
            auth: Auth::new(protocol.sasl(), certificate_principal),
            closing: false,
            expires_at: None,
            mute: Duration::ZERO,
        }
    }

    /// A `PLAINTEXT` connection (`User:ANONYMOUS`).
    pub fn plaintext() -> Session {
        Session::new(SecurityProtocol::Plaintext, None)
    }

    /// A connection already authenticated as `principal` on `protocol` (tests of authorization).
    pub fn authenticated(protocol: SecurityProtocol, principal: &str) -> Session {
        Session {
            listener: protocol,
            auth: Auth::Done(principal.to_owned()),
            closing: false,
            expires_at: None,
            mute: Duration::ZERO,
        }
    }

    /// The authenticated principal.
    pub fn principal(&self) -> Option<&str> {
        self.auth.principal()
    }
}

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    protocol: SecurityProtocol,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (stream, certificate_principal): (Box<dyn Io>, Option<String>) = if protocol.tls() {
        let security = broker.config.security.current();
        let Some(tls) = &security.tls else {
            return Err("TLS listener without a TLS configuration".into());
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
        let stream =
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(format!("TLS handshake failed: {error}")),
                Err(_) => return Err("TLS handshake timed out".into()),
            };
        let principal = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(hdi_pki::common_name)
            .map(|name| format!("User:{name}"));
        (Box::new(stream), principal)
    } else {
        (Box::new(stream), None)
    };
    let mut session = Session::new(protocol, certificate_principal);
    let (reader, mut writer) = tokio::io::split(stream);
    let mut direct = Some(reader);
    let mut ahead: Option<(
        tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
        AbortOnDrop,
    )> = None;
    loop {
        let frame = match (&mut direct, &mut ahead) {
            (Some(reader), _) => {
                let limit = if session.principal().is_some() {
                    broker.config.max_request_bytes
                } else {
                    MAX_UNAUTHENTICATED_FRAME
                };
                let shortest = if session.auth.expects_raw_token() {
                    0
                } else {
                    8
                };
                match read_frame(reader, shortest, limit).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Ok(()),
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "closing connection");
                        return Err(reason);
                    }
                }
            }
            (None, Some((frames, _))) => match frames.recv().await {
                Some(Ok(frame)) => frame,
                Some(Err(reason)) => {
                    tracing::warn!(%peer, %reason, "closing connection");
                    return Err(reason);
                }
                None => return Ok(()),
            },
            (None, None) => return Err("no reader".into()),
        };
        match handle_session_frame(&broker, &mut session, frame, peer).await {
            Ok(Some(response)) => {
                writer
                    .write_all(&response)
                    .await
                    .map_err(|e| e.to_string())?;
                // Over TLS, `write_all` may return with the response's end still in the
                // session's buffer (the socket was full): the client would wait for it until its
                // request timed out. Flushing sends it (a no-op over plain TCP).
                writer.flush().await.map_err(|e| e.to_string())?;
                if session.closing {
                    let _ = writer.flush().await;
                    let _ = writer.shutdown().await;
                    return Err("authentication failed".into());
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                return Err(reason);
            }
        }
        // Over its quota: the client has its answer and waits; read nothing more meanwhile
        // (KIP-219).
        if !session.mute.is_zero() {
            tokio::time::sleep(std::mem::take(&mut session.mute)).await;
        }
        // Once the client has authenticated, read ahead: the next request is read (and, over
        // TLS, decrypted) by a task of its own while this one is handled, one frame at most.
        if session.principal().is_some()
            && !session.auth.expects_raw_token()
            && let Some(reader) = direct.take()
        {
            let (sender, frames) = tokio::sync::mpsc::channel(1);
            let limit = broker.config.max_request_bytes;
            let task = tokio::spawn(read_ahead(reader, limit, sender));
            ahead = Some((frames, AbortOnDrop(task)));
        }
    }
}

/// Aborts a task when dropped (the connection's read-ahead task ends with the connection).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads frames into `frames` until the stream ends, a frame is refused or the connection stops
/// taking them.
async fn read_ahead<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    limit: usize,
    frames: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
) {
    loop {
        let next = match read_frame(&mut reader, 8, limit).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => return,
            Err(reason) => Err(reason),
        };
        let failed = next.is_err();
        if frames.send(next).await.is_err() || failed {
            return;
        }
    }
}

/// Reads one length-prefixed frame of `shortest..=limit` bytes (`None` at the end of the stream),
/// into memory it does not zero first.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    shortest: i32,
    limit: usize,
) -> Result<Option<Bytes>, String> {
    let length = match reader.read_i32().await {
        Ok(length) => length,
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if length < shortest || length as usize > limit {
        return Err(format!("request frame of {length} bytes is out of bounds"));
    }
    let length = length as usize;
    let mut frame = BytesMut::with_capacity(length);
    while frame.len() < length {
        let mut part = (&mut *reader).take((length - frame.len()) as u64);
        if part.read_buf(&mut frame).await.map_err(|e| e.to_string())? == 0 {
            return Err("the connection ended inside a request".into());
        }
    }
    Ok(Some(frame.freeze()))
}

/// How long a client may take over its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Decodes one request frame of a `PLAINTEXT` connection and produces the response frame
/// (`None` for acks=0 produce).
///
/// # Errors
/// Why the connection must be closed.
pub async fn handle_frame(
    broker: &Broker,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Bytes>, String> {
    handle_session_frame(broker, &mut Session::plaintext(), frame, peer).await
}

/// The credential `user` has for `mechanism`: a static user's, else the quorum's.
fn credential(broker: &Broker, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
    if let Some(credentials) = broker.config.security.current().static_users.get(user) {
        return credentials.get(&mechanism).cloned();
    }
    broker
        .cluster
        .view()
        .meta
        .scram
        .get(user)
        .and_then(|credentials| credentials.get(&mechanism))
        .cloned()
}

/// Decodes one request frame of `session` and produces the response frame (`None` for acks=0
/// produce); SASL requests move the session's authentication along. Counts the request and its
/// time in the broker's metrics (`kafka_network_requestmetrics_*`).
///
/// # Errors
/// Why the connection must be closed.
pub async fn handle_session_frame(
    broker: &Broker,
    session: &mut Session,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Bytes>, String> {
    let counted = (!session.auth.expects_raw_token() && frame.len() >= 4)
        .then(|| {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            ApiKey::try_from(key).ok().map(|key| (key, version))
        })
        .flatten();
    let start = std::time::Instant::now();
    let outcome = handle_request_frame(broker, session, frame, peer).await;
    if let Some((key, version)) = counted
        && handlers::supported(key).is_some_and(|(min, max)| (min..=max).contains(&version))
    {
        broker.metrics.request(key, version, start.elapsed());
    }
    outcome
}

async fn handle_request_frame(
    broker: &Broker,
    session: &mut Session,
    mut frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Bytes>, String> {
    let now = crate::security::oauth::now();
    if session.principal().is_some() && session.expires_at.is_some_and(|at| at <= now) {
        return Err("the session's token has expired (re-authenticate before it does)".into());
    }
    let security = broker.config.security.current();
    let oauth = security.oauth.as_ref();
    if session.auth.expects_raw_token() {
        // After a v0 handshake the tokens travel as bare length-prefixed frames.
        return match session
            .auth
            .token(&frame, |user, m| credential(broker, user, m), oauth, now)
        {
            Token::Done {
                reply, expires_at, ..
            } => {
                session.expires_at = expires_at;
                let mut out = BytesMut::with_capacity(reply.len() + 4);
                out.put_i32(i32::try_from(reply.len()).unwrap_or(i32::MAX));
                out.put_slice(&reply);
                Ok(Some(out.freeze()))
            }
            Token::Continue(reply) => {
                let mut out = BytesMut::with_capacity(reply.len() + 4);
                out.put_i32(i32::try_from(reply.len()).unwrap_or(i32::MAX));
                out.put_slice(&reply);
                Ok(Some(out.freeze()))
            }
            Token::Failed(reason) => Err(format!("SASL authentication failed: {reason}")),
        };
    }
    if frame.len() < 8 {
        return Err("request shorter than a header".into());
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(key).map_err(|()| format!("unknown API key {key}"))?;
    let Some((min, max)) = handlers::supported(api_key) else {
        return Err(format!("unsupported API {api_key:?}"));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer with v0 so any client can read the supported ranges.
            let body =
                handlers::api_versions_response(hdi_kafka_client::codes::UNSUPPORTED_VERSION);
            return encode(
                correlation_id,
                0,
                &kafka_protocol::messages::ResponseKind::ApiVersions(body),
                0,
            )
            .map(Some);
        }
        return Err(format!(
            "unsupported version {version} of {api_key:?} (supported {min}-{max})"
        ));
    }
    let authenticated = session.principal().is_some();
    if !authenticated
        && !matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Err(format!(
            "{api_key:?} request before SASL authentication on a {} listener",
            session.listener.name()
        ));
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    let request = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))?;
    if frame.has_remaining() {
        // Some clients append fields of newer schemas (librdkafka 2.16 sends 3 extra bytes with
        // Metadata v12); like Kafka, ignore what follows a fully decoded request.
        tracing::debug!(api = ?api_key, version, extra = frame.remaining(), "ignoring trailing request bytes");
    }
    let response = match request {
        RequestKind::SaslHandshake(request) => {
            let security = broker.config.security.current();
            let offered: &[SaslMechanism] = if session.listener.sasl() {
                &security.mechanisms
            } else {
                &[]
            };
            let error = session
                .auth
                .handshake(request.mechanism.as_str(), version, offered)
                .err()
                .unwrap_or(hdi_kafka_client::codes::NONE);
            session.closing = error != hdi_kafka_client::codes::NONE;
            ResponseKind::SaslHandshake(handlers::sasl_handshake_response(error, offered))
        }
        RequestKind::SaslAuthenticate(request) => {
            let mechanism = match &session.auth {
                Auth::Tokens { mechanism, .. } => Some(*mechanism),
                _ => None,
            };
            let outcome = match mechanism {
                None => Token::Failed("SaslAuthenticate before SaslHandshake".into()),
                Some(_) => session.auth.token(
                    &request.auth_bytes,
                    |user, m| credential(broker, user, m),
                    oauth,
                    now,
                ),
            };
            let response = match outcome {
                Token::Continue(reply) => handlers::sasl_authenticate_response(0, None, reply, 0),
                Token::Done {
                    principal,
                    reply,
                    expires_at,
                } => {
                    tracing::debug!(%peer, %principal, "authenticated");
                    session.expires_at = expires_at;
                    // KIP-368: the client re-authenticates before its token expires.
                    let lifetime_ms = expires_at.map_or(0, |at| (at - now).max(1) * 1000);
                    handlers::sasl_authenticate_response(0, None, reply, lifetime_ms)
                }
                Token::Failed(reason) => {
                    tracing::info!(%peer, %reason, "SASL authentication failed");
                    session.closing = true;
                    let code = if mechanism.is_some() {
                        hdi_kafka_client::codes::SASL_AUTHENTICATION_FAILED
                    } else {
                        hdi_kafka_client::codes::ILLEGAL_SASL_STATE
                    };
                    // SCRAM and PLAIN say nothing more (which names exist is nobody's
                    // business); a bearer token's holder may learn why it was refused.
                    let message = match mechanism {
                        Some(SaslMechanism::OauthBearer) => {
                            format!("Authentication failed: invalid bearer token ({reason})")
                        }
                        Some(m) => crate::security::sasl::failure(m),
                        None => reason,
                    };
                    handlers::sasl_authenticate_response(code, Some(message), Vec::new(), 0)
                }
            };
            ResponseKind::SaslAuthenticate(response)
        }
        request => {
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            let context = handlers::Context {
                broker,
                version,
                client_id,
                peer,
                principal: session.principal().unwrap_or_default().to_owned(),
                listener: session.listener.name(),
                throttle_ms: std::sync::atomic::AtomicU64::new(0),
            };
            // A request quota (KIP-124) meters the CPU time of handling the request.
            let request_quota = context.has_quota(REQUEST_PERCENTAGE);
            let (outcome, cpu) = if request_quota {
                crate::security::quota::cpu_timed(handlers::dispatch(&context, request)).await
            } else {
                (handlers::dispatch(&context, request).await, Duration::ZERO)
            };
            let request_throttle = if request_quota {
                let nanos = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
                context.quota(REQUEST_PERCENTAGE, nanos)
            } else {
                0
            };
            session.mute = Duration::from_millis(
                context
                    .throttle_ms
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            match outcome {
                handlers::Outcome::Respond(mut response) => {
                    if request_throttle > 0 {
                        handlers::set_throttle_time(&mut response, request_throttle);
                    }
                    response
                }
                handlers::Outcome::NoResponse => return Ok(None),
                handlers::Outcome::Close(reason) => return Err(reason),
            }
        }
    };
    encode(
        correlation_id,
        api_key.response_header_version(version),
        &response,
        version,
    )
    .map(Some)
}

fn encode(
    correlation_id: i32,
    header_version: i16,
    response: &kafka_protocol::messages::ResponseKind,
    version: i16,
) -> Result<Bytes, String> {
    // Encode in place after a length placeholder: no second copy of a large fetch response.
    let mut out = BytesMut::new();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("cannot encode response header: {e}"))?;
    response
        .encode(&mut out, version)
        .map_err(|e| format!("cannot encode response: {e}"))?;
    let length =
        i32::try_from(out.len() - 4).map_err(|_| "response larger than 2 GiB".to_owned())?;
    out[0..4].copy_from_slice(&length.to_be_bytes());
    Ok(out.freeze())
}
