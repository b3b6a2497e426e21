//! What one device reads of its own configuration: its jobs and their enabled schedules (the
//! seed's client queries). `sync` plans from the enabled jobs; the local copy keeps the disabled
//! ones too, so that an offline `run` refuses them with the same sentence as an online one.
//! `sync` also reads when each of its jobs last started a run, to tell a missed run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;
use crate::store::jobs::JOB_COLUMNS;
use crate::store::schedules::SCHEDULE_COLUMNS;

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

/// When each of the device's jobs last started a run (any status), from the trigger-kept
/// `job_run_state` (migration 008): one row per job, however long the run history. (Grouping
/// the device's runs cost a heap page per run: 1,000 pages a sync for 5 jobs with 200 days of
/// daily history.)
pub(crate) async fn last_run_starts(
    conn: &mut PgConnection,
    device_id: &str,
) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.job_id, s.last_run_start FROM job_run_state s \
         JOIN backup_jobs j ON j.id = s.job_id \
         WHERE j.device_id = $1 AND s.last_run_start IS NOT NULL",
    )
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}
