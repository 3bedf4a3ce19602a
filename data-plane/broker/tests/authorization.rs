//! ACLs enforced by the handlers (in process, through `handle_session_frame` with an
//! authenticated principal): the super user creates ACLs over `CreateAcls`; a principal with
//! READ on one topic cannot produce to it, sees only it in Metadata, cannot create or delete
//! topics, list ACLs or read credentials; a DENY beats an ALLOW; `DeleteAcls` takes effect at
//! once. Transactional ids: FindCoordinator needs DESCRIBE on one, InitProducerId WRITE,
//! AddPartitionsToTxn WRITE on each topic too, AddOffsetsToTxn READ on the group; listing and
//! describing show only ids the client may describe. Real clients run the same matrix in
//! `e2e/tests/kafka_security.rs`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{call_as, name, produce_request, s, session};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

fn acl(resource_type: i8, resource: &str, pattern: i8, who: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(resource))
        .with_resource_pattern_type(pattern)
        .with_principal(s(who))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

async fn produce_code(broker: &hdi_broker::broker::Broker, who: &str, topic: &str) -> i16 {
    let response: ProduceResponse = call_as(
        broker,
        &mut session(who),
        ApiKey::Produce,
        8,
        produce_request(topic, 1, b"x"),
    )
    .await;
    response.responses[0].partition_responses[0].error_code
}

/// Every ACL, as `who` lists them.
async fn describe_all_acls(broker: &hdi_broker::broker::Broker, who: &str) -> DescribeAclsResponse {
    call_as(
        broker,
        &mut session(who),
        ApiKey::DescribeAcls,
        2,
        RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
    )
    .await
}

async fn create_topic_code(broker: &hdi_broker::broker::Broker, who: &str, topic: &str) -> i16 {
    let request = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let response: CreateTopicsResponse = call_as(
        broker,
        &mut session(who),
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(request),
    )
    .await;
    response.topics[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn acls_decide_every_request() {
    let dir = common::temp_dir("authz");
    let broker = common::open_with(
        dir.path(),
        &[
            "--authorizer",
            "--super-users",
            "User:admin",
            "--auto-create-topics",
            "false",
        ],
    )
    .await;
    for topic in ["a", "b", "pay-in", "pay-secret"] {
        assert_eq!(create_topic_code(&broker, "User:admin", topic).await, 0);
    }
    let created: CreateAclsResponse = call_as(
        &broker,
        &mut session("User:admin"),
        ApiKey::CreateAcls,
        2,
        RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
            acl(2, "a", 3, "User:alice", 3, 3),        // alice READ a
            acl(2, "pay-", 4, "User:bob", 4, 3),       // bob WRITE pay-*
            acl(2, "pay-secret", 3, "User:bob", 2, 2), // bob DENY ALL pay-secret
            acl(2, "x", 7, "User:bob", 4, 3),          // invalid pattern type
        ])),
    )
    .await;
    let codes: Vec<i16> = created.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 0, 0, 42]);

    // alice: READ on `a` only.
    assert_eq!(produce_code(&broker, "User:alice", "a").await, 29);
    assert_eq!(create_topic_code(&broker, "User:alice", "c").await, 29);
    let metadata: MetadataResponse = call_as(
        &broker,
        &mut session("User:alice"),
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
    )
    .await;
    let seen: Vec<&str> = metadata
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str())
        .collect();
    assert_eq!(seen, ["a"]);
    let named: MetadataResponse = call_as(
        &broker,
        &mut session("User:alice"),
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("b"))),
        ]))),
    )
    .await;
    assert_eq!(named.topics[0].error_code, 29);
    let acls = describe_all_acls(&broker, "User:alice").await;
    assert_eq!(acls.error_code, 31);
    let groups: JoinGroupResponse = call_as(
        &broker,
        &mut session("User:alice"),
        ApiKey::JoinGroup,
        5,
        RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_session_timeout_ms(10_000)
                .with_protocol_type(s("consumer")),
        ),
    )
    .await;
    assert_eq!(groups.error_code, 30);

    // bob: prefixed WRITE, the DENY beats it.
    assert_eq!(produce_code(&broker, "User:bob", "pay-in").await, 0);
    assert_eq!(produce_code(&broker, "User:bob", "pay-secret").await, 29);
    assert_eq!(produce_code(&broker, "User:bob", "a").await, 29);
    // The super user and the admin's listing.
    assert_eq!(produce_code(&broker, "User:admin", "b").await, 0);
    let all = describe_all_acls(&broker, "User:admin").await;
    assert_eq!(all.error_code, 0);
    assert_eq!(all.resources.iter().map(|r| r.acls.len()).sum::<usize>(), 3);

    // DeleteAcls: bob's DENY goes, so pay-secret is writable at once.
    let deleted: DeleteAclsResponse = call_as(
        &broker,
        &mut session("User:admin"),
        ApiKey::DeleteAcls,
        2,
        RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("pay-secret")))
                .with_pattern_type_filter(3)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(2),
        ])),
    )
    .await;
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(produce_code(&broker, "User:bob", "pay-secret").await, 0);
    broker.stop().await;
}

/// InitProducerId for `id` as `who`, retried while the coordinator loads.
async fn init_transactional(
    broker: &hdi_broker::broker::Broker,
    who: &str,
    id: &str,
) -> InitProducerIdResponse {
    loop {
        let response: InitProducerIdResponse = call_as(
            broker,
            &mut session(who),
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(id))))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
        )
        .await;
        // COORDINATOR_LOAD_IN_PROGRESS right after start.
        if response.error_code != 14 {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transactional_ids_are_authorized_as_kafka_does() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let dir = common::temp_dir("authz-txn");
    let broker =
        common::open_with(dir.path(), &["--authorizer", "--super-users", "User:admin"]).await;
    for topic in ["t", "u"] {
        assert_eq!(create_topic_code(&broker, "User:admin", topic).await, 0);
    }
    let created: CreateAclsResponse = call_as(
        &broker,
        &mut session("User:admin"),
        ApiKey::CreateAcls,
        2,
        RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
            acl(5, "tx-", 4, "User:carol", 4, 3), // carol WRITE transactional ids tx-*
            acl(2, "t", 3, "User:carol", 4, 3),   // carol WRITE t
        ])),
    )
    .await;
    assert!(created.results.iter().all(|r| r.error_code == 0));

    // FindCoordinator for a transactional id needs DESCRIBE on it (WRITE implies it).
    let find = |who: &'static str| {
        let broker = &broker;
        async move {
            let response: FindCoordinatorResponse = call_as(
                broker,
                &mut session(who),
                ApiKey::FindCoordinator,
                4,
                RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default()
                        .with_key_type(1)
                        .with_coordinator_keys(vec![s("tx-carol")]),
                ),
            )
            .await;
            response.coordinators[0].error_code
        }
    };
    // Past the ACL, carol's in-process session (SASL_SSL) learns that this broker has no such
    // listener to offer: COORDINATOR_NOT_AVAILABLE.
    assert_eq!(find("User:carol").await, 15);
    assert_eq!(
        find("User:dave").await,
        53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );

    // InitProducerId needs WRITE on the transactional id.
    assert_eq!(
        init_transactional(&broker, "User:dave", "tx-carol")
            .await
            .error_code,
        53
    );
    assert_eq!(
        init_transactional(&broker, "User:carol", "other")
            .await
            .error_code,
        53
    );
    let carol = init_transactional(&broker, "User:carol", "tx-carol").await;
    assert_eq!(carol.error_code, 0);

    // AddPartitionsToTxn needs WRITE on each topic; the others are not attempted.
    let add = |topics: Vec<&'static str>| {
        let broker = &broker;
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("tx-carol")))
            .with_v3_and_below_producer_id(carol.producer_id)
            .with_v3_and_below_producer_epoch(carol.producer_epoch)
            .with_v3_and_below_topics(
                topics
                    .into_iter()
                    .map(|t| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(name(t))
                            .with_partitions(vec![0])
                    })
                    .collect(),
            );
        async move {
            let response: AddPartitionsToTxnResponse = call_as(
                broker,
                &mut session("User:carol"),
                ApiKey::AddPartitionsToTxn,
                3,
                RequestKind::AddPartitionsToTxn(request),
            )
            .await;
            response
                .results_by_topic_v3_and_below
                .iter()
                .map(|t| {
                    (
                        t.name.0.as_str().to_owned(),
                        t.results_by_partition[0].partition_error_code,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        add(vec!["t", "u"]).await,
        [("t".to_owned(), 55), ("u".to_owned(), 29)],
        "OPERATION_NOT_ATTEMPTED, TOPIC_AUTHORIZATION_FAILED"
    );
    assert_eq!(add(vec!["t"]).await, [("t".to_owned(), 0)]);

    // AddOffsetsToTxn needs READ on the group.
    let offsets: AddOffsetsToTxnResponse = call_as(
        &broker,
        &mut session("User:carol"),
        ApiKey::AddOffsetsToTxn,
        3,
        RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx-carol")))
                .with_producer_id(carol.producer_id)
                .with_producer_epoch(carol.producer_epoch)
                .with_group_id(GroupId(s("g"))),
        ),
    )
    .await;
    assert_eq!(offsets.error_code, 30, "GROUP_AUTHORIZATION_FAILED");

    // Describing and listing show only what the client may describe.
    let list = |who: &'static str| {
        let broker = &broker;
        async move {
            let response: ListTransactionsResponse = call_as(
                broker,
                &mut session(who),
                ApiKey::ListTransactions,
                1,
                RequestKind::ListTransactions(ListTransactionsRequest::default()),
            )
            .await;
            response.transaction_states.len()
        }
    };
    assert_eq!(list("User:carol").await, 1);
    assert_eq!(list("User:dave").await, 0);
    let described: DescribeTransactionsResponse = call_as(
        &broker,
        &mut session("User:dave"),
        ApiKey::DescribeTransactions,
        0,
        RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("tx-carol"))]),
        ),
    )
    .await;
    assert_eq!(described.transaction_states[0].error_code, 53);
    broker.stop().await;
}
