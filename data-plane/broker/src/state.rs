//! The broker's topics and partitions on disk.
//!
//! Layout of the data directory: `cluster.json` (cluster id), `topics/<name>/topic.json` (topic
//! id, partition count, explicit configs), `topics/<name>/<partition>/` (the partition's
//! [`hdi_log::Log`]), `groups/` (committed offsets), `producer-ids`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use hdi_log::{Log, LogError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes;
use crate::config::BrokerConfig;
use crate::producers::{Decision, ProducerStates};
use crate::topic_config::{self, TopicConfigs};

/// A broker error as the wire reports it: a Kafka error code and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaError {
    /// The error code.
    pub code: i16,
    /// For people (sent where the API has an error message field).
    pub message: String,
}

impl KafkaError {
    /// An error with a code and message.
    pub fn new(code: i16, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code,
            message: message.into(),
        }
    }
}

fn storage_error(error: LogError) -> KafkaError {
    tracing::error!(error = %chain(&error), "storage error");
    KafkaError::new(codes::KAFKA_STORAGE_ERROR, error.to_string())
}

/// An error and its sources on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    id: Uuid,
    partitions: i32,
    configs: TopicConfigs,
}

/// One partition: its log and idempotent-producer state.
pub struct Partition {
    /// Partition index.
    pub index: i32,
    log: RwLock<Log>,
    producers: Mutex<ProducerStates>,
}

/// Where a produce landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the first record (or the original one, for a duplicate).
    pub base_offset: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Partition {
    fn open(dir: &Path, index: i32, config: hdi_log::LogConfig) -> Result<Partition, LogError> {
        let (log, recovery) = Log::open(dir, config)?;
        if !recovery.truncated.is_empty() || !recovery.removed.is_empty() {
            tracing::warn!(dir = %dir.display(), ?recovery, "recovered partition log");
        }
        let mut producers = ProducerStates::default();
        log.for_each_batch_header(|header| producers.record(header))?;
        Ok(Partition {
            index,
            log: RwLock::new(log),
            producers: Mutex::new(producers),
        })
    }

    /// Appends a produce request's record batches (idempotence checked per batch).
    ///
    /// # Errors
    /// `CORRUPT_MESSAGE`, `MESSAGE_TOO_LARGE`, sequence errors, or a storage error.
    pub fn produce(&self, records: &[u8]) -> Result<Produced, KafkaError> {
        let mut log = write_lock(&self.log);
        let max = log.config().max_batch_bytes;
        let headers = hdi_log::batch::validate_all(records, max).map_err(|(index, error)| {
            let code = match error {
                hdi_log::BatchError::InvalidLength(_) if records.len() > max => {
                    codes::MESSAGE_TOO_LARGE
                }
                _ => codes::CORRUPT_MESSAGE,
            };
            KafkaError::new(code, format!("batch {index}: {error}"))
        })?;
        if headers.is_empty() {
            return Err(KafkaError::new(codes::CORRUPT_MESSAGE, "no record batch"));
        }
        let mut producers = lock(&self.producers);
        if headers.iter().all(|h| h.producer_id < 0) {
            let mut bytes = records.to_vec();
            let info = log.append(&mut bytes, 0).map_err(storage_error)?;
            return Ok(Produced {
                base_offset: info.first_offset,
                log_start_offset: log.log_start_offset(),
            });
        }
        // Idempotent batches: each is checked and appended on its own.
        let mut first: Option<i64> = None;
        let mut at = 0;
        for header in &headers {
            let bytes = &records[at..at + header.size()];
            at += header.size();
            let offset = match producers.check(header) {
                Decision::Reject(code) => {
                    return Err(KafkaError::new(
                        code,
                        format!(
                            "producer {} sequence {}",
                            header.producer_id, header.base_sequence
                        ),
                    ));
                }
                Decision::Duplicate(offset) => offset,
                Decision::Append => {
                    let mut owned = bytes.to_vec();
                    let info = log.append(&mut owned, 0).map_err(storage_error)?;
                    let mut stored = *header;
                    stored.base_offset = info.first_offset;
                    producers.record(&stored);
                    info.first_offset
                }
            };
            first.get_or_insert(offset);
        }
        Ok(Produced {
            base_offset: first.unwrap_or(-1),
            log_start_offset: log.log_start_offset(),
        })
    }

    /// Whole batches from `offset`, up to `max_bytes` (the first batch always whole).
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` or a storage error.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, KafkaError> {
        let log = read_lock(&self.log);
        match log.read(offset, max_bytes) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(LogError::OffsetOutOfRange { offset, start, end }) => Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                format!("offset {offset} not in [{start}, {end}]"),
            )),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// `(log start offset, high watermark)`; single node: the high watermark is the log end.
    pub fn offsets(&self) -> (i64, i64) {
        let log = read_lock(&self.log);
        (log.log_start_offset(), log.next_offset())
    }

    /// ListOffsets by timestamp.
    ///
    /// # Errors
    /// A storage error.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, KafkaError> {
        read_lock(&self.log)
            .offset_for_timestamp(timestamp)
            .map_err(storage_error)
    }

    /// DeleteRecords: `-1` means the high watermark.
    ///
    /// # Errors
    /// `OFFSET_OUT_OF_RANGE` or a storage error.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, KafkaError> {
        let mut log = write_lock(&self.log);
        let target = if offset == -1 {
            log.next_offset()
        } else {
            offset
        };
        match log.delete_records_before(target) {
            Ok(start) => Ok(start),
            Err(LogError::OffsetOutOfRange { .. }) => Err(KafkaError::new(
                codes::OFFSET_OUT_OF_RANGE,
                "beyond the high watermark",
            )),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// fsyncs the partition's log.
    ///
    /// # Errors
    /// A storage error.
    pub fn flush(&self) -> Result<(), KafkaError> {
        write_lock(&self.log).flush().map_err(storage_error)
    }

    /// fsyncs if the topic's `flush.ms` says it is time.
    pub fn flush_if_due(&self) {
        if let Err(error) = write_lock(&self.log).flush_if_due() {
            tracing::error!(error = %chain(&error), partition = self.index, "flush.ms sync failed");
        }
    }

    /// Applies retention; returns segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let mut log = write_lock(&self.log);
        log.apply_retention(now_ms).unwrap_or_else(|error| {
            tracing::error!(error = %chain(&error), "retention failed");
            0
        })
    }

    fn reconfigure(&self, dir: &Path, config: hdi_log::LogConfig) -> Result<(), LogError> {
        let mut log = write_lock(&self.log);
        // Sync what the old settings left unsynced, then reopen with the new settings (the log
        // re-reads its segments; cheap, no data moves).
        log.flush()?;
        let (reopened, _) = Log::open(dir, config)?;
        *log = reopened;
        Ok(())
    }
}

/// A topic.
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    dir: PathBuf,
    partitions: RwLock<Vec<Arc<Partition>>>,
    configs: Mutex<TopicConfigs>,
}

impl Topic {
    /// The partitions.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        read_lock(&self.partitions).clone()
    }

    /// One partition.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| read_lock(&self.partitions).get(i).cloned())
    }

    /// The explicit configs.
    pub fn configs(&self) -> TopicConfigs {
        lock(&self.configs).clone()
    }

    fn persist(&self, partitions: i32, configs: &TopicConfigs) -> std::io::Result<()> {
        let meta = TopicMeta {
            id: self.id,
            partitions,
            configs: configs.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
        let tmp = self.dir.join("topic.json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("topic.json"))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// Checks a topic name as Kafka does: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), KafkaError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KafkaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("invalid topic name {name:?}"),
        ))
    }
}

/// All topics of this broker.
pub struct Topics {
    dir: PathBuf,
    default_flush: Option<u64>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
}

impl Topics {
    /// Opens every topic under `data_dir/topics`, recovering their logs.
    ///
    /// # Errors
    /// When a topic cannot be opened.
    pub fn open(config: &BrokerConfig) -> anyhow::Result<Topics> {
        let dir = config.data_dir.join("topics");
        std::fs::create_dir_all(&dir)?;
        // Topics deleted before a crash were moved to `trash/`; finish removing them.
        let trash = config.data_dir.join("trash");
        if trash.exists() {
            std::fs::remove_dir_all(&trash)?;
        }
        let mut topics = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta_path = entry.path().join("topic.json");
            let Ok(bytes) = std::fs::read(&meta_path) else {
                tracing::warn!(topic = %name, "no topic.json; ignoring the directory");
                continue;
            };
            let meta: TopicMeta = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{} is corrupt: {e}", meta_path.display()))?;
            let log_config = topic_config::log_config(&meta.configs, config.flush_messages);
            let mut partitions = Vec::new();
            for index in 0..meta.partitions {
                let pdir = entry.path().join(index.to_string());
                partitions.push(Arc::new(Partition::open(&pdir, index, log_config.clone())?));
            }
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name,
                    id: meta.id,
                    dir: entry.path(),
                    partitions: RwLock::new(partitions),
                    configs: Mutex::new(meta.configs),
                }),
            );
        }
        Ok(Topics {
            dir,
            default_flush: config.flush_messages,
            topics: RwLock::new(topics),
        })
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        read_lock(&self.topics).get(name).cloned()
    }

    /// A topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        read_lock(&self.topics)
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        read_lock(&self.topics).values().cloned().collect()
    }

    /// Creates a topic (or only validates, with `validate_only`).
    ///
    /// # Errors
    /// `INVALID_TOPIC_EXCEPTION`, `TOPIC_ALREADY_EXISTS`, `INVALID_PARTITIONS`, `INVALID_CONFIG`.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<Arc<Topic>, KafkaError> {
        validate_topic_name(name)?;
        if !(1..=10_000).contains(&partitions) {
            return Err(KafkaError::new(
                codes::INVALID_PARTITIONS,
                format!("partitions must be 1-10000, got {partitions}"),
            ));
        }
        for (key, value) in &configs {
            topic_config::validate(key, value)
                .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
        }
        let mut topics = write_lock(&self.topics);
        if topics.contains_key(name) {
            return Err(KafkaError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {name:?} already exists"),
            ));
        }
        let topic = Topic {
            name: name.to_owned(),
            id: Uuid::new_v4(),
            dir: self.dir.join(name),
            partitions: RwLock::new(Vec::new()),
            configs: Mutex::new(configs.clone()),
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }
        let io = |e: std::io::Error| {
            storage_error(LogError::Io {
                action: "cannot create topic",
                path: self.dir.join(name),
                source: e,
            })
        };
        std::fs::create_dir_all(&topic.dir).map_err(io)?;
        let log_config = topic_config::log_config(&configs, self.default_flush);
        let mut parts = Vec::new();
        for index in 0..partitions {
            parts.push(Arc::new(
                Partition::open(
                    &topic.dir.join(index.to_string()),
                    index,
                    log_config.clone(),
                )
                .map_err(storage_error)?,
            ));
        }
        *write_lock(&topic.partitions) = parts;
        topic.persist(partitions, &configs).map_err(io)?;
        let topic = Arc::new(topic);
        topics.insert(name.to_owned(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn delete(&self, name: &str) -> Result<(), KafkaError> {
        let mut topics = write_lock(&self.topics);
        let topic = topics.get(name).cloned().ok_or_else(|| {
            KafkaError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            )
        })?;
        // Move the directory out of `topics/` first (atomic): a crash before the removal leaves
        // it in `trash/`, which the next start empties; it can never come back as a topic.
        let trash = self.dir.with_file_name("trash");
        let doomed = trash.join(topic.id.simple().to_string());
        std::fs::create_dir_all(&trash)
            .and_then(|()| std::fs::rename(&topic.dir, &doomed))
            .map_err(|source| {
                storage_error(LogError::Io {
                    action: "cannot delete topic",
                    path: topic.dir.clone(),
                    source,
                })
            })?;
        topics.remove(name);
        drop(topics);
        let _ = std::fs::remove_dir_all(&doomed);
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION`, `INVALID_PARTITIONS`.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let topic = self.get(name).ok_or_else(|| {
            KafkaError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            )
        })?;
        let mut parts = write_lock(&topic.partitions);
        let current = parts.len() as i32;
        if count <= current || count > 10_000 {
            return Err(KafkaError::new(
                codes::INVALID_PARTITIONS,
                format!(
                    "topic has {current} partitions; the new count must be larger (and at most 10000), got {count}"
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let configs = topic.configs();
        let log_config = topic_config::log_config(&configs, self.default_flush);
        for index in current..count {
            parts.push(Arc::new(
                Partition::open(
                    &topic.dir.join(index.to_string()),
                    index,
                    log_config.clone(),
                )
                .map_err(storage_error)?,
            ));
        }
        topic.persist(count, &configs).map_err(|e| {
            storage_error(LogError::Io {
                action: "cannot persist topic",
                path: topic.dir.clone(),
                source: e,
            })
        })?;
        Ok(())
    }

    /// Replaces (`incremental = false`) or updates a topic's explicit configs. `None` values
    /// delete a key (back to its default).
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION`, `INVALID_CONFIG`.
    pub fn alter_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), KafkaError> {
        let topic = self.get(name).ok_or_else(|| {
            KafkaError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic {name:?}"),
            )
        })?;
        let mut configs = if incremental {
            topic.configs()
        } else {
            TopicConfigs::new()
        };
        for (key, value) in changes {
            match value {
                Some(value) => {
                    topic_config::validate(&key, &value)
                        .map_err(|m| KafkaError::new(codes::INVALID_CONFIG, m))?;
                    configs.insert(key, value);
                }
                None => {
                    configs.remove(&key);
                }
            }
        }
        if validate_only {
            return Ok(());
        }
        let partitions = topic.partitions();
        topic
            .persist(partitions.len() as i32, &configs)
            .map_err(|e| {
                storage_error(LogError::Io {
                    action: "cannot persist topic",
                    path: topic.dir.clone(),
                    source: e,
                })
            })?;
        let log_config = topic_config::log_config(&configs, self.default_flush);
        for partition in &partitions {
            partition
                .reconfigure(
                    &topic.dir.join(partition.index.to_string()),
                    log_config.clone(),
                )
                .map_err(storage_error)?;
        }
        *lock(&topic.configs) = configs;
        Ok(())
    }
}

/// Loads or creates the cluster id.
///
/// # Errors
/// When `cluster.json` cannot be read or written.
pub fn cluster_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("cluster.json");
    if let Ok(bytes) = std::fs::read(&path) {
        let value: serde_json::Value = serde_json::from_slice(&bytes)?;
        if let Some(id) = value["cluster_id"].as_str() {
            return Ok(id.to_owned());
        }
    }
    let id = Uuid::new_v4().simple().to_string()[..22].to_owned();
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"cluster_id": id}))?,
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdi_log::batch::{build_batch, with_producer};

    #[test]
    fn idempotence_state_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("hdi-state-idem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = hdi_log::LogConfig::default();
        let first = with_producer(build_batch(0, 0, &[b"a", b"b"]), 42, 0, 0);
        let second = with_producer(build_batch(0, 0, &[b"c"]), 42, 0, 2);
        {
            let partition = Partition::open(&dir, 0, config.clone()).unwrap();
            assert_eq!(partition.produce(&first).unwrap().base_offset, 0);
            assert_eq!(partition.produce(&second).unwrap().base_offset, 2);
        }
        // After a restart, retries are recognised from the stored headers: same offsets, no append.
        let partition = Partition::open(&dir, 0, config).unwrap();
        assert_eq!(partition.produce(&first).unwrap().base_offset, 0);
        assert_eq!(partition.produce(&second).unwrap().base_offset, 2);
        assert_eq!(partition.offsets(), (0, 3));
        let gap = with_producer(build_batch(0, 0, &[b"d"]), 42, 0, 7);
        assert_eq!(
            partition.produce(&gap).unwrap_err().code,
            codes::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        let next = with_producer(build_batch(0, 0, &[b"d"]), 42, 0, 3);
        assert_eq!(partition.produce(&next).unwrap().base_offset, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn topic_names_are_validated_as_kafka_does() {
        for ok in ["t", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "spa ce", &"x".repeat(250), "ü"] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                codes::INVALID_TOPIC_EXCEPTION,
                "{bad:?}"
            );
        }
    }
}
