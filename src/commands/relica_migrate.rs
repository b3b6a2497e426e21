//! `restic-fleet relica-migrate`: writes the [`crate::domain::relica::ImportPlan`] of a Relica
//! client cache into the database, in one transaction, safely re-runnable.
//!
//! # What is written
//!
//! * `devices`: one per selected Relica origin (the id rule is
//!   [`crate::domain::relica::device_ids`]: the origin's name, or its UUID when the name cannot
//!   serve). Name and platform are set; `metadata.relica` holds the origin's facts, merged into
//!   existing metadata.
//! * `backup_jobs`: the Relica backup id and name kept; `origin_name`/`origin_id` from the
//!   origin, `account_id` from the backup; `metadata.relica` holds destinations, the original
//!   hooks (which become the job's before/finally hooks), the original schedule and ids.
//! * `schedules`: one cron row per Relica time of day (plus the short-month lines the planner
//!   adds), marked `metadata.source = "relica"`. Only those rows are replaced by a re-import;
//!   schedules a user added to an imported job are left alone. `last_run_at` comes from
//!   `local.last_backups_done` (never moved backwards), `next_run_at` is computed in the device's
//!   time zone (setting `timezone`).
//! * `runs` (only with `--import-history`): `local.recent_tasks`, identified by
//!   `metadata.relica_task_id`; a task already present is not added again.
//! * `settings` (only with `--repository-url` / `--password-file`): the global
//!   `repository_url` and `repository_password`. The password is read from a file (one trailing
//!   newline removed), never taken from the command line, never printed.
//!
//! # Re-running, and edits made in the database
//!
//! Every imported device and job carries `metadata.relica_import`:
//! `{"imported_at": RFC 3339, "fields": {FIELD: HASH, ...}}`, one hash per imported field
//! (devices: `name`, `platform`; jobs: `device_id`, `name`, `source_paths`,
//! `exclude_patterns`, `enabled`, `origin_name`, `origin_id`, `account_id`, `relica` (the
//! `metadata.relica` object) and `schedules` (the cron lines and enabled flags of the job's
//! Relica schedules)). The hash is 64-bit FNV-1a of the field's canonical JSON: a change
//! detector, not a security measure. On a re-import a row whose imported fields already equal
//! the file's is `unchanged`; a row whose fields still hash as the last import wrote them is
//! `updated`; a row that differs from both (edited in the database since the last import, or
//! never created by an import) is `skipped` with the edited fields named, and nothing of it is
//! written, unless `--overwrite`. A job whose name is taken on its device by another job is
//! skipped too (even with `--overwrite`: the other job is never touched).
//!
//! Devices and jobs that are in the database but not (or no longer) in the file are never
//! deleted; only a job's own Relica schedules are replaced.
//!
//! # All or nothing
//!
//! The file is parsed and planned, the password file read and every cron line checked before
//! the database is opened; any error there is a usage error (exit 2) naming the element, and
//! nothing is written. The import itself is one transaction (serialised against concurrent
//! imports by an advisory lock); any database error rolls all of it back. `--dry-run` runs the
//! same transaction and rolls it back, so its report is exactly what an import would do.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::calendar::{CronExpr, Schedule};
use crate::domain::exit::{self, Failure};
use crate::domain::relica::{self, ImportPlan, PlannedDevice, PlannedJob, PlannedSchedule};
use crate::domain::text::mask_url;
use crate::store;
use crate::usage_err;

/// The sentence every report carries about Relica hooks.
pub const HOOKS_NOTE: &str = "Relica hooks become the jobs' hooks and run with every backup: \
     timing start as the before hook (its on_error kept), end as the finally hook; see them with \
     `restic-fleet job show JOB` (the originals stay in metadata.relica.hooks).";

#[derive(Debug, clap::Args)]
pub struct RelicaMigrateArgs {
    /// The Relica client cache file (JSON with "cache_header": {"cache_version": 3}), found in
    /// the Relica client's data folder.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Import only this origin (Relica device), by name or UUID; repeatable. Default: all.
    #[arg(long = "origin", value_name = "NAME|UUID")]
    pub origins: Vec<String>,
    /// Compute and print the report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also import the run history (local.recent_tasks) into runs; tasks already imported are
    /// not added again.
    #[arg(long)]
    pub import_history: bool,
    /// Replace devices and jobs edited in the database since the last import (default: keep
    /// them and report them as skipped).
    #[arg(long)]
    pub overwrite: bool,
    /// Set the global setting repository_url (the one shared restic repository).
    #[arg(long, value_name = "URL")]
    pub repository_url: Option<String>,
    /// Set the global setting repository_password from this file's content (one trailing
    /// newline removed). The password is never accepted on the command line.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Database to import into (default: the config's database_url); lets an admin migrate
    /// from a machine that is not enrolled.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// The `--json` report. Field names are stable:
///
/// * `dry_run` (bool: nothing was written), `file`, `database_url` (password masked),
///   `import_history`, `overwrite`.
/// * `devices`, `jobs`, `schedules`, `runs`: a [`Section`] each.
/// * `settings`: `[{key, action}]` for `repository_url` / `repository_password` (values never
///   shown).
/// * `warnings`: every warning of the plan (sentences naming the Relica element).
/// * `notes`: further sentences, always including [`HOOKS_NOTE`].
/// * `enrolment`: `[{device_id, device_name, command}]`, the `restic-fleet device enroll` line
///   that gives each machine its own database login (it prints the `restic-fleet init` line to
///   run on that machine). Rejected devices have none.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub file: String,
    pub database_url: String,
    pub import_history: bool,
    pub overwrite: bool,
    pub devices: Section,
    pub jobs: Section,
    pub schedules: Section,
    pub runs: Section,
    pub settings: Vec<SettingChange>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub enrolment: Vec<Enrolment>,
}

/// Counts per action and one item per row considered. `deleted` is only used for schedules
/// (Relica schedules of a job that the file no longer has).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub deleted: usize,
    pub items: Vec<Item>,
}

/// One row: `action` (`created`, `updated`, `unchanged`, `skipped`, `deleted`), `id` (device id,
/// job UUID, schedule row id, or Relica task id for runs; `null` for a schedule not written),
/// `name` (device or job name), `device_id`, `job_id`, `cron_expression` (schedules),
/// `fields` (the fields changed, or for a skipped row the fields edited in the database) and
/// `reason` (why it was skipped).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub action: Action,
    pub id: Option<String>,
    pub name: Option<String>,
    pub device_id: Option<String>,
    pub job_id: Option<Uuid>,
    pub cron_expression: Option<String>,
    pub fields: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Deleted,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
            Action::Deleted => "deleted",
        }
    }
}

impl Item {
    fn new(action: Action) -> Item {
        Item {
            action,
            id: None,
            name: None,
            device_id: None,
            job_id: None,
            cron_expression: None,
            fields: Vec::new(),
            reason: None,
        }
    }
}

impl Section {
    fn push(&mut self, item: Item) {
        match item.action {
            Action::Created => self.created += 1,
            Action::Updated => self.updated += 1,
            Action::Unchanged => self.unchanged += 1,
            Action::Skipped => self.skipped += 1,
            Action::Deleted => self.deleted += 1,
        }
        self.items.push(item);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingChange {
    pub key: String,
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub device_id: String,
    pub device_name: String,
    pub command: String,
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// Runs the command; returns the exit code (0 also when some rows were skipped: the report
/// lists them).
pub async fn run(config_path: &Path, args: &RelicaMigrateArgs) -> anyhow::Result<u8> {
    // Everything that can be refused is refused before the database is opened.
    let checked = check_input(args)?;
    let (url, pool) = connect(config_path, args).await?;
    let zones = device_zones(&pool, &checked.plan).await?;
    let mut report = new_report(args, &url, &checked.plan);

    let mut tx = pool.begin().await?;
    store::import::lock(&mut tx).await?;
    let ctx = Ctx {
        now: Utc::now(),
        overwrite: args.overwrite,
        zones,
        crons: checked.crons,
    };
    let plan = &checked.plan;
    import(
        &mut tx,
        &ctx,
        plan,
        args,
        checked.password.as_deref(),
        &mut report,
    )
    .await?;
    // Relica's retention_days become keep-within policies in the same transaction, so a dry
    // run reports them and rolls them back with the rest.
    let skipped: HashSet<Uuid> = report
        .jobs
        .items
        .iter()
        .filter(|i| i.action == Action::Skipped)
        .filter_map(|i| i.job_id)
        .collect();
    import_retention(&mut tx, &plan.jobs, &skipped, &mut report.notes).await?;
    if args.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }

    finish_notes(&mut report, plan, args, checked.tasks);
    report.enrolment = enrolment(&report, plan);
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        // The Relica file names devices and jobs: shown escaped, like the database's text.
        print!("{}", crate::output::printable_lines(&human(&report)));
    }
    Ok(exit::SUCCESS)
}

/// What the command works from once the input is checked.
struct CheckedInput {
    plan: ImportPlan,
    /// Every planned cron line, parsed.
    crons: HashMap<String, CronExpr>,
    password: Option<String>,
    /// How many tasks `local.recent_tasks` lists.
    tasks: usize,
}

/// Reads, parses and plans the Relica file, checks every cron line, reads the password file
/// and checks `--repository-url`: every refusal (a usage error) comes before the database.
fn check_input(args: &RelicaMigrateArgs) -> anyhow::Result<CheckedInput> {
    let text = read_relica_file(&args.file)?;
    let doc = relica::parse(&text).map_err(|e| Failure::usage(e.to_string()))?;
    let plan = relica::plan(&doc, &args.origins).map_err(|e| Failure::usage(e.to_string()))?;
    let crons = check_crons(&plan)?;
    let password = match &args.password_file {
        Some(p) => Some(read_password_file(p)?),
        None => None,
    };
    if let Some(url) = &args.repository_url
        && url.trim().is_empty()
    {
        return Err(usage_err!(
            "--repository-url is empty; pass the restic repository, e.g. sftp:user@host:/srv/restic"
        ));
    }
    Ok(CheckedInput {
        plan,
        crons,
        password,
        tasks: doc.recent_tasks.len(),
    })
}

/// The database URL and a pool: `--database-url`, or the config's on an enrolled machine.
async fn connect(config_path: &Path, args: &RelicaMigrateArgs) -> anyhow::Result<(String, PgPool)> {
    if let Some(u) = &args.database_url {
        return Ok((u.clone(), crate::store::db::connect(u).await?));
    }
    let (cfg, pool) = crate::commands::open(config_path).await.map_err(|e| {
        if exit::code_of(&e) == exit::USAGE {
            usage_err!(
                "no database to import into: pass --database-url \
                 postgres://USER:PASSWORD@HOST/DATABASE, or run this on an enrolled machine ({e})"
            )
        } else {
            e
        }
    })?;
    Ok((cfg.database_url, pool))
}

/// The time zone of each planned device (for `next_run_at`), read before the transaction
/// starts.
async fn device_zones(
    pool: &PgPool,
    plan: &ImportPlan,
) -> anyhow::Result<HashMap<String, chrono_tz::Tz>> {
    let mut zones = HashMap::new();
    for d in &plan.devices {
        let tz = crate::store::settings::load(pool, &d.id)
            .await?
            .timezone()?;
        zones.insert(d.id.clone(), tz);
    }
    Ok(zones)
}

/// The report before anything is imported: the options, the plan's warnings and the hooks note.
fn new_report(args: &RelicaMigrateArgs, url: &str, plan: &ImportPlan) -> Report {
    Report {
        dry_run: args.dry_run,
        file: args.file.display().to_string(),
        database_url: mask_url(url),
        import_history: args.import_history,
        overwrite: args.overwrite,
        devices: Section::default(),
        jobs: Section::default(),
        schedules: Section::default(),
        runs: Section::default(),
        settings: Vec::new(),
        warnings: plan.warnings.clone(),
        notes: vec![HOOKS_NOTE.to_owned()],
        enrolment: Vec::new(),
    }
}

/// The `device enroll` line of every planned device that was not rejected.
fn enrolment(report: &Report, plan: &ImportPlan) -> Vec<Enrolment> {
    let rejected: HashSet<&str> = report
        .devices
        .items
        .iter()
        .filter(|i| {
            i.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("rejected: "))
        })
        .filter_map(|i| i.device_id.as_deref())
        .collect();
    plan.devices
        .iter()
        .filter(|d| !rejected.contains(d.id.as_str()))
        .map(|d| Enrolment {
            device_id: d.id.clone(),
            device_name: d.name.clone(),
            command: format!(
                "restic-fleet device enroll {}",
                crate::domain::quote::posix(&d.id)
            ),
        })
        .collect()
}

fn read_relica_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        usage_err!(
            "cannot read the Relica file {}: {e}; pass the path of the Relica client's cache file",
            path.display()
        )
    })?;
    String::from_utf8(bytes).map_err(|e| {
        usage_err!(
            "the Relica file {} is not UTF-8 text (invalid byte at offset {}); pass the \
             unmodified cache file from the Relica client's data folder",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The file's content without one trailing newline (`\n` or `\r\n`).
fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage_err!(
            "cannot read the password file {}: {e}; pass a readable file holding the repository \
             password",
            path.display()
        )
    })?;
    let pw = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if pw.is_empty() {
        return Err(usage_err!(
            "the password file {} is empty; write the repository password into it",
            path.display()
        ));
    }
    Ok(pw.to_owned())
}

/// Parses every planned cron line (keyed by the line itself).
fn check_crons(plan: &ImportPlan) -> anyhow::Result<HashMap<String, CronExpr>> {
    let mut out = HashMap::new();
    for j in &plan.jobs {
        for s in &j.schedules {
            if out.contains_key(&s.cron_expression) {
                continue;
            }
            // Refused here, before anything is written: a line that can never fire or does
            // not fit the column.
            let expr = crate::domain::calendar::storable_cron(&s.cron_expression).map_err(|e| {
                usage_err!(
                    "the schedule planned for Relica backup {:?} ({}) is not valid cron: {e}",
                    j.name,
                    j.id
                )
            })?;
            out.insert(s.cron_expression.clone(), expr);
        }
    }
    Ok(out)
}

fn finish_notes(report: &mut Report, plan: &ImportPlan, args: &RelicaMigrateArgs, tasks: usize) {
    if !args.import_history && !plan.history.is_empty() {
        report.notes.push(format!(
            "the run history ({} task(s) in local.recent_tasks) was not imported; pass \
             --import-history to add it",
            tasks
        ));
    }
    if report.jobs.skipped + report.devices.skipped > 0 {
        report.notes.push(if args.overwrite {
            "some rows were skipped (see their reason); --overwrite never replaces another job \
             that holds the same name"
                .to_owned()
        } else {
            "some rows were skipped because they were edited in the database since the last \
             import or collide with other rows (see their reason); re-run with --overwrite to \
             replace edited rows"
                .to_owned()
        });
    }
    report.notes.push(
        "give each machine its own database login with the command below (run it where you \
         manage the fleet, as backup_admin); it prints the `restic-fleet init` line to run on \
         that machine, followed there by `restic-fleet sync`"
            .to_owned(),
    );
    if args.dry_run {
        report
            .notes
            .push("dry run: nothing was written to the database".to_owned());
    }
}

// ---------------------------------------------------------------------------------------------
// Import (inside the transaction)
// ---------------------------------------------------------------------------------------------

/// What every step of the import works with.
struct Ctx {
    now: DateTime<Utc>,
    overwrite: bool,
    zones: HashMap<String, chrono_tz::Tz>,
    crons: HashMap<String, CronExpr>,
}

/// Writes the plan: settings, devices, jobs with their schedules, and the run history when
/// asked for, recording each row's fate in the report.
async fn import(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    args: &RelicaMigrateArgs,
    password: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    import_settings(conn, args, password, &mut report.settings).await?;
    let rejected_devices = import_devices(conn, ctx, plan, &mut report.devices).await?;
    let present_jobs = import_jobs(conn, ctx, plan, &rejected_devices, report).await?;
    if args.import_history {
        import_runs(conn, plan, &present_jobs, &mut report.runs).await?;
    }
    Ok(())
}

/// `--repository-url` and `--password-file` as the global settings.
async fn import_settings(
    conn: &mut PgConnection,
    args: &RelicaMigrateArgs,
    password: Option<&str>,
    settings: &mut Vec<SettingChange>,
) -> anyhow::Result<()> {
    if let Some(url) = &args.repository_url {
        let action = set_global(conn, "repository_url", url.trim()).await?;
        settings.push(SettingChange {
            key: "repository_url".into(),
            action,
        });
    }
    if let Some(pw) = password {
        let action = set_global(conn, "repository_password", pw).await?;
        settings.push(SettingChange {
            key: "repository_password".into(),
            action,
        });
    }
    Ok(())
}

/// The devices. The CLI's validation applies to imported rows too: a device it would refuse is
/// reported as skipped ("rejected: ...") and not stored. Returns, per rejected device id, why
/// its jobs are skipped.
async fn import_devices(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    section: &mut Section,
) -> anyhow::Result<HashMap<String, String>> {
    let mut rejected = HashMap::new();
    for d in &plan.devices {
        if let Some(reason) = rejected_device(d) {
            let mut item = Item::new(Action::Skipped);
            item.id = Some(d.id.clone());
            item.name = Some(d.name.clone());
            item.device_id = Some(d.id.clone());
            item.reason = Some(format!("rejected: {reason}"));
            rejected.insert(d.id.clone(), format!("its device {:?} was rejected", d.id));
            section.push(item);
            continue;
        }
        let item = import_device(conn, ctx, d).await?;
        section.push(item);
    }
    Ok(rejected)
}

/// The jobs, each with its schedules unless it was skipped (then its schedules are reported
/// skipped too). A job the CLI would refuse, or whose device was rejected, is not stored.
/// Returns the jobs that exist afterwards: only their runs can be imported.
async fn import_jobs(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    rejected_devices: &HashMap<String, String>,
    report: &mut Report,
) -> anyhow::Result<HashSet<Uuid>> {
    let mut present_jobs: HashSet<Uuid> = HashSet::new();
    for j in &plan.jobs {
        let platform = plan
            .devices
            .iter()
            .find(|d| d.id == j.device_id)
            .map_or("linux", |d| d.platform.as_str());
        let rejection = match rejected_devices.get(j.device_id.as_str()) {
            Some(r) => Some(r.clone()),
            None => rejected_job(j, platform),
        };
        let (item, exists, write_schedules) = match rejection {
            Some(reason) => {
                let mut it = job_item(Action::Skipped, j);
                it.reason = Some(format!("rejected: {reason}"));
                let exists = store::import::job_exists(conn, j.id).await?;
                (it, exists, false)
            }
            None => import_job(conn, ctx, j).await?,
        };
        let skip_reason = item.reason.clone();
        report.jobs.push(item);
        if exists {
            present_jobs.insert(j.id);
        }
        if write_schedules {
            import_schedules(conn, ctx, j, &mut report.schedules).await?;
        } else {
            for s in &j.schedules {
                let mut it = schedule_item(Action::Skipped, j, Some(s.cron_expression.clone()));
                it.reason = Some(format!(
                    "its job was skipped: {}",
                    skip_reason.as_deref().unwrap_or("see the job")
                ));
                report.schedules.push(it);
            }
        }
    }
    Ok(present_jobs)
}

/// Why the CLI would refuse this device (`device add`'s check of the name), if it would.
fn rejected_device(d: &PlannedDevice) -> Option<String> {
    crate::domain::device::validate_device_name(&d.name)
        .err()
        .map(|e| e.to_string())
}

/// Why the CLI would refuse this job (`job add`'s checks: name, absolute paths for the
/// platform, exclude patterns), if it would. Relica backups carry no restic arguments, so there
/// are none to check against [`crate::domain::restic::args`].
fn rejected_job(j: &PlannedJob, platform: &str) -> Option<String> {
    use crate::domain::job;
    job::validate_name(&j.name)
        .and_then(|_| job::validate_paths(&j.source_paths, platform))
        .and_then(|_| job::validate_excludes(&j.exclude_patterns))
        .err()
        .map(|e| e.to_string())
}

/// A report item about job `j`.
fn job_item(action: Action, j: &PlannedJob) -> Item {
    let mut item = Item::new(action);
    item.id = Some(j.id.to_string());
    item.job_id = Some(j.id);
    item.name = Some(j.name.clone());
    item.device_id = Some(j.device_id.clone());
    item
}

/// A report item about a schedule (`cron`) of job `j`.
fn schedule_item(action: Action, j: &PlannedJob, cron: Option<String>) -> Item {
    let mut item = Item::new(action);
    item.job_id = Some(j.id);
    item.name = Some(j.name.clone());
    item.device_id = Some(j.device_id.clone());
    item.cron_expression = cron;
    item
}

async fn set_global(conn: &mut PgConnection, key: &str, value: &str) -> anyhow::Result<Action> {
    let current = store::import::global_setting(conn, key).await?;
    let action = match current.as_deref() {
        Some(v) if v == value => return Ok(Action::Unchanged),
        Some(_) => Action::Updated,
        None => Action::Created,
    };
    store::import::set_global_setting(conn, key, value).await?;
    Ok(action)
}

// ---- fingerprints ----

/// 64-bit FNV-1a of the canonical JSON (object keys sorted, as serde_json's map keeps them).
fn field_hash(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What to do with an existing row, given its imported fields now (`current`), the file's
/// (`planned`) and the hashes the last import stored (`stamp`).
enum Decision {
    Unchanged,
    Update(Vec<String>),
    Skip(Vec<String>),
}

fn decide(
    current: &Map<String, Value>,
    planned: &Map<String, Value>,
    stamp: Option<&Map<String, Value>>,
    overwrite: bool,
) -> Decision {
    let differing: Vec<String> = planned
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    if differing.is_empty() {
        return Decision::Unchanged;
    }
    let edited: Vec<String> = match stamp {
        None => current.keys().cloned().collect(),
        Some(stamp) => current
            .iter()
            .filter(|(k, v)| match stamp.get(*k) {
                Some(h) => h.as_str() != Some(&field_hash(v)),
                // A field newer than the stamp (hooks) is no edit while it holds its default:
                // the row was imported before the field existed.
                None => k.as_str() != "hooks" || **v != hooks_field(&None, &None, "stop"),
            })
            .map(|(k, _)| k.clone())
            .collect(),
    };
    if edited.is_empty() || overwrite {
        Decision::Update(differing)
    } else {
        Decision::Skip(edited)
    }
}

fn stamp_of(metadata: &Option<Value>) -> Option<&Map<String, Value>> {
    metadata
        .as_ref()?
        .get("relica_import")?
        .get("fields")?
        .as_object()
}

/// Whether the stamp holds the hashes of exactly the planned values (the last import wrote
/// this file's values).
fn stamp_is_fresh(stamp: Option<&Map<String, Value>>, planned: &Map<String, Value>) -> bool {
    stamp.is_some_and(|s| {
        planned
            .iter()
            .all(|(k, v)| s.get(k).and_then(Value::as_str) == Some(&field_hash(v)))
    })
}

fn new_stamp(now: DateTime<Utc>, planned: &Map<String, Value>) -> Value {
    let fields: Map<String, Value> = planned
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(field_hash(v))))
        .collect();
    json!({
        "imported_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "fields": fields,
    })
}

fn to_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---- devices ----

/// Creates the device, or updates it when the file changed and the row was not edited since
/// the last import (or `--overwrite`).
async fn import_device(
    conn: &mut PgConnection,
    ctx: &Ctx,
    d: &PlannedDevice,
) -> anyhow::Result<Item> {
    let planned = to_map(json!({"name": d.name, "platform": d.platform}));
    let relica = d.metadata.get("relica").cloned().unwrap_or(Value::Null);
    let new_meta = || json!({"relica": relica, "relica_import": new_stamp(ctx.now, &planned)});
    let mut item = Item::new(Action::Created);
    item.id = Some(d.id.clone());
    item.name = Some(d.name.clone());
    item.device_id = Some(d.id.clone());

    let Some(row) = store::import::device_for_update(conn, &d.id).await? else {
        store::import::insert_device(conn, d, new_meta()).await?;
        return Ok(item);
    };
    let current = to_map(json!({"name": row.name, "platform": row.platform}));
    let old_relica = row
        .metadata
        .as_ref()
        .and_then(|m| m.get("relica"))
        .cloned()
        .unwrap_or(Value::Null);
    let stamp = stamp_of(&row.metadata);
    let stamp_fresh = stamp_is_fresh(stamp, &planned);
    let mut fields = match decide(&current, &planned, stamp, ctx.overwrite) {
        Decision::Skip(edited) => {
            item.action = Action::Skipped;
            item.reason = Some(device_skip_reason(d, &row, stamp.is_none(), &edited));
            item.fields = edited;
            return Ok(item);
        }
        Decision::Unchanged => Vec::new(),
        Decision::Update(f) => f,
    };
    if old_relica != relica {
        fields.push("metadata.relica".into());
    }
    if fields.is_empty() && stamp_fresh {
        item.action = Action::Unchanged;
        return Ok(item);
    }
    store::import::update_device(conn, d, new_meta()).await?;
    item.action = if fields.is_empty() {
        Action::Unchanged
    } else {
        Action::Updated
    };
    item.fields = fields;
    Ok(item)
}

/// Why an existing device is kept as is: it was never imported, or it was `edited` since.
fn device_skip_reason(
    d: &PlannedDevice,
    row: &store::import::ImportedDevice,
    never_imported: bool,
    edited: &[String],
) -> String {
    if never_imported {
        format!(
            "device {:?} already exists (name {:?}, platform {}) and was not \
             created by a Relica import; kept as is (--overwrite sets name {:?} and \
             platform {})",
            d.id, row.name, row.platform, d.name, d.platform
        )
    } else {
        format!(
            "edited in the database since the last import ({}); kept as is \
             (--overwrite replaces it)",
            edited.join(", ")
        )
    }
}

// ---- jobs ----

/// The `schedules` fingerprint field: sorted `"<cron>|<enabled>"` lines.
fn schedule_lines<'a>(it: impl Iterator<Item = (&'a str, bool)>) -> Value {
    let mut v: Vec<String> = it.map(|(c, e)| format!("{c}|{e}")).collect();
    v.sort();
    json!(v)
}

fn planned_job_fields(j: &PlannedJob) -> Map<String, Value> {
    to_map(json!({
        "device_id": j.device_id,
        "name": j.name,
        "source_paths": j.source_paths,
        "exclude_patterns": j.exclude_patterns,
        "enabled": j.enabled,
        "origin_name": j.origin_name,
        "origin_id": j.origin_id,
        "account_id": j.account_id,
        "relica": j.metadata.get("relica").cloned().unwrap_or(Value::Null),
        "schedules": schedule_lines(j.schedules.iter().map(|s| (s.cron_expression.as_str(), true))),
        "hooks": hooks_field(&j.hooks.before, &j.hooks.finally, &j.hooks.before_on_error),
    }))
}

/// The imported fields of an existing job row and its Relica schedules, as
/// [`planned_job_fields`] writes them for the plan.
fn current_job_fields(
    row: &store::import::ImportedJob,
    scheds: &[store::import::RelicaSchedule],
) -> Map<String, Value> {
    to_map(json!({
        "device_id": row.device_id,
        "name": row.name,
        "source_paths": row.source_paths,
        "exclude_patterns": row.exclude_patterns.clone().unwrap_or_default(),
        "enabled": row.enabled,
        "origin_name": row.origin_name,
        "origin_id": row.origin_id,
        "account_id": row.account_id,
        "relica": row.metadata.as_ref().and_then(|m| m.get("relica")).cloned().unwrap_or(Value::Null),
        "schedules": schedule_lines(scheds.iter().map(|s| (s.cron_expression.as_deref().unwrap_or(""), s.enabled))),
        "hooks": hooks_field(&row.hook_before, &row.hook_finally, &row.hook_before_on_error),
    }))
}

/// The imported hook columns as one change-detected field.
fn hooks_field(before: &Option<String>, finally: &Option<String>, on_error: &str) -> Value {
    json!({"before": before, "finally": finally, "before_on_error": on_error})
}

/// Returns the report item, whether the job row exists afterwards, and whether its schedules
/// are to be written.
async fn import_job(
    conn: &mut PgConnection,
    ctx: &Ctx,
    j: &PlannedJob,
) -> anyhow::Result<(Item, bool, bool)> {
    let planned = planned_job_fields(j);
    let mut item = job_item(Action::Created, j);
    let row = store::import::job_for_update(conn, j.id).await?;
    let name_taken = name_taken(conn, j).await?;
    let new_meta = json!({
        "relica": planned["relica"],
        "relica_import": new_stamp(ctx.now, &planned),
    });

    let Some(row) = row else {
        if let Some(reason) = name_taken {
            item.action = Action::Skipped;
            item.fields = vec!["name".into()];
            item.reason = Some(reason);
            return Ok((item, false, false));
        }
        store::import::write_job(conn, j, new_meta).await?;
        return Ok((item, true, true));
    };

    let scheds = store::import::relica_schedules(conn, j.id).await?;
    let current = current_job_fields(&row, &scheds);
    let stamp = stamp_of(&row.metadata);
    match decide(&current, &planned, stamp, ctx.overwrite) {
        Decision::Skip(edited) => {
            item.action = Action::Skipped;
            item.reason = Some(job_skip_reason(j, &row, stamp.is_none(), &edited));
            item.fields = edited;
            Ok((item, true, false))
        }
        Decision::Unchanged => {
            item.action = Action::Unchanged;
            if !stamp_is_fresh(stamp, &planned) {
                // Same values, but not (or not recently) stamped: adopt the row.
                store::import::merge_job_metadata(conn, j.id, new_meta).await?;
            }
            Ok((item, true, true))
        }
        Decision::Update(fields) => {
            if let Some(reason) =
                name_taken.filter(|_| fields.iter().any(|f| f == "name" || f == "device_id"))
            {
                item.action = Action::Skipped;
                item.fields = vec!["name".into()];
                item.reason = Some(reason);
                return Ok((item, true, false));
            }
            store::import::write_job(conn, j, new_meta).await?;
            item.action = Action::Updated;
            item.fields = fields;
            Ok((item, true, true))
        }
    }
}

/// Why the job cannot have its name: the name must be free on the device
/// (UNIQUE (device_id, name)), and another job holds it.
async fn name_taken(conn: &mut PgConnection, j: &PlannedJob) -> anyhow::Result<Option<String>> {
    let holder = store::import::name_holder(conn, &j.device_id, &j.name, j.id).await?;
    Ok(holder.map(|(other, imported)| {
        format!(
            "device {:?} already has another job named {:?} (id {other}, {}); rename that job or \
             the Relica backup and re-run",
            j.device_id,
            j.name,
            if imported {
                "imported from another Relica backup"
            } else {
                "not from Relica"
            }
        )
    }))
}

/// Why an existing job is kept as is: it was never imported, or it was `edited` since.
fn job_skip_reason(
    j: &PlannedJob,
    row: &store::import::ImportedJob,
    never_imported: bool,
    edited: &[String],
) -> String {
    if never_imported {
        format!(
            "job {} already exists (device {:?}, name {:?}) and was not created by a \
             Relica import; kept as is (--overwrite replaces it with the Relica backup)",
            j.id, row.device_id, row.name
        )
    } else {
        format!(
            "edited in the database since the last import ({}); kept as is \
             (--overwrite replaces it with the Relica backup)",
            edited.join(", ")
        )
    }
}

// ---- schedules ----

/// The clock of one job's schedules: its device's time zone, now, and the last run the file
/// knows of.
struct JobClock {
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    planned_last: Option<DateTime<Utc>>,
}

impl JobClock {
    fn next_run(&self, sched: &Schedule, last: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        crate::domain::schedule::next_run(sched, last, self.now, &self.tz)
    }
}

/// Writes the job's Relica schedules: an existing row with the same cron line is kept (and
/// refreshed), a new line is inserted, a row whose line the file no longer has is deleted.
/// Schedules a user added to the job are not touched.
async fn import_schedules(
    conn: &mut PgConnection,
    ctx: &Ctx,
    j: &PlannedJob,
    section: &mut Section,
) -> anyhow::Result<()> {
    let existing = store::import::relica_schedules(conn, j.id).await?;
    let clock = JobClock {
        tz: ctx
            .zones
            .get(&j.device_id)
            .copied()
            .unwrap_or(chrono_tz::UTC),
        now: ctx.now,
        // PostgreSQL keeps microseconds (sqlx truncates); compare at that precision.
        planned_last: j.last_run_at.map(|t| t.trunc_subsecs(6)),
    };
    let mut used: HashSet<i32> = HashSet::new();
    for s in &j.schedules {
        let mut item = schedule_item(Action::Created, j, Some(s.cron_expression.clone()));
        let expr =
            ctx.crons.get(&s.cron_expression).cloned().ok_or_else(|| {
                anyhow::anyhow!("cron line {:?} was not checked", s.cron_expression)
            })?;
        let sched = Schedule::Cron(expr);
        let found = existing.iter().find(|e| {
            !used.contains(&e.id) && e.cron_expression.as_deref() == Some(&s.cron_expression)
        });
        match found {
            None => {
                let next = clock.next_run(&sched, clock.planned_last);
                let id = store::import::insert_schedule(
                    conn,
                    j.id,
                    &s.cron_expression,
                    clock.planned_last,
                    next,
                    &s.metadata,
                )
                .await?;
                item.id = Some(id.to_string());
            }
            Some(e) => {
                used.insert(e.id);
                item.id = Some(e.id.to_string());
                refresh_schedule(conn, &clock, &sched, e, s, &mut item).await?;
            }
        }
        section.push(item);
    }
    for e in existing.iter().filter(|e| !used.contains(&e.id)) {
        store::import::delete_schedule(conn, e.id).await?;
        let mut item = schedule_item(Action::Deleted, j, e.cron_expression.clone());
        item.id = Some(e.id.to_string());
        item.reason = Some("no longer in the Relica schedule".into());
        section.push(item);
    }
    Ok(())
}

/// Brings an existing Relica schedule `e` in line with the planned `s` (metadata, last run,
/// enabled, next run) and records in `item` what changed.
async fn refresh_schedule(
    conn: &mut PgConnection,
    clock: &JobClock,
    sched: &Schedule,
    e: &store::import::RelicaSchedule,
    s: &PlannedSchedule,
    item: &mut Item,
) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    if e.metadata.as_ref() != Some(&s.metadata) {
        fields.push("metadata".to_owned());
    }
    // last_run_at never moves backwards (restic-fleet may have run the job since).
    let last = match (e.last_run_at, clock.planned_last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if last != e.last_run_at {
        fields.push("last_run_at".to_owned());
    }
    // Relica's schedule is active: one disabled here is enabled again (this branch
    // runs for a job edited here only under --overwrite).
    if !e.enabled {
        fields.push("enabled".to_owned());
    }
    let next =
        if fields.iter().any(|f| f == "last_run_at" || f == "enabled") || e.next_run_at.is_none() {
            clock.next_run(sched, last)
        } else {
            e.next_run_at
        };
    if fields.is_empty() && next == e.next_run_at {
        item.action = Action::Unchanged;
        return Ok(());
    }
    store::import::update_schedule(conn, e.id, &s.metadata, last, next).await?;
    if e.next_run_at.is_none() && next.is_some() {
        fields.push("next_run_at".to_owned());
    }
    item.action = Action::Updated;
    item.fields = fields;
    Ok(())
}

// ---- runs ----

/// The planned runs whose Relica task is not yet in `runs`; the runs of jobs that do not exist
/// (skipped, rejected) are reported skipped.
async fn import_runs(
    conn: &mut PgConnection,
    plan: &ImportPlan,
    present_jobs: &HashSet<Uuid>,
    section: &mut Section,
) -> anyhow::Result<()> {
    let keys: Vec<String> = plan
        .history
        .iter()
        .map(|r| r.relica_task_id.clone())
        .collect();
    let existing = store::import::imported_task_ids(conn, &keys).await?;
    let existing: HashSet<String> = existing.into_iter().collect();
    for r in &plan.history {
        let mut item = Item::new(Action::Created);
        item.id = Some(r.relica_task_id.clone());
        item.job_id = Some(r.job_id);
        item.device_id = Some(r.device_id.clone());
        if existing.contains(&r.relica_task_id) {
            item.action = Action::Unchanged;
        } else if !present_jobs.contains(&r.job_id) {
            item.action = Action::Skipped;
            item.reason = Some(format!("its job {} was not imported", r.job_id));
        } else {
            let duration = r.duration_seconds.and_then(|d| i32::try_from(d).ok());
            store::import::insert_run(conn, r, duration).await?;
        }
        section.push(item);
    }
    Ok(())
}

// ---- retention ----

/// Stores keep-within `Nd` (N from [`relica::retention::retention_days`]) for each imported
/// job (not `skipped`) without a policy of its own; one note per job says so.
async fn import_retention(
    conn: &mut PgConnection,
    jobs: &[PlannedJob],
    skipped: &HashSet<Uuid>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for j in jobs.iter().filter(|j| !skipped.contains(&j.id)) {
        let Some(days) = relica::retention::retention_days(&j.metadata) else {
            continue;
        };
        // restic's duration counts; 1000000 days is far beyond any real retention.
        let days = days.min(1_000_000);
        let stored = store::import::insert_keep_within(conn, j.id, format!("{days}d")).await?;
        notes.push(if stored {
            format!(
                "job {:?} ({}): Relica's retention_days {days} became the retention policy \
                 keep-within {days}d (applied by the maintenance owner's `restic-fleet maintain`)",
                j.name, j.id
            )
        } else {
            format!(
                "job {:?} ({}): Relica's retention_days {days} was not applied because the job \
                 already has a retention policy",
                j.name, j.id
            )
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

fn counts(s: &Section) -> String {
    let mut out = format!(
        "{} created, {} updated, {} unchanged, {} skipped",
        s.created, s.updated, s.unchanged, s.skipped
    );
    if s.deleted > 0 {
        out.push_str(&format!(", {} deleted", s.deleted));
    }
    out
}

fn item_line(kind: &str, it: &Item) -> String {
    let mut line = format!("  {} {kind}", it.action.as_str());
    if let Some(c) = &it.cron_expression {
        line.push_str(&format!(" {c:?} of"));
    }
    if let Some(n) = &it.name {
        line.push_str(&format!(" {n:?}"));
    }
    let show_id = match kind {
        "job" | "run" => true,
        "device" => it.id != it.name,
        _ => false,
    };
    if let Some(id) = it.id.as_ref().filter(|_| show_id) {
        line.push_str(&format!(" ({id})"));
    }
    if let Some(d) = it.device_id.as_ref().filter(|_| kind != "device") {
        line.push_str(&format!(" on device {d}"));
    }
    if !it.fields.is_empty() && it.action == Action::Updated {
        line.push_str(&format!(" [{}]", it.fields.join(", ")));
    }
    if let Some(r) = &it.reason {
        line.push_str(&format!(": {r}"));
    }
    line
}

/// The human report.
pub fn human(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Relica import of {} into {}{}\n",
        r.file,
        r.database_url,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    ));
    for (label, kind, s) in [
        ("devices:  ", "device", &r.devices),
        ("jobs:     ", "job", &r.jobs),
        ("schedules:", "schedule", &r.schedules),
        ("runs:     ", "run", &r.runs),
    ] {
        out.push_str(&format!("{label} {}\n", counts(s)));
        for it in &s.items {
            let show = match kind {
                "run" => it.action == Action::Skipped,
                _ => it.action != Action::Unchanged,
            };
            if show {
                out.push_str(&item_line(kind, it));
                out.push('\n');
            }
        }
    }
    for s in &r.settings {
        out.push_str(&format!("setting {}: {}\n", s.key, s.action.as_str()));
    }
    if !r.warnings.is_empty() {
        out.push_str(&format!("warnings ({}):\n", r.warnings.len()));
        for w in &r.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    for e in &r.enrolment {
        out.push_str(&format!("  {}\n", e.command));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let planned = to_map(json!({"a": 1, "b": [1, 2]}));
        let stamp_v = new_stamp(Utc::now(), &planned);
        let stamp = stamp_v["fields"].as_object().unwrap();
        // Same values: unchanged.
        assert!(matches!(
            decide(&planned, &planned, Some(stamp), false),
            Decision::Unchanged
        ));
        // The file changed, the row is as imported: update.
        let newer = to_map(json!({"a": 2, "b": [1, 2]}));
        assert!(matches!(
            decide(&planned, &newer, Some(stamp), false),
            Decision::Update(f) if f == ["a"]
        ));
        // The row was edited: skip, naming the field, unless overwrite.
        let edited = to_map(json!({"a": 1, "b": [3]}));
        assert!(matches!(
            decide(&edited, &planned, Some(stamp), false),
            Decision::Skip(f) if f == ["b"]
        ));
        assert!(matches!(
            decide(&edited, &planned, Some(stamp), true),
            Decision::Update(f) if f == ["b"]
        ));
        // Never imported and different: skip.
        assert!(matches!(
            decide(&edited, &planned, None, false),
            Decision::Skip(_)
        ));
        assert_eq!(field_hash(&json!([1])), field_hash(&json!([1])));
        assert_ne!(field_hash(&json!([1])), field_hash(&json!([2])));
    }

    #[test]
    fn password_file_loses_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret \n").unwrap();
        assert_eq!(read_password_file(&p).unwrap(), "s3cret ");
        std::fs::write(&p, "x\r\n").unwrap();
        assert_eq!(read_password_file(&p).unwrap(), "x");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_password_file(&p).is_err());
        assert!(read_password_file(&dir.path().join("none")).is_err());
    }
}
