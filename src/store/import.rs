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

/// Whether a job with this id exists.
pub async fn job_exists(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM backup_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// The job with this id, locked until the transaction ends.
pub async fn job_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ImportedJob>> {
    sqlx::query_as(
        "SELECT device_id, name, source_paths, exclude_patterns, enabled, origin_name, origin_id, \
         account_id, metadata, hook_before, hook_finally, hook_before_on_error \
         FROM backup_jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
}

/// Another job (not `id`) that holds `name` on the device (`UNIQUE (device_id, name)`): its id
/// and whether an import created it.
pub async fn name_holder(
    conn: &mut PgConnection,
    device_id: &str,
    name: &str,
    id: Uuid,
) -> sqlx::Result<Option<(Uuid, bool)>> {
    sqlx::query_as(
        "SELECT id, COALESCE(metadata ? 'relica_import', false) FROM backup_jobs \
         WHERE device_id = $1 AND name = $2 AND id <> $3",
    )
    .bind(device_id)
    .bind(name)
    .bind(id)
    .fetch_optional(&mut *conn)
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

// ---- schedules ----

/// A schedule an import created (`metadata.source = "relica"`).
#[derive(sqlx::FromRow)]
pub struct RelicaSchedule {
    pub id: i32,
    pub cron_expression: Option<String>,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub metadata: Option<Value>,
}

/// The job's Relica schedules, oldest first, locked until the transaction ends.
pub async fn relica_schedules(
    conn: &mut PgConnection,
    job: Uuid,
) -> sqlx::Result<Vec<RelicaSchedule>> {
    sqlx::query_as(
        "SELECT id, cron_expression, enabled, last_run_at, next_run_at, metadata FROM schedules \
         WHERE job_id = $1 AND metadata->>'source' = 'relica' ORDER BY id FOR UPDATE",
    )
    .bind(job)
    .fetch_all(&mut *conn)
    .await
}

/// Creates an enabled cron schedule of the job; returns its id.
pub async fn insert_schedule(
    conn: &mut PgConnection,
    job: Uuid,
    cron_expression: &str,
    last_run_at: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
    metadata: &Value,
) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression, enabled, \
         last_run_at, next_run_at, metadata) \
         VALUES ($1, 'cron', $2, true, $3, $4, $5) RETURNING id",
    )
    .bind(job)
    .bind(cron_expression)
    .bind(last_run_at)
    .bind(next_run_at)
    .bind(metadata)
    .fetch_one(&mut *conn)
    .await
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

/// Records a Relica task as a finished run (`duration_seconds` already fitted to the column).
pub async fn insert_run(
    conn: &mut PgConnection,
    r: &PlannedRun,
    duration_seconds: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, \
         error_message, duration_seconds, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.job_id)
    .bind(&r.device_id)
    .bind(r.start_time)
    .bind(r.end_time)
    .bind(&r.status)
    .bind(&r.error_message)
    .bind(duration_seconds)
    .bind(&r.metadata)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- retention ----

/// Gives the job the policy keep-within `keep_within` unless it has a policy; returns whether
/// it was stored.
pub async fn insert_keep_within(
    conn: &mut PgConnection,
    job: Uuid,
    keep_within: String,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO job_retention (job_id, keep_within) VALUES ($1, $2) \
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job)
    .bind(keep_within)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}
