//! The Kafka protocol server, the top of the broker: accepts connections, frames requests (4-byte
//! length prefix), decodes headers and bodies with `kafka-protocol`, dispatches to
//! [`crate::handlers`], and writes responses in request order. Also the quorum listener's
//! dispatch (Raft, proposals, heartbeats, replica fetches).
//!
//! Malformed input never takes the broker down: a frame larger than `socket.request.max.bytes`,
//! an unknown API key, an unsupported version (other than ApiVersions, which answers
//! UNSUPPORTED_VERSION with the supported list, as Kafka does) or an undecodable request closes
//! that connection only, with a log line saying why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::broker::Broker;
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
    use crate::cluster::rpc::{Request, read_frame, write_response};
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
                let (answers, chunks) = replication::serve_fetch(broker, &fetch).await;
                write_response(&mut stream, &answers, &chunks).await?;
            }
            Request::EpochEnd(request) => {
                let answer = replication::serve_epoch_end(broker, &request);
                write_response(&mut stream, &answer, &[]).await?;
            }
        }
    }
}

/// Accepts clients until the task is dropped.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let broker = Arc::clone(&broker);
                tokio::spawn(async move {
                    if let Err(reason) = connection(broker, stream, peer).await {
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

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    loop {
        let length = match reader.read_i32().await {
            Ok(length) => length,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error.to_string()),
        };
        if length < 8 || length as usize > broker.config.max_request_bytes {
            tracing::warn!(%peer, length, "closing connection: request frame size out of bounds");
            return Err(format!("frame of {length} bytes"));
        }
        let mut frame = BytesMut::zeroed(length as usize);
        reader
            .read_exact(&mut frame)
            .await
            .map_err(|e| e.to_string())?;
        match handle_frame(&broker, frame.freeze(), peer).await {
            Ok(Some(response)) => writer
                .write_all(&response)
                .await
                .map_err(|e| e.to_string())?,
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                return Err(reason);
            }
        }
    }
}

/// Decodes one request frame and produces the response frame (`None` for acks=0 produce).
///
/// # Errors
/// Why the connection must be closed.
pub async fn handle_frame(
    broker: &Broker,
    mut frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Bytes>, String> {
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
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    let request = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))?;
    if frame.has_remaining() {
        // Some clients append fields of newer schemas (librdkafka 2.16 sends 3 extra bytes with
        // Metadata v12); like Kafka, ignore what follows a fully decoded request.
        tracing::debug!(api = ?api_key, version, extra = frame.remaining(), "ignoring trailing request bytes");
    }
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
    };
    let response = match handlers::dispatch(&context, request).await {
        handlers::Outcome::Respond(response) => response,
        handlers::Outcome::NoResponse => return Ok(None),
        handlers::Outcome::Close(reason) => return Err(reason),
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
