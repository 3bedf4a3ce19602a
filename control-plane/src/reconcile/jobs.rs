//! The job reconciler: makes every serving Spark cluster's driver hold exactly the jobs stored
//! for that cluster.
//!
//! Level-triggered and idempotent: each pass lists the driver's jobs, then reads the stored ones,
//! plans with the pure [`plan_jobs`], and submits (`PUT`, idempotent for an identical definition)
//! the stored jobs the driver lacks — a replaced driver, or one that lost its data directory,
//! gets them back — puts again those whose definition the driver reports with another digest
//! (the job's Kafka access changed: rotated credentials or CA certificates, another set of the
//! workspace's clusters; the driver updates them in place), and deletes the driver's jobs
//! nothing stores. The driver is listed *before*
//! the store is read: a job is stored before it is first sent to a driver, so a job the driver
//! has is always in that later read unless it was deleted, and a concurrent submission is never
//! mistaken for an unknown job. Several control planes may run passes at once: both actions are
//! idempotent, and a job deleted during a pass that resubmits it is removed by the next pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::driver::{DriverClient, JobDefinition};
use crate::model::{JobId, JobRecord, SparkDriver};
use crate::store::{Store, StoreError};

/// What a pass does to one driver.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobAction {
    /// `PUT` the stored job with this id (the driver lacks it).
    Submit(JobId),
    /// `PUT` the stored job with this id again: the driver holds another definition of it
    /// (other Kafka credentials or CA certificates, another set of the workspace's clusters),
    /// which it updates in place.
    Update(JobId),
    /// `DELETE` this job from the driver.
    Remove(JobId),
}

/// The actions that make a driver holding `on_driver` hold exactly `stored`, each job given by
/// its id and the digest of its definition ([`hdi_executor_api::JobDefinition::digest`]; a
/// driver that reports none is not updated): submissions, then updates, then removals, each
/// list in id order.
pub fn plan_jobs(
    stored: &[(JobId, String)],
    on_driver: &[(JobId, Option<String>)],
) -> Vec<JobAction> {
    let stored: BTreeMap<JobId, &String> = stored.iter().map(|(id, d)| (*id, d)).collect();
    let on_driver: BTreeMap<JobId, Option<&String>> =
        on_driver.iter().map(|(id, d)| (*id, d.as_ref())).collect();
    let submit = stored
        .keys()
        .filter(|id| !on_driver.contains_key(id))
        .map(|id| JobAction::Submit(*id));
    let update = stored
        .iter()
        .filter_map(|(id, digest)| match on_driver.get(id) {
            Some(Some(held)) if held != digest => Some(JobAction::Update(*id)),
            _ => None,
        });
    let remove = on_driver
        .keys()
        .filter(|id| !stored.contains_key(id))
        .map(|id| JobAction::Remove(*id));
    submit.chain(update).chain(remove).collect()
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
    /// Jobs whose definitions were updated on their driver.
    pub updated: usize,
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
    pub async fn run(self, stop: Arc<Notify>, metrics: Arc<crate::metrics::Metrics>) {
        tracing::info!("job reconciler running");
        loop {
            match metrics.timed("jobs", self.pass()).await {
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
                .map(|j| (JobId::from_uuid(j.id), j.definition_digest))
                .collect::<Vec<_>>(),
            Err(error) => {
                tracing::debug!(cluster = %driver.cluster, error = %error, "driver not listed");
                report.unreachable += 1;
                return Ok(());
            }
        };
        // After the driver's list: see the module doc.
        let stored = self.store.jobs_of_cluster(driver.cluster_id).await?;
        let definitions: BTreeMap<JobId, (&JobRecord, JobDefinition)> = stored
            .iter()
            .map(|job| (job.id, (job, definition(job, driver))))
            .collect();
        let digests: Vec<(JobId, String)> = definitions
            .iter()
            .map(|(id, (_, def))| (*id, def.digest()))
            .collect();
        for action in plan_jobs(&digests, &on_driver) {
            match action {
                JobAction::Submit(id) | JobAction::Update(id) => {
                    let Some((job, def)) = definitions.get(&id) else {
                        continue;
                    };
                    let update = matches!(action, JobAction::Update(_));
                    match client.job_put(id.into_uuid(), def).await {
                        Ok(_) if update => {
                            tracing::info!(cluster = %driver.cluster, job = %job.name, "job's definition updated on the driver");
                            report.updated += 1;
                        }
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
    fn plans_submissions_updates_and_removals() {
        type Case = (
            &'static [(u128, &'static str)],
            &'static [(u128, Option<&'static str>)],
            &'static [JobActionCase],
        );
        #[derive(Debug)]
        enum JobActionCase {
            Submit(u128),
            Update(u128),
            Remove(u128),
        }
        use JobActionCase::{Remove, Submit, Update};
        let cases: [Case; 9] = [
            (&[], &[], &[]),
            (
                &[(1, "a"), (2, "b")],
                &[(1, Some("a")), (2, Some("b"))],
                &[],
            ),
            (&[(1, "a"), (2, "b")], &[], &[Submit(1), Submit(2)]),
            (&[], &[(3, Some("c"))], &[Remove(3)]),
            (
                &[(2, "b"), (1, "a")],
                &[(3, None), (1, Some("a"))],
                &[Submit(2), Remove(3)],
            ),
            (
                &[(1, "a"), (1, "a")],
                &[(2, None), (2, None)],
                &[Submit(1), Remove(2)],
            ),
            // Another definition on the driver: updated; a driver that reports none: left.
            (
                &[(1, "new"), (2, "b")],
                &[(1, Some("old")), (2, None)],
                &[Update(1)],
            ),
            (
                &[(1, "new"), (2, "b")],
                &[(3, None), (2, Some("old")), (1, Some("new"))],
                &[Update(2), Remove(3)],
            ),
            (
                &[(5, "x"), (4, "y")],
                &[(4, Some("z"))],
                &[Submit(5), Update(4)],
            ),
        ];
        for (stored, on_driver, expected) in cases {
            let stored: Vec<(JobId, String)> = stored
                .iter()
                .map(|(n, d)| (id(*n), (*d).to_owned()))
                .collect();
            let on_driver: Vec<(JobId, Option<String>)> = on_driver
                .iter()
                .map(|(n, d)| (id(*n), d.map(str::to_owned)))
                .collect();
            let expected: Vec<JobAction> = expected
                .iter()
                .map(|a| match a {
                    Submit(n) => JobAction::Submit(id(*n)),
                    Update(n) => JobAction::Update(id(*n)),
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
