//! `restic-fleet snapshots`: the repository's snapshots seen through the fleet (job and device
//! names instead of tags), with the fleet's repository settings, from the device itself or an
//! admin machine (`--database-url`). On a device with its own login, only that device's.
//!
//! A snapshot belongs to a job when it carries the job's `backup:<uuid>` tag AND its host is the
//! job's device (see `restore`, which always filters by both).

use std::path::Path;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use crate::commands::repository;
use crate::commands::{Conn, explain, require_device};
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
    let repo = repository(config_path, &pool, host.as_deref()).await?;
    let tags: Vec<String> = job.iter().map(|j| format!("backup:{}", j.id)).collect();
    let snaps = repo.snapshots(host.as_deref(), &tags).await?;
    let jobs = crate::store::jobs::names(&pool).await?;
    let devices = crate::store::devices::names(&pool).await?;
    let rows = named(snaps, &jobs, &devices);
    if args.conn.json {
        print_json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    if rows.is_empty() {
        println!("no snapshots");
        return Ok(exit::SUCCESS);
    }
    print_table(&rows);
    Ok(exit::SUCCESS)
}

/// The snapshots with their device's and job's names (a job only when the snapshot's host is
/// the job's device).
fn named(
    snaps: Vec<Snapshot>,
    jobs: &[(Uuid, String, String)],
    devices: &[(String, String)],
) -> Vec<SnapshotRow> {
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
            }
        })
        .collect()
}

/// The snapshots as a table, with their count.
fn print_table(rows: &[SnapshotRow]) {
    let mut t = output::table(&["snapshot", "time", "device", "job", "paths"]);
    for r in rows {
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
}
