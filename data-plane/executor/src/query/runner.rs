//! Where a batch's tasks and state partitions run ([`TaskRunner`]: in this process with
//! [`LocalRunner`], or on the workers), and how one state partition's request survives a failed
//! or forgetful owner ([`apply_partition`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use datafusion::arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;

use crate::checkpoint::Checkpoint;
use crate::stateful::{ApplyError, StateReply, StateRequest, StateStore};
use crate::task::{TaskContext, TaskOutput, TaskRequest};

/// Why a state request did not give an answer.
#[derive(Debug)]
pub enum StateCallError {
    /// The worker does not hold the base state (send it the snapshot).
    Missing(String),
    /// The worker failed or could not be reached.
    Failed(anyhow::Error),
}

/// Runs tasks and state partitions somewhere: in this process or on workers.
pub trait TaskRunner: Send + Sync + std::fmt::Debug {
    /// Runs one task to its output (retrying elsewhere as the runner sees fit).
    fn run(&self, request: TaskRequest) -> BoxFuture<'_, anyhow::Result<TaskOutput>>;

    /// The workers that can own state partitions now, in a stable order (waits for one).
    fn state_workers(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;

    /// Applies one state partition's share of a batch on `worker` (once; the caller retries).
    fn run_state(
        &self,
        worker: String,
        request: Arc<StateRequest>,
        schema: SchemaRef,
    ) -> BoxFuture<'_, Result<StateReply, StateCallError>>;
}

/// Runs tasks in this process, each on the runtime's worker threads (so a batch's tasks use
/// every core, as they would on separate workers), and holds every state partition.
#[derive(Debug, Default)]
pub struct LocalRunner {
    /// Plans and Kafka consumers.
    pub context: Arc<TaskContext>,
    /// The state partitions.
    pub states: Arc<StateStore>,
}

impl TaskRunner for LocalRunner {
    fn run(&self, request: TaskRequest) -> BoxFuture<'_, anyhow::Result<TaskOutput>> {
        let context = Arc::clone(&self.context);
        Box::pin(async move {
            tokio::spawn(async move { context.run(&request).await })
                .await
                .context("a task panicked")?
        })
    }

    fn state_workers(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async { Ok(vec!["local".to_string()]) })
    }

    fn run_state(
        &self,
        _worker: String,
        request: Arc<StateRequest>,
        _schema: SchemaRef,
    ) -> BoxFuture<'_, Result<StateReply, StateCallError>> {
        let context = Arc::clone(&self.context);
        let states = Arc::clone(&self.states);
        Box::pin(async move {
            let h = &request.header;
            let job = context
                .prepared_job(&h.job_id, &h.script, h.bootstrap.as_deref())
                .await
                .map_err(StateCallError::Failed)?;
            let applied =
                tokio::task::spawn_blocking(move || states.apply(&job.plan, &request)).await;
            match applied {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(ApplyError::Missing { .. })) => {
                    Err(StateCallError::Missing("not held".into()))
                }
                Ok(Err(ApplyError::Failed(e))) => Err(StateCallError::Failed(e)),
                Err(e) => Err(StateCallError::Failed(
                    anyhow::Error::new(e).context("a state partition panicked"),
                )),
            }
        })
    }
}

/// Applies one state partition's share of a batch on `worker`, sending the base snapshot along
/// when the partition moved or the worker lacks it, and moving the partition to another live
/// worker when its owner fails.
pub(super) async fn apply_partition(
    runner: Arc<dyn TaskRunner>,
    checkpoint: Checkpoint,
    request: StateRequest,
    mut worker: String,
    moved: bool,
    schema: SchemaRef,
) -> anyhow::Result<(String, StateReply)> {
    let partition = request.header.partition;
    let partitions = request.header.partitions;
    let batch_id = request.header.batch_id;
    let base = request.header.base;
    let load = |checkpoint: &Checkpoint| -> anyhow::Result<Option<Arc<Vec<u8>>>> {
        match base {
            None => Ok(None),
            Some(b) => checkpoint
                .state_of(b, partition)?
                .map(|bytes| Some(Arc::new(bytes)))
                .with_context(|| {
                    format!("the checkpoint lacks state partition {partition} after batch {b}")
                }),
        }
    };
    let mut request = Arc::new(request);
    if moved {
        Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
    }
    let mut attempts = 0u32;
    loop {
        let error = match runner
            .run_state(worker.clone(), Arc::clone(&request), Arc::clone(&schema))
            .await
        {
            Ok(reply) => return Ok((worker, reply)),
            Err(StateCallError::Missing(why)) if request.snapshot.is_none() && base.is_some() => {
                tracing::info!(%worker, batch = batch_id, partition,
                    "the worker lacks the partition's state ({why}); sending the snapshot");
                Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
                continue;
            }
            Err(StateCallError::Missing(why)) => anyhow::anyhow!(why),
            Err(StateCallError::Failed(error)) => error,
        };
        attempts += 1;
        if attempts >= 10 {
            return Err(error.context(format!(
                "state partition {partition} of batch {batch_id} failed {attempts} times"
            )));
        }
        tracing::warn!(%worker, batch = batch_id, partition, attempts,
            "state partition failed, retrying: {error:#}");
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
        let workers = runner.state_workers().await?;
        if attempts >= 2 || !workers.contains(&worker) {
            let next = workers
                .iter()
                .position(|w| *w == worker)
                .map_or(0, |i| (i + 1) % workers.len());
            if let Some(other) = workers.get(next)
                && *other != worker
            {
                tracing::info!(batch = batch_id, partition, from = %worker, to = %other,
                    "state partition moves after a failure");
                worker = other.clone();
                // The new owner must not forget partitions it owns that this request does
                // not know of.
                Arc::make_mut(&mut request).header.owned = (0..partitions).collect();
            }
        }
        // A failed attempt leaves the owner without a valid state: always send the base.
        Arc::make_mut(&mut request).snapshot = load(&checkpoint)?;
    }
}
