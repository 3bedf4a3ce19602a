//! `hdi-kafka-perf`: a load generator for any Kafka-compatible broker, on librdkafka (rdkafka), in
//! the spirit of Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! - `create-topic`: one topic (1 partition by default) through the admin API.
//! - `produce`: N records of S bytes as fast as the broker takes them; latency is measured per
//!   record from `send` to its delivery report (queueing included, as Kafka's tool does).
//! - `consume`: reads N records from the beginning of partition 0.
//! - `leader`: the leader, replicas and ISR of partition 0 (from Metadata).
//! - `probe`: produces one acks=all record (librdkafka retries it with short backoffs) and prints
//!   how long until it was acknowledged (the failover benchmark starts it right after killing a
//!   leader).
//!
//! Each command prints one JSON line with its figures. Used by `cargo xtask bench broker`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(name = "hdi-kafka-perf", about = "Kafka load generator")]
struct Cli {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a topic.
    CreateTopic {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic configs, `KEY=VALUE`.
        #[arg(long)]
        config: Vec<String>,
    },
    /// Leader, replicas and ISR of partition 0.
    Leader {
        #[arg(long)]
        topic: String,
    },
    /// Produce one acks=all record and time its acknowledgement.
    Probe {
        #[arg(long)]
        topic: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
    /// Produce records.
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        records: u64,
        #[arg(long)]
        record_size: usize,
        /// `1` or `all`.
        #[arg(long, default_value = "1")]
        acks: String,
        /// Records per second; 0 = as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Consume records from the beginning of partition 0.
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        records: u64,
    },
}

struct LatencyContext;

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<(Instant, std::sync::Arc<std::sync::Mutex<Stats>>)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (sent, stats) = *opaque;
        let mut stats = stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(_) => stats.latencies_us.push(sent.elapsed().as_micros() as u64),
            Err((error, _)) => {
                stats.errors += 1;
                if stats.first_error.is_none() {
                    stats.first_error = Some(error.to_string());
                }
            }
        }
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CreateTopic {
            topic,
            partitions,
            replication_factor,
            config,
        } => {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &cli.bootstrap)
                .create()
                .context("admin client")?;
            let runtime = std::thread::spawn(move || {
                let mut new = NewTopic::new(
                    &topic,
                    partitions,
                    TopicReplication::Fixed(replication_factor),
                );
                for pair in &config {
                    if let Some((key, value)) = pair.split_once('=') {
                        new = new.set(key, value);
                    }
                }
                futures_lite_block_on(
                    admin.create_topics(
                        &[new],
                        &AdminOptions::new()
                            .operation_timeout(Some(Duration::from_secs(10)))
                            .request_timeout(Some(Duration::from_secs(5))),
                    ),
                )
            });
            let results = runtime
                .join()
                .map_err(|_| anyhow::anyhow!("admin thread panicked"))??;
            for result in results {
                if let Err((name, code)) = result {
                    bail!("create topic {name}: {code}");
                }
            }
            println!("{}", serde_json::json!({"ok": true}));
        }
        Command::Produce {
            topic,
            records,
            record_size,
            acks,
            rate,
        } => {
            let producer: BaseProducer<LatencyContext> = ClientConfig::new()
                .set("bootstrap.servers", &cli.bootstrap)
                .set("acks", &acks)
                .set("linger.ms", "5")
                .set("batch.size", "1000000")
                .set("batch.num.messages", "100000")
                .set("queue.buffering.max.kbytes", "1048576")
                .set("queue.buffering.max.messages", "1000000")
                .set("compression.type", "none")
                .set("enable.idempotence", "false")
                .create_with_context(LatencyContext)
                .context("producer")?;
            let stats = std::sync::Arc::new(std::sync::Mutex::new(Stats::default()));
            let payload: Vec<u8> = (0..record_size).map(|i| b'a' + (i % 26) as u8).collect();
            let started = Instant::now();
            for i in 0..records {
                if rate > 0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let mut record: BaseRecord<'_, (), [u8], _> = BaseRecord::with_opaque_to(
                    &topic,
                    Box::new((Instant::now(), std::sync::Arc::clone(&stats))),
                )
                .payload(payload.as_slice())
                .partition(0);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            producer.poll(Duration::from_millis(1));
                        }
                    }
                }
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(120)).context("flush")?;
            let seconds = started.elapsed().as_secs_f64();
            let mut stats = stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if stats.errors > 0 {
                bail!(
                    "{} records failed: {}",
                    stats.errors,
                    stats.first_error.clone().unwrap_or_default()
                );
            }
            stats.latencies_us.sort_unstable();
            let bytes = records as f64 * record_size as f64;
            println!(
                "{}",
                serde_json::json!({
                    "records": records, "seconds": seconds, "records_per_s": records as f64 / seconds,
                    "mb_per_s": bytes / seconds / 1e6,
                    "p50_ms": percentile(&stats.latencies_us, 0.50), "p99_ms": percentile(&stats.latencies_us, 0.99),
                    "p999_ms": percentile(&stats.latencies_us, 0.999),
                })
            );
        }
        Command::Leader { topic } => {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &cli.bootstrap)
                .create()
                .context("client")?;
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .context("metadata")?;
            let partition = metadata
                .topics()
                .first()
                .and_then(|t| t.partitions().iter().find(|p| p.id() == 0))
                .context("no partition 0")?;
            println!(
                "{}",
                serde_json::json!({"leader": partition.leader(), "replicas": partition.replicas(), "isr": partition.isr()})
            );
        }
        Command::Probe { topic, timeout_s } => {
            let started = Instant::now();
            // One record, retried by librdkafka itself (short backoffs, metadata refreshed on
            // NOT_LEADER and connection loss) until a leader acknowledges it.
            let producer: BaseProducer<LatencyContext> = ClientConfig::new()
                .set("bootstrap.servers", &cli.bootstrap)
                .set("acks", "all")
                .set("message.timeout.ms", (timeout_s * 1000).to_string())
                .set("retry.backoff.ms", "10")
                .set("retry.backoff.max.ms", "50")
                .set("reconnect.backoff.ms", "10")
                .set("reconnect.backoff.max.ms", "100")
                .set("topic.metadata.refresh.interval.ms", "500")
                .create_with_context(LatencyContext)
                .context("producer")?;
            let stats = std::sync::Arc::new(std::sync::Mutex::new(Stats::default()));
            let record: BaseRecord<'_, (), [u8], _> = BaseRecord::with_opaque_to(
                &topic,
                Box::new((Instant::now(), std::sync::Arc::clone(&stats))),
            )
            .payload(b"probe".as_slice())
            .partition(0);
            producer
                .send(record)
                .map_err(|(e, _)| anyhow::anyhow!("send: {e}"))?;
            let _ = producer.flush(Duration::from_secs(timeout_s + 5));
            let acknowledged = !stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .latencies_us
                .is_empty();
            if !acknowledged {
                bail!("no record acknowledged within {timeout_s} s");
            }
            println!(
                "{}",
                serde_json::json!({"waited_ms": started.elapsed().as_secs_f64() * 1000.0})
            );
        }
        Command::Consume { topic, records } => {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &cli.bootstrap)
                .set("group.id", "hdi-kafka-perf")
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .set("fetch.max.bytes", "52428800")
                .set("max.partition.fetch.bytes", "10485760")
                .set("queued.max.messages.kbytes", "1048576")
                // With small records one 10 MB fetch holds over 100,000 of them; librdkafka's
                // default queued.min.messages (100,000) would then pause fetching for
                // fetch.queue.backoff.ms (1 s) after most responses.
                .set("queued.min.messages", "10000000")
                .create()
                .context("consumer")?;
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)?;
            consumer.assign(&assignment)?;
            let started = Instant::now();
            let mut count = 0u64;
            let mut bytes = 0u64;
            let deadline = started + Duration::from_secs(300);
            while count < records {
                if Instant::now() > deadline {
                    bail!("consumed only {count} of {records} records in 300 s");
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        count += 1;
                        bytes += message.payload().map_or(0, <[u8]>::len) as u64;
                    }
                    Some(Err(error)) => bail!("consume: {error}"),
                    None => {}
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({"records": count, "seconds": seconds, "records_per_s": count as f64 / seconds, "mb_per_s": bytes as f64 / seconds / 1e6})
            );
        }
    }
    Ok(())
}

/// Drives one future to completion on this thread (the admin client's futures need no runtime).
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context as TaskContext, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(ThreadWaker(std::thread::current())));
    let mut context = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}
