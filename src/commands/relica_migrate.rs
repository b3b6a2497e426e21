//! `restic-fleet relica-migrate`: reads a Relica client cache, checks it whole, and has
//! [`crate::ops::relica_import`] write its [`crate::domain::relica::ImportPlan`] into the
//! database, in one transaction, safely re-runnable; then prints what became of each row.
//!
//! # What is written
//!
//! * `devices`: one per selected Relica origin (the id rule is
//!   [`crate::domain::relica::device_ids`]: the origin's name, or its UUID when the name cannot
//!   serve). Name and platform are set; `metadata.relica` holds the origin's facts, merged into
//!   existing metadata.
//! * `backup_jobs`: the Relica backup id kept, and its name without the `ORIGIN/` prefix (no
//!   `/` left); `origin_name`/`origin_id` from the origin, `account_id` from the backup; `metadata.relica` holds destinations, the original
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

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::calendar::CronExpr;
use crate::domain::exit::{self, Failure};
use crate::domain::relica::{self, ImportPlan};
use crate::domain::text::mask_url;
use crate::ops::relica_import::{self, Action, Ctx, Enrolment, Item, Report, Section};
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
    /// Set the global setting repository_url: one shared restic repository, or a template
    /// such as sftp:host:/base/{device_id} (checked against every imported job). A URL with a
    /// password is refused: set it with `settings set repository_url -` (stdin).
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
        import_history: args.import_history,
        repository_url: args.repository_url.clone(),
        zones,
        crons: checked.crons,
    };
    let plan = &checked.plan;
    relica_import::import(
        &mut tx,
        &ctx,
        plan,
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
    relica_import::import_retention(&mut tx, &plan.jobs, &skipped, &mut report.notes).await?;
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
    // A template is checked as `settings set` checks it, against every job imported (a
    // device's own repository_url, which the import never sets, is checked when it is set).
    if let Some(url) = &args.repository_url {
        let url = url.trim();
        crate::domain::repository::validate_template(url).map_err(|e| usage_err!("{e}"))?;
        let settings = crate::domain::settings::Settings::from_pairs([(
            "repository_url".to_string(),
            url.to_string(),
        )]);
        for j in &plan.jobs {
            let place = crate::domain::repository::JobPlace {
                device_id: &j.device_id,
                job_id: j.id,
                account_id: j.account_id,
                origin_name: Some(j.origin_name.as_str()).filter(|o| !o.is_empty()),
            };
            crate::domain::repository::of_job(&settings, &place).map_err(|e| {
                usage_err!(
                    "--repository-url does not fit Relica backup {:?}: {e}",
                    j.name
                )
            })?;
        }
    }
    // An argument is visible in the process list and kept in shell history.
    if let Some(url) = &args.repository_url
        && crate::domain::text::mask_url(url) != *url
    {
        return Err(usage_err!(
            "--repository-url holds a password, which a command-line argument would show to \
             every user of this machine; import without --repository-url, then set it from \
             stdin: `restic-fleet settings set repository_url -`"
        ));
    }
    Ok(CheckedInput {
        plan,
        crons,
        password,
        tasks: doc.recent_tasks.len(),
    })
}

/// The database URL and a pool: `--database-url`, or the config's (an admin's or a device's).
async fn connect(config_path: &Path, args: &RelicaMigrateArgs) -> anyhow::Result<(String, PgPool)> {
    if let Some(u) = &args.database_url {
        return Ok((u.clone(), crate::store::db::connect(u).await?));
    }
    let cfg = crate::local::config::load_file(config_path).map_err(|e| {
        if exit::code_of(&e) == exit::USAGE {
            usage_err!(
                "no database to import into: pass --database-url \
                 postgres://USER:PASSWORD@HOST/DATABASE, or give this machine a config ({e})"
            )
        } else {
            e
        }
    })?;
    let pool = crate::store::db::connect(&cfg.database_url).await?;
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
