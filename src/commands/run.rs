//! `restic-fleet run <job-uuid>`: one backup job run now (see [`crate::ops::backup::run`] for
//! its steps), and the sentence or JSON that says what was recorded.

use std::path::Path;

use clap::Args;

use crate::domain::run_record::TriggeredBy;
use crate::ops::backup::progress::want_progress;
use crate::ops::backup::run::{RunOptions, RunReport};

// The options of `restic-fleet run` (its help text is on `cli::Command::Run`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The backup job: its UUID or its name on this device.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// What started this run (recorded in runs.triggered_by).
    #[arg(long, value_enum, default_value = "manual")]
    pub triggered_by: TriggeredBy,
    /// Run a disabled job once anyway.
    #[arg(long)]
    pub force: bool,
    /// Print the recorded run as JSON instead of a sentence (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Runs the job the command line names, with this device's config.
pub async fn from_cli(config_path: &Path, args: RunArgs) -> anyhow::Result<u8> {
    let cfg = crate::local::config::load(config_path)?;
    let json = args.json;
    let opts = RunOptions {
        job: args.job,
        triggered_by: args.triggered_by,
        force: args.force,
        json: args.json,
        progress: want_progress(args.json),
        config_path: config_path.to_path_buf(),
    };
    let (report, code) = crate::ops::backup::run::run(&cfg, opts).await?;
    print_report(&report, json)?;
    Ok(code)
}

fn print_report(r: &RunReport, json: bool) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(r)?;
        return Ok(());
    }
    let stats = format!(
        "{} new, {} changed, {} unmodified files, {} added",
        r.files_new.unwrap_or(0),
        r.files_changed.unwrap_or(0),
        r.files_unmodified.unwrap_or(0),
        crate::output::human_bytes(r.data_added_bytes.unwrap_or(0).max(0) as u64)
    );
    let secs = (r.end_time - r.start_time).num_seconds();
    let run = match r.run_id {
        Some(id) => format!("run {id}"),
        None => "run (spooled)".to_string(),
    };
    match r.status.as_str() {
        "success" if r.warnings.is_empty() => println!(
            "{run}: backup of {:?} succeeded in {secs}s: snapshot {}, {stats}",
            r.job_name,
            short_id(r.snapshot_id.as_deref())
        ),
        "success" => {
            println!(
                "{run}: backup of {:?} finished WITH WARNINGS in {secs}s: snapshot {}, {stats}",
                r.job_name,
                short_id(r.snapshot_id.as_deref())
            );
            for w in &r.warnings {
                println!("  warning: {}", crate::output::printable(w));
            }
        }
        other => println!(
            "{run}: backup of {:?} {other}: {}",
            r.job_name,
            crate::output::printable(r.error_message.as_deref().unwrap_or(""))
        ),
    }
    Ok(())
}

/// The 8-digit form restic itself shows people.
fn short_id(id: Option<&str>) -> &str {
    id.map(|s| crate::domain::text::truncate_str(s, 8))
        .unwrap_or("?")
}
