//! A Kafka cluster's recent time series, as the metrics sampler ([`crate::sampler`]) recorded
//! them, shaped for charts: one timestamp per sample and, per series, one value per sample.
//!
//! Reading needs the viewer role and a Kafka cluster (`not_a_kafka_cluster`); the cluster's
//! state does not matter (a cluster that stopped serving keeps its last hour). A cluster never
//! sampled answers empty series.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::metrics::KafkaClusterFigures;
use crate::model::Kind;
use crate::sampler::{RETENTION, Sample, SeriesStore};

/// A group's columns: records consumed per second, and total lag.
pub type GroupColumns = (Vec<Option<f64>>, Vec<Option<i64>>);

/// The series of a cluster, columnar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSeries {
    /// Milliseconds between samples (0 when no sampler runs).
    pub interval_ms: u64,
    /// How long samples are kept, in milliseconds.
    pub retention_ms: u64,
    /// When each sample was taken.
    pub timestamps_ms: Vec<i64>,
    /// Records in per second, all topics.
    pub records_in_per_sec: Vec<Option<f64>>,
    /// Records consumed per second, all groups.
    pub records_consumed_per_sec: Vec<Option<f64>>,
    /// Records in per second, per topic.
    pub topics: BTreeMap<String, Vec<Option<f64>>>,
    /// Per group: records consumed per second and total lag.
    pub groups: BTreeMap<String, GroupColumns>,
}

fn per_second(count: Option<u64>, elapsed_ms: Option<i64>) -> Option<f64> {
    match (count, elapsed_ms) {
        #[allow(clippy::cast_precision_loss, reason = "a rate for a chart")]
        (Some(count), Some(ms)) if ms > 0 => Some(count as f64 * 1000.0 / ms as f64),
        _ => None,
    }
}

/// Columns of `samples` (oldest first): a topic or group missing from a sample is `None` there.
pub fn columns(samples: &[Sample]) -> MetricsSeries {
    let n = samples.len();
    let mut series = MetricsSeries::default();
    let mut topics: BTreeMap<Arc<str>, Vec<Option<f64>>> = BTreeMap::new();
    let mut groups: BTreeMap<Arc<str>, GroupColumns> = BTreeMap::new();
    for (i, sample) in samples.iter().enumerate() {
        series.timestamps_ms.push(sample.at_ms);
        series
            .records_in_per_sec
            .push(per_second(sample.records_in, sample.elapsed_ms));
        let consumed = sample.elapsed_ms.is_some().then(|| {
            sample
                .groups
                .values()
                .filter_map(|(consumed, _)| *consumed)
                .fold(0u64, u64::saturating_add)
        });
        series
            .records_consumed_per_sec
            .push(per_second(consumed, sample.elapsed_ms));
        for (topic, written) in &sample.topics {
            topics
                .entry(Arc::clone(topic))
                .or_insert_with(|| vec![None; n])[i] =
                per_second(Some(*written), sample.elapsed_ms);
        }
        for (group, (consumed, lag)) in &sample.groups {
            let (rates, lags) = groups
                .entry(Arc::clone(group))
                .or_insert_with(|| (vec![None; n], vec![None; n]));
            rates[i] = per_second(*consumed, sample.elapsed_ms);
            lags[i] = Some(*lag);
        }
    }
    series.topics = topics
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v))
        .collect();
    series.groups = groups
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v))
        .collect();
    series
}

/// The newest sample of every Kafka cluster sampled within the last three intervals (older: the
/// cluster stopped answering or serving), as `GET /metrics` reports them.
pub fn latest_figures(series: &SeriesStore) -> Vec<KafkaClusterFigures> {
    let interval_ms = i64::try_from(series.interval().as_millis()).unwrap_or(i64::MAX);
    if interval_ms == 0 {
        return Vec::new();
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    series
        .latest(now_ms, interval_ms.saturating_mul(3))
        .into_iter()
        .map(|(workspace, cluster, sample)| KafkaClusterFigures {
            workspace,
            cluster,
            records_in_per_second: per_second(sample.records_in, sample.elapsed_ms),
            topics: sample
                .topics
                .iter()
                .filter_map(|(topic, written)| {
                    Some((
                        topic.as_ref().to_owned(),
                        per_second(Some(*written), sample.elapsed_ms)?,
                    ))
                })
                .collect(),
            groups: sample
                .groups
                .iter()
                .map(|(group, (consumed, lag))| {
                    (
                        group.as_ref().to_owned(),
                        per_second(*consumed, sample.elapsed_ms),
                        *lag,
                    )
                })
                .collect(),
        })
        .collect()
}

impl Service {
    /// The recent time series of a Kafka cluster, from the samples taken after `since_ms` (all
    /// kept samples when `None`).
    ///
    /// # Errors
    /// `not_found` (workspace or cluster), `not_a_kafka_cluster`.
    pub async fn cluster_metrics(
        &self,
        caller: &Identity,
        workspace: &str,
        cluster: &str,
        since_ms: Option<i64>,
    ) -> Result<MetricsSeries, ServiceError> {
        self.authorize(caller, workspace, Role::Viewer).await?;
        let record = self
            .cluster_get_unchecked(workspace, cluster)
            .await?
            .cluster;
        if record.kind != Kind::Kafka {
            return Err(ServiceError::Refused {
                code: ErrorCode::NotAKafkaCluster,
                message: format!(
                    "cluster {cluster:?} is a {} cluster; metrics are sampled of Kafka clusters",
                    record.kind.as_str()
                ),
            });
        }
        let mut series = columns(&self.series.samples(record.id, since_ms));
        series.interval_ms = u64::try_from(self.series.interval().as_millis()).unwrap_or(u64::MAX);
        series.retention_ms = u64::try_from(RETENTION.as_millis()).unwrap_or(u64::MAX);
        Ok(series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        at_ms: i64,
        elapsed_ms: Option<i64>,
        topics: &[(&str, u64)],
        groups: &[(&str, Option<u64>, i64)],
    ) -> Sample {
        Sample {
            at_ms,
            elapsed_ms,
            records_in: elapsed_ms.map(|_| topics.iter().map(|t| t.1).sum()),
            topics: topics.iter().map(|(t, n)| (Arc::from(*t), *n)).collect(),
            groups: groups
                .iter()
                .map(|(g, c, l)| (Arc::from(*g), (*c, *l)))
                .collect(),
        }
    }

    #[test]
    fn columns_align_every_series_with_the_timestamps() {
        let samples = [
            sample(0, None, &[], &[("g", None, 7)]),
            sample(2_000, Some(2_000), &[("a", 100)], &[("g", Some(10), 3)]),
            sample(4_000, Some(2_000), &[("a", 0), ("b", 50)], &[]),
        ];
        let series = columns(&samples);
        assert_eq!(series.timestamps_ms, [0, 2_000, 4_000]);
        assert_eq!(series.records_in_per_sec, [None, Some(50.0), Some(25.0)]);
        assert_eq!(
            series.records_consumed_per_sec,
            [None, Some(5.0), Some(0.0)]
        );
        assert_eq!(series.topics["a"], [None, Some(50.0), Some(0.0)]);
        assert_eq!(series.topics["b"], [None, None, Some(25.0)]);
        assert_eq!(series.groups["g"].0, [None, Some(5.0), None]);
        assert_eq!(series.groups["g"].1, [Some(7), Some(3), None]);
    }
}
