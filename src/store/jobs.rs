//! The `backup_jobs` table and the ping URLs of `job_ping_urls`: one column list
//! ([`crate::domain::job::JOB_COLUMNS`]) for every read, and the writes of `job add|edit|rm`.

/// Every job's `(id, device_id, name)`, for naming the jobs of snapshots.
pub async fn names(
    db: impl sqlx::PgExecutor<'_>,
) -> sqlx::Result<Vec<(uuid::Uuid, String, String)>> {
    sqlx::query_as("SELECT id, device_id, name FROM backup_jobs")
        .fetch_all(db)
        .await
}
