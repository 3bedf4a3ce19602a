//! `hdi-executor`: the streaming SQL executor — planner, micro-batch runtime, windowed state,
//! watermarks, checkpoints and connectors, with DataFusion running each micro-batch.
//!
//! It knows nothing of the control plane beyond its own configuration.
//!
//! Status: not built yet (the executor issue builds it). This crate exports nothing and ships no
//! binary until then.
