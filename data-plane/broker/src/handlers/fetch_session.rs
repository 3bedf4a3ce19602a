//! Fetch sessions on the wire (KIP-227, Fetch v7+): [`open`] turns a Fetch request into the
//! partitions to read, through the broker's [`crate::fetch_sessions::FetchSessionCache`], and
//! [`Opened::answer`] turns what was read into a full answer (creating a session) or an
//! incremental one (only the partitions with something new). The reading itself stays in
//! `fetch.rs`, which sees an ordinary request listing every partition to read.
//!
//! Sessions are keyed by topic name: this broker speaks Fetch up to v12, before topic ids. A
//! Kafka fetch is never privileged here: followers replicate over the quorum listener, not by
//! Fetch, and their sessions (`replication.rs`, privileged, owned by the follower's broker id)
//! share the cache. An incremental answer is matched with its session by (topic, partition).

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::{Context, sb};
use crate::fetch_sessions::{
    FINAL_EPOCH, FetchPlan, FetchPosition, FetchSessionCache, INITIAL_EPOCH, INVALID_SESSION_ID,
    PartitionAnswer, SessionError, TopicPartition,
};

/// What [`open`] decided, for [`Opened::answer`].
pub(super) enum Opened {
    /// No session: the answer is what was read, with session id 0.
    Sessionless,
    /// A full fetch asking for a session: the request's partitions and positions, in order.
    Full(Vec<(TopicPartition, FetchPosition)>),
    /// An incremental fetch of `session_id`: the partitions read, in order.
    Incremental {
        session_id: i32,
        partitions: Vec<TopicPartition>,
    },
}

/// Looks the request's session up: returns the request to read (for an incremental fetch, every
/// partition of the session with its cached position) and what to do with the answer; or, for a
/// session that is gone or at another epoch, the answer itself (FETCH_SESSION_ID_NOT_FOUND,
/// INVALID_FETCH_SESSION_EPOCH, nothing read).
pub(super) fn open(
    cx: &Context<'_>,
    mut request: FetchRequest,
) -> Result<(FetchRequest, Opened), FetchResponse> {
    if cx.version < 7 {
        return Ok((request, Opened::Sessionless));
    }
    // A full fetch's partitions go to the cache only if it makes a session of them.
    let full = matches!(request.session_epoch, INITIAL_EPOCH | FINAL_EPOCH);
    let (changed, forgotten) = if full {
        (Vec::new(), Vec::new())
    } else {
        (positions(&request.topics), forgotten(&request))
    };
    let plan = cx.broker.fetch_sessions.plan(
        request.session_id,
        request.session_epoch,
        changed,
        &forgotten,
        Instant::now(),
    );
    match plan {
        Ok(FetchPlan::Sessionless) => Ok((request, Opened::Sessionless)),
        Ok(FetchPlan::Full) => {
            let listed = positions(&request.topics);
            Ok((request, Opened::Full(listed)))
        }
        Ok(FetchPlan::Incremental {
            session_id,
            partitions,
        }) => {
            request.topics = topics_to_read(&partitions);
            let partitions = partitions.into_iter().map(|(key, _)| key).collect();
            Ok((
                request,
                Opened::Incremental {
                    session_id,
                    partitions,
                },
            ))
        }
        Err(error) => {
            let code = match error {
                SessionError::NotFound => ResponseError::FetchSessionIdNotFound,
                SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
            };
            tracing::debug!(session = request.session_id, epoch = request.session_epoch, %error, "fetch session refused");
            Err(FetchResponse::default()
                .with_error_code(code.code())
                .with_session_id(INVALID_SESSION_ID))
        }
    }
}

impl Opened {
    /// The answer to send, from `response` (every partition read, in the order read): for a
    /// full fetch, all of it with a new session's id (0 when the cache has no room); for an
    /// incremental one, only the partitions the session says must go.
    pub(super) fn answer(self, cx: &Context<'_>, response: FetchResponse) -> FetchResponse {
        let sessions = &cx.broker.fetch_sessions;
        match self {
            Opened::Sessionless => response.with_session_id(INVALID_SESSION_ID),
            Opened::Full(listed) => {
                let read = response.responses.iter().flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic.0.as_str(), p.partition_index, summary(p)))
                });
                let mut answered = Vec::with_capacity(listed.len());
                for ((key, position), (topic, partition, answer)) in listed.into_iter().zip(read) {
                    if key.topic != topic || key.partition != partition {
                        // Not what was asked, in order: no session rather than a wrong one.
                        return response.with_session_id(INVALID_SESSION_ID);
                    }
                    answered.push((key, position, answer));
                }
                let id = sessions.create(false, answered, Instant::now());
                response.with_session_id(id)
            }
            Opened::Incremental {
                session_id,
                partitions,
            } => incremental_answer(sessions, session_id, &partitions, response),
        }
    }
}

/// The incremental answer of `session_id` from `response`: only the partitions the session says
/// must go. Each partition read is matched with the session's by (topic, partition), never by
/// position, so an answer that misses or reorders partitions cannot make the session remember
/// one partition's high watermark under another's name. A partition the session does not know
/// (none should be) is sent.
fn incremental_answer(
    sessions: &FetchSessionCache,
    session_id: i32,
    partitions: &[TopicPartition],
    mut response: FetchResponse,
) -> FetchResponse {
    let known: HashMap<(&str, i32), &TopicPartition> = partitions
        .iter()
        .map(|key| ((key.topic.as_str(), key.partition), key))
        .collect();
    let mut answers = Vec::with_capacity(partitions.len());
    // Per partition read, in order: its index in `answers`, if the session knows it.
    let mut matched = Vec::new();
    for topic in &response.responses {
        for p in &topic.partitions {
            match known.get(&(topic.topic.0.as_str(), p.partition_index)) {
                Some(key) => {
                    matched.push(Some(answers.len()));
                    answers.push((*key, summary(p)));
                }
                None => matched.push(None),
            }
        }
    }
    let send = sessions.select(session_id, &answers);
    let mut matched = matched.into_iter();
    for topic in &mut response.responses {
        topic.partitions.retain(|_| {
            matched
                .next()
                .flatten()
                .is_none_or(|i| send.get(i).copied().unwrap_or(true))
        });
    }
    response.responses.retain(|t| !t.partitions.is_empty());
    response.with_session_id(session_id)
}

/// The partitions an incremental request drops from its session.
fn forgotten(request: &FetchRequest) -> Vec<TopicPartition> {
    request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|&partition| TopicPartition {
                topic: t.topic.0.to_string(),
                partition,
            })
        })
        .collect()
}

/// The request's partitions with their positions, in order.
fn positions(topics: &[FetchTopic]) -> Vec<(TopicPartition, FetchPosition)> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    TopicPartition {
                        topic: t.topic.0.to_string(),
                        partition: p.partition,
                    },
                    FetchPosition {
                        fetch_offset: p.fetch_offset,
                        log_start_offset: p.log_start_offset,
                        max_bytes: p.partition_max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                        last_fetched_epoch: p.last_fetched_epoch,
                    },
                )
            })
        })
        .collect()
}

/// A request's topics listing `partitions` (consecutive partitions of a topic in one entry).
fn topics_to_read(partitions: &[(TopicPartition, FetchPosition)]) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (key, position) in partitions {
        let partition = FetchPartition::default()
            .with_partition(key.partition)
            .with_fetch_offset(position.fetch_offset)
            .with_log_start_offset(position.log_start_offset)
            .with_partition_max_bytes(position.max_bytes)
            .with_current_leader_epoch(position.current_leader_epoch)
            .with_last_fetched_epoch(position.last_fetched_epoch);
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == key.topic => last.partitions.push(partition),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(sb(key.topic.as_str())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    topics
}

/// What decides whether an incremental answer sends `p`.
fn summary(p: &PartitionData) -> PartitionAnswer {
    PartitionAnswer {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        log_start_offset: p.log_start_offset,
        error: p.error_code,
        records: p.records.as_ref().map_or(0, |r| r.len()),
        always: p.preferred_read_replica.0 >= 0 || p.diverging_epoch.epoch >= 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    fn key(partition: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition,
        }
    }

    /// A response of topic `t` with (partition, high watermark) in this order, no records.
    fn response(partitions: &[(i32, i64)]) -> FetchResponse {
        let partitions = partitions
            .iter()
            .map(|&(index, hw)| {
                PartitionData::default()
                    .with_partition_index(index)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(0)
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(sb("t")))
                .with_partitions(partitions),
        ])
    }

    fn sent(response: &FetchResponse) -> Vec<(i32, i64)> {
        response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition_index, p.high_watermark))
            .collect()
    }

    #[test]
    fn answers_are_matched_with_the_session_by_partition_not_by_position() {
        let cache = FetchSessionCache::new(10, Duration::from_secs(1), Counter::default());
        let position = FetchPosition::default();
        let answered = |hw| PartitionAnswer {
            high_watermark: hw,
            last_stable_offset: hw,
            ..PartitionAnswer::default()
        };
        let id = cache.create(
            false,
            vec![
                (key(0), position, answered(5)),
                (key(1), position, answered(5)),
            ],
            Instant::now(),
        );
        let session = [key(0), key(1)];
        // Reordered: partition 1 moved to 9 and is sent; 0 is not.
        let first = incremental_answer(&cache, id, &session, response(&[(1, 9), (0, 5)]));
        assert_eq!(sent(&first), [(1, 9)]);
        // The session remembers 0 at 5 and 1 at 9: the same state again sends nothing (matched
        // by position, 0 would have been remembered at 9 and 1 at 5, and both sent now).
        let again = incremental_answer(&cache, id, &session, response(&[(0, 5), (1, 9)]));
        assert_eq!(sent(&again), []);
        // An answer missing partition 0: partition 1's new watermark is 1's, not 0's.
        let missing = incremental_answer(&cache, id, &session, response(&[(1, 12)]));
        assert_eq!(sent(&missing), [(1, 12)]);
        let after = incremental_answer(&cache, id, &session, response(&[(0, 5), (1, 12)]));
        assert_eq!(sent(&after), []);
        // A partition the session does not know is sent.
        let unknown = incremental_answer(&cache, id, &session, response(&[(7, 1), (0, 5)]));
        assert_eq!(sent(&unknown), [(7, 1)]);
    }
}
