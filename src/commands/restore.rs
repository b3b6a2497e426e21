//! `restic-fleet restore`: restoring one job's backup from the job's repository (its device's
//! `repository_url` template expanded for the job, with that device's password), from the
//! device itself or an admin machine (`--database-url`).
//!
//! A snapshot belongs to a job when it carries the job's `backup:<uuid>` tag AND its host is the
//! job's device: `restore` always filters by both, so a tag shared by mistake (a copied Relica
//! UUID) can never restore another machine's files.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::job_repository;
use crate::commands::{Conn, explain};
use crate::domain::exit::{self, Failure};
use crate::domain::job::Job;
use crate::output::{self, print_json};
use crate::platform::repository::{LockWait, Repository, Snapshot};
use crate::usage_err;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// UUID of the backup job whose snapshot is restored.
    #[arg(value_name = "JOB-UUID")]
    pub job: String,
    /// Directory to restore into (created if missing; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// The snapshot: an id (or unique prefix) of one of the job's snapshots, or `latest`.
    #[arg(long, value_name = "ID", default_value = "latest")]
    pub snapshot: String,
    /// Restore only this path or pattern of the snapshot (restic --include; repeatable).
    #[arg(long = "include", value_name = "PATH")]
    pub includes: Vec<String>,
    /// Say which snapshot would be restored where; restore nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore into a non-empty target (files of the same name are overwritten).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `restore --json`: `job_id`, `job_name`, `device_id`, `snapshot_id`, `snapshot_time`,
/// `paths` (of the snapshot), `target`, `includes`, `dry_run`, `restored` (false with
/// `--dry-run`).
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub job_id: Uuid,
    pub job_name: String,
    pub device_id: String,
    pub snapshot_id: String,
    pub snapshot_time: DateTime<Utc>,
    pub paths: Vec<String>,
    pub target: String,
    pub includes: Vec<String>,
    pub dry_run: bool,
    pub restored: bool,
}

/// The job's snapshot named by `wanted` (`latest`, a full id or a unique prefix) among
/// `snaps` (already filtered by the job's tag and host, oldest first).
pub fn pick<'a>(snaps: &'a [Snapshot], wanted: &str, job: &Job) -> anyhow::Result<&'a Snapshot> {
    let wanted = wanted.trim();
    if wanted == "latest" {
        return snaps.last().ok_or_else(|| {
            Failure::failed(format!(
                "job {} ({:?}) has no snapshot in the repository from its device {:?}",
                job.id, job.name, job.device_id
            ))
            .into()
        });
    }
    if wanted.is_empty() || wanted.len() > 64 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(usage_err!(
            "--snapshot {wanted:?} is not a snapshot id; give `latest` or an id from \
             `restic-fleet snapshots --job {}`",
            job.id
        ));
    }
    let wanted = wanted.to_ascii_lowercase();
    let found: Vec<&Snapshot> = snaps.iter().filter(|s| s.id.starts_with(&wanted)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(usage_err!(
            "snapshot {wanted} is not a snapshot of job {} ({:?}) on device {:?}; list its \
             snapshots with `restic-fleet snapshots --job {}`",
            job.id,
            job.name,
            job.device_id,
            job.id
        )),
        _ => Err(usage_err!(
            "snapshot id {wanted} is ambiguous ({} snapshots of the job start with it); give more \
             characters",
            found.len()
        )),
    }
}

/// A target a restore may write into: absent, or an empty directory, unless `force`.
fn check_target(target: &Path, force: bool) -> anyhow::Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(usage_err!(
                    "the target {} is not empty; restore into an empty or new directory, or \
                     pass --force to overwrite files of the same name",
                    target.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(usage_err!(
            "the target {} cannot be used: {e}; give a directory path",
            target.display()
        )),
    }
}

pub async fn run(config_path: &Path, args: RestoreArgs) -> anyhow::Result<u8> {
    explain(restore_inner(config_path, args).await)
}

async fn restore_inner(config_path: &Path, args: RestoreArgs) -> anyhow::Result<u8> {
    for inc in &args.includes {
        if inc.trim().is_empty() || inc.contains('\0') {
            return Err(usage_err!(
                "--include {inc:?} is empty; give a path inside the snapshot like /home/alice/doc"
            ));
        }
    }
    check_target(&args.target, args.force)?;
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    let job = crate::commands::resolve_job(config_path, &pool, &args.job).await?;
    let repo = job_repository(&pool, &job).await?;
    let snaps = repo
        .snapshots(Some(&job.device_id), &[format!("backup:{}", job.id)])
        .await?;
    // restic filtered by tag and host already; checked again because it decides whose files
    // are written here.
    let snaps: Vec<Snapshot> = snaps
        .into_iter()
        .filter(|s| s.hostname == job.device_id && s.job_id() == Some(job.id))
        .collect();
    let snap = pick(&snaps, &args.snapshot, &job)?.clone();
    let target = std::path::absolute(&args.target).unwrap_or_else(|_| args.target.clone());
    let mut report = RestoreReport {
        job_id: job.id,
        job_name: job.name.clone(),
        device_id: job.device_id.clone(),
        snapshot_id: snap.id.clone(),
        snapshot_time: snap.time,
        paths: snap.paths.clone(),
        target: target.to_string_lossy().into_owned(),
        includes: args.includes.clone(),
        dry_run: args.dry_run,
        restored: false,
    };
    if !args.dry_run {
        restic_restore(&pool, &repo, &job, &snap.id, &target, &args.includes).await?;
        report.restored = true;
    }
    if args.conn.json {
        print_json(&report)?;
    } else {
        print_human(&report, &target);
    }
    Ok(exit::SUCCESS)
}

/// Restores snapshot `snapshot_id` of `job` into `target` (created if missing), waiting while
/// backups hold the repository lock.
async fn restic_restore(
    pool: &PgPool,
    repo: &Repository,
    job: &Job,
    snapshot_id: &str,
    target: &Path,
    includes: &[String],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)
        .map_err(|e| usage_err!("cannot create the target {}: {e}", target.display()))?;
    let mut argv = vec![
        "restore".to_string(),
        snapshot_id.to_string(),
        format!("--target={}", target.to_string_lossy()),
    ];
    for inc in includes {
        argv.push(format!("--include={inc}"));
    }
    let settings = crate::store::settings::load(pool, &job.device_id).await?;
    let mut wait = LockWait::from_settings(&settings)?;
    let out = repo.run_waiting(&argv, &mut wait).await;
    if !out.success() {
        return Err(Failure::failed(format!(
            "restoring snapshot {} of job {} ({:?}) failed: {}",
            crate::domain::text::truncate_str(snapshot_id, 8),
            job.id,
            job.name,
            out.reason(repo)
        ))
        .into());
    }
    Ok(())
}

/// The one line saying what was (or would be) restored where.
fn print_human(r: &RestoreReport, target: &Path) {
    println!(
        "{} snapshot {} of job {:?} (device {:?}, {}, paths {}){} into {}",
        if r.dry_run {
            "would restore"
        } else {
            "restored"
        },
        output::printable(crate::domain::text::truncate_str(&r.snapshot_id, 8)),
        r.job_name,
        r.device_id,
        r.snapshot_time.to_rfc3339(),
        output::printable(&r.paths.join(", ")),
        if r.includes.is_empty() {
            String::new()
        } else {
            format!(" (only {})", r.includes.join(", "))
        },
        target.display()
    );
}
