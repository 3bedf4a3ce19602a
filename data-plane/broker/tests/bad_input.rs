//! Bad input never takes the broker down.
//!
//! In process: every supported API at every supported version decodes a default request and
//! encodes its response; then a deterministic fuzz feeds `handle_frame` truncations, bit flips and
//! random bytes (it must answer or refuse, never panic). Over TCP against the real binary:
//! oversized and negative frames, unknown API keys, unsupported versions and garbage close only
//! their own connection while other clients keep being served; ApiVersions at an unknown version
//! answers UNSUPPORTED_VERSION with the supported list; a corrupt batch gets CORRUPT_MESSAGE and a
//! bad topic name INVALID_TOPIC_EXCEPTION.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{Rng, frame, peer};
use hdi_broker::server::handle_frame;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

const APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DeleteGroups,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeCluster,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::ElectLeaders,
    ApiKey::DescribeLogDirs,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::DescribeProducers,
];

fn default_request(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1)),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default())
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default())
        }
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default())
        }
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default())
        }
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default())
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(DescribeTransactionsRequest::default())
        }
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default())
        }
        other => panic!("no default request for {other:?}"),
    }
}

async fn temp_broker(tag: &str) -> (common::TestBroker, tempfile::TempDir) {
    let dir = common::temp_dir(tag);
    (common::open(dir.path()).await, dir)
}

/// A mutation of `seed`: a truncation, 1 to 4 bytes `corrupt`ed (given the byte and a random
/// number), up to 63 random bytes appended, or up to `max_random - 1` random bytes alone.
fn mutate(seed: &[u8], rng: &mut Rng, corrupt: fn(u8, u64) -> u8, max_random: u64) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.next_u64() % 4 {
        0 => bytes.truncate((rng.next_u64() as usize) % (bytes.len() + 1)),
        1 => {
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() as usize) % bytes.len();
                bytes[at] = corrupt(bytes[at], rng.next_u64());
            }
        }
        2 => bytes.extend((0..rng.next_u64() % 64).map(|_| rng.next_u64() as u8)),
        _ => {
            bytes = (0..rng.next_u64() % max_random)
                .map(|_| rng.next_u64() as u8)
                .collect()
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn every_supported_version_answers_a_default_request() {
    let (broker, _dir) = temp_broker("versions").await;
    let versions = ApiVersionsResponse::decode(
        &mut {
            let response = handle_frame(
                &broker,
                frame(
                    ApiKey::ApiVersions,
                    0,
                    1,
                    &default_request(ApiKey::ApiVersions),
                ),
                peer(),
            )
            .await
            .unwrap()
            .unwrap();
            // length (4) + correlation id (4)
            response.slice(8..)
        },
        0,
    )
    .unwrap();
    assert_eq!(versions.api_keys.len(), APIS.len());
    let mut checked = 0;
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        for version in api.min_version..=api.max_version {
            let request = default_request(key);
            let response = handle_frame(&broker, frame(key, version, 7, &request), peer()).await;
            let response = response.unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
            let response = response.unwrap_or_else(|| panic!("{key:?} v{version}: no response"));
            let mut body = response.slice(4..);
            let header =
                ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, 7, "{key:?} v{version}");
            ResponseKind::decode(key, &mut body, version)
                .unwrap_or_else(|e| panic!("{key:?} v{version} response does not decode: {e}"));
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzed_frames_never_panic() {
    let (broker, _dir) = temp_broker("fuzz").await;
    let mut seeds = Vec::new();
    for key in APIS {
        if let Some((_, max)) = hdi_broker::handlers::supported(*key) {
            seeds.push(frame(*key, max, 1, &default_request(*key)));
        }
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut answered = 0;
    for round in 0..4000 {
        let seed = &seeds[round % seeds.len()];
        let bytes = mutate(seed, &mut rng, |byte, r| byte ^ (1 << (r % 8)), 128);
        // Keep the API key of the seed most of the time so that decoders get exercised.
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            handle_frame(&broker, Bytes::from(bytes), peer()),
        )
        .await;
        if let Ok(Ok(Some(_))) = response {
            answered += 1;
        }
    }
    assert!(
        answered > 100,
        "only {answered} fuzzed frames were answered at all"
    );
}

struct RealBroker {
    child: std::process::Child,
    addr: String,
    // Removed on drop, after the broker is killed.
    _dir: tempfile::TempDir,
}

impl Drop for RealBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_real_broker() -> RealBroker {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("broker");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hdi-broker"))
        .args([
            "--node-id",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("ready on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    RealBroker {
        child,
        addr,
        _dir: temp,
    }
}

fn send(stream: &mut TcpStream, body: &[u8]) {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    stream.write_all(&out).unwrap();
}

/// Reads one response; `None` when the broker closed the connection.
fn receive(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn api_versions_ok(stream: &mut TcpStream) -> bool {
    send(
        stream,
        &frame(
            ApiKey::ApiVersions,
            3,
            42,
            &default_request(ApiKey::ApiVersions),
        ),
    );
    receive(stream).is_some_and(|mut r| {
        let header = ResponseHeader::decode(&mut r, 0).unwrap();
        header.correlation_id == 42
            && ApiVersionsResponse::decode(&mut r, 3).is_ok_and(|v| v.error_code == 0)
    })
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let broker = start_real_broker();
    let mut bystander = connect(&broker.addr);
    assert!(api_versions_ok(&mut bystander));
    let mut unknown_key =
        frame(ApiKey::Metadata, 1, 1, &default_request(ApiKey::Metadata)).to_vec();
    unknown_key[0..2].copy_from_slice(&999i16.to_be_bytes());
    let mut bad_version =
        frame(ApiKey::Metadata, 1, 1, &default_request(ApiKey::Metadata)).to_vec();
    bad_version[2..4].copy_from_slice(&99i16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", i32::MAX.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        (
            "unknown API key",
            [
                (unknown_key.len() as i32).to_be_bytes().to_vec(),
                unknown_key,
            ]
            .concat(),
        ),
        (
            "unsupported version",
            [
                (bad_version.len() as i32).to_be_bytes().to_vec(),
                bad_version,
            ]
            .concat(),
        ),
        (
            "garbage",
            [20i32.to_be_bytes().to_vec(), vec![0xee; 20]].concat(),
        ),
        (
            "truncated header",
            [6i32.to_be_bytes().to_vec(), vec![0, 3, 0, 1, 0, 0]].concat(),
        ),
        // Metadata v1 claiming 2^31-1 topics in a 14-byte body: the decoder must not reserve
        // memory for what the frame cannot hold (an allocation failure aborts the process).
        (
            "huge array count",
            [
                14i32.to_be_bytes().to_vec(),
                vec![0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
        ),
    ];
    for (case, bytes) in cases {
        let mut stream = connect(&broker.addr);
        stream.write_all(&bytes).unwrap();
        assert!(
            receive(&mut stream).is_none(),
            "{case}: the connection should be closed"
        );
        assert!(
            api_versions_ok(&mut bystander),
            "{case}: the other client is no longer served"
        );
        assert!(
            api_versions_ok(&mut connect(&broker.addr)),
            "{case}: new clients are refused"
        );
    }
    // A half-sent frame followed by a hang-up does not disturb anyone either.
    let mut stream = connect(&broker.addr);
    stream.write_all(&100i32.to_be_bytes()).unwrap();
    stream.write_all(&[0, 3]).unwrap();
    drop(stream);
    assert!(api_versions_ok(&mut bystander));
}

#[test]
fn api_versions_at_an_unknown_version_answers_with_the_supported_list() {
    let broker = start_real_broker();
    let mut stream = connect(&broker.addr);
    let mut body = frame(
        ApiKey::ApiVersions,
        3,
        9,
        &default_request(ApiKey::ApiVersions),
    )
    .to_vec();
    body[2..4].copy_from_slice(&77i16.to_be_bytes());
    send(&mut stream, &body);
    let mut response = receive(&mut stream).unwrap();
    assert_eq!(
        ResponseHeader::decode(&mut response, 0)
            .unwrap()
            .correlation_id,
        9
    );
    let versions = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(versions.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16)
    );
}

#[test]
fn corrupt_batches_and_bad_topic_names_get_kafka_error_codes() {
    let broker = start_real_broker();
    let mut stream = connect(&broker.addr);
    // Auto-create a topic, then produce a batch whose CRC does not match.
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("good")))),
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("bad/name")))),
        ]))
        .with_allow_auto_topic_creation(true);
    send(
        &mut stream,
        &frame(ApiKey::Metadata, 9, 1, &RequestKind::Metadata(metadata)),
    );
    let mut response = receive(&mut stream).unwrap();
    ResponseHeader::decode(&mut response, ApiKey::Metadata.response_header_version(9)).unwrap();
    let metadata = MetadataResponse::decode(&mut response, 9).unwrap();
    let codes: Vec<i16> = metadata.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        [0, 17],
        "good topic created, bad name refused with INVALID_TOPIC_EXCEPTION"
    );

    let mut batch = hdi_log::batch::build_batch(0, 0, &[b"payload"]);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("good")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    send(
        &mut stream,
        &frame(ApiKey::Produce, 9, 2, &RequestKind::Produce(produce)),
    );
    let mut response = receive(&mut stream).unwrap();
    ResponseHeader::decode(&mut response, ApiKey::Produce.response_header_version(9)).unwrap();
    let produce = ProduceResponse::decode(&mut response, 9).unwrap();
    let partition = &produce.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 2, "CORRUPT_MESSAGE");
    assert!(
        partition
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("CRC")),
        "{:?}",
        partition.error_message
    );
    // The connection still works and nothing was stored.
    let list = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("good")))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    send(
        &mut stream,
        &frame(ApiKey::ListOffsets, 5, 3, &RequestKind::ListOffsets(list)),
    );
    let mut response = receive(&mut stream).unwrap();
    ResponseHeader::decode(
        &mut response,
        ApiKey::ListOffsets.response_header_version(5),
    )
    .unwrap();
    let offsets = ListOffsetsResponse::decode(&mut response, 5).unwrap();
    assert_eq!(
        offsets.topics[0].partitions[0].offset, 0,
        "the corrupt batch was not stored"
    );
}

/// A replica fetch with a negative replica id (a consumer session's owner id) is refused before
/// it opens, uses or closes a fetch session: only a broker fetches as a replica.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_fetch_with_a_negative_replica_id_is_refused() {
    use hdi_broker::cluster::rpc::{FetchPartition, ReplicaFetch, ReplicaFetchAnswer};
    let (broker, _dir) = temp_broker("replica-fetch-negative-id").await;
    // (replica id, session id, session epoch): a new session, a sessionless fetch, an
    // incremental fetch of some session.
    for (replica_id, session_id, session_epoch) in [(-1, 0, 0), (-1, 0, -1), (-1, 1, 1), (-5, 0, 0)]
    {
        let fetch = ReplicaFetch {
            replica_id,
            partitions: vec![FetchPartition {
                topic: "t".into(),
                partition: 0,
                fetch_offset: 0,
                leader_epoch: 0,
            }],
            max_wait_ms: 0,
            partition_max_bytes: 1 << 20,
            session_id,
            session_epoch,
            forgotten: Vec::new(),
        };
        let (answer, chunks, _) =
            hdi_broker::replication::serve_fetch(&broker.broker, &fetch).await;
        let case = (replica_id, session_id, session_epoch);
        match answer {
            ReplicaFetchAnswer::Session(answer) => assert_eq!(
                (answer.error, answer.session_id, answer.partitions.len()),
                (hdi_kafka_client::codes::INVALID_REQUEST, 0, 0),
                "{case:?}"
            ),
            ReplicaFetchAnswer::Plain(answers) => panic!("{case:?} answered: {answers:?}"),
        }
        assert!(chunks.is_empty(), "{case:?}");
    }
    broker.stop().await;
}

/// The quorum listener's decoder (broker-to-broker requests) gets mutated valid requests and
/// noise: it answers with an error, never a panic.
#[test]
fn fuzzed_quorum_requests_never_panic() {
    use hdi_broker::cluster::metadata::Command;
    use hdi_broker::cluster::rpc::{
        EpochEndRequest, FetchPartition, Heartbeat, ReplicaFetch, Request,
        VerifyTxnPartitionsRequest, WriteTxnMarkersRequest, decode_request,
    };
    let seeds: Vec<Vec<u8>> = [
        Request::Propose(Command::DeleteTopic { name: "t".into() }),
        Request::Propose(Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 3]),
        }),
        Request::Heartbeat(Heartbeat {
            id: 1,
            incarnation: uuid::Uuid::nil(),
            caught_up: true,
            shutting_down: false,
            quorum_addr: "127.0.0.1:1".into(),
        }),
        Request::Fetch(ReplicaFetch {
            replica_id: 2,
            partitions: vec![FetchPartition {
                topic: "t".into(),
                partition: 0,
                fetch_offset: 5,
                leader_epoch: 1,
            }],
            max_wait_ms: 500,
            partition_max_bytes: 1 << 20,
            session_id: 7,
            session_epoch: 3,
            forgotten: vec![("u".into(), 1)],
        }),
        Request::EpochEnd(EpochEndRequest {
            topic: "t".into(),
            partition: 0,
            current_leader_epoch: 1,
            epoch: 0,
        }),
        Request::WriteTxnMarkers(WriteTxnMarkersRequest {
            from: 2,
            marker: hdi_broker::producers::TxnMarker {
                producer_id: 1 << 40,
                producer_epoch: 3,
                coordinator_epoch: 7,
                commit: true,
            },
            partitions: vec![("t".into(), 0), ("u".into(), 5)],
        }),
        Request::VerifyTxnPartitions(VerifyTxnPartitionsRequest {
            from: 2,
            transactional_id: "tx".into(),
            producer_id: 1 << 40,
            producer_epoch: 3,
            partitions: vec![("t".into(), 0), ("u".into(), 5)],
        }),
    ]
    .iter()
    .map(|r| serde_json::to_vec(r).unwrap())
    .collect();
    for seed in &seeds {
        assert!(decode_request(seed).is_ok());
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut refused = 0;
    for round in 0..20_000 {
        let bytes = mutate(&seeds[round % seeds.len()], &mut rng, |_, r| r as u8, 256);
        if decode_request(&bytes).is_err() {
            refused += 1;
        }
    }
    assert!(
        refused > 10_000,
        "only {refused} of 20000 mutations refused"
    );
}
