//! The `schedules` table: one column list ([`SCHEDULE_COLUMNS`]) for every read, the writes of
//! `schedule add|rm|enable|disable`, and the moves of `next_run_at` by `run` and `sync`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::calendar::Schedule;
use crate::domain::schedule::{ScheduleRow, next_run};

/// The columns of [`ScheduleRow`], for `SELECT {SCHEDULE_COLUMNS} FROM schedules`.
pub const SCHEDULE_COLUMNS: &str = "id, job_id, schedule_type, cron_expression, interval_seconds, enabled, last_run_at, next_run_at";

/// After a run that started at `started` and was recorded at `recorded` (now for a live run,
/// the original end for a delivered spooled one): `last_run_at` = the start and `next_run_at`
/// recomputed as of `recorded`, for every enabled schedule of the job (`locked`, as
/// [`lock_of_job`] returned them), unless a later run has already moved it on. Returns the
/// job's valid enabled schedules.
pub async fn update_after_run(
    conn: &mut PgConnection,
    locked: Vec<ScheduleRow>,
    started: DateTime<Utc>,
    recorded: DateTime<Utc>,
    tz: Tz,
) -> anyhow::Result<Vec<Schedule>> {
    let mut parsed = Vec::new();
    for row in locked.into_iter().filter(|r| r.enabled) {
        let next = match row.schedule() {
            Ok(sched) => {
                let next = next_run(&sched, Some(started), recorded, &tz);
                parsed.push(sched);
                next
            }
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        sqlx::query(
            "UPDATE schedules SET last_run_at = $1, next_run_at = $2 \
             WHERE id = $3 AND (last_run_at IS NULL OR last_run_at <= $1)",
        )
        .bind(started)
        .bind(next)
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(parsed)
}

/// Every schedule of the fleet, by id.
pub async fn all(pool: &PgPool) -> anyhow::Result<Vec<ScheduleRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"
    ))
    .fetch_all(pool)
    .await?)
}

/// Every schedule of one job, enabled or not, by id.
pub async fn of_job(pool: &PgPool, job: Uuid) -> anyhow::Result<Vec<ScheduleRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE job_id = $1 ORDER BY id"
    ))
    .bind(job)
    .fetch_all(pool)
    .await?)
}

/// One schedule by id.
pub async fn find(pool: &PgPool, id: i32) -> anyhow::Result<Option<ScheduleRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The ids of the schedules `schedule list` shows (of one job and/or one device's jobs), with
/// their job's name and device, by device, job name and id.
pub async fn listed(
    pool: &PgPool,
    job: Option<Uuid>,
    device: Option<&str>,
) -> anyhow::Result<Vec<(i32, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT s.id, j.name, j.device_id FROM schedules s JOIN backup_jobs j ON j.id = s.job_id \
         WHERE ($1::uuid IS NULL OR s.job_id = $1) AND ($2::text IS NULL OR j.device_id = $2) \
         ORDER BY j.device_id, j.name, s.id",
    )
    .bind(job)
    .bind(device)
    .fetch_all(pool)
    .await?)
}

/// A schedule as `schedule add` writes it: `cron_expression` for `cron`, `interval_seconds`
/// for `interval`.
#[derive(Debug)]
pub struct NewSchedule<'a> {
    pub job_id: Uuid,
    pub schedule_type: &'a str,
    pub cron_expression: Option<String>,
    pub interval_seconds: Option<i32>,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Inserts the schedule; returns its id.
pub async fn insert(pool: &PgPool, s: NewSchedule<'_>) -> anyhow::Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression, interval_seconds, enabled, \
         next_run_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(s.job_id)
    .bind(s.schedule_type)
    .bind(s.cron_expression)
    .bind(s.interval_seconds)
    .bind(s.enabled)
    .bind(s.next_run_at)
    .fetch_one(pool)
    .await?)
}

/// Sets the schedule's next run (recomputed by the caller).
pub async fn set_next_run(
    pool: &PgPool,
    id: i32,
    next: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE schedules SET next_run_at = $2, updated_at = NOW() WHERE id = $1")
        .bind(id)
        .bind(next)
        .execute(pool)
        .await?;
    Ok(())
}

/// Enables or disables the schedule; disabling clears its next run.
pub async fn set_enabled(pool: &PgPool, id: i32, enabled: bool) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE schedules SET enabled = $2, \
         next_run_at = CASE WHEN $2 THEN next_run_at ELSE NULL END, updated_at = NOW() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(enabled)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the schedule.
pub async fn delete(pool: &PgPool, id: i32) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM schedules WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Locks the job's schedules (`FOR UPDATE`, in id order) until the transaction ends, and
/// returns them as locked (enabled or not), so that [`update_after_run`] needs no second read.
pub async fn lock_of_job(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE job_id = $1 ORDER BY id FOR UPDATE"
    ))
    .bind(job_id)
    .fetch_all(conn)
    .await
}

/// The job's enabled schedules, oldest first.
pub async fn enabled_of_job(
    db: impl sqlx::PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE job_id = $1 AND enabled ORDER BY id"
    ))
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Stores the slot `sync` computed for a schedule.
pub async fn store_next_run(
    db: impl sqlx::PgExecutor<'_>,
    id: i32,
    next_run_at: Option<chrono::DateTime<chrono::Utc>>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE schedules SET next_run_at = $1 WHERE id = $2")
        .bind(next_run_at)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
