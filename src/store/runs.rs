//! The `runs` table: writing a run record (one column list and one bind function for the
//! whole row), closing runs whose process died, and the reads of `runs list|show`.

/// How many runs a device has recorded.
pub async fn count_of_device(pool: &sqlx::PgPool, device: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE device_id = $1")
            .bind(device)
            .fetch_one(pool)
            .await?,
    )
}

/// How many runs a job has recorded.
pub async fn count_of_job(pool: &sqlx::PgPool, job: uuid::Uuid) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE job_id = $1")
            .bind(job)
            .fetch_one(pool)
            .await?,
    )
}

/// The last run of a job in `job show --json`: `id`, `status`, `start_time`, `end_time`,
/// `error_message`, `snapshot_id`.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct LastRun {
    pub id: i32,
    pub status: String,
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
    pub error_message: Option<String>,
    pub snapshot_id: Option<String>,
}

/// The job's latest run by start time, if it has one.
pub async fn last_of_job(pool: &sqlx::PgPool, job: uuid::Uuid) -> anyhow::Result<Option<LastRun>> {
    Ok(sqlx::query_as(
        "SELECT id, status, start_time, end_time, error_message, snapshot_id FROM runs \
         WHERE job_id = $1 ORDER BY start_time DESC, id DESC LIMIT 1",
    )
    .bind(job)
    .fetch_optional(pool)
    .await?)
}

/// A run as printed by `runs list --json` (an array, newest first): `id`, `job_id`,
/// `job_name`, `device_id`, `status` (`running`/`success`/`failed`/`cancelled`), `start_time`,
/// `end_time`, `duration_seconds`, `exit_code`, `error_message`, `snapshot_id`,
/// `data_added_bytes`, `files_new`, `files_changed`, `files_unmodified`, `triggered_by`
/// (`schedule`/`manual`/`missed`).
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct RunOut {
    pub id: i32,
    pub job_id: uuid::Uuid,
    pub job_name: String,
    pub device_id: String,
    pub status: String,
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
    pub duration_seconds: Option<i32>,
    pub exit_code: Option<i32>,
    pub error_message: Option<String>,
    pub snapshot_id: Option<String>,
    pub data_added_bytes: Option<i64>,
    pub files_new: Option<i32>,
    pub files_changed: Option<i32>,
    pub files_unmodified: Option<i32>,
    pub triggered_by: Option<String>,
}

/// `runs show --json`: the [`RunOut`] fields plus `dirs_new`, `dirs_changed`,
/// `dirs_unmodified`, `total_files_processed`, `total_bytes_processed`, `restic_output`
/// (restic's stdout as stored), `restic_errors` (its stderr), `metadata` (e.g. `warnings`,
/// `missing_paths`; `hooks` and `pings` as README's Monitoring section says), `created_at`.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct RunDetail {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub run: RunOut,
    pub dirs_new: Option<i32>,
    pub dirs_changed: Option<i32>,
    pub dirs_unmodified: Option<i32>,
    pub total_files_processed: Option<i32>,
    pub total_bytes_processed: Option<i64>,
    pub restic_output: Option<String>,
    pub restic_errors: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The columns of [`RunOut`], over `runs r JOIN backup_jobs j`.
const LISTED_RUN_COLUMNS: &str = "r.id, r.job_id, j.name AS job_name, r.device_id, r.status, r.start_time, \
     r.end_time, r.duration_seconds, r.exit_code, r.error_message, r.snapshot_id, \
     r.data_added_bytes, r.files_new, r.files_changed, r.files_unmodified, r.triggered_by";

/// Which runs `runs list` shows: each `None` filter lets every run through.
#[derive(Debug)]
pub struct RunFilter<'a> {
    pub device: Option<&'a str>,
    pub job: Option<uuid::Uuid>,
    pub status: Option<&'a str>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: i64,
}

/// The runs that pass the filter, newest first, at most `limit`.
pub async fn list(pool: &sqlx::PgPool, f: &RunFilter<'_>) -> anyhow::Result<Vec<RunOut>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {LISTED_RUN_COLUMNS} FROM runs r JOIN backup_jobs j ON j.id = r.job_id \
         WHERE ($1::text IS NULL OR r.device_id = $1) AND ($2::uuid IS NULL OR r.job_id = $2) \
           AND ($3::text IS NULL OR r.status = $3) \
           AND ($4::timestamptz IS NULL OR r.start_time >= $4) \
           AND ($5::timestamptz IS NULL OR r.start_time < $5) \
         ORDER BY r.start_time DESC, r.id DESC LIMIT $6"
    ))
    .bind(f.device)
    .bind(f.job)
    .bind(f.status)
    .bind(f.since)
    .bind(f.until)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

/// One run with the stored restic output.
pub async fn show(pool: &sqlx::PgPool, id: i32) -> anyhow::Result<Option<RunDetail>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {LISTED_RUN_COLUMNS}, r.dirs_new, r.dirs_changed, r.dirs_unmodified, \
         r.total_files_processed, r.total_bytes_processed, r.restic_output, r.restic_errors, \
         r.metadata, r.created_at \
         FROM runs r JOIN backup_jobs j ON j.id = r.job_id WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}
