//! `restic-fleet repositories [list|init|move]`: every repository the settings imply (each
//! job's `repository_url` expanded, grouped by URL; see [`crate::ops::repositories`]), whether
//! each exists, its size as of its last maintenance and its maintainer; `init` creates the
//! missing ones; `move` lives in `repositories_move.rs`.
//!
//! URLs may hold credentials and are secret to viewers: a viewer's list comes from the
//! `repositories` table alone (fingerprint, maintainer, counts), and a URL is always shown
//! masked.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::commands::{Conn, explain};
use crate::domain::exit;
use crate::domain::repository::Maintainer;
use crate::domain::text::mask_url;
use crate::ops::repositories::{self as repos, Existence, Fleet, JobRef, Problem, short};
use crate::output::{self, print_json};
use crate::store::repositories::RepositoryRow;
use crate::usage_err;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RepositoriesArgs {
    #[command(subcommand)]
    pub command: Option<RepositoriesCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum RepositoriesCommand {
    /// Every repository the settings imply, with its devices, jobs, maintainer, whether it
    /// exists and its snapshot count as of its last maintenance (the default).
    List(ListArgs),
    /// Create the repositories that do not exist yet (restic init), each with the password and
    /// environment in force for its devices.
    Init(InitArgs),
    /// Copy a device's snapshots into another repository (restic copy) and make that the
    /// device's own repository_url.
    Move(crate::commands::repositories_move::MoveArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Do not ask restic whether each repository exists (exists is then null).
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Say what would be created, create nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// A repository in `repositories list --json`: `fingerprint` (SHA-256 of the expanded URL),
/// `url` (credentials masked; null for a viewer), `shared`, `maintainer` (the device that
/// maintains it: its own device, or the maintenance_device; null when that is unset),
/// `devices`, `jobs` (array of {job_id, device_id, job_name}), `exists` (null when not checked
/// or restic could not tell), `check_error`, `snapshot_count`, `total_size` (bytes) and
/// `counted_at` as of its last maintenance (null: never counted).
#[derive(Debug, Serialize)]
pub struct RepositoryOut {
    pub fingerprint: String,
    pub url: Option<String>,
    pub shared: bool,
    pub maintainer: Option<String>,
    pub devices: Vec<String>,
    pub jobs: Vec<JobRef>,
    pub exists: Option<bool>,
    pub check_error: Option<String>,
    pub snapshot_count: Option<i32>,
    pub total_size: Option<i64>,
    pub counted_at: Option<DateTime<Utc>>,
    /// How the maintainer is shown in the table.
    #[serde(skip)]
    label: String,
}

/// `repositories list --json`: `limited` (true for a viewer: the table's rows only, no URLs,
/// devices or jobs), `checked` (restic was asked), `repositories`, `problems` (array of
/// {job_id, device_id, job_name, reason}).
#[derive(Debug, Serialize)]
pub struct ListOut {
    pub limited: bool,
    pub checked: bool,
    pub repositories: Vec<RepositoryOut>,
    pub problems: Vec<Problem>,
}

/// One repository in `repositories init --json`: `fingerprint`, `url` (masked), `action`
/// (created, exists, would_create, failed), `error`.
#[derive(Debug, Serialize)]
pub struct InitItem {
    pub fingerprint: String,
    pub url: String,
    pub action: &'static str,
    pub error: Option<String>,
}

/// `repositories init --json`: `dry_run`, `repositories`, `problems` (as in list).
#[derive(Debug, Serialize)]
pub struct InitOut {
    pub dry_run: bool,
    pub repositories: Vec<InitItem>,
    pub problems: Vec<Problem>,
}

pub async fn run(config_path: &Path, args: RepositoriesArgs) -> anyhow::Result<u8> {
    explain(match args.command {
        None => list(config_path, args.list).await,
        Some(RepositoriesCommand::List(a)) => list(config_path, a).await,
        Some(RepositoriesCommand::Init(a)) => init(config_path, a).await,
        Some(RepositoriesCommand::Move(a)) => {
            crate::commands::repositories_move::run(config_path, a).await
        }
    })
}

/// Whether this role may not read the repository settings (a viewer).
async fn limited(pool: &sqlx::PgPool) -> anyhow::Result<bool> {
    Ok(crate::store::settings::hidden_secrets(pool)
        .await?
        .iter()
        .any(|k| k == "repository_url"))
}

async fn list(config_path: &Path, args: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    let rows = crate::store::repositories::all(&pool).await?;
    let out = if limited(&pool).await? {
        ListOut {
            limited: true,
            checked: false,
            repositories: rows.iter().map(from_row).collect(),
            problems: Vec::new(),
        }
    } else {
        let fleet = repos::compute(&pool).await?;
        let existence = if args.no_check {
            None
        } else {
            Some(repos::check_all(&fleet.repositories).await)
        };
        listed(fleet, existence, &rows)
    };
    if args.conn.json {
        print_json(&out)?;
    } else {
        print_list(&out);
    }
    Ok(exit::SUCCESS)
}

/// A row of the `repositories` table as a viewer sees it.
fn from_row(r: &RepositoryRow) -> RepositoryOut {
    RepositoryOut {
        fingerprint: r.fingerprint.clone(),
        url: None,
        shared: r.maintainer_device_id.is_none(),
        maintainer: r.maintainer_device_id.clone(),
        devices: Vec::new(),
        jobs: Vec::new(),
        exists: None,
        check_error: None,
        snapshot_count: r.snapshot_count,
        total_size: r.total_size,
        counted_at: r.counted_at,
        label: r
            .maintainer_device_id
            .clone()
            .unwrap_or_else(|| "maintenance_device".into()),
    }
}

/// The computed repositories with their existence and their counts from the table.
fn listed(fleet: Fleet, existence: Option<Vec<Existence>>, rows: &[RepositoryRow]) -> ListOut {
    let counted: HashMap<&str, &RepositoryRow> =
        rows.iter().map(|r| (r.fingerprint.as_str(), r)).collect();
    let checked = existence.is_some();
    let mut existence = existence.unwrap_or_default().into_iter();
    let repositories = fleet
        .repositories
        .iter()
        .map(|r| {
            let (exists, check_error) = match existence.next() {
                Some(Existence::Exists) => (Some(true), None),
                Some(Existence::Missing) => (Some(false), None),
                Some(Existence::Unknown(why)) => (None, Some(why)),
                None => (None, None),
            };
            let row = counted.get(r.fingerprint.as_str());
            RepositoryOut {
                fingerprint: r.fingerprint.clone(),
                url: Some(mask_url(&r.url)),
                shared: r.maintainer == Maintainer::Shared,
                maintainer: fleet.maintainer_of(r),
                devices: r.devices.clone(),
                jobs: r.jobs.clone(),
                exists,
                check_error,
                snapshot_count: row.and_then(|c| c.snapshot_count),
                total_size: row.and_then(|c| c.total_size),
                counted_at: row.and_then(|c| c.counted_at),
                label: fleet.maintainer_label(r),
            }
        })
        .collect();
    ListOut {
        limited: false,
        checked,
        repositories,
        problems: fleet.problems,
    }
}

fn print_list(out: &ListOut) {
    if out.limited {
        println!(
            "a viewer cannot read repository_url: these are the repositories maintenance has \
             counted, by fingerprint (an admin's `restic-fleet repositories` shows URLs, \
             devices and jobs)"
        );
    }
    if out.repositories.is_empty() {
        println!("no repositories");
    } else {
        let mut t = output::table(&[
            "repository",
            "url",
            "maintainer",
            "devices",
            "jobs",
            "exists",
            "snapshots",
            "size",
        ]);
        output::keep_whole(&mut t, 0);
        output::keep_whole(&mut t, 1);
        for r in &out.repositories {
            // `maintenance_device (id)` on two lines: the table stays within its width.
            let maintainer: Vec<String> = match r.label.split_once(" (") {
                Some((a, b)) => vec![a.to_string(), format!("({b}")],
                None => vec![r.label.clone()],
            };
            t.add_row([
                short(&r.fingerprint).to_string().into(),
                output::path_lines([r.url.as_deref().unwrap_or("-")]),
                output::lines(maintainer),
                r.devices.len().to_string().into(),
                r.jobs.len().to_string().into(),
                match (r.exists, &r.check_error) {
                    (Some(e), _) => output::yes_no(e).into(),
                    (None, Some(_)) => "unknown".into(),
                    (None, None) => "-".into(),
                },
                r.snapshot_count
                    .map_or_else(|| "never counted".into(), |n| n.to_string())
                    .into(),
                r.total_size
                    .map_or_else(|| "-".into(), |n| output::human_bytes(n.max(0) as u64))
                    .into(),
            ]);
        }
        println!("{}", output::render(&t));
    }
    for r in &out.repositories {
        if let Some(e) = &r.check_error {
            println!("{}: {}", short(&r.fingerprint), output::printable(e));
        }
    }
    print_problems(&out.problems);
    let missing = out
        .repositories
        .iter()
        .filter(|r| r.exists == Some(false))
        .count();
    if missing > 0 {
        println!(
            "{missing} of {} repositories do not exist; create them with `restic-fleet \
             repositories init`",
            out.repositories.len()
        );
    }
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        let what = match (&p.device_id, &p.job_name) {
            (Some(d), Some(n)) => format!("job {d}/{n}"),
            (Some(d), None) => format!("device {d}"),
            _ => "fleet".into(),
        };
        println!(
            "problem: {}: {}",
            output::printable(&what),
            output::printable(&p.reason)
        );
    }
}

async fn init(config_path: &Path, args: InitArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    if limited(&pool).await? {
        return Err(usage_err!(
            "repositories init needs the repository URLs and passwords, which only an admin may \
             read; connect as backup_admin with --database-url or DATABASE_URL"
        ));
    }
    let fleet = repos::compute(&pool).await?;
    let existence = repos::check_all(&fleet.repositories).await;
    let mut items = Vec::new();
    for (r, e) in fleet.repositories.iter().zip(existence) {
        let (action, error) = match e {
            Existence::Exists => ("exists", None),
            Existence::Unknown(why) => ("failed", Some(why)),
            Existence::Missing if args.dry_run => ("would_create", None),
            Existence::Missing => match repos::open(r) {
                Err(e) => ("failed", Some(e.to_string())),
                Ok(repo) => match repos::init(&repo).await {
                    Ok(()) => ("created", None),
                    Err(e) => ("failed", Some(e)),
                },
            },
        };
        if !args.dry_run && matches!(action, "exists" | "created") {
            let maintainer = match &r.maintainer {
                Maintainer::Device(d) => Some(d.as_str()),
                Maintainer::Shared => None,
            };
            crate::store::repositories::remember(&pool, &r.fingerprint, maintainer).await?;
        }
        items.push(InitItem {
            fingerprint: r.fingerprint.clone(),
            url: mask_url(&r.url),
            action,
            error,
        });
    }
    let failed = items.iter().any(|i| i.action == "failed");
    let out = InitOut {
        dry_run: args.dry_run,
        repositories: items,
        problems: fleet.problems,
    };
    if args.conn.json {
        print_json(&out)?;
    } else {
        print_init(&out);
    }
    Ok(if failed { exit::FAILED } else { exit::SUCCESS })
}

fn print_init(out: &InitOut) {
    if out.repositories.is_empty() {
        println!("no repositories: no job has a repository_url that expands");
    }
    for i in &out.repositories {
        let line = format!(
            "{} {} {}{}",
            i.action,
            short(&i.fingerprint),
            i.url,
            i.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        println!("{}", output::printable(&line));
    }
    print_problems(&out.problems);
}
