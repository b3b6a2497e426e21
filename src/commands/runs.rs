//! `restic-fleet runs list|show`: the recorded backup runs.

use std::path::Path;

use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};

use crate::commands::{Conn, explain, require_device};
use crate::domain::exit;
use crate::output::{self, print_json, printable, printable_lines};
use crate::store::runs::{RunFilter, RunOut};
use crate::usage_err;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List recorded runs, newest first.
    List(ListArgs),
    /// Show one run with the stored restic output.
    Show(ShowArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RunStatus {
    Running,
    Success,
    Failed,
    Cancelled,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Only runs of this job.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_enum)]
    pub status: Option<RunStatus>,
    /// Only runs started at or after this time (RFC 3339, or relative like 7d, 12h, 30m, 2w).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only runs started before this time (RFC 3339, or relative like 7d).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: u32,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Run id (a number, see `runs list`).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn run(config_path: &Path, cmd: RunsCommand) -> anyhow::Result<u8> {
    explain(match cmd {
        RunsCommand::List(a) => list(config_path, a).await,
        RunsCommand::Show(a) => show(config_path, a).await,
    })
}

async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let now = Utc::now();
    let since = a
        .since
        .as_deref()
        .map(|t| output::parse_when("--since", t, now))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|t| output::parse_when("--until", t, now))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(usage_err!(
            "--since ({s}) is after --until ({u}); swap them or widen the range"
        ));
    }
    if a.limit == 0 {
        return Err(usage_err!("--limit must be at least 1"));
    }
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    // A job name works wherever a UUID does; a UUID needs no existing job: its runs may be
    // listed after the job is gone.
    let job = match a.job.as_deref() {
        None => None,
        Some(t) => Some(match uuid::Uuid::parse_str(t.trim()) {
            Ok(id) => id,
            Err(_) => {
                crate::commands::resolve_job(config_path, &pool, t)
                    .await?
                    .id
            }
        }),
    };
    let filter = RunFilter {
        device: a.device.as_deref(),
        job,
        status: a.status.map(RunStatus::as_str),
        since,
        until,
        limit: i64::from(a.limit),
    };
    let rows = crate::store::runs::list(&pool, &filter).await?;
    if a.conn.json {
        print_json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    print_table(&rows);
    Ok(exit::SUCCESS)
}

/// `runs list` without `--json`: one table row per run, or a sentence when none match.
fn print_table(rows: &[RunOut]) {
    if rows.is_empty() {
        println!("no runs match");
        return;
    }
    let mut t = output::table(&[
        "id", "started", "device", "job", "status", "took", "added", "snapshot",
    ]);
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            output::time(Some(r.start_time)),
            r.device_id.clone(),
            r.job_name.clone(),
            r.status.clone(),
            r.duration_seconds
                .map(|d| output::age(i64::from(d)))
                .unwrap_or_else(|| "-".into()),
            r.data_added_bytes
                .map(|b| crate::output::human_bytes(b.max(0) as u64))
                .unwrap_or_else(|| "-".into()),
            r.snapshot_id
                .as_deref()
                .map(|s| crate::domain::text::truncate_str(s, 8).to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{}", output::render(&t));
}

async fn show(config_path: &Path, a: ShowArgs) -> anyhow::Result<u8> {
    let id: i32 = a.id.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        usage_err!(
            "{:?} is not a run id (a number); list runs with `restic-fleet runs list`",
            a.id
        )
    })?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let run = crate::store::runs::show(&pool, id).await?;
    let run = run.ok_or_else(|| {
        usage_err!("no run with id {id} exists; list runs with `restic-fleet runs list`")
    })?;
    if a.conn.json {
        print_json(&run)?;
        return Ok(exit::SUCCESS);
    }
    let r = &run.run;
    println!("run:         {}", r.id);
    println!("job:         {} ({})", printable(&r.job_name), r.job_id);
    println!("device:      {}", printable(&r.device_id));
    println!("status:      {}", printable(&r.status));
    println!("started:     {}", output::time(Some(r.start_time)));
    println!("ended:       {}", output::time(r.end_time));
    if let Some(d) = r.duration_seconds {
        println!("took:        {}", output::age(i64::from(d)));
    }
    if let Some(c) = r.exit_code {
        println!("exit code:   {c}");
    }
    if let Some(t) = &r.triggered_by {
        println!("triggered:   {}", printable(t));
    }
    if let Some(s) = &r.snapshot_id {
        println!("snapshot:    {}", printable(s));
    }
    if let Some(b) = r.data_added_bytes {
        println!(
            "added:       {}",
            crate::output::human_bytes(b.max(0) as u64)
        );
    }
    if let (Some(n), Some(c), Some(u)) = (r.files_new, r.files_changed, r.files_unmodified) {
        println!("files:       {n} new, {c} changed, {u} unmodified");
    }
    if let Some(m) = &r.error_message {
        println!("message:     {}", printable(m));
    }
    for line in crate::platform::hooks::describe_recorded(run.metadata.as_ref()) {
        println!("{}", printable(&line));
    }
    println!("--- restic output ---");
    println!(
        "{}",
        printable_lines(
            run.restic_output
                .as_deref()
                .unwrap_or("(none stored)")
                .trim_end()
        )
    );
    if let Some(e) = run
        .restic_errors
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        println!("--- restic errors ---");
        println!("{}", printable_lines(e.trim_end()));
    }
    Ok(exit::SUCCESS)
}
