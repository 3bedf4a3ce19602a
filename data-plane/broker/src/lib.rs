//! `hdi-broker`: a Kafka-wire-compatible broker over `hdi-log`.
//!
//! - [`server`]: TCP listener, request framing, header decoding and dispatch; requests on one
//!   connection are answered in order, as Kafka does.
//! - [`handlers`]: one module per API family; Kafka wire types (from `kafka-protocol`) stop here.
//! - [`cluster`]: the metadata quorum (openraft), broker membership and the controller.
//! - [`replica`] and [`replicas`]: partition replicas (leader and follower sides), the replica
//!   manager, fetchers and ISR maintenance.
//! - [`state`]: shared error and lock helpers.
//! - [`groups`]: the classic consumer-group coordinator and durable committed offsets.
//! - [`producers`]: producer ids and per-partition idempotence state.
//!
//! It knows nothing of the control plane beyond its own configuration. Brokers form a cluster
//! through a Raft metadata quorum; without `--quorum` a broker is a one-member cluster running the
//! same code.

pub mod cluster;
pub mod config;
pub mod groups;
pub mod handlers;
pub mod producers;
pub mod replica;
pub mod replicas;
pub mod server;
pub mod state;
pub mod topic_config;
