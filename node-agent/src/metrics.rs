//! The node agent's Prometheus metrics, on `--metrics-listen ADDR` (`GET /metrics`, a loopback
//! address unless `--metrics-token-file` is given; served by `hdi_http_serve::metrics`):
//!
//! - `hdi_agent_workloads{state}`: supervised workloads by state (`Starting`, `Running`,
//!   `Backoff`, `Stopping`), as of the last heartbeat tick;
//! - `hdi_agent_workload_restarts`: restarts of the workloads supervised now (a gauge: a removed
//!   workload takes its restarts with it);
//! - `hdi_agent_heartbeats_total{outcome}`: heartbeat (or registration) ticks, `ok` or `error`;
//! - `hdi_agent_applied_generation`: the assignment generation applied.

use hdi_api::{WorkloadState, WorkloadStatus};
use hdi_http_serve::metrics::exposition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric of the agent.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    workloads: Family<StateLabels, Gauge>,
    restarts: Gauge,
    heartbeats: Family<OutcomeLabels, Counter>,
    generation: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}

const STATES: [(WorkloadState, &str); 4] = [
    (WorkloadState::Starting, "Starting"),
    (WorkloadState::Running, "Running"),
    (WorkloadState::Backoff, "Backoff"),
    (WorkloadState::Stopping, "Stopping"),
];

impl AgentMetrics {
    /// New metrics, at zero.
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::default();
        let workloads = Family::<StateLabels, Gauge>::default();
        let restarts = Gauge::default();
        let heartbeats = Family::<OutcomeLabels, Counter>::default();
        let generation = Gauge::default();
        registry.register(
            "hdi_agent_workloads",
            "Supervised workloads by state",
            workloads.clone(),
        );
        registry.register(
            "hdi_agent_workload_restarts",
            "Restarts of the workloads supervised now",
            restarts.clone(),
        );
        registry.register(
            "hdi_agent_heartbeats",
            "Heartbeat ticks to the control plane, by outcome (ok, error)",
            heartbeats.clone(),
        );
        registry.register(
            "hdi_agent_applied_generation",
            "The workload assignment generation applied",
            generation.clone(),
        );
        for (_, state) in STATES {
            workloads.get_or_create(&StateLabels { state }).set(0);
        }
        for outcome in ["ok", "error"] {
            // Both outcomes show from the start, at zero.
            drop(heartbeats.get_or_create(&OutcomeLabels { outcome }));
        }
        AgentMetrics {
            registry,
            workloads,
            restarts,
            heartbeats,
            generation,
        }
    }

    /// Sets the workload gauges from the supervisor's `statuses` and applied `generation`.
    pub fn workloads(&self, statuses: &[WorkloadStatus], generation: u64) {
        for (state, name) in STATES {
            let count = statuses.iter().filter(|s| s.state == state).count();
            self.workloads
                .get_or_create(&StateLabels { state: name })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let restarts: u64 = statuses.iter().map(|s| u64::from(s.restarts)).sum();
        self.restarts
            .set(i64::try_from(restarts).unwrap_or(i64::MAX));
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Counts a heartbeat tick.
    pub fn heartbeat(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.heartbeats
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The exposition.
    pub fn exposition(&self) -> String {
        exposition(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_and_heartbeats_under_stable_names() {
        let metrics = AgentMetrics::new();
        let status = |name: &str, state, restarts| WorkloadStatus {
            name: name.into(),
            state,
            pid: None,
            restarts,
            last_exit: None,
        };
        metrics.workloads(
            &[
                status("b1", WorkloadState::Running, 2),
                status("b2", WorkloadState::Running, 0),
                status("e1", WorkloadState::Backoff, 5),
            ],
            7,
        );
        metrics.heartbeat(true);
        metrics.heartbeat(true);
        metrics.heartbeat(false);
        let text = metrics.exposition();
        for line in [
            r#"hdi_agent_workloads{state="Running"} 2"#,
            r#"hdi_agent_workloads{state="Backoff"} 1"#,
            r#"hdi_agent_workloads{state="Starting"} 0"#,
            "hdi_agent_workload_restarts 7",
            r#"hdi_agent_heartbeats_total{outcome="ok"} 2"#,
            r#"hdi_agent_heartbeats_total{outcome="error"} 1"#,
            "hdi_agent_applied_generation 7",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(
            hdi_http_serve::metrics::declared_families(&text),
            [
                "hdi_agent_workloads gauge",
                "hdi_agent_workload_restarts gauge",
                "hdi_agent_heartbeats counter",
                "hdi_agent_applied_generation gauge",
            ]
        );
    }
}
