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
