//! The SQL of maintenance: the jobs whose snapshots are forgotten, and the `maintenance_runs`
//! rows that the owner writes (one per step) and `status` reads.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::health::maintenance::StepHistory;

/// A job as maintenance needs it: whose snapshots (tag and host) and what it is called.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRef {
    pub id: Uuid,
    pub device_id: String,
    pub name: String,
}

/// Every job of the fleet, enabled or not (a disabled job's snapshots still age out).
pub async fn all_jobs(pool: &PgPool) -> anyhow::Result<Vec<JobRef>> {
    Ok(
        sqlx::query_as("SELECT id, device_id, name FROM backup_jobs ORDER BY device_id, name, id")
            .fetch_all(pool)
            .await?,
    )
}

/// Whether this session sees every job (the maintenance owner, an admin, or a role that
/// bypasses row-level security such as a superuser), so that a snapshot whose job it does not
/// see really belongs to no job. `fleet_is_admin()` is false for a superuser when the role
/// backup_admin does not exist (it looks the role up in pg_roles), hence the role's own flags.
pub async fn sees_every_job(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT fleet_is_maintenance_owner() OR fleet_is_admin() \
             OR COALESCE((SELECT rolsuper OR rolbypassrls FROM pg_roles \
                          WHERE rolname = current_user), false)",
    )
    .fetch_one(pool)
    .await?)
}

/// Records the start of a step by this process (`client_version` and `hostname` are the
/// running program's and machine's); returns its row id.
pub async fn start_step(
    pool: &PgPool,
    device_id: &str,
    step: &str,
    client_version: &str,
    hostname: &str,
) -> anyhow::Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO maintenance_runs (device_id, step, status, metadata) \
         VALUES ($1, $2, 'running', $3) RETURNING id",
    )
    .bind(device_id)
    .bind(step)
    .bind(serde_json::json!({
        "client_version": client_version,
        "hostname": hostname,
        "pid": std::process::id(),
    }))
    .fetch_one(pool)
    .await?)
}

/// How a step ended.
#[derive(Debug, Clone, Default)]
pub struct StepEnd {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub snapshots_removed: Option<i32>,
    pub bytes_freed: Option<i64>,
    pub error_message: Option<String>,
    pub output: String,
    pub errors: String,
    pub metadata: Value,
}

pub async fn finish_step(pool: &PgPool, id: i32, end: &StepEnd) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE maintenance_runs SET end_time = NOW(), status = $2, exit_code = $3, \
           snapshots_removed = $4, bytes_freed = $5, error_message = $6, output = $7, \
           errors = $8, metadata = COALESCE(metadata, '{}'::jsonb) || $9 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(if end.success { "success" } else { "failed" })
    .bind(end.exit_code)
    .bind(end.snapshots_removed)
    .bind(end.bytes_freed)
    .bind(&end.error_message)
    .bind(&end.output)
    .bind(&end.errors)
    .bind(&end.metadata)
    .execute(pool)
    .await?;
    Ok(())
}

/// Steps of this device left `running` by a maintain that died are closed as failed.
pub async fn close_stale_steps(pool: &PgPool, device_id: &str) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "UPDATE maintenance_runs SET status = 'failed', end_time = NOW(), \
           error_message = 'the maintain process ended without recording this step' \
         WHERE device_id = $1 AND status = 'running'",
    )
    .bind(device_id)
    .execute(pool)
    .await?
    .rows_affected())
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    step: String,
    success: Option<DateTime<Utc>>,
    status: Option<String>,
    at: Option<DateTime<Utc>>,
    error: Option<String>,
    device: Option<String>,
}

/// The history of `forget`, `prune` and `check`, in that order.
pub async fn step_history(pool: &PgPool) -> anyhow::Result<[StepHistory; 3]> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT s.step, \
           (SELECT max(end_time) FROM maintenance_runs m \
              WHERE m.step = s.step AND m.status = 'success') AS success, \
           l.status, l.end_time AS at, l.error_message AS error, l.device_id AS device \
         FROM unnest(ARRAY['forget', 'prune', 'check']) AS s(step) \
         LEFT JOIN LATERAL (SELECT status, end_time, error_message, device_id \
              FROM maintenance_runs m WHERE m.step = s.step AND m.status <> 'running' \
              ORDER BY start_time DESC, id DESC LIMIT 1) l ON true",
    )
    .fetch_all(pool)
    .await?;
    let mut out: [StepHistory; 3] = Default::default();
    for HistoryRow {
        step,
        success,
        status,
        at,
        error,
        device,
    } in rows
    {
        let i = match step.as_str() {
            "forget" => 0,
            "prune" => 1,
            _ => 2,
        };
        out[i] = StepHistory {
            last_success_at: success,
            last_status: status,
            last_run_at: at,
            last_error: error,
            device_id: device,
        };
    }
    Ok(out)
}

/// The last heartbeat of a device; `None` inside when it was never seen, outer `None` when no
/// such device exists.
pub async fn device_last_seen(
    pool: &PgPool,
    device_id: &str,
) -> anyhow::Result<Option<Option<DateTime<Utc>>>> {
    Ok(
        sqlx::query_scalar("SELECT last_seen FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// The maintenance owner, named by the GLOBAL setting `maintenance_device` only: a per-device
/// row would otherwise let a device believe it is the owner while the rest of the fleet
/// follows another.
pub async fn global_owner<'e>(pool: impl sqlx::PgExecutor<'e>) -> anyhow::Result<Option<String>> {
    let value: Option<String> = sqlx::query_scalar(
        "SELECT value FROM settings WHERE device_id IS NULL AND key = 'maintenance_device'",
    )
    .fetch_optional(pool)
    .await?;
    Ok(value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// What `sync` installs on `device_id`: the maintenance schedule when it is the global owner.
pub async fn timer_schedule<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    settings: &crate::domain::settings::Settings,
    device_id: &str,
) -> anyhow::Result<Option<crate::domain::calendar::CronExpr>> {
    crate::domain::maintenance::schedule_for(
        settings,
        global_owner(pool).await?.as_deref(),
        device_id,
    )
}
