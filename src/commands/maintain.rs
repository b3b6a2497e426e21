//! Retention and maintenance of the shared repository by one owner device.
//!
//! `restic-fleet maintain [--dry-run] [--json] [--force]` runs on the device named by the
//! setting `maintenance_device` (elsewhere it exits 4 naming the owner, unless `--force`):
//!
//! 1. `unlock`: removes stale locks by restic's own rules (never `--remove-all`);
//! 2. `forget`: for each job with a retention policy, exactly that job's snapshots
//!    (see [`crate::ops::forget`]);
//! 3. `prune` (setting `prune_max_unused`);
//! 4. `check` (setting `check_read_data_subset`; empty = structure only).
//!
//! Each step is one row of `maintenance_runs` (see [`crate::store::maintenance`]). Every step
//! waits and retries while backups hold the repository lock
//! ([`crate::platform::repository::LockWait`]). `--dry-run` runs only `forget --dry-run` and
//! records nothing. [`crate::ops::maintenance_status`] turns the rows into the `maintenance`
//! object of `restic-fleet status`.

use std::path::Path;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::exit::{self, Failure};
use crate::domain::retention::RetentionPolicy;
use crate::domain::settings::Settings;
use crate::output::printable;
use crate::platform::repository::{LockWait, Repository, ResticOutput, bounded};
use crate::store::maintenance::{JobRef, StepEnd};
use crate::usage_err;

#[derive(Debug, clap::Args)]
pub struct MaintainArgs {
    /// Print what forget would remove per job (and snapshots of unknown jobs); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Maintain even though this device is not the maintenance_device.
    #[arg(long)]
    pub force: bool,
    /// Also forget the snapshots tagged for jobs that no longer exist (which maintain only
    /// reports otherwise); on the maintenance owner, which sees every job.
    #[arg(long)]
    pub forget_unknown_jobs: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One job's forget in the report.
#[derive(Debug, Clone, Serialize)]
pub struct JobForget {
    pub job_id: Uuid,
    pub job_name: String,
    pub device_id: String,
    /// The policy applied (`keep-last=2 ...`) and where it came from (`job`, `default`).
    pub policy: String,
    pub policy_source: &'static str,
    /// Snapshot ids kept and removed (with `--dry-run`: that would be removed).
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    pub error: Option<String>,
}

/// One step in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    /// `success` or `failed`.
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub snapshots_removed: Option<i32>,
    pub bytes_freed: Option<i64>,
    pub error: Option<String>,
    /// The `maintenance_runs` row (null with `--dry-run`).
    pub record_id: Option<i32>,
}

/// `maintain --json`: `device_id`, `owner`, `dry_run`, `ok`, `steps` (`step`, `status`,
/// `exit_code`, `snapshots_removed`, `bytes_freed`, `error`, `record_id`), `jobs` (per job with
/// a policy: `job_id`, `job_name`, `device_id`, `policy`, `policy_source`, `kept`, `removed`,
/// `error`), `jobs_without_policy` (count; they keep everything), `unknown_job_snapshots`
/// (`snapshot_id`, `time`, `hostname`, `paths`, `job_id`: tagged `backup:<uuid>` with no such
/// job; reported, removed only with `--forget-unknown-jobs`), `unknown_job_snapshots_forgotten`
/// (true when they were removed).
#[derive(Debug, Default, Serialize)]
pub struct MaintainReport {
    pub device_id: String,
    pub owner: Option<String>,
    pub dry_run: bool,
    pub ok: bool,
    pub steps: Vec<StepReport>,
    pub jobs: Vec<JobForget>,
    pub jobs_without_policy: usize,
    pub unknown_job_snapshots: Vec<crate::ops::forget::Orphan>,
    pub unknown_job_snapshots_forgotten: bool,
}

/// Runs `maintain`. Exit code 0 when every step succeeded, 1 otherwise.
pub async fn run(config_path: &Path, args: &MaintainArgs) -> anyhow::Result<u8> {
    let (cfg, pool) = crate::commands::open(config_path).await?;
    let settings = crate::store::settings::load(&pool, &cfg.device_id).await?;
    let owner = crate::store::maintenance::global_owner(&pool).await?;
    check_owner(owner.as_deref(), &cfg.device_id, args.force)?;
    // One maintain at a time on this device (the timer and a hand run): an OS file lock, which
    // the kernel releases if the process dies, so the steps a dead maintain left `running` can
    // be closed safely under it.
    let _lock = match lock_maintenance(config_path)? {
        Some(lock) => lock,
        None => {
            return Err(Failure::skipped(
                "skipped: maintenance is already running on this device".to_string(),
            )
            .into());
        }
    };
    let repo = Repository::from_settings(&settings)?;
    // Validated before anything runs: a bad setting stops maintenance at once.
    let prune_args = crate::domain::maintenance::prune_args(&settings)?;
    let check_args = crate::domain::maintenance::check_args(&settings)?;
    let default = crate::domain::retention::default_policy(&settings)?;
    let m = Maintenance {
        pool: &pool,
        repo: &repo,
        device_id: &cfg.device_id,
        settings: &settings,
    };
    m.lock_wait()?;

    let mut report = MaintainReport {
        device_id: cfg.device_id.clone(),
        owner,
        dry_run: args.dry_run,
        ..Default::default()
    };
    if !args.dry_run {
        let closed = crate::store::maintenance::close_stale_steps(&pool, &cfg.device_id).await?;
        if closed > 0 {
            tracing::warn!("closed {closed} maintenance step(s) left running by a dead process");
        }
        let step = m.restic_step("unlock", vec![], json!({})).await?;
        report.steps.push(step);
    }
    forget(&m, &default, args, &mut report).await?;
    if !args.dry_run {
        let step = m.restic_step("prune", prune_args, json!({})).await?;
        report.steps.push(step);
        let metadata = json!({ "args": check_args });
        let step = m.restic_step("check", check_args, metadata).await?;
        report.steps.push(step);
    }

    report.ok = report.steps.iter().all(|s| s.status == "success");
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}
/// Refuses to maintain from a device that is not the owner (unless `force`), or without an
/// owner.
fn check_owner(owner: Option<&str>, device_id: &str, force: bool) -> anyhow::Result<()> {
    match owner {
        Some(o) if o == device_id => Ok(()),
        _ if force => {
            tracing::warn!(
                "maintaining from {:?} although the maintenance_device is {}",
                device_id,
                owner.unwrap_or("not set")
            );
            Ok(())
        }
        Some(o) => Err(Failure::skipped(format!(
            "skipped: the repository is maintained by device {o:?}, not by this device {:?}; \
             run maintain there, pass --force, or make this device the owner with \
             `restic-fleet settings set maintenance_device {}`",
            device_id, device_id
        ))
        .into()),
        None => Err(usage_err!(
            "no maintenance owner is set; name the one device that maintains the repository \
             with `restic-fleet settings set maintenance_device {}` (or pass --force)",
            device_id
        )),
    }
}

/// What every step works with: the database, the repository, this device and its settings.
struct Maintenance<'a> {
    pool: &'a PgPool,
    repo: &'a Repository,
    device_id: &'a str,
    settings: &'a Settings,
}

impl Maintenance<'_> {
    /// A fresh wait for the repository lock, by the settings.
    fn lock_wait(&self) -> anyhow::Result<LockWait> {
        LockWait::from_settings(self.settings)
    }

    /// Runs one recorded step that is a single restic command (`unlock`, `prune`, `check`)
    /// with `args` after its name, waiting while backups hold the repository lock.
    async fn restic_step(
        &self,
        name: &'static str,
        args: Vec<String>,
        metadata: serde_json::Value,
    ) -> anyhow::Result<StepReport> {
        let mut wait = self.lock_wait()?;
        let step = Step::start(self.pool, self.device_id, name).await?;
        let mut argv = vec![name.to_string()];
        // restic 0.18+ says what check found in a summary (0.14 ignores the flag).
        let check_json = name == "check"
            && self
                .repo
                .version()
                .is_some_and(crate::domain::restic::Version::check_json);
        if check_json {
            argv.push("--json".to_string());
        }
        argv.extend(args);
        let out = self.repo.run_waiting(&argv, &mut wait).await;
        let mut end = step_end(&out, self.repo, metadata);
        if name == "prune" {
            end.bytes_freed = prune_freed_bytes(&out.stdout);
        }
        if let Some(summary) = check_json
            .then(|| crate::domain::restic::check_summary(&out.stdout))
            .flatten()
        {
            if !out.success() && summary.num_errors > 0 {
                end.error_message = Some(crate::domain::restic::check_failure(
                    &summary,
                    &out.stderr,
                    &self.repo.url,
                ));
            }
            end.metadata["check"] = serde_json::to_value(&summary)?;
        }
        step.finish(self.pool, end).await
    }
}

/// What the forgets of all jobs printed, removed and how the last failed one exited.
struct ForgetTotals {
    output: String,
    errors: String,
    removed: usize,
    last_code: Option<i32>,
}

/// The `forget` step: each job with a retention policy forgets exactly its own snapshots
/// (see [`crate::ops::forget`]), then snapshots of unknown jobs are looked for. Recorded as
/// one step, except with `--dry-run`.
async fn forget(
    m: &Maintenance<'_>,
    default: &RetentionPolicy,
    args: &MaintainArgs,
    report: &mut MaintainReport,
) -> anyhow::Result<()> {
    let dry_run = args.dry_run;
    let jobs = crate::store::maintenance::all_jobs(m.pool).await?;
    let own = crate::store::retention::load_all(m.pool).await?;
    let step = if dry_run {
        None
    } else {
        Some(Step::start(m.pool, m.device_id, "forget").await?)
    };
    let mut totals = ForgetTotals {
        output: String::new(),
        errors: String::new(),
        removed: 0,
        last_code: Some(0),
    };
    for job in &jobs {
        let view =
            crate::domain::retention::RetentionView::effective(own.get(&job.id).cloned(), default);
        if view.policy.is_empty() {
            report.jobs_without_policy += 1;
            continue;
        }
        let entry = forget_one(m, job, &view, dry_run, &mut totals).await?;
        report.jobs.push(entry);
    }
    report.unknown_job_snapshots = unknown_job_snapshots(m, &jobs).await?;
    let mut unknown_error = None;
    if args.forget_unknown_jobs && !dry_run && !report.unknown_job_snapshots.is_empty() {
        unknown_error = forget_unknown(m, report, &mut totals).await?;
    }
    let end = forget_end(report, totals, unknown_error);
    report.steps.push(match step {
        Some(step) => step.finish(m.pool, end).await?,
        None => StepReport {
            step: "forget",
            status: if end.success { "success" } else { "failed" },
            exit_code: end.exit_code,
            snapshots_removed: end.snapshots_removed,
            bytes_freed: None,
            error: end.error_message,
            record_id: None,
        },
    });
    Ok(())
}

/// One job's forget with its effective policy, added to `totals`.
async fn forget_one(
    m: &Maintenance<'_>,
    job: &JobRef,
    view: &crate::domain::retention::RetentionView,
    dry_run: bool,
    totals: &mut ForgetTotals,
) -> anyhow::Result<JobForget> {
    let mut entry = JobForget {
        job_id: job.id,
        job_name: job.name.clone(),
        device_id: job.device_id.clone(),
        policy: view.description.clone(),
        policy_source: view.source,
        kept: vec![],
        removed: vec![],
        error: None,
    };
    match forget_job(m.repo, job, &view.policy, dry_run, &mut m.lock_wait()?).await {
        Ok((result, out)) => {
            totals.removed += result.removed.len();
            entry.kept = result.kept;
            entry.removed = result.removed;
            totals
                .output
                .push_str(&format!("job {} ({:?}):\n{}", job.id, job.name, out.stdout));
            totals.errors.push_str(&out.stderr);
        }
        Err((message, out)) => {
            tracing::error!("forget of job {} ({:?}): {message}", job.id, job.name);
            totals.last_code = out.code;
            totals.errors.push_str(&out.stderr);
            entry.error = Some(message);
        }
    }
    Ok(entry)
}

/// Snapshots of jobs that no longer exist: reported for a human to decide. Only a session
/// that sees every job can tell: under row-level security a non-owner (`--force`) sees its
/// own jobs only and would take every other device's snapshots for orphans.
async fn unknown_job_snapshots(
    m: &Maintenance<'_>,
    jobs: &[JobRef],
) -> anyhow::Result<Vec<crate::ops::forget::Orphan>> {
    if crate::store::maintenance::sees_every_job(m.pool).await? {
        match m.repo.snapshots(None, &[]).await {
            Ok(all) => return Ok(crate::ops::forget::orphans(&all, jobs)),
            Err(e) => tracing::warn!("could not look for snapshots of unknown jobs: {e:#}"),
        }
    } else {
        tracing::warn!(
            "not looking for snapshots of unknown jobs: device {:?} is not the maintenance owner \
             and sees only its own jobs; run maintain on the owner to find them",
            m.device_id
        );
    }
    Ok(vec![])
}

/// `--forget-unknown-jobs`: forgets the snapshots of unknown jobs by id, in one restic call.
/// Returns why it failed, if it did.
async fn forget_unknown(
    m: &Maintenance<'_>,
    report: &mut MaintainReport,
    totals: &mut ForgetTotals,
) -> anyhow::Result<Option<String>> {
    let orphans = &report.unknown_job_snapshots;
    let mut argv = vec!["forget".to_string()];
    argv.extend(orphans.iter().map(|o| o.snapshot_id.clone()));
    let out = m.repo.run_waiting(&argv, &mut m.lock_wait()?).await;
    totals
        .output
        .push_str(&format!("snapshots of unknown jobs:\n{}", out.stdout));
    totals.errors.push_str(&out.stderr);
    if !out.success() {
        totals.last_code = out.code;
        return Ok(Some(format!(
            "snapshots of unknown jobs: {}",
            out.reason(m.repo)
        )));
    }
    totals.removed += orphans.len();
    report.unknown_job_snapshots_forgotten = true;
    Ok(None)
}

/// How the `forget` step ended, with a summary of every job's forget as its metadata.
fn forget_end(
    report: &MaintainReport,
    totals: ForgetTotals,
    unknown_error: Option<String>,
) -> StepEnd {
    let failures: Vec<String> = report
        .jobs
        .iter()
        .filter_map(|j| {
            j.error
                .as_ref()
                .map(|e| format!("job {} ({:?}): {e}", j.job_id, j.job_name))
        })
        .chain(unknown_error)
        .collect();
    StepEnd {
        success: failures.is_empty(),
        exit_code: if failures.is_empty() {
            Some(0)
        } else {
            totals.last_code
        },
        snapshots_removed: Some(i32::try_from(totals.removed).unwrap_or(i32::MAX)),
        bytes_freed: None,
        error_message: (!failures.is_empty()).then(|| failures.join("; ")),
        output: bounded(&totals.output),
        errors: bounded(&totals.errors),
        metadata: json!({
            "jobs": report.jobs.iter().map(|j| json!({
                "job_id": j.job_id, "policy": j.policy, "removed": j.removed.len(),
                "kept": j.kept.len(), "error": j.error,
            })).collect::<Vec<_>>(),
            "jobs_without_policy": report.jobs_without_policy,
            "unknown_job_snapshots": report.unknown_job_snapshots.len(),
            "unknown_job_snapshots_forgotten": report.unknown_job_snapshots_forgotten,
        }),
    }
}

/// The lock file beside the config file (`maintain.lock`). `None` when another process holds it.
fn lock_maintenance(config_path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let dir = config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join("maintain.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            usage_err!(
                "cannot open the maintenance lock file {}: {e}; run maintain as the user that \
                 owns the config file",
                path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::anyhow!("cannot lock {}: {e}", path.display()))
        }
    }
}

type ForgetOutcome =
    Result<(crate::ops::forget::ForgetResult, ResticOutput), (String, ResticOutput)>;

async fn forget_job(
    repo: &Repository,
    job: &JobRef,
    policy: &RetentionPolicy,
    dry_run: bool,
    wait: &mut LockWait,
) -> ForgetOutcome {
    let mut argv = match crate::ops::forget::forget_args(job, policy) {
        Ok(a) => a,
        Err(e) => return Err((e, ResticOutput::default())),
    };
    if dry_run {
        argv.push("--dry-run".to_string());
    }
    let out = repo.run_waiting(&argv, wait).await;
    if !out.success() {
        return Err((out.reason(repo), out));
    }
    match crate::ops::forget::parse_forget(&out.stdout) {
        Ok(r) => Ok((r, out)),
        Err(e) => Err((e, out)),
    }
}

fn step_end(out: &ResticOutput, repo: &Repository, metadata: serde_json::Value) -> StepEnd {
    StepEnd {
        success: out.success(),
        exit_code: out.code,
        error_message: (!out.success()).then(|| out.reason(repo)),
        output: bounded(&out.stdout),
        errors: bounded(&out.stderr),
        metadata,
        ..Default::default()
    }
}

/// A step being recorded.
struct Step {
    id: i32,
    name: &'static str,
}

impl Step {
    async fn start(pool: &PgPool, device: &str, name: &'static str) -> anyhow::Result<Step> {
        tracing::info!("maintenance: {name}");
        Ok(Step {
            id: crate::store::maintenance::start_step(
                pool,
                device,
                name,
                crate::platform::host::VERSION,
                &crate::platform::host::hostname(),
            )
            .await?,
            name,
        })
    }

    async fn finish(self, pool: &PgPool, end: StepEnd) -> anyhow::Result<StepReport> {
        crate::store::maintenance::finish_step(pool, self.id, &end).await?;
        if let Some(e) = &end.error_message {
            tracing::error!("maintenance: {} failed: {e}", self.name);
        }
        Ok(StepReport {
            step: self.name,
            status: if end.success { "success" } else { "failed" },
            exit_code: end.exit_code,
            snapshots_removed: end.snapshots_removed,
            bytes_freed: end.bytes_freed,
            error: end.error_message,
            record_id: Some(self.id),
        })
    }
}

/// The bytes prune removed, from its `total prune:  N blobs / 1.234 MiB` line (restic 0.14
/// prints no JSON for prune). `None` when the line is absent.
pub fn prune_freed_bytes(stdout: &str) -> Option<i64> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("total prune:"))?;
    let size = line.rsplit('/').next()?.trim();
    let (num, unit) = size.split_once(' ')?;
    let n: f64 = num.trim().parse().ok()?;
    let mult: f64 = match unit.trim() {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult).round() as i64)
}

fn print_report(r: &MaintainReport) {
    println!(
        "maintenance{} of the repository by device {:?}:",
        if r.dry_run { " (dry run)" } else { "" },
        r.device_id
    );
    for j in &r.jobs {
        match &j.error {
            Some(e) => println!(
                "  job {} ({:?} on {}): forget FAILED: {}",
                j.job_id,
                j.job_name,
                printable(&j.device_id),
                printable(e)
            ),
            None => println!(
                "  job {} ({:?} on {}): {} ({}): {} {}, {} kept",
                j.job_id,
                j.job_name,
                printable(&j.device_id),
                printable(&j.policy),
                j.policy_source,
                j.removed.len(),
                if r.dry_run {
                    "would be removed"
                } else {
                    "removed"
                },
                j.kept.len()
            ),
        }
        if r.dry_run {
            for id in &j.removed {
                println!(
                    "      would remove {}",
                    printable(crate::domain::text::truncate_str(id, 8))
                );
            }
        }
    }
    if r.jobs_without_policy > 0 {
        println!(
            "  {} job(s) without a retention policy keep every snapshot",
            r.jobs_without_policy
        );
    }
    let fate = if r.unknown_job_snapshots_forgotten {
        "removed"
    } else {
        "not removed; `restic-fleet maintain --forget-unknown-jobs` removes such snapshots"
    };
    for o in &r.unknown_job_snapshots {
        println!(
            "  snapshot {} of {} at {} is tagged backup:{} but no such job exists ({fate})",
            printable(crate::domain::text::truncate_str(&o.snapshot_id, 8)),
            printable(&o.hostname),
            o.time.to_rfc3339(),
            o.job_id,
        );
    }
    for s in &r.steps {
        let extra = match (s.snapshots_removed, s.bytes_freed) {
            (Some(n), _) if s.step == "forget" && r.dry_run => {
                format!(", {n} snapshot(s) would be removed")
            }
            (Some(n), _) if s.step == "forget" => format!(", {n} snapshot(s) removed"),
            (_, Some(b)) => format!(", {} freed", crate::output::human_bytes(b.max(0) as u64)),
            _ => String::new(),
        };
        println!(
            "  {:<7} {}{extra}{}",
            s.step,
            s.status,
            s.error
                .as_deref()
                .map(|e| format!(": {}", printable(e)))
                .unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_summary_gives_the_freed_bytes() {
        let out = "to repack: 0 blobs / 0 B\nthis removes: 2 blobs / 1.5 KiB\n\
                   to delete:  3 blobs / 2.000 MiB\ntotal prune:           5 blobs / 2.002 MiB\n\
                   remaining: 6 blobs / 1.056 KiB\n";
        assert_eq!(prune_freed_bytes(out), Some(2_099_249));
        assert_eq!(prune_freed_bytes("total prune: 0 blobs / 0 B"), Some(0));
        assert_eq!(prune_freed_bytes("nothing"), None);
    }
}
