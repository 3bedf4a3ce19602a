//! `hdi-log`: the broker's storage engine — per-partition segment files holding Kafka v2 record
//! batches as produced (offsets assigned, CRC-32C checked), sparse offset and time indexes,
//! retention, and crash recovery that truncates a torn tail.
//!
//! It has its own types, not Kafka wire types, and does no networking.
//!
//! Status: not built yet (the broker-core issue builds it). This crate exports nothing until then.
