//! What one device reads of its own configuration: its jobs and their enabled schedules (the
//! seed's client queries). `sync` plans from the enabled jobs; the local copy keeps the disabled
//! ones too, so that an offline `run` refuses them with the same sentence as an online one.

use sqlx::PgConnection;

use crate::jobs::{JOB_COLUMNS, Job};
use crate::schedules::{SCHEDULE_COLUMNS, ScheduleRow};

/// The device's jobs (only the enabled ones with `enabled_jobs_only`) and the enabled
/// schedules of those jobs.
pub(crate) async fn jobs_and_schedules(
    conn: &mut PgConnection,
    device_id: &str,
    enabled_jobs_only: bool,
) -> anyhow::Result<(Vec<Job>, Vec<ScheduleRow>)> {
    let jobs: Vec<Job> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM backup_jobs WHERE device_id = $1 AND (enabled OR NOT $2) \
         ORDER BY name, id"
    ))
    .bind(device_id)
    .bind(enabled_jobs_only)
    .fetch_all(&mut *conn)
    .await?;
    let cols = SCHEDULE_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let schedules: Vec<ScheduleRow> = sqlx::query_as(&format!(
        "SELECT {cols} FROM schedules s JOIN backup_jobs j ON s.job_id = j.id \
         WHERE j.device_id = $1 AND (j.enabled OR NOT $2) AND s.enabled ORDER BY s.id"
    ))
    .bind(device_id)
    .bind(enabled_jobs_only)
    .fetch_all(&mut *conn)
    .await?;
    Ok((jobs, schedules))
}
