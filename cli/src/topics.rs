//! `hdictl topic`: topics of Kafka clusters.
//!
//! `create`, `list`, `describe` and `delete` go through the control plane's REST API (which uses
//! the Kafka admin protocol). `produce` and `consume` speak Kafka directly to the cluster's
//! bootstrap servers (found through the REST API) with librdkafka, so the control plane is not on
//! the data path:
//!
//! - `produce` sends each line of stdin (or `--file`) as one record, `acks=all` and idempotent;
//!   with `--key-separator S` a line is `KEY<S>VALUE` (a line without the separator is refused
//!   before anything is sent). It prints how many records were written and exits non-zero if any
//!   failed.
//! - `consume` prints record values one per line (`-o json`: one JSON object per line with
//!   partition, offset, key and value). It starts at the end of each partition, or at the
//!   beginning with `--from-beginning`; with `--group G` it resumes from G's committed offsets
//!   instead and commits the offsets of the records it printed when it stops. It stops after
//!   `--max N` records, or once no record has arrived for `--timeout` (default 10s; `0` follows
//!   forever). With `--max N`, stopping on the timeout before N records is an error (exit 1),
//!   after printing and committing what did arrive.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use hdi_api::{Client, Topic, TopicCreate};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::Format;
use crate::clusters::parse_duration;
use crate::output::{Table, print_value};

/// `hdictl topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Kafka cluster name.
        cluster: String,
        /// Topic name (1-249 characters of letters, digits, '.', '_', '-').
        topic: String,
        /// Number of partitions.
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition (at most the number of brokers).
        #[arg(long, short = 'r', default_value_t = 1)]
        replication_factor: u32,
        /// A topic config, `KEY=VALUE` (e.g. `retention.ms=3600000`); repeatable. (Not
        /// `--config`, which names hdictl's config file.)
        #[arg(long = "topic-config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List a cluster's topics.
    List {
        /// Kafka cluster name.
        cluster: String,
    },
    /// Show a topic's partitions (leader, replicas, in-sync replicas) and configs.
    Describe {
        /// Kafka cluster name.
        cluster: String,
        /// Topic name.
        topic: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Kafka cluster name.
        cluster: String,
        /// Topic name.
        topic: String,
    },
    /// Write lines from stdin (or a file) to a topic, one record per line (acks=all,
    /// idempotent).
    Produce {
        /// Kafka cluster name.
        cluster: String,
        /// Topic name.
        topic: String,
        #[command(flatten)]
        login: crate::kafka_users::LoginArgs,
        /// Read lines from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Each line is KEY<SEPARATOR>VALUE.
        #[arg(long)]
        key_separator: Option<String>,
    },
    /// Print a topic's record values, one per line.
    Consume {
        /// Kafka cluster name.
        cluster: String,
        /// Topic name.
        topic: String,
        #[command(flatten)]
        login: crate::kafka_users::LoginArgs,
        /// Start at the beginning of each partition (default: at the end; a group's committed
        /// offsets win over both).
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records (fewer before the timeout is an error).
        #[arg(long)]
        max: Option<u64>,
        /// Consume as this consumer group and commit the offsets of the printed records.
        #[arg(long)]
        group: Option<String>,
        /// Stop once no record arrived for this long (`0`: never).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// Runs a topic command.
pub async fn topic(
    api: &Client,
    workspace: &str,
    command: TopicCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            cluster,
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let body = TopicCreate {
                name: topic,
                partitions,
                replication_factor,
                configs: parse_configs(&configs)?,
            };
            let created = api.topic_create(workspace, &cluster, &body).await?;
            match format {
                Format::Table => {
                    eprintln!("topic {} created in cluster {cluster}", created.name);
                    print_topic(&created);
                }
                _ => print_value(format, &created)?,
            }
        }
        TopicCommand::List { cluster } => {
            let topics = api.topics_list_all(workspace, &cluster).await?;
            match format {
                Format::Table => {
                    let mut table = Table::new([
                        "NAME",
                        "PARTITIONS",
                        "REPLICATION",
                        "UNDER-REPLICATED",
                        "ID",
                    ]);
                    for t in &topics {
                        table.row([
                            t.name.clone(),
                            t.partitions.len().to_string(),
                            t.replication_factor.to_string(),
                            under_replicated(t).to_string(),
                            t.topic_id.map(|id| id.to_string()).unwrap_or_default(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &topics)?,
            }
        }
        TopicCommand::Describe { cluster, topic } => {
            let t = api.topic_get(workspace, &cluster, &topic).await?;
            match format {
                Format::Table => print_topic(&t),
                _ => print_value(format, &t)?,
            }
        }
        TopicCommand::Delete { cluster, topic } => {
            api.topic_delete(workspace, &cluster, &topic).await?;
            match format {
                Format::Table => println!("topic {topic} deleted from cluster {cluster}"),
                _ => print_value(
                    format,
                    &serde_json::json!({"cluster": cluster, "topic": topic, "deleted": true}),
                )?,
            }
        }
        TopicCommand::Produce {
            cluster,
            topic,
            login,
            file,
            key_separator,
        } => {
            let (bootstrap, oauth) = bootstrap(api, workspace, &cluster, &topic, &login).await?;
            let lines = read_lines(file.as_deref())?;
            let records = split_keys(lines, key_separator.as_deref())?;
            let total = records.len();
            let topic_name = topic.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                produce(&bootstrap, oauth, &topic_name, records)
            })
            .await
            .context("the producer thread failed")??;
            match format {
                Format::Table => println!("wrote {} of {total} records to {topic}", outcome.ok),
                _ => print_value(
                    format,
                    &serde_json::json!({"topic": topic, "written": outcome.ok, "failed": outcome.failed}),
                )?,
            }
            if outcome.failed > 0 {
                bail!(
                    "{} of {total} records were not written to {topic}: {}",
                    outcome.failed,
                    outcome.first_error.unwrap_or_default()
                );
            }
        }
        TopicCommand::Consume {
            cluster,
            topic,
            login,
            from_beginning,
            max,
            group,
            timeout,
        } => {
            let (bootstrap, oauth) = bootstrap(api, workspace, &cluster, &topic, &login).await?;
            let options = ConsumeOptions {
                bootstrap,
                oauth,
                topic: topic.clone(),
                from_beginning,
                max,
                group,
                idle: timeout,
                format,
            };
            let count = tokio::task::spawn_blocking(move || consume(&options))
                .await
                .context("the consumer thread failed")??;
            eprintln!("consumed {count} records from {topic}");
            if let Some(max) = max
                && count < max
            {
                bail!("only {count} of {max} records arrived before {timeout:?} of silence");
            }
        }
    }
    Ok(())
}

/// `KEY=VALUE` flags as a map.
fn parse_configs(flags: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut configs = BTreeMap::new();
    for flag in flags {
        let Some((key, value)) = flag.split_once('=') else {
            bail!("--topic-config {flag:?} must be KEY=VALUE, e.g. retention.ms=3600000");
        };
        if key.is_empty() {
            bail!("--topic-config {flag:?} has an empty key");
        }
        configs.insert(key.to_owned(), value.to_owned());
    }
    Ok(configs)
}

/// The librdkafka properties that reach the cluster (bootstrap servers and, when it is
/// secured, the login and CA), after checking that the topic exists (so that a typo is reported
/// by name instead of as a Kafka timeout).
async fn bootstrap(
    api: &Client,
    workspace: &str,
    cluster: &str,
    topic: &str,
    login: &crate::kafka_users::LoginArgs,
) -> anyhow::Result<crate::kafka_users::Access> {
    let c = api.cluster_get(workspace, cluster).await?;
    let login = login.login()?;
    // OAUTHBEARER takes an access token (a JWT); a context holding an API token (or the admin
    // token of `cargo xtask up`) exchanges it for one.
    let token = match api.bearer_token() {
        Some(token) if login.is_none() && token.split('.').count() != 3 => Some(
            api.token_exchange(&hdi_api::TokenRequest::ApiToken {
                token: token.to_owned(),
            })
            .await?
            .access_token,
        ),
        other => other.map(str::to_owned),
    };
    let access = crate::kafka_users::client_access(&c, login.as_ref(), token.as_deref())?;
    api.topic_get(workspace, cluster, topic).await?;
    Ok(access)
}

fn read_lines(file: Option<&std::path::Path>) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn std::io::BufRead> = match file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut lines = Vec::new();
    for line in reader.lines() {
        lines.push(line.context("cannot read the input (it must be UTF-8 text)")?);
    }
    Ok(lines)
}

/// `(key, value)` per line.
fn split_keys(
    lines: Vec<String>,
    separator: Option<&str>,
) -> anyhow::Result<Vec<(Option<String>, String)>> {
    match separator {
        None => Ok(lines.into_iter().map(|l| (None, l)).collect()),
        Some("") => bail!("--key-separator must not be empty"),
        Some(separator) => lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| match line.split_once(separator) {
                Some((key, value)) => Ok((Some(key.to_owned()), value.to_owned())),
                None => bail!(
                    "line {} has no key separator {separator:?}; nothing was written",
                    i + 1
                ),
            })
            .collect(),
    }
}

/// What a produce run achieved.
#[derive(Default)]
struct Delivered {
    ok: usize,
    failed: usize,
    first_error: Option<String>,
}

/// Counts delivery reports (and presents the hdi token over OAUTHBEARER when there is one).
struct Counter(Mutex<Delivered>, Option<crate::kafka_users::Oauth>);

impl ClientContext for Counter {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        crate::kafka_users::Oauth::generate(self.1.as_ref())
    }
}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let mut delivered = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(_) => delivered.ok += 1,
            Err((error, _)) => {
                delivered.failed += 1;
                if delivered.first_error.is_none() {
                    delivered.first_error = Some(error.to_string());
                }
            }
        }
    }
}

/// How long librdkafka keeps retrying one record.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn produce(
    properties: &[(String, String)],
    oauth: Option<crate::kafka_users::Oauth>,
    topic: &str,
    records: Vec<(Option<String>, String)>,
) -> anyhow::Result<Delivered> {
    let producer: BaseProducer<Counter> = client_config(properties)
        .set("client.id", "hdictl")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(Counter(Mutex::new(Delivered::default()), oauth))
        .context("cannot create the Kafka producer")?;
    for (key, value) in &records {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic).payload(value.as_str());
        if let Some(key) = key {
            record = record.key(key.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("cannot queue a record for {topic}: {error}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    // Waits for every delivery report; a record not delivered in time is reported as failed.
    let flushed = producer.flush(DELIVERY_TIMEOUT + Duration::from_secs(5));
    let mut delivered = std::mem::take(
        &mut *producer
            .context()
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let missing = records
        .len()
        .saturating_sub(delivered.ok + delivered.failed);
    if missing > 0 {
        delivered.failed += missing;
        if delivered.first_error.is_none() {
            delivered.first_error = Some(match flushed {
                Err(error) => format!("flush: {error}"),
                Ok(()) => "no delivery report".to_owned(),
            });
        }
    }
    Ok(delivered)
}

/// A librdkafka configuration with `properties` set.
fn client_config(properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// The consumer `consume` uses.
type TopicConsumer = BaseConsumer<crate::kafka_users::OauthContext>;

struct ConsumeOptions {
    bootstrap: Vec<(String, String)>,
    oauth: Option<crate::kafka_users::Oauth>,
    topic: String,
    from_beginning: bool,
    max: Option<u64>,
    group: Option<String>,
    idle: Duration,
    format: Format,
}

/// How long one metadata look-up may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn consume(options: &ConsumeOptions) -> anyhow::Result<u64> {
    let start = if options.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let mut config = client_config(&options.bootstrap);
    config
        .set("client.id", "hdictl")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", start)
        .set("fetch.wait.max.ms", "100")
        .set(
            "group.id",
            options
                .group
                .clone()
                .unwrap_or_else(|| format!("hdictl-{}", uuid::Uuid::new_v4())),
        );
    let consumer: TopicConsumer = config
        .create_with_context(crate::kafka_users::OauthContext(options.oauth.clone()))
        .context("cannot create the Kafka consumer")?;
    if options.oauth.is_some() {
        // librdkafka asks for the OAUTHBEARER token through an event only a poll serves;
        // nothing is assigned yet, so no record can arrive here.
        let _ = consumer.poll(Duration::from_millis(200));
    }
    if options.group.is_some() {
        consumer
            .subscribe(&[&options.topic])
            .with_context(|| format!("cannot subscribe to {}", options.topic))?;
    } else {
        let metadata = consumer
            .fetch_metadata(Some(&options.topic), METADATA_TIMEOUT)
            .with_context(|| format!("cannot read the metadata of {}", options.topic))?;
        let offset = if options.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        let mut assignment = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                assignment.add_partition_offset(t.name(), p.id(), offset)?;
            }
        }
        if assignment.count() == 0 {
            bail!("topic {} has no partitions", options.topic);
        }
        consumer.assign(&assignment)?;
    }
    let mut stdout = std::io::stdout().lock();
    // The next offset to commit, by partition: one past the last printed record.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    // Partitions assigned to the group member, and, for those without a committed offset, the
    // offset they started from: committed too, so that records produced to a partition this run
    // printed nothing from are not skipped by the next run (which would start at the end).
    let mut assigned: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
    let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut count = 0u64;
    let mut last = Instant::now();
    let result = loop {
        if options.max.is_some_and(|max| count >= max) {
            break Ok(());
        }
        if !options.idle.is_zero() && last.elapsed() >= options.idle {
            break Ok(());
        }
        if options.group.is_some() {
            note_assignment(&consumer, options, &mut assigned, &mut starts)?;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(error)) => break Err(anyhow::anyhow!("consuming {}: {error}", options.topic)),
            Some(Ok(message)) => {
                last = Instant::now();
                count += 1;
                positions.insert(message.partition(), message.offset() + 1);
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                let written = match options.format {
                    Format::Table => writeln!(stdout, "{value}"),
                    format => {
                        let record = serde_json::json!({
                            "partition": message.partition(),
                            "offset": message.offset(),
                            "key": message.key().map(String::from_utf8_lossy),
                            "value": value,
                        });
                        match format {
                            Format::Yaml => serde_yaml::to_string(&record)
                                .map_err(std::io::Error::other)
                                .and_then(|doc| write!(stdout, "---\n{doc}")),
                            _ => writeln!(stdout, "{record}"),
                        }
                    }
                };
                if let Err(error) = written {
                    break Err(anyhow::anyhow!("cannot write to stdout: {error}"));
                }
            }
        }
    };
    stdout.flush().ok();
    for (partition, start) in starts {
        positions.entry(partition).or_insert(start);
    }
    if options.group.is_some() && !positions.is_empty() {
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &positions {
            offsets.add_partition_offset(&options.topic, *partition, Offset::Offset(*next))?;
        }
        consumer
            .commit(&offsets, CommitMode::Sync)
            .context("cannot commit the group's offsets")?;
    }
    result.map(|()| count)
}

/// Records partitions newly assigned to the group member; for each without a committed offset,
/// the offset it starts from (the low or high watermark, as `--from-beginning` says).
fn note_assignment(
    consumer: &TopicConsumer,
    options: &ConsumeOptions,
    assigned: &mut std::collections::BTreeSet<i32>,
    starts: &mut BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let assignment = consumer
        .assignment()
        .context("cannot read the assignment")?;
    let mut new = TopicPartitionList::new();
    for element in assignment.elements() {
        if assigned.insert(element.partition()) {
            new.add_partition(element.topic(), element.partition());
        }
    }
    if new.count() == 0 {
        return Ok(());
    }
    let committed = consumer
        .committed_offsets(new, METADATA_TIMEOUT)
        .context("cannot read the group's committed offsets")?;
    for element in committed.elements() {
        if let Offset::Offset(_) = element.offset() {
            continue;
        }
        let (low, high) = consumer
            .fetch_watermarks(&options.topic, element.partition(), METADATA_TIMEOUT)
            .context("cannot read the partition's offsets")?;
        starts.insert(
            element.partition(),
            if options.from_beginning { low } else { high },
        );
    }
    Ok(())
}

fn under_replicated(t: &Topic) -> usize {
    t.partitions
        .iter()
        .filter(|p| p.isr.len() < p.replicas.len())
        .count()
}

fn print_topic(t: &Topic) {
    println!("name:         {}", t.name);
    if let Some(id) = t.topic_id {
        println!("id:           {id}");
    }
    println!("partitions:   {}", t.partitions.len());
    println!("replication:  {}", t.replication_factor);
    let configs = t.configs.clone().unwrap_or_default();
    if configs.is_empty() {
        println!("configs:      (all defaults)");
    }
    for (key, value) in &configs {
        println!("config:       {key}={value}");
    }
    let ids = |list: &[u32]| {
        list.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut table = Table::new(["PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]);
    for p in &t.partitions {
        table.row([
            p.partition.to_string(),
            p.leader
                .map_or_else(|| "none".to_owned(), |l| l.to_string()),
            ids(&p.replicas),
            ids(&p.isr),
            ids(&p.offline),
        ]);
    }
    print!("{}", table.render());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        <crate::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn configs_are_key_value_flags() {
        let configs =
            parse_configs(&["retention.ms=1000".into(), "x=a=b".into()]).expect("valid flags");
        assert_eq!(configs["retention.ms"], "1000");
        assert_eq!(configs["x"], "a=b");
        assert!(parse_configs(&["retention.ms".into()]).is_err());
        assert!(parse_configs(&["=1".into()]).is_err());
    }

    #[test]
    fn keys_are_split_at_the_first_separator() {
        let lines = vec!["k1:v1".to_owned(), "k2:v:2".to_owned()];
        let records = split_keys(lines, Some(":")).expect("all lines have a key");
        assert_eq!(records[0], (Some("k1".to_owned()), "v1".to_owned()));
        assert_eq!(records[1], (Some("k2".to_owned()), "v:2".to_owned()));
        let error = split_keys(vec!["a:b".into(), "nokey".into()], Some(":"))
            .expect_err("a line without the separator");
        assert!(error.to_string().contains("line 2"), "{error}");
        assert_eq!(
            split_keys(vec!["plain".into()], None).expect("no keys"),
            [(None, "plain".to_owned())]
        );
    }
}
