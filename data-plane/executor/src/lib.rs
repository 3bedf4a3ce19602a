//! `hdi-executor`: the streaming SQL executor — planner, micro-batch runtime, windowed state,
//! watermarks, checkpoints and connectors, with DataFusion running each micro-batch.
//!
//! It knows nothing of the control plane beyond its own configuration.
//!
//! One binary, `hdi-executor`, runs as a **driver** ([`driver`], with the jobs of [`jobs`]) or a
//! **worker** ([`worker`]), or runs one job in-process (`hdi-executor run`). A job script
//! ([`sql`]) is planned ([`plan`]) into per-task and final queries. The driver's micro-batch loop
//! ([`query`]) reads offsets ([`source`]), logs each batch ([`checkpoint`]) and has workers run
//! its tasks ([`task`]). It sends each state partition its share of the partial results
//! ([`stateful`]), whose owner merges them into the streaming state ([`state`]) and emits. The
//! loop writes the sink exactly once per batch ([`sink`]), then commits.
//!
//! Modules import only the ones beneath them: `sql`, then `plan` (the plan types), then `state`,
//! then `task` and `stateful` (which take plans, not each other; `stateful`'s tests run a real
//! task), then the runtime `query`, then `jobs`, `driver` and `worker` on top. The connectors
//! `source`, `sink` and `checkpoint` (each using the one before) need only `sql`.

pub mod checkpoint;
pub mod cluster;
pub mod credential;
pub mod driver;
pub mod jobs;
pub mod kafka_access;
pub mod metrics;
pub mod plan;
pub mod process;
pub mod query;
pub mod sandbox;
pub mod sink;
pub mod source;
pub mod sql;
pub mod state;
pub mod stateful;
pub mod task;
pub mod worker;

#[cfg(test)]
mod tests {
    /// The crate's modules, top down (as the crate docs describe them).
    const LAYERS: &[&str] = &[
        "worker",
        "driver",
        "jobs",
        "query",
        "stateful",
        "task",
        "state",
        "plan",
        "checkpoint",
        "sink",
        "source",
        "sql",
        "kafka_access",
        "sandbox",
        "cluster",
        "credential",
        "metrics",
        "process",
    ];

    /// Each module uses only modules below it: no cycle between the runtime, the plan types and
    /// the state.
    #[test]
    fn modules_use_only_the_layers_below_them() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let checked = hdi_test_support::layers::assert_layered(&src, LAYERS);
        assert!(checked > 20, "{checked} files");
    }
}
