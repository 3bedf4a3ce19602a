//! The HTTP API of an executor driver (`hdi-executor driver`), in one place: the wire types its
//! job API and cluster view serve, the one problem document every executor endpoint answers
//! errors with, and [`DriverClient`], the client the control plane calls it through.
//!
//! The driver serves, on its listen address:
//! - `POST /v1/jobs/validate` [`ValidateRequest`] → 200 [`Acknowledged`], or 400 with a
//!   [`Problem`] carrying the SQL error's `code`, `line` and `column`;
//! - `PUT /v1/jobs/{id}` [`JobDefinition`] → 201 [`JobStatus`] (started), 200 (the same
//!   definition is there), 409 `job_conflict`, 400;
//! - `GET /v1/jobs` → [`JobList`]; `GET /v1/jobs/{id}` → [`JobStatus`];
//!   `GET /v1/jobs/{id}/progress?limit=N` → [`ProgressList`];
//!   `GET /v1/jobs/{id}/preview?limit=N` → [`Preview`];
//! - `DELETE /v1/jobs/{id}` → 204 (stops the job and removes its checkpoint);
//! - `GET /v1/cluster` → [`ClusterView`]; `PUT /v1/workers/{id}` [`WorkerRegistration`] (a
//!   worker's registration and heartbeat) → [`Acknowledged`].
//!
//! [`paths`] holds these paths once, for the driver's router and the clients.
//!
//! A job id is 1-64 letters, digits, `-` or `_`; the control plane names its jobs by UUID, so
//! [`JobStatus`] takes the id's type as a parameter (`String` on the driver, `Uuid` in the
//! control plane's reads). The crate knows nothing of how jobs run: no DataFusion, and no axum
//! unless a server asks for it (feature `axum`: the problem as a response; feature `fake`:
//! `fake::FakeDriver`, an in-process driver for tests).

mod client;
mod cluster;
mod job;
pub mod paths;
mod problem;
mod progress;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{DriverClient, DriverError, STATUS_TIMEOUT, SUBMIT_TIMEOUT, Submitted};
pub use cluster::{ClusterView, WorkerRegistration, WorkerView};
pub use job::{
    Acknowledged, ErrorView, JobDefinition, JobList, JobStatus, KafkaProperties, Preview,
    ProgressList, QueryState, ValidateRequest,
};
pub use problem::{AboutBlank, PROBLEM_CONTENT_TYPE, Problem};
pub use progress::{Durations, EventTime, Progress, SinkProgress, SourceProgress, StateOperator};
/// The HTTP status type of [`Problem::new`] (the `http` crate's, as axum's and reqwest's).
pub use reqwest::StatusCode;
