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
//! - `hdi_clusters{state}` and `hdi_operations{state}`: counted in the database when scraped.
//!
//! This module owns the registry; the numbers come from the reconcilers and the store.

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
        Metrics {
            registry,
            http,
            passes,
            pass_duration,
            clusters,
            operations,
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
    /// encodes everything.
    pub fn exposition(&self, clusters: &[(String, i64)], operations: &[(String, i64)]) -> String {
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
        let text = metrics.exposition(
            &[("Running".into(), 2), ("Creating".into(), 1)],
            &[("Succeeded".into(), 5)],
        );
        for line in [
            r#"hdi_reconciler_passes_total{reconciler="clusters",outcome="ok"} 1"#,
            r#"hdi_reconciler_passes_total{reconciler="jobs",outcome="error"} 1"#,
            r#"hdi_reconciler_pass_duration_seconds_count{reconciler="clusters"} 1"#,
            r#"hdi_clusters{state="Running"} 2"#,
            r#"hdi_operations{state="Succeeded"} 5"#,
            r#"http_server_requests_total{method="GET",route="/v1/clusters/{cluster}",status="200"} 1"#,
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
            ]
        );
        // A state that no longer has clusters disappears rather than staying at its last count.
        let text = metrics.exposition(&[("Running".into(), 3)], &[]);
        assert!(!text.contains(r#"state="Creating""#), "{text}");
    }
}
