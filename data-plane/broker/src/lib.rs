//! `hdi-broker`: the Kafka-wire-compatible broker — protocol server on `kafka-protocol`, partition
//! replication, the metadata quorum, the group coordinator and mirror links, over `hdi-log`.
//!
//! It knows nothing of the control plane beyond its own configuration.
//!
//! Status: not built yet (the broker-core and broker-cluster issues build it). This crate exports
//! nothing and ships no binary until then, so nothing can mistake it for a working broker.
