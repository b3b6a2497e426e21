//! The `schedules` table: one column list
//! ([`crate::domain::schedule::SCHEDULE_COLUMNS`]) for every read, the writes of
//! `schedule add|rm|enable|disable`, and the moves of `next_run_at` by `run` and `sync`.

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
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::schedule::{SCHEDULE_COLUMNS, ScheduleRow};

/// Locks the job's schedules (`FOR UPDATE`, in id order) until the transaction ends.
pub async fn lock_of_job(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM schedules WHERE job_id = $1 ORDER BY id FOR UPDATE")
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The job's enabled schedules.
pub async fn enabled_of_job(
    conn: &mut PgConnection,
    job_id: Uuid,
) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE job_id = $1 AND enabled ORDER BY id"
    ))
    .bind(job_id)
    .fetch_all(conn)
    .await
}
