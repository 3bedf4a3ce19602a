//! `hdi-kafka-client`: what hdi speaks to Kafka as a client, on `kafka-protocol`, with no I/O
//! policy baked in (tansu's sans-IO split).
//!
//! - [`wire`]: the [`Request`] trait (API key and response type), request frames, and checked
//!   response decoding: a bounded frame size and the correlation id. No sockets.
//! - [`compression`] (feature `codecs`): Kafka's batch codecs (gzip, snappy, lz4, zstd), bounded.
//! - [`partitioner`]: Kafka's default partitioner (murmur2), as the Java client computes it.
//! - [`codes`]: Kafka error codes as named constants and [`codes::error_name`], all from
//!   `kafka_protocol::ResponseError`: one table for the whole workspace (the broker answers with
//!   these constants too, without the connections).
//! - [`Connection`] (feature `tokio`) and [`blocking::Connection`] (feature `blocking`): thin
//!   connections over `wire`, one request at a time. Connecting with timeouts, deadlines,
//!   retries, pooling and routing (bootstrap, leader, controller) stay with each caller.
//!
//! Users: the control plane's admin client (`kafka_admin`, async), the executor's direct fetches
//! (`source/direct.rs`, blocking), the broker's error codes and its tests' request framing.

pub mod codes;
#[cfg(feature = "codecs")]
pub mod compression;
pub mod partitioner;
pub mod wire;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "tokio")]
mod connection;
#[cfg(feature = "tokio")]
pub mod scram;

#[cfg(feature = "tokio")]
pub use connection::{Connection, SaslLogin, Security};
pub use wire::{Error, Request};
