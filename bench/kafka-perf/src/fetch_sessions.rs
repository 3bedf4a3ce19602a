//! `fetch-sessions`: what fetch sessions (KIP-227) save a consumer of many partitions. The same
//! raw Fetch v12 loop over every partition of a topic runs twice: sessionless (epoch -1, every
//! partition in every request and answer) and with a session (a full fetch, then incremental
//! ones listing only partitions whose position moved). A record goes to one partition every
//! `produce_every` fetches, so most partitions stay idle, as in a consumer of many quiet
//! partitions. Counted: request and response bytes on the wire (frames with their length
//! prefix), and the broker's CPU time from `/proc/PID/stat` (with `--broker-pid`). Each run
//! reads every partition from offset 0 and prints the records it read (`records_read`, which is
//! the topic's record count at its end when nothing is missed).
//!
//! Measured on 7 December 2026 (release build, one broker, 1,000 partitions, 5,000 fetches, a
//! record every 10 fetches, a 2-core machine under other builds' load):
//! `hdi-kafka-perf --bootstrap 127.0.0.1:19192 fetch-sessions --topic fs1000 --partitions 1000
//! --fetches 5000 --produce-every 10 --broker-pid PID`: sessionless 33,068 request and 37,079
//! response bytes per fetch, with a session 75 and 89; broker CPU per fetch about the same
//! (0.50-0.70 ms either way): the broker still reads every partition of a session on every
//! fetch, as Kafka does, so what sessions save is the wire and both ends' encoding.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use hdi_kafka_client::wire;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What to run.
#[derive(Debug)]
pub struct Options {
    /// Topic (created with `partitions` partitions, replication factor 1, if missing).
    pub topic: String,
    /// Partitions.
    pub partitions: i32,
    /// Fetches per run.
    pub fetches: u32,
    /// One record every this many fetches (0: none after the first record of each partition).
    pub produce_every: u32,
    /// The broker's process id, for its CPU time.
    pub broker_pid: Option<u32>,
}

/// One raw connection, counting bytes.
struct Wire {
    stream: TcpStream,
    correlation_id: i32,
    sent: u64,
    received: u64,
}

impl Wire {
    fn call<R: wire::Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let frame = wire::encode_request(
            request,
            version,
            self.correlation_id,
            Some("fetch-sessions"),
        )?;
        self.stream.write_all(&frame)?;
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix)?;
        let size = wire::response_size(R::KEY, prefix, 1 << 28)?;
        let mut body = BytesMut::zeroed(size);
        self.stream.read_exact(&mut body)?;
        self.sent += frame.len() as u64;
        self.received += 4 + size as u64;
        Ok(wire::decode_response::<R>(
            body.freeze(),
            version,
            self.correlation_id,
        )?)
    }
}

/// The broker's user + system CPU time, from `/proc/PID/stat` (in clock ticks of 10 ms).
fn cpu(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn produce(wire: &mut Wire, topic: &str, partitions: &[i32]) -> anyhow::Result<()> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(b"a small record")),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    let batch = batch.freeze();
    let data = partitions
        .iter()
        .map(|&p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(data),
        ]);
    let (sent, received) = (wire.sent, wire.received);
    let response = wire.call(&request, 9)?;
    // Produce traffic is not the fetch loop's.
    (wire.sent, wire.received) = (sent, received);
    for p in response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
    {
        if p.error_code != 0 {
            bail!("produce to partition {}: error {}", p.index, p.error_code);
        }
    }
    Ok(())
}

/// One run: `sessions` or not. Returns the figures as JSON.
fn run_once(address: &str, options: &Options, sessions: bool) -> anyhow::Result<serde_json::Value> {
    let stream = TcpStream::connect(address).with_context(|| address.to_owned())?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut wire = Wire {
        stream,
        correlation_id: 0,
        sent: 0,
        received: 0,
    };
    let n = usize::try_from(options.partitions)?;
    // Where the consumer is, and where the session thinks it is.
    let mut position = vec![0i64; n];
    let mut told: Vec<Option<i64>> = vec![None; n];
    let mut records = 0u64;
    let (mut session_id, mut epoch) = (0, if sessions { 0 } else { -1 });
    let mut produced = 0u64;
    let cpu_before = cpu(options.broker_pid);
    let started = Instant::now();
    for i in 0..options.fetches {
        if options.produce_every > 0 && i % options.produce_every == 0 {
            let p = (i / options.produce_every) as usize * 7919 % n;
            produce(&mut wire, &options.topic, &[p as i32])?;
            produced += 1;
        }
        let mut partitions = Vec::new();
        for p in 0..n {
            if sessions && told[p] == Some(position[p]) {
                continue;
            }
            told[p] = Some(position[p]);
            partitions.push(
                FetchPartition::default()
                    .with_partition(i32::try_from(p)?)
                    .with_fetch_offset(position[p])
                    .with_partition_max_bytes(1 << 20),
            );
        }
        let topics = if partitions.is_empty() {
            Vec::new()
        } else {
            vec![
                FetchTopic::default()
                    .with_topic(name(&options.topic))
                    .with_partitions(partitions),
            ]
        };
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(50 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(topics);
        let response = wire.call(&request, 12)?;
        if response.error_code != 0 {
            bail!("fetch {i}: error {}", response.error_code);
        }
        if sessions {
            if response.session_id == 0 {
                bail!("fetch {i}: no session (is the cache full?)");
            }
            session_id = response.session_id;
            epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        }
        for p in response.responses.iter().flat_map(|t| &t.partitions) {
            if p.error_code != 0 {
                bail!(
                    "fetch {i}: partition {} error {}",
                    p.partition_index,
                    p.error_code
                );
            }
            let bytes = p.records.as_ref().map_or(0, Bytes::len);
            if bytes > 0 {
                let index = usize::try_from(p.partition_index)?;
                // One record per batch here: what was read is up to the high watermark.
                records += u64::try_from(p.high_watermark - position[index])?;
                position[index] = p.high_watermark;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu_ms = match (cpu_before, cpu(options.broker_pid)) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1000.0),
        _ => None,
    };
    let fetches = f64::from(options.fetches);
    Ok(serde_json::json!({
        "mode": if sessions { "session" } else { "sessionless" },
        "partitions": options.partitions,
        "fetches": options.fetches,
        "records_read": records,
        "records_produced_during_run": produced,
        "request_bytes_per_fetch": wire.sent as f64 / fetches,
        "response_bytes_per_fetch": wire.received as f64 / fetches,
        "broker_cpu_ms_per_fetch": cpu_ms.map(|ms| ms / fetches),
        "fetches_per_s": fetches / elapsed.as_secs_f64(),
    }))
}

/// Creates the topic, writes one record to each partition, and runs the loop without and with
/// a session; prints one JSON line per run.
pub fn fetch_sessions(bootstrap: &str, options: &Options) -> anyhow::Result<()> {
    let address = bootstrap.split(',').next().context("no bootstrap server")?;
    let stream = TcpStream::connect(address).with_context(|| address.to_owned())?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut wire = Wire {
        stream,
        correlation_id: 0,
        sent: 0,
        received: 0,
    };
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&options.topic))
                .with_num_partitions(options.partitions)
                .with_replication_factor(1),
        ]);
    let created = wire.call(&create, 5)?;
    let code = created.topics.first().map_or(0, |t| t.error_code);
    // TOPIC_ALREADY_EXISTS (36): runs start from the offsets they find.
    if code != 0 && code != 36 {
        bail!("create topic: error {code}");
    }
    let all: Vec<i32> = (0..options.partitions).collect();
    // Until every partition has a leader here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(error) = produce(&mut wire, &options.topic, &all) {
        if Instant::now() > deadline {
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for sessions in [false, true] {
        let figures = run_once(address, options, sessions)?;
        println!("{figures}");
    }
    Ok(())
}
