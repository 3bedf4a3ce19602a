//! Reading and writing a topic's records through the control plane: the bounded live tail the
//! portal shows (`GET …/topics/{topic}/records` as server-sent events) and "produce a record".
//!
//! This is a deliberate, bounded exception to "the control plane is never on the data path", as
//! Kafka consoles proxy consumption: a diagnostic read for people, capped in records, seconds
//! and records per second, with its own connections to the partitions' leaders (nothing is
//! shared with the admin calls), and ended as soon as the client goes away. Applications read
//! and write the brokers directly.
//!
//! A tail assigns the partitions it reads (no consumer group, nothing committed), starts from
//! the earliest or latest offset, an offset, or a timestamp, fetches from every leader at once
//! (long polls of at most half a second), filters by substrings of the key or value, and ends
//! with the reason: `max_records`, `max_seconds`, `end_of_partitions` (when not following: the
//! end offsets seen at its start are reached) or `error`. A partition whose leader moved is
//! found again from fresh metadata; an offset that left the log (retention) jumps to its start.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::topic::{admin_error, check_topic_name};
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::kafka_admin::{
    AdminError, ClusterMetadata, EARLIEST, FetchedRecord, KafkaAdmin, LATEST, NewRecord,
};

/// Records a tail sends at most, and its default.
pub const MAX_TAIL_RECORDS: u32 = 10_000;
const DEFAULT_TAIL_RECORDS: u32 = 500;
/// Seconds a tail lasts at most, and its default.
pub const MAX_TAIL_SECONDS: u32 = 600;
const DEFAULT_TAIL_SECONDS: u32 = 60;
/// Records per second a tail sends at most, and its default.
pub const MAX_TAIL_RATE: u32 = 5_000;
const DEFAULT_TAIL_RATE: u32 = 1_000;
/// The longest a fetch waits for data.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// Bytes one fetch brings at most (per leader, and per partition).
const FETCH_BYTES: i32 = 1 << 20;
/// Characters of a key or value sent per record; longer ones are cut (and marked).
const SHOWN_CHARS: usize = 16 * 1024;
/// How often a progress event is sent.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The biggest record value `produce` takes.
const MAX_PRODUCE_BYTES: usize = 1 << 20;

/// Where a tail starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailFrom {
    /// The first offset of each partition.
    Earliest,
    /// The end of each partition (only new records).
    Latest,
    /// This offset of each partition (clamped to the log).
    Offset(i64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// A tail, as asked (bounds unchecked).
#[derive(Clone, Debug)]
pub struct TailRequest {
    /// Where to start.
    pub from: TailFrom,
    /// Only this partition.
    pub partition: Option<i32>,
    /// Only records whose key contains this.
    pub key_contains: Option<String>,
    /// Only records whose value contains this.
    pub value_contains: Option<String>,
    /// Records to send at most.
    pub max_records: Option<u32>,
    /// Seconds to last at most.
    pub max_seconds: Option<u32>,
    /// Records per second to send at most.
    pub max_per_second: Option<u32>,
    /// Keep waiting for new records (else stop at the end offsets seen at the start).
    pub follow: bool,
}

/// One record of a tail, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// The key as UTF-8 (invalid bytes replaced), `None` when absent.
    pub key: Option<String>,
    /// The value as UTF-8, `None` for a tombstone.
    pub value: Option<String>,
    /// Headers in order.
    pub headers: Vec<(String, Option<String>)>,
    /// Whether the key or value was cut to [`SHOWN_CHARS`] characters.
    pub truncated: bool,
}

/// Why a tail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailEnd {
    /// It sent `max_records`.
    MaxRecords,
    /// It lasted `max_seconds`.
    MaxSeconds,
    /// Not following, it reached the end offsets seen at its start.
    EndOfPartitions,
    /// The cluster failed it (the detail says how).
    Error,
}

impl TailEnd {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TailEnd::MaxRecords => "max_records",
            TailEnd::MaxSeconds => "max_seconds",
            TailEnd::EndOfPartitions => "end_of_partitions",
            TailEnd::Error => "error",
        }
    }
}

/// What a tail sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailEvent {
    /// A record that passed the filters.
    Record(TailRecord),
    /// Records read and sent so far (about every second).
    Progress {
        /// Records read.
        scanned: u64,
        /// Records sent.
        matched: u64,
        /// Records of compressed batches that did not decompress, skipped.
        skipped_compressed: u64,
    },
    /// The last event.
    End {
        /// Why.
        reason: TailEnd,
        /// Records sent.
        records: u64,
        /// Records read.
        scanned: u64,
        /// For `error`: what failed.
        detail: Option<String>,
    },
}

/// A record to write through the control plane.
#[derive(Clone, Debug, Default)]
pub struct ProduceInput {
    /// The partition; by default Kafka's partitioner picks it from the key (murmur2), and a
    /// random one for a record without a key.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<String>,
    /// Value (`None`: a tombstone).
    pub value: Option<String>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}

/// The bounds of a tail, checked.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    records: u64,
    seconds: u32,
    per_second: u32,
}

fn bound(field: &str, value: Option<u32>, default: u32, max: u32) -> Result<u32, ServiceError> {
    match value.unwrap_or(default) {
        0 => Err(invalid(field, "must be at least 1")),
        v if v > max => Err(invalid(field, format!("must be at most {max}"))),
        v => Ok(v),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl Service {
    /// Starts a bounded tail of `topic` (viewer role): the events arrive on the receiver, the
    /// last one an [`TailEvent::End`]; dropping the receiver stops the tail.
    ///
    /// # Errors
    /// `invalid_field` (`partition`, `offset`, `max_records`, `max_seconds`,
    /// `max_per_second`), and as [`Service::topic_get`].
    pub async fn records_tail(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        topic: &str,
        request: TailRequest,
    ) -> Result<mpsc::Receiver<TailEvent>, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        check_topic_name("topic", topic)?;
        let bounds = Bounds {
            records: u64::from(bound(
                "max_records",
                request.max_records,
                DEFAULT_TAIL_RECORDS,
                MAX_TAIL_RECORDS,
            )?),
            seconds: bound(
                "max_seconds",
                request.max_seconds,
                DEFAULT_TAIL_SECONDS,
                MAX_TAIL_SECONDS,
            )?,
            per_second: bound(
                "max_per_second",
                request.max_per_second,
                DEFAULT_TAIL_RATE,
                MAX_TAIL_RATE,
            )?,
        };
        if let TailFrom::Offset(offset) = request.from
            && offset < 0
        {
            return Err(invalid("offset", "must be 0 or more"));
        }
        let (_, admin) = self.kafka_admin_of(workspace, cluster, "topics").await?;
        let fail = |e| admin_error(cluster, topic, &[], e);
        let metadata = admin.metadata().await.map_err(fail)?;
        let info = metadata
            .topic(topic)
            .filter(|t| t.error.is_none())
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("topic {topic:?} in cluster {cluster:?}"),
            })?;
        let partitions: Vec<i32> = match request.partition {
            Some(p) if info.partitions.iter().any(|i| i.partition == p) => vec![p],
            Some(p) => {
                return Err(invalid(
                    "partition",
                    format!("topic {topic:?} has no partition {p}"),
                ));
            }
            None => info.partitions.iter().map(|p| p.partition).collect(),
        };
        let keys: Vec<(String, i32)> = partitions.iter().map(|&p| (topic.to_owned(), p)).collect();
        let (starts, ends) = tokio::join!(
            admin.list_offsets_with(&metadata, &keys, EARLIEST),
            admin.list_offsets_with(&metadata, &keys, LATEST),
        );
        let offset_of = |answers: &BTreeMap<(String, i32), Result<Option<i64>, String>>,
                         p: i32|
         -> Result<i64, ServiceError> {
            match answers.get(&(topic.to_owned(), p)) {
                Some(Ok(Some(offset))) => Ok(*offset),
                Some(Err(why)) => Err(ServiceError::Unreachable {
                    code: ErrorCode::ClusterUnreachable,
                    message: format!(
                        "the offsets of {topic}-{p} in cluster {cluster:?} cannot be read: {why}"
                    ),
                }),
                _ => Err(ServiceError::Unreachable {
                    code: ErrorCode::ClusterUnreachable,
                    message: format!("no offsets of {topic}-{p} in cluster {cluster:?}"),
                }),
            }
        };
        let at_time = match request.from {
            TailFrom::Timestamp(ms) => Some(admin.list_offsets_with(&metadata, &keys, ms).await),
            _ => None,
        };
        let mut positions = BTreeMap::new();
        let mut stops = BTreeMap::new();
        for &p in &partitions {
            let (start, end) = (offset_of(&starts, p)?, offset_of(&ends, p)?);
            let position = match request.from {
                TailFrom::Earliest => start,
                TailFrom::Latest => end,
                TailFrom::Offset(offset) => offset.clamp(start, end),
                TailFrom::Timestamp(_) => {
                    match at_time.as_ref().and_then(|a| a.get(&(topic.to_owned(), p))) {
                        Some(Ok(Some(offset))) => *offset,
                        _ => end,
                    }
                }
            };
            positions.insert(p, position);
            stops.insert(p, end);
        }
        let (sender, receiver) = mpsc::channel(256);
        let tail = Tail {
            admin,
            metadata,
            topic: topic.to_owned(),
            positions,
            stops: (!request.follow).then_some(stops),
            key_contains: request.key_contains.filter(|s| !s.is_empty()),
            value_contains: request.value_contains.filter(|s| !s.is_empty()),
            bounds,
            sender,
        };
        tokio::spawn(tail.run());
        Ok(receiver)
    }

    /// Writes one record to `topic` (operator role; audited as `topic.produce`): its partition
    /// and offset.
    ///
    /// # Errors
    /// `invalid_field` (`partition`, `value`), and as [`Service::topic_get`]; a refusal by the
    /// leader is `502 kafka_error` naming the Kafka error.
    pub async fn record_produce(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        topic: &str,
        input: ProduceInput,
    ) -> Result<(i32, i64), ServiceError> {
        let result = async {
            self.authorize(caller, workspace, Role::Operator).await?;
            check_topic_name("topic", topic)?;
            let size = input.key.as_ref().map_or(0, String::len)
                + input.value.as_ref().map_or(0, String::len)
                + input.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            if size > MAX_PRODUCE_BYTES {
                return Err(invalid(
                    "value",
                    format!("the record is {size} bytes; at most {MAX_PRODUCE_BYTES} can be produced here"),
                ));
            }
            let (_, admin) = self.kafka_admin_of(workspace, cluster, "topics").await?;
            let fail = |e| admin_error(cluster, topic, &[], e);
            let metadata = admin.metadata().await.map_err(fail)?;
            let info = metadata
                .topic(topic)
                .filter(|t| t.error.is_none())
                .ok_or_else(|| ServiceError::NotFound {
                    what: format!("topic {topic:?} in cluster {cluster:?}"),
                })?;
            let count = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX);
            let partition = match (input.partition, &input.key) {
                (Some(p), _) if (0..count).contains(&p) => p,
                (Some(p), _) => {
                    return Err(invalid(
                        "partition",
                        format!("topic {topic:?} has no partition {p}"),
                    ));
                }
                (None, Some(key)) => {
                    hdi_kafka_client::partitioner::murmur2_partition(key.as_bytes(), count)
                }
                (None, None) => {
                    let mut byte = [0_u8; 4];
                    getrandom::fill(&mut byte)
                        .map_err(|e| super::auth::internal("random", e.to_string()))?;
                    i32::try_from(u32::from_le_bytes(byte) % count.max(1).unsigned_abs())
                        .unwrap_or(0)
                }
            };
            let leader = leader_address(&metadata, topic, partition).ok_or_else(|| {
                ServiceError::Unreachable {
                    code: ErrorCode::ClusterUnreachable,
                    message: format!("{topic}-{partition} has no leader in cluster {cluster:?}"),
                }
            })?;
            let record = NewRecord {
                key: input.key.map(Bytes::from),
                value: input.value.map(Bytes::from),
                headers: input
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, Some(Bytes::from(v))))
                    .collect(),
            };
            let offset = admin
                .produce(&leader, topic, partition, record)
                .await
                .map_err(fail)?;
            Ok((partition, offset))
        }
        .await;
        let resource = format!("workspaces/{workspace}/clusters/{cluster}/topics/{topic}");
        self.audited(&caller.username, "topic.produce", resource, result)
            .await
    }
}

fn leader_address(metadata: &ClusterMetadata, topic: &str, partition: i32) -> Option<String> {
    let leader = metadata
        .topic(topic)?
        .partitions
        .iter()
        .find(|p| p.partition == partition)?
        .leader;
    metadata
        .broker(leader)
        .map(crate::kafka_admin::BrokerInfo::address)
}

/// A running tail.
struct Tail {
    admin: KafkaAdmin,
    metadata: ClusterMetadata,
    topic: String,
    /// Next offset to read, by partition.
    positions: BTreeMap<i32, i64>,
    /// Where to stop, by partition, when not following.
    stops: Option<BTreeMap<i32, i64>>,
    key_contains: Option<String>,
    value_contains: Option<String>,
    bounds: Bounds,
    sender: mpsc::Sender<TailEvent>,
}

/// Counters of a tail.
#[derive(Default)]
struct Counts {
    scanned: u64,
    matched: u64,
    skipped_compressed: u64,
}

impl Tail {
    async fn run(mut self) {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(u64::from(self.bounds.seconds));
        let mut counts = Counts::default();
        let mut last_progress = started;
        let mut second = (started, 0_u32);
        let reason = loop {
            if self.done() {
                break Ok(TailEnd::EndOfPartitions);
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(TailEnd::MaxSeconds);
            }
            let wait = FETCH_WAIT.min(deadline - now);
            let fetched = match self.fetch_all(wait).await {
                Ok((fetched, skipped)) => {
                    counts.skipped_compressed += skipped;
                    fetched
                }
                Err(error) => break Err(error),
            };
            let mut stop = None;
            'partitions: for (partition, records) in fetched {
                for record in records {
                    counts.scanned += 1;
                    let Some(shown) = self.shown(partition, record) else {
                        continue;
                    };
                    // The rate bound: at most `per_second` records in each second.
                    if second.1 >= self.bounds.per_second {
                        tokio::time::sleep_until(second.0 + Duration::from_secs(1)).await;
                    }
                    let now = Instant::now();
                    if now >= second.0 + Duration::from_secs(1) {
                        second = (now, 0);
                    }
                    second.1 += 1;
                    if self.sender.send(TailEvent::Record(shown)).await.is_err() {
                        return; // the client went away
                    }
                    counts.matched += 1;
                    if counts.matched >= self.bounds.records {
                        stop = Some(TailEnd::MaxRecords);
                        break 'partitions;
                    }
                }
            }
            if let Some(reason) = stop {
                break Ok(reason);
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let progress = TailEvent::Progress {
                    scanned: counts.scanned,
                    matched: counts.matched,
                    skipped_compressed: counts.skipped_compressed,
                };
                if self.sender.send(progress).await.is_err() {
                    return;
                }
            }
        };
        let (reason, detail) = match reason {
            Ok(reason) => (reason, None),
            Err(detail) => (TailEnd::Error, Some(detail)),
        };
        let _ = self
            .sender
            .send(TailEvent::End {
                reason,
                records: counts.matched,
                scanned: counts.scanned,
                detail,
            })
            .await;
    }

    /// Whether every partition reached its stop (never, when following).
    fn done(&self) -> bool {
        self.stops.as_ref().is_some_and(|stops| {
            self.positions
                .iter()
                .all(|(p, at)| stops.get(p).is_none_or(|stop| at >= stop))
        })
    }

    /// One round: a fetch from every leader at once; the records by partition, in order, and
    /// how many records of compressed batches were skipped. Positions move past what was read;
    /// a moved or unreachable leader is found again from fresh metadata, an offset that left the
    /// log jumps to the log start; a cluster whose metadata cannot be read is an error.
    async fn fetch_all(
        &mut self,
        wait: Duration,
    ) -> Result<(Vec<(i32, Vec<FetchedRecord>)>, u64), String> {
        let mut by_leader: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
        let mut leaderless = false;
        for (&p, &at) in &self.positions {
            if self
                .stops
                .as_ref()
                .and_then(|s| s.get(&p))
                .is_some_and(|stop| at >= *stop)
            {
                continue;
            }
            match leader_address(&self.metadata, &self.topic, p) {
                Some(address) => by_leader.entry(address).or_default().push((p, at)),
                None => leaderless = true,
            }
        }
        let fetches = by_leader.iter().map(|(leader, positions)| {
            self.admin
                .fetch(leader, &self.topic, positions, wait, FETCH_BYTES)
        });
        let answers = futures::future::join_all(fetches).await;
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut refresh = leaderless;
        for answer in answers {
            let partitions = match answer {
                Ok(partitions) => partitions,
                Err(AdminError::Kafka { name, .. }) => {
                    return Err(format!("the leader refused the fetch: {name}"));
                }
                Err(_) => {
                    refresh = true;
                    continue;
                }
            };
            for fetched in partitions {
                match fetched.error.as_ref().map(|e| e.name.as_str()) {
                    None => {}
                    Some("OFFSET_OUT_OF_RANGE") => {
                        // Retention moved the log start past us: go on from there.
                        if let Some(at) = self.positions.get_mut(&fetched.partition)
                            && fetched.log_start_offset > *at
                        {
                            *at = fetched.log_start_offset;
                        } else {
                            refresh = true;
                        }
                        continue;
                    }
                    Some("TOPIC_AUTHORIZATION_FAILED") => {
                        return Err("the control plane may not read this topic".to_owned());
                    }
                    Some(_) => {
                        refresh = true;
                        continue;
                    }
                }
                let mut records = fetched.records;
                if let Some(stop) = self.stops.as_ref().and_then(|s| s.get(&fetched.partition)) {
                    records.retain(|r| r.offset < *stop);
                }
                if let Some(at) = self.positions.get_mut(&fetched.partition) {
                    *at = (*at).max(fetched.next_offset);
                }
                skipped += fetched.skipped_compressed;
                out.push((fetched.partition, records));
            }
        }
        if refresh {
            match self.admin.metadata().await {
                Ok(metadata) => self.metadata = metadata,
                Err(error) => return Err(format!("the cluster cannot be reached: {error}")),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((out, skipped))
    }

    /// The record as sent, if it passes the filters.
    fn shown(&self, partition: i32, record: FetchedRecord) -> Option<TailRecord> {
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let value = record.value.as_deref().map(String::from_utf8_lossy);
        if let Some(wanted) = &self.key_contains
            && !key.as_deref().is_some_and(|k| k.contains(wanted.as_str()))
        {
            return None;
        }
        if let Some(wanted) = &self.value_contains
            && !value
                .as_deref()
                .is_some_and(|v| v.contains(wanted.as_str()))
        {
            return None;
        }
        let mut truncated = false;
        let mut cut = |text: std::borrow::Cow<'_, str>| {
            if text.chars().count() > SHOWN_CHARS {
                truncated = true;
                text.chars().take(SHOWN_CHARS).collect()
            } else {
                text.into_owned()
            }
        };
        let key = key.map(&mut cut);
        let value = value.map(&mut cut);
        Some(TailRecord {
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key,
            value,
            headers: record
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.map(|v| String::from_utf8_lossy(&v).into_owned())))
                .collect(),
            truncated,
        })
    }
}
