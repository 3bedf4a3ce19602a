//! The Kafka source's task reads without librdkafka: Fetch requests (`hdi-kafka-client`'s
//! blocking connection) on a plain socket to the partition's leader, and the v2 record batches of
//! the answer decoded straight into a [`RawBatch`]. librdkafka hands records over one `poll` (and
//! one allocation, lock and clock read) at a time and prefetches past the range's end; reading a
//! task's range this way costs about a memcpy per record.
//!
//! Semantics: the records at the offsets `[start, end)`, in order; offsets with no record are
//! skipped, as Kafka's consumers skip them: a compacted topic's log has gaps between batches and
//! inside them (the cleaner keeps each survivor's offset and each batch's last offset), so a gap
//! is not taken for loss; `read_committed`: batches of aborted transactions and control
//! batches (commit/abort markers) occupy offsets but give no records. A batch's records are split
//! by `hdi_log::records::parse_records`, which refuses a record whose offset lies outside its
//! batch (the range a batch's header claims bounds what a reader skips). Every batch's CRC-32C is
//! checked (`hdi_log::batch::validate`, as the broker checks produced batches), and compressed
//! batches are decompressed here (`hdi_kafka_client::compression`: gzip, snappy, lz4, zstd; the
//! bundled librdkafka has no zstd). A batch in the pre-v2 message format makes [`fetch`]
//! answer `None`, and the caller reads the range with librdkafka instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use hdi_kafka_client::blocking::Connection;
use hdi_kafka_client::codes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{FETCH_TIMEOUT, RawBatch};

/// Fetch v11 (Kafka 2.3+; hdi-broker serves 4..=12): topic names, isolation level, not flexible.
const FETCH_VERSION: i16 = 11;
/// Metadata v8 (Kafka 2.3+; hdi-broker serves 0..=12).
const METADATA_VERSION: i16 = 8;
const CLIENT_ID: &str = "hdi-executor";
/// How long a connect, or a request's answer, may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the broker may hold a fetch with no data (the range is below the high watermark, so
/// data is normally there at once).
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Bytes asked for per fetch at most; the first fetch of a range asks for this much, later ones
/// for about what the rest of the range needs.
const FETCH_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Bytes asked for per fetch at least.
const FETCH_MIN_BYTES: usize = 64 * 1024;
/// The largest answer frame accepted.
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;
/// Idle connections kept per broker address.
const IDLE_PER_ADDRESS: usize = 8;
/// The most records and bytes reserved ahead for a range (beyond, the buffer grows as it fills:
/// the estimate comes from record sizes, which any producer decides).
const RESERVE_RECORDS_MAX: usize = 4 * 1024 * 1024;
const RESERVE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Pause before retrying after a retriable error.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Errors after which the leader is looked up again and the fetch retried.
fn retriable(code: i16) -> bool {
    matches!(
        code,
        codes::UNKNOWN_TOPIC_OR_PARTITION
            | codes::LEADER_NOT_AVAILABLE
            | codes::NOT_LEADER_OR_FOLLOWER
            | codes::REQUEST_TIMED_OUT
            | codes::REPLICA_NOT_AVAILABLE
            | codes::NOT_ENOUGH_REPLICAS
            | codes::KAFKA_STORAGE_ERROR
            | codes::FENCED_LEADER_EPOCH
            | codes::UNKNOWN_LEADER_EPOCH
            | codes::OFFSET_NOT_AVAILABLE
    )
}

/// Connections by broker address and partition leaders by (bootstrap, topic, partition).
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<BTreeMap<String, Vec<Connection>>>,
    leaders: Mutex<HashMap<(String, String, i32), String>>,
}

impl Pool {
    fn take(&self, addr: &str) -> anyhow::Result<Connection> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(addr)
            .and_then(Vec::pop);
        match pooled {
            Some(connection) => Ok(connection),
            None => connect(addr),
        }
    }

    fn give(&self, addr: &str, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(addr.to_string()).or_default();
        if list.len() < IDLE_PER_ADDRESS {
            list.push(connection);
        }
    }

    fn leader(&self, bootstrap: &str, topic: &str, partition: i32) -> Option<String> {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(bootstrap.to_string(), topic.to_string(), partition))
            .cloned()
    }

    fn forget_leader(&self, bootstrap: &str, topic: &str, partition: i32) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(bootstrap.to_string(), topic.to_string(), partition));
    }

    /// Asks the bootstrap servers for `topic`'s leaders and caches them; returns `partition`'s.
    fn lookup_leader(
        &self,
        bootstrap: &str,
        topic: &str,
        partition: i32,
    ) -> anyhow::Result<String> {
        let metadata = metadata(bootstrap, topic)?;
        let brokers: HashMap<i32, String> = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let found = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .with_context(|| format!("{bootstrap} answered no metadata for topic {topic}"))?;
        if found.error_code != codes::NONE {
            bail!(
                "the metadata of topic {topic} from {bootstrap}: error code {}",
                found.error_code
            );
        }
        let mut leaders = self.leaders.lock().unwrap_or_else(PoisonError::into_inner);
        for p in &found.partitions {
            let key = (bootstrap.to_string(), topic.to_string(), p.partition_index);
            match brokers.get(&p.leader_id.0) {
                Some(addr) if p.leader_id.0 >= 0 => {
                    leaders.insert(key, addr.clone());
                }
                _ => {
                    leaders.remove(&key);
                }
            }
        }
        leaders
            .get(&(bootstrap.to_string(), topic.to_string(), partition))
            .cloned()
            .with_context(|| format!("{topic}[{partition}] has no leader (from {bootstrap})"))
    }
}

/// The records of `topic[partition]` in `[start, end)` (`start < end`), or `None` when the
/// partition holds a batch this reader does not decode (the caller falls back to librdkafka).
pub(super) fn fetch(
    pool: &super::ConsumerPool,
    bootstrap: &str,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
) -> anyhow::Result<Option<RawBatch>> {
    let pool = &pool.direct;
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let mut out = RawBatch::default();
    let mut reader = BatchReader::new(start, end);
    let mut want = FETCH_MAX_BYTES;
    let mut last_error: Option<anyhow::Error> = None;
    let mut reserved = false;
    while reader.next < end {
        if Instant::now() > deadline {
            let why = last_error.map(|e| format!(": {e:#}")).unwrap_or_default();
            bail!(
                "reading {topic}[{partition}] offsets {start}..{end} took over {FETCH_TIMEOUT:?} (got to {}){why}",
                reader.next
            );
        }
        if last_error.is_some() {
            std::thread::sleep(RETRY_PAUSE);
        }
        let addr = match pool.leader(bootstrap, topic, partition) {
            Some(addr) => addr,
            None => match pool.lookup_leader(bootstrap, topic, partition) {
                Ok(addr) => addr,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            },
        };
        let mut connection = match pool.take(&addr) {
            Ok(c) => c,
            Err(e) => {
                pool.forget_leader(bootstrap, topic, partition);
                last_error = Some(e);
                continue;
            }
        };
        let request = fetch_request(topic, partition, reader.next, want);
        // An answer may not outlast the task's deadline (the driver retries a late task
        // elsewhere).
        let left = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), SOCKET_TIMEOUT);
        if let Err(e) = connection.stream().set_read_timeout(Some(left)) {
            last_error = Some(e.into());
            continue;
        }
        let response: FetchResponse = match connection.call(&request, FETCH_VERSION) {
            Ok(r) => r,
            Err(e) => {
                // The connection is dropped: its state after a failure is unknown.
                pool.forget_leader(bootstrap, topic, partition);
                last_error = Some(anyhow!(e).context(format!("fetch from {addr}")));
                continue;
            }
        };
        pool.give(&addr, connection);
        let data = response
            .responses
            .into_iter()
            .filter(|t| t.topic.0.as_str() == topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition);
        let Some(data) = data else {
            last_error = Some(anyhow!(
                "{addr} answered a fetch without {topic}[{partition}]"
            ));
            continue;
        };
        match data.error_code {
            codes::NONE => {}
            codes::OFFSET_OUT_OF_RANGE => bail!(
                "reading {topic}[{partition}]: offset {} is out of range (log start {}, high watermark {})",
                reader.next,
                data.log_start_offset,
                data.high_watermark
            ),
            c if retriable(c) => {
                pool.forget_leader(bootstrap, topic, partition);
                last_error = Some(anyhow!(
                    "fetch {topic}[{partition}] from {addr}: error code {c}"
                ));
                continue;
            }
            c => bail!("reading {topic}[{partition}] from {addr}: error code {c}"),
        }
        let records = data.records.unwrap_or_default();
        let aborted: Vec<(i64, i64)> = data
            .aborted_transactions
            .unwrap_or_default()
            .iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        let before = reader.next;
        let consumed = match reader.read(&records, &aborted, &mut out) {
            Ok(Some(consumed)) => consumed,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(e.context(format!("reading {topic}[{partition}] from {addr}")));
            }
        };
        last_error = None;
        if reader.next == before && !records.is_empty() {
            // Only a partial batch came back: ask for more (KIP-74 brokers always return the
            // first batch whole, so this is an old or odd broker).
            if want >= MAX_RESPONSE_BYTES / 2 {
                bail!(
                    "reading {topic}[{partition}] from {addr}: no whole record batch at offset {} in {} bytes",
                    reader.next,
                    records.len()
                );
            }
            want *= 2;
            continue;
        }
        if reader.next > before {
            // Ask for about what the rest of the range needs (the last fetch of a task otherwise
            // reads, and the broker sends, up to a whole fetch past the range's end).
            let per_offset = consumed as f64 / (reader.next - before) as f64;
            let rest = (end - reader.next) as f64 * per_offset * 1.05;
            want = (rest as usize).clamp(FETCH_MIN_BYTES, FETCH_MAX_BYTES);
            if !reserved {
                // The rest of the range is about as large: one allocation, not a doubling series.
                reserved = true;
                let rest = usize::try_from(end - reader.next).unwrap_or(0);
                out.records.reserve(rest.min(RESERVE_RECORDS_MAX));
                out.buffer
                    .reserve(((rest as f64 * per_offset) as usize).min(RESERVE_BYTES_MAX));
            }
        }
    }
    Ok(Some(out))
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_bytes: usize) -> FetchRequest {
    let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        // read_committed, as librdkafka's default.
        .with_isolation_level(1)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(max_bytes),
                ]),
        ])
}

/// Metadata of `topic` from the first bootstrap server that answers.
fn metadata(bootstrap: &str, topic: &str) -> anyhow::Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let mut errors = Vec::new();
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        // librdkafka accepts `PLAINTEXT://host:port` too.
        let addr = addr.rsplit_once("://").map_or(addr, |(_, a)| a);
        match connect(addr).and_then(|mut c| Ok(c.call(&request, METADATA_VERSION)?)) {
            Ok(response) => return Ok(response),
            Err(e) => errors.push(format!("{addr}: {e:#}")),
        }
    }
    bail!("no bootstrap server answered: {}", errors.join("; "))
}

/// A blocking connection to `addr` (`host:port`): the first resolved address that accepts within
/// [`SOCKET_TIMEOUT`], no delay, reads and writes timing out after [`SOCKET_TIMEOUT`].
fn connect(addr: &str) -> anyhow::Result<Connection> {
    let mut last = None;
    for resolved in addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
    {
        match TcpStream::connect_timeout(&resolved, SOCKET_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
                stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
                return Ok(Connection::new(stream, CLIENT_ID, MAX_RESPONSE_BYTES));
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(anyhow!(e).context(format!("cannot connect to {addr}"))),
        None => bail!("{addr} resolves to no address"),
    }
}

/// Decodes the record batches of fetch answers into a [`RawBatch`], checking offsets.
#[derive(Debug)]
struct BatchReader {
    /// The next offset expected.
    next: i64,
    /// One past the last offset wanted.
    end: i64,
}

/// Decodes one Fetch answer's `records` for the range `[start, end)` (what [`fetch`] does with
/// each answer): the records read, or `None` for a batch this reader does not decode.
pub(super) fn decode(start: i64, end: i64, records: &[u8]) -> anyhow::Result<Option<RawBatch>> {
    let mut out = RawBatch::default();
    let mut reader = BatchReader::new(start, end);
    Ok(reader.read(records, &[], &mut out)?.map(|_| out))
}

/// Offsets of the v2 record batch header fields.
const BATCH_HEADER_BYTES: usize = hdi_log::batch::HEADER_SIZE;

impl BatchReader {
    fn new(start: i64, end: i64) -> BatchReader {
        BatchReader { next: start, end }
    }

    /// Reads the whole batches of one fetch answer's `records` (a partial batch at the end is
    /// left for the next fetch), given the answer's aborted transactions `(first offset,
    /// producer id)`; returns the bytes of the batches read, or `None` on a batch this reader
    /// does not decode.
    fn read(
        &mut self,
        records: &[u8],
        aborted: &[(i64, i64)],
        out: &mut RawBatch,
    ) -> anyhow::Result<Option<usize>> {
        let mut aborted: Vec<(i64, i64)> = aborted.to_vec();
        // Popped from the back in first-offset order.
        aborted.sort_unstable_by(|a, b| b.cmp(a));
        let mut aborting: HashSet<i64> = HashSet::new();
        let mut pos = 0usize;
        while self.next < self.end {
            let rest = &records[pos..];
            if rest.len() < 17 {
                break;
            }
            let base_offset = i64::from_be_bytes(array(&rest[0..8]));
            let length = i32::from_be_bytes(array(&rest[8..12]));
            let magic = rest[16];
            let total = usize::try_from(length)
                .ok()
                .and_then(|l| l.checked_add(12))
                .with_context(|| {
                    format!("a record batch at offset {base_offset} with length {length}")
                })?;
            if rest.len() < total {
                break;
            }
            if magic != 2 {
                return Ok(None);
            }
            let batch = &rest[..total];
            // The header's fields checked against each other, and the CRC-32C over the batch
            // (the broker checked it on produce; this catches damage on the way).
            let header = hdi_log::batch::validate(batch, total).with_context(|| {
                format!("the record batch at offset {base_offset} ({total} bytes)")
            })?;
            pos += total;
            let attributes = header.attributes;
            let producer_id = header.producer_id;
            let batch_end = header.last_offset() + 1;
            if batch_end <= self.next {
                // Before the range (a fetch answers from the batch holding the offset asked).
                continue;
            }
            if base_offset > self.next {
                // Offsets compacted away (or a range end inside such a gap).
                self.next = base_offset.min(self.end);
                if self.next >= self.end {
                    continue;
                }
            }
            let transactional = attributes & 0x10 != 0;
            let control = attributes & 0x20 != 0;
            while aborted.last().is_some_and(|(first, _)| *first < batch_end) {
                if let Some((_, id)) = aborted.pop() {
                    aborting.insert(id);
                }
            }
            if control {
                // A commit or abort marker: its one record's key is (version, type), 0 = abort.
                if transactional && control_type(&batch[BATCH_HEADER_BYTES..], &header) == Some(0) {
                    aborting.remove(&producer_id);
                }
                self.next = batch_end.min(self.end);
                continue;
            }
            if transactional && aborting.contains(&producer_id) {
                self.next = batch_end.min(self.end);
                continue;
            }
            let body = &batch[BATCH_HEADER_BYTES..];
            let decompressed;
            let body = match header.compression() {
                0 => body,
                codec => {
                    decompressed = hdi_kafka_client::compression::decompress(codec, body)
                        .with_context(|| format!("the record batch at offset {base_offset}"))?;
                    &decompressed[..]
                }
            };
            self.read_records(body, &header, out)
                .with_context(|| format!("the record batch at offset {base_offset}"))?;
            // The batch's last offsets may hold no record (compacted away).
            self.next = self.next.max(batch_end.min(self.end));
        }
        Ok(Some(pos))
    }

    /// Takes the records of one batch (`records`: its records section, decompressed) at the
    /// offsets of `[next, end)`. `hdi-log` splits them, and checks each record's offset against
    /// the batch's range; offsets inside the batch with no record (compacted away) are skipped.
    fn read_records(
        &mut self,
        records: &[u8],
        header: &hdi_log::BatchHeader,
        out: &mut RawBatch,
    ) -> anyhow::Result<()> {
        for record in hdi_log::records::parse_records(records, header)? {
            if record.offset < self.next {
                continue;
            }
            if record.offset >= self.end {
                return Ok(());
            }
            // A null value reads as an empty record.
            out.push(record.value.unwrap_or_default());
            self.next = record.offset + 1;
        }
        Ok(())
    }
}

/// The type of a control batch's record (0 = abort, 1 = commit), from its key (version i16,
/// type i16); `None` when the batch does not hold such a record.
fn control_type(records: &[u8], header: &hdi_log::BatchHeader) -> Option<i16> {
    let parsed = hdi_log::records::parse_records(records, header).ok()?;
    let key = parsed.first()?.key?;
    Some(i16::from_be_bytes([*key.get(2)?, *key.get(3)?]))
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// A test record: offset delta, key, value.
    type TestRecord<'a> = (i32, Option<&'a [u8]>, Option<&'a [u8]>);
    /// A fetch answer's records and aborted transactions.
    type Answer = (Vec<u8>, Vec<(i64, i64)>);

    use hdi_log::records::put_varint;

    /// Writes `batch`'s CRC-32C.
    fn seal(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    /// A v2 batch of records `(offset delta, key, value)`.
    fn batch(base: i64, records: &[TestRecord<'_>], attributes: i16, producer_id: i64) -> Vec<u8> {
        let mut body = Vec::new();
        for (delta, key, value) in records {
            let mut r = vec![0u8];
            put_varint(&mut r, 0);
            put_varint(&mut r, i64::from(*delta));
            for field in [key, value] {
                match field {
                    Some(v) => {
                        put_varint(&mut r, v.len() as i64);
                        r.extend_from_slice(v);
                    }
                    None => put_varint(&mut r, -1),
                }
            }
            put_varint(&mut r, 0);
            put_varint(&mut body, r.len() as i64);
            body.extend_from_slice(&r);
        }
        let last_delta = records.last().map_or(0, |r| r.0);
        let mut out = Vec::new();
        out.extend_from_slice(&base.to_be_bytes());
        let length = (BATCH_HEADER_BYTES - 12 + body.len()) as i32;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_delta.to_be_bytes());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&(records.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        seal(&mut out);
        out
    }

    fn plain(base: i64, values: &[&[u8]]) -> Vec<u8> {
        let records: Vec<TestRecord<'_>> = (0i32..)
            .zip(values)
            .map(|(delta, v)| (delta, None, Some(*v)))
            .collect();
        batch(base, &records, 0, -1)
    }

    fn read_all(start: i64, end: i64, answers: &[Answer]) -> anyhow::Result<Option<RawBatch>> {
        let mut reader = BatchReader::new(start, end);
        let mut out = RawBatch::default();
        for (records, aborted) in answers {
            if reader.read(records, aborted, &mut out)?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    fn values(out: &RawBatch) -> Vec<String> {
        (0..out.len())
            .map(|i| String::from_utf8_lossy(out.record(i)).into_owned())
            .collect()
    }

    #[test]
    fn reads_exactly_the_range_across_batches_and_partial_tails() {
        let mut answer = plain(10, &[b"a", b"b", b"c"]);
        answer.extend(plain(13, &[b"d", b"e"]));
        let second = plain(15, &[b"f", b"g", b"h"]);
        // The answer ends with the first 20 bytes of the next batch.
        answer.extend_from_slice(&second[..20]);
        let mut reader = BatchReader::new(11, 17);
        let mut out = RawBatch::default();
        let consumed = reader.read(&answer, &[], &mut out).unwrap().unwrap();
        assert_eq!(consumed, answer.len() - 20);
        assert_eq!(reader.next, 15);
        reader.read(&second, &[], &mut out).unwrap().unwrap();
        assert_eq!(reader.next, 17);
        assert_eq!(values(&out), ["b", "c", "d", "e", "f", "g"]);
        assert_eq!(out.buffer, b"b\nc\nd\ne\nf\ng\n");
    }

    #[test]
    fn a_null_value_is_an_empty_record() {
        let answer = batch(0, &[(0, None, None), (1, None, Some(b"x"))], 0, -1);
        let out = read_all(0, 2, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), ["", "x"]);
    }

    #[test]
    fn gaps_of_a_compacted_log_are_skipped() {
        // Between batches.
        let mut answer = plain(0, &[b"a", b"b"]);
        answer.extend(plain(3, &[b"d"]));
        let out = read_all(0, 4, &[(answer.clone(), vec![])])
            .unwrap()
            .unwrap();
        assert_eq!(values(&out), ["a", "b", "d"]);
        // A range that ends inside the gap stops there.
        let out = read_all(1, 3, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), ["b"]);
        // Inside a batch (a compacted one).
        let answer = batch(0, &[(0, None, Some(b"a")), (2, None, Some(b"c"))], 0, -1);
        let out = read_all(0, 3, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), ["a", "c"]);
        // At a batch's end (its last offsets compacted away), then the next batch.
        let mut answer = plain(0, &[b"a", b"b"]);
        answer[23..27].copy_from_slice(&3i32.to_be_bytes());
        seal(&mut answer);
        answer.extend(plain(4, &[b"e"]));
        let out = read_all(0, 5, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), ["a", "b", "e"]);
    }

    #[test]
    fn a_record_outside_its_batch_is_an_error() {
        // A record claims offset 3 of a batch whose last offset is 1 (its CRC is right).
        let answer = batch(0, &[(3, None, Some(b"a")), (1, None, Some(b"b"))], 0, -1);
        let error = read_all(0, 2, &[(answer, vec![])]).unwrap_err();
        assert!(
            format!("{error:#}").contains("offset delta outside the batch"),
            "{error:#}"
        );
    }

    #[test]
    fn a_damaged_batch_fails_its_crc() {
        let mut answer = plain(0, &[b"abc", b"def"]);
        let at = answer.len() - 2;
        answer[at] ^= 0x20;
        let error = read_all(0, 2, &[(answer, vec![])]).unwrap_err();
        assert!(format!("{error:#}").contains("CRC-32C"), "{error:#}");
    }

    /// `plain`'s batch with its records compressed by `codec`.
    fn compressed(codec: i16, base: i64, values: &[&[u8]]) -> Vec<u8> {
        use std::io::Write as _;
        let plain = plain(base, values);
        let body = &plain[BATCH_HEADER_BYTES..];
        let packed = match codec {
            1 => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            2 => snap::raw::Encoder::new().compress_vec(body).unwrap(),
            3 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            4 => zstd::stream::encode_all(body, 3).unwrap(),
            _ => body.to_vec(),
        };
        let mut out = plain[..BATCH_HEADER_BYTES].to_vec();
        out.extend_from_slice(&packed);
        let length = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        out[21..23].copy_from_slice(&codec.to_be_bytes());
        seal(&mut out);
        out
    }

    #[test]
    fn compressed_batches_decode_with_every_codec() {
        let json: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i}}}")).collect();
        let refs: Vec<&[u8]> = json.iter().map(|v| v.as_bytes()).collect();
        for codec in 1..=4 {
            let mut answer = compressed(codec, 0, &refs[..30]);
            answer.extend(compressed(codec, 30, &refs[30..]));
            let out = read_all(5, 45, &[(answer, vec![])]).unwrap().unwrap();
            assert_eq!(values(&out), json[5..45], "codec {codec}");
        }
        // The Java client's xerial framing of snappy.
        let plain = plain(0, &refs);
        let body = &plain[BATCH_HEADER_BYTES..];
        let block = snap::raw::Encoder::new().compress_vec(body).unwrap();
        let mut framed = b"\x82SNAPPY\x00".to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        let mut answer = plain[..BATCH_HEADER_BYTES].to_vec();
        answer.extend_from_slice(&framed);
        let length = (answer.len() - 12) as i32;
        answer[8..12].copy_from_slice(&length.to_be_bytes());
        answer[21..23].copy_from_slice(&2i16.to_be_bytes());
        seal(&mut answer);
        let out = read_all(0, 50, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), json);
        // An unknown codec is an error, not a guess.
        let error = read_all(0, 50, &[(compressed(6, 0, &refs), vec![])]).unwrap_err();
        assert!(format!("{error:#}").contains("codec 6"), "{error:#}");
    }

    #[test]
    fn old_batches_fall_back() {
        let mut old = plain(0, &[b"a"]);
        old[16] = 1;
        assert!(read_all(0, 1, &[(old, vec![])]).unwrap().is_none());
    }

    #[test]
    fn aborted_transactions_and_markers_take_offsets_but_give_no_records() {
        const TXN: i16 = 0x10;
        const CONTROL: i16 = 0x20;
        // A marker's key: version 0, type (0 = abort, 1 = commit).
        const ABORT: &[u8] = &[0, 0, 0, 0];
        const COMMIT: &[u8] = &[0, 0, 0, 1];
        let mut answer = plain(0, &[b"a"]);
        // Producer 7 writes 1..=2 and aborts (marker at 3); producer 8 writes 4 and commits (5).
        let txn = [(0, None, Some(&b"x"[..])), (1, None, Some(&b"y"[..]))];
        answer.extend(batch(1, &txn, TXN, 7));
        answer.extend(batch(3, &[(0, Some(ABORT), None)], TXN | CONTROL, 7));
        answer.extend(batch(4, &[(0, None, Some(b"z"))], TXN, 8));
        answer.extend(batch(5, &[(0, Some(COMMIT), None)], TXN | CONTROL, 8));
        answer.extend(plain(6, &[b"b"]));
        let out = read_all(0, 7, &[(answer.clone(), vec![(1, 7)])])
            .unwrap()
            .unwrap();
        assert_eq!(values(&out), ["a", "z", "b"]);
        // Without the abort in the answer, producer 7's records are read.
        let out = read_all(0, 7, &[(answer, vec![])]).unwrap().unwrap();
        assert_eq!(values(&out), ["a", "x", "y", "z", "b"]);
    }
}
