//! Deterministic fuzzing of what hdi-kafka-client decodes from a broker (as the broker's
//! `security_fuzz.rs` and `bad_input.rs` do for what it decodes from clients): response frames
//! through `wire::response_size` and `wire::decode_response`, through both connections'
//! `call` over a socket (features `blocking` and `tokio`), and SCRAM server messages through
//! `scram::Exchange::respond` and `verify` (feature `tokio`). Valid responses of every request
//! type at every version must round-trip; truncations, bit flips, insertions, Kafka-shaped
//! integer swaps and random bytes must answer an error or a value, never panic, and never read
//! past the frame bound.
#![allow(clippy::unwrap_used, reason = "tests")]

use bytes::{BufMut as _, Bytes, BytesMut};
use hdi_kafka_client::wire::{self, Request};
use hdi_kafka_client::{Error, codes};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Message, StrBytes};

/// The frame bound the fuzzed decoders are given.
const MAX_FRAME: usize = 4096;

/// The correlation id of every seed: a connection's first request has id 1.
const CORRELATION_ID: i32 = 1;

/// splitmix64: the same cases every run, on every platform.
struct Prng(u64);

impl Prng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (0 when `n` is 0).
    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    /// Random bytes, `min..=max` of them.
    fn bytes(&mut self, min: usize, max: usize) -> Vec<u8> {
        let len = min + self.index(max + 1 - min);
        (0..len).map(|_| self.next_u64().to_le_bytes()[0]).collect()
    }
}

/// A Kafka-shaped mutation of `valid`: a strict truncation, bit flips, an inserted run, a 4-byte
/// integer (a size, a count, a length) swapped for a boundary value, a deleted run, or random
/// bytes of any length.
fn mutate(valid: &[u8], prng: &mut Prng) -> Vec<u8> {
    let mut out = valid.to_vec();
    let len = out.len();
    match prng.index(6) {
        0 => out.truncate(prng.index(len)),
        1 => {
            for _ in 0..=prng.index(3) {
                if let Some(byte) = out.get_mut(prng.index(len)) {
                    *byte ^= 1 << prng.index(8);
                }
            }
        }
        2 => {
            let run = prng.bytes(1, 12);
            let at = prng.index(len + 1);
            out.splice(at..at, run);
        }
        3 if len >= 4 => {
            const BOUNDARIES: [i32; 8] = [-1, 0, 1, 0x7f, 0xff, 0x7fff, i32::MAX, i32::MIN];
            let at = prng.index(len - 3);
            let value = BOUNDARIES[prng.index(BOUNDARIES.len())];
            out[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
        4 if len > 0 => {
            let at = prng.index(len);
            let end = (at + 1 + prng.index(8)).min(len);
            out.drain(at..end);
        }
        _ => out = prng.bytes(0, 160),
    }
    out
}

/// `response` to `R`'s key at `version`, framed (size prefix, header, body) as an answer to
/// `correlation_id`, or `None` where a field of `response` does not exist at `version`.
fn response_frame<R: Request>(
    response: &R::Response,
    version: i16,
    correlation_id: i32,
) -> Option<Vec<u8>>
where
    R::Response: Encodable,
{
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, R::KEY.response_header_version(version))
        .unwrap();
    response.encode(&mut frame, version).ok()?;
    let size = i32::try_from(frame.len() - 4).unwrap();
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Some(frame.to_vec())
}

/// A valid frame and the checks of what a decoder makes of its mutations.
struct Seed {
    key: ApiKey,
    version: i16,
    frame: Vec<u8>,
    /// Decodes a body (the bytes after the size prefix); on success re-encodes the value and
    /// asserts that it decodes to itself.
    decode: Box<dyn Fn(Bytes) -> Result<(), Error>>,
}

/// Decodes `body` as `R`'s response at `version`; on success, asserts that the value re-encodes
/// and decodes to itself (older versions drop some fields silently, so a value is exact only at
/// versions that have all its fields; what a version does decode is a fixed point).
fn decode_fixed_point<R: Request>(body: Bytes, version: i16) -> Result<R::Response, Error>
where
    R::Response: Encodable + PartialEq + std::fmt::Debug,
{
    let value = wire::decode_response::<R>(body, version, CORRELATION_ID)?;
    let again = response_frame::<R>(&value, version, CORRELATION_ID)
        .unwrap_or_else(|| panic!("{:?} v{version}: a decoded value re-encodes", R::KEY));
    let back =
        wire::decode_response::<R>(Bytes::from(again[4..].to_vec()), version, CORRELATION_ID)
            .unwrap_or_else(|e| panic!("{:?} v{version}: a re-encoded value decodes: {e}", R::KEY));
    assert_eq!(back, value, "{:?} v{version} re-encoded", R::KEY);
    Ok(value)
}

/// The seeds of `response` at every version of `R`'s response where it encodes, after checking
/// that each decodes (to a fixed point), and to `response` itself at `used_at`, the version hdi
/// calls with.
fn seeds_of<R: Request + 'static>(response: &R::Response, used_at: i16, seeds: &mut Vec<Seed>)
where
    R::Response: Encodable + Message + PartialEq + std::fmt::Debug + 'static,
{
    let versions = <R::Response as Message>::VERSIONS;
    assert!(versions.min <= used_at && used_at <= versions.max);
    for version in versions.min..=versions.max {
        let frame = response_frame::<R>(response, version, CORRELATION_ID);
        let Some(frame) = frame.filter(|_| version != used_at) else {
            continue;
        };
        decode_fixed_point::<R>(Bytes::from(frame[4..].to_vec()), version)
            .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", R::KEY));
        seeds.push(Seed {
            key: R::KEY,
            version,
            frame,
            decode: Box::new(move |body| decode_fixed_point::<R>(body, version).map(|_| ())),
        });
    }
    let frame = response_frame::<R>(response, used_at, CORRELATION_ID)
        .unwrap_or_else(|| panic!("{:?} must encode at v{used_at}", R::KEY));
    let decoded = decode_fixed_point::<R>(Bytes::from(frame[4..].to_vec()), used_at)
        .unwrap_or_else(|e| panic!("{:?} v{used_at}: {e}", R::KEY));
    assert_eq!(&decoded, response, "{:?} v{used_at} round trip", R::KEY);
    seeds.push(Seed {
        key: R::KEY,
        version: used_at,
        frame,
        decode: Box::new(move |body| decode_fixed_point::<R>(body, used_at).map(|_| ())),
    });
}

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

/// A Metadata answer with a broker, a cluster id and a topic of two partitions.
fn metadata() -> MetadataResponse {
    let partition = |index: i32| {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(1))
            .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
            .with_isr_nodes(vec![BrokerId(1)])
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(s("broker-1"))
                .with_port(9092),
        ])
        .with_controller_id(BrokerId(1))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(s("orders"))))
                .with_partitions(vec![partition(0), partition(1)]),
        ])
}

/// Every seed: the default answer to each request type at every version (what a broker with
/// nothing to say sends), and answers with content for the calls hdi makes most, exact at the
/// versions the control plane (`kafka_admin`), the executor (`source/direct.rs`) and SASL login
/// call with.
fn all_seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    macro_rules! defaults {
        ($($request:ty: $at:literal),* $(,)?) => {
            $(seeds_of::<$request>(&Default::default(), $at, &mut seeds);)*
        };
    }
    defaults!(
        ApiVersionsRequest: 3,
        MetadataRequest: 12,
        ProduceRequest: 9,
        FetchRequest: 11,
        ListOffsetsRequest: 7,
        CreateTopicsRequest: 7,
        DeleteTopicsRequest: 6,
        CreatePartitionsRequest: 3,
        DescribeConfigsRequest: 4,
        IncrementalAlterConfigsRequest: 1,
        AlterPartitionReassignmentsRequest: 0,
        ListPartitionReassignmentsRequest: 0,
        DescribeClientQuotasRequest: 1,
        AlterClientQuotasRequest: 1,
        SaslHandshakeRequest: 1,
        SaslAuthenticateRequest: 2,
        CreateAclsRequest: 2,
        DescribeAclsRequest: 1,
        DeleteAclsRequest: 1,
        DescribeUserScramCredentialsRequest: 0,
        AlterUserScramCredentialsRequest: 0,
        // A broker's cluster links ask their sources with these.
        ListGroupsRequest: 3,
        FindCoordinatorRequest: 3,
        OffsetFetchRequest: 7,
        OffsetCommitRequest: 7,
        InitProducerIdRequest: 4,
        DeleteRecordsRequest: 1,
        // The control plane's consumer-group calls.
        ListGroupsRequest: 4,
        FindCoordinatorRequest: 3,
        DescribeGroupsRequest: 5,
        ListOffsetsRequest: 4,
        DeleteGroupsRequest: 2,
    );
    // The control plane's version, and the executor's.
    seeds_of::<MetadataRequest>(&metadata(), 12, &mut seeds);
    seeds_of::<MetadataRequest>(&metadata(), 8, &mut seeds);
    seeds_of::<ApiVersionsRequest>(
        &ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_max_version(12),
            ApiVersion::default()
                .with_api_key(ApiKey::Fetch as i16)
                .with_min_version(4)
                .with_max_version(12),
        ]),
        3,
        &mut seeds,
    );
    seeds_of::<FetchRequest>(
        &FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(s("orders")))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_high_watermark(42)
                        .with_records(Some(Bytes::from_static(b"not decoded here"))),
                ]),
        ]),
        11,
        &mut seeds,
    );
    seeds_of::<SaslHandshakeRequest>(
        &SaslHandshakeResponse::default()
            .with_error_code(codes::UNSUPPORTED_SASL_MECHANISM)
            .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512")]),
        1,
        &mut seeds,
    );
    seeds_of::<SaslAuthenticateRequest>(
        &SaslAuthenticateResponse::default()
            .with_error_message(Some(s("no")))
            .with_auth_bytes(Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096")),
        2,
        &mut seeds,
    );
    seeds
}

/// What a connection must answer for `reply` (the broker's whole answer before it closes):
/// `None` for an I/O error, else what [`wire`] makes of the frame it bounds.
#[cfg(any(feature = "blocking", feature = "tokio"))]
fn expected_call(seed: &Seed, reply: &[u8]) -> Option<Result<(), ()>> {
    let prefix: [u8; 4] = reply.get(..4)?.try_into().unwrap();
    let Ok(size) = wire::response_size(seed.key, prefix, MAX_FRAME) else {
        return Some(Err(()));
    };
    let body = reply.get(4..4 + size)?;
    Some((seed.decode)(Bytes::from(body.to_vec())).map_err(|_| ()))
}

/// Checks a connection's answer to `reply` against [`expected_call`].
#[cfg(any(feature = "blocking", feature = "tokio"))]
fn check_call(seed: &Seed, reply: &[u8], answer: Result<(), Error>) {
    match (expected_call(seed, reply), answer) {
        (None, Err(e)) => assert!(e.is_io(), "{e}"),
        (Some(Ok(())), Ok(())) => {}
        (Some(Err(())), Err(e)) => assert!(!e.is_io(), "{e}"),
        (expected, answer) => panic!(
            "{:?} v{}: expected {expected:?}, got {answer:?} for {reply:?}",
            seed.key, seed.version
        ),
    }
}

#[test]
fn valid_responses_round_trip_and_mutations_never_panic() {
    let seeds = all_seeds();
    let keys: std::collections::BTreeSet<i16> = seeds.iter().map(|seed| seed.key as i16).collect();
    let requests: std::collections::BTreeSet<i16> =
        wire::REQUEST_KEYS.iter().map(|key| *key as i16).collect();
    assert_eq!(keys, requests, "a seed for every request type");
    assert!(seeds.len() > 100, "{} seeds", seeds.len());
    let mut prng = Prng(0x6b61_666b_6121);
    let (mut decoded, mut refused) = (0, 0);
    for round in 0..30_000 {
        let seed = &seeds[round % seeds.len()];
        let bytes = mutate(&seed.frame, &mut prng);
        let Some(prefix) = bytes.get(..4) else {
            continue;
        };
        let prefix: [u8; 4] = prefix.try_into().unwrap();
        let declared = i32::from_be_bytes(prefix);
        match wire::response_size(seed.key, prefix, MAX_FRAME) {
            Ok(size) => assert!(
                size <= MAX_FRAME && i32::try_from(size) == Ok(declared),
                "size {size} from {declared}"
            ),
            Err(e) => assert!(
                !e.is_io() && !(0..=4096).contains(&declared),
                "{declared}: {e}"
            ),
        }
        let body = Bytes::from(bytes[4..].to_vec());
        let truncated = bytes.len() < seed.frame.len() && seed.frame.starts_with(&bytes);
        match (seed.decode)(body) {
            Ok(()) => {
                assert!(
                    !truncated,
                    "{:?} v{}: a truncated frame decoded",
                    seed.key, seed.version
                );
                decoded += 1;
            }
            Err(e) => {
                assert!(!e.is_io(), "{e}");
                refused += 1;
            }
        }
    }
    // The mutations reach the bodies: many still decode, many do not.
    assert!(
        decoded > 3_000 && refused > 3_000,
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn random_bytes_and_other_correlation_ids_are_errors() {
    let seeds = all_seeds();
    let mut prng = Prng(0x0bad_f00d);
    for round in 0..5_000 {
        let seed = &seeds[round % seeds.len()];
        let garbage = prng.bytes(0, 200);
        let error = (seed.decode)(Bytes::from(garbage)).expect_err("random bytes decoded");
        assert!(!error.is_io(), "{error}");
    }
    for seed in &seeds {
        let body = Bytes::from(seed.frame[4..].to_vec());
        for other in [CORRELATION_ID + 1, 0, -1] {
            let error = wire::decode_response_as::<ResponseHeader>(
                seed.key,
                body.clone(),
                seed.version,
                other,
            )
            .expect_err("another correlation id");
            assert!(
                error
                    .to_string()
                    .contains(&format!("where {other} was expected")),
                "{error}"
            );
        }
    }
}

#[test]
fn every_size_prefix_is_bounded() {
    for declared in [i32::MIN, -1, 0, 1, 4095, 4096, 4097, i32::MAX] {
        let size = wire::response_size(ApiKey::Fetch, declared.to_be_bytes(), MAX_FRAME);
        assert_eq!(
            size.ok(),
            usize::try_from(declared).ok().filter(|s| *s <= MAX_FRAME),
            "{declared}"
        );
    }
    let mut prng = Prng(17);
    for _ in 0..10_000 {
        let prefix = prng.next_u64().to_be_bytes();
        let prefix = [prefix[0] & 0x80, 0, prefix[1] & 0x1f, prefix[2]];
        let declared = i32::from_be_bytes(prefix);
        let size = wire::response_size(ApiKey::Metadata, prefix, MAX_FRAME);
        assert_eq!(
            size.is_ok(),
            (0..=4096).contains(&declared),
            "{declared}: {size:?}"
        );
    }
}

/// Fuzzes a connection: a fake broker answers each Metadata v12 request (on a fresh connection
/// each, which `call` makes to `addr` and sends on) with a mutated frame and closes; each call
/// must answer what the frame bound and [`wire`] make of the frame.
#[cfg(any(feature = "blocking", feature = "tokio"))]
fn fuzz_connection(
    prng: &mut Prng,
    mut call: impl FnMut(std::net::SocketAddr) -> Result<(), Error>,
) {
    use std::io::{Read as _, Write as _};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (replies, next_reply) = std::sync::mpsc::channel::<Vec<u8>>();
    let broker = std::thread::spawn(move || {
        for reply in next_reply {
            let (mut stream, _) = listener.accept().unwrap();
            let mut size = [0; 4];
            stream.read_exact(&mut size).unwrap();
            let mut request = vec![0; usize::try_from(i32::from_be_bytes(size)).unwrap()];
            stream.read_exact(&mut request).unwrap();
            // The client may already have given up on a frame over the bound.
            let _ = stream.write_all(&reply);
        }
    });
    let seeds: Vec<Seed> = all_seeds()
        .into_iter()
        .filter(|seed| seed.key == ApiKey::Metadata && seed.version == 12)
        .collect();
    for round in 0..300 {
        let seed = &seeds[round % seeds.len()];
        let reply = mutate(&seed.frame, prng);
        replies.send(reply.clone()).unwrap();
        check_call(seed, &reply, call(addr));
    }
    drop(replies);
    broker.join().unwrap();
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_connection_answers_what_wire_decodes() {
    fuzz_connection(&mut Prng(0xb10c), |addr| {
        let stream = std::net::TcpStream::connect(addr)?;
        let mut connection = hdi_kafka_client::blocking::Connection::new(stream, "fuzz", MAX_FRAME);
        connection.call(&MetadataRequest::default(), 12).map(|_| ())
    });
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_connection_answers_what_wire_decodes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fuzz_connection(&mut Prng(0xa57c), |addr| {
        runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let mut connection = hdi_kafka_client::Connection::new(stream, "fuzz", MAX_FRAME);
            connection
                .call(&MetadataRequest::default(), 12)
                .await
                .map(|_| ())
        })
    });
}

/// SCRAM's server messages, as a broker (or something posing as one) sends them.
#[cfg(feature = "tokio")]
mod scram {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use hdi_kafka_client::scram::{Credential, Exchange, Hash};
    use ring::hmac;

    use super::{Prng, mutate};

    const PASSWORD: &str = "pencil";

    /// An exchange for `alice` answered up to client-final (after [`valid_server_first`]), and
    /// the server-final a server that knows the password signs.
    fn answered(hash: Hash) -> (Exchange, String) {
        let credential = Credential::with_salt(hash, PASSWORD, b"salt".to_vec(), 4096).unwrap();
        let line = credential.users_file_line("alice");
        let server_key = B64.decode(line.rsplit(' ').next().unwrap()).unwrap();
        let (mut exchange, first) = Exchange::start(hash, "alice").unwrap();
        let first_bare = first.strip_prefix("n,,").unwrap();
        let client_nonce = first_bare.rsplit("r=").next().unwrap();
        let server_first = valid_server_first(client_nonce);
        let last = exchange.respond(PASSWORD, server_first.as_bytes()).unwrap();
        let (without_proof, _) = last.rsplit_once(",p=").unwrap();
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let algorithm = match hash {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        };
        let signature = hmac::sign(
            &hmac::Key::new(algorithm, &server_key),
            auth_message.as_bytes(),
        );
        (exchange, format!("v={}", B64.encode(signature)))
    }

    /// What a server that knows `alice` answers to client-first with `client_nonce`.
    fn valid_server_first(client_nonce: &str) -> String {
        format!("r={client_nonce}srv,s={},i=4096", B64.encode(b"salt"))
    }

    #[test]
    fn mutated_server_firsts_never_panic_and_keep_our_nonce() {
        let mut prng = Prng(0x5c7a_0001);
        for hash in [Hash::Sha256, Hash::Sha512] {
            let (mut exchange, first) = Exchange::start(hash, "alice").unwrap();
            let ours = first.rsplit("r=").next().unwrap().to_owned();
            let valid = valid_server_first(&ours);
            assert!(exchange.respond(PASSWORD, valid.as_bytes()).is_ok());
            for _ in 0..300 {
                let server_first = mutate(valid.as_bytes(), &mut prng);
                if let Ok(last) = exchange.respond(PASSWORD, &server_first) {
                    assert!(
                        last.starts_with(&format!("c=biws,r={ours}")),
                        "{last} for {server_first:?}"
                    );
                }
                let garbage = prng.bytes(0, 120);
                assert!(exchange.respond(PASSWORD, &garbage).is_err(), "{garbage:?}");
            }
        }
    }

    #[test]
    fn only_the_servers_own_signature_verifies() {
        let mut prng = Prng(0x5c7a_0002);
        for hash in [Hash::Sha256, Hash::Sha512] {
            let (fresh, _) = Exchange::start(hash, "alice").unwrap();
            let (exchange, valid) = answered(hash);
            assert!(exchange.verify(valid.as_bytes()).is_ok(), "{valid}");
            assert!(
                fresh.verify(valid.as_bytes()).is_err(),
                "before client-final"
            );
            for _ in 0..2_000 {
                let server_final = mutate(valid.as_bytes(), &mut prng);
                assert_eq!(
                    exchange.verify(&server_final).is_ok(),
                    server_final == valid.as_bytes(),
                    "{server_final:?}"
                );
                assert!(fresh.verify(&server_final).is_err());
            }
        }
    }
}
