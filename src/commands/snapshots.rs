//! `restic-fleet snapshots` and `restic-fleet restore`: the repository's snapshots seen through
//! the fleet (job and device names instead of tags), and restoring one job's backup with the
//! fleet's repository settings, from the device itself or an admin machine (`--database-url`).
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

use crate::commands::{Conn, explain, require_device};
use crate::domain::exit::{self, Failure};
use crate::domain::job::Job;
use crate::output::{self, print_json};
use crate::platform::repository::{LockWait, Repository, Snapshot};
use crate::usage_err;

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only the snapshots of this device (its id is the snapshots' host).
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Only the snapshots of this job (its tag and its device).
    #[arg(long, value_name = "JOB-UUID")]
    pub job: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

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

/// `snapshots --json`: an array, oldest first, of `id`, `short_id`, `time`, `hostname`,
/// `device_name` (null for a host that is no device), `job_id` (from the `backup:<uuid>` tag,
/// null without one), `job_name` (null when no such job exists, or when the job belongs to
/// another device than the snapshot's host), `paths`, `tags`.
#[derive(Debug, Serialize)]
pub struct SnapshotRow {
    pub id: String,
    pub short_id: String,
    pub time: DateTime<Utc>,
    pub hostname: String,
    pub device_name: Option<String>,
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
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

/// The repository as `device` reaches it (the job's device, or `--device`): its own
/// `repository_url`, password and `repository_environment` override the global ones, exactly as
/// that device's runs use them. Without a device, this machine's device when it has a config,
/// else the global settings (an admin machine).
async fn repository(
    config_path: &Path,
    pool: &PgPool,
    device: Option<&str>,
) -> anyhow::Result<Repository> {
    let device = match device {
        Some(d) => d.to_string(),
        None => crate::local::config::load(config_path)
            .map(|c| c.device_id)
            .unwrap_or_default(),
    };
    let settings = crate::store::settings::load(pool, &device).await?;
    Repository::from_settings(&settings)
}

pub async fn snapshots(config_path: &Path, args: SnapshotsArgs) -> anyhow::Result<u8> {
    explain(list(config_path, args).await)
}

async fn list(config_path: &Path, args: SnapshotsArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    let job = match &args.job {
        Some(j) => Some(crate::commands::resolve_job(config_path, &pool, j).await?),
        None => None,
    };
    if let Some(d) = &args.device {
        require_device(&pool, d).await?;
        if let Some(j) = &job
            && &j.device_id != d
        {
            return Err(usage_err!(
                "job {} belongs to device {:?}, not {d:?}; drop --device or choose another job",
                j.id,
                j.device_id
            ));
        }
    }
    let host = job
        .as_ref()
        .map(|j| j.device_id.clone())
        .or(args.device.clone());
    let repo = repository(config_path, &pool, host.as_deref()).await?;
    let tags: Vec<String> = job.iter().map(|j| format!("backup:{}", j.id)).collect();
    let snaps = repo.snapshots(host.as_deref(), &tags).await?;
    let jobs: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, device_id, name FROM backup_jobs")
            .fetch_all(&pool)
            .await?;
    let devices: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM devices")
        .fetch_all(&pool)
        .await?;
    let rows: Vec<SnapshotRow> = snaps
        .into_iter()
        .map(|s| {
            let job_id = s.job_id();
            let job_name = job_id.and_then(|id| {
                jobs.iter()
                    .find(|(j, d, _)| *j == id && *d == s.hostname)
                    .map(|(_, _, n)| n.clone())
            });
            SnapshotRow {
                device_name: devices
                    .iter()
                    .find(|(d, _)| *d == s.hostname)
                    .map(|(_, n)| n.clone()),
                job_id,
                job_name,
                short_id: if s.short_id.is_empty() {
                    crate::domain::text::truncate_str(&s.id, 8).to_string()
                } else {
                    s.short_id
                },
                id: s.id,
                time: s.time,
                hostname: s.hostname,
                paths: s.paths,
                tags: s.tags.unwrap_or_default(),
            }
        })
        .collect();
    if args.conn.json {
        print_json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    if rows.is_empty() {
        println!("no snapshots");
        return Ok(exit::SUCCESS);
    }
    let mut t = output::table(&["snapshot", "time", "device", "job", "paths"]);
    for r in &rows {
        t.add_row([
            r.short_id.clone().into(),
            r.time.format("%Y-%m-%d %H:%M:%S UTC").to_string().into(),
            match &r.device_name {
                Some(n) if *n != r.hostname => format!("{} ({n})", r.hostname),
                _ => r.hostname.clone(),
            }
            .into(),
            match (&r.job_name, r.job_id) {
                (Some(n), _) => n.clone(),
                (None, Some(id)) => format!("{id} (no such job)"),
                (None, None) => "-".into(),
            }
            .into(),
            output::lines(&r.paths),
        ]);
    }
    println!("{}", output::render(&t));
    println!("{} snapshot(s)", rows.len());
    Ok(exit::SUCCESS)
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

pub async fn restore(config_path: &Path, args: RestoreArgs) -> anyhow::Result<u8> {
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
    let repo = repository(config_path, &pool, Some(&job.device_id)).await?;
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
        std::fs::create_dir_all(&target)
            .map_err(|e| usage_err!("cannot create the target {}: {e}", target.display()))?;
        let mut argv = vec![
            "restore".to_string(),
            snap.id.clone(),
            format!("--target={}", target.to_string_lossy()),
        ];
        for inc in &args.includes {
            argv.push(format!("--include={inc}"));
        }
        let settings = crate::store::settings::load(&pool, &job.device_id).await?;
        let mut wait = LockWait::from_settings(&settings)?;
        let out = repo.run_waiting(&argv, &mut wait).await;
        if !out.success() {
            return Err(Failure::failed(format!(
                "restoring snapshot {} of job {} ({:?}) failed: {}",
                crate::domain::text::truncate_str(&snap.id, 8),
                job.id,
                job.name,
                out.reason(&repo.url)
            ))
            .into());
        }
        report.restored = true;
    }
    if args.conn.json {
        print_json(&report)?;
    } else {
        println!(
            "{} snapshot {} of job {:?} (device {:?}, {}, paths {}){} into {}",
            if args.dry_run {
                "would restore"
            } else {
                "restored"
            },
            output::printable(crate::domain::text::truncate_str(&snap.id, 8)),
            job.name,
            job.device_id,
            snap.time.to_rfc3339(),
            output::printable(&snap.paths.join(", ")),
            if args.includes.is_empty() {
                String::new()
            } else {
                format!(" (only {})", args.includes.join(", "))
            },
            target.display()
        );
    }
    Ok(exit::SUCCESS)
}
