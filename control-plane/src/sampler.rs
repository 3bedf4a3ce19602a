//! The metrics sampler: recent per-cluster time series of every serving Kafka cluster, kept in
//! memory for the portal's charts (`GET /v1/workspaces/{ws}/clusters/{cluster}/metrics`).
//!
//! This is a **sampler, not a Prometheus exporter**: it asks each cluster over the Kafka protocol
//! what its offsets are, every `--metrics-interval` (default 5 s), and keeps what it derives for
//! the last hour ([`RETENTION`]) in this process's memory. Nothing is stored in PostgreSQL and
//! nothing survives a restart; each control plane that serves the API samples on its own (several
//! replicas sample the same clusters, and each answers from its own memory). Processes' own
//! Prometheus metrics are another matter.
//!
//! One sample of a cluster costs: one `Metadata`, one `ListOffsets` per partition leader (all
//! its partitions at once, never one request per partition), one `ListGroups` per broker, one
//! batched `FindCoordinator` and one `OffsetFetch` per group (at most [`MAX_GROUPS`] groups).
//! From two consecutive samples it derives, per topic, how many records were written (the
//! advance of the partitions' end offsets) and, per group, how many were consumed (the advance
//! of its committed offsets) and its total lag. Only partitions read in both samples count: a
//! partition that appeared, disappeared or went backwards (a reset, a recreated topic) adds
//! nothing to that interval, so a chart never shows a spike that is not traffic.
//!
//! Memory is bounded: samples older than [`RETENTION`] are dropped (and at most
//! [`MAX_SAMPLES`] are kept per cluster); per sample at most [`MAX_TOPICS`] topics and
//! [`MAX_GROUPS`] groups are kept (by name; the totals count every topic); a cluster no longer
//! serving keeps its history until it ages out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::kafka_admin::{KafkaAdmin, LATEST, TopicPartition};
use crate::model::{ClusterId, ClusterRecord};
use crate::store::Store;

/// How long samples are kept.
pub const RETENTION: Duration = Duration::from_secs(3600);
/// At most this many samples per cluster (one per second for an hour).
pub const MAX_SAMPLES: usize = 3600;
/// At most this many topics per sample.
pub const MAX_TOPICS: usize = 1000;
/// At most this many consumer groups per sample.
pub const MAX_GROUPS: usize = 200;
/// Deadline of each Kafka call of a sample.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// An admin client is rebuilt this often (a rotated CA or credential is picked up).
const ADMIN_TTL: Duration = Duration::from_secs(600);

/// What one sample derived, against the sample before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When it was taken (milliseconds since the Unix epoch).
    pub at_ms: i64,
    /// Milliseconds since the previous sample of the cluster; `None` for the first.
    pub elapsed_ms: Option<i64>,
    /// Records written to all topics in the interval.
    pub records_in: Option<u64>,
    /// Records written per topic in the interval.
    pub topics: BTreeMap<Arc<str>, u64>,
    /// Per group: records consumed in the interval (`None` for a group new in this sample), and
    /// its total lag now.
    pub groups: BTreeMap<Arc<str>, (Option<u64>, i64)>,
}

/// What a cluster answered in one sample, kept until the next to compute advances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// End offset of each partition that answered.
    pub ends: BTreeMap<TopicPartition, i64>,
    /// Committed offsets of each group.
    pub committed: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
}

/// How far `now` advanced past `before`: the sum over keys in both of the increases (a decrease
/// counts 0).
pub fn advance(before: &BTreeMap<TopicPartition, i64>, now: &BTreeMap<TopicPartition, i64>) -> u64 {
    now.iter()
        .filter_map(|(key, after)| {
            let before = before.get(key)?;
            u64::try_from(after - before).ok()
        })
        .fold(0u64, u64::saturating_add)
}

/// The sample that `now` makes after `before` (`None`: the cluster's first), taken at `at_ms`.
pub fn derive(before: Option<(&Snapshot, i64)>, now: &Snapshot, at_ms: i64) -> Sample {
    let mut sample = Sample {
        at_ms,
        elapsed_ms: before.map(|(_, then)| at_ms - then),
        records_in: None,
        topics: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    let mut by_topic: BTreeMap<&str, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for (key, end) in &now.ends {
        by_topic
            .entry(key.0.as_str())
            .or_default()
            .insert(key.clone(), *end);
    }
    if let Some((previous, _)) = before {
        let mut total = 0u64;
        for (topic, ends) in &by_topic {
            let written = advance(&previous.ends, ends);
            total = total.saturating_add(written);
            if sample.topics.len() < MAX_TOPICS {
                sample.topics.insert(Arc::from(*topic), written);
            }
        }
        sample.records_in = Some(total);
    }
    for (group, committed) in now.committed.iter().take(MAX_GROUPS) {
        let lag: i64 = committed
            .iter()
            .filter_map(|(key, offset)| now.ends.get(key).map(|end| (end - offset).max(0)))
            .fold(0i64, i64::saturating_add);
        let consumed = before
            .and_then(|(previous, _)| previous.committed.get(group))
            .map(|previous| advance(previous, committed));
        sample
            .groups
            .insert(Arc::from(group.as_str()), (consumed, lag));
    }
    sample
}

/// The samples of every cluster, shared by the sampler (writer) and the service (reader).
#[derive(Debug, Default)]
pub struct SeriesStore {
    interval: Mutex<Duration>,
    clusters: Mutex<HashMap<ClusterId, VecDeque<Sample>>>,
    /// `(workspace, cluster)` names of the clusters sampled, for `GET /metrics`' labels.
    names: Mutex<HashMap<ClusterId, (String, String)>>,
}

impl SeriesStore {
    /// The interval samples are taken at (zero while no sampler runs).
    pub fn interval(&self) -> Duration {
        *lock(&self.interval)
    }

    fn set_interval(&self, interval: Duration) {
        *lock(&self.interval) = interval;
    }

    /// Adds a sample of `cluster`, dropping what is older than [`RETENTION`] or beyond
    /// [`MAX_SAMPLES`].
    pub fn push(&self, cluster: ClusterId, sample: Sample) {
        let mut clusters = lock(&self.clusters);
        let ring = clusters.entry(cluster).or_default();
        let horizon = sample.at_ms - retention_ms();
        ring.push_back(sample);
        while ring.front().is_some_and(|s| s.at_ms < horizon) || ring.len() > MAX_SAMPLES {
            ring.pop_front();
        }
    }

    /// The samples of `cluster` taken after `since_ms`, oldest first.
    pub fn samples(&self, cluster: ClusterId, since_ms: Option<i64>) -> Vec<Sample> {
        let clusters = lock(&self.clusters);
        clusters
            .get(&cluster)
            .map(|ring| {
                ring.iter()
                    .filter(|s| since_ms.is_none_or(|since| s.at_ms > since))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remembers the names of `cluster` (its workspace's and its own).
    pub fn name(&self, cluster: ClusterId, workspace: &str, name: &str) {
        lock(&self.names).insert(cluster, (workspace.to_owned(), name.to_owned()));
    }

    /// The newest sample of every named cluster sampled within the last `max_age_ms`, with its
    /// workspace's and its own name.
    pub fn latest(&self, now_ms: i64, max_age_ms: i64) -> Vec<(String, String, Sample)> {
        let clusters = lock(&self.clusters);
        let names = lock(&self.names);
        let mut out: Vec<(String, String, Sample)> = clusters
            .iter()
            .filter_map(|(id, ring)| {
                let sample = ring.back().filter(|s| s.at_ms >= now_ms - max_age_ms)?;
                let (workspace, name) = names.get(id)?;
                Some((workspace.clone(), name.clone(), sample.clone()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Forgets clusters whose newest sample is older than [`RETENTION`].
    fn prune(&self, now_ms: i64) {
        let horizon = now_ms - retention_ms();
        let mut clusters = lock(&self.clusters);
        clusters.retain(|_, ring| ring.back().is_some_and(|s| s.at_ms >= horizon));
        lock(&self.names).retain(|id, _| clusters.contains_key(id));
    }
}

/// Locks a std mutex; a poisoned one is still usable (plain data).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn retention_ms() -> i64 {
    i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A cluster being sampled: its admin client and its last snapshot.
struct Sampled {
    admin: Arc<KafkaAdmin>,
    built: tokio::time::Instant,
    last: Option<(Snapshot, i64)>,
}

/// The periodic task that fills a [`SeriesStore`].
pub struct Sampler {
    store: Store,
    series: Arc<SeriesStore>,
    interval: Duration,
    clusters: HashMap<ClusterId, Sampled>,
}

impl Sampler {
    /// A sampler of every serving Kafka cluster in `store`, every `interval`, into `series`.
    pub fn new(store: Store, series: Arc<SeriesStore>, interval: Duration) -> Sampler {
        Sampler {
            store,
            series,
            interval,
            clusters: HashMap::new(),
        }
    }

    /// Samples until `stop` is notified.
    pub async fn run(mut self, stop: Arc<Notify>) {
        tracing::info!(interval = ?self.interval, "metrics sampler running");
        self.series.set_interval(self.interval);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.notified() => break,
            }
            self.pass().await;
        }
    }

    /// One sample of every serving Kafka cluster (clusters are sampled concurrently; a cluster
    /// that does not answer is skipped and sampled afresh next time).
    pub async fn pass(&mut self) {
        let records = match self.store.kafka_clusters_serving().await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "metrics sampler: clusters not listed");
                return;
            }
        };
        let serving: Vec<ClusterId> = records.iter().map(|r| r.id).collect();
        self.clusters.retain(|id, _| serving.contains(id));
        let mut work = Vec::new();
        for record in &records {
            self.series.name(record.id, &record.workspace, &record.name);
            let Some(admin) = self.admin(record).await else {
                continue;
            };
            let last = self.clusters.get(&record.id).and_then(|s| s.last.clone());
            let id = record.id;
            let name = record.name.clone();
            work.push(async move { (id, name, last, snapshot(&admin).await) });
        }
        for (id, name, last, result) in futures::future::join_all(work).await {
            match result {
                Ok(snapshot) => {
                    let at = now_ms();
                    let sample = derive(last.as_ref().map(|(s, at)| (s, *at)), &snapshot, at);
                    self.series.push(id, sample);
                    if let Some(sampled) = self.clusters.get_mut(&id) {
                        sampled.last = Some((snapshot, at));
                    }
                }
                Err(error) => {
                    tracing::debug!(cluster = %name, %error, "metrics sampler: cluster not sampled");
                    // The next sample starts afresh (a new connection, no advance across the
                    // gap).
                    self.clusters.remove(&id);
                }
            }
        }
        self.series.prune(now_ms());
    }

    /// The admin client of `record` (built, or rebuilt after [`ADMIN_TTL`]); `None` when the
    /// cluster has no bootstrap servers or its credentials cannot be read.
    async fn admin(&mut self, record: &ClusterRecord) -> Option<Arc<KafkaAdmin>> {
        if let Some(sampled) = self.clusters.get(&record.id)
            && sampled.built.elapsed() < ADMIN_TTL
        {
            return Some(Arc::clone(&sampled.admin));
        }
        let bootstrap: Vec<String> = record
            .status
            .bootstrap_servers
            .as_deref()?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return None;
        }
        let security = match crate::service::kafka_user::admin_security(&self.store, record).await {
            Ok(security) => security,
            Err(error) => {
                tracing::debug!(cluster = %record.name, %error, "metrics sampler: no Kafka access");
                return None;
            }
        };
        let admin = Arc::new(KafkaAdmin::new(bootstrap, CALL_TIMEOUT).with_security(security));
        let last = self.clusters.remove(&record.id).and_then(|s| s.last);
        self.clusters.insert(
            record.id,
            Sampled {
                admin: Arc::clone(&admin),
                built: tokio::time::Instant::now(),
                last,
            },
        );
        Some(admin)
    }
}

/// What a cluster answers now: end offsets of every partition of every non-internal topic, and
/// the committed offsets of (at most [`MAX_GROUPS`]) groups.
async fn snapshot(admin: &KafkaAdmin) -> Result<Snapshot, crate::kafka_admin::AdminError> {
    let metadata = admin.metadata().await?;
    let partitions: Vec<TopicPartition> = metadata
        .topics
        .iter()
        .filter(|t| !t.internal && t.error.is_none())
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect();
    let ends = admin
        .list_offsets_with(&metadata, &partitions, LATEST)
        .await
        .into_iter()
        .filter_map(|(key, answer)| Some((key, answer.ok()??)))
        .collect();
    let groups: Vec<String> = admin
        .list_groups()
        .await?
        .into_iter()
        .take(MAX_GROUPS)
        .map(|g| g.group_id)
        .collect();
    let committed = if groups.is_empty() {
        BTreeMap::new()
    } else {
        admin
            .groups_offsets(&groups)
            .await?
            .into_iter()
            .map(|(group, offsets)| {
                let offsets = offsets
                    .into_iter()
                    .map(|c| ((c.topic, c.partition), c.offset))
                    .collect();
                (group, offsets)
            })
            .collect()
    };
    Ok(Snapshot { ends, committed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(list: &[(&str, i32, i64)]) -> BTreeMap<TopicPartition, i64> {
        list.iter()
            .map(|(t, p, o)| (((*t).to_owned(), *p), *o))
            .collect()
    }

    #[test]
    fn advances_count_only_partitions_in_both_samples_and_never_go_back() {
        let before = offsets(&[("t", 0, 10), ("t", 1, 50), ("gone", 0, 7)]);
        let now = offsets(&[("t", 0, 25), ("t", 1, 40), ("new", 0, 1000)]);
        assert_eq!(advance(&before, &now), 15);
    }

    #[test]
    fn samples_derive_records_in_consumed_and_lag() {
        let first = Snapshot {
            ends: offsets(&[("a", 0, 100), ("a", 1, 100), ("b", 0, 5)]),
            committed: BTreeMap::from([("g".to_owned(), offsets(&[("a", 0, 90)]))]),
        };
        let sample = derive(None, &first, 1_000);
        assert_eq!(sample.records_in, None, "no rate without a previous sample");
        assert_eq!(sample.groups[&Arc::from("g")], (None, 10));
        let second = Snapshot {
            ends: offsets(&[("a", 0, 130), ("a", 1, 110), ("b", 0, 5)]),
            committed: BTreeMap::from([
                ("g".to_owned(), offsets(&[("a", 0, 125)])),
                ("h".to_owned(), offsets(&[("b", 0, 0)])),
            ]),
        };
        let sample = derive(Some((&first, 1_000)), &second, 6_000);
        assert_eq!(sample.elapsed_ms, Some(5_000));
        assert_eq!(sample.records_in, Some(40));
        assert_eq!(sample.topics[&Arc::from("a")], 40);
        assert_eq!(sample.topics[&Arc::from("b")], 0);
        assert_eq!(sample.groups[&Arc::from("g")], (Some(35), 5));
        assert_eq!(
            sample.groups[&Arc::from("h")],
            (None, 5),
            "a new group has no rate yet"
        );
    }

    #[test]
    fn the_store_keeps_an_hour_and_forgets_silent_clusters() {
        let store = SeriesStore::default();
        let id = ClusterId::from_uuid(uuid::Uuid::nil());
        let sample = |at_ms| Sample {
            at_ms,
            elapsed_ms: None,
            records_in: None,
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        store.push(id, sample(0));
        store.push(id, sample(1_000));
        store.push(id, sample(retention_ms() + 500));
        let kept: Vec<i64> = store.samples(id, None).iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, [1_000, retention_ms() + 500]);
        assert_eq!(
            store.samples(id, Some(1_000)).len(),
            1,
            "since is exclusive"
        );
        store.prune(3 * retention_ms());
        assert!(store.samples(id, None).is_empty());
    }

    /// `GET /metrics` reads the newest sample of each named cluster, only while it is fresh.
    #[test]
    fn the_latest_samples_are_named_and_fresh() {
        let store = SeriesStore::default();
        let pay = ClusterId::from_uuid(uuid::Uuid::from_u128(1));
        let web = ClusterId::from_uuid(uuid::Uuid::from_u128(2));
        let sample = |at_ms| Sample {
            at_ms,
            elapsed_ms: Some(5_000),
            records_in: Some(at_ms as u64),
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        store.push(pay, sample(10_000));
        store.push(pay, sample(15_000));
        store.push(web, sample(2_000));
        // Not named yet: not reported.
        assert!(store.latest(16_000, 15_000).is_empty());
        store.name(pay, "prod", "pay");
        store.name(web, "prod", "web");
        let latest = store.latest(16_000, 10_000);
        assert_eq!(latest.len(), 1, "web's sample is too old: {latest:?}");
        assert_eq!(
            (
                latest[0].0.as_str(),
                latest[0].1.as_str(),
                latest[0].2.at_ms
            ),
            ("prod", "pay", 15_000)
        );
        assert_eq!(store.latest(16_000, 15_000).len(), 2);
        // Pruned clusters lose their names too.
        store.prune(3 * retention_ms());
        assert!(lock(&store.names).is_empty());
    }
}
