//! Closing runs whose process died, with the right verdict.
//!
//! A `running` row of this device whose job lock ([`crate::local::locks`]) nobody holds belongs to
//! a process that is gone (killed, crashed, power loss). Before it is closed, the spool has been
//! delivered (a record spooled by that process finishes the row itself), and the repository is
//! asked for a snapshot of the job from this device (`--host`, tag `backup:<job>`) taken inside
//! the run's window that no other row claims (the job's repository, as its `repository_url`
//! template gives it, each repository listed once per call): restic may have finished after its parent died.
//! If there is one the run is `success` with that snapshot and a note that it was recovered;
//! otherwise `failed` as before. Either way the row is marked `stale`, so a record of the same
//! run delivered later from a spool still replaces it.

use std::collections::HashMap;
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
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let places = crate::store::jobs::places_of_device(&mut *conn, device_id).await?;
    let mut listings = Listings::default();
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
        // The job's repository as its template gives it; none (a job deleted since, or a URL
        // its values do not fit) closes the run as failed, as without reconciliation.
        let repository = places
            .iter()
            .find(|p| p.id == job_id)
            .and_then(|p| crate::domain::repository::of_job(settings, &p.place()).ok())
            .map(|r| r.url);
        let found = match repository {
            Some(repo) => {
                let window = Window { job_id, start };
                unclaimed_snapshot(conn, settings, device_id, &repo, window, &mut listings).await?
            }
            None => None,
        };
        if close(conn, run_id, found.as_ref()).await? {
            closed.push(run_id);
        }
    }
    Ok(closed)
}

/// The device's snapshots per repository, each listed once (one restic call per repository
/// however many stale runs write to it).
type Listings = HashMap<String, Vec<SnapshotInfo>>;

/// A stale run: its job and when it started.
#[derive(Clone, Copy)]
struct Window {
    job_id: Uuid,
    start: DateTime<Utc>,
}

/// The first snapshot of the job from this device inside the run's window that no run claims.
/// The window ends where the job's next run on this device began.
async fn unclaimed_snapshot(
    conn: &mut PgConnection,
    settings: &Settings,
    device_id: &str,
    repository: &str,
    run: Window,
    listings: &mut Listings,
) -> anyhow::Result<Option<SnapshotInfo>> {
    let Window { job_id, start } = run;
    let until = crate::store::runs::next_start_after(&mut *conn, job_id, device_id, start).await?;
    let until = until.unwrap_or_else(Utc::now);
    if !listings.contains_key(repository) {
        // Behind PgBouncer no server connection is held while restic reads the repository
        // (the update that closes the row is conditional on it still running).
        crate::store::db::release_pinned(conn).await?;
        let listed = device_snapshots(settings, repository, device_id).await;
        crate::store::db::begin_pinned(conn).await?;
        listings.insert(repository.to_string(), listed);
    }
    let tag = format!("backup:{job_id}");
    let slack = chrono::Duration::seconds(5);
    let mut snapshots: Vec<&SnapshotInfo> = listings[repository]
        .iter()
        .filter(|s| s.tags.iter().flatten().any(|t| *t == tag))
        .filter(|s| s.time >= start - slack && s.time <= until)
        .collect();
    snapshots.sort_by_key(|s| s.time);
    for snap in snapshots {
        if !crate::store::runs::snapshot_claimed(&mut *conn, job_id, &snap.id).await? {
            return Ok(Some(snap.clone()));
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

#[derive(Debug, Clone, Deserialize)]
struct SnapshotInfo {
    id: String,
    time: DateTime<Utc>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The snapshots of `device` in `repository`. Empty when the password is not set or the
/// repository cannot be read (the runs are then closed as failed, as without reconciliation).
async fn device_snapshots(
    settings: &Settings,
    repository: &str,
    device: &str,
) -> Vec<SnapshotInfo> {
    let Some(password) = settings.get("repository_password") else {
        return Vec::new();
    };
    let Ok(restic) = which::which("restic") else {
        return Vec::new();
    };
    let mut cmd =
        crate::platform::restic_env::restic_command(&restic, repository, password, settings);
    cmd.args(["snapshots", "--json", "--no-lock"])
        .arg(format!("--host={device}"));
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
    serde_json::from_slice::<Option<Vec<SnapshotInfo>>>(&out.stdout)
        .ok()
        .flatten()
        .unwrap_or_default()
}
