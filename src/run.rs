//! `restic-fleet run <job-uuid>`: one restic backup, recorded in `runs`.

use std::io::IsTerminal;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use uuid::Uuid;

use crate::config::Config;
use crate::exit::{self, Failure};
use crate::jobs::{self, Job};
use crate::locks::{self, LockConn};
use crate::restic::{self, Line, Summary, Transcript};
use crate::settings::Settings;
use crate::usage_err;
use crate::util::{mask_url, redact};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggeredBy {
    Manual,
    Schedule,
    Missed,
}

impl TriggeredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggeredBy::Manual => "manual",
            TriggeredBy::Schedule => "schedule",
            TriggeredBy::Missed => "missed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub job: String,
    pub triggered_by: TriggeredBy,
    pub force: bool,
    pub json: bool,
    /// Show a progress bar (decided by the caller: a terminal, not `--json`).
    pub progress: bool,
    /// The config file in force (passed on to a re-registering sync).
    pub config_path: std::path::PathBuf,
}

/// What a finished run recorded, as printed by `run --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i32,
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

/// Everything collected from one of restic's output streams.
#[derive(Debug, Default)]
struct StreamResult {
    transcript: String,
    summary: Option<Summary>,
    errors: Vec<String>,
    fatal: Vec<String>,
    raw_tail: String,
}

/// The outcome of the restic process.
#[derive(Debug, Default)]
struct Outcome {
    status: &'static str,
    exit_code: Option<i32>,
    error_message: Option<String>,
    summary: Summary,
    output: String,
    errors: String,
    warnings: Vec<String>,
    missing_paths: Vec<String>,
    cli_code: u8,
    /// i12: `hooks` and `pings`, merged into `runs.metadata`.
    extra_metadata: serde_json::Map<String, serde_json::Value>,
}

/// Runs a job. Returns the process exit code (see [`crate::exit`]).
pub async fn run(config: &Config, pool: &PgPool, opts: RunOptions) -> anyhow::Result<u8> {
    // i14: a job name (unique on this device) works as well as its UUID
    let job = jobs::resolve(pool, &opts.job, Some(&config.device_id)).await?;
    let job_id = job.id;
    if job.device_id != config.device_id {
        return Err(usage_err!(
            "job {job_id} ({:?}) belongs to device {:?}, not to this device {:?}; run it on that \
             device, or move it with `restic-fleet job edit {job_id} --device {}`",
            job.name,
            job.device_id,
            config.device_id,
            config.device_id
        ));
    }
    if !job.enabled && !opts.force {
        return Err(usage_err!(
            "job {job_id} ({:?}) is disabled; enable it with `restic-fleet job enable {job_id}` or \
             pass --force to run it once anyway",
            job.name
        ));
    }
    let device_enabled: Option<bool> =
        sqlx::query_scalar("SELECT enabled FROM devices WHERE id = $1")
            .bind(&config.device_id)
            .fetch_optional(pool)
            .await?;
    if device_enabled == Some(false) && !opts.force {
        return Err(usage_err!(
            "this device {:?} is disabled; enable it with `restic-fleet device enable {}` or \
             pass --force to run the job once anyway",
            config.device_id,
            config.device_id
        ));
    }
    let settings = Settings::load(pool, &config.device_id).await?;
    let repository = settings
        .get("repository_url")
        .map(str::to_string)
        .ok_or_else(|| {
            usage_err!(
                "the repository_url setting is empty; set it with `restic-fleet settings set \
             repository_url URL` (e.g. sftp:user@host:/srv/restic or /srv/restic)"
            )
        })?;
    let password = settings
        .get("repository_password")
        .map(str::to_string)
        .ok_or_else(|| {
            usage_err!(
                "the repository_password setting is empty; set it with `restic-fleet settings set \
             repository_password -` (reads it from standard input)"
            )
        })?;
    let tz = settings.timezone()?;
    // i14: the backend environment and the unattended-run settings are checked before anything
    // starts (a bad value is a configuration error, exit 2)
    crate::unattended::backend_env::from_settings(&settings)?;
    let network_wait = crate::unattended::network::NetworkWait::from_settings(&settings)?;
    let prevent_sleep = crate::unattended::inhibit::wanted(&settings)?;
    let max_concurrent = settings.get_u64("max_concurrent_backups", 1)?.max(1);
    let wait = Duration::from_secs(settings.get_u64("concurrency_wait_seconds", 3600)?);

    let mut lock = LockConn::open(&config.database_url).await?;
    if !lock.try_lock_job(job_id).await? {
        let running: Option<(i32, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, start_time FROM runs WHERE job_id = $1 AND status = 'running' \
             ORDER BY start_time DESC LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
        lock.close().await;
        let detail = match running {
            Some((id, start)) => format!(" (run {id}, started {})", start.to_rfc3339()),
            None => String::new(),
        };
        return Err(Failure::skipped(format!(
            "skipped: job {job_id} ({:?}) is already running on this device{detail}",
            job.name
        ))
        .into());
    }
    // Runs of this job left `running` by a dead process are closed before ours starts.
    let stale = locks::close_stale_runs(&mut lock, &config.device_id, Some(job_id), None).await?;
    for id in &stale {
        tracing::warn!("closed stale run {id} as failed: its process no longer exists");
    }
    let job_name = job.name.clone();
    // A timer firing or a catch-up run for a slot another run already covered (systemd's
    // Persistent= catch-up at boot racing sync's catch-up) must not back up twice: under the
    // job lock, a non-manual run goes ahead only when one of the job's schedules is due.
    // An interval timer (OnUnitActiveSec=, Task Scheduler repetition) keeps its own rhythm,
    // which manual and catch-up runs do not reset, so an interval slot counts as due up to half
    // an interval early: the timer's run then realigns `next_run_at` with it, and no two
    // scheduled backups of an interval job are less than half an interval apart.
    if opts.triggered_by != TriggeredBy::Manual {
        let (has, due, next): (bool, bool, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*) > 0, \
                    COALESCE(bool_or(next_run_at IS NULL OR next_run_at <= $2 + CASE \
                        WHEN schedule_type = 'interval' AND interval_seconds > 0 \
                        THEN make_interval(secs => interval_seconds / 2.0) \
                        ELSE INTERVAL '0 seconds' END), false), \
                    min(next_run_at) \
             FROM schedules WHERE job_id = $1 AND enabled",
        )
        .bind(job_id)
        .bind(Utc::now() + chrono::Duration::seconds(5))
        .fetch_one(pool)
        .await?;
        if has && !due {
            lock.close().await;
            // i14: the skip line says what is true: nothing is due
            return Err(Failure::skipped(format!(
                "skipped: not due, next run at {} (job {job_id}, {job_name:?})",
                next.map(|n| n.to_rfc3339())
                    .unwrap_or_else(|| "unknown".into())
            ))
            .into());
        }
    }
    let slot = lock
        .acquire_slot(&config.device_id, max_concurrent, wait, || {
            tracing::info!(
                "waiting up to {}s for a free slot: max_concurrent_backups={max_concurrent} \
                 backups are already running on this device",
                wait.as_secs()
            )
        })
        .await?;
    if slot.is_none() {
        lock.close().await;
        return Err(Failure::skipped(format!(
            "skipped: job {job_id} ({job_name:?}) waited {}s but max_concurrent_backups={max_concurrent} \
             other backups kept running on this device (raise concurrency_wait_seconds or \
             max_concurrent_backups)",
            wait.as_secs()
        ))
        .into());
    }

    let (run_id, start_time): (i32, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO runs (job_id, device_id, start_time, status, triggered_by, metadata) \
         VALUES ($1, $2, NOW(), 'running', $3, $4) RETURNING id, start_time",
    )
    .bind(job_id)
    .bind(&config.device_id)
    .bind(opts.triggered_by.as_str())
    .bind(json!({
        "client_version": crate::util::VERSION,
        "hostname": crate::util::hostname(),
        "pid": std::process::id(),
    }))
    .fetch_one(pool)
    .await?;
    tracing::info!(
        "starting backup of job {job_id} ({job_name:?}) as run {run_id}, triggered by {}",
        opts.triggered_by.as_str()
    );

    // i12: start ping and before hook; a failing before hook (on-error stop) skips the backup.
    let mut monitor = crate::run_hooks::RunMonitor::for_job(
        &job,
        &config.device_id,
        &run_id.to_string(),
        Duration::from_secs(settings.get_u64("hook_timeout_seconds", 300).unwrap_or(300)),
        settings
            .get_bool("ping_warning_as_success", false)
            .unwrap_or(false),
        vec![password.clone()],
    );
    // i14: hold a sleep inhibitor while restic works (setting prevent_sleep)
    let inhibitor =
        crate::unattended::inhibit::hold(prevent_sleep, &format!("backup of {job_name:?}")).await;
    let outcome = match monitor.before_backup().await {
        Err(message) => failed(message, exit::FAILED),
        Ok(()) => {
            execute(
                &job,
                config,
                &settings,
                &repository,
                &password,
                opts.progress,
                network_wait,
            )
            .await
        }
    };
    drop(inhibitor);
    // i14: backend environment values are secrets like the password
    let secret = |t: &str| crate::unattended::redact_secrets(t, &password, &settings);
    let outcome = Outcome {
        output: secret(&outcome.output),
        errors: secret(&outcome.errors),
        error_message: outcome.error_message.map(|m| secret(&m)),
        ..outcome
    };

    // i12: after/failure/finally hooks and the result ping, recorded with the run.
    let monitored = monitor.after_backup(&monitor_input(&outcome)).await;
    let outcome = with_monitor_record(outcome, monitored);

    let end_time: DateTime<Utc> = record(pool, run_id, &outcome).await?;
    match crate::schedules::update_after_run(pool, job_id, start_time, tz).await {
        Ok(schedules) => {
            if crate::sync::needs_reregistration(&schedules, &tz, Utc::now()) {
                reregister(&opts.config_path);
            }
        }
        Err(e) => tracing::warn!("could not update the schedules of job {job_id}: {e:#}"),
    }
    lock.close().await;

    let report = RunReport {
        run_id,
        job_id,
        job_name,
        device_id: config.device_id.clone(),
        status: outcome.status.to_string(),
        exit_code: outcome.exit_code,
        error_message: outcome.error_message.clone(),
        snapshot_id: outcome.summary.snapshot_id.clone(),
        start_time,
        end_time,
        files_new: outcome.summary.files_new,
        files_changed: outcome.summary.files_changed,
        files_unmodified: outcome.summary.files_unmodified,
        data_added_bytes: outcome.summary.data_added,
        warnings: outcome.warnings.clone(),
        triggered_by: opts.triggered_by.as_str(),
    };
    print_report(&report, opts.json)?;
    Ok(outcome.cli_code)
}

fn print_report(r: &RunReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let stats = format!(
        "{} new, {} changed, {} unmodified files, {} added",
        r.files_new.unwrap_or(0),
        r.files_changed.unwrap_or(0),
        r.files_unmodified.unwrap_or(0),
        human_bytes(r.data_added_bytes.unwrap_or(0).max(0) as u64)
    );
    let secs = (r.end_time - r.start_time).num_seconds();
    match r.status.as_str() {
        "success" if r.warnings.is_empty() => println!(
            "run {}: backup of {:?} succeeded in {secs}s: snapshot {}, {stats}",
            r.run_id,
            r.job_name,
            short_id(r.snapshot_id.as_deref())
        ),
        "success" => {
            println!(
                "run {}: backup of {:?} finished WITH WARNINGS in {secs}s: snapshot {}, {stats}",
                r.run_id,
                r.job_name,
                short_id(r.snapshot_id.as_deref())
            );
            for w in &r.warnings {
                println!("  warning: {w}");
            }
        }
        other => println!(
            "run {}: backup of {:?} {other}: {}",
            r.run_id,
            r.job_name,
            r.error_message.as_deref().unwrap_or("")
        ),
    }
    Ok(())
}

/// The 8-digit form restic itself shows people.
fn short_id(id: Option<&str>) -> &str {
    id.map(|s| crate::util::truncate_str(s, 8)).unwrap_or("?")
}

/// The job's timer or task is a single entry at its next instant (see
/// [`crate::sync::needs_reregistration`]): start a sync, in the background, to register the
/// following one.
fn reregister(config_path: &std::path::Path) {
    // i14: through the OS scheduler (the sync unit / task), so it outlives this run's unit
    crate::sync::catch_up::reregister(config_path);
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

async fn record(pool: &PgPool, run_id: i32, o: &Outcome) -> anyhow::Result<DateTime<Utc>> {
    let mut metadata = json!({
        "warnings": o.warnings,
        "missing_paths": o.missing_paths,
        "incomplete": o.exit_code == Some(restic::code::INCOMPLETE),
        "total_duration": o.summary.total_duration,
    });
    if let Some(m) = metadata.as_object_mut() {
        m.extend(o.extra_metadata.clone()); // i12: hooks and pings
    }
    let clamp = |v: Option<i64>| v.map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
    let end: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE runs SET end_time = NOW(), status = $1, exit_code = $2, error_message = $3, \
           files_new = $4, files_changed = $5, files_unmodified = $6, \
           dirs_new = $7, dirs_changed = $8, dirs_unmodified = $9, \
           data_added_bytes = $10, total_files_processed = $11, total_bytes_processed = $12, \
           snapshot_id = $13, restic_output = $14, restic_errors = $15, \
           duration_seconds = EXTRACT(EPOCH FROM (NOW() - start_time))::INTEGER, \
           metadata = COALESCE(metadata, '{}'::jsonb) || $16 \
         WHERE id = $17 RETURNING end_time",
    )
    .bind(o.status)
    .bind(o.exit_code)
    .bind(&o.error_message)
    .bind(clamp(o.summary.files_new))
    .bind(clamp(o.summary.files_changed))
    .bind(clamp(o.summary.files_unmodified))
    .bind(clamp(o.summary.dirs_new))
    .bind(clamp(o.summary.dirs_changed))
    .bind(clamp(o.summary.dirs_unmodified))
    .bind(o.summary.data_added)
    .bind(clamp(o.summary.total_files_processed))
    .bind(o.summary.total_bytes_processed)
    .bind(&o.summary.snapshot_id)
    .bind(&o.output)
    .bind(&o.errors)
    .bind(metadata)
    .bind(run_id)
    .fetch_one(pool)
    .await?;
    Ok(end)
}

/// i12: how the backup ended, as the hooks and pings see it.
fn monitor_input(o: &Outcome) -> crate::run_hooks::BackupResult {
    crate::run_hooks::BackupResult {
        status: o.status.to_string(),
        warnings: o.warnings.clone(),
        snapshot_id: o.summary.snapshot_id.clone(),
        exit_code: o.exit_code,
        error_message: o.error_message.clone(),
        files_new: o.summary.files_new,
        data_added_bytes: o.summary.data_added,
    }
}

/// i12: a failed after/finally hook makes a success a success with warnings; hook and ping
/// records join the run's metadata.
fn with_monitor_record(mut o: Outcome, m: crate::run_hooks::MonitorRecord) -> Outcome {
    if o.status == "success" && !m.warnings.is_empty() {
        o.warnings.extend(m.warnings);
        o.error_message = Some(format!("warning: {}", o.warnings.join("; warning: ")));
        if o.cli_code == exit::SUCCESS {
            o.cli_code = exit::WARNINGS;
        }
    }
    o.extra_metadata = m.metadata;
    o
}

fn failed(message: String, code: u8) -> Outcome {
    Outcome {
        status: "failed",
        error_message: Some(message),
        cli_code: code,
        ..Default::default()
    }
}

/// Builds restic's argv (without the program): never the repository or the password.
pub fn restic_argv(job: &Job, device_id: &str, extra: &[String]) -> Vec<String> {
    let mut argv = vec![
        "backup".to_string(),
        "--json".to_string(),
        format!("--host={device_id}"),
    ];
    for tag in jobs::standard_tags(job, device_id) {
        argv.push(format!("--tag={tag}"));
    }
    for pattern in job.exclude_patterns.iter().flatten() {
        argv.push(format!("--exclude={pattern}"));
    }
    argv.extend(extra.iter().cloned());
    argv.push("--".to_string());
    argv.extend(job.source_paths.iter().cloned());
    argv
}

async fn execute(
    job: &Job,
    config: &Config,
    settings: &Settings,
    repository: &str,
    password: &str,
    progress: bool,
    mut network_wait: crate::unattended::network::NetworkWait,
) -> Outcome {
    // i9: validate restic args before restic starts
    let extra = match crate::restic_args::validated(job.restic_args.as_ref()) {
        Ok(a) => a,
        Err(msg) => {
            return failed(
                format!("job {} ({:?}): {msg}", job.id, job.name),
                exit::USAGE,
            );
        }
    };
    if job.source_paths.is_empty() {
        return failed(
            format!(
                "job {} ({:?}) has no source paths; add some with `restic-fleet job edit {} --path PATH`",
                job.id, job.name, job.id
            ),
            exit::USAGE,
        );
    }
    let restic = match which::which("restic") {
        Ok(p) => p,
        Err(_) => {
            return failed(
                "restic was not found on PATH; install it (Debian/Ubuntu: apt install restic, \
                 Windows: winget install restic.restic) and make sure the scheduler's PATH \
                 contains it"
                    .to_string(),
                exit::FAILED,
            );
        }
    };
    let missing: Vec<String> = job
        .source_paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .cloned()
        .collect();

    let argv = restic_argv(job, &config.device_id, &extra);
    let mut attempt = match backup_once(
        &restic, &argv, repository, password, settings, progress, &job.name,
    )
    .await
    {
        Ok(a) => a,
        Err(message) => return failed(message, exit::FAILED),
    };
    // i14: a repository unreachable at start (the network lagging after wake) is retried for
    // up to network_wait_seconds
    while attempt.cancelled_by.is_none()
        && crate::unattended::network::unreachable(
            attempt.status.as_ref().ok().and_then(|s| s.code()),
            attempt.out.summary.is_some(),
            &format!(
                "{}\n{}\n{}",
                attempt.err.raw_tail,
                attempt.err.fatal.join("\n"),
                attempt.out.fatal.join("\n")
            ),
        )
        && network_wait.again().await
    {
        attempt = match backup_once(
            &restic, &argv, repository, password, settings, progress, &job.name,
        )
        .await
        {
            Ok(a) => a,
            Err(message) => return failed(message, exit::FAILED),
        };
    }
    // A lock left by a restic that died (another machine's crashed prune, a killed check) makes
    // the backup fail; `restic unlock` removes only such stale locks, then a retry. A live lock
    // (the maintenance owner pruning) is waited for, up to repository_lock_wait_seconds.
    // i11: wait for the repository lock
    let mut lock_wait = crate::repository::LockWait::from_settings(settings).unwrap_or_else(|e| {
        tracing::warn!("{e:#}; waiting the default 1800s for the repository lock");
        crate::repository::LockWait::new(Duration::from_secs(1800))
    });
    while attempt.cancelled_by.is_none() && attempt.lock_failure() && lock_wait.wait(true).await {
        tracing::warn!("the repository is locked; removing stale locks and trying again");
        remove_stale_locks(&restic, repository, password, settings).await;
        attempt = match backup_once(
            &restic, &argv, repository, password, settings, progress, &job.name,
        )
        .await
        {
            Ok(a) => a,
            Err(message) => return failed(message, exit::FAILED),
        };
    }
    let Attempt {
        status,
        out,
        err,
        cancelled_by,
    } = attempt;

    let exit_code = status.as_ref().ok().and_then(|s| s.code());
    let summary = out
        .summary
        .clone()
        .or(err.summary.clone())
        .unwrap_or_default();
    let mut fatal = out.fatal.clone();
    fatal.extend(err.fatal.iter().cloned());
    let mut file_errors = out.errors.clone();
    file_errors.extend(err.errors.iter().cloned());

    let mut missing_paths = missing;
    for p in restic::skipped_paths(&err.raw_tail) {
        // restic prints the absolute path; a pre-checked entry may be relative.
        if !missing_paths
            .iter()
            .any(|m| p == *m || p.ends_with(m.as_str()))
        {
            missing_paths.push(p);
        }
    }
    let mut warnings = Vec::new();
    // i14: restic that cannot use its cache is a warning, not a silent success
    warnings.extend(crate::unattended::cache::warning(&err.raw_tail));
    if !missing_paths.is_empty() {
        warnings.push(format!(
            "source path{} {} do{} not exist and {} NOT backed up",
            if missing_paths.len() == 1 { "" } else { "s" },
            missing_paths
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing_paths.len() == 1 { "es" } else { "" },
            if missing_paths.len() == 1 {
                "was"
            } else {
                "were"
            },
        ));
    }

    let mut outcome = Outcome {
        exit_code,
        summary,
        output: out.transcript,
        errors: err.transcript,
        missing_paths,
        ..Default::default()
    };
    if let Some(sig) = cancelled_by {
        // A signal that lands while restic is still creating its lock can leave that lock
        // behind (restic's cleanup ran before the lock existed). Its process is gone now, so
        // `restic unlock` (which removes only stale locks) clears it without touching others.
        remove_stale_locks(&restic, repository, password, settings).await;
        outcome.status = "cancelled";
        outcome.error_message = Some(format!(
            "cancelled by {sig}; restic was stopped with SIGINT and released its repository lock"
        ));
        outcome.cli_code = exit::CANCELLED;
        outcome.warnings = warnings;
        return outcome;
    }
    match exit_code {
        Some(restic::code::OK) => {
            outcome.status = "success";
            outcome.cli_code = if warnings.is_empty() {
                exit::SUCCESS
            } else {
                exit::WARNINGS
            };
        }
        Some(restic::code::INCOMPLETE) => {
            outcome.status = "success";
            outcome.cli_code = exit::WARNINGS;
            let shown: Vec<&str> = file_errors.iter().take(5).map(String::as_str).collect();
            warnings.push(format!(
                "restic finished with warnings (exit 3): snapshot {} is incomplete because {} \
                 item(s) could not be read{}{}",
                outcome.summary.snapshot_id.as_deref().unwrap_or("?"),
                file_errors.len().max(1),
                if shown.is_empty() { "" } else { ": " },
                shown.join("; ")
            ));
        }
        Some(code) => {
            outcome.status = "failed";
            outcome.cli_code = exit::FAILED;
            outcome.error_message = Some(restic::failure_reason(
                code,
                &fatal,
                &outcome.errors,
                repository,
            ));
        }
        None => {
            outcome.status = "failed";
            outcome.cli_code = exit::FAILED;
            outcome.error_message = Some(match &status {
                Ok(st) => format!("restic was killed by a signal ({st})"),
                Err(e) => format!("waiting for restic failed: {e}"),
            });
        }
    }
    if outcome.status == "success" && !warnings.is_empty() {
        outcome.error_message = Some(format!("warning: {}", warnings.join("; warning: ")));
    }
    // i13: no second repository open to learn the full snapshot id: restic 0.17+ reports it,
    // and an older restic's short id is resolved by the next sync (src/snapshot_ids.rs).
    outcome.warnings = warnings;
    tracing::debug!("restic repository {}", mask_url(repository));
    outcome
}

/// One restic process: how it ended and what it said.
struct Attempt {
    status: std::io::Result<std::process::ExitStatus>,
    out: StreamResult,
    err: StreamResult,
    cancelled_by: Option<&'static str>,
}

impl Attempt {
    /// restic could not lock the repository (0.17+: exit 11; older: its message).
    fn lock_failure(&self) -> bool {
        let code = self.status.as_ref().ok().and_then(|s| s.code());
        if code == Some(restic::code::LOCK_FAILED) {
            return true;
        }
        code == Some(restic::code::FATAL)
            && [&self.out, &self.err].iter().any(|s| {
                s.fatal
                    .iter()
                    .chain(std::iter::once(&s.raw_tail))
                    .any(|t| t.contains("unable to create lock") || t.contains("already locked"))
            })
    }
}

/// Runs `restic <argv>` once, streaming its output into a progress display and transcripts, and
/// stops it cleanly on SIGINT/SIGTERM. The error is a sentence for a run that never started.
async fn backup_once(
    restic: &std::path::Path,
    argv: &[String],
    repository: &str,
    password: &str,
    settings: &Settings,
    progress: bool,
    job_name: &str,
) -> Result<Attempt, String> {
    let mut cmd = restic_command(restic, repository, password, settings);
    cmd.args(argv)
        .env("RESTIC_PROGRESS_FPS", if progress { "4" } else { "0.0167" })
        .stdout(Stdio::piped());
    #[cfg(unix)]
    cmd.process_group(0); // signals reach restic only through us, once
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start restic at {}: {e}", restic.display()))?;
    let reporter = Arc::new(Mutex::new(Progress::new(progress, job_name)));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("restic's output could not be captured".into());
    };
    let out_task = tokio::spawn(read_stream(stdout, reporter.clone()));
    let err_task = tokio::spawn(read_stream(stderr, reporter.clone()));

    let mut cancelled_by: Option<&'static str> = None;
    let status = loop {
        tokio::select! {
            st = child.wait() => break st,
            sig = shutdown_signal() => {
                if cancelled_by.is_none() {
                    tracing::warn!("received {sig}: stopping restic so it releases its repository lock");
                    cancelled_by = Some(sig);
                    interrupt(&child);
                    let grace = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
                    match grace {
                        Ok(st) => break st,
                        Err(_) => {
                            tracing::error!("restic did not stop within 60s; killing it");
                            let _ = child.start_kill();
                            break child.wait().await;
                        }
                    }
                }
            }
        }
    };
    let out = out_task.await.unwrap_or_default();
    let err = err_task.await.unwrap_or_default();
    if let Ok(mut p) = reporter.lock() {
        p.finish();
    }
    Ok(Attempt {
        status,
        out,
        err,
        cancelled_by,
    })
}

/// A restic command whose environment carries the repository, the password and the cache
/// directory (never its argv), and nothing inherited that could contradict them.
// i13: pub(crate) for src/snapshot_ids.rs.
pub(crate) fn restic_command(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(restic);
    cmd.env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND")
        .env_remove("RESTIC_REPOSITORY_FILE")
        .env("RESTIC_REPOSITORY", repository)
        .env("RESTIC_PASSWORD", password)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // i14: restic's cache directory and the backend environment (repository_environment)
    crate::unattended::configure_restic(&mut cmd, settings);
    cmd
}

/// Runs `restic unlock`: removes locks whose process no longer exists (on this host) or that are
/// older than 30 minutes; live locks of other machines are left alone.
async fn remove_stale_locks(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
) {
    let mut cmd = restic_command(restic, repository, password, settings);
    cmd.arg("unlock").stdout(Stdio::null());
    match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => tracing::warn!(
            "restic unlock failed: {}",
            redact(String::from_utf8_lossy(&out.stderr).trim(), password)
        ),
        Ok(Err(e)) => tracing::warn!("could not start restic unlock: {e}"),
        Err(_) => tracing::warn!("restic unlock did not finish within 120s"),
    }
}

#[cfg(unix)]
fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
}

#[cfg(not(unix))]
fn interrupt(child: &tokio::process::Child) {
    // Windows has no SIGINT for a child without a console of its own; restic's locks are
    // removed by its own stale-lock detection (and `restic unlock`).
    let _ = child.id();
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C / Ctrl-Break on Windows) with the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

async fn read_stream<R: AsyncRead + Unpin>(
    reader: R,
    progress: Arc<Mutex<Progress>>,
) -> StreamResult {
    let mut lines = BufReader::new(reader).lines();
    let mut transcript = Transcript::new(restic::OUTPUT_CAP_BYTES);
    let mut result = StreamResult::default();
    let mut tail = Transcript::new(64 * 1024);
    while let Ok(Some(line)) = lines.next_line().await {
        match restic::parse_line(&line) {
            Line::Status(st) => {
                if let Ok(mut p) = progress.lock() {
                    p.update(&st);
                }
                continue; // per-second status lines are not stored
            }
            Line::Summary(s) => result.summary = Some(s),
            Line::Error(e) => {
                tracing::warn!("restic: {e}");
                result.errors.push(e)
            }
            Line::ExitError(m) => result.fatal.push(m),
            Line::OtherJson => {}
            Line::Text => {
                if line.trim_start().starts_with("Fatal:") {
                    result.fatal.push(line.trim().to_string());
                }
                tail.push_line(&line);
            }
        }
        transcript.push_line(&line);
    }
    result.transcript = transcript.finish();
    result.raw_tail = tail.finish();
    result
}

/// A progress bar on a terminal, journal-friendly log lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: std::time::Instant,
}

impl Progress {
    fn new(terminal: bool, job_name: &str) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(1000),
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(job_name.to_string());
            bar
        });
        Self {
            bar,
            last_log: std::time::Instant::now(),
        }
    }

    fn update(&mut self, st: &Status) {
        let msg = format!(
            "{}/{} files, {}/{}",
            st.files_done,
            st.total_files,
            human_bytes(st.bytes_done),
            human_bytes(st.total_bytes)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position((st.percent_done * 1000.0).clamp(0.0, 1000.0) as u64);
                bar.set_message(msg);
            }
            None => {
                if self.last_log.elapsed() >= Duration::from_secs(60) {
                    self.last_log = std::time::Instant::now();
                    let eta = st
                        .seconds_remaining
                        .map(|s| format!(", about {s}s left"))
                        .unwrap_or_default();
                    tracing::info!("progress {:.0}%: {msg}{eta}", st.percent_done * 100.0);
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

use restic::Status;

/// Whether `run` should draw a progress bar: stderr is a terminal and JSON was not asked for.
pub fn want_progress(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}
