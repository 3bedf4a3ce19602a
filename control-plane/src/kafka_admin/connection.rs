//! One Kafka protocol connection: length-prefixed frames, request headers, correlation ids and
//! checked decoding of the answers. Timeouts are the caller's (`tokio::time::timeout_at`).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response frame accepted (the broker's own request limit is 100 MiB too).
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// A request this client sends, with its API key and response type. (`kafka-protocol`'s own
/// `Request` trait needs its `broker` feature, which would compile the server halves too.)
pub(super) trait AdminRequest: Encodable + HeaderVersion {
    /// The API key.
    const KEY: ApiKey;
    /// The response type.
    type Response: Decodable + HeaderVersion;
}

macro_rules! admin_requests {
    ($($key:ident: $request:ty => $response:ty,)*) => {
        $(impl AdminRequest for $request {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $response;
        })*
    };
}

admin_requests! {
    Metadata: MetadataRequest => MetadataResponse,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
}

/// A broker address's connection, `None` until connected or after a failure.
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Why a call on a connection failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    /// Reading or writing the socket failed (including the peer closing it).
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes received are not a valid answer.
    #[error("{0}")]
    Invalid(String),
}

impl CallError {
    /// Whether the socket failed (as opposed to a bad answer).
    pub(super) fn is_io(&self) -> bool {
        matches!(self, CallError::Io(_))
    }
}

/// A connection to one broker.
#[derive(Debug)]
pub(super) struct Connection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Connection {
    /// Connects to `addr` (`host:port`).
    pub(super) async fn connect(addr: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Sends `request` at `version` and reads its response.
    pub(super) async fn call<R: AdminRequest>(
        &mut self,
        request: &R,
        version: i16,
        client_id: &str,
        api: &str,
    ) -> Result<R::Response, CallError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let frame = encode(request, version, correlation_id, client_id)
            .map_err(|e| CallError::Invalid(format!("{api} v{version}: cannot encode: {e}")))?;
        self.stream.write_all(&frame).await?;
        let mut body = self.read_frame(api).await?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version).map_err(|e| {
            CallError::Invalid(format!("{api} v{version}: bad response header: {e}"))
        })?;
        if header.correlation_id != correlation_id {
            return Err(CallError::Invalid(format!(
                "{api} v{version}: response to request {} where {correlation_id} was expected",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| CallError::Invalid(format!("{api} v{version}: bad response: {e}")))
    }

    async fn read_frame(&mut self, api: &str) -> Result<Bytes, CallError> {
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                CallError::Invalid(format!(
                    "{api}: response frame size {size} outside 0..={MAX_RESPONSE_BYTES}"
                ))
            })?;
        let mut body = vec![0; size];
        self.stream.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }
}

/// The request frame: size, header (v1 or v2 as the API version requires), body.
fn encode<R: AdminRequest>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> anyhow::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, R::header_version(version))?;
    request.encode(&mut frame, version)?;
    let size = i32::try_from(frame.len() - 4)?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

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

    fn response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut frame = BytesMut::new();
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let mut rest = BytesMut::new();
        header
            .encode(&mut rest, MetadataResponse::header_version(12))
            .expect("header");
        rest.extend_from_slice(body);
        frame.put_i32(i32::try_from(rest.len()).expect("len"));
        frame.extend_from_slice(&rest);
        frame.to_vec()
    }

    fn all_topics() -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false)
    }

    /// Metadata v12: throttle 0, no brokers, null cluster id, controller 7, no topics, no tags.
    const METADATA_V12: &[u8] = &[0, 0, 0, 0, 1, 0, 0, 0, 0, 7, 1, 0];

    #[tokio::test]
    async fn decodes_a_well_formed_answer() {
        let addr = fake_broker(|id| response_frame(id, METADATA_V12)).await;
        let mut connection = Connection::connect(&addr).await.expect("connect");
        let response = connection
            .call(&all_topics(), 12, "test", "Metadata")
            .await
            .expect("call");
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
            let mut connection = Connection::connect(&addr).await.expect("connect");
            let error = connection
                .call(&all_topics(), 12, "test", "Metadata")
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
        let mut connection = Connection::connect(&addr).await.expect("connect");
        let error = connection
            .call(&all_topics(), 12, "test", "Metadata")
            .await
            .expect_err("no answer");
        assert!(error.is_io(), "{error}");
    }
}
