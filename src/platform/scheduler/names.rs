//! The names sync gives what it installs, shared by both backends and by catch-up runs. Every
//! name starts with [`PREFIX`] and is built from fixed words and job UUIDs only, never from a
//! job's free-text name, so nothing outside these names is ever changed or removed.

use uuid::Uuid;

/// The prefix of every unit and task sync manages.
pub const PREFIX: &str = "restic-fleet-";
/// The sync timer's units and the sync task.
pub const SYNC: &str = "restic-fleet-sync";
/// The maintenance owner's units and task.
pub const MAINTENANCE: &str = "restic-fleet-maintenance";
/// The prefix of a job's units and task; the job UUID follows.
pub const JOB_PREFIX: &str = "restic-fleet-job-";
/// The systemd template unit of catch-up runs (installed with the sync units).
pub const CATCH_UP_TEMPLATE: &str = "restic-fleet-catchup@.service";
/// The name prefix of the Windows catch-up tasks; the job UUID follows.
pub const CATCH_UP_TASK_PREFIX: &str = "restic-fleet-catchup-";
/// The Task Scheduler folder of every task sync manages.
pub const TASK_FOLDER: &str = "\\restic-fleet\\";

/// A unit/task name derived only from the job UUID (never from its free-text name).
pub fn job_artifact_stem(job: Uuid) -> String {
    format!("{JOB_PREFIX}{job}")
}

/// The job UUID of a job's unit stem or task name (`None` for the sync and maintenance ones).
pub fn job_of(name: &str) -> Option<Uuid> {
    name.strip_prefix(JOB_PREFIX)
        .and_then(|u| Uuid::parse_str(u).ok())
}
