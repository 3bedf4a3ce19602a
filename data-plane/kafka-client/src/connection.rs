//! An async (tokio) connection to one broker: one request at a time, answered in order. Thin over
//! [`crate::wire`]; timeouts are the caller's (`tokio::time::timeout_at` around a call), and so
//! are retries and routing.

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::wire::{self, CorrelationIds, Error, Request};

/// A connection to one broker.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    client_id: String,
    max_frame: usize,
    correlation_ids: CorrelationIds,
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

    /// A connection over `stream`, as [`Connection::connect`] makes it.
    pub fn new(stream: TcpStream, client_id: &str, max_frame: usize) -> Connection {
        Connection {
            stream,
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
    use kafka_protocol::messages::ApiKey;
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

    #[tokio::test]
    async fn decodes_a_well_formed_answer() {
        let addr = fake_broker(|id| response_frame(id, METADATA_V12)).await;
        let mut connection = Connection::connect(&addr, "test", MAX_FRAME)
            .await
            .expect("connect");
        let response = connection.call(&all_topics(), 12).await.expect("call");
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
            let mut connection = Connection::connect(&addr, "test", MAX_FRAME)
                .await
                .expect("connect");
            let error = connection
                .call(&all_topics(), 12)
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
        let mut connection = Connection::connect(&addr, "test", MAX_FRAME)
            .await
            .expect("connect");
        let error = connection
            .call(&all_topics(), 12)
            .await
            .expect_err("no answer");
        assert!(error.is_io(), "{error}");
    }
}
