//! The `runs` table: writing a run record (one column list and one bind function for the
//! whole row), closing runs whose process died, and the reads of `runs list|show`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::domain::run_record::RunRecord;

/// The columns a finished run fills in, in the order [`bind_result`] binds them: the same list
/// serves finishing a run's `running` row and inserting a whole row.
const RESULT_COLUMNS: [&str; 17] = [
    "end_time",
    "status",
    "exit_code",
    "error_message",
    "files_new",
    "files_changed",
    "files_unmodified",
    "dirs_new",
    "dirs_changed",
    "dirs_unmodified",
    "data_added_bytes",
    "total_files_processed",
    "total_bytes_processed",
    "duration_seconds",
    "snapshot_id",
    "restic_output",
    "restic_errors",
];

/// Binds the values of [`RESULT_COLUMNS`], in that order, as the next parameters.
fn bind_result<'q>(
    q: QueryScalar<'q, Postgres, i32, PgArguments>,
    r: &'q RunRecord,
) -> QueryScalar<'q, Postgres, i32, PgArguments> {
    q.bind(r.end_time)
        .bind(&r.status)
        .bind(r.exit_code)
        .bind(&r.error_message)
        .bind(r.files_new)
        .bind(r.files_changed)
        .bind(r.files_unmodified)
        .bind(r.dirs_new)
        .bind(r.dirs_changed)
        .bind(r.dirs_unmodified)
        .bind(r.data_added_bytes)
        .bind(r.total_files_processed)
        .bind(r.total_bytes_processed)
        .bind(r.duration_seconds)
        .bind(&r.snapshot_id)
        .bind(&r.restic_output)
        .bind(&r.restic_errors)
}

/// `$first, $first+1, ...`: one parameter per result column.
fn result_params(first: usize) -> impl Iterator<Item = String> {
    (first..first + RESULT_COLUMNS.len()).map(|n| format!("${n}"))
}

/// Finishing a run's row: the result columns are `$2..$18`. Keys a stale close or a
/// reconciliation wrote are dropped: the delivered record is the real one.
static FINISH_RUNNING: LazyLock<String> = LazyLock::new(|| {
    let set: Vec<String> = RESULT_COLUMNS
        .iter()
        .zip(result_params(2))
        .map(|(c, p)| format!("{c} = {p}"))
        .collect();
    format!(
        "UPDATE runs SET {}, \
         metadata = (COALESCE(metadata, '{{}}'::jsonb) - ARRAY['stale', 'recovered', 'note']) \
                    || $19 || CASE WHEN $20 THEN jsonb_build_object('delivered_at', NOW()) \
                                   ELSE '{{}}'::jsonb END \
         WHERE client_run_id = $1 AND device_id = $21 \
           AND (status = 'running' OR metadata->>'stale' = 'true') \
         RETURNING id",
        set.join(", ")
    )
});

/// Inserting a whole row: the result columns are `$5..$21`.
static INSERT_FINISHED: LazyLock<String> = LazyLock::new(|| {
    let params: Vec<String> = result_params(5).collect();
    format!(
        "INSERT INTO runs (client_run_id, job_id, device_id, start_time, {}, triggered_by, \
           metadata) \
         VALUES ($1, $2, $3, $4, {}, $22, \
           $23 || CASE WHEN $24 THEN jsonb_build_object('delivered_at', NOW()) \
                       ELSE '{{}}'::jsonb END) \
         ON CONFLICT (client_run_id) DO NOTHING RETURNING id",
        RESULT_COLUMNS.join(", "),
        params.join(", ")
    )
});

/// Inserts the `running` row of a run that starts; returns the row id.
pub async fn insert_running(conn: &mut PgConnection, r: &RunRecord) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO runs (client_run_id, job_id, device_id, start_time, status, triggered_by, \
         metadata) VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id",
    )
    .bind(r.client_run_id)
    .bind(r.job_id)
    .bind(&r.device_id)
    .bind(r.start_time)
    .bind(&r.triggered_by)
    .bind(&r.metadata)
    .fetch_one(conn)
    .await
}

/// Writes a finished record over the row its run inserted when it started (still `running`,
/// or closed meanwhile as stale); `None` when there is no such row. `offline` adds
/// `delivered_at` to the metadata.
pub async fn finish_running(
    conn: &mut PgConnection,
    r: &RunRecord,
    offline: bool,
) -> sqlx::Result<Option<i32>> {
    bind_result(sqlx::query_scalar(&FINISH_RUNNING).bind(r.client_run_id), r)
        .bind(&r.metadata)
        .bind(offline)
        .bind(&r.device_id)
        .fetch_optional(conn)
        .await
}

/// Inserts a finished record as a whole row unless its `client_run_id` is there already
/// (`None` then). `offline` adds `delivered_at` to the metadata.
pub async fn insert_finished(
    conn: &mut PgConnection,
    r: &RunRecord,
    offline: bool,
) -> sqlx::Result<Option<i32>> {
    let q = sqlx::query_scalar(&INSERT_FINISHED)
        .bind(r.client_run_id)
        .bind(r.job_id)
        .bind(&r.device_id)
        .bind(r.start_time);
    bind_result(q, r)
        .bind(&r.triggered_by)
        .bind(&r.metadata)
        .bind(offline)
        .fetch_optional(conn)
        .await
}

/// Adds the keys of `metadata` to the metadata of a client's run on `device`.
pub async fn merge_metadata(
    conn: &mut PgConnection,
    client_run_id: Uuid,
    device: &str,
    metadata: &serde_json::Value,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE runs SET metadata = COALESCE(metadata, '{}'::jsonb) || $3 \
         WHERE client_run_id = $1 AND device_id = $2",
    )
    .bind(client_run_id)
    .bind(device)
    .bind(metadata)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The id of the row of a client's run.
pub async fn id_of_client_run(conn: &mut PgConnection, client_run_id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT id FROM runs WHERE client_run_id = $1")
        .bind(client_run_id)
        .fetch_one(conn)
        .await
}

/// This device's `running` rows (of `only_job` when given), oldest first: id, job, start.
pub async fn running_of_device(
    conn: &mut PgConnection,
    device_id: &str,
    only_job: Option<Uuid>,
) -> sqlx::Result<Vec<(i32, Uuid, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT id, job_id, start_time FROM runs WHERE device_id = $1 AND status = 'running' \
         AND ($2::uuid IS NULL OR job_id = $2) ORDER BY id",
    )
    .bind(device_id)
    .bind(only_job)
    .fetch_all(conn)
    .await
}

/// When the job's next run on this device after `start` began, if any.
pub async fn next_start_after(
    conn: &mut PgConnection,
    job_id: Uuid,
    device_id: &str,
    start: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(start_time) FROM runs WHERE job_id = $1 AND device_id = $2 \
         AND start_time > $3",
    )
    .bind(job_id)
    .bind(device_id)
    .bind(start)
    .fetch_one(conn)
    .await
}

/// Whether a run of the job already claims this snapshot (by its full id, or by a short id
/// that is a prefix of it).
pub async fn snapshot_claimed(
    conn: &mut PgConnection,
    job_id: Uuid,
    snapshot_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM runs WHERE job_id = $1 AND snapshot_id IS NOT NULL \
         AND snapshot_id <> '' AND (snapshot_id = $2 OR $2 LIKE snapshot_id || '%'))",
    )
    .bind(job_id)
    .bind(snapshot_id)
    .fetch_one(conn)
    .await
}

/// Closes a stale run as `success` with the snapshot found for it, if it is still `running`;
/// returns the rows changed (0 or 1).
pub async fn close_stale_recovered(
    conn: &mut PgConnection,
    run_id: i32,
    snapshot_id: &str,
    note: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE runs SET status = 'success', end_time = NOW(), snapshot_id = $2, \
           duration_seconds = EXTRACT(EPOCH FROM (NOW() - start_time))::INTEGER, \
           metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object( \
             'stale', true, 'recovered', true, 'note', $3::text) \
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(snapshot_id)
    .bind(note)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Closes a stale run as `failed`, if it is still `running`; returns the rows changed (0 or 1).
pub async fn close_stale_failed(conn: &mut PgConnection, run_id: i32) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE runs SET status = 'failed', end_time = NOW(), \
           duration_seconds = EXTRACT(EPOCH FROM (NOW() - start_time))::INTEGER, \
           error_message = 'the restic-fleet process running this backup ended \
without recording a result (killed, crashed or the machine lost power) and no snapshot of it was \
found; closed by a later run or sync', \
           metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('stale', true) \
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .execute(conn)
    .await?
    .rows_affected())
}

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
