//! The replica manager: makes this broker's partition replicas match the metadata. The tasks and
//! answers that move data between brokers are [`crate::replication`]'s.
//!
//! - [`Replicas::reconcile`] runs on every metadata change: it opens replicas newly assigned
//!   here, gives every replica its role (leader or follower, epoch, ISR; only once this broker
//!   has caught up with the metadata after a start, as a stale view could name it leader of
//!   partitions that moved away), reconfigures logs whose
//!   topic configs changed (compaction settings included, for the log cleaner), and deletes replicas no longer assigned (only once this broker has
//!   caught up with the metadata, so a stale view never deletes data).
//! - [`Throttle`]: the rate limit of replication traffic to replicas being added by a
//!   reassignment.
//!
//! Replica directories are `<data-dir>/replicas/<topic-id>-<partition>/`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hdi_kafka_client::codes;

use crate::cluster::metadata::{BrokerId, ClusterMetadata};
use crate::cluster::raft::MetadataView;
use crate::replica::Replica;
use crate::state::{KafkaError, chain, lock, read_lock, write_lock};
use crate::topic_config;

type Key = (String, i32);

/// What the cleaner did since the broker started (the log cleaner task keeps it; the metrics read it).
#[derive(Debug, Default)]
pub struct CleanerStats {
    /// Bytes the cleaner read.
    pub bytes_read: std::sync::atomic::AtomicU64,
    /// Bytes the cleaner wrote.
    pub bytes_written: std::sync::atomic::AtomicU64,
    /// Logs cleaned.
    pub cleans: std::sync::atomic::AtomicU64,
    /// When the last clean ended (epoch milliseconds, 0 for never).
    pub last_clean_ms: std::sync::atomic::AtomicI64,
    /// The highest dirty ratio among compacted logs at the last look, in thousandths.
    pub max_dirty_ratio_permille: std::sync::atomic::AtomicU64,
}

/// This broker's replicas.
pub struct Replicas {
    dir: PathBuf,
    node_id: BrokerId,
    default_flush: Option<u64>,
    map: RwLock<HashMap<Key, Arc<Replica>>>,
    fetchers: Mutex<HashSet<BrokerId>>,
    /// The metadata index the local replicas were last reconciled with.
    reconciled: tokio::sync::watch::Sender<u64>,
    /// What the log cleaner did.
    pub cleaner_stats: CleanerStats,
}

impl Replicas {
    /// Prepares `<data-dir>/replicas` (finishing deletions a crash interrupted).
    ///
    /// # Errors
    /// When the directories cannot be used.
    pub fn open(config: &crate::config::BrokerConfig) -> std::io::Result<Replicas> {
        let dir = config.data_dir.join("replicas");
        std::fs::create_dir_all(&dir)?;
        let trash = config.data_dir.join("trash");
        if trash.exists() {
            std::fs::remove_dir_all(&trash)?;
        }
        Ok(Replicas {
            dir,
            node_id: config.node_id,
            default_flush: config.flush_messages,
            map: RwLock::new(HashMap::new()),
            fetchers: Mutex::new(HashSet::new()),
            reconciled: tokio::sync::watch::channel(0).0,
            cleaner_stats: CleanerStats::default(),
        })
    }

    /// Waits (up to 2 s) until the local replicas reflect metadata `index`: an admin request that
    /// changed the metadata answers once this broker serves the result.
    pub async fn wait_reconciled(&self, index: u64) {
        let mut watch = self.reconciled.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), watch.wait_for(|i| *i >= index)).await;
    }

    /// A local replica.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Replica>> {
        read_lock(&self.map)
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// Every local replica.
    pub fn all(&self) -> Vec<Arc<Replica>> {
        read_lock(&self.map).values().cloned().collect()
    }

    /// The local leader replica of a partition, or the error a client should get.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_OR_FOLLOWER.
    pub fn leader(
        &self,
        meta: &ClusterMetadata,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Replica>, KafkaError> {
        if meta.partition(topic, partition).is_none() {
            return Err(KafkaError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {topic}-{partition}"),
            ));
        }
        match self.get(topic, partition) {
            Some(replica) if replica.is_leader() => Ok(replica),
            _ => Err(KafkaError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!("broker {} does not lead {topic}-{partition}", self.node_id),
            )),
        }
    }

    /// Makes the local replicas match `view` (blocking I/O). Returns the leaders to fetch from.
    pub fn reconcile(&self, view: &MetadataView, caught_up: bool) -> HashSet<BrokerId> {
        let mut leaders = HashSet::new();
        let mut wanted: HashSet<Key> = HashSet::new();
        for (name, topic) in &view.meta.topics {
            let log_config = topic_config::log_config(&topic.configs, self.default_flush);
            let compaction = topic_config::compaction_config(&topic.configs);
            for (index, record) in topic.partitions.iter().enumerate() {
                if !record.replicas.contains(&self.node_id) {
                    continue;
                }
                let index = index as i32;
                let key = (name.clone(), index);
                wanted.insert(key.clone());
                let existing = self.get(name, index).filter(|r| r.topic_id == topic.id);
                let replica = match existing {
                    Some(replica) => {
                        if replica.log_config() != log_config
                            && let Err(error) = replica.reconfigure(log_config.clone())
                        {
                            tracing::error!(topic = %name, partition = index, message = %error.message, "cannot apply new topic configs");
                        }
                        replica
                    }
                    None => {
                        let dir = self.dir.join(format!("{}-{index}", topic.id.simple()));
                        match Replica::open(
                            &dir,
                            name,
                            topic.id,
                            index,
                            self.node_id,
                            log_config.clone(),
                        ) {
                            Ok(replica) => {
                                let replica = Arc::new(replica);
                                if let Some(old) =
                                    write_lock(&self.map).insert(key, Arc::clone(&replica))
                                {
                                    // A topic of the same name was deleted and created again.
                                    self.remove_dir(&old);
                                }
                                replica
                            }
                            Err(error) => {
                                tracing::error!(topic = %name, partition = index, error = %chain(&error), "cannot open replica");
                                continue;
                            }
                        }
                    }
                };
                replica.set_compaction(compaction.clone());
                // Until this broker has caught up with the metadata (after a restart), its view
                // may name it leader of partitions that moved away: take no role before that.
                if !caught_up {
                    continue;
                }
                let was_mirror = replica.is_mirror();
                replica.set_mirror(topic.mirror.is_some());
                // A reverse link cut the partition's log: a follower cuts its own, as it takes
                // its role, before it fetches in the epoch that began there (once per replica:
                // `Replica::update_role_adopted`).
                match topic.adopted.get(&index) {
                    Some(adoption) => {
                        replica.update_role_adopted(record, (adoption.offset, adoption.epoch))
                    }
                    None => replica.update_role(record),
                };
                // A mirror that stopped (promoted, failed over) keeps its source's open
                // transactions, which no coordinator here will end: its leader aborts them.
                if was_mirror
                    && topic.mirror.is_none()
                    && record.leader == self.node_id
                    && let Err(error) = replica.abort_open_transactions()
                {
                    tracing::error!(topic = %name, partition = index, message = %error.message, "cannot abort a stopped mirror's open transactions");
                }
                if record.leader >= 0 && record.leader != self.node_id {
                    leaders.insert(record.leader);
                }
            }
        }
        let index = view.applied_index;
        self.reconciled.send_if_modified(|i| {
            let moved = index > *i;
            *i = (*i).max(index);
            moved
        });
        if caught_up {
            let doomed: Vec<Arc<Replica>> = {
                let mut map = write_lock(&self.map);
                let gone: Vec<Key> = map
                    .keys()
                    .filter(|k| !wanted.contains(*k))
                    .cloned()
                    .collect();
                gone.iter().filter_map(|k| map.remove(k)).collect()
            };
            for replica in doomed {
                tracing::info!(topic = %replica.topic, partition = replica.index, "replica no longer assigned here: deleting it");
                self.remove_dir(&replica);
            }
            // Directories that no topic claims (left by a crash or a deletion while down).
            let known: HashSet<PathBuf> = self.all().iter().map(|r| r.dir().to_owned()).collect();
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let claimed = known.contains(&path)
                        || view
                            .meta
                            .topics
                            .values()
                            .any(|t| name.starts_with(&t.id.simple().to_string()));
                    if !claimed {
                        tracing::info!(dir = %path.display(), "removing a replica directory no topic claims");
                        let _ = std::fs::remove_dir_all(&path);
                    }
                }
            }
        }
        leaders
    }

    fn remove_dir(&self, replica: &Replica) {
        let trash = self.dir.with_file_name("trash");
        let doomed = trash.join(uuid::Uuid::new_v4().simple().to_string());
        let moved =
            std::fs::create_dir_all(&trash).and_then(|()| std::fs::rename(replica.dir(), &doomed));
        match moved {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&doomed);
            }
            Err(error) => {
                tracing::error!(dir = %replica.dir().display(), %error, "cannot delete replica")
            }
        }
    }

    /// Marks a fetcher for `leader` as running; false if one already runs.
    pub(crate) fn claim_fetcher(&self, leader: BrokerId) -> bool {
        lock(&self.fetchers).insert(leader)
    }
}

/// A token bucket for reassignment traffic: `rate` bytes per second with a tenth of a second of
/// burst, per leader broker (as Kafka's throttle is).
pub struct Throttle {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, std::time::Instant)>,
}

impl Throttle {
    /// A bucket of `rate` bytes per second, full.
    pub fn new(rate: u64) -> Throttle {
        let burst = rate as f64 / 10.0;
        Throttle {
            rate: rate as f64,
            burst,
            state: Mutex::new((burst, std::time::Instant::now())),
        }
    }

    /// How many bytes may be sent now (0 while the bucket is in debt).
    pub(crate) fn available(&self) -> usize {
        let mut state = lock(&self.state);
        let now = std::time::Instant::now();
        state.0 = (state.0 + now.duration_since(state.1).as_secs_f64() * self.rate).min(self.burst);
        state.1 = now;
        state.0.max(0.0) as usize
    }

    /// Takes `bytes` from the bucket (it may go into debt: the next sends wait).
    pub(crate) fn take(&self, bytes: usize) {
        lock(&self.state).0 -= bytes as f64;
    }
}
