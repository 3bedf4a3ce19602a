//! The control plane's Prometheus metrics, served at `GET /metrics` on the API listener
//! (`http/metrics.rs`: a platform admin's token or a user's API token):
//!
//! - `http_server_requests_total{method,route,status}` and
//!   `http_server_request_duration_seconds{method,route}`: the API's requests by matched route
//!   template (`/v1/workspaces/{workspace}/clusters`), never by path, so the series stay bounded
//!   ([`hdi_http_serve::metrics::HttpMetrics`]);
//! - `hdi_reconciler_passes_total{reconciler,outcome}` and
//!   `hdi_reconciler_pass_duration_seconds{reconciler}`: passes of the `clusters`, `jobs` and
//!   `links` reconcilers, `ok` or `error`;
//! - `hdi_clusters{state}` and `hdi_operations{state}`: counted in the database when scraped;
//! - from the metrics sampler's newest sample of each Kafka cluster (`sampler.rs`, taken within
//!   the last three intervals), labelled `workspace` and `cluster`:
//!   `hdi_kafka_consumergroup_lag{consumergroup}` (records behind the end offsets, summed over
//!   the group's committed partitions: kafka-exporter's `kafka_consumergroup_lag_sum` summed over
//!   topics), `hdi_kafka_consumergroup_consumed_per_second{consumergroup}`,
//!   `hdi_kafka_topic_records_in_per_second{topic}` and `hdi_kafka_records_in_per_second`.
//!
//! This module owns the registry; the numbers come from the reconcilers, the store and the
//! sampler.

use std::sync::Arc;
use std::time::Duration;

use hdi_http_serve::metrics::{HttpMetrics, exposition};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    reconciler: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcilerLabels {
    reconciler: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    workspace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    workspace: String,
    cluster: String,
    consumergroup: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    workspace: String,
    cluster: String,
    topic: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// What the sampler's newest sample of one Kafka cluster says, for [`Metrics::exposition`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KafkaClusterFigures {
    /// Its workspace's name.
    pub workspace: String,
    /// Its name.
    pub cluster: String,
    /// Records written per second in the sample's interval (`None` for a first sample).
    pub records_in_per_second: Option<f64>,
    /// Per topic: records written per second.
    pub topics: Vec<(String, f64)>,
    /// Per group: records consumed per second (`None` when unknown) and total lag.
    pub groups: Vec<(String, Option<f64>, i64)>,
}

/// Pass durations: 1 ms to 60 s.
const PASS_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0,
];

/// Every metric of the control plane.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The API's requests (the router's `route_layer`).
    pub http: HttpMetrics,
    passes: Family<PassLabels, Counter>,
    pass_duration: Family<ReconcilerLabels, Histogram>,
    clusters: Family<StateLabels, Gauge>,
    operations: Family<StateLabels, Gauge>,
    group_lag: Family<GroupLabels, Gauge>,
    group_consumed: Family<GroupLabels, FloatGauge>,
    topic_in: Family<TopicLabels, FloatGauge>,
    cluster_in: Family<ClusterLabels, FloatGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// New metrics, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let passes = Family::<PassLabels, Counter>::default();
        let pass_duration = Family::<ReconcilerLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(PASS_BUCKETS)) as fn() -> Histogram,
        );
        let clusters = Family::<StateLabels, Gauge>::default();
        let operations = Family::<StateLabels, Gauge>::default();
        registry.register(
            "hdi_reconciler_passes",
            "Reconciler passes, by reconciler (clusters, jobs, links) and outcome (ok, error)",
            passes.clone(),
        );
        registry.register(
            "hdi_reconciler_pass_duration_seconds",
            "Time a reconciler pass took, by reconciler",
            pass_duration.clone(),
        );
        registry.register(
            "hdi_clusters",
            "Clusters by observed state",
            clusters.clone(),
        );
        registry.register("hdi_operations", "Operations by state", operations.clone());
        let group_lag = Family::<GroupLabels, Gauge>::default();
        let group_consumed = Family::<GroupLabels, FloatGauge>::default();
        let topic_in = Family::<TopicLabels, FloatGauge>::default();
        let cluster_in = Family::<ClusterLabels, FloatGauge>::default();
        registry.register(
            "hdi_kafka_consumergroup_lag",
            "Records a consumer group is behind the end offsets, summed over its committed partitions",
            group_lag.clone(),
        );
        registry.register(
            "hdi_kafka_consumergroup_consumed_per_second",
            "Records a consumer group committed past per second, in the last sampled interval",
            group_consumed.clone(),
        );
        registry.register(
            "hdi_kafka_topic_records_in_per_second",
            "Records written to a topic per second, in the last sampled interval",
            topic_in.clone(),
        );
        registry.register(
            "hdi_kafka_records_in_per_second",
            "Records written to a Kafka cluster per second, in the last sampled interval",
            cluster_in.clone(),
        );
        Metrics {
            registry,
            http,
            passes,
            pass_duration,
            clusters,
            operations,
            group_lag,
            group_consumed,
            topic_in,
            cluster_in,
        }
    }

    /// Counts a pass of `reconciler` that took `took`.
    pub fn pass(&self, reconciler: &'static str, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.passes
            .get_or_create(&PassLabels {
                reconciler,
                outcome,
            })
            .inc();
        self.pass_duration
            .get_or_create(&ReconcilerLabels { reconciler })
            .observe(took.as_secs_f64());
    }

    /// Runs `pass` and counts it.
    pub async fn timed<T, E>(
        self: &Arc<Self>,
        reconciler: &'static str,
        pass: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = std::time::Instant::now();
        let result = pass.await;
        self.pass(reconciler, start.elapsed(), result.is_ok());
        result
    }

    /// Sets the cluster and operation gauges to `clusters` and `operations` (state, count) and
    /// the Kafka clusters' gauges to `kafka` (only what it holds: a cluster or group gone is gone
    /// from the exposition), and encodes everything.
    pub fn exposition(
        &self,
        clusters: &[(String, i64)],
        operations: &[(String, i64)],
        kafka: &[KafkaClusterFigures],
    ) -> String {
        self.group_lag.clear();
        self.group_consumed.clear();
        self.topic_in.clear();
        self.cluster_in.clear();
        for figures in kafka {
            let ws = || figures.workspace.clone();
            let cluster = || figures.cluster.clone();
            if let Some(rate) = figures.records_in_per_second {
                self.cluster_in
                    .get_or_create(&ClusterLabels {
                        workspace: ws(),
                        cluster: cluster(),
                    })
                    .set(rate);
            }
            for (topic, rate) in &figures.topics {
                self.topic_in
                    .get_or_create(&TopicLabels {
                        workspace: ws(),
                        cluster: cluster(),
                        topic: topic.clone(),
                    })
                    .set(*rate);
            }
            for (group, consumed, lag) in &figures.groups {
                let labels = GroupLabels {
                    workspace: ws(),
                    cluster: cluster(),
                    consumergroup: group.clone(),
                };
                self.group_lag.get_or_create(&labels).set(*lag);
                if let Some(rate) = consumed {
                    self.group_consumed.get_or_create(&labels).set(*rate);
                }
            }
        }
        for (family, counts) in [(&self.clusters, clusters), (&self.operations, operations)] {
            family.clear();
            for (state, count) in counts {
                family
                    .get_or_create(&StateLabels {
                        state: state.clone(),
                    })
                    .set(*count);
            }
        }
        exposition(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_stable() {
        let metrics = Metrics::new();
        metrics.pass("clusters", Duration::from_millis(12), true);
        metrics.pass("jobs", Duration::from_millis(3), false);
        metrics
            .http
            .observe("GET", "/v1/clusters/{cluster}", 200, 0.002);
        let kafka = KafkaClusterFigures {
            workspace: "prod".into(),
            cluster: "pay".into(),
            records_in_per_second: Some(40.0),
            topics: vec![("orders".into(), 40.0)],
            groups: vec![("billing".into(), Some(38.5), 120), ("new".into(), None, 7)],
        };
        let text = metrics.exposition(
            &[("Running".into(), 2), ("Creating".into(), 1)],
            &[("Succeeded".into(), 5)],
            &[kafka],
        );
        for line in [
            r#"hdi_reconciler_passes_total{reconciler="clusters",outcome="ok"} 1"#,
            r#"hdi_reconciler_passes_total{reconciler="jobs",outcome="error"} 1"#,
            r#"hdi_reconciler_pass_duration_seconds_count{reconciler="clusters"} 1"#,
            r#"hdi_clusters{state="Running"} 2"#,
            r#"hdi_operations{state="Succeeded"} 5"#,
            r#"http_server_requests_total{method="GET",route="/v1/clusters/{cluster}",status="200"} 1"#,
            r#"hdi_kafka_consumergroup_lag{workspace="prod",cluster="pay",consumergroup="billing"} 120"#,
            r#"hdi_kafka_consumergroup_lag{workspace="prod",cluster="pay",consumergroup="new"} 7"#,
            r#"hdi_kafka_consumergroup_consumed_per_second{workspace="prod",cluster="pay",consumergroup="billing"} 38.5"#,
            r#"hdi_kafka_topic_records_in_per_second{workspace="prod",cluster="pay",topic="orders"} 40.0"#,
            r#"hdi_kafka_records_in_per_second{workspace="prod",cluster="pay"} 40.0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        let families = hdi_http_serve::metrics::declared_families(&text);
        assert!(families.iter().all(|f| {
            hdi_http_serve::metrics::valid_metric_name(f.split(' ').next().unwrap_or_default())
        }));
        assert_eq!(
            families,
            [
                "http_server_requests counter",
                "http_server_request_duration_seconds histogram",
                "hdi_reconciler_passes counter",
                "hdi_reconciler_pass_duration_seconds histogram",
                "hdi_clusters gauge",
                "hdi_operations gauge",
                "hdi_kafka_consumergroup_lag gauge",
                "hdi_kafka_consumergroup_consumed_per_second gauge",
                "hdi_kafka_topic_records_in_per_second gauge",
                "hdi_kafka_records_in_per_second gauge",
            ]
        );
        // A group new in the sample has a lag but no rate yet.
        assert!(
            !text.contains(
                r#"hdi_kafka_consumergroup_consumed_per_second{workspace="prod",cluster="pay",consumergroup="new"}"#
            ),
            "{text}"
        );
        // A state that no longer has clusters disappears rather than staying at its last count,
        // and so does a Kafka cluster no longer sampled.
        let text = metrics.exposition(&[("Running".into(), 3)], &[], &[]);
        assert!(!text.contains(r#"state="Creating""#), "{text}");
        assert!(!text.contains("billing"), "{text}");
    }
}
