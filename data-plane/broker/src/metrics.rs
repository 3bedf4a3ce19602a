//! The broker's Prometheus metrics, named as the JMX exporter's usual Kafka rules
//! (`lowercaseOutputName`, `kafka_<domain>_<type>_<name>` with `PerSec` meters as `_total`
//! counters) render Kafka's MBeans, so that dashboards and alerts written for Kafka read ours:
//!
//! | Kafka MBean | here |
//! |---|---|
//! | `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=9` | `kafka_network_requestmetrics_requests_total{request="Produce",version="9"}` |
//! | `kafka.network:type=RequestMetrics,name=TotalTimeMs,request=Produce` | `kafka_network_requestmetrics_totaltime_seconds{request="Produce"}` (a histogram in seconds, not a ms summary) |
//! | `kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T` | `kafka_server_brokertopicmetrics_bytesin_total{topic="T"}` |
//! | `kafka.server:type=BrokerTopicMetrics,name=BytesOutPerSec,topic=T` | `kafka_server_brokertopicmetrics_bytesout_total{topic="T"}` |
//! | `kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=T` | `kafka_server_brokertopicmetrics_messagesin_total{topic="T"}` |
//! | `kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions` | `kafka_server_replicamanager_underreplicatedpartitions` |
//! | `kafka.server:type=ReplicaManager,name=PartitionCount` | `kafka_server_replicamanager_partitioncount` |
//! | `kafka.server:type=ReplicaManager,name=LeaderCount` | `kafka_server_replicamanager_leadercount` |
//! | `kafka.server:type=ReplicaManager,name=IsrShrinksPerSec` | `kafka_server_replicamanager_isrshrinks_total` |
//! | `kafka.server:type=ReplicaManager,name=IsrExpandsPerSec` | `kafka_server_replicamanager_isrexpands_total` |
//! | `kafka.controller:type=KafkaController,name=ActiveControllerCount` | `kafka_controller_kafkacontroller_activecontrollercount` |
//! | `kafka.controller:type=KafkaController,name=OfflinePartitionsCount` | `kafka_controller_kafkacontroller_offlinepartitionscount` (the active controller's count; 0 elsewhere, as in Kafka) |
//! | `kafka.coordinator.group:type=GroupMetadataManager,name=NumGroups` | `kafka_coordinator_group_groupmetadatamanager_numgroups` |
//! | `kafka.server:type=FetchSessionCache,name=NumIncrementalFetchSessions` | `kafka_server_fetchsessioncache_numincrementalfetchsessions` |
//! | `kafka.server:type=FetchSessionCache,name=NumIncrementalFetchPartitionsCached` | `kafka_server_fetchsessioncache_numincrementalfetchpartitionscached` |
//! | `kafka.server:type=FetchSessionCache,name=IncrementalFetchSessionEvictionsPerSec` | `kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total` |
//!
//! | `kafka.log:type=LogCleanerManager,name=max-dirty-percent` | `kafka_log_logcleanermanager_max_dirty_percent` |
//! | `kafka.log:type=LogCleaner,name=time-since-last-run-ms` | `kafka_log_logcleaner_time_since_last_run_ms` (-1 before the first clean) |
//!
//! And hdi's own, with no Kafka MBean: `hdi_transaction_coordinator_open_transactions` (open
//! transactions, `Ongoing` or completing, on the broker coordinating them; 0 elsewhere),
//! `hdi_partition_hanging_transactions` (transactions open on partitions led here for longer
//! than `transaction.max.timeout.ms` plus a margin: hanging, see `producers.rs`),
//! `hdi_log_cleaner_read_bytes` / `hdi_log_cleaner_written_bytes` (what the log cleaner read and
//! wrote since the broker started), and the replica fetches this broker served as leader:
//! `hdi_replica_fetch_requests_total`, `hdi_replica_fetch_incremental_requests_total`,
//! `hdi_replica_fetch_request_bytes_total`, `hdi_replica_fetch_response_bytes_total` (frames,
//! records included) and `hdi_replica_fetch_partitions_total` (partitions the requests listed).
//!
//! Counters are bumped on the request path with atomics only: a request's counter and latency
//! histogram are found by index (API key, version) after their first use, and a topic's three
//! counters through one read-locked map lookup by `&str` (no allocation). Gauges are computed
//! when scraped ([`BrokerMetrics::exposition`]), which also drops the series of deleted topics.
//! Served on `--metrics-listen` (`main.rs`) through `hdi_http_serve::metrics::router`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use hdi_http_serve::metrics::{LATENCY_BUCKETS, exposition};
use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Highest API key and version indexed directly (larger ones are not counted).
const KEYS: usize = 100;
const VERSIONS: usize = 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// A topic's counters, created on its first use.
#[derive(Debug)]
pub struct TopicCounters {
    bytes_in: Counter,
    bytes_out: Counter,
    messages_in: Counter,
}

impl TopicCounters {
    /// Counts an append of `bytes` holding `messages` records.
    pub fn produced(&self, bytes: u64, messages: u64) {
        self.bytes_in.inc_by(bytes);
        self.messages_in.inc_by(messages);
    }

    /// Counts `bytes` sent to a consumer.
    pub fn fetched(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }
}

/// What a scrape reads of the broker's state for its gauges (the broker context fills it:
/// this module sits below it and knows nothing of replicas or the quorum).
#[derive(Clone, Debug, Default)]
pub struct ScrapeState {
    /// Replicas hosted.
    pub partitions: usize,
    /// Of which leaders.
    pub leaders: usize,
    /// Leaders whose ISR is smaller than their replica set.
    pub under_replicated: usize,
    /// Whether this broker is the active controller.
    pub active_controller: bool,
    /// Partitions without a leader (counted by the active controller only, as Kafka does).
    pub offline_partitions: usize,
    /// Consumer groups this broker coordinates.
    pub groups: usize,
    /// The topics that exist (series of other topics are dropped).
    pub topics: std::collections::HashSet<String>,
    /// Incremental fetch sessions cached.
    pub fetch_sessions: usize,
    /// Partitions cached over all fetch sessions.
    pub fetch_session_partitions: usize,
    /// Open transactions (`Ongoing` or `Prepare*`) this broker coordinates.
    pub open_transactions: usize,
    /// Transactions open on partitions led here for longer than
    /// `producers::HANGING_AFTER_MS` (hanging: no marker will come).
    pub hanging_transactions: usize,
    /// The log cleaner: bytes read and written since start, the highest dirty ratio among
    /// compacted logs (percent) and milliseconds since its last clean (-1: none yet).
    pub cleaner: CleanerScrape,
}

/// The log cleaner's figures a scrape reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct CleanerScrape {
    /// Bytes read since start.
    pub read_bytes: u64,
    /// Bytes written since start.
    pub written_bytes: u64,
    /// The highest dirty ratio at the cleaner's last look, in percent.
    pub max_dirty_percent: i64,
    /// Milliseconds since the last clean, or -1.
    pub since_last_run_ms: i64,
}

/// Every metric of one broker.
pub struct BrokerMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_time: Family<ApiLabels, Histogram>,
    /// `[key][version]` → the counter, filled on first use.
    request_counters: Vec<OnceLock<Counter>>,
    /// `[key]` → the latency histogram, filled on first use.
    request_histograms: Vec<OnceLock<Histogram>>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    messages_in: Family<TopicLabels, Counter>,
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    isr_shrinks: Counter,
    isr_expands: Counter,
    under_replicated: Gauge,
    partition_count: Gauge,
    leader_count: Gauge,
    active_controller: Gauge,
    offline_partitions: Gauge,
    groups: Gauge,
    fetch_sessions: Gauge,
    fetch_session_partitions: Gauge,
    open_transactions: Gauge,
    hanging_transactions: Gauge,
    cleaner_read: Gauge,
    cleaner_written: Gauge,
    cleaner_max_dirty: Gauge,
    cleaner_since_last_run: Gauge,
    fetch_session_evictions: Counter,
    replica_fetches: Counter,
    replica_fetches_incremental: Counter,
    replica_fetch_request_bytes: Counter,
    replica_fetch_response_bytes: Counter,
    replica_fetch_partitions: Counter,
}

impl std::fmt::Debug for BrokerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerMetrics").finish_non_exhaustive()
    }
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics::new()
    }
}

impl BrokerMetrics {
    /// New metrics, all at zero.
    pub fn new() -> BrokerMetrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_time = Family::<ApiLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "kafka_network_requestmetrics_requests",
            "Kafka requests handled, by API (request) and version (RequestsPerSec)",
            requests.clone(),
        );
        registry.register(
            "kafka_network_requestmetrics_totaltime_seconds",
            "Time from a request's arrival to its response, by API (TotalTimeMs)",
            request_time.clone(),
        );
        let bytes_in = Family::<TopicLabels, Counter>::default();
        let bytes_out = Family::<TopicLabels, Counter>::default();
        let messages_in = Family::<TopicLabels, Counter>::default();
        registry.register(
            "kafka_server_brokertopicmetrics_bytesin",
            "Bytes appended by producers, by topic (BytesInPerSec)",
            bytes_in.clone(),
        );
        registry.register(
            "kafka_server_brokertopicmetrics_bytesout",
            "Bytes sent to consumers, by topic (BytesOutPerSec)",
            bytes_out.clone(),
        );
        registry.register(
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by producers, by topic (MessagesInPerSec)",
            messages_in.clone(),
        );
        let isr_shrinks = Counter::default();
        let isr_expands = Counter::default();
        registry.register(
            "kafka_server_replicamanager_isrshrinks",
            "ISR changes this broker made as leader that removed a replica",
            isr_shrinks.clone(),
        );
        registry.register(
            "kafka_server_replicamanager_isrexpands",
            "ISR changes this broker made as leader that added a replica",
            isr_expands.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let under_replicated = gauge(
            &mut registry,
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions this broker leads whose ISR is smaller than their replica set",
        );
        let partition_count = gauge(
            &mut registry,
            "kafka_server_replicamanager_partitioncount",
            "Partition replicas on this broker",
        );
        let leader_count = gauge(
            &mut registry,
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads",
        );
        let active_controller = gauge(
            &mut registry,
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller (the metadata quorum's leader), else 0",
        );
        let offline_partitions = gauge(
            &mut registry,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (counted by the active controller; 0 elsewhere)",
        );
        let groups = gauge(
            &mut registry,
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups this broker's coordinator knows",
        );
        let fetch_sessions = gauge(
            &mut registry,
            "kafka_server_fetchsessioncache_numincrementalfetchsessions",
            "Incremental fetch sessions cached (KIP-227)",
        );
        let fetch_session_partitions = gauge(
            &mut registry,
            "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached",
            "Partitions cached over all incremental fetch sessions",
        );
        let open_transactions = gauge(
            &mut registry,
            "hdi_transaction_coordinator_open_transactions",
            "Open transactions (Ongoing or completing) this broker coordinates",
        );
        let hanging_transactions = gauge(
            &mut registry,
            "hdi_partition_hanging_transactions",
            "Transactions open on partitions led here longer than transaction.max.timeout.ms \
             plus a margin (find them with DescribeProducers; nothing aborts them)",
        );
        let cleaner_max_dirty = gauge(
            &mut registry,
            "kafka_log_logcleanermanager_max_dirty_percent",
            "The highest dirty ratio among compacted logs, in percent",
        );
        let cleaner_since_last_run = gauge(
            &mut registry,
            "kafka_log_logcleaner_time_since_last_run_ms",
            "Milliseconds since the log cleaner last cleaned a log (-1: never)",
        );
        let cleaner_read = gauge(
            &mut registry,
            "hdi_log_cleaner_read_bytes",
            "Bytes the log cleaner read since the broker started",
        );
        let cleaner_written = gauge(
            &mut registry,
            "hdi_log_cleaner_written_bytes",
            "Bytes the log cleaner wrote since the broker started",
        );
        let fetch_session_evictions = Counter::default();
        registry.register(
            "kafka_server_fetchsessioncache_incrementalfetchsessionevictions",
            "Fetch sessions evicted to make room for new ones",
            fetch_session_evictions.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let replica_fetches = counter(
            &mut registry,
            "hdi_replica_fetch_requests",
            "Replica fetches this broker answered as leader",
        );
        let replica_fetches_incremental = counter(
            &mut registry,
            "hdi_replica_fetch_incremental_requests",
            "Replica fetches answered within a fetch session (KIP-227)",
        );
        let replica_fetch_request_bytes = counter(
            &mut registry,
            "hdi_replica_fetch_request_bytes",
            "Bytes of the replica fetch requests this broker answered",
        );
        let replica_fetch_response_bytes = counter(
            &mut registry,
            "hdi_replica_fetch_response_bytes",
            "Bytes of this broker's replica fetch answers, records included",
        );
        let replica_fetch_partitions = counter(
            &mut registry,
            "hdi_replica_fetch_partitions",
            "Partitions listed by the replica fetch requests this broker answered",
        );
        BrokerMetrics {
            registry,
            requests,
            request_time,
            request_counters: (0..KEYS * VERSIONS).map(|_| OnceLock::new()).collect(),
            request_histograms: (0..KEYS).map(|_| OnceLock::new()).collect(),
            bytes_in,
            bytes_out,
            messages_in,
            topics: RwLock::default(),
            isr_shrinks,
            isr_expands,
            under_replicated,
            partition_count,
            leader_count,
            active_controller,
            offline_partitions,
            groups,
            fetch_sessions,
            fetch_session_partitions,
            open_transactions,
            hanging_transactions,
            cleaner_read,
            cleaner_written,
            cleaner_max_dirty,
            cleaner_since_last_run,
            fetch_session_evictions,
            replica_fetches,
            replica_fetches_incremental,
            replica_fetch_request_bytes,
            replica_fetch_response_bytes,
            replica_fetch_partitions,
        }
    }

    /// Counts a replica fetch this broker answered: `partitions` listed, request and response
    /// frame sizes, and whether it was incremental.
    pub fn replica_fetch_served(
        &self,
        partitions: usize,
        request_bytes: usize,
        response_bytes: usize,
        incremental: bool,
    ) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.replica_fetches.inc();
        if incremental {
            self.replica_fetches_incremental.inc();
        }
        self.replica_fetch_partitions.inc_by(n(partitions));
        self.replica_fetch_request_bytes.inc_by(n(request_bytes));
        self.replica_fetch_response_bytes.inc_by(n(response_bytes));
    }

    /// The fetch-session eviction counter, for the session cache to add to.
    pub fn fetch_session_evictions(&self) -> Counter {
        self.fetch_session_evictions.clone()
    }

    /// Counts one request of `key` at `version` that took `elapsed`.
    pub fn request(&self, key: ApiKey, version: i16, elapsed: Duration) {
        let (Ok(k), Ok(v)) = (usize::try_from(key as i16), usize::try_from(version)) else {
            return;
        };
        if k >= KEYS || v >= VERSIONS {
            return;
        }
        // The labels are built on first use only; then it is an index and an atomic add.
        self.request_counters[k * VERSIONS + v]
            .get_or_init(|| {
                self.requests.get_or_create_owned(&RequestLabels {
                    request: api_name(key),
                    version,
                })
            })
            .inc();
        self.request_histograms[k]
            .get_or_init(|| {
                self.request_time.get_or_create_owned(&ApiLabels {
                    request: api_name(key),
                })
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The counters of `topic` (created on first use).
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(counters) = read(&self.topics).get(topic) {
            return Arc::clone(counters);
        }
        let labels = TopicLabels {
            topic: topic.to_owned(),
        };
        let counters = Arc::new(TopicCounters {
            bytes_in: self.bytes_in.get_or_create_owned(&labels),
            bytes_out: self.bytes_out.get_or_create_owned(&labels),
            messages_in: self.messages_in.get_or_create_owned(&labels),
        });
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(topics.entry(labels.topic).or_insert(counters))
    }

    /// Counts an ISR change from `before` to `after` that the quorum committed.
    pub fn isr_changed(&self, before: &[i32], after: &[i32]) {
        if before.iter().any(|r| !after.contains(r)) {
            self.isr_shrinks.inc();
        }
        if after.iter().any(|r| !before.contains(r)) {
            self.isr_expands.inc();
        }
    }

    /// Sets the gauges from `state`, forgets the series of topics it no longer lists, and
    /// encodes everything.
    pub fn exposition(&self, state: &ScrapeState) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.partition_count.set(gauge(state.partitions));
        self.leader_count.set(gauge(state.leaders));
        self.under_replicated.set(gauge(state.under_replicated));
        self.active_controller
            .set(i64::from(state.active_controller));
        self.offline_partitions.set(gauge(state.offline_partitions));
        self.groups.set(gauge(state.groups));
        self.fetch_sessions.set(gauge(state.fetch_sessions));
        self.fetch_session_partitions
            .set(gauge(state.fetch_session_partitions));
        self.open_transactions.set(gauge(state.open_transactions));
        self.hanging_transactions
            .set(gauge(state.hanging_transactions));
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.cleaner_read.set(bytes(state.cleaner.read_bytes));
        self.cleaner_written.set(bytes(state.cleaner.written_bytes));
        self.cleaner_max_dirty.set(state.cleaner.max_dirty_percent);
        self.cleaner_since_last_run
            .set(state.cleaner.since_last_run_ms);
        let gone: Vec<String> = read(&self.topics)
            .keys()
            .filter(|t| !state.topics.contains(*t))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            for topic in gone {
                topics.remove(&topic);
                let labels = TopicLabels { topic };
                self.bytes_in.remove(&labels);
                self.bytes_out.remove(&labels);
                self.messages_in.remove(&labels);
            }
        }
        exposition(&self.registry)
    }

    /// The registry's text as it stands (no gauge refreshed): for tests.
    pub fn encode(&self) -> String {
        exposition(&self.registry)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Kafka's name of an API (`Produce`, `Fetch`, `ApiVersions`): the `request` label.
fn api_name(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<Vec<(ApiKey, &'static str)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ApiKey::iter()
            .map(|k| (k, &*Box::leak(format!("{k:?}").into_boxed_str())))
            .collect()
    });
    names
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("Unknown", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas_and_stable() {
        let metrics = BrokerMetrics::new();
        metrics.request(ApiKey::Produce, 9, Duration::from_millis(3));
        metrics.request(ApiKey::Produce, 9, Duration::from_millis(4));
        metrics.request(ApiKey::ApiVersions, 3, Duration::from_micros(200));
        metrics.topic("orders").produced(100, 3);
        metrics.topic("orders").fetched(40);
        metrics.isr_changed(&[1, 2, 3], &[1, 2]);
        metrics.isr_changed(&[1, 2], &[1, 2, 3]);
        metrics.fetch_session_evictions().inc_by(2);
        metrics.replica_fetch_served(5, 200, 8000, false);
        metrics.replica_fetch_served(2, 100, 1000, true);
        let text = metrics.exposition(&ScrapeState {
            fetch_sessions: 3,
            fetch_session_partitions: 40,
            open_transactions: 2,
            hanging_transactions: 1,
            cleaner: CleanerScrape {
                read_bytes: 5000,
                written_bytes: 1000,
                max_dirty_percent: 42,
                since_last_run_ms: 7,
            },
            topics: ["orders".to_owned()].into(),
            ..Default::default()
        });
        for line in [
            r#"kafka_network_requestmetrics_requests_total{request="Produce",version="9"} 2"#,
            r#"kafka_network_requestmetrics_requests_total{request="ApiVersions",version="3"} 1"#,
            r#"kafka_network_requestmetrics_totaltime_seconds_count{request="Produce"} 2"#,
            r#"kafka_server_brokertopicmetrics_bytesin_total{topic="orders"} 100"#,
            r#"kafka_server_brokertopicmetrics_messagesin_total{topic="orders"} 3"#,
            r#"kafka_server_brokertopicmetrics_bytesout_total{topic="orders"} 40"#,
            "kafka_server_replicamanager_isrshrinks_total 1",
            "kafka_server_replicamanager_isrexpands_total 1",
            "kafka_server_fetchsessioncache_numincrementalfetchsessions 3",
            "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached 40",
            "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total 2",
            "hdi_transaction_coordinator_open_transactions 2",
            "hdi_partition_hanging_transactions 1",
            "kafka_log_logcleanermanager_max_dirty_percent 42",
            "kafka_log_logcleaner_time_since_last_run_ms 7",
            "hdi_log_cleaner_read_bytes 5000",
            "hdi_log_cleaner_written_bytes 1000",
            "hdi_replica_fetch_requests_total 2",
            "hdi_replica_fetch_incremental_requests_total 1",
            "hdi_replica_fetch_partitions_total 7",
            "hdi_replica_fetch_request_bytes_total 300",
            "hdi_replica_fetch_response_bytes_total 9000",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        let families = hdi_http_serve::metrics::declared_families(&text);
        for family in &families {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(hdi_http_serve::metrics::valid_metric_name(name), "{name}");
        }
        // The snapshot: renaming a metric breaks dashboards, so it must be a visible change.
        assert_eq!(
            families,
            [
                "kafka_network_requestmetrics_requests counter",
                "kafka_network_requestmetrics_totaltime_seconds histogram",
                "kafka_server_brokertopicmetrics_bytesin counter",
                "kafka_server_brokertopicmetrics_bytesout counter",
                "kafka_server_brokertopicmetrics_messagesin counter",
                "kafka_server_replicamanager_isrshrinks counter",
                "kafka_server_replicamanager_isrexpands counter",
                "kafka_server_replicamanager_underreplicatedpartitions gauge",
                "kafka_server_replicamanager_partitioncount gauge",
                "kafka_server_replicamanager_leadercount gauge",
                "kafka_controller_kafkacontroller_activecontrollercount gauge",
                "kafka_controller_kafkacontroller_offlinepartitionscount gauge",
                "kafka_coordinator_group_groupmetadatamanager_numgroups gauge",
                "kafka_server_fetchsessioncache_numincrementalfetchsessions gauge",
                "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached gauge",
                "hdi_transaction_coordinator_open_transactions gauge",
                "hdi_partition_hanging_transactions gauge",
                "kafka_log_logcleanermanager_max_dirty_percent gauge",
                "kafka_log_logcleaner_time_since_last_run_ms gauge",
                "hdi_log_cleaner_read_bytes gauge",
                "hdi_log_cleaner_written_bytes gauge",
                "kafka_server_fetchsessioncache_incrementalfetchsessionevictions counter",
                "hdi_replica_fetch_requests counter",
                "hdi_replica_fetch_incremental_requests counter",
                "hdi_replica_fetch_request_bytes counter",
                "hdi_replica_fetch_response_bytes counter",
                "hdi_replica_fetch_partitions counter",
            ]
        );
    }

    #[test]
    fn out_of_range_keys_and_versions_are_ignored() {
        let metrics = BrokerMetrics::new();
        metrics.request(ApiKey::Produce, -1, Duration::ZERO);
        metrics.request(ApiKey::Produce, 99, Duration::ZERO);
        assert!(!metrics.encode().contains("requests_total{"));
    }
}
