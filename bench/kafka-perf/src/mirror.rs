//! The geo-replication commands: `cluster-config` (hdi-broker's cluster-wide configs, which
//! define cluster links; librdkafka's admin API cannot name the cluster-wide resource `""`),
//! `end-offsets` (a topic's high watermarks), and `mirror-lag` (records produced at a steady
//! rate on one cluster, each timed until a consumer of the mirror cluster receives it).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdi_kafka_client::blocking::Connection;
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Sets (`KEY=VALUE`) or deletes (`KEY=`) cluster-wide configs through the first bootstrap
/// server.
pub fn cluster_config(bootstrap: &str, settings: &[String]) -> anyhow::Result<()> {
    let address = bootstrap.split(',').next().context("no bootstrap server")?;
    let stream = std::net::TcpStream::connect(address).with_context(|| address.to_owned())?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut connection = Connection::new(stream, "hdi-kafka-perf", 1 << 24);
    let configs = settings
        .iter()
        .map(|setting| {
            let (key, value) = setting
                .split_once('=')
                .with_context(|| format!("{setting:?} is not KEY=VALUE"))?;
            Ok(AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_owned()))
                .with_config_operation(if value.is_empty() { 1 } else { 0 })
                .with_value((!value.is_empty()).then(|| StrBytes::from_string(value.to_owned()))))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(configs),
    ]);
    let response = connection.call(&request, 0)?;
    for result in &response.responses {
        if result.error_code != 0 {
            bail!(
                "{}: {}",
                hdi_kafka_client::codes::error_name(result.error_code),
                result.error_message.as_deref().unwrap_or("")
            );
        }
    }
    println!("{}", serde_json::json!({"ok": true}));
    Ok(())
}

/// A topic's high watermarks, summed (`-1` while the topic does not exist), and the records
/// between its low and high watermarks.
pub fn end_offsets(config: ClientConfig, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config.create().context("consumer")?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    let mut total = if partitions == 0 { -1 } else { 0 };
    let mut records = 0;
    for partition in 0..partitions {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition as i32, Duration::from_secs(10))?;
        total += high;
        records += high - low;
    }
    println!(
        "{}",
        serde_json::json!({"partitions": partitions, "total": total, "records": records})
    );
    Ok(())
}

/// What `mirror-lag` does.
pub struct LagOptions {
    pub topic: String,
    /// The topic's name on the mirror cluster.
    pub mirror_topic: String,
    pub partitions: i32,
    pub rate: u64,
    pub seconds: u64,
    pub record_size: usize,
    pub drain: Duration,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Produces `rate` records per second for `seconds` to the source (`producer`), each carrying
/// its send time, and times each one's arrival at a consumer of the mirror (`consumer`, reading
/// from the partitions' ends as they were at the start).
pub fn mirror_lag(
    mut producer: ClientConfig,
    mut consumer: ClientConfig,
    options: &LagOptions,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = consumer
        .set("group.id", "hdi-kafka-perf-mirror-lag")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.error.backoff.ms", "10")
        .create()
        .context("consumer of the mirror")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..options.partitions {
        assignment.add_partition_offset(&options.mirror_topic, partition, rdkafka::Offset::End)?;
    }
    consumer.assign(&assignment)?;
    // Let the consumer take its positions before the first record is sent.
    let warm = Instant::now() + Duration::from_secs(2);
    while Instant::now() < warm {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let producer: BaseProducer = producer
        .set("acks", "1")
        .set("linger.ms", "1")
        .set("compression.type", "none")
        .create()
        .context("producer to the source")?;
    let total = options.rate * options.seconds;
    let (topic, rate, size, partitions) = (
        options.topic.clone(),
        options.rate,
        options.record_size.max(8),
        options.partitions.max(1),
    );
    let begun = Instant::now();
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        let started = Instant::now();
        let mut payload = vec![b'x'; size];
        for i in 0..total {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            payload[..8].copy_from_slice(&micros_now().to_be_bytes());
            let partition = (i % partitions as u64) as i32;
            loop {
                let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(&topic)
                    .partition(partition)
                    .payload(payload.as_slice());
                match producer.send(record) {
                    Ok(()) => break,
                    // A full local queue: let deliveries drain it, then send again.
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        _,
                    )) => {
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((error, _)) => bail!("produce to {topic}: {error}"),
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30))?;
        Ok(())
    });
    let mut lags_us: Vec<u64> = Vec::with_capacity(total as usize);
    let mut last = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(options.seconds) + options.drain;
    while (lags_us.len() as u64) < total && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(20)) {
            Some(Ok(message)) => {
                if let Some(sent) = message
                    .payload()
                    .and_then(|p| p.get(..8))
                    .and_then(|p| <[u8; 8]>::try_from(p).ok())
                {
                    lags_us.push(micros_now().saturating_sub(u64::from_be_bytes(sent)));
                    last = begun.elapsed();
                }
            }
            Some(Err(error)) => bail!("consume from the mirror: {error}"),
            None => {}
        }
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    lags_us.sort_unstable();
    // `percentile` answers milliseconds of microsecond samples.
    let ms = |p: f64| crate::percentile(&lags_us, p);
    println!(
        "{}",
        serde_json::json!({
            "sent": total,
            "mirrored": lags_us.len(),
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "max_ms": lags_us.last().map_or(0.0, |m| *m as f64 / 1000.0),
            // What the mirror delivered: from the first send to the last arrival.
            "mirrored_mb_per_s": lags_us.len() as f64 * size as f64 / 1e6 / last.as_secs_f64().max(1e-9),
        })
    );
    Ok(())
}
