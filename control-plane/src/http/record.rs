//! A topic's records over REST: the bounded live tail as server-sent events and "produce a
//! record" (`/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records`). The service layer
//! (`service/record.rs`) runs the tail; this module only frames its events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use hdi_api as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;
use crate::service::{ProduceInput, TailEnd, TailEvent, TailFrom, TailRequest};

/// Where a tail starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TailStart {
    /// The first offset still in each partition.
    Earliest,
    /// The end of each partition: only records written from now on.
    #[default]
    Latest,
    /// The offset given as `offset` (clamped to each partition's log).
    Offset,
    /// The first record at or after `timestamp_ms`.
    Timestamp,
}

/// The query of a tail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TailParams {
    /// Where to start (default `latest`).
    #[serde(default)]
    #[param(inline)]
    pub from: TailStart,
    /// With `from=offset`: the offset to start at, in every partition read.
    pub offset: Option<i64>,
    /// With `from=timestamp`: ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Only this partition (default: all).
    pub partition: Option<u32>,
    /// Only records whose key (as text) contains this.
    pub key_contains: Option<String>,
    /// Only records whose value (as text) contains this.
    pub value_contains: Option<String>,
    /// Records to send at most: 1-10000 (default 500).
    pub max_records: Option<u32>,
    /// Seconds to last at most: 1-600 (default 60).
    pub max_seconds: Option<u32>,
    /// Records per second to send at most: 1-5000 (default 1000).
    pub max_per_second: Option<u32>,
    /// Keep waiting for new records (default `true`); `false` stops at the end offsets seen at
    /// the start (`end_of_partitions`).
    pub follow: Option<bool>,
}

/// Reads a topic's records as server-sent events: a bounded live tail (or, with
/// `follow=false`, a scan up to the current end). Events: `record` ([`api::TailRecord`]),
/// `progress` about every second ([`api::TailProgress`]), and last `end` ([`api::TailEnd`])
/// with the reason. Records of one partition arrive in offset order. The control plane reads
/// the brokers as a diagnostic client, bounded in records, time and rate; applications read
/// the brokers directly.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("topic" = String, Path, description = "Topic name"), TailParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of `record`, `progress` and `end` events (data: `TailRecord`, `TailProgress`, `TailEnd`)", content_type = "text/event-stream", body = api::TailRecord),
        (status = 400, description = "`invalid_field` (`partition`, `offset`, `timestamp_ms`, `max_records`, `max_seconds`, `max_per_second`), or `not_a_kafka_cluster`"),
        (status = 404, description = "No such workspace, cluster or topic"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn records_tail(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, topic)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<TailParams>,
) -> Result<Response, ApiError> {
    let from = match params.from {
        TailStart::Earliest => TailFrom::Earliest,
        TailStart::Latest => TailFrom::Latest,
        TailStart::Offset => TailFrom::Offset(params.offset.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                hdi_api::ErrorCode::InvalidField,
                "from=offset needs an offset",
            )
            .with_field("offset")
        })?),
        TailStart::Timestamp => TailFrom::Timestamp(params.timestamp_ms.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                hdi_api::ErrorCode::InvalidField,
                "from=timestamp needs timestamp_ms",
            )
            .with_field("timestamp_ms")
        })?),
    };
    let request = TailRequest {
        from,
        partition: params
            .partition
            .map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        key_contains: params.key_contains,
        value_contains: params.value_contains,
        max_records: params.max_records,
        max_seconds: params.max_seconds,
        max_per_second: params.max_per_second,
        follow: params.follow.unwrap_or(true),
    };
    let events = state
        .service
        .records_tail(&caller, &ws, &cluster, &topic, request)
        .await?;
    let stream = futures::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok::<Event, Infallible>(sse_event(event)), events))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must pass events on as they come, not buffer them.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn sse_event(event: TailEvent) -> Event {
    let (name, data) = match event {
        TailEvent::Record(r) => (
            "record",
            serde_json::to_string(&api::TailRecord {
                partition: u32::try_from(r.partition).unwrap_or_default(),
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(key, value)| api::RecordHeader { key, value })
                    .collect(),
                truncated: r.truncated,
            }),
        ),
        TailEvent::Progress {
            scanned,
            matched,
            skipped_compressed,
        } => (
            "progress",
            serde_json::to_string(&api::TailProgress {
                scanned,
                matched,
                skipped_compressed,
            }),
        ),
        TailEvent::End {
            reason,
            records,
            scanned,
            detail,
        } => (
            "end",
            serde_json::to_string(&api::TailEnd {
                reason: match reason {
                    TailEnd::MaxRecords => api::TailEndReason::MaxRecords,
                    TailEnd::MaxSeconds => api::TailEndReason::MaxSeconds,
                    TailEnd::EndOfPartitions => api::TailEndReason::EndOfPartitions,
                    TailEnd::Error => api::TailEndReason::Error,
                },
                records,
                scanned,
                detail,
            }),
        ),
    };
    Event::default()
        .event(name)
        .data(data.unwrap_or_else(|_| "{}".to_owned()))
}

/// Writes one record to a topic (`acks=all`) and answers where it landed: a diagnostic write
/// for people (the portal's "produce a record"); applications write to the brokers.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records", tag = "topics",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"),
           ("topic" = String, Path, description = "Topic name")),
    request_body = api::RecordProduce,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Written", body = api::RecordProduced),
        (status = 400, description = "`invalid_field` (`partition`, `value`: over 1 MiB), or `not_a_kafka_cluster`"),
        (status = 403, description = "The caller is not an operator (`forbidden`)"),
        (status = 404, description = "No such workspace, cluster or topic"),
        (status = 409, description = "The cluster is not running (`cluster_not_ready`)"),
        (status = 502, description = "The leader refused the record (`kafka_error`)"),
        (status = 503, description = "The cluster cannot be reached (`cluster_unreachable`)")))]
pub async fn record_produce(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster, topic)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<api::RecordProduce>,
) -> Result<Response, ApiError> {
    let input = ProduceInput {
        partition: body.partition.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        key: body.key,
        value: body.value,
        headers: body.headers,
    };
    let (partition, offset) = state
        .service
        .record_produce(&caller, &ws, &cluster, &topic, input)
        .await?;
    let body = api::RecordProduced {
        partition: u32::try_from(partition).unwrap_or_default(),
        offset,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
