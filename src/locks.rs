//! Run exclusion with PostgreSQL advisory locks.
//!
//! A `run` holds, on one dedicated connection for its whole duration, a lock for its job and a
//! lock for one of the device's `max_concurrent_backups` slots. Session-level advisory locks
//! are released by the server when the connection ends, so a killed process can never leave a
//! lock behind, and a `running` row whose job lock is free belongs to a process that is gone
//! (see [`close_stale_runs`]). The connection asks the server for TCP keepalives so that even a
//! machine that lost power is noticed within about two minutes.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const JOB_CLASS: i32 = 0x5246_0001;
const SLOT_CLASS: i32 = 0x5246_0002;

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn job_key(job: Uuid) -> i32 {
    fnv1a(job.as_bytes()) as i32
}

fn slot_key(device_id: &str, slot: u64) -> i32 {
    fnv1a(format!("{device_id}\0{slot}").as_bytes()) as i32
}

/// A dedicated connection that holds advisory locks.
pub struct LockConn {
    conn: PgConnection,
}

impl LockConn {
    pub async fn open(database_url: &str) -> anyhow::Result<Self> {
        let mut conn = crate::db::connect_one(database_url).await?;
        // User-settable: a dead client is detected in ~60 + 3*20 s instead of the OS's 2 hours.
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '60', false), \
                    set_config('tcp_keepalives_interval', '20', false), \
                    set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut conn)
        .await?;
        Ok(Self { conn })
    }

    async fn try_lock(&mut self, class: i32, key: i32) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(class)
            .bind(key)
            .fetch_one(&mut self.conn)
            .await?)
    }

    async fn unlock(&mut self, class: i32, key: i32) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(class)
            .bind(key)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Takes the job's lock; false when another process holds it.
    pub async fn try_lock_job(&mut self, job: Uuid) -> anyhow::Result<bool> {
        self.try_lock(JOB_CLASS, job_key(job)).await
    }

    pub async fn unlock_job(&mut self, job: Uuid) -> anyhow::Result<()> {
        self.unlock(JOB_CLASS, job_key(job)).await
    }

    /// Waits up to `wait` for one of the device's `max` slots; returns the slot taken.
    pub async fn acquire_slot(
        &mut self,
        device_id: &str,
        max: u64,
        wait: Duration,
        mut on_wait: impl FnMut(),
    ) -> anyhow::Result<Option<u64>> {
        let deadline = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX.into()));
        let mut announced = false;
        loop {
            for slot in 0..max.max(1) {
                if self.try_lock(SLOT_CLASS, slot_key(device_id, slot)).await? {
                    return Ok(Some(slot));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if !announced {
                on_wait();
                announced = true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(2))).await;
        }
    }

    pub async fn close(mut self) {
        // i13: behind PgBouncer the lock connection is one transaction: commit it clean.
        crate::db::end_pinned(&mut self.conn).await;
        let _ = self.conn.close().await;
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Closes as failed every `running` run of this device whose job lock nobody holds: the process
/// that started it is gone (killed, crashed, power loss). `own_job` is a job whose lock this
/// connection already holds (its other running rows are stale by definition). Returns the ids.
pub async fn close_stale_runs(
    lock: &mut LockConn,
    device_id: &str,
    own_job: Option<Uuid>,
    exclude_run: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let rows: Vec<(i32, Uuid)> = sqlx::query_as(
        "SELECT id, job_id FROM runs WHERE device_id = $1 AND status = 'running' ORDER BY id",
    )
    .bind(device_id)
    .fetch_all(lock.conn())
    .await?;
    let mut closed = Vec::new();
    for (run_id, job_id) in rows {
        if Some(run_id) == exclude_run {
            continue;
        }
        let ours = Some(job_id) == own_job;
        if !ours && !lock.try_lock_job(job_id).await? {
            continue; // a live process holds it
        }
        // Conditional on still running: a process that finished between our read and our lock
        // has already written its result.
        let done = sqlx::query(
            "UPDATE runs SET status = 'failed', end_time = NOW(), \
               duration_seconds = EXTRACT(EPOCH FROM (NOW() - start_time))::INTEGER, \
               error_message = 'the restic-fleet process running this backup ended without \
recording a result (killed, crashed or the machine lost power); closed by a later run or sync', \
               metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object('stale', true) \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(run_id)
        .execute(lock.conn())
        .await?;
        if !ours {
            lock.unlock_job(job_id).await?;
        }
        if done.rows_affected() > 0 {
            closed.push(run_id);
        }
    }
    Ok(closed)
}
