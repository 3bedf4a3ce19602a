//! `GET /v1/workspaces/{ws}/clusters/{cluster}/metrics`: a Kafka cluster's recent time series,
//! as the control plane's metrics sampler recorded them, for the portal's charts.

use axum::Json;
use axum::extract::State;
use hdi_api as api;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Caller};
use crate::AppState;

/// Which samples to answer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// Only samples taken after this time (milliseconds since the Unix epoch), e.g. the last
    /// timestamp of the previous answer; all kept samples (the last hour) when absent.
    pub since_ms: Option<i64>,
}

/// The recent time series of a Kafka cluster: records in per second (total and per topic),
/// records consumed per second (total and per consumer group) and each group's total lag, one
/// value per sample (every `--metrics-interval`, the last hour kept in the control plane's
/// memory). A cluster not sampled yet answers empty series.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/clusters/{cluster}/metrics", tag = "clusters",
    params(("ws" = String, Path, description = "Workspace name"),
           ("cluster" = String, Path, description = "Kafka cluster name"), MetricsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cluster's time series", body = api::ClusterMetrics),
        (status = 400, description = "Not a Kafka cluster (`not_a_kafka_cluster`), or a bad `since_ms`"),
        (status = 404, description = "No such workspace or cluster")))]
pub async fn cluster_metrics(
    Caller(caller): Caller,
    State(state): State<AppState>,
    ApiPath((ws, cluster)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<MetricsParams>,
) -> Result<Json<api::ClusterMetrics>, ApiError> {
    let series = state
        .service
        .cluster_metrics(&caller, &ws, &cluster, params.since_ms)
        .await?;
    Ok(Json(api::ClusterMetrics {
        interval_ms: series.interval_ms,
        retention_ms: series.retention_ms,
        timestamps_ms: series.timestamps_ms,
        records_in_per_sec: series.records_in_per_sec,
        records_consumed_per_sec: series.records_consumed_per_sec,
        topics: series
            .topics
            .into_iter()
            .map(|(topic, records_in_per_sec)| api::TopicSeries {
                topic,
                records_in_per_sec,
            })
            .collect(),
        groups: series
            .groups
            .into_iter()
            .map(
                |(group_id, (records_consumed_per_sec, total_lag))| api::GroupSeries {
                    group_id,
                    records_consumed_per_sec,
                    total_lag,
                },
            )
            .collect(),
    }))
}
