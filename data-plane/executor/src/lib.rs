//! `hdi-executor`: the streaming SQL executor — planner, micro-batch runtime, windowed state,
//! watermarks, checkpoints and connectors, with DataFusion running each micro-batch.
//!
//! It knows nothing of the control plane beyond its own configuration.
//!
//! One binary, `hdi-executor`, runs as a **driver** ([`driver`], with the jobs of [`jobs`]) or a
//! **worker** ([`worker`]), or runs one job in-process (`hdi-executor run`). A job script
//! ([`sql`]) is planned ([`plan`]) into per-task and final queries; the driver's micro-batch loop
//! ([`query`]) reads offsets ([`source`]), logs each batch ([`checkpoint`]), has workers run its
//! tasks ([`task`]), merges their partial results into the streaming state ([`state`]), emits
//! and writes the sink exactly once per batch ([`sink`]), then commits.

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
pub mod stateful;
pub mod task;
pub mod worker;
