//! `restic-fleet sync`: keep this device's scheduler in step with the database.
//!
//! The steps are the same on every OS: heartbeat, close stale runs, load the device's jobs and
//! schedules, store `next_run_at`, detect missed slots, render the scheduler artifacts, and
//! reconcile them with what is installed. Only rendering and installing differ: a [`Backend`]
//! (systemd timers, Windows Task Scheduler tasks) does those.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::calendar::Schedule;
use crate::domain::exit;
use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;
use crate::domain::settings::Settings;
use crate::local::config::Config;
use crate::local::state::StateDir;
use crate::output::printable;
use crate::platform::scheduler::plan::{JobPlan, Plan, SlotState};
use crate::usage_err;

/// One installable unit of a backend: a job's timer+service pair, a task XML, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Stable name derived from the job UUID (e.g. `restic-fleet-job-<uuid>`).
    pub name: String,
    pub job_id: Option<Uuid>,
    /// Human label (the job name) for reports.
    pub label: String,
    /// File name -> exact content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// What reconciling desired and installed artifacts asks for.
#[derive(Debug, Default)]
pub struct Changes {
    pub add: Vec<Artifact>,
    pub update: Vec<Artifact>,
    /// Installed artifacts nothing in the database wants any more.
    pub remove: Vec<Artifact>,
    pub unchanged: Vec<Artifact>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// The name of the maintenance owner's artifact (systemd units and Windows task alike).
const MAINTENANCE_ARTIFACT: &str = crate::platform::scheduler::systemd::MAINTENANCE_STEM;

/// Compares by name and exact file contents.
pub fn reconcile(desired: Vec<Artifact>, installed: Vec<Artifact>) -> Changes {
    let mut installed: BTreeMap<String, Artifact> =
        installed.into_iter().map(|a| (a.name.clone(), a)).collect();
    let mut changes = Changes::default();
    for want in desired {
        match installed.remove(&want.name) {
            None => changes.add.push(want),
            Some(have) if have.files == want.files => changes.unchanged.push(want),
            Some(_) => changes.update.push(want),
        }
    }
    changes.remove = installed.into_values().collect();
    changes
}

/// A scheduler backend.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Reads backend-specific settings and paths once the plan is known (default: nothing).
    fn configure(&mut self, _settings: &Settings, _plan: &Plan) -> anyhow::Result<()> {
        Ok(())
    }
    /// The artifacts the plan asks for.
    fn render(&self, plan: &Plan) -> anyhow::Result<Vec<Artifact>>;
    /// The managed artifacts installed now.
    fn installed(&self) -> anyhow::Result<Vec<Artifact>>;
    /// Installs, updates and removes; records commands, warnings and failures in `report`.
    fn apply(&mut self, changes: &Changes, report: &mut Report) -> anyhow::Result<()>;
    /// i14: starts a catch-up run of `job` through the OS scheduler (see [`catch_up`]); the
    /// default starts it directly.
    fn start_catch_up(
        &mut self,
        plan: &Plan,
        job: Uuid,
        _wait: bool,
        _report: &mut Report,
    ) -> Result<crate::platform::scheduler::catch_up::CatchUp, String> {
        crate::platform::scheduler::catch_up::spawn_direct(plan, job).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Systemd,
    Windows,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Show what would change; write nothing (no files, no database updates, no runs).
    #[arg(long)]
    pub dry_run: bool,
    /// Report missed runs but start no catch-up backup.
    #[arg(long)]
    pub no_catch_up: bool,
    /// Wait for catch-up backups to finish (default: they run on in the background).
    #[arg(long)]
    pub wait: bool,
    /// Unit directory (default: /etc/systemd/system as root, ~/.config/systemd/user otherwise).
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Scheduler backend (default: systemd on Linux, windows on Windows).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// With `--backend windows --dry-run`: write the task XML files and the schtasks command
    /// lines here instead of registering anything.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// One artifact in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub files: Vec<String>,
}

/// A missed slot and what sync did about it.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub job_id: Uuid,
    pub job_name: String,
    /// The stored `next_run_at` that passed without a run.
    pub slot: DateTime<Utc>,
    /// `started`, `finished`, `not started (--no-catch-up)`, `not started (dry run)`, `failed to start`.
    pub catch_up: String,
    /// With `--wait`: the catch-up run's exit code.
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub item: String,
    pub error: String,
}

/// The sync report (`--json` prints this object).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub device_id: String,
    pub backend: String,
    pub dry_run: bool,
    pub added: Vec<Item>,
    pub updated: Vec<Item>,
    pub removed: Vec<Item>,
    pub unchanged: Vec<Item>,
    pub missed: Vec<Missed>,
    pub failed: Vec<Failed>,
    pub warnings: Vec<String>,
    /// Scheduler commands run (systemctl / schtasks), in order.
    pub commands: Vec<String>,
    /// Runs left `running` by a dead process and closed (as failed, or as success when their
    /// snapshot was found).
    pub stale_runs_closed: Vec<i32>,
    /// Run ids of the spooled records delivered (recorded while the database was away).
    pub spool_delivered: Vec<i32>,
    /// The local copy written (path), when the sync reached the database and was not a dry run.
    pub local_copy: Option<String>,
    /// `next_run_at` per enabled schedule id, as stored.
    pub next_runs: BTreeMap<i32, Option<DateTime<Utc>>>,
}

impl Report {
    pub fn fail(
        &mut self,
        job_id: Option<Uuid>,
        job_name: Option<&str>,
        item: &str,
        error: String,
    ) {
        self.failed.push(Failed {
            job_id,
            job_name: job_name.map(str::to_string),
            item: item.to_string(),
            error,
        });
    }

    fn print(&self) {
        let title = if self.dry_run {
            "sync (dry run)"
        } else {
            "sync"
        };
        println!(
            "{title} of device {:?} with {}:",
            self.device_id, self.backend
        );
        for (label, items) in [
            ("added", &self.added),
            ("updated", &self.updated),
            ("removed", &self.removed),
            ("unchanged", &self.unchanged),
        ] {
            for i in items {
                let job = i
                    .job_name
                    .as_deref()
                    .map(|n| format!(" ({})", printable(n)))
                    .unwrap_or_default();
                println!("  {label:<9} {}{job}", printable(&i.name));
            }
        }
        for m in &self.missed {
            println!(
                "  missed    {} ({}) slot {}: catch-up {}",
                m.job_id,
                printable(&m.job_name),
                m.slot.to_rfc3339(),
                m.catch_up
            );
        }
        for f in &self.failed {
            println!(
                "  FAILED    {}: {}",
                printable(&f.item),
                printable(&f.error)
            );
        }
        for w in &self.warnings {
            println!("  warning   {}", printable(w));
        }
        println!(
            "{} added, {} updated, {} removed, {} unchanged, {} missed, {} failed",
            self.added.len(),
            self.updated.len(),
            self.removed.len(),
            self.unchanged.len(),
            self.missed.len(),
            self.failed.len()
        );
    }
}

fn item(a: &Artifact) -> Item {
    Item {
        name: a.name.clone(),
        job_id: a.job_id,
        job_name: (!a.label.is_empty()).then(|| a.label.clone()),
        files: a.files.keys().cloned().collect(),
    }
}

/// `restic version` as one line, or why it is unknown.
///
/// Starting restic is 40% of a no-op sync (9 of 22 ms), so the answer is kept in the state
/// directory with the binary's path, size and modification time, and restic runs again only
/// when one of them changed (an upgrade) or the file is missing.
fn restic_version(state: &StateDir) -> String {
    const CACHE: &str = "restic-version";
    let Ok(program) = which::which("restic") else {
        return "not installed".to_string();
    };
    let stamp = std::fs::metadata(&program).ok().map(|m| {
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{}\n{}\n{modified}\n", program.display(), m.len())
    });
    if let Some(stamp) = &stamp
        && let Ok(cached) = std::fs::read_to_string(state.root().join(CACHE))
        && let Some(version) = cached.strip_prefix(stamp.as_str())
        && !version.trim().is_empty()
    {
        return version.trim().to_string();
    }
    match std::process::Command::new(&program).arg("version").output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if let Some(stamp) = stamp
                && let Err(e) = state.ensure().and_then(|dir| {
                    crate::local::state::write_atomic(
                        dir,
                        CACHE,
                        format!("{stamp}{version}\n").as_bytes(),
                    )
                })
            {
                tracing::debug!("cannot keep the restic version: {e:#}");
            }
            version
        }
        Ok(_) => "unknown (restic version failed)".to_string(),
        Err(_) => "not installed".to_string(),
    }
}

async fn heartbeat(db: &mut PgConnection, device_id: &str, state: &StateDir) -> anyhow::Result<()> {
    let metadata = json!({
        "client_version": crate::platform::host::VERSION,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "restic_version": restic_version(state),
    });
    // The seed's heartbeat query, merging metadata instead of replacing what others stored.
    let done = sqlx::query(
        "UPDATE devices SET last_seen = NOW(), hostname = $2, \
           metadata = COALESCE(metadata, '{}'::jsonb) || $3 WHERE id = $1",
    )
    .bind(device_id)
    .bind(crate::platform::host::hostname())
    .bind(metadata)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        // i9: a device role sees only its own row, so this is also "the wrong role"; quoted ids.
        return Err(usage_err!(
            "device {device_id:?} is not registered in the database, or the database role in \
             use is not this device's; an admin enrols it with `restic-fleet device enroll {}`, \
             then run the `restic-fleet init` line it prints on this machine",
            crate::domain::quote::posix(device_id)
        ));
    }
    Ok(())
}

/// Loads the enabled jobs and schedules of the device (the seed's client queries).
async fn load(
    db: &mut PgConnection,
    device_id: &str,
) -> anyhow::Result<(Vec<Job>, Vec<ScheduleRow>)> {
    crate::store::client::jobs_and_schedules(db, device_id, true).await
}

fn make_backend(args: &SyncArgs) -> anyhow::Result<Box<dyn Backend>> {
    let kind = args.backend.unwrap_or(if cfg!(windows) {
        BackendKind::Windows
    } else {
        BackendKind::Systemd
    });
    match kind {
        BackendKind::Systemd => {
            let user = !is_root();
            Ok(Box::new(crate::platform::scheduler::systemd::Systemd {
                unit_dir: args
                    .unit_dir
                    .clone()
                    .unwrap_or_else(|| crate::platform::scheduler::systemd::default_unit_dir(user)),
                user,
                dry_run: args.dry_run,
                run_on_battery: true,
            }))
        }
        BackendKind::Windows => Ok(Box::new(
            crate::platform::scheduler::task_scheduler::Windows::new(
                args.dry_run,
                args.output_dir.clone(),
            ),
        )),
    }
}

#[cfg(unix)]
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(unix))]
pub(crate) fn is_root() -> bool {
    false
}

/// Runs `sync`. Returns the exit code: 0, or 1 when any item failed.
pub async fn run(
    config: &Config,
    config_path: &std::path::Path,
    args: &SyncArgs,
) -> anyhow::Result<u8> {
    let state = StateDir::for_config(config);
    // One connection for the whole sync, holding no session state (works through PgBouncer).
    let mut conn = crate::store::db::connect_single(
        &config.database_url,
        crate::store::db::OFFLINE_CONNECT_TIMEOUT,
    )
    .await?;
    let db = &mut conn;
    // Behind PgBouncer the sync's statements run in one transaction, committed below before
    // the units are written and catch-ups start (see `db::begin_pinned`).
    crate::store::db::begin_pinned(db).await?;
    let mut backend = make_backend(args)?;
    let mut report = Report {
        device_id: config.device_id.clone(),
        backend: backend.name().to_string(),
        dry_run: args.dry_run,
        ..Default::default()
    };
    if args.dry_run {
        // Still refuse an unknown device.
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)")
            .bind(&config.device_id)
            .fetch_one(&mut *db)
            .await?;
        if !known {
            return Err(usage_err!(
                "device {:?} is not registered in the database; enrol it with `restic-fleet init`",
                config.device_id
            ));
        }
    } else {
        // The spool first: runs recorded while the database was away go in before anything
        // else, so the stale-run check and the missed-slot detection below see them.
        let delivered =
            crate::local::spool::deliver_all(&mut *db, &state, &config.device_id).await?;
        report.spool_delivered = delivered.delivered.iter().map(|d| d.run_id).collect();
        // A record the database refuses stays in the spool and is a failed item: sync exits 1
        // (README), so the device's monitoring notices a run that is not recorded.
        for k in delivered.kept {
            report.fail(
                None,
                None,
                &format!("spool {}", k.file),
                format!(
                    "spooled run record {} stays in the spool: {}",
                    k.file, k.error
                ),
            );
        }
        let settings = crate::store::settings::load(&mut *db, &config.device_id).await?;
        // Repository locks a dead restic of this device left behind (restic's own rules), when
        // a marker says there was one (a no-op sync opens no repository).
        let left = crate::local::markers::left_behind(&state);
        if !left.is_empty()
            && let (Some(repo), Some(password), Ok(restic)) = (
                settings.get("repository_url"),
                settings.get("repository_password"),
                which::which("restic"),
            )
            && crate::ops::backup::execute::remove_stale_locks(&restic, repo, password, &settings)
                .await
        {
            crate::local::markers::clear(&left);
        }
        heartbeat(&mut *db, &config.device_id, &state).await?;
        report.stale_runs_closed = crate::ops::reconcile::close_stale_runs(
            &mut *db,
            &state,
            &config.device_id,
            &settings,
            None,
            None,
        )
        .await?;
    }

    let settings = crate::store::settings::load(&mut *db, &config.device_id).await?;
    if !args.dry_run {
        // i13: full ids for the short snapshot ids older restic reported (one restic call, only
        // when some are pending). Behind PgBouncer the sync's transaction is committed first so
        // that no server connection is held while restic runs (resolve_pending pins its own
        // short transactions around it), and a new one begins afterwards.
        crate::store::db::release_pinned(db).await?;
        crate::ops::snapshot_ids::resolve_pending(&mut *db, &config.device_id, &settings).await;
        crate::store::db::begin_pinned(db).await?;
    }
    let tz = settings.timezone()?;
    let jitter = settings.get_u64("schedule_jitter_seconds", 0)?;
    let grace = settings.get_u64("missed_run_grace_seconds", 900)?;
    // Both are at most i32::MAX (see `Settings::get_u64`), so their sum is a valid duration.
    let grace = Duration::seconds(i64::try_from(grace.saturating_add(jitter)).unwrap_or(i64::MAX))
        .min(Duration::days(365 * 100));
    let sync_interval = settings.get_u64("sync_interval_seconds", 300)?;
    let (mut jobs, mut schedules) = load(&mut *db, &config.device_id).await?;
    let device_enabled: bool = sqlx::query_scalar("SELECT enabled FROM devices WHERE id = $1")
        .bind(&config.device_id)
        .fetch_one(&mut *db)
        .await?;
    if !device_enabled {
        // A disabled device keeps only the sync timer, so enabling it again takes effect.
        report.warnings.push(format!(
            "device {:?} is disabled: none of its jobs is scheduled (enable it with \
             `restic-fleet device enable {}`)",
            config.device_id,
            crate::domain::quote::posix(&config.device_id) // i9: quoted for pasting
        ));
        jobs.clear();
        schedules.clear();
    }
    let latest = crate::store::client::last_run_starts(&mut *db, &config.device_id).await?;

    let now = Utc::now();
    let mut by_job: HashMap<Uuid, Vec<ScheduleRow>> = HashMap::new();
    for s in schedules {
        by_job.entry(s.job_id).or_default().push(s);
    }
    let mut plan_jobs = Vec::new();
    let mut missed_jobs: Vec<(Job, DateTime<Utc>)> = Vec::new();
    for job in jobs {
        let rows = by_job.remove(&job.id).unwrap_or_default();
        let mut valid = Vec::new();
        let mut earliest_missed: Option<DateTime<Utc>> = None;
        for row in rows {
            let schedule = match row.schedule() {
                Ok(s) => s,
                Err(e) => {
                    report.fail(
                        Some(job.id),
                        Some(&job.name),
                        &format!("schedule {}", row.id),
                        format!(
                            "job {:?} ({}): {e}; the schedule is skipped until it is fixed",
                            job.name, job.id
                        ),
                    );
                    continue;
                }
            };
            if let Schedule::Cron(expr) = &schedule
                && expr.next_after(now, &tz).is_none()
            {
                report.fail(
                    Some(job.id),
                    Some(&job.name),
                    &format!("schedule {}", row.id),
                    format!(
                        "job {:?} ({}): schedule {}: cron expression {:?} never fires (no such \
                         date); fix it with `restic-fleet schedule rm` and `schedule add`",
                        job.name,
                        job.id,
                        row.id,
                        expr.as_str()
                    ),
                );
                continue;
            }
            let state = crate::platform::scheduler::plan::slot_state(
                row.next_run_at,
                latest.get(&job.id).copied(),
                now,
                grace,
            );
            if state == SlotState::Missed
                && let Some(slot) = row.next_run_at
            {
                earliest_missed =
                    Some(earliest_missed.map_or(slot, |e: DateTime<Utc>| e.min(slot)));
            }
            let next =
                crate::platform::scheduler::plan::next_to_store(state, &row, &schedule, now, &tz);
            report.next_runs.insert(row.id, next);
            if !args.dry_run && next != row.next_run_at {
                sqlx::query("UPDATE schedules SET next_run_at = $1 WHERE id = $2")
                    .bind(next)
                    .bind(row.id)
                    .execute(&mut *db)
                    .await?;
            }
            // Renderers anchor interval timers and tasks at the slot stored above.
            let mut row = row;
            row.next_run_at = next;
            valid.push((row, schedule));
        }
        if let Some(slot) = earliest_missed {
            missed_jobs.push((job.clone(), slot));
        }
        if !valid.is_empty() {
            plan_jobs.push(JobPlan {
                job,
                schedules: valid,
            });
        }
    }

    if !args.dry_run {
        // What `run` needs when the database is away next time.
        match crate::local::copy::LocalCopy::fetch(&mut *db, &config.device_id).await? {
            Some(copy) => {
                let path = copy.write(&state)?;
                report.local_copy = Some(path.display().to_string());
            }
            None => report
                .warnings
                .push("the device vanished from the database during the sync".into()),
        }
    }

    // i11: the maintenance timer/task, on the maintenance owner only. A schedule that cannot
    // be read (stored by SQL, or never firing) is a failed item, and the timer/task installed
    // now is kept: removing it would stop maintenance altogether.
    let mut keep_maintenance = false;
    let maintenance =
        match crate::store::maintenance::timer_schedule(&mut *db, &settings, &config.device_id)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                report.fail(None, None, "maintenance", format!("{e:#}"));
                keep_maintenance = true;
                None
            }
        };
    crate::store::db::release_pinned(db).await?;
    let binary = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own path: {e}"))?;
    let config_abs = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let plan = Plan {
        device_id: config.device_id.clone(),
        binary,
        config_path: config_abs,
        tz,
        now,
        jitter_seconds: jitter,
        sync_interval_seconds: sync_interval,
        jobs: plan_jobs,
        maintenance,
    };
    backend.configure(&settings, &plan)?;
    let desired = backend.render(&plan)?;
    let installed = backend.installed()?;
    let mut changes = reconcile(desired, installed);
    if keep_maintenance {
        changes.remove.retain(|a| a.name != MAINTENANCE_ARTIFACT);
    }
    backend.apply(&changes, &mut report)?;
    // An item the backend could not apply is listed under failed only.
    let failed: Vec<String> = report.failed.iter().map(|f| f.item.clone()).collect();
    let done = |a: &&Artifact| !failed.contains(&a.name);
    report.added = changes.add.iter().filter(done).map(item).collect();
    report.updated = changes.update.iter().filter(done).map(item).collect();
    report.removed = changes.remove.iter().filter(done).map(item).collect();
    report.unchanged = changes.unchanged.iter().map(item).collect();

    // Catch-up: one run per job with a missed slot.
    let mut children = Vec::new();
    let mut finished: Vec<(usize, Option<i32>)> = Vec::new();
    for (job, slot) in missed_jobs {
        let catch_up = if args.no_catch_up {
            "not started (--no-catch-up)".to_string()
        } else if args.dry_run {
            "not started (dry run)".to_string()
        } else {
            // i14: through the OS scheduler, so the run has the job's environment and unit
            match backend.start_catch_up(&plan, job.id, args.wait, &mut report) {
                Ok(crate::platform::scheduler::catch_up::CatchUp::Child(child)) => {
                    children.push((report.missed.len(), child));
                    "started".to_string()
                }
                Ok(crate::platform::scheduler::catch_up::CatchUp::Scheduled) => {
                    "started".to_string()
                }
                Ok(crate::platform::scheduler::catch_up::CatchUp::Finished(code)) => {
                    finished.push((report.missed.len(), code));
                    "finished".to_string()
                }
                Err(e) => {
                    report.fail(
                        Some(job.id),
                        Some(&job.name),
                        "catch-up",
                        format!("could not start the catch-up run: {e}"),
                    );
                    "failed to start".to_string()
                }
            }
        };
        tracing::info!(
            "job {} ({:?}) missed its run at {}: catch-up {catch_up}",
            job.id,
            job.name,
            slot.to_rfc3339()
        );
        report.missed.push(Missed {
            job_id: job.id,
            job_name: job.name.clone(),
            slot,
            catch_up,
            exit_code: None,
        });
    }
    for (idx, code) in finished {
        report.missed[idx].exit_code = code;
    }
    if args.wait {
        for (idx, mut child) in children {
            let status = child.wait().await;
            let code = status.ok().and_then(|s| s.code());
            report.missed[idx].exit_code = code;
            report.missed[idx].catch_up = "finished".to_string();
        }
    }

    if args.json {
        crate::output::print_json(&report)?;
    } else {
        report.print();
    }
    Ok(if report.failed.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fallback_entries_ask_for_reregistration() {
        let tz: chrono_tz::Tz = "Europe/Prague".parse().unwrap();
        let cron = |e: &str| Schedule::Cron(crate::domain::calendar::CronExpr::parse(e).unwrap());
        // 02:10 CET on 2027-10-31 is inside the second pass of the repeated hour; the fixed-time
        // job still has 02:30 left in it, which systemd would fire a second time.
        let second_pass = Utc.with_ymd_and_hms(2027, 10, 31, 1, 10, 0).unwrap();
        let ordinary = Utc.with_ymd_and_hms(2027, 6, 1, 12, 0, 0).unwrap();
        assert!(!crate::domain::calendar::needs_reregistration(
            &[cron("0,30 2 * * *")],
            &tz,
            ordinary
        ));
        assert!(!crate::domain::calendar::needs_reregistration(
            &[Schedule::Interval { seconds: 60 }],
            &tz,
            second_pass
        ));
        if !cfg!(windows) {
            assert!(crate::domain::calendar::needs_reregistration(
                &[cron("0,30 2 * * *")],
                &tz,
                second_pass
            ));
        }
    }

    #[test]
    fn reconcile_compares_names_and_contents() {
        let a = |name: &str, body: &str| Artifact {
            name: name.into(),
            job_id: None,
            label: String::new(),
            files: BTreeMap::from([(format!("{name}.timer"), body.as_bytes().to_vec())]),
        };
        let c = reconcile(
            vec![a("x", "1"), a("y", "2"), a("z", "3")],
            vec![a("x", "1"), a("y", "old"), a("gone", "0")],
        );
        assert_eq!(
            c.unchanged
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["x"]
        );
        assert_eq!(
            c.update.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["y"]
        );
        assert_eq!(
            c.add.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["z"]
        );
        assert_eq!(
            c.remove.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["gone"]
        );
    }
}
