//! The reads of `report --html` beyond what `status` reads: each job's runs summed up per UTC
//! day, bytes and files added per day (the fleet's, and each device's shown in detail), the
//! devices' versions, every schedule with its creation, the settings, and the newest error of
//! the jobs that need attention. The run history is aggregated by the server and arrives as one
//! row per job (bit masks of days) or device (arrays of days), never one per run.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A successful run with warnings, by the rule of `domain::health::job::run_warnings`: a
/// non-empty `warnings` or `missing_paths` array, or a message starting with `warning:`.
const RUN_WARNED: &str = "(CASE jsonb_typeof(metadata -> 'warnings') \
        WHEN 'array' THEN jsonb_array_length(metadata -> 'warnings') > 0 ELSE false END \
     OR CASE jsonb_typeof(metadata -> 'missing_paths') \
        WHEN 'array' THEN jsonb_array_length(metadata -> 'missing_paths') > 0 ELSE false END \
     OR COALESCE(ltrim(error_message) ILIKE 'warning:%', false))";

/// The runs of one job over up to 63 days of the window (see
/// `domain::health::history::DayMasks`): bit `i` of a mask is day `63 * chunk + i`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobDays {
    pub job_id: Uuid,
    pub chunk: i32,
    pub failed: i64,
    pub warned: i64,
    pub succeeded: i64,
}

/// Each job's days with runs in `[start, end)`, for the given devices (all when `None`), as
/// bit masks: one hash aggregate over the window's runs, one row per job (per 63 days), so the
/// server never sorts or groups per job and day, and a month of 50,000 jobs arrives as 50,000
/// rows of four numbers.
async fn job_days(
    db: &mut sqlx::PgConnection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    devices: Option<&[String]>,
) -> anyhow::Result<Vec<JobDays>> {
    Ok(sqlx::query_as(&format!(
        "SELECT job_id, day / 63 AS chunk, \
                COALESCE(bit_or(1::bigint << (day % 63)) FILTER (WHERE status = 'failed'), 0) \
                  AS failed, \
                COALESCE(bit_or(1::bigint << (day % 63)) \
                  FILTER (WHERE status = 'success' AND {RUN_WARNED}), 0) AS warned, \
                COALESCE(bit_or(1::bigint << (day % 63)) FILTER (WHERE status = 'success'), 0) \
                  AS succeeded \
         FROM (SELECT job_id, status, metadata, error_message, \
                 ((start_time AT TIME ZONE 'UTC')::date - ($1 AT TIME ZONE 'UTC')::date) AS day \
               FROM runs \
               WHERE start_time >= $1 AND start_time < $2 \
                 AND status IN ('success', 'failed') \
                 AND ($3::text[] IS NULL OR device_id = ANY($3))) r \
         GROUP BY job_id, day / 63"
    ))
    .bind(start)
    .bind(end)
    .bind(devices)
    .fetch_all(db)
    .await?)
}

/// What successful runs added per day: for one device, or for the fleet (`device_id` `None`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct GrowthDays {
    pub device_id: Option<String>,
    pub days: Vec<i32>,
    pub bytes: Vec<i64>,
    pub files: Vec<i64>,
}

/// Bytes added and files new or changed per day in `[start, end)`: per device (`per_device`)
/// or for all of them together (`device_id` `None`), over the devices given (all when `None`).
async fn growth_days<'e>(
    db: impl sqlx::PgExecutor<'e>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    devices: Option<&[String]>,
    per_device: bool,
) -> anyhow::Result<Vec<GrowthDays>> {
    let key = if per_device {
        "device_id"
    } else {
        "NULL::text"
    };
    Ok(sqlx::query_as(&format!(
        "SELECT device_id, array_agg(day ORDER BY day) AS days, \
                array_agg(bytes ORDER BY day) AS bytes, array_agg(files ORDER BY day) AS files \
         FROM (SELECT {key} AS device_id, \
                 ((start_time AT TIME ZONE 'UTC')::date - ($1 AT TIME ZONE 'UTC')::date) AS day, \
                 COALESCE(sum(data_added_bytes), 0)::bigint AS bytes, \
                 COALESCE(sum(COALESCE(files_new, 0) + COALESCE(files_changed, 0)), 0)::bigint \
                   AS files \
               FROM runs \
               WHERE start_time >= $1 AND start_time < $2 AND status = 'success' \
                 AND ($3::text[] IS NULL OR device_id = ANY($3)) \
               GROUP BY 1, 2) d \
         GROUP BY device_id"
    ))
    .bind(start)
    .bind(end)
    .bind(devices)
    .fetch_all(db)
    .await?)
}

/// The growth per day of each of `devices` (those the page shows in detail), through the index
/// on `(device_id, start_time)`.
pub(crate) async fn device_growth(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    devices: &[String],
) -> anyhow::Result<Vec<GrowthDays>> {
    growth_days(pool, start, end, Some(devices), true).await
}

/// The run history of `[start, end)` summed up by day: per job ([`JobDays`]) and the growth of
/// all the devices given together ([`GrowthDays`]), in one transaction. Each statement is one
/// parallel hash aggregate over the window's runs.
pub(crate) async fn history(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    devices: Option<&[String]>,
) -> anyhow::Result<(Vec<JobDays>, Option<GrowthDays>)> {
    let mut tx = pool.begin().await?;
    // JIT compilation costs more than these aggregates; the hash aggregate of a month of a
    // large fleet's runs must stay in memory. SET LOCAL ends with the transaction (PgBouncer).
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL work_mem = '128MB'")
        .execute(&mut *tx)
        .await?;
    let jobs = job_days(&mut tx, start, end, devices).await?;
    let growth = growth_days(&mut *tx, start, end, devices, false).await?;
    tx.commit().await?;
    Ok((jobs, growth.into_iter().next()))
}

/// What a device's heartbeat recorded of it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeviceInfo {
    pub id: String,
    pub hostname: Option<String>,
    pub client_version: Option<String>,
    pub restic_version: Option<String>,
}

/// The host name and versions of the given devices (all when `None`).
pub(crate) async fn device_info(
    pool: &PgPool,
    devices: Option<&[String]>,
) -> anyhow::Result<Vec<DeviceInfo>> {
    Ok(sqlx::query_as(
        "SELECT id, hostname, metadata ->> 'client_version' AS client_version, \
                metadata ->> 'restic_version' AS restic_version \
         FROM devices WHERE $1::text[] IS NULL OR id = ANY($1)",
    )
    .bind(devices)
    .fetch_all(pool)
    .await?)
}

/// A schedule, and since when it expects runs: the later of its own and its job's creation.
#[derive(Debug)]
pub(crate) struct ScheduleInfo {
    /// Without `last_run_at` and `next_run_at`, which the report does not show.
    pub row: crate::domain::schedule::ScheduleRow,
    pub since: DateTime<Utc>,
}

// Decoded by position, not by name: 100,000 rows at fleet scale.
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for ScheduleInfo {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            row: crate::domain::schedule::ScheduleRow {
                id: row.try_get(0)?,
                job_id: row.try_get(1)?,
                schedule_type: row.try_get(2)?,
                cron_expression: row.try_get(3)?,
                interval_seconds: row.try_get(4)?,
                enabled: row.try_get(5)?,
                last_run_at: None,
                next_run_at: None,
            },
            since: row.try_get(6)?,
        })
    }
}

/// Every schedule of the given devices' jobs (all when `None`), in no particular order.
pub(crate) async fn schedules(
    pool: &PgPool,
    devices: Option<&[String]>,
) -> anyhow::Result<Vec<ScheduleInfo>> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.job_id, s.schedule_type, s.cron_expression, s.interval_seconds, \
                s.enabled, GREATEST(s.created_at, j.created_at) \
         FROM schedules s JOIN backup_jobs j ON j.id = s.job_id \
         WHERE $1::text[] IS NULL OR j.device_id = ANY($1)",
    )
    .bind(devices)
    .fetch_all(pool)
    .await?)
}

/// The newest failed run of each of `jobs`: `(job, its error message, its start)`.
pub(crate) async fn last_errors(
    pool: &PgPool,
    jobs: &[Uuid],
) -> anyhow::Result<Vec<(Uuid, Option<String>, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT j.id, r.error_message, r.start_time \
         FROM unnest($1::uuid[]) AS j(id) \
         CROSS JOIN LATERAL (SELECT error_message, start_time FROM runs \
                             WHERE job_id = j.id AND status = 'failed' \
                             ORDER BY start_time DESC, id DESC LIMIT 1) r",
    )
    .bind(jobs)
    .fetch_all(pool)
    .await?)
}

/// The global settings (`device_id` `None`) and those of the given devices (all when `None`).
pub(crate) async fn settings(
    pool: &PgPool,
    devices: Option<&[String]>,
) -> anyhow::Result<Vec<(Option<String>, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT device_id, key, value FROM settings \
         WHERE device_id IS NULL OR $1::text[] IS NULL OR device_id = ANY($1) \
         ORDER BY device_id NULLS FIRST, id",
    )
    .bind(devices)
    .fetch_all(pool)
    .await?)
}
