//! Closing runs whose process died, with the right verdict.
//!
//! A `running` row of this device whose job lock ([`crate::local::locks`]) nobody holds belongs to
//! a process that is gone (killed, crashed, power loss). Before it is closed, the spool has been
//! delivered (a record spooled by that process finishes the row itself), and the repository is
//! asked for a snapshot of the job from this device (`--host`, tag `backup:<job>`) taken inside
//! the run's window that no other row claims: restic may have finished after its parent died.
//! If there is one the run is `success` with that snapshot and a note that it was recovered;
//! otherwise `failed` as before. Either way the row is marked `stale`, so a record of the same
//! run delivered later from a spool still replaces it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::settings::Settings;
use crate::local::state::StateDir;

/// Closes this device's stale runs (of `only_job` when given). `held_job` is a job whose lock
/// the caller holds: its other running rows are stale by definition. Returns the closed ids.
pub async fn close_stale_runs(
    conn: &mut PgConnection,
    state: &StateDir,
    device_id: &str,
    settings: &Settings,
    only_job: Option<Uuid>,
    held_job: Option<Uuid>,
) -> anyhow::Result<Vec<i32>> {
    let rows = crate::store::runs::running_of_device(&mut *conn, device_id, only_job).await?;
    let mut closed = Vec::new();
    for (run_id, job_id, start) in rows {
        // Held while the row is closed, so no new run of the job starts in between.
        let _lock = if Some(job_id) == held_job {
            None
        } else {
            match crate::local::locks::try_lock_job(state, job_id)? {
                Some(lock) => Some(lock),
                None => continue, // a live process runs it
            }
        };
        let found = unclaimed_snapshot(conn, settings, device_id, job_id, start).await?;
        if close(conn, run_id, found.as_ref()).await? {
            closed.push(run_id);
        }
    }
    Ok(closed)
}

/// The first snapshot of the job from this device inside the run's window that no run claims.
/// The window ends where the job's next run on this device began.
async fn unclaimed_snapshot(
    conn: &mut PgConnection,
    settings: &Settings,
    device_id: &str,
    job_id: Uuid,
    start: DateTime<Utc>,
) -> anyhow::Result<Option<SnapshotInfo>> {
    let until = crate::store::runs::next_start_after(&mut *conn, job_id, device_id, start).await?;
    let until = until.unwrap_or_else(Utc::now);
    // Behind PgBouncer no server connection is held while restic reads the repository
    // (the update that closes the row is conditional on it still running).
    crate::store::db::release_pinned(conn).await?;
    let snapshots = snapshots_in_window(settings, device_id, job_id, start, until).await;
    crate::store::db::begin_pinned(conn).await?;
    for snap in snapshots {
        if !crate::store::runs::snapshot_claimed(&mut *conn, job_id, &snap.id).await? {
            return Ok(Some(snap));
        }
    }
    Ok(None)
}

/// Closes the run as `success` with the snapshot `found`, else as `failed`. Conditional on
/// still running: a process that finished between our read and our lock has already written
/// its result. Returns whether this closed it.
async fn close(
    conn: &mut PgConnection,
    run_id: i32,
    found: Option<&SnapshotInfo>,
) -> anyhow::Result<bool> {
    let done = match found {
        Some(snap) => {
            let note = format!(
                "recovered: the restic-fleet process running this backup ended without \
                 recording a result, but snapshot {} of this job from this device, taken \
                 at {}, lies in the run's window; closed by a later run or sync",
                snap.id,
                snap.time.to_rfc3339()
            );
            crate::store::runs::close_stale_recovered(&mut *conn, run_id, &snap.id, &note).await?
        }
        None => crate::store::runs::close_stale_failed(&mut *conn, run_id).await?,
    };
    if done == 0 {
        return Ok(false);
    }
    match found {
        Some(s) => tracing::warn!(
            "closed stale run {run_id} as success: its process is gone but snapshot {} \
             was found",
            crate::domain::text::truncate_str(&s.id, 8)
        ),
        None => tracing::warn!("closed stale run {run_id} as failed: its process no longer exists"),
    }
    Ok(true)
}

#[derive(Debug, Deserialize)]
struct SnapshotInfo {
    id: String,
    time: DateTime<Utc>,
}

/// Snapshots of `job` from `device` taken between `from` (less a little clock slack) and
/// `until`, oldest first. Empty when the repository is not configured or cannot be read (the
/// run is then closed as failed, as without reconciliation).
async fn snapshots_in_window(
    settings: &Settings,
    device: &str,
    job: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<SnapshotInfo> {
    let (Some(repository), Some(password)) = (
        settings.get("repository_url"),
        settings.get("repository_password"),
    ) else {
        return Vec::new();
    };
    let Ok(restic) = which::which("restic") else {
        return Vec::new();
    };
    let mut cmd =
        crate::platform::restic_env::restic_command(&restic, repository, password, settings);
    cmd.args(["snapshots", "--json", "--no-lock"])
        .arg(format!("--host={device}"))
        .arg(format!("--tag=backup:{job}"));
    let out = match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => out,
        Ok(Ok(out)) => {
            tracing::warn!(
                "could not look for a snapshot of a stale run: {}",
                crate::platform::restic_env::redact_secrets(
                    String::from_utf8_lossy(&out.stderr).trim(),
                    password,
                    settings
                )
            );
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let mut snaps: Vec<SnapshotInfo> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let slack = chrono::Duration::seconds(5);
    snaps.retain(|s| s.time >= from - slack && s.time <= until);
    snaps.sort_by_key(|s| s.time);
    snaps
}
