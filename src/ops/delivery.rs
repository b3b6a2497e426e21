//! Recording runs: the complete run record, written to the database now, or kept in the spool
//! ([`crate::local::spool`]) and delivered from there later by the very same function.
//!
//! A [`RunRecord`] (a plain value, see [`crate::domain::run_record`]) is built here from the
//! clock, the host and restic's outcome: [`RunRecord::starting`], [`RunRecord::finish`] and
//! [`RunRecord::mark_offline`] are inherent methods written in this module because they need
//! what `domain/` may not touch. A run recorded live and one recorded after an outage end up as
//! identical rows (apart from the metadata saying it was recorded offline).
//!
//! [`deliver`] is idempotent on `client_run_id`: it finishes the row the run inserted when it
//! started (still `running`, or closed meanwhile as stale by a later run or sync), else inserts
//! the whole row with `ON CONFLICT (client_run_id) DO NOTHING`. A record delivered twice (a
//! crash between the commit and the removal of its spool file) changes nothing the second
//! time. It needs only what a device role may do: INSERT and UPDATE its own runs, UPDATE
//! `last_run_at`/`next_run_at` of its own schedules, SELECT its settings.
//!
//! [`deliver_all`] delivers the spool, oldest first: `run` and `sync` call it before anything
//! else, and `spool deliver` by hand. Of several records of one run (by `client_run_id`) the
//! one with the later state is delivered, whatever their files' names; a row already final in
//! the database (not `running`, not closed as stale) is never replaced by a spooled record. The file of a record is removed only after its
//! transaction committed. A record the database refuses for another reason (its job was
//! deleted, say) stays in the spool, is reported, and never blocks the records after it.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{SubsecRound, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::domain::calendar::Schedule;
use crate::domain::restic;
use crate::local::spool::{self, Spooled};
use crate::local::state::StateDir;
use crate::ops::backup::execute::Outcome;

pub use crate::domain::run_record::RunRecord;

/// How long delivering one spooled record may take before the database counts as away.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl RunRecord {
    /// The record of a run that starts now (status `running`).
    pub fn starting(
        job_id: Uuid,
        job_name: &str,
        device_id: &str,
        triggered_by: crate::domain::run_record::TriggeredBy,
    ) -> Self {
        Self {
            client_run_id: Uuid::new_v4(),
            job_id,
            job_name: job_name.to_string(),
            device_id: device_id.to_string(),
            // PostgreSQL keeps microseconds: the same instant in the spool, the row and the
            // local last-run note, so they compare equal.
            start_time: Utc::now().trunc_subsecs(6),
            end_time: None,
            status: "running".to_string(),
            exit_code: None,
            error_message: None,
            files_new: None,
            files_changed: None,
            files_unmodified: None,
            dirs_new: None,
            dirs_changed: None,
            dirs_unmodified: None,
            data_added_bytes: None,
            total_files_processed: None,
            total_bytes_processed: None,
            duration_seconds: None,
            snapshot_id: None,
            restic_output: None,
            restic_errors: None,
            triggered_by: triggered_by.as_str().to_string(),
            metadata: json!({
                "client_version": crate::platform::host::VERSION,
                "hostname": crate::platform::host::hostname(),
                "pid": std::process::id(),
            }),
        }
    }

    /// Completes the record with restic's outcome, ending now.
    pub(crate) fn finish(&mut self, o: &Outcome) {
        let end = Utc::now().trunc_subsecs(6).max(self.start_time);
        let clamp = |v: Option<i64>| v.map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
        self.end_time = Some(end);
        self.duration_seconds = Some(
            (end - self.start_time)
                .num_seconds()
                .clamp(0, i64::from(i32::MAX)) as i32,
        );
        self.status = o.status.to_string();
        self.exit_code = o.exit_code;
        self.error_message = o.error_message.clone();
        self.files_new = clamp(o.summary.files_new);
        self.files_changed = clamp(o.summary.files_changed);
        self.files_unmodified = clamp(o.summary.files_unmodified);
        self.dirs_new = clamp(o.summary.dirs_new);
        self.dirs_changed = clamp(o.summary.dirs_changed);
        self.dirs_unmodified = clamp(o.summary.dirs_unmodified);
        self.data_added_bytes = o.summary.data_added;
        self.total_files_processed = clamp(o.summary.total_files_processed);
        self.total_bytes_processed = o.summary.total_bytes_processed;
        self.snapshot_id = o.summary.snapshot_id.clone();
        self.restic_output = Some(o.output.clone());
        self.restic_errors = Some(o.errors.clone());
        self.merge_metadata(json!({
            "warnings": o.warnings,
            "missing_paths": o.missing_paths,
            "incomplete": o.exit_code == Some(restic::code::INCOMPLETE),
            "total_duration": o.summary.total_duration,
        }));
    }

    /// Notes that the record is kept in the spool because the database could not be reached.
    pub fn mark_offline(&mut self, reason: &str) {
        self.merge_metadata(json!({
            "recorded_offline": true,
            "offline_reason": reason,
            "spooled_at": Utc::now(),
        }));
    }
}

/// Inserts the `running` row of a run that starts; returns the row id.
pub async fn insert_running(conn: &mut PgConnection, r: &RunRecord) -> anyhow::Result<i32> {
    Ok(crate::store::runs::insert_running(conn, r).await?)
}

/// Adds keys to the metadata of a recorded run (this device's own row), committed at once.
pub async fn add_metadata(
    conn: &mut PgConnection,
    r: &RunRecord,
    metadata: &serde_json::Value,
) -> anyhow::Result<()> {
    crate::store::runs::merge_metadata(&mut *conn, r.client_run_id, &r.device_id, metadata).await?;
    crate::store::db::release_pinned(&mut *conn).await?;
    Ok(())
}

/// What delivering a record did.
#[derive(Debug)]
pub struct Delivery {
    pub run_id: i32,
    /// False when the database already had this record (delivered before).
    pub applied: bool,
    /// The job's valid enabled schedules, moved on (empty when not applied).
    pub schedules: Vec<Schedule>,
    pub tz: chrono_tz::Tz,
}

/// Writes a finished record, exactly once, and moves the job's schedules on as if the run had
/// been recorded live when it ended. One transaction: all of it or nothing. `tz` is the time
/// zone in force when the run that records itself now resolved its job; `None` (a spooled
/// record, or a run resolved offline) reads the device's settings for it.
pub async fn deliver(
    conn: &mut PgConnection,
    r: &RunRecord,
    tz: Option<chrono_tz::Tz>,
) -> anyhow::Result<Delivery> {
    let mut tx = conn.begin().await?;
    // Lock order: the job's schedules, then (through the triggers on runs) its job_run_state row.
    // `sync` moving a schedule takes the schedule and then, through migration 013's trigger,
    // the same state row; writing the run first would take them in the opposite order and
    // deadlock with it.
    let schedules = crate::store::schedules::lock_of_job(&mut tx, r.job_id).await?;
    let written = write_row(&mut tx, r).await?;
    let tz = match tz {
        Some(tz) => tz,
        // A bad timezone setting must not keep a record out of the database for ever.
        None => crate::store::settings::load(&mut *tx, &r.device_id)
            .await?
            .timezone()
            .unwrap_or_else(|_| crate::domain::settings::local_timezone()),
    };
    let (run_id, applied) = match written {
        Some(id) => (id, true),
        None => (
            crate::store::runs::id_of_client_run(&mut tx, r.client_run_id).await?,
            false,
        ),
    };
    let schedules = if applied {
        let recorded = r.end_time.unwrap_or(r.start_time);
        crate::store::schedules::update_after_run(&mut tx, schedules, r.start_time, recorded, tz)
            .await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(Delivery {
        run_id,
        applied,
        schedules,
        tz,
    })
}

/// Writes the record's row: finishes the row its run started, else inserts the whole row.
/// Returns the row id, or `None` when the database already had this record.
async fn write_row(conn: &mut PgConnection, r: &RunRecord) -> anyhow::Result<Option<i32>> {
    let offline = r.recorded_offline();
    if let Some(id) = crate::store::runs::finish_running(&mut *conn, r, offline).await? {
        return Ok(Some(id));
    }
    Ok(crate::store::runs::insert_finished(conn, r, offline).await?)
}

/// What one delivery pass of the spool did.
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

/// Delivers every spooled run, oldest first: of several records of one run, the one with the
/// later state ([`RunRecord::later_state`]), never the first file. Stops (with the error) as
/// soon as the database becomes unreachable; other refusals are reported per record and the
/// rest go on.
pub async fn deliver_all(
    conn: &mut PgConnection,
    state: &StateDir,
    device_id: &str,
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let mut stale_started = false;
    for run in by_run(spool::list(state)?, device_id, &mut report) {
        // A start of a run that began without the database: delivered only once its process
        // is gone (its job lock free), as a `running` row that the reconciliation below closes.
        let (run, _job_lock) = if run.has_start {
            match claim_start(state, run)? {
                Claim::Gone => continue,
                Claim::Running(file) => {
                    report.running.push(file);
                    continue;
                }
                Claim::Ours(run, lock) => {
                    stale_started |= run.record.status == "running";
                    (*run, Some(lock))
                }
            }
        } else {
            (run, None)
        };
        let file = run.path.display().to_string();
        let delivery = deliver_committed(conn, &run.record).await;
        if let Ok(d) = &delivery {
            spool::remove(&run.path);
            for other in &run.superseded {
                tracing::warn!(
                    "the spool file {} is another record of the run in {file}, which has the \
                     later state; it is removed",
                    other.display()
                );
                spool::remove(other);
            }
            log_delivered(&run.record, d);
        }
        note(&mut report, file, &run.record, delivery)?;
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

/// The spooled records of one run: the one to deliver, and the files of the others (removed
/// once it is delivered).
struct RunFiles {
    path: PathBuf,
    record: RunRecord,
    superseded: Vec<PathBuf>,
    /// One of the records is a start: the run's process may still be going.
    has_start: bool,
}

impl RunFiles {
    fn new(path: PathBuf, record: RunRecord) -> RunFiles {
        RunFiles {
            has_start: record.status == "running",
            path,
            record,
            superseded: Vec::new(),
        }
    }

    /// Adds another record of the same run; the later state is the one delivered.
    fn add(&mut self, path: PathBuf, record: RunRecord) {
        self.has_start |= record.status == "running";
        if record.later_state(&self.record).is_gt() {
            self.superseded
                .push(std::mem::replace(&mut self.path, path));
            self.record = record;
        } else {
            self.superseded.push(path);
        }
    }
}

/// This device's spooled records, one [`RunFiles`] per `client_run_id`, in the order of their
/// first file (oldest first); the other files are noted in `report` and stay.
fn by_run(items: Vec<Spooled>, device_id: &str, report: &mut DeliveryReport) -> Vec<RunFiles> {
    let mut runs: Vec<RunFiles> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for item in items {
        let file = item.path.display().to_string();
        let Some(r) = own_record(&item, &file, device_id, report) else {
            continue;
        };
        match index.get(&r.client_run_id) {
            Some(&i) => runs[i].add(item.path, r),
            None => {
                index.insert(r.client_run_id, runs.len());
                runs.push(RunFiles::new(item.path, r));
            }
        }
    }
    runs
}

/// The record of a spool file when it is one of this device's; otherwise notes in `report`
/// why the file stays.
fn own_record(
    item: &Spooled,
    file: &str,
    device_id: &str,
    report: &mut DeliveryReport,
) -> Option<RunRecord> {
    let r = match &item.record {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("spool file {file} is not a run record ({e}); it is left there");
            report.kept.push(KeptRun {
                file: file.to_string(),
                error: format!("not a run record: {e}"),
            });
            return None;
        }
    };
    if r.device_id != device_id {
        report.kept.push(KeptRun {
            file: file.to_string(),
            error: format!(
                "the record belongs to device {:?}, not to this device {device_id:?}",
                r.device_id
            ),
        });
        return None;
    }
    Some(r.clone())
}

/// Whether a run with a spooled start may be delivered.
enum Claim {
    /// Its process is gone: its records as read again under the job lock, which is held while
    /// they are delivered.
    Ours(Box<RunFiles>, crate::local::locks::FileLock),
    /// Its process still runs (the job lock is held); the file of its start.
    Running(String),
    /// The files went meanwhile: that run delivered or removed them itself.
    Gone,
}

/// Takes the job lock of a run with a spooled start, and reads its records again under it:
/// the run may have finished (and replaced its start with the finished record) since the spool
/// was listed.
fn claim_start(state: &StateDir, run: RunFiles) -> anyhow::Result<Claim> {
    let Some(lock) = crate::local::locks::try_lock_job(state, run.record.job_id)? else {
        return Ok(Claim::Running(run.path.display().to_string()));
    };
    let mut again: Option<RunFiles> = None;
    for path in std::iter::once(run.path).chain(run.superseded) {
        let Ok(r) = spool::read_record(&path) else {
            continue;
        };
        match &mut again {
            Some(run) => run.add(path, r),
            None => again = Some(RunFiles::new(path, r)),
        }
    }
    Ok(match again {
        Some(run) => Claim::Ours(Box::new(run), lock),
        None => Claim::Gone,
    })
}

/// Delivers one spooled record, bounded in time, and commits it (behind PgBouncer) before its
/// file may go: a later failure of the same connection must not roll back a record whose file
/// is gone.
async fn deliver_committed(conn: &mut PgConnection, r: &RunRecord) -> anyhow::Result<Delivery> {
    // Bounded per record, not per spool: a long spool still makes progress on a slow link.
    let d = match tokio::time::timeout(RECORD_TIMEOUT, deliver(conn, r, None)).await {
        Ok(d) => d?,
        Err(_) => {
            return Err(anyhow::Error::new(crate::store::db::Unreachable {
                message: format!(
                    "the database did not take a spooled record within {}s",
                    RECORD_TIMEOUT.as_secs()
                ),
            }));
        }
    };
    crate::store::db::release_pinned(conn).await?;
    crate::store::db::begin_pinned(conn).await?;
    Ok(d)
}

fn log_delivered(r: &RunRecord, d: &Delivery) {
    tracing::info!(
        "delivered the spooled record of the {} run of job {} ({:?}) started {} as run {}{}",
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
}

/// Adds a delivery's result to the report; an unreachable database ends the pass (the error).
fn note(
    report: &mut DeliveryReport,
    file: String,
    r: &RunRecord,
    delivery: anyhow::Result<Delivery>,
) -> anyhow::Result<()> {
    match delivery {
        Ok(d) => report.delivered.push(DeliveredRun {
            file,
            client_run_id: r.client_run_id,
            run_id: d.run_id,
            new_row: d.applied,
        }),
        Err(e) if crate::store::db::is_unreachable(&e) => return Err(e),
        Err(e) => {
            tracing::warn!("the spooled record {file} was not accepted: {e:#}; it is kept");
            report.kept.push(KeptRun {
                file,
                error: format!("{e:#}"),
            });
        }
    }
    Ok(())
}
