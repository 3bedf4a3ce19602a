//! `hdi-broker`: a Kafka-wire-compatible broker over `hdi-log`.
//!
//! - [`server`]: TCP listener, request framing, header decoding and dispatch; requests on one
//!   connection are answered in order, as Kafka does.
//! - [`handlers`]: one module per API family; Kafka wire types (from `kafka-protocol`) stop here.
//! - [`state`]: topics, partitions and their logs on disk, with topic configs.
//! - [`groups`]: the classic consumer-group coordinator and durable committed offsets.
//! - [`producers`]: producer ids and per-partition idempotence state.
//!
//! It knows nothing of the control plane beyond its own configuration. This version is a
//! single-node cluster: every partition's leader is this broker (leader epoch 0) and the high
//! watermark is the log end. Replication and the metadata quorum come with the broker-cluster work.

pub mod codes;
pub mod config;
pub mod groups;
pub mod handlers;
pub mod producers;
pub mod server;
pub mod state;
pub mod topic_config;
