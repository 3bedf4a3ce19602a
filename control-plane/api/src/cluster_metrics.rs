//! Wire types of a Kafka cluster's recent time series, at
//! `GET /v1/workspaces/{ws}/clusters/{cluster}/metrics`: what the control plane sampled (records
//! in per second, records consumed per second, consumer-group lag), for charts.
//!
//! The series are columnar: `timestamps_ms[i]` is the time of sample `i` and every series has one
//! value per sample, `null` where there is none (the first sample has no rate; a topic or group
//! that appeared later has none before).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A Kafka cluster's recent time series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterMetrics {
    /// Milliseconds between samples (the control plane's `--metrics-interval`).
    pub interval_ms: u64,
    /// How far back samples are kept, in milliseconds.
    pub retention_ms: u64,
    /// When each sample was taken, in milliseconds since the Unix epoch, ascending.
    pub timestamps_ms: Vec<i64>,
    /// Records written to the cluster per second (all topics), over the interval ending at each
    /// sample.
    pub records_in_per_sec: Vec<Option<f64>>,
    /// Records consumed per second by all groups (the advance of their committed offsets).
    pub records_consumed_per_sec: Vec<Option<f64>>,
    /// Per topic (internal topics left out), by name.
    pub topics: Vec<TopicSeries>,
    /// Per consumer group, by group id.
    pub groups: Vec<GroupSeries>,
}

/// The series of one topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicSeries {
    /// Topic.
    pub topic: String,
    /// Records written per second (the advance of the partitions' end offsets).
    pub records_in_per_sec: Vec<Option<f64>>,
}

/// The series of one consumer group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupSeries {
    /// Group id.
    pub group_id: String,
    /// Records consumed per second (the advance of its committed offsets).
    pub records_consumed_per_sec: Vec<Option<f64>>,
    /// Its total lag at each sample (sum over its committed partitions of end minus committed).
    pub total_lag: Vec<Option<i64>>,
}
