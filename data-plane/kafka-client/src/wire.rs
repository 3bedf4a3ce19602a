//! The sans-IO half of a Kafka client: the request trait, request frames, and checked decoding
//! of response frames (bounded size, matching correlation id). No sockets, no timeouts.

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeAclsRequest, DescribeAclsResponse,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A request hdi sends as a client, with its API key and response type. (`kafka-protocol`'s own
/// `Request` trait needs its `broker` feature, which would compile the server halves too.) Header
/// versions come from the key ([`ApiKey::request_header_version`]).
pub trait Request: Encodable {
    /// The API key.
    const KEY: ApiKey;
    /// The response type.
    type Response: Decodable;
}

macro_rules! requests {
    ($($key:ident: $request:ty => $response:ty,)*) => {
        $(impl Request for $request {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $response;
        })*

        /// The API of every request hdi sends as a client (the decoder fuzz test seeds each).
        pub const REQUEST_KEYS: &[ApiKey] = &[$(ApiKey::$key),*];

        /// Checks, for every request above and every version it has, that the header versions
        /// by key are the ones the message types declare.
        #[cfg(test)]
        fn check_header_versions() {
            use kafka_protocol::protocol::{HeaderVersion, Message};
            $(for version in <$request as Message>::VERSIONS.min..=<$request as Message>::VERSIONS.max {
                assert_eq!(
                    ApiKey::$key.request_header_version(version),
                    <$request as HeaderVersion>::header_version(version),
                    "{:?} v{version} request", ApiKey::$key,
                );
                assert_eq!(
                    ApiKey::$key.response_header_version(version),
                    <$response as HeaderVersion>::header_version(version),
                    "{:?} v{version} response", ApiKey::$key,
                );
            })*
        }
    };
}

requests! {
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse,
    Metadata: MetadataRequest => MetadataResponse,
    Produce: ProduceRequest => ProduceResponse,
    Fetch: FetchRequest => FetchResponse,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
    DescribeClientQuotas: DescribeClientQuotasRequest => DescribeClientQuotasResponse,
    AlterClientQuotas: AlterClientQuotasRequest => AlterClientQuotasResponse,
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse,
    CreateAcls: CreateAclsRequest => CreateAclsResponse,
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse,
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse,
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
    ListGroups: ListGroupsRequest => ListGroupsResponse,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse,
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse,
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse,
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse,
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse,
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the socket failed (including the peer closing it).
    #[error("connection failed: {0}")]
    Io(std::io::Error),
    /// The request could not be encoded, or the bytes received are not a valid answer: an
    /// oversized or negative frame, an undecodable header or body, a mismatched correlation id.
    #[error("{0}")]
    Invalid(String),
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::Io(error)
    }
}

impl Error {
    /// Whether the socket failed (as opposed to a bad request or answer).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io(_))
    }
}

/// Correlation ids of one connection: 1, 2, …, wrapping to 1 (never 0 or negative).
#[derive(Debug)]
pub struct CorrelationIds(i32);

impl Default for CorrelationIds {
    fn default() -> CorrelationIds {
        CorrelationIds(1)
    }
}

impl CorrelationIds {
    /// The id for the next request.
    pub fn next_id(&mut self) -> i32 {
        let id = self.0;
        self.0 = self.0.wrapping_add(1).max(1);
        id
    }
}

/// The frame of `request` at `version`: size, header (the version the API version requires),
/// body.
///
/// # Errors
/// [`Error::Invalid`] when a field does not fit the version.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<BytesMut, Error> {
    encode_request_with(R::KEY, version, correlation_id, client_id, |frame| {
        request.encode(frame, version)
    })
}

/// The frame of a request whose body `encode_body` writes (for request types not known until
/// run time, such as `kafka_protocol::messages::RequestKind`).
///
/// # Errors
/// [`Error::Invalid`] when the header or body cannot be encoded.
pub fn encode_request_with(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    encode_body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> Result<BytesMut, Error> {
    let invalid =
        |e: anyhow::Error| Error::Invalid(format!("{key:?} v{version}: cannot encode: {e}"));
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_owned())));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, key.request_header_version(version))
        .map_err(invalid)?;
    encode_body(&mut frame).map_err(invalid)?;
    let size = i32::try_from(frame.len() - 4)
        .map_err(|_| Error::Invalid(format!("{key:?} v{version}: request over 2 GiB")))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

/// The size of a response frame from its 4-byte prefix, if within `0..=max_frame`.
///
/// # Errors
/// [`Error::Invalid`] for a negative or larger size.
pub fn response_size(key: ApiKey, prefix: [u8; 4], max_frame: usize) -> Result<usize, Error> {
    let size = i32::from_be_bytes(prefix);
    usize::try_from(size)
        .ok()
        .filter(|s| *s <= max_frame)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{key:?}: response frame size {size} outside 0..={max_frame}"
            ))
        })
}

/// Decodes the response to `R` at `version` from a frame's bytes after the size prefix, checking
/// that it answers request `correlation_id`.
///
/// # Errors
/// [`Error::Invalid`] for an undecodable header or body or another correlation id.
pub fn decode_response<R: Request>(
    body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, Error> {
    decode_response_as(R::KEY, body, version, correlation_id)
}

/// [`decode_response`] for a response type not tied to a [`Request`] at compile time.
///
/// # Errors
/// As [`decode_response`].
pub fn decode_response_as<T: Decodable>(
    key: ApiKey,
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<T, Error> {
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .map_err(|e| Error::Invalid(format!("{key:?} v{version}: bad response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(Error::Invalid(format!(
            "{key:?} v{version}: response to request {} where {correlation_id} was expected",
            header.correlation_id
        )));
    }
    T::decode(&mut body, version)
        .map_err(|e| Error::Invalid(format!("{key:?} v{version}: bad response: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::protocol::HeaderVersion as _;

    /// A response frame (size prefix included) answering `correlation_id` with `body`, as a
    /// Metadata v12 response would be framed.
    pub(crate) fn response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut rest = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut rest, MetadataResponse::header_version(12))
            .expect("header");
        rest.extend_from_slice(body);
        let mut frame = BytesMut::new();
        frame.put_i32(i32::try_from(rest.len()).expect("len"));
        frame.extend_from_slice(&rest);
        frame.to_vec()
    }

    /// Every topic, no auto-creation: a Metadata v12 request body of `[0, 0, 0, 0]`.
    pub(crate) fn all_topics() -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false)
    }

    /// Metadata v12: throttle 0, no brokers, null cluster id, controller 7, no topics, no tags.
    pub(crate) const METADATA_V12: &[u8] = &[0, 0, 0, 0, 1, 0, 0, 0, 0, 7, 1, 0];

    #[test]
    fn header_versions_by_key_are_the_message_types() {
        check_header_versions();
    }

    #[test]
    fn a_request_frame_is_size_header_body() {
        let frame = encode_request(&all_topics(), 12, 9, Some("test")).expect("encode");
        let size = usize::try_from(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
            .expect("size");
        assert_eq!(size, frame.len() - 4);
        let mut rest = frame.freeze().slice(4..);
        let header =
            kafka_protocol::protocol::decode_request_header_from_buffer(&mut rest).expect("header");
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.correlation_id, 9);
        assert_eq!(header.client_id.as_deref(), Some("test"));
        assert_eq!(&rest[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn a_well_formed_response_decodes() {
        let frame = Bytes::from(response_frame(3, METADATA_V12));
        let size = response_size(
            ApiKey::Metadata,
            [frame[0], frame[1], frame[2], frame[3]],
            100,
        )
        .expect("size");
        assert_eq!(size, frame.len() - 4);
        let response = decode_response::<MetadataRequest>(frame.slice(4..), 12, 3).expect("decode");
        assert_eq!(response.controller_id.0, 7);
    }

    #[test]
    fn bad_responses_are_invalid_not_panics() {
        for body in [
            // Truncated.
            &METADATA_V12[..7],
            // A huge array count.
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07][..],
        ] {
            let frame = Bytes::from(response_frame(3, body));
            let error = decode_response::<MetadataRequest>(frame.slice(4..), 12, 3)
                .expect_err("must not decode");
            assert!(!error.is_io(), "{error}");
        }
        let frame = Bytes::from(response_frame(4, METADATA_V12));
        let error = decode_response::<MetadataRequest>(frame.slice(4..), 12, 3)
            .expect_err("another correlation id");
        assert!(
            error.to_string().contains("where 3 was expected"),
            "{error}"
        );
        for size in [-5i32, 101] {
            assert!(response_size(ApiKey::Metadata, size.to_be_bytes(), 100).is_err());
        }
    }

    #[test]
    fn correlation_ids_skip_zero_and_negatives() {
        let mut ids = CorrelationIds(i32::MAX);
        assert_eq!(ids.next_id(), i32::MAX);
        assert_eq!(ids.next_id(), 1);
        assert_eq!(CorrelationIds::default().next_id(), 1);
    }
}
