//! The `schedules` table: one column list
//! ([`crate::domain::schedule::SCHEDULE_COLUMNS`]) for every read, the writes of
//! `schedule add|rm|enable|disable`, and the moves of `next_run_at` by `run` and `sync`.

/// The job's enabled schedules, oldest first.
pub async fn enabled_of_job(
    db: impl sqlx::PgExecutor<'_>,
    job_id: uuid::Uuid,
) -> sqlx::Result<Vec<crate::domain::schedule::ScheduleRow>> {
    sqlx::query_as(&format!(
        "SELECT {} FROM schedules WHERE job_id = $1 AND enabled ORDER BY id",
        crate::domain::schedule::SCHEDULE_COLUMNS
    ))
    .bind(job_id)
    .fetch_all(db)
    .await
}
