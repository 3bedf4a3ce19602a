//! The driver's paths, written once: route templates (axum's `{id}` syntax) for the driver's
//! router, and the concrete paths clients call.

use std::fmt::Display;

/// `POST`: validates a job's SQL.
pub const VALIDATE: &str = "/v1/jobs/validate";
/// `GET`: the jobs.
pub const JOBS: &str = "/v1/jobs";
/// `PUT`, `GET`, `DELETE`: one job.
pub const JOB: &str = "/v1/jobs/{id}";
/// `GET`: a job's progress.
pub const JOB_PROGRESS: &str = "/v1/jobs/{id}/progress";
/// `GET`: a job's latest output rows.
pub const JOB_PREVIEW: &str = "/v1/jobs/{id}/preview";
/// `GET`: the live workers.
pub const CLUSTER: &str = "/v1/cluster";
/// `PUT`: a worker's registration and heartbeat.
pub const WORKER: &str = "/v1/workers/{id}";

/// `template` with its `{id}` filled in.
pub fn with_id(template: &str, id: impl Display) -> String {
    template.replace("{id}", &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fill_the_templates() {
        assert_eq!(with_id(JOB, "a-1"), "/v1/jobs/a-1");
        assert_eq!(with_id(JOB_PROGRESS, 7), "/v1/jobs/7/progress");
        assert_eq!(with_id(WORKER, 3), "/v1/workers/3");
    }
}
