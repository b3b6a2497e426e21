//! `restic-fleet job add|edit|list|show|enable|disable|rm`.

use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::job_monitor::MonitorChanges;
use crate::commands::{Conn, confirm, explain, require_device};
use crate::domain::exit;
use crate::domain::job::Job;
use crate::domain::job::{is_absolute, validate_excludes, validate_name, validate_paths};
use crate::domain::retention::RetentionView;
use crate::domain::schedule::ScheduleRow;
use crate::domain::schedule::describe_schedule;
use crate::output::{self, print_json, printable};
use crate::store::jobs::{JobEdit, NewJob};
use crate::store::runs::LastRun;
use crate::usage_err;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Add a backup job to a device; prints the new job's UUID.
    Add(AddArgs),
    /// Change a job (only the options given change).
    Edit(EditArgs),
    /// List jobs.
    List(ListArgs),
    /// Show one job with its schedules and last run.
    Show(IdArgs),
    /// Enable a job.
    Enable(IdArgs),
    /// Disable a job: it no longer runs, and status reports it as disabled.
    Disable(IdArgs),
    /// Remove a job with its schedules and recorded runs.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Device the job belongs to.
    #[arg(long, value_name = "ID")]
    pub device: String,
    /// Job name, unique per device, without '/' (which would read as DEVICE/NAME).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// A path to back up (absolute; repeat for several).
    #[arg(long = "path", value_name = "P", required = true)]
    pub paths: Vec<String>,
    /// A restic --exclude pattern (repeat for several).
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Extra restic arguments as a JSON array of strings, e.g. '["--one-file-system"]'.
    #[arg(long, value_name = "JSON")]
    pub restic_args: Option<String>,
    /// Free-text description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Use this UUID for the job (e.g. to keep a Relica backup id); default: a new one.
    #[arg(long, value_name = "UUID")]
    pub id: Option<String>,
    /// Origin name, added as the tag origin:NAME.
    #[arg(long, value_name = "NAME")]
    pub origin_name: Option<String>,
    /// Account UUID, added as the tag account:UUID.
    #[arg(long, value_name = "UUID")]
    pub account_id: Option<String>,
    /// Create the job disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The job: its UUID, its name on this device, or DEVICE/NAME.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// New name (unique per device).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Move the job to another device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Replace the paths (repeat for several).
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<String>,
    /// Replace the exclude patterns (repeat for several).
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Remove every exclude pattern.
    #[arg(long, conflicts_with = "excludes")]
    pub no_excludes: bool,
    /// Replace the extra restic arguments (a JSON array of strings; '[]' clears them).
    #[arg(long, value_name = "JSON")]
    pub restic_args: Option<String>,
    /// New description ('' clears it).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// New origin name ('' clears it).
    #[arg(long, value_name = "NAME")]
    pub origin_name: Option<String>,
    /// New account UUID ('' clears it).
    #[arg(long, value_name = "UUID")]
    pub account_id: Option<String>,
    /// Ping URL and hooks.
    #[command(flatten)]
    pub monitor: Box<crate::commands::job_monitor::MonitorArgs>,
    /// Retention flags (--keep-* / --no-retention).
    #[command(flatten)]
    pub retention: Box<crate::domain::retention::RetentionArgs>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the jobs of this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The job: its UUID, its name on this device, or DEVICE/NAME.
    #[arg(value_name = "JOB")]
    pub job: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The job: its UUID, its name on this device, or DEVICE/NAME.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `job add --json`: `{"id": UUID, "device_id": ..., "name": ...}`.
#[derive(Debug, Serialize)]
pub struct Added {
    pub id: Uuid,
    pub device_id: String,
    pub name: String,
}

/// `job show --json`: every column of `backup_jobs` (`id`, `device_id`, `name`,
/// `description`, `source_paths`, `exclude_patterns`, `tags`, `restic_args`, `enabled`,
/// `created_at`, `updated_at`, `metadata`, `origin_name`, `origin_id`, `account_id`,
/// `ping_url` (from `job_ping_urls`; null where the role may not read it), `hook_before`,
/// `hook_after`, `hook_failure`, `hook_finally`, `hook_before_on_error`), plus
/// `schedules` (as in `schedule list --json`) and `last_run` (`id`, `status`, `start_time`,
/// `end_time`, `error_message`, `snapshot_id`, or null), and `retention` (see
/// [`crate::domain::retention::RetentionView`]). `job list --json` is an array of the
/// same objects without `last_run` and `retention`.
#[derive(Debug, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub schedules: Vec<ScheduleRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Option<LastRun>>,
    /// The job's effective retention policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionView>,
}

pub async fn run(config_path: &Path, cmd: JobCommand) -> anyhow::Result<u8> {
    explain(dispatch(config_path, cmd).await)
}

async fn dispatch(config_path: &Path, cmd: JobCommand) -> anyhow::Result<u8> {
    match cmd {
        JobCommand::Add(a) => add(config_path, a).await,
        JobCommand::Edit(a) => edit(config_path, a).await,
        JobCommand::List(a) => list(config_path, a).await,
        JobCommand::Show(a) => show(config_path, a).await,
        JobCommand::Enable(a) => set_enabled(config_path, a, true).await,
        JobCommand::Disable(a) => set_enabled(config_path, a, false).await,
        JobCommand::Rm(a) => rm(config_path, a).await,
    }
}

/// `--restic-args`: a JSON array of strings on the allow-list of [`crate::domain::restic::args`].
pub fn parse_restic_args(text: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        usage_err!(
            "--restic-args {text:?} is not valid JSON ({e}); give a JSON array of strings like \
             '[\"--one-file-system\"]'"
        )
    })?;
    if !v.is_array() {
        return Err(usage_err!(
            "--restic-args must be a JSON array of strings like '[\"--one-file-system\"]', not \
             {text:?}"
        ));
    }
    crate::domain::restic::args::validated(Some(&v))
        .map_err(|e| usage_err!("--restic-args: {e}"))?;
    Ok(v)
}

fn parse_uuid(flag: &str, text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text.trim())
        .map_err(|_| usage_err!("{flag} {text:?} is not a UUID (like 3f2b6c1e-0b1d-4c9e-8f3a-...)"))
}

/// The platform of the device a job goes to, which must exist.
async fn device_platform(pool: &PgPool, device: &str) -> anyhow::Result<String> {
    require_device(pool, device).await?;
    crate::store::devices::platform(pool, device).await
}

fn name_taken_err(device: &str, name: &str, other: Uuid) -> anyhow::Error {
    usage_err!(
        "device {device:?} already has a job named {name:?} ({other}); job names are unique per \
         device, so choose another --name"
    )
}

/// Refuses a job whose repository URL its device's `repository_url` template cannot make
/// (`{origin_name}` with an origin like "a/b", `{account_id}` without an account): every run of
/// it would fail. Nothing to check while the device has no repository_url yet.
async fn check_repository(
    pool: &PgPool,
    job: &crate::domain::repository::JobPlace<'_>,
) -> anyhow::Result<()> {
    let settings = crate::store::settings::load(pool, job.device_id).await?;
    if settings.get("repository_url").is_none() {
        return Ok(());
    }
    crate::domain::repository::of_job(&settings, job).map_err(|e| {
        let nil = Uuid::nil().to_string();
        // A job being added has no id yet: its fix is an option of `job add`.
        let e = e
            .replace(&format!("job edit {nil}"), "job add ...")
            .replace(&nil, "(new)");
        usage_err!("the job is not saved: {e}")
    })?;
    Ok(())
}

async fn add(config_path: &Path, a: AddArgs) -> anyhow::Result<u8> {
    // Everything that needs no database first.
    let name = validate_name(&a.name)?;
    let excludes = validate_excludes(&a.excludes)?;
    let restic_args = match &a.restic_args {
        Some(t) => parse_restic_args(t)?,
        None => Value::Array(vec![]),
    };
    let id = match &a.id {
        Some(t) => Some(parse_uuid("--id", t)?),
        None => None,
    };
    let account = match &a.account_id {
        Some(t) => Some(parse_uuid("--account-id", t)?),
        None => None,
    };
    if a.paths.is_empty() {
        validate_paths(&a.paths, "linux")?;
    }
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let platform = device_platform(&pool, &a.device).await?;
    let paths = validate_paths(&a.paths, &platform)?;
    let missing = missing_here(&paths, &platform);
    if let Some(other) = crate::store::jobs::name_taken(&pool, &a.device, &name, None).await? {
        return Err(name_taken_err(&a.device, &name, other));
    }
    if let Some(id) = id
        && crate::store::jobs::find(&pool, id).await?.is_some()
    {
        return Err(usage_err!(
            "a job with id {id} already exists; show it with `restic-fleet job show {id}`"
        ));
    }
    let origin = a.origin_name.as_deref().filter(|s| !s.is_empty());
    check_repository(
        &pool,
        &crate::domain::repository::JobPlace {
            device_id: &a.device,
            job_id: id.unwrap_or_else(Uuid::nil),
            account_id: account,
            origin_name: origin,
        },
    )
    .await?;
    let new = NewJob {
        id,
        device_id: &a.device,
        name: &name,
        description: a.description.as_deref(),
        source_paths: &paths,
        exclude_patterns: if excludes.is_empty() {
            None
        } else {
            Some(excludes)
        },
        restic_args: &restic_args,
        enabled: !a.disabled,
        origin_name: a.origin_name.as_deref().filter(|s| !s.is_empty()),
        account_id: account,
    };
    let new_id = match crate::store::jobs::insert(&pool, new).await {
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            return Err(usage_err!(
                "device {:?} already has a job named {name:?} (or the id is taken); choose another \
                 --name",
                a.device
            ));
        }
        other => other?,
    };
    if a.conn.json {
        print_json(&Added {
            id: new_id,
            device_id: a.device.clone(),
            name,
        })?;
    } else {
        println!("{new_id}");
    }
    if let Some(w) = missing {
        eprintln!("warning: {w}");
    }
    Ok(exit::SUCCESS)
}

/// The warning for paths that do not exist on this machine, when it has the device's platform
/// (not an error: the job's device may be another machine, where they exist).
fn missing_here(paths: &[String], platform: &str) -> Option<String> {
    if platform != crate::platform::host::platform() {
        return None;
    }
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !Path::new(p.as_str()).exists())
        .map(|p| format!("{:?}", printable(p)))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} does not exist on this machine; if this machine is the job's device, the backup \
             fails until it does (saved anyway: on another device it may exist)",
            missing.join(", ")
        )
    })
}

/// What `job edit` changes, checked before the database is touched.
struct EditPlan {
    name: Option<String>,
    /// `Some(None)`: remove every exclude pattern.
    excludes: Option<Option<Vec<String>>>,
    restic_args: Option<Value>,
    /// `Some(None)`: clear the account.
    account: Option<Option<Uuid>>,
    monitor: MonitorChanges,
    /// Whether a retention flag was given.
    retention: bool,
}

/// Step 1 of `job edit`: checks every option without the database, and refuses an edit that
/// changes nothing.
fn plan_edit(a: &EditArgs) -> anyhow::Result<EditPlan> {
    let name = a.name.as_deref().map(validate_name).transpose()?;
    let excludes = validate_excludes(&a.excludes)?;
    let restic_args = a
        .restic_args
        .as_deref()
        .map(parse_restic_args)
        .transpose()?;
    let account = match a.account_id.as_deref() {
        Some("") => Some(None),
        Some(t) => Some(Some(parse_uuid("--account-id", t)?)),
        None => None,
    };
    let monitor = a.monitor.validate()?;
    let retention = a.retention.requested()?;
    let nothing = monitor.is_empty()
        && !retention
        && name.is_none()
        && a.device.is_none()
        && a.paths.is_empty()
        && excludes.is_empty()
        && !a.no_excludes
        && restic_args.is_none()
        && a.description.is_none()
        && a.origin_name.is_none()
        && account.is_none();
    if nothing {
        return Err(usage_err!(
            "nothing to change; give at least one option such as --name, --path or --restic-args \
             (see `restic-fleet job edit --help`)"
        ));
    }
    let excludes = if a.no_excludes {
        Some(None)
    } else if !excludes.is_empty() {
        Some(Some(excludes))
    } else {
        None
    };
    Ok(EditPlan {
        name,
        excludes,
        restic_args,
        account,
        monitor,
        retention,
    })
}

/// Step 2 of `job edit`: the new paths (`None`: unchanged), checked for the platform of the
/// device the job ends up on; a job moved without new paths must have paths that fit there.
async fn edited_paths(
    pool: &PgPool,
    a: &EditArgs,
    job: &Job,
    device: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let platform = device_platform(pool, device).await?;
    if !a.paths.is_empty() {
        let paths = validate_paths(&a.paths, &platform)?;
        if let Some(w) = missing_here(&paths, &platform) {
            eprintln!("warning: {w}");
        }
        return Ok(Some(paths));
    }
    if device != job.device_id
        && let Some(p) = job.source_paths.iter().find(|p| !is_absolute(p, &platform))
    {
        return Err(usage_err!(
            "job {} cannot move to {platform} device {device:?} as it is: its path \
             {p:?} is not an absolute {platform} path; give its new paths with --path",
            job.id
        ));
    }
    Ok(None)
}

async fn edit(config_path: &Path, a: EditArgs) -> anyhow::Result<u8> {
    let plan = plan_edit(&a)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let job = crate::commands::resolve_job(config_path, &pool, &a.job).await?;
    let job_id = job.id;
    let device = a.device.clone().unwrap_or_else(|| job.device_id.clone());
    let paths = edited_paths(&pool, &a, &job, &device).await?;
    let new_name = plan.name.clone().unwrap_or_else(|| job.name.clone());
    if let Some(other) =
        crate::store::jobs::name_taken(&pool, &device, &new_name, Some(job_id)).await?
    {
        return Err(name_taken_err(&device, &new_name, other));
    }
    let origin = match a.origin_name.as_deref() {
        Some("") => None,
        Some(o) => Some(o),
        None => job.origin_name.as_deref(),
    };
    check_repository(
        &pool,
        &crate::domain::repository::JobPlace {
            device_id: &device,
            job_id,
            account_id: plan.account.unwrap_or(job.account_id),
            origin_name: origin,
        },
    )
    .await?;
    let change = JobEdit {
        id: job_id,
        name: &new_name,
        device_id: &device,
        source_paths: paths,
        exclude_patterns: plan.excludes,
        restic_args: plan.restic_args,
        description: a.description.as_deref(),
        origin_name: a.origin_name.as_deref(),
        account_id: plan.account,
    };
    if let Err(e) = crate::store::jobs::update(&pool, change).await {
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some("23505")
        {
            return Err(usage_err!(
                "device {device:?} already has a job named {new_name:?}; choose another --name"
            ));
        }
        return Err(e.into());
    }
    crate::commands::job_monitor::apply(&pool, job_id, &plan.monitor).await?;
    if plan.retention {
        apply_retention(&pool, job_id, &a.retention).await?;
    }
    print_edited(&pool, job_id, a.conn.json).await
}

/// Stores the retention flags of `job edit`: `--no-retention` removes the job's policy, other
/// flags change only the options given.
async fn apply_retention(
    pool: &PgPool,
    job: Uuid,
    args: &crate::domain::retention::RetentionArgs,
) -> anyhow::Result<()> {
    let current = if args.no_retention {
        None
    } else {
        crate::store::retention::load(pool, job).await?
    };
    let policy = args.applied_to(current);
    policy.validate().map_err(|e| usage_err!("{e}"))?;
    crate::store::retention::save(pool, job, &policy).await
}

/// The last step of `job edit`: the job as it is now, as JSON or one sentence.
async fn print_edited(pool: &PgPool, job_id: Uuid, json: bool) -> anyhow::Result<u8> {
    let job = crate::store::jobs::find(pool, job_id)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("job {job_id} was deleted by someone else while it was being edited")
        })?;
    if json {
        let schedules = crate::store::schedules::of_job(pool, job_id).await?;
        let retention = Some(retention_view(pool, &job).await?);
        print_json(&JobDetail {
            job,
            schedules,
            last_run: None,
            retention,
        })?;
    } else {
        println!(
            "updated job {job_id} ({:?} on device {:?})",
            job.name, job.device_id
        );
    }
    Ok(exit::SUCCESS)
}

async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    let jobs = crate::store::jobs::list(&pool, a.device.as_deref()).await?;
    let all = crate::store::schedules::all(&pool).await?;
    let details: Vec<JobDetail> = jobs
        .into_iter()
        .map(|job| {
            let schedules = all.iter().filter(|s| s.job_id == job.id).cloned().collect();
            JobDetail {
                job,
                schedules,
                last_run: None,
                retention: None,
            }
        })
        .collect();
    if a.conn.json {
        print_json(&details)?;
        return Ok(exit::SUCCESS);
    }
    if details.is_empty() {
        println!("no jobs; add one with `restic-fleet job add --device ID --name NAME --path P`");
        return Ok(exit::SUCCESS);
    }
    let mut t = output::table(&["job id", "device", "name", "on", "paths", "schedules"]);
    output::keep_whole(&mut t, 0);
    output::keep_whole(&mut t, 4);
    for d in &details {
        t.add_row([
            d.job.id.to_string().into(),
            d.job.device_id.clone().into(),
            // An imported job's origin (a Relica machine) is part of how its owner knows it.
            match d.job.origin_name.as_deref().filter(|o| !o.is_empty()) {
                Some(o) => output::lines([d.job.name.clone(), format!("(origin {o})")]),
                None => d.job.name.clone().into(),
            },
            output::yes_no(d.job.enabled).into(),
            output::path_lines(&d.job.source_paths),
            if d.schedules.is_empty() {
                "-".into()
            } else {
                output::lines(d.schedules.iter().map(describe_schedule))
            },
        ]);
    }
    println!("{}", output::render(&t));
    Ok(exit::SUCCESS)
}

async fn show(config_path: &Path, a: IdArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let job = crate::commands::resolve_job(config_path, &pool, &a.job).await?;
    let schedules = crate::store::schedules::of_job(&pool, job.id).await?;
    let last = crate::store::runs::last_of_job(&pool, job.id).await?;
    let retention = retention_view(&pool, &job).await?;
    if a.conn.json {
        print_json(&JobDetail {
            job,
            schedules,
            last_run: Some(last),
            retention: Some(retention),
        })?;
        return Ok(exit::SUCCESS);
    }
    print_job(&job);
    println!(
        "retention:   {}{}",
        printable(&retention.description),
        if retention.source == "default" {
            " (the retention_default setting)"
        } else {
            ""
        }
    );
    print_schedules_and_last_run(&job, &schedules, last.as_ref());
    Ok(exit::SUCCESS)
}

/// `job show`'s lines about the job itself: identity, paths, restic arguments, hooks.
fn print_job(j: &Job) {
    println!("id:          {}", j.id);
    println!("device:      {}", printable(&j.device_id));
    println!("name:        {}", printable(&j.name));
    if let Some(d) = &j.description {
        println!("description: {}", printable(d));
    }
    println!("enabled:     {}", output::yes_no(j.enabled));
    println!("paths:       {}", printable(&j.source_paths.join(", ")));
    let ex = j.exclude_patterns.clone().unwrap_or_default();
    println!(
        "excludes:    {}",
        if ex.is_empty() {
            "-".into()
        } else {
            printable(&ex.join(", ")).into_owned()
        }
    );
    let args = crate::domain::job::restic_args(j.restic_args.as_ref()).unwrap_or_default();
    if !args.is_empty() {
        println!("restic args: {}", printable(&args.join(" ")));
    }
    if let Some(o) = &j.origin_name {
        println!("origin:      {}", printable(o));
    }
    if let Some(acc) = &j.account_id {
        println!("account:     {acc}");
    }
    for line in crate::commands::job_monitor::describe(j) {
        println!("{}", printable(&line));
    }
}

/// `job show`'s last lines: the job's schedules and its last run.
fn print_schedules_and_last_run(j: &Job, schedules: &[ScheduleRow], last: Option<&LastRun>) {
    if schedules.is_empty() {
        println!(
            "schedules:   none (add one with `restic-fleet schedule add {} --cron EXPR`)",
            j.id
        );
    } else {
        let mut t = output::table(&["id", "schedule", "last run", "next run"]);
        for s in schedules {
            t.add_row(vec![
                s.id.to_string(),
                describe_schedule(s),
                output::time(s.last_run_at),
                output::time(s.next_run_at),
            ]);
        }
        println!("schedules:\n{}", output::render(&t));
    }
    match last {
        None => println!("last run:    never"),
        Some(r) => println!(
            "last run:    #{} {} at {}{}",
            r.id,
            printable(&r.status),
            output::time(Some(r.start_time)),
            r.error_message
                .as_deref()
                .map(|m| format!(": {}", printable(m)))
                .unwrap_or_default()
        ),
    }
}

/// The job's effective retention policy, with the settings of its device.
async fn retention_view(pool: &PgPool, job: &Job) -> anyhow::Result<RetentionView> {
    let settings = crate::store::settings::load(pool, &job.device_id).await?;
    let own = crate::store::retention::load(pool, job.id).await?;
    Ok(crate::domain::retention::view(own, &settings))
}

async fn set_enabled(config_path: &Path, a: IdArgs, enabled: bool) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let job_id = crate::commands::resolve_job(config_path, &pool, &a.job)
        .await?
        .id;
    let n = crate::store::jobs::set_enabled(&pool, job_id, enabled).await?;
    if n == 0 {
        return Err(usage_err!(
            "no backup job with id {job_id} exists; list jobs with `restic-fleet job list`"
        ));
    }
    if a.conn.json {
        print_json(&serde_json::json!({"id": job_id, "enabled": enabled}))?;
    } else {
        println!(
            "job {job_id} {}",
            if enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(exit::SUCCESS)
}

async fn rm(config_path: &Path, a: RmArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let job = crate::commands::resolve_job(config_path, &pool, &a.job).await?;
    let runs = crate::store::runs::count_of_job(&pool, job.id).await?;
    confirm(
        &format!(
            "remove job {} ({:?} on device {:?}) with its schedules and {runs} recorded run(s)",
            job.id, job.name, job.device_id
        ),
        a.yes,
    )?;
    crate::store::jobs::delete(&pool, job.id).await?;
    if a.conn.json {
        print_json(&serde_json::json!({"id": job.id, "removed": true}))?;
    } else {
        println!("removed job {} ({:?})", job.id, job.name);
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(validate_paths(&["/home".into()], "linux").is_ok());
        assert!(validate_paths(&["home".into()], "linux").is_err());
        assert!(validate_paths(&[], "linux").is_err());
        assert!(validate_paths(&["".into()], "linux").is_err());
        assert!(validate_paths(&["C:\\Users".into()], "windows").is_ok());
        assert!(validate_paths(&["\\\\nas\\share".into()], "windows").is_ok());
        assert!(validate_paths(&["/home".into()], "windows").is_err());
    }

    #[test]
    fn restic_args_json() {
        assert!(parse_restic_args("[\"--one-file-system\"]").is_ok());
        assert!(parse_restic_args("[1]").is_err());
        assert!(parse_restic_args("--x").is_err());
    }
}
