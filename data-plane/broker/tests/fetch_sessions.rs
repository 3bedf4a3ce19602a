//! Fetch sessions (KIP-227) on the wire, with `kafka-protocol` requests through the broker's
//! frame handler: a full fetch opens a session; incremental fetches list only what changed and
//! are answered only with partitions that have something new; forgotten partitions leave the
//! session; a wrong epoch is INVALID_FETCH_SESSION_EPOCH; a full cache gives no session, and an
//! evicted session is FETCH_SESSION_ID_NOT_FOUND; the three FetchSessionCache metrics follow.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{call, name, temp_dir};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

async fn produce_to(broker: &common::TestBroker, topic: &str, partition: i32, payload: &[u8]) {
    let batch = hdi_log::batch::build_batch(0, 1_000, &[payload]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let response: ProduceResponse =
        call(broker, ApiKey::Produce, 9, RequestKind::Produce(request)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// A Fetch v12 of `session` at `epoch` listing `partitions` (topic, partition, offset) and
/// forgetting `forgotten`; answered at once (min_bytes 0).
fn fetch(
    session: i32,
    epoch: i32,
    partitions: &[(&str, i32, i64)],
    forgotten: &[(&str, i32)],
) -> RequestKind {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(topic, partition, offset) in partitions {
        let p = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20);
        match topics.last_mut() {
            Some(t) if &*t.topic.0 == topic => t.partitions.push(p),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let forgotten = forgotten
        .iter()
        .map(|&(topic, partition)| {
            ForgottenTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![partition])
        })
        .collect();
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_id(session)
            .with_session_epoch(epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten),
    )
}

/// The partitions an answer carries: (topic, partition, bytes of records, high watermark).
fn carried(response: &FetchResponse) -> Vec<(String, i32, usize, i64)> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic.0.to_string(),
                    p.partition_index,
                    p.records.as_ref().map_or(0, Bytes::len),
                    p.high_watermark,
                )
            })
        })
        .collect()
}

fn partitions_of(response: &FetchResponse) -> Vec<(&str, i32)> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (&*t.topic.0, p.partition_index))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_fetches_carry_only_what_changed_and_sessions_are_bounded() {
    let dir = temp_dir("fetch-sessions");
    // One slot, and sessions idle for 500 ms may be evicted.
    let broker = common::open_with(
        dir.path(),
        &[
            "--max-incremental-fetch-session-cache-slots",
            "1",
            "--min-incremental-fetch-session-eviction",
            "500ms",
        ],
    )
    .await;
    common::create_topic(&broker, "s", 3).await;
    common::create_topic(&broker, "u", 1).await;
    produce_to(&broker, "s", 0, b"zero").await;
    let go = |request| call::<FetchResponse>(&broker, ApiKey::Fetch, 12, request);

    // Full fetch, epoch 0: every partition, and a session.
    let all = [("s", 0, 0), ("s", 1, 0), ("s", 2, 0)];
    let full = go(fetch(0, 0, &all, &[])).await;
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert_ne!(id, 0, "a full fetch at epoch 0 opens a session");
    let answer = carried(&full);
    assert_eq!(answer.len(), 3, "{answer:?}");
    assert!(answer[0].2 > 0 && answer[0].3 == 1, "{answer:?}");

    // Incremental, epoch 1: s-0 moved to its end; nothing is new anywhere, so nothing is sent.
    let quiet = go(fetch(id, 1, &[("s", 0, 1)], &[])).await;
    assert_eq!((quiet.error_code, quiet.session_id), (0, id));
    assert_eq!(carried(&quiet), []);

    // A record in s-2: only s-2 is sent, read from the offset the session holds (0).
    produce_to(&broker, "s", 2, b"two").await;
    let news = go(fetch(id, 2, &[], &[])).await;
    let answer = carried(&news);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(
        (answer[0].0.as_str(), answer[0].1, answer[0].3),
        ("s", 2, 1)
    );
    assert!(answer[0].2 > 0);

    // Forget s-2, add u-0: u-0 is new to the session (sent), s-2 is gone even with data.
    let changed = go(fetch(id, 3, &[("u", 0, 0)], &[("s", 2)])).await;
    assert_eq!(partitions_of(&changed), [("u", 0)]);
    produce_to(&broker, "s", 2, b"two again").await;
    produce_to(&broker, "s", 1, b"one").await;
    let after = go(fetch(id, 4, &[], &[])).await;
    assert_eq!(partitions_of(&after), [("s", 1)]);

    // A wrong epoch (a repeat, or a skip) is refused and changes nothing.
    for wrong in [4, 9] {
        let refused = go(fetch(id, wrong, &[], &[])).await;
        assert_eq!(refused.error_code, INVALID_FETCH_SESSION_EPOCH);
        assert_eq!((refused.session_id, refused.responses.len()), (0, 0));
    }
    // s-1 is still at offset 0 in the session, so its record comes again; s-0 (at 1) does not.
    let again = go(fetch(id, 5, &[], &[])).await;
    assert_eq!(partitions_of(&again), [("s", 1)]);

    // A sessionless fetch (epoch -1) is answered in full, with no session.
    let sessionless = go(fetch(0, -1, &all, &[])).await;
    assert_eq!(sessionless.session_id, 0);
    assert_eq!(carried(&sessionless).len(), 3);

    // The one slot is taken by a session in use: a second full fetch gets no session.
    let crowded = go(fetch(0, 0, &all, &[])).await;
    assert_eq!((crowded.error_code, crowded.session_id), (0, 0));
    assert_eq!(carried(&crowded).len(), 3);
    let metrics = broker.metrics_exposition();
    for line in [
        "kafka_server_fetchsessioncache_numincrementalfetchsessions 1",
        "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached 3",
        "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }

    // Once the session has been idle past the eviction time, a new one takes its slot, and
    // the evicted session is FETCH_SESSION_ID_NOT_FOUND.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let newer = go(fetch(0, 0, &all[..1], &[])).await;
    assert_ne!(newer.session_id, 0);
    assert_ne!(newer.session_id, id);
    let evicted = go(fetch(id, 6, &[], &[])).await;
    assert_eq!(evicted.error_code, FETCH_SESSION_ID_NOT_FOUND);
    assert_eq!(evicted.responses.len(), 0);
    let metrics = broker.metrics_exposition();
    for line in [
        "kafka_server_fetchsessioncache_numincrementalfetchsessions 1",
        "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached 1",
        "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }

    // Closing a session (epoch -1 naming it) frees its slot.
    let closed = go(fetch(newer.session_id, -1, &all[..1], &[])).await;
    assert_eq!(closed.session_id, 0);
    let gone = go(fetch(newer.session_id, 1, &[], &[])).await;
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_before_v7_has_no_sessions_and_a_long_poll_waits_on_the_session() {
    let dir = temp_dir("fetch-sessions-v");
    let broker = common::open(dir.path()).await;
    common::create_topic(&broker, "s", 2).await;
    // v6 has no session fields: answered in full.
    let old: FetchResponse = call(
        &broker,
        ApiKey::Fetch,
        6,
        fetch(0, -1, &[("s", 0, 0), ("s", 1, 0)], &[]),
    )
    .await;
    assert_eq!(carried(&old).len(), 2);
    let full: FetchResponse = call(
        &broker,
        ApiKey::Fetch,
        12,
        fetch(0, 0, &[("s", 0, 0), ("s", 1, 0)], &[]),
    )
    .await;
    let id = full.session_id;
    assert_ne!(id, 0);
    // An incremental long poll listing nothing waits for data in any partition of the session
    // and is woken by an append to one it does not list.
    let waiter = {
        let broker = std::sync::Arc::clone(&broker.broker);
        tokio::spawn(async move {
            let RequestKind::Fetch(request) = fetch(id, 1, &[], &[]) else {
                unreachable!()
            };
            let request = request.with_max_wait_ms(10_000).with_min_bytes(1);
            let started = std::time::Instant::now();
            let response: FetchResponse =
                call(&broker, ApiKey::Fetch, 12, RequestKind::Fetch(request)).await;
            (started.elapsed(), carried(&response))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce_to(&broker, "s", 1, b"late").await;
    let (took, answer) = waiter.await.unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!((answer[0].1, answer[0].3), (1, 1));
    broker.stop().await;
}

/// Deterministic fuzzing of Fetch frames that use a live session: incremental requests with
/// forgotten topics, their bytes flipped, cut or extended (session ids, epochs, partition lists
/// and forgotten lists all get hit). Nothing panics or hangs, and the cache still works after.
#[tokio::test(flavor = "multi_thread")]
async fn fuzzed_session_fetches_never_panic() {
    let dir = temp_dir("fetch-sessions-fuzz");
    let broker = common::open_with(
        dir.path(),
        &["--max-incremental-fetch-session-cache-slots", "4"],
    )
    .await;
    common::create_topic(&broker, "s", 3).await;
    produce_to(&broker, "s", 1, b"one").await;
    let all = [("s", 0, 0), ("s", 1, 0), ("s", 2, 0)];
    let full: FetchResponse = call(&broker, ApiKey::Fetch, 12, fetch(0, 0, &all, &[])).await;
    let id = full.session_id;
    assert_ne!(id, 0);
    let seeds: Vec<Bytes> = [
        fetch(id, 1, &[("s", 1, 1), ("t", 0, 5)], &[("s", 2)]),
        fetch(id, 1, &[], &[("s", 0), ("s", 1), ("s", 2)]),
        fetch(id, 0, &all, &[("s", 0)]),
        fetch(id, -1, &[], &[]),
    ]
    .iter()
    .flat_map(|r| [7, 12].map(|v| common::frame(ApiKey::Fetch, v, 1, r)))
    .collect();
    let mut rng = common::Rng(0x9e37_79b9_7f4a_7c15);
    let mut answered = 0;
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].to_vec();
        match rng.below(3) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    // Past the header's api key and version, so the Fetch decoder is what runs,
                    // and not in max_wait_ms or min_bytes (bytes 29..38 at v7 and v12, after the
                    // header and replica_id), so that no fetch waits.
                    let at = 4 + rng.below(bytes.len() - 4);
                    if !(29..38).contains(&at) {
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
            }
            _ => bytes.extend((0..rng.below(32)).map(|_| rng.next_u64() as u8)),
        }
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            hdi_broker::server::handle_frame(&broker, Bytes::from(bytes), common::peer()),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: no answer within 5 s"));
        if let Ok(Some(_)) = response {
            answered += 1;
        }
    }
    assert!(answered > 500, "only {answered} answered");
    assert!(broker.fetch_sessions.sessions() <= 4);
    let after: FetchResponse = call(&broker, ApiKey::Fetch, 12, fetch(0, 0, &all, &[])).await;
    assert_eq!(after.error_code, 0);
    assert_eq!(carried(&after).len(), 3);
    broker.stop().await;
}
