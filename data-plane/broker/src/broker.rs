//! [`Broker`]: the broker's context, its configuration and all shared state (the cluster, the
//! replicas, groups, producer ids), opened from the data directory. Everything above it (the
//! request handlers, replication, the servers, the tasks) takes a `&Broker`; nothing here knows
//! of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::groups::{Coordinator, SharedOffsets};
use crate::producers::ProducerIdAllocator;
use crate::replicas::{Replicas, Throttle};

/// The broker: configuration and all shared state.
pub struct Broker {
    /// Configuration.
    pub config: BrokerConfig,
    /// The cluster: metadata quorum, membership, controller.
    pub cluster: Arc<Cluster>,
    /// This broker's partition replicas.
    pub replicas: Replicas,
    /// Consumer groups.
    pub groups: Coordinator,
    /// Producer ids.
    pub producer_ids: ProducerIdAllocator,
    /// The transaction coordinator's state (`txn`; driven by `txn_coordinator`).
    pub txns: crate::txn::TxnCoordinator,
    /// Woken whenever records are appended or the metadata changes (long-polling fetches wait
    /// on it).
    pub appended: Notify,
    /// Rate limit of replication traffic to replicas being added by a reassignment.
    pub throttle: Option<Throttle>,
    /// Client quota meters (see `security::quota`).
    pub quota_meters: std::sync::Mutex<crate::security::quota::Throttle>,
    /// What this broker last saw of each cluster link, by link and by task (`discovery` on the
    /// controller, `mirroring` on every broker leading mirror partitions): `None` while it
    /// works, the reason when it does not (`mirror.rs`; DescribeConfigs shows it).
    pub link_problems: std::sync::Mutex<BTreeMap<(String, &'static str), String>>,
    /// What this broker knows of each mirror partition it leads, by topic and partition
    /// (`mirror.rs` keeps it; DescribeConfigs of this broker shows it per link).
    pub mirror_progress: std::sync::Mutex<BTreeMap<(String, i32), MirrorProgress>>,
    /// Prometheus metrics (`metrics.rs`).
    pub metrics: crate::metrics::BrokerMetrics,
    /// Incremental fetch sessions of consumers (`fetch_sessions.rs`).
    pub fetch_sessions: crate::fetch_sessions::FetchSessionCache,
}

/// What the leader of a mirror partition last learnt of its source.
#[derive(Clone, Debug)]
pub struct MirrorProgress {
    /// The source's high watermark in its last answer (-1: none yet).
    pub source_end: i64,
    /// When (Unix ms) the source last answered for the partition (-1: never).
    pub source_seen_ms: i64,
    /// When (Unix ms) the partition last held everything its source had committed (-1: never).
    pub caught_up_ms: i64,
    /// When (Unix ms) this broker began leading it.
    pub since_ms: i64,
    /// Records and bytes copied since then (their mean sizes the byte lag).
    pub records: u64,
    /// See `records`.
    pub bytes: u64,
    /// What keeps it from copying, if anything.
    pub problem: Option<String>,
    /// Whether its link's task has seen the link paused (no fetch of it is under way).
    pub paused: bool,
    /// A reverse link's cut made here whose report to the quorum has not been applied yet:
    /// `(offset, records moved to quarantine)`, so that a retry reports the same count.
    pub cut: Option<(i64, i64)>,
}

impl MirrorProgress {
    /// Nothing learnt yet, at `now_ms`.
    pub fn new(now_ms: i64) -> MirrorProgress {
        MirrorProgress {
            source_end: -1,
            source_seen_ms: -1,
            caught_up_ms: -1,
            since_ms: now_ms,
            records: 0,
            bytes: 0,
            problem: None,
            paused: false,
            cut: None,
        }
    }
}

impl Broker {
    /// The broker's Prometheus metrics as OpenMetrics text, with the gauges read from its
    /// state now (partitions, leaders, under-replicated and offline partitions, the controller,
    /// groups).
    pub fn metrics_exposition(&self) -> String {
        let replicas = self.replicas.all();
        let mut state = crate::metrics::ScrapeState {
            partitions: replicas.len(),
            ..Default::default()
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for replica in &replicas {
            if replica.is_leader() {
                state.leaders += 1;
                state.hanging_transactions += replica.hanging_transactions(now_ms);
                let role = replica.role();
                if role.isr.len() < role.replicas.len() {
                    state.under_replicated += 1;
                }
            }
        }
        state.active_controller = self.cluster.is_controller();
        let view = self.cluster.view();
        if state.active_controller {
            state.offline_partitions = view
                .meta
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .filter(|p| p.leader < 0)
                .count();
        }
        state.groups = self.groups.list().len();
        if state.active_controller {
            state.open_transactions = self.txns.open_count();
        }
        state.topics = view.meta.topics.keys().cloned().collect();
        state.fetch_sessions = self.fetch_sessions.sessions();
        state.fetch_session_partitions = self.fetch_sessions.partitions();
        let cleaner = &self.replicas.cleaner_stats;
        let last = cleaner
            .last_clean_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        state.cleaner = crate::metrics::CleanerScrape {
            read_bytes: cleaner
                .bytes_read
                .load(std::sync::atomic::Ordering::Relaxed),
            written_bytes: cleaner
                .bytes_written
                .load(std::sync::atomic::Ordering::Relaxed),
            max_dirty_percent: (cleaner
                .max_dirty_ratio_permille
                .load(std::sync::atomic::Ordering::Relaxed)
                / 10) as i64,
            since_last_run_ms: if last > 0 { (now - last).max(0) } else { -1 },
        };
        self.metrics.exposition(&state)
    }

    /// Opens the broker's state in its data directory and joins (or forms) the cluster.
    /// `quorum_addr` is where this broker's quorum listener is reachable ("" without one).
    ///
    /// # Errors
    /// When the data directory cannot be used or Raft cannot start.
    pub async fn open(config: BrokerConfig, quorum_addr: String) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let replicas = Replicas::open(&config)?;
        let offsets = SharedOffsets::default();
        let groups = Coordinator::new(offsets.clone(), config.group_initial_rebalance_delay);
        let producer_ids =
            ProducerIdAllocator::open(&config.data_dir.join("producer-ids"), config.node_id)?;
        let txns = crate::txn::TxnCoordinator::default();
        let cluster =
            Cluster::start(&config, quorum_addr, offsets, Arc::clone(&txns.shared)).await?;
        let throttle = config.reassignment_throttle.map(Throttle::new);
        let metrics = crate::metrics::BrokerMetrics::new();
        let fetch_sessions = crate::fetch_sessions::FetchSessionCache::new(
            config.fetch_session_slots,
            config.fetch_session_eviction,
            metrics.fetch_session_evictions(),
        );
        Ok(Arc::new(Broker {
            config,
            cluster,
            replicas,
            groups,
            producer_ids,
            txns,
            appended: Notify::new(),
            throttle,
            quota_meters: std::sync::Mutex::default(),
            link_problems: std::sync::Mutex::default(),
            mirror_progress: std::sync::Mutex::default(),
            metrics,
            fetch_sessions,
        }))
    }

    /// The cluster id (empty until the first broker registered).
    pub fn cluster_id(&self) -> String {
        self.cluster.view().meta.cluster_id.clone()
    }

    /// fsyncs every replica (clean shutdown).
    pub fn flush_all(&self) {
        for replica in self.replicas.all() {
            if let Err(error) = replica.flush() {
                tracing::error!(topic = %replica.topic, partition = replica.index, message = %error.message, "flush failed");
            }
        }
    }

    /// Waits until this broker is registered and unfenced (serving as a member of the cluster).
    /// Returns whether it happened within `timeout`.
    pub async fn wait_until_unfenced(&self, timeout: Duration) -> bool {
        let mut watch = self.cluster.metadata.clone();
        let id = self.config.node_id;
        let incarnation = self.cluster.incarnation;
        let unfenced = tokio::time::timeout(
            timeout,
            watch.wait_for(|v| {
                v.meta
                    .brokers
                    .get(&id)
                    .is_some_and(|b| !b.fenced && b.incarnation == incarnation)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if unfenced {
            // And serving: the local replicas have taken their roles.
            let index = self.cluster.view().applied_index;
            self.replicas.wait_reconciled(index).await;
        }
        unfenced
    }

    /// Controlled shutdown: asks the controller to move this broker's leaderships away and waits
    /// (up to `timeout`) until it leads nothing.
    pub async fn controlled_shutdown(&self, timeout: Duration) {
        self.cluster
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        let leads_something = |broker: &Broker| {
            broker
                .cluster
                .view()
                .meta
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .any(|p| p.leader == broker.config.node_id && p.isr.len() > 1)
        };
        while leads_something(self) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if leads_something(self) {
            tracing::warn!("controlled shutdown: leaderships not moved in time; stopping anyway");
        } else {
            tracing::info!("controlled shutdown: no leaderships left");
        }
    }
}
