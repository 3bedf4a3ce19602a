//! The job reconciler: makes every serving Spark cluster's driver hold exactly the jobs stored
//! for that cluster.
//!
//! Level-triggered and idempotent: each pass lists the driver's jobs, then reads the stored ones,
//! plans with the pure [`plan_jobs`], and submits (`PUT`, idempotent for an identical definition)
//! the stored jobs the driver lacks — a replaced driver, or one that lost its data directory,
//! gets them back — and deletes the driver's jobs nothing stores. The driver is listed *before*
//! the store is read: a job is stored before it is first sent to a driver, so a job the driver
//! has is always in that later read unless it was deleted, and a concurrent submission is never
//! mistaken for an unknown job. Several control planes may run passes at once: both actions are
//! idempotent, and a job deleted during a pass that resubmits it is removed by the next pass.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::driver::{DriverClient, JobDefinition};
use crate::model::{JobId, JobRecord, SparkDriver};
use crate::store::{Store, StoreError};

/// What a pass does to one driver.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobAction {
    /// `PUT` the stored job with this id.
    Submit(JobId),
    /// `DELETE` this job from the driver.
    Remove(JobId),
}

/// The actions that make a driver holding `on_driver` hold exactly `stored`: submissions first,
/// each list in id order.
pub fn plan_jobs(stored: &[JobId], on_driver: &[JobId]) -> Vec<JobAction> {
    let stored: BTreeSet<JobId> = stored.iter().copied().collect();
    let on_driver: BTreeSet<JobId> = on_driver.iter().copied().collect();
    stored
        .difference(&on_driver)
        .map(|id| JobAction::Submit(*id))
        .chain(
            on_driver
                .difference(&stored)
                .map(|id| JobAction::Remove(*id)),
        )
        .collect()
}

/// What one pass did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobPassReport {
    /// Drivers listed.
    pub drivers: usize,
    /// Drivers that did not answer (skipped).
    pub unreachable: usize,
    /// Jobs submitted.
    pub submitted: usize,
    /// Jobs removed from drivers.
    pub removed: usize,
    /// Actions that failed (retried next pass).
    pub failed: usize,
}

/// The job reconciler.
pub struct JobReconciler {
    store: Store,
    http: reqwest::Client,
    interval: Duration,
}

impl JobReconciler {
    /// A reconciler over `store` running a pass every `interval`.
    pub fn new(store: Store, interval: Duration) -> JobReconciler {
        JobReconciler {
            store,
            http: DriverClient::pool(),
            interval,
        }
    }

    /// Runs passes until `stop` is notified.
    pub async fn run(self, stop: Arc<Notify>) {
        tracing::info!("job reconciler running");
        loop {
            match self.pass().await {
                Ok(report) if report.submitted + report.removed + report.failed > 0 => {
                    tracing::info!(?report, "job reconcile pass");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "job reconcile pass failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.notified() => break,
            }
        }
    }

    /// One pass over every serving Spark cluster.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn pass(&self) -> Result<JobPassReport, StoreError> {
        let mut report = JobPassReport::default();
        for driver in self.store.spark_drivers_serving().await? {
            report.drivers += 1;
            self.reconcile(&driver, &mut report).await?;
        }
        Ok(report)
    }

    async fn reconcile(
        &self,
        driver: &SparkDriver,
        report: &mut JobPassReport,
    ) -> Result<(), StoreError> {
        let client = DriverClient::new(
            self.http.clone(),
            &driver.job_api,
            driver.credential.clone(),
        );
        let on_driver = match client.jobs_list().await {
            Ok(jobs) => jobs
                .into_iter()
                .map(|j| JobId::from_uuid(j.id))
                .collect::<Vec<_>>(),
            Err(error) => {
                tracing::debug!(cluster = %driver.cluster, error = %error, "driver not listed");
                report.unreachable += 1;
                return Ok(());
            }
        };
        // After the driver's list: see the module doc.
        let stored = self.store.jobs_of_cluster(driver.cluster_id).await?;
        let ids: Vec<JobId> = stored.iter().map(|j| j.id).collect();
        for action in plan_jobs(&ids, &on_driver) {
            match action {
                JobAction::Submit(id) => {
                    let Some(job) = stored.iter().find(|j| j.id == id) else {
                        continue;
                    };
                    match client
                        .job_put(id.into_uuid(), &definition(job, driver))
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(cluster = %driver.cluster, job = %job.name, "job submitted to the driver");
                            report.submitted += 1;
                        }
                        Err(error) => {
                            tracing::warn!(cluster = %driver.cluster, job = %job.name, error = %error, "cannot submit job");
                            report.failed += 1;
                        }
                    }
                }
                JobAction::Remove(id) => match client.job_delete(id.into_uuid()).await {
                    Ok(_) => {
                        tracing::info!(cluster = %driver.cluster, job = %id, "unknown job removed from the driver");
                        report.removed += 1;
                    }
                    Err(error) => {
                        tracing::warn!(cluster = %driver.cluster, job = %id, error = %error, "cannot remove job");
                        report.failed += 1;
                    }
                },
            }
        }
        Ok(())
    }
}

fn definition(job: &JobRecord, driver: &SparkDriver) -> JobDefinition {
    JobDefinition {
        name: job.name.clone(),
        sql: job.sql.clone(),
        bootstrap_servers: job.bootstrap_servers.clone(),
        allowed_kafka: Some(driver.workspace_kafka.clone()),
        kafka_access: crate::service::kafka_access(&driver.kafka_access),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> JobId {
        JobId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn plans_submissions_and_removals() {
        type Case = (&'static [u128], &'static [u128], &'static [JobActionCase]);
        #[derive(Debug)]
        enum JobActionCase {
            Submit(u128),
            Remove(u128),
        }
        use JobActionCase::{Remove, Submit};
        let cases: [Case; 6] = [
            (&[], &[], &[]),
            (&[1, 2], &[1, 2], &[]),
            (&[1, 2], &[], &[Submit(1), Submit(2)]),
            (&[], &[3], &[Remove(3)]),
            (&[2, 1], &[3, 1], &[Submit(2), Remove(3)]),
            (&[1, 1], &[2, 2], &[Submit(1), Remove(2)]),
        ];
        for (stored, on_driver, expected) in cases {
            let stored: Vec<JobId> = stored.iter().map(|n| id(*n)).collect();
            let on_driver: Vec<JobId> = on_driver.iter().map(|n| id(*n)).collect();
            let expected: Vec<JobAction> = expected
                .iter()
                .map(|a| match a {
                    Submit(n) => JobAction::Submit(id(*n)),
                    Remove(n) => JobAction::Remove(id(*n)),
                })
                .collect();
            assert_eq!(
                plan_jobs(&stored, &on_driver),
                expected,
                "{stored:?} vs {on_driver:?}"
            );
        }
    }
}
