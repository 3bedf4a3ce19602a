//! Shared pieces of the broker's state: [`KafkaError`] (an error as the wire reports it), topic
//! name validation, and poison-tolerant lock helpers.
//!
//! Layout of the data directory: `quorum/` (the metadata Raft log and snapshot, see
//! [`crate::cluster::raft`]), `replicas/<topic-id>-<partition>/` (a partition replica's
//! [`hdi_log::Log`]), `groups/` (committed offsets), `producer-ids`.

use std::sync::{Mutex, RwLock};

use hdi_kafka_client::codes;

/// A broker error as the wire reports it: a Kafka error code and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaError {
    /// The error code.
    pub code: i16,
    /// For people (sent where the API has an error message field).
    pub message: String,
}

impl KafkaError {
    /// An error with a code and message.
    pub fn new(code: i16, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code,
            message: message.into(),
        }
    }
}

pub use hdi_stdx::error_chain as chain;

pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks a topic name as Kafka does: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), KafkaError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KafkaError::new(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("invalid topic name {name:?}"),
        ))
    }
}

/// What a change to mirror topic `topic` of cluster link `link` answers: POLICY_VIOLATION
/// naming the link (`mirror.rs`).
pub fn mirror_read_only(topic: &str, link: &str) -> KafkaError {
    KafkaError::new(
        hdi_kafka_client::codes::POLICY_VIOLATION,
        format!(
            "topic {topic:?} is a read-only mirror of cluster link {link:?}: change its source, or stop the link"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated_as_kafka_does() {
        for ok in ["t", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "spa ce", &"x".repeat(250), "ü"] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                codes::INVALID_TOPIC_EXCEPTION,
                "{bad:?}"
            );
        }
    }
}
