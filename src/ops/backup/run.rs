//! One run of a backup job, as `restic-fleet run` makes it: one restic backup, recorded in `runs`.
//!
//! Three steps with plain types between them:
//! 1. [`crate::ops::backup::resolve`]: the job and its settings from the database, or from the
//!    local copy when the database cannot be reached → [`ResolvedJob`];
//! 2. [`crate::ops::backup::execute`]: restic, under this device's file locks →
//!    [`crate::ops::backup::execute::Outcome`];
//! 3. [`crate::ops::delivery`]: the complete [`RunRecord`] to the database, or to the spool
//!    ([`crate::local::spool`]) when the database is away (at the start or at any later moment).
//!
//! The process uses one database connection at a time ([`Link`]) and keeps no session state
//! in it (locks are files, see [`crate::local::locks`]), so it works through a transaction-pooling
//! PgBouncer and survives a database restart in the middle of a backup. A backup never waits
//! for, nor fails because of, an unreachable database.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::exit::{self, Failure};
use crate::domain::job::Job;
use crate::domain::run_record::{RunRecord, TriggeredBy};
use crate::local::config::Config;
use crate::local::locks::{self, FileLock};
use crate::local::state::StateDir;
use crate::ops::backup::execute::Outcome;
use crate::ops::backup::resolve::{JobSource, ResolvedJob};
use crate::platform::hooks::{BackupResult, MonitorRecord, RunMonitor};
use crate::platform::network::NetworkWait;

/// How long one database step of `run` may take before the database counts as away.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on closing a job's stale runs before the backup: database steps plus a `restic
/// snapshots` (120s) per stale run; a repository slower than that leaves the link offline.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub job: String,
    pub triggered_by: TriggeredBy,
    pub force: bool,
    pub json: bool,
    /// Show a progress bar (decided by the caller: a terminal, not `--json`).
    pub progress: bool,
    /// The config file in force (passed on to a re-registering sync).
    pub config_path: PathBuf,
}

/// What a finished run recorded, as printed by `run --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The row id; null when the record is spooled (the database was away).
    pub run_id: Option<i32>,
    /// The id this client gave the run (`runs.client_run_id`).
    pub client_run_id: Uuid,
    /// The record waits in the spool (this file) for the database.
    pub spooled: Option<String>,
    pub job_id: Uuid,
    pub job_name: String,
    pub device_id: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub error_message: Option<String>,
    pub snapshot_id: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub files_new: Option<i64>,
    pub files_changed: Option<i64>,
    pub files_unmodified: Option<i64>,
    pub data_added_bytes: Option<i64>,
    pub warnings: Vec<String>,
    pub triggered_by: &'static str,
}

/// The process's one database connection, or why there is none.
struct Link {
    url: String,
    conn: Option<PgConnection>,
    /// Why the database is away (set once it was found unreachable).
    away: Option<String>,
}

impl Link {
    /// Connects; an unreachable database gives an offline link, any other error is returned.
    async fn open(url: &str) -> anyhow::Result<Self> {
        let mut link = Self {
            url: url.to_string(),
            conn: None,
            away: None,
        };
        match crate::store::db::connect_single(url, crate::store::db::OFFLINE_CONNECT_TIMEOUT).await
        {
            Ok(c) => link.conn = Some(c),
            Err(e) if crate::store::db::is_unreachable(&e) => link.lost(&e),
            Err(e) => return Err(e),
        }
        Ok(link)
    }

    /// The connection for the next database step. Behind PgBouncer the step runs inside a
    /// transaction (see [`crate::store::db::begin_pinned`]); [`Link::release`] commits it.
    async fn conn(&mut self) -> Option<&mut PgConnection> {
        let begun = match self.conn.as_mut() {
            Some(c) => crate::store::db::begin_pinned(c).await,
            None => return None,
        };
        if let Err(e) = begun {
            self.lost(&e);
            return None;
        }
        self.conn.as_mut()
    }

    /// Ends the current use of the connection (behind PgBouncer: commits, so no server
    /// connection is held while restic runs); a failure means the connection is gone.
    async fn release(&mut self) {
        let released = match self.conn.as_mut() {
            Some(c) => crate::store::db::release_pinned(c).await,
            None => return,
        };
        if let Err(e) = released {
            self.lost(&e);
        }
    }

    fn lost(&mut self, err: &anyhow::Error) {
        if self.conn.take().is_some() || self.away.is_none() {
            tracing::warn!("the database cannot be reached: {err:#}");
        }
        self.away = Some(format!("{err:#}"));
    }

    /// Sorts an error of a database step: unreachable → the link goes offline, `Ok(())`;
    /// anything else is returned.
    fn check(&mut self, err: anyhow::Error) -> anyhow::Result<()> {
        if crate::store::db::is_unreachable(&err) {
            self.lost(&err);
            Ok(())
        } else {
            Err(err)
        }
    }

    /// One new attempt after the connection was lost or never made.
    async fn reconnect(&mut self) {
        if self.conn.is_some() {
            return;
        }
        match crate::store::db::connect_single(&self.url, crate::store::db::OFFLINE_CONNECT_TIMEOUT)
            .await
        {
            Ok(c) => {
                tracing::info!("the database is reachable again");
                self.conn = Some(c);
                self.away = None;
            }
            Err(e) => self.away = Some(format!("{e:#}")),
        }
    }
}

/// Bounds a database step: a server that stops answering counts as unreachable.
async fn step<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::Error::new(crate::store::db::Unreachable {
            message: format!(
                "the database did not answer within {}s",
                STEP_TIMEOUT.as_secs()
            ),
        })),
    }
}

/// Runs a job: what it recorded, and the process exit code (see [`crate::domain::exit`]).
pub async fn run(config: &Config, opts: RunOptions) -> anyhow::Result<(RunReport, u8)> {
    let state = StateDir::for_config(config);
    let mut link = Link::open(&config.database_url).await?;
    deliver_spool(&mut link, &state, config).await;
    // Behind PgBouncer each database step is committed at once: an early return must not roll
    // a step back, and no server connection is held across the waits below.
    link.release().await;

    // A job name (unique on this device) works as well as its UUID.
    let job_id = job_id(&mut link, &state, config, &opts.job).await?;
    link.release().await;

    let resolved = resolve_job(&mut link, &state, config, job_id, opts.force).await?;
    let unattended = Unattended::check(&resolved)?;

    // Exclusion: the job's lock, then (for scheduled runs) the due check under it.
    let job_lock = lock_job(&state, &resolved)?;
    close_stale_runs(&mut link, &state, config, &resolved).await?;
    if opts.triggered_by != TriggeredBy::Manual {
        gate(&mut link, &state, &resolved).await?;
    }
    let slot = acquire_slot(&state, &resolved).await?;
    remove_dead_restic_locks(&state, &resolved).await;

    let Started {
        mut record,
        run_id,
        in_spool,
        last_run_note,
    } = start(&mut link, &state, config, &resolved, &opts).await?;
    // Nothing is asked of the database while restic runs (behind PgBouncer this commits).
    link.release().await;

    // Step 2: execute.
    let run_label = run_id
        .map(|id| id.to_string())
        .unwrap_or_else(|| record.client_run_id.to_string());
    let backup = Backup {
        state: &state,
        resolved: &resolved,
        device_id: &config.device_id,
        run_label: &run_label,
        client_run_id: record.client_run_id,
        progress: opts.progress,
    };
    // The job lock and the slot are held until the record is stored (see the drop below).
    let (outcome, monitor) = backup.run(unattended).await;

    // Step 3: record, live or spooled. A cancelled run (systemd stopping it, say) is recorded
    // before its failure and finally hooks run: the stop's grace period (TimeoutStopSec) may
    // end this process during them, and the record must not wait for hooks.
    let (outcome, run_id, spooled) = match monitor {
        Some(mut monitor) if outcome.status == "cancelled" => {
            record.finish(&outcome);
            let (run_id, spooled) = store(&mut link, &state, &mut record, &resolved, &opts).await?;
            forget_start(run_id, &in_spool);
            let monitored = monitor.after_backup(&monitor_input(&outcome)).await;
            add_hook_metadata(&mut link, &state, &mut record, run_id, monitored.metadata).await;
            (outcome, run_id, spooled)
        }
        monitor => {
            let monitored = match monitor {
                Some(mut m) => m.after_backup(&monitor_input(&outcome)).await,
                None => MonitorRecord::default(),
            };
            let outcome = with_monitor_record(outcome, &monitored);
            record.finish(&outcome);
            record.merge_metadata(serde_json::Value::Object(monitored.metadata));
            let (run_id, spooled) = store(&mut link, &state, &mut record, &resolved, &opts).await?;
            forget_start(run_id, &in_spool);
            (outcome, run_id, spooled)
        }
    };
    link.release().await;
    // The note is read only under the job lock (the due check of the next scheduled run), so
    // it must be on disk before the lock goes.
    let _ = last_run_note.await;
    drop((job_lock, slot));

    let report = RunReport::new(&record, &outcome, run_id, spooled, &opts);
    Ok((report, outcome.cli_code))
}

/// Records of earlier runs go in before anything this run writes. Failing that, they stay in
/// the spool and today's backup goes on all the same.
async fn deliver_spool(link: &mut Link, state: &StateDir, config: &Config) {
    let Some(conn) = link.conn().await else {
        return;
    };
    let Err(e) = crate::ops::delivery::deliver_all(conn, state, &config.device_id).await else {
        return;
    };
    let Err(e) = link.check(e) else {
        return;
    };
    tracing::warn!(
        "the spooled records of earlier runs could not be delivered: {e:#}; they stay in the \
         spool and this backup goes on"
    );
    // Behind PgBouncer the failed statement aborted the step's transaction: roll it back so
    // the connection serves the next steps.
    if let Some(conn) = link.conn.as_mut()
        && let Err(e) = crate::store::db::abort_pinned(conn).await
    {
        link.lost(&e);
    }
}

/// Step 1: the job from the database, or from the local copy when the database is away.
async fn resolve_job(
    link: &mut Link,
    state: &StateDir,
    config: &Config,
    job_id: Uuid,
    force: bool,
) -> anyhow::Result<ResolvedJob> {
    let mut resolved = None;
    if let Some(conn) = link.conn().await {
        match step(crate::ops::backup::resolve::from_database(
            conn, config, job_id, force,
        ))
        .await
        {
            Ok(r) => resolved = Some(r),
            Err(e) => link.check(e)?,
        }
    }
    link.release().await;
    match resolved {
        Some(r) => Ok(r),
        None => {
            let reason = link.away.clone().unwrap_or_default();
            crate::ops::backup::resolve::from_local_copy(state, config, job_id, force, &reason)
        }
    }
}

/// The unattended-run settings of a job.
struct Unattended {
    network_wait: NetworkWait,
    prevent_sleep: bool,
}

impl Unattended {
    /// The backend environment and the unattended-run settings are checked before anything
    /// starts (a bad value is a configuration error, exit 2).
    fn check(resolved: &ResolvedJob) -> anyhow::Result<Self> {
        crate::domain::restic::backend_env::from_settings(&resolved.settings)?;
        let network_wait = NetworkWait::from_settings(&resolved.settings)?;
        let prevent_sleep = crate::platform::power::wanted(&resolved.settings)?;
        if let JobSource::LocalCopy { age, .. } = &resolved.source {
            tracing::warn!(
                "running job {} ({:?}) from the local copy of this device's jobs, {age} old",
                resolved.job.id,
                resolved.job.name
            );
        }
        Ok(Self {
            network_wait,
            prevent_sleep,
        })
    }
}

/// Takes the job's lock, naming this process as its holder; a job already running on this
/// device skips the run.
fn lock_job(state: &StateDir, resolved: &ResolvedJob) -> anyhow::Result<FileLock> {
    let job_id = resolved.job.id;
    let Some(mut job_lock) = locks::try_lock_job(state, job_id)? else {
        let holder = locks::job_lock_holder(state, job_id);
        let detail = if holder.is_empty() {
            String::new()
        } else {
            format!(" ({holder})")
        };
        return Err(Failure::skipped(format!(
            "skipped: job {job_id} ({:?}) is already running on this device{detail}",
            resolved.job.name
        ))
        .into());
    };
    job_lock.describe_holder(&format!(
        "pid {}, started {}",
        std::process::id(),
        Utc::now().to_rfc3339()
    ));
    Ok(job_lock)
}

/// Runs of this job left `running` by a dead process are closed before ours starts (under the
/// job lock).
async fn close_stale_runs(
    link: &mut Link,
    state: &StateDir,
    config: &Config,
    resolved: &ResolvedJob,
) -> anyhow::Result<()> {
    let job_id = resolved.job.id;
    let Some(conn) = link.conn().await else {
        return Ok(());
    };
    let closing = crate::ops::reconcile::close_stale_runs(
        conn,
        state,
        &config.device_id,
        &resolved.settings,
        Some(job_id),
        Some(job_id),
    );
    // Not bounded by the database step timeout: it may ask the repository (`restic
    // snapshots`, up to 120s per stale run), and a slow repository is not an unreachable
    // database.
    match tokio::time::timeout(RECONCILE_TIMEOUT, closing).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => link.check(e)?,
        Err(_) => link.lost(&anyhow::Error::new(crate::store::db::Unreachable {
            message: format!(
                "closing this job's stale runs did not finish within {}s",
                RECONCILE_TIMEOUT.as_secs()
            ),
        })),
    }
    link.release().await;
    Ok(())
}

/// One of the device's `max_concurrent_backups` slots, waited for up to
/// `concurrency_wait_seconds`; none free by then skips the run.
async fn acquire_slot(state: &StateDir, resolved: &ResolvedJob) -> anyhow::Result<FileLock> {
    let max = resolved.max_concurrent;
    let wait = resolved.wait;
    let slot = locks::acquire_slot(state, max, wait, || {
        tracing::info!(
            "waiting up to {}s for a free slot: max_concurrent_backups={max} backups are \
             already running on this device",
            wait.as_secs()
        )
    })
    .await?;
    slot.ok_or_else(|| {
        Failure::skipped(format!(
            "skipped: job {} ({:?}) waited {}s but max_concurrent_backups={max} other \
             backups kept running on this device (raise concurrency_wait_seconds or \
             max_concurrent_backups)",
            resolved.job.id,
            resolved.job.name,
            wait.as_secs()
        ))
        .into()
    })
}

/// Locks a dead restic of this device left in the repository go first (restic's own
/// stale-lock rules: same host and process gone, or not refreshed for 30 minutes); only when
/// a marker says such a restic existed (see [`crate::local::markers`]).
async fn remove_dead_restic_locks(state: &StateDir, resolved: &ResolvedJob) {
    let left = crate::local::markers::left_behind(state);
    if !left.is_empty()
        && resolved.repository_error.is_none()
        && let Ok(restic) = which::which("restic")
    {
        // A failed unlock keeps the markers, so the next run or sync tries again.
        if crate::ops::backup::execute::remove_stale_locks(
            &restic,
            &resolved.repository,
            &resolved.password,
            &resolved.settings,
        )
        .await
        {
            crate::local::markers::clear(&left);
        }
    }
}

/// A run that has started: its record, its `running` row, or its start kept in the spool.
struct Started {
    record: RunRecord,
    run_id: Option<i32>,
    in_spool: Option<PathBuf>,
    /// This device's note of the job's latest run, being written beside restic.
    last_run_note: tokio::task::JoinHandle<()>,
}

/// Records the start of the run: the `running` row, or (the database away) the start in the
/// spool, and this device's own note of the job's latest run.
async fn start(
    link: &mut Link,
    state: &StateDir,
    config: &Config,
    resolved: &ResolvedJob,
    opts: &RunOptions,
) -> anyhow::Result<Started> {
    let job_id = resolved.job.id;
    let record = RunRecord::starting(
        job_id,
        &resolved.job.name,
        &config.device_id,
        opts.triggered_by,
    );
    let run_id = insert_running(link, &record).await?;
    // Without a `running` row, the spool holds the run's start: if this process dies, the
    // next delivery finds the record `running` with its job lock free and closes it (with its
    // snapshot, when restic got that far), so no snapshot is left without a row.
    let mut in_spool = None;
    if run_id.is_none() {
        let mut start = record.clone();
        start.mark_offline(
            link.away
                .as_deref()
                .unwrap_or("the database cannot be reached"),
        );
        in_spool = Some(crate::local::spool::write(state, &start)?);
    }
    // Written beside restic rather than before it (its two fsyncs can take long on a busy
    // disk): only the due check reads the note, and only under the job lock, which this run
    // holds until the note is written. A run killed meanwhile may leave no note; the next
    // scheduled run then backs up once more, which is the safe side.
    let last_run_note = {
        let (state, start_time) = (state.clone(), record.start_time);
        tokio::task::spawn_blocking(move || {
            crate::local::copy::write_last_run(&state, job_id, start_time)
        })
    };
    tracing::info!(
        "starting backup of job {job_id} ({:?}) as {}, triggered by {}",
        resolved.job.name,
        run_id
            .map(|id| format!("run {id}"))
            .unwrap_or_else(|| format!("spooled run {}", record.client_run_id)),
        opts.triggered_by.as_str()
    );
    Ok(Started {
        record,
        run_id,
        in_spool,
        last_run_note,
    })
}

/// Inserts the run's `running` row; its id, or `None` when the database is away.
async fn insert_running(link: &mut Link, record: &RunRecord) -> anyhow::Result<Option<i32>> {
    let mut run_id = None;
    if let Some(conn) = link.conn().await {
        match step(crate::ops::delivery::insert_running(conn, record)).await {
            Ok(id) => run_id = Some(id),
            Err(e) => link.check(e)?,
        }
    }
    // Behind PgBouncer the `running` row exists only once committed: a failed commit counts
    // as no row (the start goes to the spool; the same client run id keeps it one row).
    if run_id.is_some() {
        link.release().await;
        if link.conn.is_none() {
            run_id = None;
        }
    }
    Ok(run_id)
}

/// Step 2 of a run: restic between the start ping and before hook and the result ping and the
/// after/failure/finally hooks (which take plain values: they work offline too).
struct Backup<'a> {
    state: &'a StateDir,
    resolved: &'a ResolvedJob,
    device_id: &'a str,
    /// The run as the hooks and pings name it: its row id, else its client run id.
    run_label: &'a str,
    client_run_id: Uuid,
    progress: bool,
}

impl Backup<'_> {
    /// What would fail the run anyway (restic arguments, source paths, restic itself) fails
    /// it before the start ping and the before hook (which may stop services): no hook or ping
    /// runs for it, the failed run is recorded.
    /// Returns the monitor whose after-backup hooks and pings are still to run (none when
    /// the run failed before its start ping).
    async fn run(&self, unattended: Unattended) -> (Outcome, Option<RunMonitor>) {
        if let Err((message, code)) = crate::ops::backup::execute::preflight(self.resolved) {
            return (crate::ops::backup::execute::failed(message, code), None);
        }
        let mut monitor = self.monitor();
        let work = async {
            match monitor.before_backup().await {
                // A failing before hook with on-error `stop` fails the run without a backup.
                Err(message) => crate::ops::backup::execute::failed(message, exit::FAILED),
                Ok(()) => self.restic(unattended.network_wait).await,
            }
        };
        // A sleep inhibitor is held while restic works (setting prevent_sleep). It is taken at
        // the work's first wait (the start ping, the before hook, or restic itself, started by
        // then), so its process does not delay restic's start yet covers the hooks.
        let why = format!("backup of {:?}", self.resolved.job.name);
        let (outcome, inhibitor) = tokio::join!(
            biased;
            work,
            crate::platform::power::hold(unattended.prevent_sleep, &why)
        );
        inhibitor.release().await;
        (outcome, Some(monitor))
    }

    /// The hooks and pings of the job, with the secrets their output must not show.
    fn monitor(&self) -> RunMonitor {
        let settings = &self.resolved.settings;
        RunMonitor::for_job(
            &self.resolved.job,
            self.device_id,
            self.run_label,
            Duration::from_secs(settings.get_u64("hook_timeout_seconds", 300).unwrap_or(300)),
            settings
                .get_bool("ping_warning_as_success", false)
                .unwrap_or(false),
            hook_secrets(self.resolved),
        )
    }

    /// restic itself, marked in the state directory while it runs: a marker left behind (restic
    /// ended without an exit code) tells the next run or sync to remove its repository locks.
    async fn restic(&self, network_wait: NetworkWait) -> Outcome {
        let started = crate::local::markers::ResticMarker::start(self.state, self.client_run_id);
        let outcome = crate::ops::backup::execute::execute(
            self.resolved,
            self.progress,
            network_wait,
            self.state,
        )
        .await;
        match (started, outcome.exit_code) {
            (Some(m), Some(_)) => m.finished(),
            (Some(m), None) => m.keep(),
            (None, _) => {}
        }
        outcome
    }
}

impl RunReport {
    /// The report of a recorded run: its row id, or the spool file that holds it.
    fn new(
        record: &RunRecord,
        outcome: &Outcome,
        run_id: Option<i32>,
        spooled: Option<PathBuf>,
        opts: &RunOptions,
    ) -> Self {
        RunReport {
            run_id,
            client_run_id: record.client_run_id,
            spooled: spooled.as_ref().map(|p| p.display().to_string()),
            job_id: record.job_id,
            job_name: record.job_name.clone(),
            device_id: record.device_id.clone(),
            status: outcome.status.to_string(),
            exit_code: outcome.exit_code,
            error_message: outcome.error_message.clone(),
            snapshot_id: outcome.summary.snapshot_id.clone(),
            start_time: record.start_time,
            end_time: record.end_time.unwrap_or(record.start_time),
            files_new: outcome.summary.files_new,
            files_changed: outcome.summary.files_changed,
            files_unmodified: outcome.summary.files_unmodified,
            data_added_bytes: outcome.summary.data_added,
            warnings: outcome.warnings.clone(),
            triggered_by: opts.triggered_by.as_str(),
        }
    }
}

/// A scheduled or catch-up run goes ahead only when the job has a slot to cover (see
/// [`resolve::due`]); the schedules are read again under the job lock when the database is
/// there, else the local copy's are used.
async fn gate(link: &mut Link, state: &StateDir, resolved: &ResolvedJob) -> anyhow::Result<()> {
    let job_id = resolved.job.id;
    let mut rows = None;
    if let Some(conn) = link.conn().await {
        match step(crate::ops::backup::resolve::job_schedules(conn, job_id)).await {
            Ok(r) => rows = Some(r),
            Err(e) => link.check(e)?,
        }
    }
    link.release().await;
    let rows = rows.unwrap_or_else(|| resolved.schedules.clone());
    let last = crate::local::copy::read_last_run(state, job_id).map(|l| l.start_time);
    let due = crate::ops::backup::resolve::due(&rows, last, Utc::now(), &resolved.tz);
    if due.has_schedules && !due.due {
        return Err(Failure::skipped(format!(
            "skipped: not due, next run at {} (job {job_id}, {:?})",
            due.next
                .map(|n| n.to_rfc3339())
                .unwrap_or_else(|| "unknown".into()),
            resolved.job.name,
        ))
        .into());
    }
    Ok(())
}

/// Once the finished record is in the database, the start kept in the spool goes.
fn forget_start(run_id: Option<i32>, in_spool: &Option<PathBuf>) {
    if let (Some(_), Some(start)) = (run_id, in_spool) {
        crate::local::spool::remove(start);
    }
}

/// Adds what the hooks and pings of an already recorded run did to its record: to its row, or
/// to its spool file. Best effort: the record itself is safe already.
async fn add_hook_metadata(
    link: &mut Link,
    state: &StateDir,
    record: &mut RunRecord,
    run_id: Option<i32>,
    metadata: serde_json::Map<String, serde_json::Value>,
) {
    if metadata.is_empty() {
        return;
    }
    let metadata = serde_json::Value::Object(metadata);
    record.merge_metadata(metadata.clone());
    if run_id.is_some() {
        if let Some(conn) = link.conn().await
            && let Err(e) = step(crate::ops::delivery::add_metadata(conn, record, &metadata)).await
        {
            tracing::warn!("the hooks of this cancelled run are not in its record: {e:#}");
        }
    } else if let Err(e) = crate::local::spool::write(state, record) {
        tracing::warn!("the hooks of this cancelled run are not in its spooled record: {e:#}");
    }
}

/// Writes the finished record to the database (one new connection attempt if it was lost), or
/// to the spool. Returns the row id, or the spool file.
async fn store(
    link: &mut Link,
    state: &StateDir,
    record: &mut RunRecord,
    resolved: &ResolvedJob,
    opts: &RunOptions,
) -> anyhow::Result<(Option<i32>, Option<PathBuf>)> {
    for attempt in 0..2 {
        if attempt == 1 || link.conn.is_none() {
            link.reconnect().await;
        }
        let Some(conn) = link.conn().await else { break };
        // The time zone this run resolved from the database serves for moving its schedules
        // on: one statement less while the run's end is waited for.
        let tz = matches!(resolved.source, JobSource::Database).then_some(resolved.tz);
        match step(crate::ops::delivery::deliver(conn, record, tz)).await {
            Ok(d) => {
                // Behind PgBouncer the record is in only once committed; until then the spooled
                // start stays and success is not reported. A lost commit is retried like a lost
                // connection (delivery is idempotent by client run id), then spooled.
                if let Some(conn) = link.conn.as_mut()
                    && let Err(e) = step(crate::store::db::release_pinned(conn)).await
                {
                    link.lost(&e);
                    continue;
                }
                if crate::domain::calendar::needs_reregistration(&d.schedules, &d.tz, Utc::now()) {
                    reregister(&opts.config_path);
                }
                return Ok((Some(d.run_id), None));
            }
            Err(e) if crate::store::db::is_unreachable(&e) => link.lost(&e),
            Err(e) => {
                // Refused for another reason: keep it rather than lose it.
                tracing::error!("the database refused this run's record: {e:#}");
                link.away = Some(format!("the database refused the record: {e:#}"));
                break;
            }
        }
    }
    let reason = link
        .away
        .clone()
        .unwrap_or_else(|| "the database cannot be reached".into());
    record.mark_offline(&reason);
    let path = crate::local::spool::write(state, record).map_err(|e| {
        Failure::failed(format!(
            "the database cannot be reached and the run record could not be spooled either: \
             {e:#}"
        ))
    })?;
    let copy_age = match &resolved.source {
        JobSource::LocalCopy {
            age, written_at, ..
        } => {
            format!(
                "the job came from the local copy written {} ({age} old)",
                written_at.to_rfc3339()
            )
        }
        JobSource::Database => {
            "the job came from the database, which went away during the backup".to_string()
        }
    };
    tracing::warn!(
        "the run record is spooled in {} ({reason}); the next run or sync that reaches the \
         database delivers it; {copy_age}",
        path.display()
    );
    Ok((None, Some(path)))
}
/// The job's timer or task is a single entry at its next instant (see
/// [`crate::domain::calendar::needs_reregistration`]): start a sync, in the background, to register
/// the following one.
fn reregister(config_path: &std::path::Path) {
    // Through the OS scheduler (the sync unit / task), so it outlives this run's unit.
    crate::platform::scheduler::catch_up::reregister(config_path);
}

/// The job a user named: its UUID, or a name resolved by the database (a name unique on this
/// device, or DEVICE/NAME), or, with the database away, by the local copy.
async fn job_id(
    link: &mut Link,
    state: &StateDir,
    config: &Config,
    text: &str,
) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(text.trim()) {
        return Ok(id);
    }
    if let Some(conn) = link.conn().await {
        match step(crate::store::jobs::resolve(
            conn,
            text,
            Some(&config.device_id),
        ))
        .await
        {
            Ok(job) => return Ok(job.id),
            Err(e) => link.check(e)?,
        }
    }
    let name = text.trim();
    // The database being away is a failure (exit 1), not a usage error, as with a UUID.
    let copy = crate::local::copy::LocalCopy::read(state, &config.device_id).map_err(|e| {
        crate::domain::exit::Failure::failed(format!(
            "the database cannot be reached and job {name:?} cannot be looked up offline: {e}; \
             the backup needs one sync while the database is reachable"
        ))
    })?;
    let found: Vec<&Job> = copy.jobs.iter().filter(|j| j.name == name).collect();
    match found.as_slice() {
        [one] => Ok(one.id),
        [] => Err(crate::usage_err!(
            "no job named {name:?} is in this device's local copy of its jobs (the database \
             cannot be reached); give the job's UUID, or sync once the database is back"
        )),
        many => Err(crate::usage_err!(
            "the job name {name:?} is ambiguous on this device: {}; give the job's UUID",
            many.iter()
                .map(|j| j.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What the hooks' output must not show: the repository password and the backend
/// environment's values (as [`crate::platform::restic_env::redact_secrets`] masks them).
fn hook_secrets(resolved: &ResolvedJob) -> Vec<String> {
    let mut secrets = vec![resolved.password.clone()];
    for (_, v) in
        crate::domain::restic::backend_env::from_settings(&resolved.settings).unwrap_or_default()
    {
        // Very short values (a region like "eu") would mask ordinary words.
        if v.len() >= 4 {
            secrets.push(v);
        }
    }
    secrets
}

/// How the backup ended, as the hooks and pings see it.
fn monitor_input(o: &Outcome) -> BackupResult {
    BackupResult {
        status: o.status.to_string(),
        warnings: o.warnings.clone(),
        snapshot_id: o.summary.snapshot_id.clone(),
        exit_code: o.exit_code,
        error_message: o.error_message.clone(),
        files_new: o.summary.files_new,
        data_added_bytes: o.summary.data_added,
    }
}

/// A failed after/finally hook makes a success a success with warnings.
fn with_monitor_record(mut o: Outcome, m: &MonitorRecord) -> Outcome {
    if o.status == "success" && !m.warnings.is_empty() {
        o.warnings.extend(m.warnings.iter().cloned());
        o.error_message = Some(format!("warning: {}", o.warnings.join("; warning: ")));
        if o.cli_code == exit::SUCCESS {
            o.cli_code = exit::WARNINGS;
        }
    }
    o
}
