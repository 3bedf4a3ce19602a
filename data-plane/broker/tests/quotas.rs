//! Client quotas in process: AlterClientQuotas and DescribeClientQuotas (authorized by
//! ALTER_CONFIGS and DESCRIBE_CONFIGS on the cluster, bad keys and entities refused), and
//! Produce answers carrying the throttle time that holds a user to its byte rate while another
//! user is not throttled, and Metadata answers carrying a request quota's throttle time. Real clients held to a rate: `e2e/tests/kafka_security.rs`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{call_as, name, produce_request, s, session};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;

fn quota(user: Option<&str>, key: &str, value: f64) -> EntryData {
    EntryData::default()
        .with_entity(vec![
            EntityData::default()
                .with_entity_type(s("user"))
                .with_entity_name(user.map(s)),
        ])
        .with_ops(vec![OpData::default().with_key(s(key)).with_value(value)])
}

async fn alter(
    broker: &hdi_broker::broker::Broker,
    who: &str,
    entries: Vec<EntryData>,
) -> Vec<i16> {
    let response: AlterClientQuotasResponse = call_as(
        broker,
        &mut session(who),
        ApiKey::AlterClientQuotas,
        1,
        RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default().with_entries(entries)),
    )
    .await;
    response.entries.iter().map(|e| e.error_code).collect()
}

async fn produce_throttle(
    broker: &hdi_broker::broker::Broker,
    who: &str,
    bytes: usize,
) -> (i16, i32) {
    let payload = vec![b'x'; bytes];
    let response: ProduceResponse = call_as(
        broker,
        &mut session(who),
        ApiKey::Produce,
        8,
        produce_request("t", 1, &payload),
    )
    .await;
    (
        response.responses[0].partition_responses[0].error_code,
        response.throttle_time_ms,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_are_set_described_and_hold_a_user_to_its_rate() {
    let dir = common::temp_dir("quotas");
    let broker = common::open_with(
        dir.path(),
        &[
            "--authorizer",
            "--super-users",
            "User:admin;User:alice;User:bob;User:dave",
        ],
    )
    .await;
    let created: CreateTopicsResponse = call_as(
        &broker,
        &mut session("User:admin"),
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    // Only a principal with ALTER_CONFIGS on the cluster sets quotas; bad keys and values fail.
    assert_eq!(
        alter(
            &broker,
            "User:carol",
            vec![quota(Some("alice"), "producer_byte_rate", 1e5)]
        )
        .await,
        [31]
    );
    assert_eq!(
        alter(
            &broker,
            "User:admin",
            vec![
                quota(Some("alice"), "producer_byte_rate", 100_000.0),
                quota(None, "consumer_byte_rate", 5e6),
                quota(Some("x"), "request_percentage", 12.5),
                quota(Some("x"), "producer_byte_rate", 0.0),
                quota(Some("x"), "controller_mutation_rate", 10.0),
            ]
        )
        .await,
        [0, 0, 42, 42, 42]
    );
    let described: DescribeClientQuotasResponse = call_as(
        &broker,
        &mut session("User:admin"),
        ApiKey::DescribeClientQuotas,
        1,
        RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default().with_components(
            vec![
                ComponentData::default()
                    .with_entity_type(s("user"))
                    .with_match_type(0)
                    .with_match(Some(s("alice"))),
            ],
        )),
    )
    .await;
    let entries = described.entries.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(entries[0].values[0].value, 100_000.0);
    // alice: 100,000 B/s. The first 50 kB pass; each next one waits for the bytes before it.
    let (code, first) = produce_throttle(&broker, "User:alice", 50_000).await;
    assert_eq!((code, first), (0, 0));
    let (_, second) = produce_throttle(&broker, "User:alice", 50_000).await;
    assert!((400..=520).contains(&second), "{second}");
    let (_, third) = produce_throttle(&broker, "User:alice", 50_000).await;
    assert!((900..=1020).contains(&third), "{third}");
    // bob has no quota.
    for _ in 0..3 {
        assert_eq!(produce_throttle(&broker, "User:bob", 50_000).await, (0, 0));
    }

    // dave may use 1 % of a CPU for his requests: his Metadata answers soon carry a throttle
    // time, and grow with what he keeps asking; bob's never do.
    assert_eq!(
        alter(
            &broker,
            "User:admin",
            vec![quota(Some("dave"), "request_percentage", 1.0)]
        )
        .await,
        [0]
    );
    let mut throttles = Vec::new();
    for _ in 0..200 {
        throttles.push(metadata_throttle(&broker, "User:dave").await);
        assert_eq!(metadata_throttle(&broker, "User:bob").await, 0);
    }
    let throttled = throttles.iter().filter(|t| **t > 0).count();
    assert!(throttled >= 150, "{throttles:?}");
    assert!(
        throttles[199] > throttles[50],
        "waits grow while dave keeps asking: {throttles:?}"
    );
    broker.stop().await;
}

/// The throttle time of a Metadata answer to `who`.
async fn metadata_throttle(broker: &hdi_broker::broker::Broker, who: &str) -> i32 {
    let response: MetadataResponse = call_as(
        broker,
        &mut session(who),
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
    )
    .await;
    response.throttle_time_ms
}
