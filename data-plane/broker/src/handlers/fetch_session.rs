//! Fetch sessions on the wire (KIP-227, Fetch v7+): [`open`] turns a Fetch request into the
//! partitions to read, through the broker's [`crate::fetch_sessions::FetchSessionCache`], and
//! [`Opened::answer`] turns what was read into a full answer (creating a session) or an
//! incremental one (only the partitions with something new). The reading itself stays in
//! `fetch.rs`, which sees an ordinary request listing every partition to read.
//!
//! Sessions are keyed by topic name: this broker speaks Fetch up to v12, before topic ids. A
//! Kafka fetch is never privileged here (followers replicate over the quorum listener, not by
//! Fetch).

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::{Context, sb};
use crate::fetch_sessions::{
    FINAL_EPOCH, FetchPlan, FetchPosition, INITIAL_EPOCH, INVALID_SESSION_ID, PartitionAnswer,
    SessionError, TopicPartition,
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
    pub(super) fn answer(self, cx: &Context<'_>, mut response: FetchResponse) -> FetchResponse {
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
            } => {
                let mut answers = Vec::with_capacity(partitions.len());
                let mut keys = partitions.iter();
                for topic in &response.responses {
                    for p in &topic.partitions {
                        let Some(key) = keys.next() else { break };
                        answers.push((key, summary(p)));
                    }
                }
                let mut send = sessions.select(session_id, &answers).into_iter();
                for topic in &mut response.responses {
                    // A partition not matched (none should be) is sent.
                    topic.partitions.retain(|_| send.next().unwrap_or(true));
                }
                response.responses.retain(|t| !t.partitions.is_empty());
                response.with_session_id(session_id)
            }
        }
    }
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
