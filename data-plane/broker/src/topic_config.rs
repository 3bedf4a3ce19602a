//! Topic configs: the keys the broker understands, their validation, defaults, and the
//! [`hdi_log::LogConfig`] they make.

use std::collections::BTreeMap;
use std::time::Duration;

use hdi_log::LogConfig;
use hdi_log::cleaner::CompactionConfig;

/// A config key the broker knows, with its default and validation.
struct Key {
    name: &'static str,
    default: &'static str,
    check: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        _ => Err(format!("must be an integer >= {min}")),
    }
}

const KEYS: &[Key] = &[
    Key {
        name: "cleanup.policy",
        default: "delete",
        check: |v| {
            let items: Vec<&str> = v.split(',').map(str::trim).collect();
            if items.iter().all(|i| *i == "compact" || *i == "delete") {
                Ok(())
            } else {
                Err("String must be one of: compact, delete".into())
            }
        },
    },
    Key {
        name: "delete.retention.ms",
        default: "86400000",
        check: |v| long_at_least(0)(v),
    },
    Key {
        name: "min.compaction.lag.ms",
        default: "0",
        check: |v| long_at_least(0)(v),
    },
    Key {
        name: "max.compaction.lag.ms",
        default: "9223372036854775807",
        check: |v| long_at_least(1)(v),
    },
    Key {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        check: |v| match v.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            _ => Err("Value must be between 0 and 1".into()),
        },
    },
    Key {
        name: "retention.ms",
        default: "604800000",
        check: |v| long_at_least(-1)(v),
    },
    Key {
        name: "retention.bytes",
        default: "-1",
        check: |v| long_at_least(-1)(v),
    },
    Key {
        name: "segment.bytes",
        default: "1073741824",
        check: |v| long_at_least(1024)(v),
    },
    Key {
        name: "segment.ms",
        default: "604800000",
        check: |v| long_at_least(1)(v),
    },
    Key {
        name: "max.message.bytes",
        default: "1048588",
        check: |v| long_at_least(0)(v),
    },
    Key {
        name: "flush.messages",
        default: "9223372036854775807",
        check: |v| long_at_least(1)(v),
    },
    Key {
        name: "flush.ms",
        default: "9223372036854775807",
        check: |v| long_at_least(0)(v),
    },
    Key {
        name: "index.interval.bytes",
        default: "4096",
        check: |v| long_at_least(0)(v),
    },
    Key {
        name: "min.insync.replicas",
        default: "1",
        check: |v| long_at_least(1)(v),
    },
    Key {
        name: "message.timestamp.type",
        default: "CreateTime",
        check: |v| {
            if v == "CreateTime" {
                Ok(())
            } else {
                Err("only CreateTime is supported".into())
            }
        },
    },
    Key {
        name: "compression.type",
        default: "producer",
        check: |v| {
            if ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].contains(&v) {
                Ok(())
            } else {
                Err("unknown compression type".into())
            }
        },
    },
    // hdi's own: a topic whose producers are fenced (Produce answers
    // INVALID_TOPIC_EXCEPTION), as the control plane sets on a cluster link's source during a
    // planned switchover; a reverse link that turns the topic into a mirror clears it.
    Key {
        name: READ_ONLY,
        default: "false",
        check: |v| {
            if v == "true" || v == "false" {
                Ok(())
            } else {
                Err("true or false".into())
            }
        },
    },
];

/// Kafka topic configs of features hdi does not have: each is accepted at Kafka's default (so a
/// client or tool that sends every key, defaults included, can create topics) and refused with
/// any other value, saying why. A key moves to [`KEYS`] when hdi implements it.
const KAFKA_DEFAULT_ONLY: &[(&str, &str, &str)] = &[
    (
        "compression.gzip.level",
        "-1",
        "hdi never recompresses batches",
    ),
    (
        "compression.lz4.level",
        "9",
        "hdi never recompresses batches",
    ),
    (
        "compression.zstd.level",
        "3",
        "hdi never recompresses batches",
    ),
    (
        "errors.deadletterqueue.group.enable",
        "false",
        "hdi has no share groups",
    ),
    (
        "file.delete.delay.ms",
        "60000",
        "hdi deletes segments when they expire",
    ),
    (
        "preallocate",
        "false",
        "hdi does not preallocate segment files",
    ),
    (
        "segment.index.bytes",
        "10485760",
        "hdi sizes its indexes itself",
    ),
    (
        "segment.jitter.ms",
        "0",
        "hdi rolls segments without jitter",
    ),
    (
        "message.downconversion.enable",
        "true",
        "a no-op since Kafka 4.0",
    ),
    (
        "max.decompressed.message.bytes",
        "2147483647",
        "hdi does not bound decompressed records",
    ),
    (
        "message.timestamp.after.max.ms",
        "3600000",
        "hdi does not bound record timestamps",
    ),
    (
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        "hdi does not bound record timestamps",
    ),
    (
        "unclean.leader.election.enable",
        "false",
        "hdi elects only in-sync replicas",
    ),
    (
        "remote.storage.enable",
        "false",
        "hdi has no tiered storage",
    ),
    (
        "remote.log.copy.disable",
        "false",
        "hdi has no tiered storage",
    ),
    (
        "remote.log.delete.on.disable",
        "false",
        "hdi has no tiered storage",
    ),
    ("remote.copy.lag.bytes", "-1", "hdi has no tiered storage"),
    ("remote.copy.lag.ms", "-1", "hdi has no tiered storage"),
    ("local.retention.bytes", "-2", "hdi has no tiered storage"),
    ("local.retention.ms", "-2", "hdi has no tiered storage"),
    (
        "leader.replication.throttled.replicas",
        "",
        "hdi throttles by rate (--replication-throttle)",
    ),
    (
        "follower.replication.throttled.replicas",
        "",
        "hdi throttles by rate (--replication-throttle)",
    ),
];

/// The topic config that fences a topic's producers.
pub const READ_ONLY: &str = "hdi.read.only";

/// Whether `configs` fence the topic's producers ([`READ_ONLY`]).
pub fn read_only(configs: &TopicConfigs) -> bool {
    configs.get(READ_ONLY).is_some_and(|v| v == "true")
}

/// A topic's explicit configs (keys set by the user; the rest take defaults).
pub type TopicConfigs = BTreeMap<String, String>;

/// Checks one key and value.
///
/// # Errors
/// A message naming the problem, for `INVALID_CONFIG`.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    if let Some((_, default, why)) = KAFKA_DEFAULT_ONLY.iter().find(|(k, _, _)| *k == name) {
        return if value == *default {
            Ok(())
        } else {
            Err(format!(
                "{name}={value:?}: only Kafka's default {default:?} is supported ({why})"
            ))
        };
    }
    let key = KEYS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| format!("unknown topic config {name:?}"))?;
    (key.check)(value).map_err(|message| format!("{name}={value:?}: {message}"))
}

/// Checks what no single key shows: `min.compaction.lag.ms` may not exceed
/// `max.compaction.lag.ms` (effective values, defaults included), with Kafka's message
/// (`LogConfig.validateValues`).
///
/// # Errors
/// The message, for `INVALID_CONFIG`.
pub fn validate_together(configs: &TopicConfigs) -> Result<(), String> {
    let min = effective(configs, "min.compaction.lag.ms");
    let max = effective(configs, "max.compaction.lag.ms");
    if min > max {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
        ));
    }
    Ok(())
}

/// Every known key with its effective value and whether it is the default.
pub fn describe(configs: &TopicConfigs) -> Vec<(&'static str, String, bool)> {
    KEYS.iter()
        .map(|k| match configs.get(k.name) {
            Some(v) => (k.name, v.clone(), false),
            None => (k.name, k.default.to_owned(), true),
        })
        .chain(
            KAFKA_DEFAULT_ONLY
                .iter()
                .map(|(name, default, _)| match configs.get(*name) {
                    Some(v) => (*name, v.clone(), false),
                    None => (*name, (*default).to_owned(), true),
                }),
        )
        .collect()
}

fn effective(configs: &TopicConfigs, name: &str) -> i64 {
    let raw = configs
        .get(name)
        .map(String::as_str)
        .or_else(|| KEYS.iter().find(|k| k.name == name).map(|k| k.default));
    raw.and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// The items of `cleanup.policy` (`compact`, `delete`, or both).
fn cleanup_policy(configs: &TopicConfigs) -> Vec<&str> {
    configs
        .get("cleanup.policy")
        .map_or("delete", String::as_str)
        .split(',')
        .map(str::trim)
        .collect()
}

/// The compaction settings of a topic whose `cleanup.policy` includes `compact`.
pub fn compaction_config(configs: &TopicConfigs) -> Option<CompactionConfig> {
    if !cleanup_policy(configs).contains(&"compact") {
        return None;
    }
    let defaults = CompactionConfig::default();
    Some(CompactionConfig {
        delete_retention_ms: effective(configs, "delete.retention.ms").max(0),
        min_compaction_lag_ms: effective(configs, "min.compaction.lag.ms").max(0),
        max_compaction_lag_ms: effective(configs, "max.compaction.lag.ms").max(1),
        min_cleanable_dirty_ratio: configs
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.min_cleanable_dirty_ratio),
    })
}

/// The log settings for these configs; `default_flush` applies when `flush.messages` is unset.
/// Retention applies only when `cleanup.policy` includes `delete`; a compacted topic rolls its
/// active segment by `max.compaction.lag.ms` too (Kafka's `segment.ms` interplay), so records
/// become cleanable within that lag.
pub fn log_config(configs: &TopicConfigs, default_flush: Option<u64>) -> LogConfig {
    let positive = |name| {
        u64::try_from(effective(configs, name))
            .ok()
            .filter(|v| *v > 0)
    };
    let duration = |name| positive(name).map(Duration::from_millis);
    let policy = cleanup_policy(configs);
    let delete = policy.contains(&"delete");
    let mut segment_ms = duration("segment.ms");
    if policy.contains(&"compact")
        && let Some(lag) =
            duration("max.compaction.lag.ms").filter(|d| d.as_millis() < i64::MAX as u128)
    {
        segment_ms = Some(segment_ms.map_or(lag, |ms| ms.min(lag)));
    }
    LogConfig {
        segment_bytes: positive("segment.bytes").unwrap_or(1 << 30),
        segment_ms,
        index_interval_bytes: positive("index.interval.bytes").unwrap_or(4096),
        max_batch_bytes: positive("max.message.bytes").unwrap_or(1_048_588) as usize,
        flush_messages: if configs.contains_key("flush.messages") {
            positive("flush.messages").filter(|v| *v < i64::MAX as u64)
        } else {
            default_flush
        },
        flush_interval: positive("flush.ms")
            .filter(|v| *v < i64::MAX as u64)
            .map(Duration::from_millis),
        retention_bytes: positive("retention.bytes").filter(|_| delete),
        retention_ms: duration("retention.ms").filter(|_| delete),
    }
}

/// The topic configs a mirror topic takes from its source topic (the others, such as segment
/// sizes and `min.insync.replicas`, are the mirror cluster's own; see `mirror.rs`).
pub const SYNCED_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_maps_configs() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(
            validate("retention.ms", "soon")
                .unwrap_err()
                .contains("integer")
        );
        for policy in ["compact", "delete", "compact,delete", "delete, compact"] {
            assert!(validate("cleanup.policy", policy).is_ok(), "{policy}");
        }
        assert!(
            validate("cleanup.policy", "compact,shred")
                .unwrap_err()
                .contains("one of: compact, delete")
        );
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "0.1").is_ok());
        assert!(validate("max.compaction.lag.ms", "0").is_err());
        let lags = |min: Option<&str>, max: Option<&str>| {
            let mut configs = TopicConfigs::new();
            for (key, value) in [
                ("min.compaction.lag.ms", min),
                ("max.compaction.lag.ms", max),
            ] {
                if let Some(value) = value {
                    configs.insert(key.into(), value.into());
                }
            }
            validate_together(&configs)
        };
        assert_eq!(
            lags(Some("2000"), Some("1000")).unwrap_err(),
            "conflict topic config setting min.compaction.lag.ms (2000) > max.compaction.lag.ms (1000)"
        );
        assert!(lags(Some("1000"), Some("1000")).is_ok());
        assert!(
            lags(Some("86400000"), None).is_ok(),
            "max defaults to forever"
        );
        assert!(lags(None, Some("1")).is_ok(), "min defaults to 0");
        let mut compacted = TopicConfigs::new();
        compacted.insert("cleanup.policy".into(), "compact".into());
        compacted.insert("retention.ms".into(), "1000".into());
        compacted.insert("max.compaction.lag.ms".into(), "60000".into());
        compacted.insert("min.cleanable.dirty.ratio".into(), "0.2".into());
        let log = log_config(&compacted, None);
        assert_eq!(log.retention_ms, None, "compact alone never deletes by age");
        assert_eq!(log.segment_ms, Some(Duration::from_secs(60)));
        let compaction = compaction_config(&compacted).unwrap();
        assert_eq!(
            (
                compaction.max_compaction_lag_ms,
                compaction.min_cleanable_dirty_ratio,
                compaction.delete_retention_ms
            ),
            (60_000, 0.2, 86_400_000)
        );
        compacted.insert("cleanup.policy".into(), "compact,delete".into());
        assert_eq!(
            log_config(&compacted, None).retention_ms,
            Some(Duration::from_secs(1))
        );
        assert!(compaction_config(&TopicConfigs::new()).is_none());
        assert!(validate("unclean.leader.election.enable", "false").is_ok());
        assert!(
            validate("unclean.leader.election.enable", "true")
                .unwrap_err()
                .contains("only Kafka's default")
        );
        assert!(
            validate("no.such.key", "1")
                .unwrap_err()
                .contains("unknown")
        );
        let mut configs = TopicConfigs::new();
        configs.insert("retention.ms".into(), "-1".into());
        configs.insert("segment.bytes".into(), "2048".into());
        configs.insert("flush.messages".into(), "1".into());
        let log = log_config(&configs, None);
        assert_eq!(
            (log.retention_ms, log.segment_bytes, log.flush_messages),
            (None, 2048, Some(1))
        );
        assert_eq!(
            log_config(&TopicConfigs::new(), Some(7)).flush_messages,
            Some(7)
        );
        let described = describe(&configs);
        assert!(
            described
                .iter()
                .any(|(k, v, d)| *k == "segment.bytes" && v == "2048" && !d)
        );
    }
}
