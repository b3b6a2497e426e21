//! `restic-fleet spool list|deliver`: the run records kept on this device while the database
//! was away ([`crate::local::spool`]), shown, or delivered by hand ([`crate::ops::delivery`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::exit;
use crate::local::spool::{self, Spooled};
use crate::local::state::StateDir;
use crate::ops::delivery::DeliveryReport;
use crate::output::printable;

#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {
    /// Show the run records waiting in this device's spool (works without the database).
    List(SpoolArgs),
    /// Deliver the spooled run records to the database now, oldest first.
    Deliver(SpoolArgs),
}

#[derive(Debug, clap::Args)]
pub struct SpoolArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A spooled record as `spool list --json` prints it.
#[derive(Debug, Serialize)]
pub struct SpoolEntry {
    pub file: String,
    pub client_run_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub status: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub snapshot_id: Option<String>,
    /// Set when the file cannot be read as a record.
    pub error: Option<String>,
}

impl From<Spooled> for SpoolEntry {
    fn from(s: Spooled) -> Self {
        let file = s.path.display().to_string();
        match s.record {
            Ok(r) => SpoolEntry {
                file,
                client_run_id: Some(r.client_run_id),
                job_id: Some(r.job_id),
                job_name: Some(r.job_name),
                status: Some(r.status),
                start_time: Some(r.start_time),
                end_time: r.end_time,
                snapshot_id: r.snapshot_id,
                error: None,
            },
            Err(e) => SpoolEntry {
                file,
                client_run_id: None,
                job_id: None,
                job_name: None,
                status: None,
                start_time: None,
                end_time: None,
                snapshot_id: None,
                error: Some(e),
            },
        }
    }
}

/// `restic-fleet spool list|deliver`.
pub async fn run(config_path: &Path, cmd: SpoolCommand) -> anyhow::Result<u8> {
    let config = crate::local::config::load(config_path)?;
    let state = StateDir::for_config(&config);
    match cmd {
        SpoolCommand::List(args) => list(&state, args.json),
        SpoolCommand::Deliver(args) => {
            let mut conn = crate::store::db::connect_single(
                &config.database_url,
                crate::store::db::OFFLINE_CONNECT_TIMEOUT,
            )
            .await?;
            let report =
                crate::ops::delivery::deliver_all(&mut conn, &state, &config.device_id).await?;
            // Behind PgBouncer: commits what the delivery left open.
            crate::store::db::release_pinned(&mut conn).await?;
            print_delivered(&report, args.json)?;
            Ok(if report.kept.is_empty() {
                exit::SUCCESS
            } else {
                exit::FAILED
            })
        }
    }
}

/// `spool list`: works without the database.
fn list(state: &StateDir, json: bool) -> anyhow::Result<u8> {
    let entries: Vec<SpoolEntry> = spool::list(state)?
        .into_iter()
        .map(SpoolEntry::from)
        .collect();
    if json {
        crate::output::print_json(&entries)?;
    } else if entries.is_empty() {
        println!(
            "the spool in {} is empty: every run is in the database",
            state.root().display()
        );
    } else {
        println!(
            "{} run record(s) wait in {}:",
            entries.len(),
            spool::dir(state).display()
        );
        for e in &entries {
            print_entry(e);
        }
        println!("deliver them with `restic-fleet spool deliver` (run and sync also do)");
    }
    Ok(exit::SUCCESS)
}

/// One line of `spool list`: device-written text goes through [`printable`].
fn print_entry(e: &SpoolEntry) {
    match &e.error {
        None => println!(
            "  {}  {:<9} job {} ({:?}) started {}{}",
            e.client_run_id.map(|u| u.to_string()).unwrap_or_default(),
            printable(e.status.as_deref().unwrap_or("?")),
            e.job_id.map(|u| u.to_string()).unwrap_or_default(),
            e.job_name.as_deref().unwrap_or(""),
            e.start_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
            e.snapshot_id
                .as_deref()
                .map(|s| format!(
                    ", snapshot {}",
                    printable(crate::domain::text::truncate_str(s, 8))
                ))
                .unwrap_or_default()
        ),
        Some(err) => {
            println!("  {}: unreadable ({})", printable(&e.file), printable(err))
        }
    }
}

/// What `spool deliver` did.
fn print_delivered(report: &DeliveryReport, json: bool) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(report)?;
    } else {
        println!(
            "{} record(s) delivered, {} kept in the spool",
            report.delivered.len(),
            report.kept.len()
        );
        for k in &report.kept {
            println!("  kept {}: {}", printable(&k.file), printable(&k.error));
        }
    }
    Ok(())
}
