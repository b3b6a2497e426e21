//! `restic-fleet cleanup [--dry-run]`: deletes finished runs older than `run_retention_days`.
//!
//! In batches (`--batch-size`, 10,000 by default), each its own short transaction found through
//! the start_time index, so that deleting millions of rows never holds locks for long nor
//! blocks the devices recording runs meanwhile. A cancelled cleanup keeps what it deleted so far.

use std::io::IsTerminal;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::commands::{Conn, explain};
use crate::domain::exit;
use crate::output::print_json;
use crate::store::fleet;

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Runs deleted per transaction.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
    #[command(flatten)]
    pub conn: Conn,
}

/// `cleanup --json`: `retention_days` (the global `run_retention_days`; 0 keeps everything),
/// `dry_run`, `deleted` (runs deleted, or that would be with `--dry-run`), `batches` (delete
/// transactions committed).
#[derive(Debug, Serialize)]
pub struct CleanupReport {
    pub retention_days: u64,
    pub dry_run: bool,
    pub deleted: u64,
    pub batches: u64,
}

pub async fn run(config_path: &Path, args: CleanupArgs) -> anyhow::Result<u8> {
    explain(cleanup(config_path, args).await)
}

async fn cleanup(config_path: &Path, args: CleanupArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    // Global settings only: run history is pruned fleet-wide, not per device.
    let settings = crate::store::settings::global(&pool).await?;
    let days = settings.get_u64("run_retention_days", 90)?;
    let mut deleted = 0;
    let mut batches = 0;
    if days > 0 {
        let days_i32 = i32::try_from(days).unwrap_or(i32::MAX);
        let cutoff = fleet::cleanup_cutoff(&pool, days_i32).await?;
        if args.dry_run {
            deleted = fleet::cleanup_count(&pool, cutoff).await?;
        } else {
            let progress = !args.conn.json && std::io::stderr().is_terminal();
            loop {
                let n = fleet::cleanup_batch(&pool, cutoff, i64::from(args.batch_size)).await?;
                if n == 0 {
                    break;
                }
                deleted += n;
                batches += 1;
                if progress {
                    eprint!("\rdeleted {deleted} run(s) so far ({batches} batch(es))");
                }
                if n < u64::from(args.batch_size) {
                    break;
                }
            }
            if progress && batches > 0 {
                eprintln!();
            }
        }
    }
    let report = CleanupReport {
        retention_days: days,
        dry_run: args.dry_run,
        deleted,
        batches,
    };
    if args.conn.json {
        print_json(&report)?;
    } else if days == 0 {
        println!("run_retention_days is 0: run history is kept forever, nothing deleted");
    } else if args.dry_run {
        println!("would delete {deleted} finished run(s) older than {days} days (dry run)");
    } else {
        println!("deleted {deleted} finished run(s) older than {days} days");
    }
    Ok(exit::SUCCESS)
}
