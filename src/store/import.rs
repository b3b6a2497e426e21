//! The Relica import of `relica-migrate`: devices, jobs, schedules and settings written in one
//! transaction with their Relica UUIDs kept.
//!
//! Every function runs on the caller's transaction; rows read to be compared are locked
//! (`FOR UPDATE`) so that the comparison still holds when the row is written.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use uuid::Uuid;

use crate::domain::relica::{PlannedDevice, PlannedJob, PlannedRun};

/// Serialises imports against each other until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('restic-fleet relica-migrate'))")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- settings ----

/// The global (device-less) value of setting `key`, if set.
pub async fn global_setting(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE device_id IS NULL AND key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
}

/// Sets the global value of setting `key` (the value through
/// [`crate::store::settings::stage_value`], out of the statement log).
pub async fn set_global_setting(
    conn: &mut PgConnection,
    key: &str,
    value: &str,
) -> anyhow::Result<()> {
    crate::store::settings::stage_value(conn, value).await?;
    sqlx::query(&format!(
        "INSERT INTO settings (device_id, key, value) SELECT NULL, $1, {} \
         ON CONFLICT (key) WHERE device_id IS NULL \
         DO UPDATE SET value = EXCLUDED.value, updated_at = NOW()",
        crate::store::settings::STAGED_VALUE
    ))
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- devices ----

/// The imported columns of an existing device.
#[derive(sqlx::FromRow)]
pub struct ImportedDevice {
    pub name: String,
    pub platform: String,
    pub metadata: Option<Value>,
}

/// The device with this id, locked until the transaction ends.
pub async fn device_for_update(
    conn: &mut PgConnection,
    id: &str,
) -> sqlx::Result<Option<ImportedDevice>> {
    sqlx::query_as("SELECT name, platform, metadata FROM devices WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// The binds `$1`-`$4` of a planned device: id, name, platform and `metadata`.
fn bind_device<'q>(
    q: Query<'q, Postgres, PgArguments>,
    d: &'q PlannedDevice,
    metadata: Value,
) -> Query<'q, Postgres, PgArguments> {
    q.bind(&d.id).bind(&d.name).bind(&d.platform).bind(metadata)
}

/// Creates the device with `metadata`.
pub async fn insert_device(
    conn: &mut PgConnection,
    d: &PlannedDevice,
    metadata: Value,
) -> sqlx::Result<()> {
    let q =
        sqlx::query("INSERT INTO devices (id, name, platform, metadata) VALUES ($1, $2, $3, $4)");
    bind_device(q, d, metadata).execute(&mut *conn).await?;
    Ok(())
}

/// Sets the device's name and platform and merges `metadata` into its metadata.
pub async fn update_device(
    conn: &mut PgConnection,
    d: &PlannedDevice,
    metadata: Value,
) -> sqlx::Result<()> {
    let q = sqlx::query(
        "UPDATE devices SET name = $2, platform = $3, \
         metadata = COALESCE(metadata, '{}'::jsonb) || $4, updated_at = NOW() WHERE id = $1",
    );
    bind_device(q, d, metadata).execute(&mut *conn).await?;
    Ok(())
}

// ---- jobs ----

/// The imported columns of an existing job.
#[derive(sqlx::FromRow)]
pub struct ImportedJob {
    pub device_id: String,
    pub name: String,
    pub source_paths: Vec<String>,
    pub exclude_patterns: Option<Vec<String>>,
    pub enabled: bool,
    pub origin_name: Option<String>,
    pub origin_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub metadata: Option<Value>,
    pub hook_before: Option<String>,
    pub hook_finally: Option<String>,
    pub hook_before_on_error: String,
}

/// An existing job with its id (see [`jobs_for_update`]).
#[derive(sqlx::FromRow)]
pub struct ImportedJobRow {
    pub id: Uuid,
    #[sqlx(flatten)]
    pub job: ImportedJob,
}

/// The jobs with these ids that exist, locked until the transaction ends: one statement for
/// the whole import instead of one per job.
pub async fn jobs_for_update(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<Vec<ImportedJobRow>> {
    sqlx::query_as(
        "SELECT id, device_id, name, source_paths, exclude_patterns, enabled, origin_name, \
         origin_id, account_id, metadata, hook_before, hook_finally, hook_before_on_error \
         FROM backup_jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
}

/// The jobs holding any of these (device, name) pairs: device, name, id, and whether an
/// import created it.
pub async fn name_holders(
    conn: &mut PgConnection,
    device_ids: &[String],
    names: &[String],
) -> sqlx::Result<Vec<(String, String, Uuid, bool)>> {
    sqlx::query_as(
        "SELECT j.device_id, j.name, j.id, COALESCE(j.metadata ? 'relica_import', false) \
         FROM backup_jobs j JOIN UNNEST($1::text[], $2::text[]) AS p(device_id, name) \
           ON j.device_id = p.device_id AND j.name = p.name",
    )
    .bind(device_ids)
    .bind(names)
    .fetch_all(&mut *conn)
    .await
}

/// Merges `metadata` into the job's metadata, nothing else.
pub async fn merge_job_metadata(
    conn: &mut PgConnection,
    id: Uuid,
    metadata: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backup_jobs SET metadata = COALESCE(metadata, '{}'::jsonb) || $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(metadata)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates the job with the Relica values, or overwrites an existing row with them (its other
/// metadata keys are kept).
pub async fn write_job(conn: &mut PgConnection, j: &PlannedJob, meta: Value) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO backup_jobs (id, device_id, name, source_paths, exclude_patterns, \
         enabled, origin_name, origin_id, account_id, metadata, \
         hook_before, hook_finally, hook_before_on_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (id) DO UPDATE SET device_id = EXCLUDED.device_id, name = EXCLUDED.name, \
         source_paths = EXCLUDED.source_paths, exclude_patterns = EXCLUDED.exclude_patterns, \
         enabled = EXCLUDED.enabled, origin_name = EXCLUDED.origin_name, \
         origin_id = EXCLUDED.origin_id, account_id = EXCLUDED.account_id, \
         metadata = COALESCE(backup_jobs.metadata, '{}'::jsonb) || EXCLUDED.metadata, \
         hook_before = EXCLUDED.hook_before, hook_finally = EXCLUDED.hook_finally, \
         hook_before_on_error = EXCLUDED.hook_before_on_error, \
         updated_at = NOW()",
    )
    .bind(j.id)
    .bind(&j.device_id)
    .bind(&j.name)
    .bind(&j.source_paths)
    .bind(&j.exclude_patterns)
    .bind(j.enabled)
    .bind(&j.origin_name)
    .bind(j.origin_id)
    .bind(j.account_id)
    .bind(meta)
    .bind(&j.hooks.before)
    .bind(&j.hooks.finally)
    .bind(&j.hooks.before_on_error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates new jobs with the Relica values, one statement for them all (`metas` in the same
/// order). Paths travel as JSON arrays: an array of arrays would not unnest row by row.
pub async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: &[&PlannedJob],
    metas: Vec<Value>,
) -> sqlx::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let list = |f: fn(&PlannedJob) -> Value| jobs.iter().map(|j| f(j)).collect::<Vec<Value>>();
    sqlx::query(
        "INSERT INTO backup_jobs (id, device_id, name, source_paths, exclude_patterns, \
         enabled, origin_name, origin_id, account_id, metadata, \
         hook_before, hook_finally, hook_before_on_error) \
         SELECT id, device_id, name, \
           ARRAY(SELECT jsonb_array_elements_text(paths)), \
           ARRAY(SELECT jsonb_array_elements_text(excludes)), \
           enabled, origin_name, origin_id, account_id, metadata, \
           hook_before, hook_finally, hook_before_on_error \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], \
           $6::bool[], $7::text[], $8::uuid[], $9::uuid[], $10::jsonb[], $11::text[], \
           $12::text[], $13::text[]) \
           AS t(id, device_id, name, paths, excludes, enabled, origin_name, origin_id, \
                account_id, metadata, hook_before, hook_finally, hook_before_on_error)",
    )
    .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.device_id.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>())
    .bind(list(|j| Value::from(j.source_paths.clone())))
    .bind(list(|j| Value::from(j.exclude_patterns.clone())))
    .bind(jobs.iter().map(|j| j.enabled).collect::<Vec<_>>())
    .bind(
        jobs.iter()
            .map(|j| j.origin_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(jobs.iter().map(|j| j.origin_id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.account_id).collect::<Vec<_>>())
    .bind(metas)
    .bind(
        jobs.iter()
            .map(|j| j.hooks.before.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        jobs.iter()
            .map(|j| j.hooks.finally.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        jobs.iter()
            .map(|j| j.hooks.before_on_error.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- schedules ----

/// A schedule an import created (`metadata.source = "relica"`).
#[derive(sqlx::FromRow)]
pub struct RelicaSchedule {
    pub id: i32,
    pub job_id: Uuid,
    pub cron_expression: Option<String>,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub metadata: Option<Value>,
}

/// The Relica schedules of these jobs, oldest first, locked until the transaction ends.
pub async fn relica_schedules_of(
    conn: &mut PgConnection,
    jobs: &[Uuid],
) -> sqlx::Result<Vec<RelicaSchedule>> {
    sqlx::query_as(
        "SELECT id, job_id, cron_expression, enabled, last_run_at, next_run_at, metadata \
         FROM schedules WHERE job_id = ANY($1) AND metadata->>'source' = 'relica' \
         ORDER BY id FOR UPDATE",
    )
    .bind(jobs)
    .fetch_all(&mut *conn)
    .await
}

/// An enabled cron schedule to create.
pub struct NewSchedule {
    pub job_id: Uuid,
    pub cron_expression: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub metadata: Value,
}

/// Creates the schedules in one statement; returns their ids in the order given. The ids are
/// taken in row order (`ORDER BY` the input's position), so sorting them restores that order
/// whatever order `RETURNING` reports them in.
pub async fn insert_schedules(
    conn: &mut PgConnection,
    rows: &[NewSchedule],
) -> sqlx::Result<Vec<i32>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<i32> = sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression, enabled, \
         last_run_at, next_run_at, metadata) \
         SELECT job_id, 'cron', cron_expression, true, last_run_at, next_run_at, metadata \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
           $5::jsonb[]) WITH ORDINALITY \
           AS t(job_id, cron_expression, last_run_at, next_run_at, metadata, n) \
         ORDER BY n RETURNING id",
    )
    .bind(rows.iter().map(|r| r.job_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.cron_expression.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.last_run_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.next_run_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Rewrites a Relica schedule's metadata and times, and enables it.
pub async fn update_schedule(
    conn: &mut PgConnection,
    id: i32,
    metadata: &Value,
    last_run_at: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE schedules SET metadata = $2, last_run_at = $3, next_run_at = $4, \
         enabled = true, updated_at = NOW() WHERE id = $1",
    )
    .bind(id)
    .bind(metadata)
    .bind(last_run_at)
    .bind(next_run_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a schedule the Relica file no longer has.
pub async fn delete_schedule(conn: &mut PgConnection, id: i32) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM schedules WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- runs ----

/// Which of these Relica task ids a run already carries (`metadata.relica_task_id`).
pub async fn imported_task_ids(
    conn: &mut PgConnection,
    task_ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT metadata->>'relica_task_id' FROM runs WHERE metadata->>'relica_task_id' = ANY($1)",
    )
    .bind(task_ids)
    .fetch_all(&mut *conn)
    .await
}

/// Records Relica tasks as finished runs, one statement for them all (`durations` already
/// fitted to the column, in the same order).
pub async fn insert_runs(
    conn: &mut PgConnection,
    runs: &[&PlannedRun],
    durations: Vec<Option<i32>>,
) -> sqlx::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, \
         error_message, duration_seconds, metadata) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
           $5::text[], $6::text[], $7::int[], $8::jsonb[])",
    )
    .bind(runs.iter().map(|r| r.job_id).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.device_id.clone()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.start_time).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.end_time).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
    .bind(
        runs.iter()
            .map(|r| r.error_message.clone())
            .collect::<Vec<_>>(),
    )
    .bind(durations)
    .bind(runs.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- retention ----

/// Gives each job its keep-within policy unless it has a policy; returns the jobs that got it.
pub async fn insert_keep_withins(
    conn: &mut PgConnection,
    jobs: Vec<Uuid>,
    keep_within: Vec<String>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "INSERT INTO job_retention (job_id, keep_within) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[]) \
         ON CONFLICT (job_id) DO NOTHING RETURNING job_id",
    )
    .bind(jobs)
    .bind(keep_within)
    .fetch_all(&mut *conn)
    .await
}
