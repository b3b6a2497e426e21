//! Fleet-wide reads and batched history maintenance, written to cost O(jobs asked about) and
//! never O(run history): `status` (whole fleet or one device), the newest finished runs
//! `metrics` shows, `cleanup` in batches, and the pending short snapshot ids of one device.
//!
//! Every statement here is safe behind PgBouncer in transaction pooling mode: no session state
//! (a multi-statement read runs in one transaction, settings are changed only for it, with
//! `SET LOCAL` or `set_config(..., true)`).
//! The indexes and the trigger-maintained `job_run_state` table they rely on are in
//! migrations/008_fleet_scale.sql.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub id: String,
    pub name: String,
    pub platform: String,
    pub enabled: bool,
    pub last_seen: Option<DateTime<Utc>>,
    /// The restic-fleet version the device last reported (`metadata.client_version`).
    pub client_version: Option<String>,
}

/// A job with its newest run, newest finished run and newest success, and what its enabled
/// schedules say: all from `job_run_state` (kept by triggers, migrations 008 and 013).
#[derive(Debug)]
pub(crate) struct JobStateRow {
    pub id: Uuid,
    pub device_id: String,
    pub name: String,
    pub enabled: bool,
    pub last_run_id: Option<i32>,
    pub last_run_status: Option<String>,
    pub last_run_start: Option<DateTime<Utc>>,
    pub last_finished_run_id: Option<i32>,
    pub last_finished_status: Option<String>,
    pub last_finished_error: Option<String>,
    pub last_finished_metadata: Option<Value>,
    pub last_success_start: Option<DateTime<Utc>>,
    pub last_success_end: Option<DateTime<Utc>>,
    /// Of the job's enabled schedules: the earliest `next_run_at`, the distinct cron
    /// expressions (sorted, so that jobs with the same schedules share one key), and the
    /// smallest positive interval (what the expected period needs).
    pub next_run_at: Option<DateTime<Utc>>,
    pub crons: Vec<String>,
    pub min_interval: Option<i32>,
}

impl JobStateRow {
    /// Decodes a row of [`StatusRead::jobs`]'s query by position, not by name (16 columns of
    /// 50,000 rows). `checked` checks each column's type against the field's: the types are
    /// those of the result, the same for every row, so checking the first row checks them all,
    /// and the rest skip a check that was a tenth of decoding.
    fn decode(row: &sqlx::postgres::PgRow, checked: bool) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        macro_rules! get {
            ($i:expr) => {
                if checked {
                    row.try_get($i)?
                } else {
                    row.try_get_unchecked($i)?
                }
            };
        }
        Ok(Self {
            id: get!(0),
            device_id: get!(1),
            name: get!(2),
            enabled: get!(3),
            last_run_id: get!(4),
            last_run_status: get!(5),
            last_run_start: get!(6),
            last_finished_run_id: get!(7),
            last_finished_status: get!(8),
            last_finished_error: get!(9),
            last_finished_metadata: get!(10),
            last_success_start: get!(11),
            last_success_end: get!(12),
            next_run_at: get!(13),
            crons: {
                let crons: Option<Vec<String>> = get!(14);
                crons.unwrap_or_default()
            },
            min_interval: get!(15),
        })
    }
}

/// What `status` reads before the jobs, for the whole fleet or one device: the small tables a
/// job's verdict needs (its device, the settings), so that each job can be judged as it arrives.
#[derive(Debug, Default)]
pub(crate) struct FleetHead {
    /// Ordered by id (byte order, whatever the database's collation).
    pub devices: Vec<DeviceRow>,
    /// Jobs with a run in progress.
    pub running: std::collections::HashSet<Uuid>,
    /// The global settings, in the order the seed's query reads them.
    pub global_settings: Vec<(String, String)>,
    /// The per-device settings of those devices.
    pub device_settings: HashMap<String, Vec<(String, String)>>,
    /// The oldest client version that understands the schema (see
    /// [`crate::domain::client_version`]).
    pub min_client_version: Option<String>,
}

/// The last finished run's metadata, sent only when the verdict reads something in it (a
/// non-empty `warnings` or `missing_paths` array, see `domain::health::job::run_warnings`):
/// parsing 50,000 metadata documents that say nothing was most of the client's work.
const WARNING_METADATA: &str = "CASE WHEN \
      CASE jsonb_typeof(s.last_finished_metadata -> 'warnings') \
        WHEN 'array' THEN jsonb_array_length(s.last_finished_metadata -> 'warnings') > 0 \
        ELSE false END \
   OR CASE jsonb_typeof(s.last_finished_metadata -> 'missing_paths') \
        WHEN 'array' THEN jsonb_array_length(s.last_finished_metadata -> 'missing_paths') > 0 \
        ELSE false END \
   THEN s.last_finished_metadata END AS last_finished_metadata";

/// One read of the fleet for `status`, in one transaction: the same six statements whatever
/// the fleet's size, each served by an index or a small table.
/// [`status_read`] returns the head; [`StatusRead::jobs`] then streams the jobs.
pub(crate) struct StatusRead {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    device: Option<String>,
}

/// Begins the read and reads the head (devices, running jobs, settings, minimum client).
pub(crate) async fn status_read(
    pool: &PgPool,
    device: Option<&str>,
) -> anyhow::Result<(FleetHead, StatusRead)> {
    let mut tx = pool.begin().await?;
    // A read of this shape has no use for JIT compilation, which costs more than the query
    // itself once the planner's estimate crosses jit_above_cost; the hash join of 50,000 jobs
    // must stay in memory (the default work_mem is 4 MB). Both only for this transaction (a
    // pooled server connection is left as it was found), in one round trip. (No isolation
    // level is set: behind PgBouncer this transaction is a savepoint, where PostgreSQL refuses
    // it.)
    sqlx::query("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
        .execute(&mut *tx)
        .await?;
    let mut devices: Vec<DeviceRow> = sqlx::query_as(
        "SELECT id, name, platform, enabled, last_seen, \
                metadata ->> 'client_version' AS client_version FROM devices \
         WHERE ($1::text IS NULL OR id = $1)",
    )
    .bind(device)
    .fetch_all(&mut *tx)
    .await?;
    devices.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    // Served by the partial index idx_runs_running: a handful of rows at any time.
    let running: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT r.job_id FROM runs r \
         WHERE r.status = 'running' AND ($1::text IS NULL OR r.job_id IN \
           (SELECT id FROM backup_jobs WHERE device_id = $1))",
    )
    .bind(device)
    .fetch_all(&mut *tx)
    .await?;
    let (global_settings, device_settings) = settings_of(&mut tx, device).await?;
    let min_client_version = crate::store::db::min_client_version(&mut tx).await?;
    let head = FleetHead {
        devices,
        running: running.into_iter().collect(),
        global_settings,
        device_settings,
        min_client_version,
    };
    let read = StatusRead {
        tx,
        device: device.map(str::to_string),
    };
    Ok((head, read))
}

/// All settings at once (globals first, as the seed's per-device query orders them), instead
/// of one query per device: the globals, and each device's own.
async fn settings_of(
    tx: &mut sqlx::PgConnection,
    device: Option<&str>,
) -> anyhow::Result<(
    Vec<(String, String)>,
    HashMap<String, Vec<(String, String)>>,
)> {
    let settings: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT device_id, key, value FROM settings \
         WHERE device_id IS NULL OR $1::text IS NULL OR device_id = $1 \
         ORDER BY device_id NULLS FIRST, id",
    )
    .bind(device)
    .fetch_all(tx)
    .await?;
    let mut global = Vec::new();
    let mut own: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (device_id, key, value) in settings {
        match device_id {
            None => global.push((key, value)),
            Some(d) => own.entry(d).or_default().push((key, value)),
        }
    }
    Ok((global, own))
}

impl StatusRead {
    /// Hands every job to `each` as its row arrives, in no particular order, then ends the
    /// read. Nothing is sorted by the server: sorting 50,000 jobs by two text columns under
    /// the database's collation kept the client waiting 35 ms before the first row, and a job
    /// judged while the next rows are on their way costs no waiting at all.
    pub(crate) async fn jobs(mut self, mut each: impl FnMut(JobStateRow)) -> anyhow::Result<()> {
        let sql = format!(
            "SELECT j.id, j.device_id, j.name, j.enabled, \
                    s.last_run_id, s.last_run_status, s.last_run_start, \
                    s.last_finished_run_id, s.last_finished_status, s.last_finished_error, \
                    {WARNING_METADATA}, s.last_success_start, s.last_success_end, \
                    s.next_run_at, s.cron_expressions, s.min_interval_seconds \
             FROM backup_jobs j LEFT JOIN job_run_state s ON s.job_id = j.id \
             WHERE ($1::text IS NULL OR j.device_id = $1)"
        );
        {
            let mut rows = sqlx::query(&sql)
                .bind(self.device.as_deref())
                .fetch(&mut *self.tx);
            let mut first = true;
            while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
                each(JobStateRow::decode(&row?, first)?);
                first = false;
            }
        }
        self.tx.commit().await?;
        Ok(())
    }
}

/// The instant before which finished runs are deleted, fixed once per `cleanup` so that every
/// batch deletes by the same rule.
pub(crate) async fn cleanup_cutoff(pool: &PgPool, days: i32) -> anyhow::Result<DateTime<Utc>> {
    Ok(
        sqlx::query_scalar("SELECT NOW() - make_interval(days => $1)")
            .bind(days)
            .fetch_one(pool)
            .await?,
    )
}

/// The seed's maintenance rule: finished runs (`success`, `failed`, `cancelled`) that started
/// before the cutoff. A `running` run is never deleted, nor are the rows `job_run_state` points
/// at (a job's newest run, newest finished run and newest success, however old): deleting them
/// would empty the state and turn the job `never_run`, dropping its alerts and never letting a
/// job with a long period be ok. The probe goes through job_run_state's primary key.
const CLEANUP_WHERE: &str = "start_time < $1 AND status IN ('success', 'failed', 'cancelled') \
     AND NOT EXISTS (SELECT 1 FROM job_run_state s WHERE s.job_id = runs.job_id \
       AND runs.id IN (s.last_run_id, s.last_finished_run_id, s.last_success_run_id))";

/// How many runs the rule selects (`cleanup --dry-run`).
pub(crate) async fn cleanup_count(pool: &PgPool, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM runs WHERE {CLEANUP_WHERE}"))
        .bind(cutoff)
        .fetch_one(pool)
        .await?;
    Ok(n.max(0) as u64)
}

/// Deletes at most `limit` of the oldest runs the rule selects, in a transaction of its own
/// (the statement commits alone), found through the start_time index. Returns how many went.
pub(crate) async fn cleanup_batch(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<u64> {
    Ok(sqlx::query(&format!(
        "DELETE FROM runs WHERE id IN \
           (SELECT id FROM runs WHERE {CLEANUP_WHERE} ORDER BY start_time LIMIT $2)"
    ))
    .bind(cutoff)
    .bind(limit)
    .execute(pool)
    .await?
    .rows_affected())
}

/// This device's successful runs of the last `days` days whose snapshot id is still short and
/// not known to be unresolvable (`(run id, short id, job id)`), through
/// idx_runs_snapshot_pending.
pub(crate) async fn pending_snapshot_ids<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    device_id: &str,
    days: i32,
) -> anyhow::Result<Vec<(i32, String, uuid::Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT id, snapshot_id, job_id FROM runs \
         WHERE device_id = $1 AND status = 'success' AND length(snapshot_id) < 64 \
           AND start_time > NOW() - make_interval(days => $2) \
           AND NOT COALESCE(metadata ? 'snapshot_id_unresolved', false) \
         ORDER BY id",
    )
    .bind(device_id)
    .bind(days)
    .fetch_all(pool)
    .await?)
}

/// Stores resolved full snapshot ids (one statement), only over the short id they extend.
pub(crate) async fn store_full_snapshot_ids<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    resolved: &[(i32, String)],
) -> anyhow::Result<()> {
    if resolved.is_empty() {
        return Ok(());
    }
    let (ids, full): (Vec<i32>, Vec<String>) = resolved.iter().cloned().unzip();
    sqlx::query(
        "UPDATE runs r SET snapshot_id = v.full_id \
         FROM unnest($1::int[], $2::text[]) AS v(id, full_id) \
         WHERE r.id = v.id AND length(r.snapshot_id) < 64 \
           AND v.full_id LIKE lower(r.snapshot_id) || '%'",
    )
    .bind(ids)
    .bind(full)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks runs whose short id cannot be resolved, so that no later sync tries again.
pub(crate) async fn mark_snapshot_ids_unresolved<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    runs: &[i32],
) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE runs SET metadata = COALESCE(metadata, '{}'::jsonb) \
           || jsonb_build_object('snapshot_id_unresolved', true) \
         WHERE id = ANY($1)",
    )
    .bind(runs)
    .execute(pool)
    .await?;
    Ok(())
}

/// The figures of a job's newest finished run (`success` or `failed`, as for the verdict).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LastRun {
    pub job_id: Uuid,
    pub status: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub data_added_bytes: Option<i64>,
    pub files_new: Option<i32>,
}

/// Every job's newest finished run (of one device, or the whole fleet), for `metrics`.
pub(crate) async fn last_finished_runs(
    pool: &PgPool,
    device: Option<&str>,
) -> anyhow::Result<Vec<LastRun>> {
    // job_run_state (migration 008, kept by triggers) names each job's newest finished run;
    // its figures come from runs by primary key, so this costs O(jobs) like `status` instead of
    // scanning the run history.
    Ok(sqlx::query_as(
        "SELECT j.id AS job_id, r.status, r.start_time, r.end_time, \
                r.duration_seconds, r.data_added_bytes, r.files_new \
         FROM backup_jobs j \
         JOIN job_run_state s ON s.job_id = j.id \
         JOIN runs r ON r.id = s.last_finished_run_id \
         WHERE $1::text IS NULL OR j.device_id = $1",
    )
    .bind(device)
    .fetch_all(pool)
    .await?)
}
