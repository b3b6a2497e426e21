//! The spool: run records kept in the state directory until the database takes them.
//!
//! When `run` cannot reach the database to record a finished backup, it writes the complete
//! record ([`RunRecord`]) to `spool/<start>-<client-run-id>.json` (one file per run, written
//! atomically). The first `run` or `sync` that reaches the database delivers the spool, oldest
//! first, before anything else; `restic-fleet spool deliver` does the same by hand and
//! `restic-fleet spool list` shows what waits. Delivery is exactly once: the record carries the
//! id the client chose when the run started, the database has a unique constraint on it, and
//! the file is removed only after the transaction committed (see [`crate::ops::delivery`]).
//! A record the database refuses for another reason (its job was deleted, say) stays in the
//! spool, is reported, and never blocks the records after it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::exit;
use crate::local::state::{self, StateDir};
use crate::ops::delivery::RunRecord;
use crate::output::printable;

const DIR: &str = "spool";
/// How long delivering one record may take before the database counts as away.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes a finished record to the spool; returns its file.
pub fn write(state: &StateDir, r: &RunRecord) -> anyhow::Result<PathBuf> {
    let dir = state.subdir(DIR)?;
    let name = format!(
        "{}-{}.json",
        r.start_time.format("%Y%m%dT%H%M%S%.6fZ"),
        r.client_run_id
    );
    state::write_atomic(&dir, &name, &serde_json::to_vec_pretty(r)?)
}

/// One file of the spool.
#[derive(Debug)]
pub struct Spooled {
    pub path: PathBuf,
    /// The record, or why the file cannot be read as one.
    pub record: Result<RunRecord, String>,
}

/// The spooled records, oldest first (file names start with the run's start time).
pub fn list(state: &StateDir) -> anyhow::Result<Vec<Spooled>> {
    let dir = state.root().join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read the spool {}: {e}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".json")
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let record = read_record(&path);
            Spooled { path, record }
        })
        .collect())
}

fn read_record(path: &std::path::Path) -> Result<RunRecord, String> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
}

/// What one delivery pass did.
#[derive(Debug, Default, Serialize)]
pub struct DeliveryReport {
    /// Records now in the database (or found there already), with their run ids.
    pub delivered: Vec<DeliveredRun>,
    /// Records left in the spool, with the reason.
    pub kept: Vec<KeptRun>,
    /// Starts of runs still going (spooled because they began without the database).
    pub running: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DeliveredRun {
    pub file: String,
    pub client_run_id: Uuid,
    pub run_id: i32,
    /// False when the database already had it (an earlier delivery ended before removing it).
    pub new_row: bool,
}

#[derive(Debug, Serialize)]
pub struct KeptRun {
    pub file: String,
    pub error: String,
}

/// Delivers every spooled record, oldest first. Stops (with the error) as soon as the database
/// becomes unreachable; other refusals are reported per record and the rest go on.
pub async fn deliver_all(
    conn: &mut PgConnection,
    state: &StateDir,
    device_id: &str,
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let mut stale_started = false;
    for item in list(state)? {
        let file = item.path.display().to_string();
        let mut r = match item.record {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("spool file {file} is not a run record ({e}); it is left there");
                report.kept.push(KeptRun {
                    file,
                    error: format!("not a run record: {e}"),
                });
                continue;
            }
        };
        if r.device_id != device_id {
            report.kept.push(KeptRun {
                file,
                error: format!(
                    "the record belongs to device {:?}, not to this device {device_id:?}",
                    r.device_id
                ),
            });
            continue;
        }
        // The start of a run that began without the database: delivered only once its process
        // is gone (its job lock free), as a `running` row that the reconciliation below closes.
        let _job_lock = if r.status == "running" {
            match crate::local::locks::try_lock_job(state, r.job_id)? {
                Some(lock) => {
                    // Read again under the lock: the run may have finished (and replaced its
                    // start with the finished record) since the spool was listed.
                    match read_record(&item.path) {
                        Ok(now) => r = now,
                        // Gone: that run delivered or removed it itself.
                        Err(_) => continue,
                    }
                    stale_started |= r.status == "running";
                    Some(lock)
                }
                None => {
                    report.running.push(file);
                    continue;
                }
            }
        } else {
            None
        };
        // Bounded per record, not per spool: a long spool still makes progress on a slow link.
        let delivery =
            match tokio::time::timeout(RECORD_TIMEOUT, crate::ops::delivery::deliver(conn, &r))
                .await
            {
                Ok(d) => d,
                Err(_) => Err(anyhow::Error::new(crate::store::db::Unreachable {
                    message: format!(
                        "the database did not take a spooled record within {}s",
                        RECORD_TIMEOUT.as_secs()
                    ),
                })),
            };
        // Behind PgBouncer the delivery is committed before its file goes (a later failure of
        // the same connection must not roll back a record whose file is gone).
        let delivery = match delivery {
            Ok(d) => match crate::store::db::release_pinned(conn).await {
                Ok(()) => crate::store::db::begin_pinned(conn).await.map(|()| d),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match delivery {
            Ok(d) => {
                remove(&item.path);
                tracing::info!(
                    "delivered the spooled record of the {} run of job {} ({:?}) started {} as \
                     run {}{}",
                    r.status,
                    r.job_id,
                    r.job_name,
                    r.start_time.to_rfc3339(),
                    d.run_id,
                    if d.applied {
                        ""
                    } else {
                        " (it was already there)"
                    }
                );
                report.delivered.push(DeliveredRun {
                    file,
                    client_run_id: r.client_run_id,
                    run_id: d.run_id,
                    new_row: d.applied,
                });
            }
            Err(e) if crate::store::db::is_unreachable(&e) => return Err(e),
            Err(e) => {
                tracing::warn!("the spooled record {file} was not accepted: {e:#}; it is kept");
                report.kept.push(KeptRun {
                    file,
                    error: format!("{e:#}"),
                });
            }
        }
    }
    if stale_started {
        let settings = crate::store::settings::load(&mut *conn, device_id).await?;
        crate::ops::reconcile::close_stale_runs(conn, state, device_id, &settings, None, None)
            .await?;
    }
    // Behind PgBouncer nothing is left uncommitted (the reconciliation above included); the
    // connection is left inside a new, empty transaction, as after each record.
    crate::store::db::release_pinned(conn).await?;
    crate::store::db::begin_pinned(conn).await?;
    Ok(report)
}

/// Removes a delivered (or superseded) spool file durably.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                state::sync_dir(dir);
            }
        }
        // Another process delivered it at the same time; the database holds it once.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "delivered {} but could not remove it ({e}); delivering it again changes nothing",
            path.display()
        ),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {
    /// Show the run records waiting in this device's spool (works without the database).
    List(SpoolArgs),
    /// Deliver the spooled run records to the database now, oldest first.
    Deliver(SpoolArgs),
}

#[derive(Debug, clap::Args)]
pub struct SpoolArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A spooled record as `spool list --json` prints it.
#[derive(Debug, Serialize)]
pub struct SpoolEntry {
    pub file: String,
    pub client_run_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub status: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub snapshot_id: Option<String>,
    /// Set when the file cannot be read as a record.
    pub error: Option<String>,
}

/// `restic-fleet spool list|deliver`.
pub async fn run(config_path: &Path, cmd: SpoolCommand) -> anyhow::Result<u8> {
    let config = crate::local::config::load(config_path)?;
    let state = StateDir::for_config(&config);
    match cmd {
        SpoolCommand::List(args) => {
            let entries: Vec<SpoolEntry> = list(&state)?
                .into_iter()
                .map(|s| {
                    let file = s.path.display().to_string();
                    match s.record {
                        Ok(r) => SpoolEntry {
                            file,
                            client_run_id: Some(r.client_run_id),
                            job_id: Some(r.job_id),
                            job_name: Some(r.job_name),
                            status: Some(r.status),
                            start_time: Some(r.start_time),
                            end_time: r.end_time,
                            snapshot_id: r.snapshot_id,
                            error: None,
                        },
                        Err(e) => SpoolEntry {
                            file,
                            client_run_id: None,
                            job_id: None,
                            job_name: None,
                            status: None,
                            start_time: None,
                            end_time: None,
                            snapshot_id: None,
                            error: Some(e),
                        },
                    }
                })
                .collect();
            if args.json {
                crate::output::print_json(&entries)?;
            } else if entries.is_empty() {
                println!(
                    "the spool in {} is empty: every run is in the database",
                    state.root().display()
                );
            } else {
                println!(
                    "{} run record(s) wait in {}:",
                    entries.len(),
                    state.root().join(DIR).display()
                );
                for e in &entries {
                    match &e.error {
                        None => println!(
                            "  {}  {:<9} job {} ({:?}) started {}{}",
                            e.client_run_id.map(|u| u.to_string()).unwrap_or_default(),
                            printable(e.status.as_deref().unwrap_or("?")),
                            e.job_id.map(|u| u.to_string()).unwrap_or_default(),
                            e.job_name.as_deref().unwrap_or(""),
                            e.start_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
                            e.snapshot_id
                                .as_deref()
                                .map(|s| format!(
                                    ", snapshot {}",
                                    printable(crate::domain::text::truncate_str(s, 8))
                                ))
                                .unwrap_or_default()
                        ),
                        Some(err) => {
                            println!("  {}: unreadable ({})", printable(&e.file), printable(err))
                        }
                    }
                }
                println!("deliver them with `restic-fleet spool deliver` (run and sync also do)");
            }
            Ok(exit::SUCCESS)
        }
        SpoolCommand::Deliver(args) => {
            let mut conn = crate::store::db::connect_single(
                &config.database_url,
                crate::store::db::OFFLINE_CONNECT_TIMEOUT,
            )
            .await?;
            let report = deliver_all(&mut conn, &state, &config.device_id).await?;
            // Behind PgBouncer: commits what the delivery left open.
            crate::store::db::release_pinned(&mut conn).await?;
            if args.json {
                crate::output::print_json(&report)?;
            } else {
                println!(
                    "{} record(s) delivered, {} kept in the spool",
                    report.delivered.len(),
                    report.kept.len()
                );
                for k in &report.kept {
                    println!("  kept {}: {}", printable(&k.file), printable(&k.error));
                }
            }
            Ok(if report.kept.is_empty() {
                exit::SUCCESS
            } else {
                exit::FAILED
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::run::TriggeredBy;

    #[test]
    fn records_round_trip_oldest_first_and_a_torn_file_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let job = Uuid::new_v4();
        let mut later = RunRecord::starting(job, "docs", "laptop", TriggeredBy::Schedule);
        let mut earlier = later.clone();
        earlier.client_run_id = Uuid::new_v4();
        earlier.start_time = later.start_time - chrono::Duration::hours(1);
        later.status = "success".into();
        later.snapshot_id = Some("ab".repeat(32));
        write(&state, &later).unwrap();
        write(&state, &earlier).unwrap();
        std::fs::write(dir.path().join("spool/zz-torn.json"), b"{\"client_run").unwrap();
        let items = list(&state).unwrap();
        assert_eq!(items.len(), 3);
        let first = items[0].record.as_ref().unwrap();
        assert_eq!(first.client_run_id, earlier.client_run_id);
        let second = items[1].record.as_ref().unwrap();
        assert_eq!(second.snapshot_id, later.snapshot_id);
        assert_eq!(
            second.start_time, later.start_time,
            "times survive to the microsecond"
        );
        assert!(items[2].record.is_err());
        // Writing the same run again replaces its file (a start replaced by the finished record).
        write(&state, &later).unwrap();
        assert_eq!(list(&state).unwrap().len(), 3);
    }
}
