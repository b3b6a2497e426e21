//! The SQL of maintenance: the jobs whose snapshots are forgotten, and the `maintenance_runs`
//! rows that a repository's maintainer writes (one per step and repository) and `status`
//! reads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::health::maintenance::StepHistory;

/// A job as maintenance needs it: whose snapshots (tag and host), what it is called, and the
/// values its repository URL may be built from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRef {
    pub id: Uuid,
    pub device_id: String,
    pub name: String,
    pub account_id: Option<Uuid>,
    pub origin_name: Option<String>,
}

impl JobRef {
    /// The values a `repository_url` template takes from this job.
    pub fn place(&self) -> crate::domain::repository::JobPlace<'_> {
        crate::domain::repository::JobPlace {
            device_id: &self.device_id,
            job_id: self.id,
            account_id: self.account_id,
            origin_name: self.origin_name.as_deref(),
        }
    }
}

/// Every job this session sees (the maintenance owner: the fleet's; another device: its own),
/// enabled or not (a disabled job's snapshots still age out).
pub async fn all_jobs(pool: &PgPool) -> anyhow::Result<Vec<JobRef>> {
    Ok(sqlx::query_as(
        "SELECT id, device_id, name, account_id, origin_name FROM backup_jobs \
         ORDER BY device_id, name, id",
    )
    .fetch_all(pool)
    .await?)
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

/// Records the start of a step on repository `repository_id` by this process
/// (`client_version` and `hostname` are the running program's and machine's); returns its row
/// id. The database refuses a device that does not maintain the repository.
pub async fn start_step(
    pool: &PgPool,
    device_id: &str,
    repository_id: i32,
    step: &str,
    client_version: &str,
    hostname: &str,
) -> anyhow::Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO maintenance_runs (device_id, repository_id, step, status, metadata) \
         VALUES ($1, $2, $3, 'running', $4) RETURNING id",
    )
    .bind(device_id)
    .bind(repository_id)
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
    repository_id: Option<i32>,
    step: String,
    success: Option<DateTime<Utc>>,
    status: Option<String>,
    at: Option<DateTime<Utc>>,
    error: Option<String>,
    device: Option<String>,
}

/// The history of `forget`, `prune` and `check` (in that order) of every repository this
/// session sees, by repository id; `None` holds the rows written before steps named their
/// repository (the one shared repository of then). One query, two index lookups per
/// repository and step.
pub async fn step_histories(
    pool: &PgPool,
) -> anyhow::Result<BTreeMap<Option<i32>, [StepHistory; 3]>> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "WITH keys AS (SELECT id FROM repositories UNION ALL SELECT NULL::int) \
         SELECT k.id AS repository_id, s.step, \
           (SELECT max(end_time) FROM maintenance_runs m \
              WHERE m.step = s.step AND m.status = 'success' \
                AND (m.repository_id = k.id OR (k.id IS NULL AND m.repository_id IS NULL))) \
             AS success, \
           l.status, l.end_time AS at, l.error_message AS error, l.device_id AS device \
         FROM keys k CROSS JOIN unnest(ARRAY['forget', 'prune', 'check']) AS s(step) \
         LEFT JOIN LATERAL (SELECT status, end_time, error_message, device_id \
              FROM maintenance_runs m WHERE m.step = s.step AND m.status <> 'running' \
                AND (m.repository_id = k.id OR (k.id IS NULL AND m.repository_id IS NULL)) \
              ORDER BY start_time DESC, id DESC LIMIT 1) l ON true",
    )
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<Option<i32>, [StepHistory; 3]> = BTreeMap::new();
    for r in rows {
        if r.status.is_none() && r.success.is_none() {
            continue;
        }
        let i = match r.step.as_str() {
            "forget" => 0,
            "prune" => 1,
            _ => 2,
        };
        out.entry(r.repository_id).or_default()[i] = StepHistory {
            last_success_at: r.success,
            last_status: r.status,
            last_run_at: r.at,
            last_error: r.error,
            device_id: r.device,
        };
    }
    Ok(out)
}

/// The last heartbeat of these devices (those this session sees), by id: the maintainers', not
/// the whole fleet's (10,000 rows read for a handful).
pub async fn devices_last_seen(
    pool: &PgPool,
    ids: &[String],
) -> anyhow::Result<BTreeMap<String, Option<DateTime<Utc>>>> {
    let rows: Vec<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, last_seen FROM devices WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
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

/// What `sync` installs on `device_id`: the maintenance schedule when it maintains a
/// repository (see [`crate::domain::maintenance::schedule_for`]).
pub async fn timer_schedule(
    db: &mut sqlx::PgConnection,
    settings: &crate::domain::settings::Settings,
    device_id: &str,
) -> anyhow::Result<Option<crate::domain::calendar::CronExpr>> {
    let has_jobs: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM backup_jobs WHERE device_id = $1)")
            .bind(device_id)
            .fetch_one(&mut *db)
            .await?;
    crate::domain::maintenance::schedule_for(
        settings,
        global_owner(&mut *db).await?.as_deref(),
        device_id,
        has_jobs,
    )
}

/// Whether this session is no device but may write every row (an admin, or a superuser as in
/// a hand-run or a test): it acts for the device of its config, which the SQL functions that
/// answer by the session's device role cannot know, so it writes the tables itself.
async fn bypasses_roles(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT fleet_current_device() IS NULL AND (fleet_is_admin() \
           OR COALESCE((SELECT rolsuper OR rolbypassrls FROM pg_roles \
                        WHERE rolname = current_user), false))",
    )
    .fetch_one(pool)
    .await?)
}

/// Registers the repository `fingerprint` that this session maintains and returns its id:
/// through `fleet_register_repository` (the database refuses a device that does not maintain
/// it, see [`crate::store::repositories::register`]); a session above the roles (superuser)
/// writes the row itself, with `device_id` as maintainer unless `shared`.
pub async fn register_repository(
    pool: &PgPool,
    fingerprint: &str,
    shared: bool,
    device_id: &str,
) -> anyhow::Result<i32> {
    if !bypasses_roles(pool).await? {
        return crate::store::repositories::register(pool, fingerprint, shared).await;
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO repositories (fingerprint, maintainer_device_id) VALUES ($1, $2) \
         ON CONFLICT (fingerprint) DO UPDATE SET maintainer_device_id = EXCLUDED.maintainer_device_id, \
           updated_at = NOW() \
         RETURNING id",
    )
    .bind(fingerprint)
    .bind((!shared).then_some(device_id))
    .fetch_one(pool)
    .await?)
}

/// The devices with a `repository_url` of their own, whose jobs are in no shared repository
/// (see [`crate::store::repositories::devices_with_own_repository`]; a superuser session reads
/// the settings itself).
pub async fn devices_with_own_repository(
    pool: &PgPool,
) -> anyhow::Result<std::collections::HashSet<String>> {
    if !bypasses_roles(pool).await? {
        return crate::store::repositories::devices_with_own_repository(pool).await;
    }
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT device_id FROM settings \
         WHERE device_id IS NOT NULL AND key = 'repository_url' AND value <> ''",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The settings in force on every device that maintains a repository of its own (the global
/// rows overridden by its own), in three queries.
pub async fn maintainer_settings(
    pool: &PgPool,
) -> anyhow::Result<std::collections::HashMap<String, crate::domain::settings::Settings>> {
    let global: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE device_id IS NULL")
            .fetch_all(pool)
            .await?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT s.device_id, s.key, s.value FROM settings s \
         WHERE s.device_id IN (SELECT maintainer_device_id FROM repositories) \
         ORDER BY s.device_id",
    )
    .fetch_all(pool)
    .await?;
    let mut own: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (d, k, v) in rows {
        own.entry(d).or_default().push((k, v));
    }
    let devices: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT maintainer_device_id FROM repositories \
         WHERE maintainer_device_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    Ok(devices
        .into_iter()
        .map(|d| {
            let mine = own.remove(&d).unwrap_or_default();
            let keys: Vec<String> = mine.iter().map(|(k, _)| k.clone()).collect();
            let pairs = global.iter().cloned().chain(mine);
            let s = crate::domain::settings::Settings::from_pairs(pairs).with_own(&d, keys);
            (d, s)
        })
        .collect())
}
