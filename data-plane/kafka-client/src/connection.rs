//! An async (tokio) connection to one broker: one request at a time, answered in order. Thin over
//! [`crate::wire`]; timeouts are the caller's (`tokio::time::timeout_at` around a call), and so
//! are retries and routing. [`Connection::connect_secure`] speaks to `SSL`, `SASL_PLAINTEXT`
//! and `SASL_SSL` listeners: TLS first (rustls), then `SaslHandshake` v1 and `SaslAuthenticate`
//! with PLAIN or SCRAM (the server's signature is checked).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::scram::{Exchange, Hash};
use crate::wire::{self, CorrelationIds, Error, Request};

/// Any byte stream a connection runs on.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// How to reach a secured listener.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS: the configuration (trusted roots, optionally a client certificate) and the name to
    /// verify the broker's certificate against.
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// SASL: the mechanism and credentials.
    pub sasl: Option<SaslLogin>,
}

impl Security {
    /// What connecting to `address` (`host:port`, `[v6]:port`) needs: TLS trusting `tls`
    /// (the host is the name verified) and the SASL login, each when given.
    ///
    /// # Errors
    /// A host that is not a valid TLS server name.
    pub fn for_address(
        address: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
        sasl: Option<&SaslLogin>,
    ) -> Result<Security, String> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("{address}: not a TLS server name: {e}"))?;
                Some((Arc::clone(config), name))
            }
        };
        Ok(Security {
            tls,
            sasl: sasl.cloned(),
        })
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// A SASL mechanism and its credentials.
#[derive(Clone)]
pub struct SaslLogin {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A connection to one broker.
pub struct Connection {
    stream: Box<dyn Io>,
    client_id: String,
    max_frame: usize,
    correlation_ids: CorrelationIds,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`, no delay). Requests carry `client_id`; responses over
    /// `max_frame` bytes are refused.
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        max_frame: usize,
    ) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection::new(stream, client_id, max_frame))
    }

    /// Connects to `addr` and secures the connection as `security` says (TLS, then SASL).
    ///
    /// # Errors
    /// [`Error::Io`] when the connection or the TLS handshake fails; [`Error::Invalid`] when
    /// authentication is refused (with the broker's message) or the mechanism is unknown.
    pub async fn connect_secure(
        addr: &str,
        client_id: &str,
        max_frame: usize,
        security: &Security,
    ) -> Result<Connection, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream: Box<dyn Io> = match &security.tls {
            Some((config, name)) => Box::new(
                tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), stream)
                    .await?,
            ),
            None => Box::new(stream),
        };
        let mut connection = Connection {
            stream,
            client_id: client_id.to_owned(),
            max_frame,
            correlation_ids: CorrelationIds::default(),
        };
        if let Some(login) = &security.sasl {
            connection.authenticate(login).await?;
        }
        Ok(connection)
    }

    async fn authenticate(&mut self, login: &SaslLogin) -> Result<(), Error> {
        let refused = |what: &str| Error::Invalid(format!("SASL {}: {what}", login.mechanism));
        let hash = match login.mechanism.as_str() {
            "PLAIN" => None,
            "SCRAM-SHA-256" => Some(Hash::Sha256),
            "SCRAM-SHA-512" => Some(Hash::Sha512),
            other => return Err(Error::Invalid(format!("unknown SASL mechanism {other:?}"))),
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(login.mechanism.clone()));
        let answer = self.call(&handshake, 1).await?;
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(&format!(
                "not offered by the broker ({}; it offers {offered:?})",
                crate::codes::error_name(answer.error_code)
            )));
        }
        let step =
            |token: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let check = |answer: &kafka_protocol::messages::SaslAuthenticateResponse| {
            if answer.error_code == 0 {
                Ok(())
            } else {
                Err(refused(&format!(
                    "{} ({})",
                    answer
                        .error_message
                        .as_ref()
                        .map_or("refused", |m| m.as_str()),
                    crate::codes::error_name(answer.error_code)
                )))
            }
        };
        let Some(hash) = hash else {
            let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
            let answer = self.call(&step(token), 2).await?;
            return check(&answer);
        };
        let (mut exchange, first) =
            Exchange::start(hash, &login.username).map_err(|e| refused(&e))?;
        let answer = self.call(&step(first.into_bytes()), 2).await?;
        check(&answer)?;
        let last = exchange
            .respond(&login.password, &answer.auth_bytes)
            .map_err(|e| refused(&e))?;
        let answer = self.call(&step(last.into_bytes()), 2).await?;
        check(&answer)?;
        exchange.verify(&answer.auth_bytes).map_err(|e| refused(&e))
    }

    /// A connection over `stream`, as [`Connection::connect`] makes it.
    pub fn new(stream: TcpStream, client_id: &str, max_frame: usize) -> Connection {
        Connection {
            stream: Box::new(stream),
            client_id: client_id.to_owned(),
            max_frame,
            correlation_ids: CorrelationIds::default(),
        }
    }

    /// Sends `request` at `version` and reads its response. After an error the connection's
    /// state is unknown: drop it.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket fails, [`Error::Invalid`] for a bad answer.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, Error> {
        let correlation_id = self.correlation_ids.next_id();
        let frame = wire::encode_request(request, version, correlation_id, Some(&self.client_id))?;
        self.stream.write_all(&frame).await?;
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix).await?;
        let size = wire::response_size(R::KEY, prefix, self.max_frame)?;
        let mut body = vec![0; size];
        self.stream.read_exact(&mut body).await?;
        wire::decode_response::<R>(Bytes::from(body), version, correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{METADATA_V12, all_topics, response_frame};
    use kafka_protocol::messages::{ApiKey, MetadataResponse};
    use tokio::net::TcpListener;

    const MAX_FRAME: usize = 100 * 1024 * 1024;

    /// A one-shot fake broker: reads one Metadata request, answers with `reply(correlation_id)`.
    async fn fake_broker(reply: impl FnOnce(i32) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let size = stream.read_i32().await.expect("size");
            let mut body = vec![0; usize::try_from(size).expect("size")];
            stream.read_exact(&mut body).await.expect("body");
            let mut body = Bytes::from(body);
            let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)
                .expect("header");
            assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
            assert_eq!(header.request_api_version, 12);
            assert_eq!(header.client_id.as_deref(), Some("test"));
            // v12 body: topics = null (all), allow_auto_topic_creation, include_topic_authorized_operations, no tags.
            assert_eq!(&body[..], &[0, 0, 0, 0]);
            let _ = stream.write_all(&reply(header.correlation_id)).await;
            // Keep the socket open until the client is done.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        });
        addr
    }

    /// Connects to `addr` and asks for Metadata v12 of every topic.
    async fn call_all_topics(addr: &str) -> Result<MetadataResponse, Error> {
        let mut connection = Connection::connect(addr, "test", MAX_FRAME)
            .await
            .expect("connect");
        connection.call(&all_topics(), 12).await
    }

    #[tokio::test]
    async fn decodes_a_well_formed_answer() {
        let addr = fake_broker(|id| response_frame(id, METADATA_V12)).await;
        let response = call_all_topics(&addr).await.expect("call");
        assert_eq!(response.controller_id.0, 7);
    }

    #[tokio::test]
    async fn rejects_garbage_without_panicking() {
        // A truncated body, a wrong correlation id, a huge array count, a negative and a huge
        // frame size.
        let cases: Vec<Box<dyn FnOnce(i32) -> Vec<u8> + Send>> = vec![
            Box::new(|id| response_frame(id, &METADATA_V12[..7])),
            Box::new(|id| response_frame(id + 1, METADATA_V12)),
            Box::new(|id| response_frame(id, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07])),
            Box::new(|_| (-5i32).to_be_bytes().to_vec()),
            Box::new(|_| i32::MAX.to_be_bytes().to_vec()),
        ];
        for reply in cases {
            let addr = fake_broker(reply).await;
            let error = call_all_topics(&addr)
                .await
                .expect_err("garbage must not decode");
            assert!(!error.is_io(), "{error}");
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_an_io_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut size = [0; 4];
            let _ = stream.read_exact(&mut size).await;
            // Closed without an answer.
        });
        let error = call_all_topics(&addr).await.expect_err("no answer");
        assert!(error.is_io(), "{error}");
    }
}
