//! Retention and maintenance of every repository this device maintains, each once.
//!
//! `restic-fleet maintain [--dry-run] [--json] [--force]` maintains the repositories of the
//! maintainer rule ([`crate::domain::repository`]): this device's own (its jobs' repositories
//! made with `{device_id}`/`{job_id}` or its own `repository_url`) and, on the device named by
//! `maintenance_device`, the shared ones (every job whose device has no `repository_url` of its
//! own, under the global settings, unless the global template is per device). A device that
//! maintains nothing exits 4 naming the owner (unless `--force`). For each repository:
//!
//! 1. `unlock`: removes stale locks by restic's own rules (never `--remove-all`);
//! 2. `forget`: for each job with a retention policy, exactly that job's snapshots, in batches
//!    of one policy (see [`crate::ops::forget`]), guided by one `restic snapshots` listing;
//! 3. `prune` (setting `prune_max_unused`);
//! 4. `check` (setting `check_read_data_subset`; empty = structure only);
//!
//! then the repository's snapshot count (and size, from prune) is recorded in `repositories`.
//! Each step is one row of `maintenance_runs` with its repository (see
//! [`crate::store::maintenance`]); the database refuses a device that does not maintain it.
//! Every step waits and retries while backups hold the repository lock
//! ([`crate::platform::repository::LockWait`]). `--dry-run` runs only `forget --dry-run` and
//! records nothing. [`crate::ops::maintenance_status`] turns the rows into the `maintenance`
//! object of `restic-fleet status`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::exit::{self, Failure};
use crate::domain::repository::Maintainer;
use crate::domain::retention::RetentionPolicy;
use crate::domain::settings::Settings;
use crate::output::printable;
use crate::platform::repository::{LockWait, Repository, ResticOutput, Snapshot, bounded};
use crate::store::maintenance::{JobRef, StepEnd};
use crate::usage_err;

#[derive(Debug, clap::Args)]
pub struct MaintainArgs {
    /// Print what forget would remove per job (and snapshots of unknown jobs); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Maintain the shared repositories even though this device is not the maintenance_device
    /// (the database refuses a device role that is not; for admin sessions).
    #[arg(long)]
    pub force: bool,
    /// Also forget the snapshots tagged for jobs that no longer exist (which maintain only
    /// reports otherwise); on the maintainer, which sees every job of the repository.
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
    /// Whether it was forgotten alone (its snapshots differ in tags or host) or in a batch.
    pub alone: bool,
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

/// One repository's maintenance in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepositoryReport {
    /// The `repositories` row (null with `--dry-run`, or when the database refused it).
    pub repository_id: Option<i32>,
    /// The first 12 hex digits of the fingerprint (the URL may hold credentials).
    pub label: String,
    pub fingerprint: String,
    /// The device that maintains it; null for a shared one (the maintenance_device).
    pub maintainer: Option<String>,
    pub ok: bool,
    /// Why the repository could not be maintained at all (no step ran).
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    pub jobs: Vec<JobForget>,
    pub jobs_without_policy: usize,
    /// How many `restic forget` processes the forget step started.
    pub forget_processes: usize,
    /// The snapshots left after forget (the listing less those removed).
    pub snapshot_count: Option<usize>,
    pub unknown_job_snapshots: Vec<crate::ops::forget::Orphan>,
    pub unknown_job_snapshots_forgotten: bool,
}

/// `maintain --json`: see `output::json_fields` (`MAINTAIN`). The top-level `steps`, `jobs`,
/// `jobs_without_policy`, `unknown_job_snapshots` and `unknown_job_snapshots_forgotten` sum up
/// every repository (one repository: exactly its own), `repositories` has each.
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
    pub repositories: Vec<RepositoryReport>,
    /// Jobs whose repository could not be worked out (`job_id`, `error`).
    pub job_errors: Vec<JobError>,
}

/// A job left out because its repository URL cannot be built.
#[derive(Debug, Clone, Serialize)]
pub struct JobError {
    pub job_id: Uuid,
    pub error: String,
}

/// Runs `maintain`. Exit code 0 when every step succeeded, 1 otherwise.
pub async fn run(config_path: &Path, args: &MaintainArgs) -> anyhow::Result<u8> {
    let (cfg, pool) = crate::commands::open(config_path).await?;
    let settings = crate::store::settings::load(&pool, &cfg.device_id).await?;
    let owner = crate::store::maintenance::global_owner(&pool).await?;
    let is_owner = owner.as_deref() == Some(cfg.device_id.as_str());
    let jobs = crate::store::maintenance::all_jobs(&pool).await?;
    let shared_settings = if is_owner || args.force {
        let own = crate::store::maintenance::devices_with_own_repository(&pool).await?;
        Some((crate::store::settings::global(&pool).await?, own))
    } else {
        None
    };
    let (targets, job_errors) = targets(
        &cfg.device_id,
        &settings,
        shared_settings.as_ref().map(|(s, own)| (s, own)),
        &jobs,
    );
    if targets.is_empty() && job_errors.is_empty() {
        check_owner(owner.as_deref(), &cfg.device_id, args.force)?;
    }
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
    // Validated before anything runs: a bad setting stops maintenance at once.
    let default = crate::domain::retention::default_policy(&settings)?;
    let own_policies = crate::store::retention::load_all(&pool).await?;
    let sees_all = crate::store::maintenance::sees_every_job(&pool).await?;
    let mut report = MaintainReport {
        device_id: cfg.device_id.clone(),
        owner,
        dry_run: args.dry_run,
        job_errors,
        ..Default::default()
    };
    if !args.dry_run {
        let closed = crate::store::maintenance::close_stale_steps(&pool, &cfg.device_id).await?;
        if closed > 0 {
            tracing::warn!("closed {closed} maintenance step(s) left running by a dead process");
        }
    }
    for target in &targets {
        let policies = Policies {
            own: &own_policies,
            default: &default,
            known: &jobs,
        };
        let r = maintain_one(&pool, &cfg.device_id, target, &policies, sees_all, args).await;
        report.repositories.push(r);
    }
    sum_up(&mut report);
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

/// The top-level totals of the report from its repositories.
fn sum_up(report: &mut MaintainReport) {
    for r in &report.repositories {
        report.steps.extend(r.steps.iter().cloned());
        report.jobs.extend(r.jobs.iter().cloned());
        report.jobs_without_policy += r.jobs_without_policy;
        report
            .unknown_job_snapshots
            .extend(r.unknown_job_snapshots.iter().cloned());
        report.unknown_job_snapshots_forgotten |= r.unknown_job_snapshots_forgotten;
    }
    report.ok = report.job_errors.is_empty() && report.repositories.iter().all(|r| r.ok);
}

/// Refuses to maintain from a device that maintains nothing (unless `force`), or without an
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

/// One repository to maintain: its URL, the settings that reach it (password, environment,
/// cache), whether it is shared, and its jobs.
#[derive(Debug)]
pub struct Target<'a> {
    pub url: String,
    pub settings: Settings,
    pub shared: bool,
    pub jobs: Vec<&'a JobRef>,
}

/// The repositories this device maintains, each once, with their jobs: its own jobs'
/// repositories whose maintainer it is (under `mine`, its settings), and, given `shared` (the
/// global settings and the devices with a `repository_url` of their own), every other device's
/// job in a shared repository. Jobs whose URL cannot be built are returned apart.
pub fn targets<'a>(
    me: &str,
    mine: &Settings,
    shared: Option<(&Settings, &HashSet<String>)>,
    jobs: &'a [JobRef],
) -> (Vec<Target<'a>>, Vec<JobError>) {
    let mut by_url: BTreeMap<String, Target<'a>> = BTreeMap::new();
    let mut errors = Vec::new();
    for job in jobs {
        let mut candidates: Vec<(&Settings, bool)> = Vec::new();
        if job.device_id == me {
            candidates.push((mine, false));
        }
        if let Some((global, own)) = shared
            && !own.contains(&job.device_id)
            && !(job.device_id == me && mine.own_keys().contains("repository_url"))
        {
            candidates.push((global, true));
        }
        let mut failed = false;
        for (settings, shared_repo) in candidates {
            let repo = match crate::domain::repository::of_job(settings, &job.place()) {
                Ok(r) => r,
                Err(error) => {
                    if !failed {
                        errors.push(JobError {
                            job_id: job.id,
                            error,
                        });
                    }
                    failed = true;
                    continue;
                }
            };
            let wanted = if shared_repo {
                Maintainer::Shared
            } else {
                Maintainer::Device(me.to_string())
            };
            if repo.maintainer != wanted {
                continue;
            }
            by_url
                .entry(repo.url.clone())
                .or_insert_with(|| Target {
                    url: repo.url,
                    settings: settings.clone(),
                    shared: shared_repo,
                    jobs: vec![],
                })
                .jobs
                .push(job);
        }
    }
    // The maintenance_device maintains the shared repository of a plain global URL even
    // before any job writes to it.
    if let Some((global, _)) = shared
        && let Some(url) = global.get("repository_url")
        && crate::domain::repository::placeholders(url).is_empty()
        && crate::domain::repository::validate_template(url).is_ok()
    {
        by_url.entry(url.to_string()).or_insert_with(|| Target {
            url: url.to_string(),
            settings: global.clone(),
            shared: true,
            jobs: vec![],
        });
    }
    (by_url.into_values().collect(), errors)
}

/// The jobs' own retention policies and the default.
struct Policies<'a> {
    own: &'a HashMap<Uuid, RetentionPolicy>,
    default: &'a RetentionPolicy,
    /// Every job this device sees, for the snapshots a repository holds of jobs that write
    /// elsewhere now (a device moved out keeps its old snapshots here until retention ends them).
    known: &'a [JobRef],
}

/// What every step of one repository works with: the database, the repository, this device,
/// the repository's row and the settings that reach it.
struct Maintenance<'a> {
    pool: &'a PgPool,
    repo: &'a Repository,
    device_id: &'a str,
    repository_id: Option<i32>,
    settings: &'a Settings,
}

/// Maintains one repository; whatever fails is in its report, so the next one still runs.
async fn maintain_one(
    pool: &PgPool,
    device_id: &str,
    target: &Target<'_>,
    policies: &Policies<'_>,
    sees_all: bool,
    args: &MaintainArgs,
) -> RepositoryReport {
    let fingerprint = crate::domain::repository::fingerprint(&target.url);
    let mut report = RepositoryReport {
        label: fingerprint[..12].to_string(),
        fingerprint: fingerprint.clone(),
        maintainer: (!target.shared).then(|| device_id.to_string()),
        ..Default::default()
    };
    if let Err(e) = maintain_steps(
        pool,
        device_id,
        target,
        policies,
        sees_all,
        args,
        &mut report,
    )
    .await
    {
        tracing::error!("maintenance of repository {}: {e:#}", report.label);
        report.error = Some(format!("{e:#}"));
    }
    report.ok = report.error.is_none() && report.steps.iter().all(|s| s.status == "success");
    report
}

/// The steps of one repository, in order; an error stops this repository.
async fn maintain_steps(
    pool: &PgPool,
    device_id: &str,
    target: &Target<'_>,
    policies: &Policies<'_>,
    sees_all: bool,
    args: &MaintainArgs,
    report: &mut RepositoryReport,
) -> anyhow::Result<()> {
    let repo = Repository::new(target.url.clone(), &target.settings)?;
    let prune_args = crate::domain::maintenance::prune_args(&target.settings)?;
    let check_args = crate::domain::maintenance::check_args(&target.settings)?;
    if !args.dry_run {
        let id = crate::store::maintenance::register_repository(
            pool,
            &report.fingerprint,
            target.shared,
            device_id,
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "the database refused this device as maintainer of repository {}: {e:#}",
                report.label
            )
        })?;
        report.repository_id = Some(id);
    }
    let m = Maintenance {
        pool,
        repo: &repo,
        device_id,
        repository_id: report.repository_id,
        settings: &target.settings,
    };
    m.lock_wait()?;
    if !args.dry_run {
        let step = m.restic_step("unlock", vec![], json!({})).await?;
        report.steps.push(step);
    }
    let listing = repo.snapshots(None, &[]).await;
    let orphans_known = sees_all || !target.shared;
    forget(
        &m,
        target,
        policies,
        listing.as_deref(),
        orphans_known,
        args,
        report,
    )
    .await?;
    let mut size = None;
    if !args.dry_run {
        let (step, remaining) = m.prune_step(prune_args).await?;
        size = remaining;
        report.steps.push(step);
        let metadata = json!({ "args": check_args });
        let step = m.restic_step("check", check_args, metadata).await?;
        report.steps.push(step);
    }
    if let (Ok(all), Some(id)) = (&listing, report.repository_id) {
        let removed: usize = report.jobs.iter().map(|j| j.removed.len()).sum::<usize>()
            + if report.unknown_job_snapshots_forgotten {
                report.unknown_job_snapshots.len()
            } else {
                0
            };
        let count = all.len().saturating_sub(removed);
        report.snapshot_count = Some(count);
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        crate::store::repositories::record_count(pool, id, count, size).await?;
    } else if let Ok(all) = &listing {
        report.snapshot_count = Some(all.len());
    }
    Ok(())
}

impl Maintenance<'_> {
    /// A fresh wait for the repository lock, by the settings.
    fn lock_wait(&self) -> anyhow::Result<LockWait> {
        LockWait::from_settings(self.settings)
    }

    async fn start(&self, name: &'static str) -> anyhow::Result<Option<Step>> {
        match self.repository_id {
            Some(id) => Ok(Some(
                Step::start(self.pool, self.device_id, id, name).await?,
            )),
            None => Ok(None),
        }
    }

    /// `prune`, recorded with the bytes it freed; also returns the size of what remains.
    async fn prune_step(&self, args: Vec<String>) -> anyhow::Result<(StepReport, Option<i64>)> {
        let mut wait = self.lock_wait()?;
        let step = self.start("prune").await?;
        let mut argv = vec!["prune".to_string()];
        argv.extend(args);
        let out = self.repo.run_waiting(&argv, &mut wait).await;
        let mut end = step_end(&out, self.repo, json!({}));
        end.bytes_freed = prune_line_bytes(&out.stdout, "total prune:");
        let remaining = prune_line_bytes(&out.stdout, "remaining:");
        Ok((finish(self.pool, step, "prune", end).await?, remaining))
    }

    /// Runs one recorded step that is a single restic command (`unlock`, `check`) with
    /// `args` after its name, waiting while backups hold the repository lock.
    async fn restic_step(
        &self,
        name: &'static str,
        args: Vec<String>,
        metadata: serde_json::Value,
    ) -> anyhow::Result<StepReport> {
        let mut wait = self.lock_wait()?;
        let step = self.start(name).await?;
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
        finish(self.pool, step, name, end).await
    }
}

/// What the forgets of all jobs printed, removed and how the last failed one exited.
struct ForgetTotals {
    output: String,
    errors: String,
    removed: usize,
    last_code: Option<i32>,
}

/// The jobs whose snapshots a repository's forget applies retention to: the jobs that write to
/// it, and the known jobs that wrote to it before (moved to a repository of their own), so that
/// their old snapshots age out by their policy instead of counting as unknown jobs'.
fn jobs_with_snapshots_here(
    writers: &[&JobRef],
    known: &[JobRef],
    listing: &[Snapshot],
) -> Vec<JobRef> {
    let mut jobs: Vec<JobRef> = writers.iter().map(|j| (*j).clone()).collect();
    let mut seen: HashSet<Uuid> = jobs.iter().map(|j| j.id).collect();
    let present: HashSet<Uuid> = listing.iter().filter_map(Snapshot::job_id).collect();
    for job in known {
        if present.contains(&job.id) && seen.insert(job.id) {
            jobs.push(job.clone());
        }
    }
    jobs
}

/// The `forget` step of one repository: the jobs with a retention policy forget exactly their
/// own snapshots, in batches (see [`crate::ops::forget`]), then snapshots of unknown jobs are
/// looked for in the listing. Recorded as one step, except with `--dry-run`.
async fn forget(
    m: &Maintenance<'_>,
    target: &Target<'_>,
    policies: &Policies<'_>,
    listing: Result<&[Snapshot], &anyhow::Error>,
    orphans_known: bool,
    args: &MaintainArgs,
    report: &mut RepositoryReport,
) -> anyhow::Result<()> {
    let step = if args.dry_run {
        None
    } else {
        m.start("forget").await?
    };
    let mut totals = ForgetTotals {
        output: String::new(),
        errors: String::new(),
        removed: 0,
        last_code: Some(0),
    };
    let mut unknown_error = None;
    match listing {
        Ok(all) => {
            let jobs = jobs_with_snapshots_here(&target.jobs, policies.known, all);
            forget_jobs(m, &jobs, policies, all, args.dry_run, &mut totals, report).await;
            if orphans_known {
                report.unknown_job_snapshots = crate::ops::forget::orphans(all, &jobs);
            } else {
                tracing::warn!(
                    "not looking for snapshots of unknown jobs: device {:?} is not the \
                     maintenance owner and sees only its own jobs; run maintain on the owner \
                     to find them",
                    m.device_id
                );
            }
            if args.forget_unknown_jobs && !args.dry_run && !report.unknown_job_snapshots.is_empty()
            {
                unknown_error = forget_unknown(m, report, &mut totals).await;
            }
        }
        Err(e) => {
            unknown_error = Some(format!(
                "nothing was forgotten: the snapshots could not be listed: {e:#}"
            ));
            totals.last_code = None;
        }
    }
    let end = forget_end(report, totals, unknown_error);
    report
        .steps
        .push(finish(m.pool, step, "forget", end).await?);
    Ok(())
}

/// Every job's forget, batched by policy; each job's entry in the report.
async fn forget_jobs(
    m: &Maintenance<'_>,
    jobs: &[JobRef],
    policies: &Policies<'_>,
    all: &[Snapshot],
    dry_run: bool,
    totals: &mut ForgetTotals,
    report: &mut RepositoryReport,
) {
    let alone = crate::ops::forget::must_go_alone(all, jobs);
    let mut with_policy = Vec::new();
    let mut entries: HashMap<Uuid, JobForget> = HashMap::new();
    for job in jobs {
        let view = crate::domain::retention::RetentionView::effective(
            policies.own.get(&job.id).cloned(),
            policies.default,
        );
        if view.policy.is_empty() {
            report.jobs_without_policy += 1;
            continue;
        }
        entries.insert(
            job.id,
            JobForget {
                job_id: job.id,
                job_name: job.name.clone(),
                device_id: job.device_id.clone(),
                policy: view.description.clone(),
                policy_source: view.source,
                kept: vec![],
                removed: vec![],
                alone: alone.contains(&job.id),
                error: None,
            },
        );
        with_policy.push((job.clone(), view.policy));
    }
    let program = m.repo.restic.to_string_lossy();
    let limit = crate::ops::forget::command_line_limit();
    let (calls, refused) = crate::ops::forget::plan(&program, &with_policy, &alone, limit);
    for (id, e) in refused {
        if let Some(entry) = entries.get_mut(&id) {
            entry.error = Some(e);
        }
    }
    for call in calls {
        report.forget_processes += 1;
        forget_call(m, &call, dry_run, totals, &mut entries).await;
    }
    // In the order of the jobs, as before batching.
    report.jobs = jobs.iter().filter_map(|j| entries.remove(&j.id)).collect();
}

/// One `restic forget` of a batch (or of one job), its results given to the jobs' entries.
async fn forget_call(
    m: &Maintenance<'_>,
    call: &crate::ops::forget::ForgetCall,
    dry_run: bool,
    totals: &mut ForgetTotals,
    entries: &mut HashMap<Uuid, JobForget>,
) {
    let mut argv = call.argv.clone();
    if dry_run {
        argv.push("--dry-run".to_string());
    }
    let fail = |message: String, entries: &mut HashMap<Uuid, JobForget>| {
        for id in &call.jobs {
            if let Some(e) = entries.get_mut(id) {
                tracing::error!("forget of job {id} ({:?}): {message}", e.job_name);
                e.error = Some(message.clone());
            }
        }
    };
    let mut wait = match m.lock_wait() {
        Ok(w) => w,
        Err(e) => return fail(format!("{e:#}"), entries),
    };
    let out = m.repo.run_waiting(&argv, &mut wait).await;
    totals.output.push_str(&format!(
        "forget of {} job(s):\n{}",
        call.jobs.len(),
        out.stdout
    ));
    totals.errors.push_str(&out.stderr);
    if !out.success() {
        totals.last_code = out.code;
        return fail(out.reason(m.repo), entries);
    }
    let parsed = if call.batched {
        crate::ops::forget::parse_batch(&out.stdout, &call.jobs)
    } else {
        crate::ops::forget::parse_forget(&out.stdout).map(|r| {
            let mut b = crate::ops::forget::BatchResult::default();
            b.jobs.insert(call.jobs[0], r);
            b
        })
    };
    let result = match parsed {
        Ok(r) => r,
        Err(e) => return fail(e, entries),
    };
    if result.stray_groups > 0 {
        tracing::warn!(
            "{} group(s) of a batched forget named no job of the batch",
            result.stray_groups
        );
    }
    for id in &result.split {
        tracing::warn!(
            "job {id}'s snapshots changed their tags during maintenance: each tag set kept \
             the policy; the next maintain forgets the job alone"
        );
    }
    for (id, r) in result.jobs {
        if let Some(e) = entries.get_mut(&id) {
            totals.removed += r.removed.len();
            e.kept = r.kept;
            e.removed = r.removed;
        }
    }
}

/// `--forget-unknown-jobs`: forgets the snapshots of unknown jobs by id, in one restic call.
/// Returns why it failed, if it did.
async fn forget_unknown(
    m: &Maintenance<'_>,
    report: &mut RepositoryReport,
    totals: &mut ForgetTotals,
) -> Option<String> {
    let orphans = &report.unknown_job_snapshots;
    let mut argv = vec!["forget".to_string()];
    argv.extend(orphans.iter().map(|o| o.snapshot_id.clone()));
    let mut wait = match m.lock_wait() {
        Ok(w) => w,
        Err(e) => return Some(format!("{e:#}")),
    };
    let out = m.repo.run_waiting(&argv, &mut wait).await;
    totals
        .output
        .push_str(&format!("snapshots of unknown jobs:\n{}", out.stdout));
    totals.errors.push_str(&out.stderr);
    if !out.success() {
        totals.last_code = out.code;
        return Some(format!("snapshots of unknown jobs: {}", out.reason(m.repo)));
    }
    totals.removed += orphans.len();
    report.unknown_job_snapshots_forgotten = true;
    None
}

/// How the `forget` step ended, with a summary of every job's forget as its metadata.
fn forget_end(
    report: &RepositoryReport,
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
                "kept": j.kept.len(), "alone": j.alone, "error": j.error,
            })).collect::<Vec<_>>(),
            "jobs_without_policy": report.jobs_without_policy,
            "forget_processes": report.forget_processes,
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
    async fn start(
        pool: &PgPool,
        device: &str,
        repository_id: i32,
        name: &'static str,
    ) -> anyhow::Result<Step> {
        tracing::info!("maintenance: {name}");
        Ok(Step {
            id: crate::store::maintenance::start_step(
                pool,
                device,
                repository_id,
                name,
                crate::platform::host::VERSION,
                &crate::platform::host::hostname(),
            )
            .await?,
            name,
        })
    }
}

/// Ends a step: recorded when it was started (not with `--dry-run`), reported either way.
async fn finish(
    pool: &PgPool,
    step: Option<Step>,
    name: &'static str,
    end: StepEnd,
) -> anyhow::Result<StepReport> {
    let record_id = match &step {
        Some(s) => {
            crate::store::maintenance::finish_step(pool, s.id, &end).await?;
            Some(s.id)
        }
        None => None,
    };
    if let Some(e) = &end.error_message {
        tracing::error!(
            "maintenance: {} failed: {e}",
            step.as_ref().map_or(name, |s| s.name)
        );
    }
    Ok(StepReport {
        step: name,
        status: if end.success { "success" } else { "failed" },
        exit_code: end.exit_code,
        snapshots_removed: end.snapshots_removed,
        bytes_freed: end.bytes_freed,
        error: end.error_message,
        record_id,
    })
}

/// The bytes of one line of prune's summary: `total prune:  N blobs / 1.234 MiB` (what it
/// removed) or `remaining: ...` (what is left); restic 0.14 prints no JSON for prune. `None`
/// when the line is absent.
pub fn prune_line_bytes(stdout: &str, label: &str) -> Option<i64> {
    let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
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
    for e in &r.job_errors {
        println!("job {}: not maintained: {}", e.job_id, printable(&e.error));
    }
    for repo in &r.repositories {
        println!(
            "maintenance{} of repository {} ({}) by device {:?}:",
            if r.dry_run { " (dry run)" } else { "" },
            repo.label,
            repo.maintainer
                .as_deref()
                .map_or("shared".to_string(), |d| format!("of {}", printable(d))),
            r.device_id
        );
        print_repository(repo, r.dry_run);
    }
}

fn print_repository(r: &RepositoryReport, dry_run: bool) {
    if let Some(e) = &r.error {
        println!("  FAILED: {}", printable(e));
    }
    for j in &r.jobs {
        print_job(j, dry_run);
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
            (Some(n), _) if s.step == "forget" && dry_run => {
                format!(", {n} snapshot(s) would be removed")
            }
            (Some(n), _) if s.step == "forget" => format!(
                ", {n} snapshot(s) removed by {} restic forget(s)",
                r.forget_processes
            ),
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
    if let Some(n) = r.snapshot_count {
        println!("  {n} snapshot(s) in the repository");
    }
}

fn print_job(j: &JobForget, dry_run: bool) {
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
            if dry_run {
                "would be removed"
            } else {
                "removed"
            },
            j.kept.len()
        ),
    }
    if dry_run {
        for id in &j.removed {
            println!(
                "      would remove {}",
                printable(crate::domain::text::truncate_str(id, 8))
            );
        }
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
        assert_eq!(prune_line_bytes(out, "total prune:"), Some(2_099_249));
        assert_eq!(prune_line_bytes(out, "remaining:"), Some(1081));
        let zero = "total prune: 0 blobs / 0 B";
        assert_eq!(prune_line_bytes(zero, "total prune:"), Some(0));
        assert_eq!(prune_line_bytes("nothing", "total prune:"), None);
    }

    fn job(n: u128, device: &str) -> JobRef {
        JobRef {
            id: Uuid::from_u128(n),
            device_id: device.into(),
            name: format!("job {n}"),
            account_id: None,
            origin_name: None,
        }
    }

    #[test]
    fn a_moved_jobs_old_snapshots_keep_their_policy_here() {
        let snap = |n: u128| crate::platform::repository::Snapshot {
            id: format!("s{n}"),
            short_id: String::new(),
            time: chrono::Utc::now(),
            hostname: "h".into(),
            paths: vec![],
            tags: Some(vec![format!("backup:{}", Uuid::from_u128(n))]),
        };
        let (a, moved, elsewhere) = (job(1, "a"), job(2, "b"), job(3, "c"));
        let known = [a.clone(), moved.clone(), elsewhere];
        let listing = [snap(1), snap(2), snap(2), snap(9)];
        let jobs = jobs_with_snapshots_here(&[&a], &known, &listing);
        let ids: Vec<u128> = jobs.iter().map(|j| j.id.as_u128()).collect();
        assert_eq!(
            ids,
            [1, 2],
            "the writer, then the moved job; never a job without snapshots"
        );
        let orphans = crate::ops::forget::orphans(&listing, &jobs);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].job_id, Uuid::from_u128(9));
    }

    fn urls(t: &[Target]) -> Vec<(String, bool, Vec<u128>)> {
        t.iter()
            .map(|t| {
                let jobs = t.jobs.iter().map(|j| j.id.as_u128()).collect();
                (t.url.clone(), t.shared, jobs)
            })
            .collect()
    }

    #[test]
    fn each_repository_is_maintained_once_by_its_maintainer() {
        let jobs = [
            job(1, "a"),
            job(2, "a"),
            job(3, "b"),
            job(4, "c"),
            job(5, "own"),
        ];
        let set = |url: &str| Settings::from_pairs([("repository_url".into(), url.into())]);
        let own: HashSet<String> = ["own".to_string()].into();
        // Per-device template: each device its own; the owner maintains no shared one.
        let per = set("/srv/{device_id}");
        let (t, e) = targets(
            "a",
            &per.clone().with_own("a", []),
            Some((&per, &own)),
            &jobs,
        );
        assert!(e.is_empty());
        assert_eq!(urls(&t), [("/srv/a".to_string(), false, vec![1, 2])]);
        let (t, _) = targets("b", &per.clone().with_own("b", []), None, &jobs);
        assert_eq!(urls(&t), [("/srv/b".to_string(), false, vec![3])]);
        // One shared repository: the owner maintains it once, with every job but the device
        // with its own repository; a device that is not the owner maintains nothing.
        let shared = set("/srv/all");
        let (t, _) = targets(
            "a",
            &shared.clone().with_own("a", []),
            Some((&shared, &own)),
            &jobs,
        );
        assert_eq!(urls(&t), [("/srv/all".to_string(), true, vec![1, 2, 3, 4])]);
        let (t, _) = targets("b", &shared.clone().with_own("b", []), None, &jobs);
        assert!(t.is_empty());
        let mine = set("/srv/mine").with_own("own", ["repository_url".to_string()]);
        let (t, _) = targets("own", &mine, None, &jobs);
        assert_eq!(urls(&t), [("/srv/mine".to_string(), false, vec![5])]);
        // A template the job lacks a value for: the job is named, the others still go.
        let origin = set("/srv/{origin_name}");
        let (t, e) = targets(
            "a",
            &origin.clone().with_own("a", []),
            Some((&origin, &own)),
            &jobs,
        );
        assert!(t.is_empty());
        assert_eq!(e.len(), 4);
    }
}
