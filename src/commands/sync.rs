//! `restic-fleet sync`: keep this device's scheduler in step with the database.
//!
//! The steps are the same on every OS: heartbeat, close stale runs, load the device's jobs and
//! schedules, store `next_run_at`, detect missed slots, render the scheduler artifacts, and
//! reconcile them with what is installed. Only rendering and installing differ: a [`Backend`]
//! (systemd timers, Windows Task Scheduler tasks) does those.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;

use crate::domain::calendar::CronExpr;
use crate::domain::exit;
use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;
use crate::domain::settings::Settings;
use crate::local::config::Config;
use crate::local::state::{ENV_STATE_DIR, StateDir};
use crate::output::printable;
use crate::platform::scheduler::backend::{self, Backend};
use crate::platform::scheduler::catch_up::CatchUp;
use crate::platform::scheduler::plan::{self, JobPlan, Plan, Slots};
use crate::platform::scheduler::privilege::is_root;
use crate::platform::scheduler::report::{Missed, Report};
use crate::usage_err;

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

/// Prints the report for a person: one line per item, then the counts.
fn print_report(report: &Report) {
    let title = if report.dry_run {
        "sync (dry run)"
    } else {
        "sync"
    };
    println!(
        "{title} of device {:?} with {}:",
        report.device_id, report.backend
    );
    for (label, items) in [
        ("added", &report.added),
        ("updated", &report.updated),
        ("removed", &report.removed),
        ("unchanged", &report.unchanged),
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
    for m in &report.missed {
        println!(
            "  missed    {} ({}) slot {}: catch-up {}",
            m.job_id,
            printable(&m.job_name),
            m.slot.to_rfc3339(),
            m.catch_up
        );
    }
    for f in &report.failed {
        println!(
            "  FAILED    {}: {}",
            printable(&f.item),
            printable(&f.error)
        );
    }
    for w in &report.warnings {
        println!("  warning   {}", printable(w));
    }
    println!(
        "{} added, {} updated, {} removed, {} unchanged, {} missed, {} failed",
        report.added.len(),
        report.updated.len(),
        report.removed.len(),
        report.unchanged.len(),
        report.missed.len(),
        report.failed.len()
    );
}

/// Records that the device is alive (host name, client, OS and restic versions), and refuses a
/// device the database does not know.
async fn heartbeat(db: &mut PgConnection, device_id: &str, state: &StateDir) -> anyhow::Result<()> {
    let metadata = json!({
        "client_version": crate::platform::host::VERSION,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "restic_version": crate::local::restic_version::line(state),
    });
    let hostname = crate::platform::host::hostname();
    let updated = crate::store::devices::heartbeat(db, device_id, &hostname, metadata).await?;
    if updated == 0 {
        // A device role sees only its own row, so no row also means the role in use is not
        // this device's. The id is quoted so that the printed command can be pasted.
        return Err(usage_err!(
            "device {device_id:?} is not registered in the database, or the database role in \
             use is not this device's; an admin enrols it with `restic-fleet device enroll {}`, \
             then run the `restic-fleet init` line it prints on this machine",
            crate::domain::quote::posix(device_id)
        ));
    }
    Ok(())
}

/// The backend `--backend` names, or the one of this OS.
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
                unit_dir_given: args.unit_dir.is_some(),
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
        refuse_unknown_device(&mut *db, &config.device_id).await?;
    } else {
        // The spool first: runs recorded while the database was away go in before anything
        // else, so the stale-run check and the missed-slot detection below see them.
        let delivered =
            crate::ops::delivery::deliver_all(&mut *db, &state, &config.device_id).await?;
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
        tidy_up(&mut *db, &state, config, &mut report).await?;
    }

    let settings = crate::store::settings::load(&mut *db, &config.device_id).await?;
    if !args.dry_run {
        resolve_snapshot_ids(db, &config.device_id, &settings).await?;
    }
    let timing = Timing::from_settings(&settings)?;
    let (slots, now) =
        plan_slots(db, &config.device_id, &timing, args.dry_run, &mut report).await?;
    if !args.dry_run {
        write_local_copy(db, &state, &config.device_id, &mut report).await?;
    }
    let (maintenance, keep_maintenance) =
        maintenance_schedule(db, &settings, &config.device_id, &mut report).await;
    crate::store::db::release_pinned(db).await?;
    let plan = make_plan(config, config_path, &timing, now, slots.jobs, maintenance)?;
    if backend.name() == "windows"
        && !plan.environment.is_empty()
        && config.state_dir.as_deref() != Some(state.root())
    {
        report.warnings.push(format!(
            "{ENV_STATE_DIR} is set, but scheduled tasks cannot carry environment variables: \
             put state_dir = {:?} into the config file {} so that scheduled runs use the same \
             state directory",
            state.root().display(),
            plan.config_path.display()
        ));
    }
    backend::install(
        backend.as_mut(),
        &settings,
        &plan,
        keep_maintenance,
        &mut report,
    )?;
    start_catch_ups(backend.as_mut(), &plan, slots.missed, args, &mut report).await;
    finish(&report, args.json)
}

/// Prints the report (as JSON with `--json`); the exit code is 1 when any item failed.
fn finish(report: &Report, json: bool) -> anyhow::Result<u8> {
    if json {
        crate::output::print_json(report)?;
    } else {
        print_report(report);
    }
    Ok(if report.failed.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

/// Refuses a device the database does not know (a dry run sends no heartbeat, which would).
async fn refuse_unknown_device(db: &mut PgConnection, device_id: &str) -> anyhow::Result<()> {
    if !crate::store::devices::exists(db, device_id).await? {
        return Err(usage_err!(
            "device {:?} is not registered in the database; enrol it with `restic-fleet init`",
            device_id
        ));
    }
    Ok(())
}

/// What a sync that writes does once the spool is in: removes the repository locks a dead
/// restic left, sends the heartbeat, and closes the runs a dead process left `running`.
async fn tidy_up(
    db: &mut PgConnection,
    state: &StateDir,
    config: &Config,
    report: &mut Report,
) -> anyhow::Result<()> {
    let settings = crate::store::settings::load(&mut *db, &config.device_id).await?;
    // Repository locks a dead restic of this device left behind (restic's own rules), when
    // a marker says there was one (a no-op sync opens no repository).
    // The dead restic may have worked in any repository of this device's jobs: each is tried.
    let left = crate::local::markers::left_behind(state);
    if !left.is_empty()
        && let (Some(password), Ok(restic)) =
            (settings.get("repository_password"), which::which("restic"))
    {
        let places = crate::store::jobs::places_of_device(&mut *db, &config.device_id).await?;
        let (repositories, _) = crate::domain::repository::by_repository(
            |_| &settings,
            places.iter().map(crate::store::jobs::PlaceRow::place),
        );
        let mut all = true;
        for repo in repositories.keys() {
            all &=
                crate::ops::backup::execute::remove_stale_locks(&restic, repo, password, &settings)
                    .await;
        }
        if all && !repositories.is_empty() {
            crate::local::markers::clear(&left);
        }
    }
    heartbeat(&mut *db, &config.device_id, state).await?;
    report.stale_runs_closed = crate::ops::reconcile::close_stale_runs(
        &mut *db,
        state,
        &config.device_id,
        &settings,
        None,
        None,
    )
    .await?;
    Ok(())
}

/// Full ids for the short snapshot ids older restic reported (one restic call, only when some
/// are pending). Behind PgBouncer the sync's transaction is committed first so that no server
/// connection is held while restic runs (`resolve_pending` pins its own short transactions
/// around it), and a new one begins afterwards.
async fn resolve_snapshot_ids(
    db: &mut PgConnection,
    device_id: &str,
    settings: &Settings,
) -> anyhow::Result<()> {
    crate::store::db::release_pinned(db).await?;
    crate::ops::snapshot_ids::resolve_pending(&mut *db, device_id, settings).await;
    crate::store::db::begin_pinned(db).await?;
    Ok(())
}

/// The scheduling settings, read once.
struct Timing {
    tz: Tz,
    jitter: u64,
    /// How long a passed slot may wait for its timer before it counts as missed.
    grace: Duration,
    sync_interval: u64,
}

impl Timing {
    fn from_settings(settings: &Settings) -> anyhow::Result<Timing> {
        let tz = settings.timezone()?;
        let jitter = settings.get_u64("schedule_jitter_seconds", 0)?;
        let grace = settings.get_u64("missed_run_grace_seconds", 900)?;
        // Both are at most i32::MAX (see `Settings::get_u64`), so their sum is a valid duration.
        let grace =
            Duration::seconds(i64::try_from(grace.saturating_add(jitter)).unwrap_or(i64::MAX))
                .min(Duration::days(365 * 100));
        let sync_interval = settings.get_u64("sync_interval_seconds", 300)?;
        Ok(Timing {
            tz,
            jitter,
            grace,
            sync_interval,
        })
    }
}

/// The device's enabled jobs and their enabled schedules; none at all when the device itself
/// is disabled.
async fn enabled_jobs(
    db: &mut PgConnection,
    device_id: &str,
    report: &mut Report,
) -> anyhow::Result<(Vec<Job>, Vec<ScheduleRow>)> {
    let (mut jobs, mut schedules) =
        crate::store::client::jobs_and_schedules(&mut *db, device_id, true).await?;
    let device_enabled = crate::store::devices::enabled(&mut *db, device_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    if !device_enabled {
        // A disabled device keeps only the sync timer, so enabling it again takes effect.
        report.warnings.push(format!(
            "device {:?} is disabled: none of its jobs is scheduled (enable it with \
             `restic-fleet device enable {}`)",
            device_id,
            crate::domain::quote::posix(device_id) // quoted for pasting
        ));
        jobs.clear();
        schedules.clear();
    }
    Ok((jobs, schedules))
}

/// Works out where each schedule stands now (see [`plan::plan_jobs`]), reports the schedules
/// left out as failed items, and stores the `next_run_at` values that changed (not in a dry
/// run). Returns the instant the plan was made for.
async fn plan_slots(
    db: &mut PgConnection,
    device_id: &str,
    timing: &Timing,
    dry_run: bool,
    report: &mut Report,
) -> anyhow::Result<(Slots, DateTime<Utc>)> {
    let (jobs, schedules) = enabled_jobs(db, device_id, report).await?;
    let latest = crate::store::client::last_run_starts(&mut *db, device_id).await?;
    let now = Utc::now();
    let slots = plan::plan_jobs(jobs, schedules, &latest, now, &timing.tz, timing.grace);
    for s in &slots.skipped {
        report.fail(Some(s.job_id), Some(&s.job_name), &s.item, s.error.clone());
    }
    for n in &slots.next_runs {
        report.next_runs.insert(n.schedule_id, n.next);
        if !dry_run && n.next != n.stored {
            crate::store::schedules::store_next_run(&mut *db, n.schedule_id, n.next).await?;
        }
    }
    Ok((slots, now))
}

/// Writes the local copy: what `run` needs when the database is away next time.
async fn write_local_copy(
    db: &mut PgConnection,
    state: &StateDir,
    device_id: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    match crate::local::copy::LocalCopy::fetch(db, device_id).await? {
        Some(copy) => {
            let path = copy.write(state)?;
            report.local_copy = Some(path.display().to_string());
        }
        None => report
            .warnings
            .push("the device vanished from the database during the sync".into()),
    }
    Ok(())
}

/// The maintenance schedule, when this device maintains a repository: the shared ones as
/// maintenance owner, or its own (see [`crate::domain::maintenance::schedule_for`]). A schedule that cannot be read (stored by SQL, or never
/// firing) is a failed item, and the returned flag asks to keep the timer/task installed now:
/// removing it would stop maintenance altogether.
async fn maintenance_schedule(
    db: &mut PgConnection,
    settings: &Settings,
    device_id: &str,
    report: &mut Report,
) -> (Option<CronExpr>, bool) {
    match crate::store::maintenance::timer_schedule(db, settings, device_id).await {
        Ok(m) => (m, false),
        Err(e) => {
            report.fail(None, None, "maintenance", format!("{e:#}"));
            (None, true)
        }
    }
}

/// Everything the backend renders from: this program and its config file as absolute paths,
/// the scheduling settings, and the jobs planned.
fn make_plan(
    config: &Config,
    config_path: &std::path::Path,
    timing: &Timing,
    now: DateTime<Utc>,
    jobs: Vec<JobPlan>,
    maintenance: Option<CronExpr>,
) -> anyhow::Result<Plan> {
    let binary = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own path: {e}"))?;
    let config_abs = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    Ok(Plan {
        device_id: config.device_id.clone(),
        binary,
        config_path: config_abs,
        environment: unit_environment(),
        tz: timing.tz,
        now,
        jitter_seconds: timing.jitter,
        sync_interval_seconds: timing.sync_interval,
        jobs,
        maintenance,
    })
}

/// What the units and tasks must carry of this process's environment: a state directory given
/// by `RESTIC_FLEET_STATE_DIR` (absolute, since units start in `/`), so that timer runs take
/// the same locks and spool as the hand run that installed them.
fn unit_environment() -> Vec<(String, String)> {
    let Some(dir) = std::env::var_os(ENV_STATE_DIR).filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    let dir = PathBuf::from(dir);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    vec![(
        ENV_STATE_DIR.to_string(),
        dir.to_string_lossy().into_owned(),
    )]
}

/// Catch-up: one run per job with a missed slot, started through the OS scheduler so that the
/// run has the job's environment and unit (not with `--no-catch-up` or in a dry run). With
/// `--wait`, waits for the runs started as children of sync.
async fn start_catch_ups(
    backend: &mut dyn Backend,
    plan: &Plan,
    missed: Vec<(Job, DateTime<Utc>)>,
    args: &SyncArgs,
    report: &mut Report,
) {
    let mut children = Vec::new();
    let mut finished: Vec<(usize, Option<i32>)> = Vec::new();
    for (job, slot) in missed {
        let catch_up = if args.no_catch_up {
            "not started (--no-catch-up)".to_string()
        } else if args.dry_run {
            "not started (dry run)".to_string()
        } else {
            match backend.start_catch_up(plan, job.id, args.wait, report) {
                Ok(CatchUp::Child(child)) => {
                    children.push((report.missed.len(), child));
                    "started".to_string()
                }
                Ok(CatchUp::Scheduled) => "started".to_string(),
                Ok(CatchUp::Finished(code)) => {
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
}
