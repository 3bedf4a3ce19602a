//! `hdi-executor`: the streaming SQL executor — planner, micro-batch runtime, windowed state,
//! watermarks, checkpoints and connectors, with DataFusion running each micro-batch.
//!
//! It knows nothing of the control plane beyond its own configuration.
//!
//! Status: the process model is built, not the SQL engine. One binary, `hdi-executor`, runs as a
//! **driver** ([`driver`]) or a **worker** ([`worker`]); workers register with the driver and
//! heartbeat it, and the driver keeps the cluster's membership ([`cluster`]), dropping workers it
//! stops hearing from, and serves it over HTTP (`GET /v1/cluster`). The planner, the micro-batch
//! runtime and the connectors (the executor issue) will run on this cluster.

pub mod checkpoint;
pub mod cluster;
pub mod driver;
pub mod jobs;
pub mod plan;
pub mod process;
pub mod query;
pub mod sink;
pub mod source;
pub mod sql;
pub mod state;
pub mod task;
pub mod worker;
