//! The `backup_jobs` table and the ping URLs of `job_ping_urls`: one column list
//! ([`JOB_COLUMNS`]) for every read, and the writes of `job add|edit|rm`.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::job::Job;
use crate::usage_err;

/// The columns of [`Job`], for `SELECT {JOB_COLUMNS} FROM backup_jobs` (the table unaliased).
/// The ping URL comes from `job_ping_urls` (migration 012), whose policy shows it only to admins
/// and to the job's own device: for everyone else (viewers, the maintenance owner reading
/// another device's job) it reads as NULL, as if the job had none.
pub const JOB_COLUMNS: &str = "id, device_id, name, description, source_paths, exclude_patterns, \
     tags, restic_args, enabled, created_at, updated_at, metadata, origin_name, origin_id, account_id, \
     (SELECT p.ping_url FROM job_ping_urls p WHERE p.job_id = backup_jobs.id) AS ping_url, \
     hook_before, hook_after, hook_failure, hook_finally, hook_before_on_error";

pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> anyhow::Result<Option<Job>> {
    Ok(sqlx::query_as::<_, Job>(&format!(
        "SELECT {JOB_COLUMNS} FROM backup_jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A job with whether a device is enabled (`None`: no such device), read together.
#[derive(Debug, sqlx::FromRow)]
pub struct JobAndDevice {
    #[sqlx(flatten)]
    pub job: Job,
    pub device_enabled: Option<bool>,
}

/// The job, and whether `device` is enabled, in one statement: `run` asks both before every
/// backup, and each statement is two round trips.
pub async fn find_with_device<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    device: &str,
) -> anyhow::Result<Option<JobAndDevice>> {
    Ok(sqlx::query_as::<_, JobAndDevice>(&format!(
        "SELECT {JOB_COLUMNS}, (SELECT d.enabled FROM devices d WHERE d.id = $2) AS device_enabled \
         FROM backup_jobs WHERE backup_jobs.id = $1"
    ))
    .bind(id)
    .bind(device)
    .fetch_optional(db)
    .await?)
}

/// The jobs a bare `NAME` or a `DEVICE/NAME` may mean, by device and name.
pub async fn named(conn: &mut PgConnection, text: &str) -> anyhow::Result<Vec<Job>> {
    Ok(sqlx::query_as::<_, Job>(&format!(
        "SELECT {JOB_COLUMNS} FROM backup_jobs WHERE name = $1 \
         OR (strpos($1, '/') > 0 AND device_id = split_part($1, '/', 1) \
             AND name = substr($1, strpos($1, '/') + 1)) \
         ORDER BY device_id, name"
    ))
    .bind(text)
    .fetch_all(&mut *conn)
    .await?)
}

/// Finds the job a user named on the command line: its UUID, `DEVICE/NAME`, or a `NAME`
/// (chosen among the candidates by [`crate::domain::job::pick_named`], which says how).
/// Every command that takes a job resolves it here.
pub async fn resolve(
    conn: &mut PgConnection,
    text: &str,
    local_device: Option<&str>,
) -> anyhow::Result<Job> {
    let text = text.trim();
    if let Ok(id) = Uuid::parse_str(text) {
        return find(&mut *conn, id).await?.ok_or_else(|| {
            usage_err!("no backup job with id {id} exists; list jobs with `restic-fleet job list`")
        });
    }
    if text.is_empty() {
        return Err(usage_err!(
            "the job is empty; give its UUID or its name (DEVICE/NAME from an admin machine)"
        ));
    }
    let candidates = named(conn, text).await?;
    crate::domain::job::pick_named(text, candidates, local_device)
}

/// Every job, or the jobs of one device, by device and name.
pub async fn list(pool: &PgPool, device: Option<&str>) -> anyhow::Result<Vec<Job>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM backup_jobs WHERE ($1::text IS NULL OR device_id = $1) \
         ORDER BY device_id, name"
    ))
    .bind(device)
    .fetch_all(pool)
    .await?)
}

/// Another job of `device` already called `name` (other than `except`), if any.
pub async fn name_taken(
    pool: &PgPool,
    device: &str,
    name: &str,
    except: Option<Uuid>,
) -> anyhow::Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM backup_jobs WHERE device_id = $1 AND name = $2 AND ($3::uuid IS NULL OR id <> $3)",
    )
    .bind(device)
    .bind(name)
    .bind(except)
    .fetch_optional(pool)
    .await?)
}

/// A job as `job add` writes it (the other columns take their defaults).
#[derive(Debug)]
pub struct NewJob<'a> {
    /// `None`: the database picks a new UUID.
    pub id: Option<Uuid>,
    pub device_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub source_paths: &'a [String],
    pub exclude_patterns: Option<Vec<String>>,
    pub restic_args: &'a Value,
    pub enabled: bool,
    pub origin_name: Option<&'a str>,
    pub account_id: Option<Uuid>,
}

/// Inserts the job; returns its id. A taken name or id is a unique violation (23505) for the
/// caller to explain.
pub async fn insert(pool: &PgPool, j: NewJob<'_>) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO backup_jobs (id, device_id, name, description, source_paths, exclude_patterns, \
         restic_args, enabled, origin_name, account_id) \
         VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(j.id)
    .bind(j.device_id)
    .bind(j.name)
    .bind(j.description)
    .bind(j.source_paths)
    .bind(j.exclude_patterns)
    .bind(j.restic_args)
    .bind(j.enabled)
    .bind(j.origin_name)
    .bind(j.account_id)
    .fetch_one(pool)
    .await
}

/// What `job edit` changes: name and device always (the current ones when not given); `None`
/// leaves a column alone, `Some(None)` clears it, and an empty description or origin name
/// clears that column.
#[derive(Debug)]
pub struct JobEdit<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub device_id: &'a str,
    pub source_paths: Option<Vec<String>>,
    pub exclude_patterns: Option<Option<Vec<String>>>,
    pub restic_args: Option<Value>,
    pub description: Option<&'a str>,
    pub origin_name: Option<&'a str>,
    pub account_id: Option<Option<Uuid>>,
}

/// Updates the job's columns; a name taken on the device is a unique violation (23505) for the
/// caller to explain.
pub async fn update(pool: &PgPool, e: JobEdit<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE backup_jobs SET \
           name = $2, device_id = $3, \
           source_paths = COALESCE($4, source_paths), \
           exclude_patterns = CASE WHEN $5 THEN $6 ELSE exclude_patterns END, \
           restic_args = COALESCE($7, restic_args), \
           description = CASE WHEN $8::text IS NULL THEN description ELSE NULLIF($8, '') END, \
           origin_name = CASE WHEN $9::text IS NULL THEN origin_name ELSE NULLIF($9, '') END, \
           account_id = CASE WHEN $10 THEN $11 ELSE account_id END, \
           updated_at = NOW() \
         WHERE id = $1",
    )
    .bind(e.id)
    .bind(e.name)
    .bind(e.device_id)
    .bind(e.source_paths)
    .bind(e.exclude_patterns.is_some())
    .bind(e.exclude_patterns.flatten())
    .bind(e.restic_args)
    .bind(e.description)
    .bind(e.origin_name)
    .bind(e.account_id.is_some())
    .bind(e.account_id.flatten())
    .execute(pool)
    .await?;
    Ok(())
}

/// A column change: `None` leaves the column alone, `Some(None)` clears it.
pub type Change = Option<Option<String>>;

/// Writes hooks (before, after, failure, finally), the before hook's error rule and the ping
/// URL of a job, in one transaction. The ping URL lives in `job_ping_urls` (migration 012:
/// readable only by admins and the job's own device); the hooks are columns of `backup_jobs`,
/// whose `updated_at` moves for either.
pub async fn set_hooks_and_ping_url(
    pool: &PgPool,
    job: Uuid,
    hooks: &[Change; 4],
    on_error: Option<&str>,
    ping_url: &Change,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let h = hooks;
    sqlx::query(
        "UPDATE backup_jobs SET \
           hook_before = CASE WHEN $2 THEN $3 ELSE hook_before END, \
           hook_after = CASE WHEN $4 THEN $5 ELSE hook_after END, \
           hook_failure = CASE WHEN $6 THEN $7 ELSE hook_failure END, \
           hook_finally = CASE WHEN $8 THEN $9 ELSE hook_finally END, \
           hook_before_on_error = COALESCE($10, hook_before_on_error), \
           updated_at = NOW() \
         WHERE id = $1",
    )
    .bind(job)
    .bind(h[0].is_some())
    .bind(h[0].clone().flatten())
    .bind(h[1].is_some())
    .bind(h[1].clone().flatten())
    .bind(h[2].is_some())
    .bind(h[2].clone().flatten())
    .bind(h[3].is_some())
    .bind(h[3].clone().flatten())
    .bind(on_error)
    .execute(&mut *tx)
    .await?;
    match ping_url {
        None => {}
        Some(Some(url)) => {
            // A bearer secret: handed over as COPY data, out of the statement log.
            crate::store::settings::stage_value(&mut tx, url).await?;
            sqlx::query(&format!(
                "INSERT INTO job_ping_urls (job_id, ping_url) SELECT $1, {} \
                 ON CONFLICT (job_id) DO UPDATE SET ping_url = EXCLUDED.ping_url, updated_at = NOW()",
                crate::store::settings::STAGED_VALUE
            ))
            .bind(job)
            .execute(&mut *tx)
            .await?;
        }
        Some(None) => {
            sqlx::query("DELETE FROM job_ping_urls WHERE job_id = $1")
                .bind(job)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Enables or disables the job; returns the rows changed (0: no such job).
pub async fn set_enabled(pool: &PgPool, id: Uuid, enabled: bool) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("UPDATE backup_jobs SET enabled = $2, updated_at = NOW() WHERE id = $1")
            .bind(id)
            .bind(enabled)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Deletes the job (its schedules and runs go with it by the foreign keys).
pub async fn delete(pool: &PgPool, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM backup_jobs WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The job's name and device, for a line about one of its schedules.
pub async fn name_and_device(pool: &PgPool, id: Uuid) -> anyhow::Result<(String, String)> {
    Ok(
        sqlx::query_as("SELECT name, device_id FROM backup_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// A job line of `device show --json`: `id`, `name`, `enabled`, `source_paths`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeviceJob {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
    pub source_paths: Vec<String>,
}

/// The jobs of one device, by name (`device show`).
pub async fn of_device(pool: &PgPool, device: &str) -> anyhow::Result<Vec<DeviceJob>> {
    Ok(sqlx::query_as(
        "SELECT id, name, enabled, source_paths FROM backup_jobs WHERE device_id = $1 ORDER BY name",
    )
    .bind(device)
    .fetch_all(pool)
    .await?)
}

/// Every job's `(id, device_id, name)`, for naming the jobs of snapshots.
pub async fn names(
    db: impl sqlx::PgExecutor<'_>,
) -> sqlx::Result<Vec<(uuid::Uuid, String, String)>> {
    sqlx::query_as("SELECT id, device_id, name FROM backup_jobs")
        .fetch_all(db)
        .await
}

/// What a `repository_url` template may use of one job (see
/// [`crate::domain::repository::JobPlace`]), owned.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlaceRow {
    pub id: Uuid,
    pub device_id: String,
    pub account_id: Option<Uuid>,
    pub origin_name: Option<String>,
}

impl PlaceRow {
    pub fn place(&self) -> crate::domain::repository::JobPlace<'_> {
        crate::domain::repository::JobPlace {
            device_id: &self.device_id,
            job_id: self.id,
            account_id: self.account_id,
            origin_name: self.origin_name.as_deref(),
        }
    }
}

/// The template values of every job of `device` (disabled ones too: their snapshots stay).
pub async fn places_of_device(
    db: impl PgExecutor<'_>,
    device: &str,
) -> sqlx::Result<Vec<PlaceRow>> {
    sqlx::query_as(
        "SELECT id, device_id, account_id, origin_name FROM backup_jobs WHERE device_id = $1 \
         ORDER BY id",
    )
    .bind(device)
    .fetch_all(db)
    .await
}

/// The template values of every job of the fleet (the `repository_url` layout check).
pub async fn all_places(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<PlaceRow>> {
    sqlx::query_as(
        "SELECT id, device_id, account_id, origin_name FROM backup_jobs ORDER BY device_id, id",
    )
    .fetch_all(db)
    .await
}
