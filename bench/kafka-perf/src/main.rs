//! `hdi-kafka-perf`: a load generator for any Kafka-compatible broker, on librdkafka (rdkafka), in
//! the spirit of Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! - `create-topic`: one topic (1 partition by default) through the admin API.
//! - `produce`: N records of S bytes as fast as the broker takes them (or at `--rate` records/s),
//!   keyless or over `--keys` keys; latency is measured per record from `send` to its delivery
//!   report (queueing included, as Kafka's tool does): p50, p99 and p99.9.
//! - `consume`: reads N records from the beginning of partition 0.
//! - `leader`: the leader, replicas and ISR of partition 0 (from Metadata).
//! - `probe`: produces one acks=all record (librdkafka retries it with short backoffs) and prints
//!   how long until it was acknowledged (the failover benchmark starts it right after killing a
//!   leader).
//!
//! - `produce-files`: every line of every file in a directory (in name order) as one record,
//!   spread round-robin over the topic's partitions, as fast as the broker takes them.
//! - `e2e-latency`: produces JSON events `{"id", "account", "amount", "ts"}` (`ts` = now) at a
//!   steady rate while consuming an output topic, and times each event whose `amount > 900` from
//!   its `send` to the arrival of the output record carrying its `id` (the filter job of
//!   `cargo xtask bench executor`). A warm-up first waits until the job answers at all.
//!
//! - `txn-produce`: N records of S bytes with an idempotent acks=all producer, in transactions
//!   of T records each (`--txn-records T`; 0 = no transactions), as fast as the broker takes
//!   them, by `--producers P` producers in parallel (each its own transactional id): records/s
//!   and transactions/s (`cargo xtask bench broker --transactions`).
//! - `fetch-sessions`: a raw Fetch loop over many partitions, sessionless and with a fetch
//!   session (KIP-227): bytes on the wire and broker CPU per fetch ([`fetch_sessions`]).
//! - `cluster-config`, `end-offsets`, `mirror-lag`: geo-replication ([`mirror`]);
//!   `produce-ids`, `missing`, `compare`, `commit`, `committed`, `broker-config`,
//!   `delete-records`: what
//!   `cargo xtask bench georep` asks of hdi's links and of MirrorMaker 2 alike ([`georep`]).
//!
//! Each command prints one JSON line with its figures. Used by `cargo xtask bench broker` and
//! `cargo xtask bench executor`.

mod fetch_sessions;
mod georep;
mod mirror;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(name = "hdi-kafka-perf", about = "Kafka load generator")]
struct Cli {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// A librdkafka property for every client of the command (`security.protocol=SASL_SSL`,
    /// `sasl.username=...`): repeatable. Used by `cargo xtask bench broker --security`.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
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
        /// Key record i `key-<i mod KEYS>` (8 digits); 0 = keyless. A compacted topic's fill
        /// (`cargo xtask bench broker --compaction`).
        #[arg(long, default_value_t = 0)]
        keys: u64,
    },
    /// Produce records idempotently with acks=all, in transactions of `--txn-records` records
    /// (0 = no transactions).
    TxnProduce {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        records: u64,
        #[arg(long)]
        record_size: usize,
        #[arg(long, default_value_t = 100)]
        txn_records: u64,
        /// Producers sharing the records (each its own transactional id), in parallel.
        #[arg(long, default_value_t = 1)]
        producers: u64,
    },
    /// Consume records from the beginning of partition 0.
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        records: u64,
    },
    /// Produce each line of the files in a directory as a record.
    ProduceFiles {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Records go round-robin to partitions 0..N.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
    },
    /// Set (`--set KEY=VALUE`) or delete (`--set KEY=`) hdi-broker cluster-wide configs (cluster
    /// links).
    ClusterConfig {
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// The sum of a topic's high watermarks (-1 while it does not exist) and its records.
    EndOffsets {
        #[arg(long)]
        topic: String,
    },
    /// A raw Fetch v12 loop over every partition of a topic, sessionless then with a fetch
    /// session: request and response bytes and the broker's CPU per fetch.
    FetchSessions {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1000)]
        partitions: i32,
        #[arg(long, default_value_t = 2000)]
        fetches: u32,
        /// One record (to one partition) every this many fetches; 0: none.
        #[arg(long, default_value_t = 10)]
        produce_every: u32,
        /// The broker's process id, to read its CPU time.
        #[arg(long)]
        broker_pid: Option<u32>,
    },
    /// Produce at a steady rate to --bootstrap and time each record's arrival at a consumer of
    /// the mirror cluster.
    MirrorLag {
        #[arg(long)]
        topic: String,
        /// The mirror cluster's bootstrap servers.
        #[arg(long)]
        mirror_bootstrap: String,
        /// The topic's name on the mirror cluster (MirrorMaker 2 renames it `<alias>.<topic>`);
        /// by default the same name.
        #[arg(long)]
        mirror_topic: Option<String>,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Records per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// After the last record, wait at most this long for the rest.
        #[arg(long, default_value_t = 15)]
        drain_s: u64,
    },
    /// Produce records carrying sequence ids, round-robin over partitions; write the acked ids.
    ProduceIds {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// At most this many records (0 = no limit).
        #[arg(long, default_value_t = 0)]
        records: u64,
        /// Records per second (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// For at most this many seconds (0 = no limit).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value = "all")]
        acks: String,
        #[arg(long, default_value_t = 30_000)]
        message_timeout_ms: u64,
        /// Write the acknowledged ids here, one per line.
        #[arg(long)]
        acked_file: Option<std::path::PathBuf>,
        /// The first record's id.
        #[arg(long, default_value_t = 0)]
        first_id: u64,
    },
    /// Count the ids of an --acked-file that a topic lacks.
    Missing {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        acked_file: std::path::PathBuf,
    },
    /// Compare the records at sampled offsets of a topic and of its mirror.
    Compare {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        mirror_bootstrap: String,
        #[arg(long)]
        mirror_topic: Option<String>,
        /// Offsets sampled per partition.
        #[arg(long, default_value_t = 100)]
        samples: i64,
    },
    /// Commit a group's offsets of a topic at its high watermarks.
    Commit {
        #[arg(long)]
        group: String,
        #[arg(long)]
        topic: String,
    },
    /// A group's committed offsets of a topic.
    Committed {
        #[arg(long)]
        group: String,
        #[arg(long)]
        topic: String,
    },
    /// Delete every partition's records below an offset.
    DeleteRecords {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        before: i64,
    },
    /// One config of a broker (DescribeConfigs).
    BrokerConfig {
        #[arg(long, default_value_t = 1)]
        broker: i32,
        #[arg(long)]
        key: String,
    },
    /// Produce events at a steady rate and time the filtered ones' arrival on an output topic.
    E2eLatency {
        /// The input topic of the job.
        #[arg(long)]
        topic: String,
        /// The job's output topic.
        #[arg(long)]
        alerts_topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Events per second.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
        /// Give up when the job has answered no warm-up event after this long.
        #[arg(long, default_value_t = 180)]
        warmup_timeout_s: u64,
        /// After the last event, wait at most this long for the missing alerts.
        #[arg(long, default_value_t = 15)]
        drain_s: u64,
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

/// A client configuration with the bootstrap servers and every `--config` property.
fn base(bootstrap: &str, properties: &[String]) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for property in properties {
        let (key, value) = property
            .split_once('=')
            .with_context(|| format!("--config {property:?} must be KEY=VALUE"))?;
        config.set(key, value);
        if key == "debug" {
            // rdkafka sets librdkafka's log level from the `log` crate's, which is off here.
            config.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let base = || base(&cli.bootstrap, &cli.config);
    match cli.command {
        Command::CreateTopic {
            topic,
            partitions,
            replication_factor,
            config,
        } => {
            let admin: AdminClient<DefaultClientContext> =
                base()?.create().context("admin client")?;
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
            keys,
        } => {
            let producer: BaseProducer<LatencyContext> = base()?
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
                let key = (keys > 0).then(|| format!("key-{:08}", i % keys));
                let mut record: BaseRecord<'_, str, [u8], _> = BaseRecord::with_opaque_to(
                    &topic,
                    Box::new((Instant::now(), std::sync::Arc::clone(&stats))),
                )
                .payload(payload.as_slice())
                .partition(0);
                if let Some(key) = &key {
                    record = record.key(key.as_str());
                }
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
        Command::TxnProduce {
            topic,
            records,
            record_size,
            txn_records,
            producers,
        } => txn_produce(
            base()?,
            &topic,
            records,
            record_size,
            txn_records,
            producers,
        )?,
        Command::Leader { topic } => {
            let consumer: BaseConsumer = base()?.create().context("client")?;
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
            let producer: BaseProducer<LatencyContext> = base()?
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
            let consumer: BaseConsumer = base()?
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
        Command::ProduceFiles {
            topic,
            dir,
            partitions,
        } => produce_files(&cli.bootstrap, &topic, &dir, partitions)?,
        Command::ClusterConfig { set } => mirror::cluster_config(&cli.bootstrap, &set)?,
        Command::EndOffsets { topic } => mirror::end_offsets(base()?, &topic)?,
        Command::FetchSessions {
            topic,
            partitions,
            fetches,
            produce_every,
            broker_pid,
        } => fetch_sessions::fetch_sessions(
            &cli.bootstrap,
            &fetch_sessions::Options {
                topic,
                partitions,
                fetches,
                produce_every,
                broker_pid,
            },
        )?,
        Command::MirrorLag {
            topic,
            mirror_bootstrap,
            mirror_topic,
            partitions,
            rate,
            seconds,
            record_size,
            drain_s,
        } => mirror::mirror_lag(
            base()?,
            self::base(&mirror_bootstrap, &cli.config)?,
            &mirror::LagOptions {
                mirror_topic: mirror_topic.unwrap_or_else(|| topic.clone()),
                topic,
                partitions,
                rate,
                seconds,
                record_size,
                drain: Duration::from_secs(drain_s),
            },
        )?,
        Command::ProduceIds {
            topic,
            partitions,
            records,
            rate,
            seconds,
            record_size,
            acks,
            message_timeout_ms,
            acked_file,
            first_id,
        } => georep::produce_ids(
            base()?,
            &georep::IdOptions {
                topic,
                partitions,
                records,
                rate,
                seconds,
                record_size,
                acks,
                message_timeout_ms,
                acked_file,
                first_id,
            },
        )?,
        Command::Missing { topic, acked_file } => georep::missing(base()?, &topic, &acked_file)?,
        Command::Compare {
            topic,
            mirror_bootstrap,
            mirror_topic,
            samples,
        } => georep::compare(
            base()?,
            self::base(&mirror_bootstrap, &cli.config)?,
            &topic,
            mirror_topic.as_deref().unwrap_or(&topic),
            samples,
        )?,
        Command::Commit { group, topic } => georep::commit(base()?, &group, &topic)?,
        Command::Committed { group, topic } => georep::committed(base()?, &group, &topic)?,
        Command::DeleteRecords { topic, before } => {
            georep::delete_records(base()?, &topic, before)?;
        }
        Command::BrokerConfig { broker, key } => georep::broker_config(base()?, broker, &key)?,
        Command::E2eLatency {
            topic,
            alerts_topic,
            partitions,
            rate,
            seconds,
            accounts,
            warmup_timeout_s,
            drain_s,
        } => e2e_latency(
            &cli.bootstrap,
            &E2eOptions {
                topic,
                alerts_topic,
                partitions,
                rate,
                seconds,
                accounts,
                warmup_timeout: Duration::from_secs(warmup_timeout_s),
                drain: Duration::from_secs(drain_s),
            },
        )?,
    }
    Ok(())
}

/// Counts failed deliveries.
#[derive(Default)]
struct ErrorCounter {
    errors: std::sync::atomic::AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl ClientContext for ErrorCounter {
    /// librdkafka's log lines (`--config debug=...` among them) on stderr, as librdkafka's own
    /// default logger prints them.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "%{}|{}|{fac}| {log_message}",
            level as i32,
            chrono::Utc::now().format("%H:%M:%S%.6f")
        );
    }
}

impl ProducerContext for ErrorCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if let Err((error, _)) = result {
            self.errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.first
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert_with(|| error.to_string());
        }
    }
}

impl ErrorCounter {
    fn check(&self) -> anyhow::Result<()> {
        let errors = self.errors.load(std::sync::atomic::Ordering::Relaxed);
        if errors > 0 {
            bail!(
                "{errors} records failed: {}",
                self.first
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Sends `record`, polling for delivery reports while the local queue is full.
fn send_blocking<'a, C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, (), [u8], ()>,
) {
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

/// Waits until every record `producer` holds is delivered (or `timeout` passes), as
/// `rd_kafka_flush` does: linger is cut short. rdkafka's own `flush` (and so its
/// `commit_transaction`, which flushes first) calls `rd_kafka_flush` with no wait and then polls
/// in slices of 100 ms that run to their end even when the last delivery comes at once, so a
/// transaction committed through it costs 100 ms more than the client's work: that is the
/// artefact this avoids. Delivery reports are events here: a record counts as outstanding until
/// its report is polled, which the [`ThreadedProducer`]'s own thread does meanwhile.
#[allow(unsafe_code)]
fn flush_now<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is the live producer's own handle (borrowed for the call), which
    // librdkafka lets any thread flush.
    let code =
        unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), timeout_ms) };
    if code != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        bail!("flush: {code:?}");
    }
    Ok(())
}

/// `txn-produce`: see the crate doc. `producers` producers (threads) share the records, each
/// with its own transactional id; the clock runs from when all are initialised until the last
/// is done.
fn txn_produce(
    config: ClientConfig,
    topic: &str,
    records: u64,
    record_size: usize,
    txn_records: u64,
    producers: u64,
) -> anyhow::Result<()> {
    let producers = producers.max(1);
    let ready = std::sync::Barrier::new(usize::try_from(producers).unwrap_or(1) + 1);
    let (seconds, transactions) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..producers)
            .map(|index| {
                let share = records / producers + u64::from(index < records % producers);
                let (config, ready) = (config.clone(), &ready);
                scope.spawn(move || {
                    txn_producer(config, topic, share, record_size, txn_records, index, ready)
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let mut transactions = 0u64;
        let mut failure = None;
        for thread in threads {
            match thread.join() {
                Ok(Ok(n)) => transactions += n,
                Ok(Err(error)) => failure = Some(error),
                Err(_) => failure = Some(anyhow::anyhow!("a producer thread panicked")),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok((started.elapsed().as_secs_f64(), transactions)),
        }
    })?;
    println!(
        "{}",
        serde_json::json!({
            "records": records, "producers": producers, "seconds": seconds,
            "records_per_s": records as f64 / seconds,
            "mb_per_s": records as f64 * record_size as f64 / seconds / 1e6,
            "transactions": transactions, "transactions_per_s": transactions as f64 / seconds,
        })
    );
    Ok(())
}

/// One producer of `txn-produce`: `records` records, then its transaction count. Waits at
/// `ready` once initialised (always, so a failure cannot leave the others waiting).
fn txn_producer(
    mut config: ClientConfig,
    topic: &str,
    records: u64,
    record_size: usize,
    txn_records: u64,
    index: u64,
    ready: &std::sync::Barrier,
) -> anyhow::Result<u64> {
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none");
    if txn_records > 0 {
        config
            .set(
                "transactional.id",
                format!("hdi-perf-{}-{index}", std::process::id()),
            )
            .set("transaction.timeout.ms", "60000");
    }
    let timeout = Duration::from_secs(60);
    let producer = (|| {
        let producer: ThreadedProducer<ErrorCounter> = config
            .create_with_context(ErrorCounter::default())
            .context("producer")?;
        if txn_records > 0 {
            producer
                .init_transactions(timeout)
                .context("init_transactions")?;
        }
        Ok::<_, anyhow::Error>(producer)
    })();
    ready.wait();
    let producer = producer?;
    let payload: Vec<u8> = (0..record_size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut transactions = 0u64;
    for i in 0..records {
        if txn_records > 0 && i % txn_records == 0 {
            producer.begin_transaction().context("begin_transaction")?;
        }
        let mut record: BaseRecord<'_, (), [u8], ()> = BaseRecord::to(topic)
            .payload(payload.as_slice())
            .partition(0);
        while let Err((_, back)) = producer.send(record) {
            // The queue is full: the producer's thread is draining it.
            record = back;
            std::thread::sleep(Duration::from_millis(1));
        }
        if txn_records > 0 && ((i + 1) % txn_records == 0 || i + 1 == records) {
            // Flushed first, so rdkafka's flush inside commit_transaction has nothing to wait
            // for (see `flush_now`).
            flush_now(&producer, timeout)?;
            producer
                .commit_transaction(timeout)
                .context("commit_transaction")?;
            transactions += 1;
        }
    }
    flush_now(&producer, Duration::from_secs(120))?;
    producer.context().check()?;
    Ok(transactions)
}

fn produce_files(
    bootstrap: &str,
    topic: &str,
    dir: &std::path::Path,
    partitions: i32,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    let producer: BaseProducer<ErrorCounter> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .create_with_context(ErrorCounter::default())
        .context("producer")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut line = Vec::with_capacity(256);
    for path in &files {
        let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            let partition = (records % partitions.max(1) as u64) as i32;
            send_blocking(
                &producer,
                BaseRecord::to(topic)
                    .payload(line.as_slice())
                    .partition(partition),
            );
            records += 1;
            bytes += line.len() as u64;
        }
    }
    producer.flush(Duration::from_secs(300)).context("flush")?;
    producer.context().check()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": records, "seconds": seconds, "records_per_s": records as f64 / seconds,
            "mb_per_s": bytes as f64 / seconds / 1e6,
        })
    );
    Ok(())
}

struct E2eOptions {
    topic: String,
    alerts_topic: String,
    partitions: i32,
    rate: u64,
    seconds: u64,
    accounts: u64,
    warmup_timeout: Duration,
    drain: Duration,
}

/// Ids of warm-up events start here; measured events are numbered from 0.
const WARMUP_ID_BASE: u64 = 1 << 40;

fn e2e_latency(bootstrap: &str, opts: &E2eOptions) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let warmed_up = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicU64::new(0));
    // The consumer: every partition of the output topic from the beginning; records each id's
    // first arrival (ns since `origin`).
    let consumer_thread = {
        let bootstrap = bootstrap.to_owned();
        let alerts = opts.alerts_topic.clone();
        let (stop, warmed_up, arrived) = (
            Arc::clone(&stop),
            Arc::clone(&warmed_up),
            Arc::clone(&arrived),
        );
        std::thread::spawn(move || -> anyhow::Result<(Vec<(u64, u64)>, u64)> {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "hdi-kafka-perf-e2e")
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()
                .context("consumer")?;
            let metadata = consumer
                .fetch_metadata(Some(&alerts), Duration::from_secs(10))
                .context("metadata")?;
            let mut assignment = TopicPartitionList::new();
            for topic in metadata.topics() {
                for partition in topic.partitions() {
                    assignment.add_partition_offset(
                        &alerts,
                        partition.id(),
                        rdkafka::Offset::Beginning,
                    )?;
                }
            }
            if assignment.count() == 0 {
                bail!("topic {alerts} has no partitions");
            }
            consumer.assign(&assignment)?;
            let (mut seen, mut unparsed) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(message)) => {
                        let at = origin.elapsed().as_nanos() as u64;
                        let id = message
                            .payload()
                            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                            .and_then(|v| match &v["id"] {
                                serde_json::Value::Number(n) => n.as_u64(),
                                serde_json::Value::String(s) => s.parse().ok(),
                                _ => None,
                            });
                        match id {
                            Some(id) if id >= WARMUP_ID_BASE => {
                                warmed_up.store(true, Ordering::Relaxed);
                            }
                            Some(id) => {
                                seen.push((id, at));
                                arrived.fetch_add(1, Ordering::Relaxed);
                            }
                            None => unparsed += 1,
                        }
                    }
                    Some(Err(error)) => bail!("consume: {error}"),
                    None => {}
                }
            }
            Ok((seen, unparsed))
        })
    };
    let producer: BaseProducer<ErrorCounter> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .create_with_context(ErrorCounter::default())
        .context("producer")?;
    let partitions = opts.partitions.max(1) as u64;
    let event = |id: u64, account: u64, cents: u64| {
        format!(
            r#"{{"id":{id},"account":"acct-{account:05}","amount":{}.{:02},"ts":"{}"}}"#,
            cents / 100,
            cents % 100,
            now_iso()
        )
    };
    // Warm-up: one matching event every 200 ms until the job's answer arrives.
    let warmup_started = Instant::now();
    let mut warmup_id = WARMUP_ID_BASE;
    while !warmed_up.load(Ordering::Relaxed) {
        if warmup_started.elapsed() > opts.warmup_timeout {
            stop.store(true, Ordering::Relaxed);
            let _ = consumer_thread.join();
            bail!(
                "no output on {} within {:?} of the first warm-up event",
                opts.alerts_topic,
                opts.warmup_timeout
            );
        }
        let payload = event(warmup_id, 0, 99_999);
        send_blocking(
            &producer,
            BaseRecord::to(&opts.topic)
                .payload(payload.as_bytes())
                .partition((warmup_id % partitions) as i32),
        );
        warmup_id += 1;
        producer.flush(Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let warmup_s = warmup_started.elapsed().as_secs_f64();
    // The steady load: send times (ns since `origin`) by id; u64::MAX for events not expected to
    // come out of the filter.
    let total = opts.rate * opts.seconds;
    let mut sent_at = Vec::with_capacity(total as usize);
    let mut rng = 0x5eed_u64;
    let mut next = move || {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut expected = 0u64;
    let started = Instant::now();
    let mut id = 0u64;
    while id < total {
        let due = ((started.elapsed().as_secs_f64() * opts.rate as f64) as u64).min(total);
        while id < due {
            let account = next() % opts.accounts.max(1);
            let cents = next() % 100_000 + 1;
            let payload = event(id, account, cents);
            let at = origin.elapsed().as_nanos() as u64;
            if cents > 90_000 {
                expected += 1;
                sent_at.push(at);
            } else {
                sent_at.push(u64::MAX);
            }
            send_blocking(
                &producer,
                BaseRecord::to(&opts.topic)
                    .payload(payload.as_bytes())
                    .partition((id % partitions) as i32),
            );
            id += 1;
        }
        producer.poll(Duration::from_millis(1));
    }
    let produce_s = started.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60)).context("flush")?;
    producer.context().check()?;
    let drain_until = Instant::now() + opts.drain;
    while arrived.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, unparsed) = consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    let mut first: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let (mut duplicates, mut unexpected) = (0u64, 0u64);
    for (id, at) in seen {
        if sent_at.get(id as usize).is_none_or(|s| *s == u64::MAX) {
            unexpected += 1;
        } else if first.insert(id, at).is_some() {
            duplicates += 1;
        }
    }
    let mut latencies_us: Vec<u64> = first
        .iter()
        .map(|(id, at)| at.saturating_sub(sent_at[*id as usize]) / 1000)
        .collect();
    latencies_us.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "sent": total, "achieved_rate": total as f64 / produce_s, "warmup_s": warmup_s,
            "expected_alerts": expected, "received_alerts": first.len(), "duplicates": duplicates,
            "unexpected": unexpected, "unparsed": unparsed,
            "p50_ms": percentile(&latencies_us, 0.50), "p99_ms": percentile(&latencies_us, 0.99),
            "max_ms": latencies_us.last().map_or(0.0, |us| *us as f64 / 1000.0),
        })
    );
    Ok(())
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
