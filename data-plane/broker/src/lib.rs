//! `hdi-broker`: a Kafka-wire-compatible broker over `hdi-log`.
//!
//! Modules, top down; each uses only the ones below it:
//! - [`server`]: TCP listener, request framing, header decoding and dispatch; requests on one
//!   connection are answered in order, as Kafka does. Also the quorum listener's dispatch.
//! - `tasks`: the broker's own tasks ([`broker::Broker::start_tasks`]).
//! - `log_cleaner`: the log cleaner task (compaction of `cleanup.policy=compact` topics).
//! - [`handlers`]: one module per API family; Kafka wire types (from `kafka-protocol`) stop here.
//! - [`txn_verification`]: a partition leader's check with the transaction coordinator before
//!   a produce opens a transaction on a partition (KIP-890 part 1).
//! - [`txn_coordinator`]: the transaction coordinator at work (requests, markers, timeouts),
//!   over the replicated state of [`txn`].
//! - [`replication`]: follower fetchers, answers to followers, ISR maintenance.
//! - [`mirror`]: cluster links and mirror topics (a source cluster's topics copied byte for
//!   byte at the same offsets).
//! - [`txn_markers`]: transaction markers written to a transaction's partitions, here or on
//!   their leaders (the path the transaction coordinator calls).
//! - [`broker`]: the [`broker::Broker`] context the layers above take: configuration and all
//!   shared state.
//! - [`replica`] and [`replicas`]: partition replicas (leader and follower sides) and the replica
//!   manager.
//! - [`cluster`]: the metadata quorum (openraft), broker membership and the controller.
//! - [`txn`]: the transaction coordinator's replicated state (KIP-98) and its pure transitions
//!   (a transaction's offsets are committed into [`groups`]' offsets when it commits).
//! - [`groups`]: the classic consumer-group coordinator and durable committed offsets.
//! - [`follower_fetch_session`]: a follower's side of its fetch session with a leader (which
//!   partitions a replica fetch lists).
//! - [`fetch_sessions`]: the bounded cache of incremental fetch sessions (KIP-227) the Fetch
//!   handler and the leader's side of replication read through.
//! - [`producers`]: producer ids and per-partition idempotence state.
//! - [`security`]: listeners' security protocols, SASL (PLAIN, SCRAM) and ACL decisions.
//! - [`metrics`]: the broker's Prometheus metrics (counters the layers above add to; gauges the
//!   [`broker::Broker`] context fills at scrape time).
//! - [`state`]: shared error and lock helpers; Kafka error codes are `hdi_kafka_client::codes`.
//!
//! It knows nothing of the control plane beyond its own configuration. Brokers form a cluster
//! through a Raft metadata quorum; without `--quorum` a broker is a one-member cluster running the
//! same code.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod fetch_sessions;
pub mod follower_fetch_session;
pub mod groups;
pub mod handlers;
mod log_cleaner;
pub mod metrics;
pub mod mirror;
pub mod producers;
pub mod replica;
pub mod replicas;
pub mod replication;
pub mod security;
pub mod server;
pub mod state;
mod tasks;
pub mod topic_config;
pub mod txn;
pub mod txn_coordinator;
pub mod txn_markers;
pub mod txn_verification;

#[cfg(test)]
mod tests {
    /// The crate's modules, top down (as the crate docs list them).
    const LAYERS: &[&str] = &[
        "server",
        "tasks",
        "log_cleaner",
        "handlers",
        "txn_verification",
        "txn_coordinator",
        "replication",
        "mirror",
        "txn_markers",
        "broker",
        "replicas",
        "replica",
        "cluster",
        "txn",
        "groups",
        "follower_fetch_session",
        "fetch_sessions",
        "producers",
        "topic_config",
        "config",
        "security",
        "metrics",
        "state",
    ];

    /// Each module uses only modules below it: no cycles between the server, the handlers, the
    /// replication tasks and the `Broker` context they share.
    #[test]
    fn modules_use_only_the_layers_below_them() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let checked = hdi_test_support::layers::assert_layered(&src, LAYERS);
        assert!(checked > 20, "{checked} files");
    }
}
