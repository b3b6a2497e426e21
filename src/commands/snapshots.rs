//! `restic-fleet snapshots`: the snapshots seen through the fleet (job and device names instead
//! of tags), from the device itself or an admin machine (`--database-url`). On a device with
//! its own login, only that device's.
//!
//! Each job writes to the repository its device's `repository_url` template gives it, so the
//! snapshots of one job come from its repository, those of a device (or the fleet) from every
//! repository its jobs write to, each listed once and merged oldest first; `--json` says which
//! repository each came from (its URL with any password masked).
//!
//! A snapshot belongs to a job when it carries the job's `backup:<uuid>` tag AND its host is the
//! job's device (see `restore`, which always filters by both).

use std::path::Path;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use crate::commands::{Conn, explain, require_device};
use crate::commands::{job_repository, repositories};
use crate::domain::exit;
use crate::output::{self, print_json};
use crate::platform::repository::Snapshot;
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

/// `snapshots --json`: an array, oldest first, of `id`, `short_id`, `time`, `hostname`,
/// `device_name` (null for a host that is no device), `job_id` (from the `backup:<uuid>` tag,
/// null without one), `job_name` (null when no such job exists, or when the job belongs to
/// another device than the snapshot's host), `paths`, `tags`, `repository` (the URL it was
/// listed from, password masked).
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
    pub repository: String,
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
    // On a device (its own login), the device's snapshots: another device's it could neither
    // name nor restore.
    let own = crate::store::roles::session_device(&pool).await?.0;
    let host = job
        .as_ref()
        .map(|j| j.device_id.clone())
        .or(args.device.clone())
        .or(own);
    let repos = match &job {
        Some(j) => vec![job_repository(&pool, j).await?],
        None => repositories(config_path, &pool, host.as_deref()).await?,
    };
    let tags: Vec<String> = job.iter().map(|j| format!("backup:{}", j.id)).collect();
    let jobs = crate::store::jobs::names(&pool).await?;
    let devices = crate::store::devices::names(&pool).await?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for repo in &repos {
        match repo.snapshots(host.as_deref(), &tags).await {
            Ok(snaps) => rows.extend(named(snaps, &jobs, &devices, &repo.url)),
            Err(e) => failures.push(e),
        }
    }
    // One repository that cannot be read (not created yet, say) does not hide the others'
    // snapshots; the command still fails, naming it.
    if !failures.is_empty() && failures.len() == repos.len() {
        return Err(failures.swap_remove(0));
    }
    rows.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    if args.conn.json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        println!("no snapshots");
    } else {
        print_table(&rows, repos.len() > 1);
    }
    if !failures.is_empty() {
        let why: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
        return Err(crate::domain::exit::Failure::failed(format!(
            "{} of {} repositories could not be read (the others' snapshots are listed): {}",
            failures.len(),
            repos.len(),
            why.join("; ")
        ))
        .into());
    }
    Ok(exit::SUCCESS)
}

/// The snapshots with their device's and job's names (a job only when the snapshot's host is
/// the job's device).
fn named(
    snaps: Vec<Snapshot>,
    jobs: &[(Uuid, String, String)],
    devices: &[(String, String)],
    repository: &str,
) -> Vec<SnapshotRow> {
    let repository = crate::domain::text::mask_url(repository);
    snaps
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
                repository: repository.clone(),
            }
        })
        .collect()
}

/// The snapshots as a table, with their count (and their repository when there are several).
fn print_table(rows: &[SnapshotRow], several: bool) {
    let mut head = vec!["snapshot", "time", "device", "job", "paths"];
    if several {
        head.push("repository");
    }
    let mut t = output::table(&head);
    for r in rows {
        let mut cells: Vec<output::Cell> = vec![
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
        ];
        if several {
            cells.push(r.repository.clone().into());
        }
        t.add_row(cells);
    }
    println!("{}", output::render(&t));
    println!("{} snapshot(s)", rows.len());
}
