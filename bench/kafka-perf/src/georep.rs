//! The commands `cargo xtask bench georep` runs against both mirroring systems (hdi's cluster
//! links and MirrorMaker 2), which need records they can tell apart:
//!
//! - `produce-ids`: records whose first 8 bytes are a sequence number (big-endian), round-robin
//!   over a topic's partitions, at a rate or as fast as the broker takes them, for a number of
//!   records or of seconds; the ids the broker acknowledged are written to a file (one per line),
//!   failures are counted, not fatal (the forced-failover run kills the broker under it).
//! - `missing`: reads a topic from its beginning to its high watermarks and counts the ids of
//!   such a file that it lacks (records a source acknowledged that its mirror does not hold).
//! - `compare`: the records at sampled offsets of a topic and of its mirror: how many are the
//!   same record (key, value, timestamp) at the same offset.
//! - `commit`: commits a group's offsets of a topic at its high watermarks (a consumer that read
//!   everything); `committed`: a group's committed offsets of a topic.
//! - `broker-config`: one config of a broker (DescribeConfigs of the broker resource by id).
//! - `delete-records`: deletes every partition's records below an offset (DeleteRecords), as
//!   retention does to a topic that has lived a while.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

#[derive(Default)]
struct Acks {
    ids: Vec<u64>,
    failed: u64,
    first_error: Option<String>,
}

struct IdContext(Arc<Mutex<Acks>>);

impl ClientContext for IdContext {}

impl ProducerContext for IdContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let mut acks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => acks.ids.push(id as u64),
            Err((error, _)) => {
                acks.failed += 1;
                if acks.first_error.is_none() {
                    acks.first_error = Some(error.to_string());
                }
            }
        }
    }
}

/// What `produce-ids` does.
pub struct IdOptions {
    pub topic: String,
    pub partitions: i32,
    /// At most this many records (0 = no limit).
    pub records: u64,
    /// Records per second (0 = as fast as the broker takes them).
    pub rate: u64,
    /// For at most this long (0 = no limit).
    pub seconds: u64,
    pub record_size: usize,
    pub acks: String,
    /// How long librdkafka tries to deliver a record before counting it failed.
    pub message_timeout_ms: u64,
    pub acked_file: Option<std::path::PathBuf>,
    /// The first record's id (the next ones count up from it).
    pub first_id: u64,
}

/// `produce-ids`.
pub fn produce_ids(mut config: ClientConfig, options: &IdOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.records > 0 || options.seconds > 0,
        "give --records or --seconds"
    );
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer: BaseProducer<IdContext> = config
        .set("acks", &options.acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", options.message_timeout_ms.to_string())
        .create_with_context(IdContext(Arc::clone(&acks)))
        .context("producer")?;
    let mut payload = vec![b'x'; options.record_size.max(8)];
    for (i, byte) in payload.iter_mut().enumerate().skip(8) {
        *byte = b'a' + (i % 26) as u8;
    }
    let started = Instant::now();
    let end = (options.seconds > 0).then(|| started + Duration::from_secs(options.seconds));
    let mut sent = 0u64;
    while options.records == 0 || sent < options.records {
        if end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        if options.rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / options.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let id = options.first_id + sent;
        payload[..8].copy_from_slice(&id.to_be_bytes());
        let partition = (sent % options.partitions.max(1) as u64) as i32;
        loop {
            let record: BaseRecord<'_, (), [u8], usize> =
                BaseRecord::with_opaque_to(&options.topic, id as usize)
                    .partition(partition)
                    .payload(payload.as_slice());
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => bail!("produce to {}: {error}", options.topic),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    let sending = started.elapsed().as_secs_f64();
    // Every record is acknowledged or failed within message.timeout.ms.
    let _ = producer.flush(Duration::from_millis(options.message_timeout_ms + 5_000));
    let seconds = started.elapsed().as_secs_f64();
    drop(producer);
    let acks = acks.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = &options.acked_file {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for id in &acks.ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
    }
    let bytes = acks.ids.len() as f64 * payload.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "sent": sent, "acked": acks.ids.len(), "failed": acks.failed,
            "first_error": acks.first_error, "sending_seconds": sending, "seconds": seconds,
            "mb_per_s": bytes / seconds / 1e6,
        })
    );
    Ok(())
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<i32> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let count = metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    anyhow::ensure!(count > 0, "topic {topic} does not exist");
    Ok(i32::try_from(count)?)
}

fn reader(mut config: ClientConfig) -> anyhow::Result<BaseConsumer> {
    config
        .set("group.id", "hdi-kafka-perf-georep")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.error.backoff.ms", "10")
        .create()
        .context("consumer")
}

/// `missing`: the acked ids of `acked_file` that `topic` lacks.
pub fn missing(config: ClientConfig, topic: &str, acked_file: &Path) -> anyhow::Result<()> {
    let consumer = reader(config)?;
    let partitions = partition_count(&consumer, topic)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        remaining += high - low;
        if high > low {
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    let total = remaining;
    consumer.assign(&assignment)?;
    let mut seen = HashSet::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut duplicates = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while remaining > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "read {} of {total} records of {topic} in 300 s",
            total - remaining
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                remaining -= 1;
                if let Some(id) = message
                    .payload()
                    .and_then(|p| p.get(..8))
                    .and_then(|p| <[u8; 8]>::try_from(p).ok())
                    && !seen.insert(u64::from_be_bytes(id))
                {
                    duplicates += 1;
                }
            }
            Some(Err(error)) => bail!("consume {topic}: {error}"),
            None => {}
        }
    }
    let text =
        std::fs::read_to_string(acked_file).with_context(|| format!("{}", acked_file.display()))?;
    let mut acked = 0u64;
    let mut lacking = 0u64;
    for line in text.lines().filter(|l| !l.is_empty()) {
        acked += 1;
        if !seen.contains(&line.parse::<u64>()?) {
            lacking += 1;
        }
    }
    println!(
        "{}",
        serde_json::json!({"records": total, "acked": acked, "missing": lacking, "duplicates": duplicates})
    );
    Ok(())
}

type Sampled = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

/// The record at `offset` (or the first after it) of a partition.
fn record_at(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Option<Sampled>> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.partition() == partition && m.offset() >= offset => {
                return Ok(Some((
                    m.offset(),
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    m.timestamp().to_millis(),
                )));
            }
            Some(Ok(_)) | None => {}
            Some(Err(error)) => bail!("consume {topic}/{partition}: {error}"),
        }
    }
    Ok(None)
}

/// `compare`: the records at `samples` offsets per partition, spread evenly over the source's
/// log, read from the source's `topic` and the mirror's `mirror_topic`.
pub fn compare(
    source: ClientConfig,
    mirror: ClientConfig,
    topic: &str,
    mirror_topic: &str,
    samples: i64,
) -> anyhow::Result<()> {
    let small = |mut c: ClientConfig| {
        c.set("fetch.max.bytes", "1048576")
            .set("max.partition.fetch.bytes", "8192");
        reader(c)
    };
    let (a, b) = (small(source)?, small(mirror)?);
    let partitions = partition_count(&a, topic)?;
    let (mut sampled, mut identical, mut same_end) = (0u64, 0u64, 0u64);
    for partition in 0..partitions {
        let (low, high) = a.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let (mirror_low, mirror_high) =
            b.fetch_watermarks(mirror_topic, partition, Duration::from_secs(10))?;
        same_end += u64::from(high == mirror_high);
        if high <= low {
            continue;
        }
        let step = ((high - low) / samples.max(1)).max(1);
        let mut offset = low;
        while offset < high {
            sampled += 1;
            let here = record_at(&a, topic, partition, offset)?;
            // The mirror holds no record at an offset outside its log.
            let there = if (mirror_low..mirror_high).contains(&offset) {
                record_at(&b, mirror_topic, partition, offset)?
            } else {
                None
            };
            if here.is_some() && here == there {
                identical += 1;
            }
            offset += step;
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "partitions": partitions, "same_end_offsets": same_end, "sampled": sampled,
            "identical": identical,
            "share": if sampled == 0 { 0.0 } else { identical as f64 / sampled as f64 },
        })
    );
    Ok(())
}

/// `commit`: commits `group`'s offsets of every partition of `topic` at its high watermark.
pub fn commit(mut config: ClientConfig, group: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("consumer")?;
    let partitions = partition_count(&consumer, topic)?;
    let mut offsets = TopicPartitionList::new();
    let mut values = Vec::new();
    for partition in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        offsets.add_partition_offset(topic, partition, Offset::Offset(high))?;
        values.push(high);
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    println!("{}", serde_json::json!({"offsets": values}));
    Ok(())
}

/// `committed`: `group`'s committed offsets of every partition of `topic` (-1 for none, and an
/// empty list while the topic does not exist).
pub fn committed(mut config: ClientConfig, group: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("consumer")?;
    let partitions = partition_count(&consumer, topic).unwrap_or(0);
    let mut wanted = TopicPartitionList::new();
    for partition in 0..partitions {
        wanted.add_partition(topic, partition);
    }
    let mut values = vec![-1i64; usize::try_from(partitions)?];
    if partitions > 0 {
        let answer = consumer.committed_offsets(wanted, Duration::from_secs(10))?;
        for element in answer.elements() {
            if let (Offset::Offset(offset), Ok(index)) =
                (element.offset(), usize::try_from(element.partition()))
                && let Some(slot) = values.get_mut(index)
            {
                *slot = offset;
            }
        }
    }
    println!("{}", serde_json::json!({"offsets": values}));
    Ok(())
}

/// `broker-config`: the value of `key` in DescribeConfigs of broker `broker`.
pub fn broker_config(config: ClientConfig, broker: i32, key: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.create().context("admin client")?;
    let resource = ResourceSpecifier::Broker(broker);
    let answer = crate::futures_lite_block_on(admin.describe_configs(
        [&resource],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))?;
    let mut value = None;
    for result in answer {
        let resource = result.map_err(|e| anyhow::anyhow!("describe configs: {e}"))?;
        if let Some(entry) = resource.get(key) {
            value = entry.value.clone();
        }
    }
    println!("{}", serde_json::json!({"value": value}));
    Ok(())
}

/// `delete-records`: every partition of `topic` loses its records below `before`.
pub fn delete_records(config: ClientConfig, topic: &str, before: i64) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.create().context("admin client")?;
    let consumer: BaseConsumer = config.create().context("client")?;
    let partitions = partition_count(&consumer, topic)?;
    let mut offsets = TopicPartitionList::new();
    for partition in 0..partitions {
        offsets.add_partition_offset(topic, partition, Offset::Offset(before))?;
    }
    let answer = crate::futures_lite_block_on(admin.delete_records(
        &offsets,
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))?;
    let mut low = Vec::new();
    for element in answer.elements() {
        element.error().map_err(|e| {
            anyhow::anyhow!("delete records of {topic}/{}: {e}", element.partition())
        })?;
        low.push(element.offset().to_raw().unwrap_or(-1));
    }
    println!("{}", serde_json::json!({"low": low}));
    Ok(())
}
