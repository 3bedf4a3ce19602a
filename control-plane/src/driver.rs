//! The control plane's side of the executor driver's job API: [`hdi_executor_api`]'s client,
//! used by the job service and the job reconciler, with jobs named by our UUIDs.
//!
//! The driver owns running jobs; the control plane only submits (`PUT /v1/jobs/{id}`, idempotent
//! for an identical definition), lists, reads, validates and deletes them. Progress documents
//! are passed on typed ([`Progress`]); the HTTP layer maps them to the API's `JobProgress`.

pub use hdi_executor_api::{
    DriverClient, DriverError, JobDefinition, Progress, STATUS_TIMEOUT, SUBMIT_TIMEOUT, Submitted,
    ValidateRequest,
};

/// A job as the driver reports it, named by the control plane's UUID (a list holding any other
/// id does not read).
pub type DriverJob = hdi_executor_api::JobStatus<uuid::Uuid>;
