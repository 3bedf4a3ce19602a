//! A job's settings (`SET key = 'value'`: `trigger`, `max_records_per_trigger`,
//! `state_partitions`) and the sink's `output_mode`, read and checked.

use std::time::Duration;

use super::{OutputMode, Trigger};
use crate::sql::{JobError, Script, TableDef, duration_text};

/// The settings a script may `SET`.
pub const SETTINGS: &[&str] = &["trigger", "max_records_per_trigger", "state_partitions"];

/// State partitions of a job that does not set `state_partitions`.
pub const DEFAULT_STATE_PARTITIONS: u32 = 4;
/// The most state partitions a job may have.
pub const MAX_STATE_PARTITIONS: u32 = 256;

/// `SET state_partitions = N`: how many partitions the streaming state is split into; 1 to
/// [`MAX_STATE_PARTITIONS`], default [`DEFAULT_STATE_PARTITIONS`].
pub fn state_partitions(script: &Script) -> Result<u32, JobError> {
    match script.settings.get("state_partitions") {
        None => Ok(DEFAULT_STATE_PARTITIONS),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_STATE_PARTITIONS).contains(n))
            .ok_or_else(|| {
                JobError::new(
                    "invalid_option",
                    format!("state_partitions '{text}': a number from 1 to {MAX_STATE_PARTITIONS}"),
                )
                .at_span(script.setting_span("state_partitions"))
            }),
    }
}

pub(super) fn trigger(script: &Script) -> Result<Trigger, JobError> {
    let Some(text) = script.settings.get("trigger") else {
        return Ok(Trigger::ProcessingTime(Duration::from_secs(1)));
    };
    let lower = text.trim().to_ascii_lowercase();
    if lower == "available_now" || lower == "availablenow" || lower == "once" {
        return Ok(Trigger::AvailableNow);
    }
    let interval = lower
        .strip_prefix("processing_time")
        .map(str::trim)
        .and_then(humantime_like);
    match interval {
        Some(interval) if !interval.is_zero() => Ok(Trigger::ProcessingTime(interval)),
        _ => Err(JobError::new(
            "invalid_option",
            format!(
                "trigger '{text}': use 'processing_time 1s' (any interval above 0) or 'available_now'"
            ),
        )
        .at_span(script.setting_span("trigger"))),
    }
}

/// `1s`, `500ms`, `2 seconds`, `1 minute`.
fn humantime_like(text: &str) -> Option<Duration> {
    humantime::parse_duration(text)
        .ok()
        .or_else(|| duration_text(text))
}

/// The sink's `output_mode` (default `append`).
pub(super) fn output_mode(sink: &TableDef) -> Result<OutputMode, JobError> {
    match sink.option("output_mode").unwrap_or("append") {
        "append" => Ok(OutputMode::Append),
        "update" => Ok(OutputMode::Update),
        other => Err(JobError::new(
            "invalid_option",
            format!("output_mode '{other}': use append or update"),
        )
        .at_span(sink.span)),
    }
}

/// Refuses a setting not in [`SETTINGS`].
pub(super) fn check_settings(script: &Script) -> Result<(), JobError> {
    match script
        .settings
        .keys()
        .find(|k| !SETTINGS.contains(&k.as_str()))
    {
        Some(key) => Err(JobError::new(
            "invalid_option",
            format!(
                "unknown setting '{key}' (settings: {})",
                SETTINGS.join(", ")
            ),
        )
        .at_span(script.setting_span(key))),
        None => Ok(()),
    }
}

/// The most records one batch reads: `SET max_records_per_trigger`, else the source's option of
/// that name; none by default.
pub(super) fn max_records_per_trigger(
    script: &Script,
    source: &TableDef,
) -> Result<Option<u64>, JobError> {
    let Some(text) = script
        .settings
        .get("max_records_per_trigger")
        .map(String::as_str)
        .or(source.option("max_records_per_trigger"))
    else {
        return Ok(None);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            JobError::new(
                "invalid_option",
                format!("max_records_per_trigger '{text}' is not a positive number"),
            )
            .at_span(if script.settings.contains_key("max_records_per_trigger") {
                script.setting_span("max_records_per_trigger")
            } else {
                source.span
            })
        })
}
