//! `restic-fleet cleanup [--dry-run]`: deletes finished runs older than `run_retention_days`.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::output::print_json;
use super::{Conn, explain};
use crate::exit;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `cleanup --json`: `retention_days` (the global `run_retention_days`; 0 keeps everything),
/// `dry_run`, `deleted` (runs deleted, or that would be with `--dry-run`).
#[derive(Debug, Serialize)]
pub struct CleanupReport {
    pub retention_days: u64,
    pub dry_run: bool,
    pub deleted: u64,
}

pub async fn run(config_path: &Path, args: CleanupArgs) -> anyhow::Result<u8> {
    explain(cleanup(config_path, args).await)
}

/// The seed's maintenance query: finished runs (`success`, `failed`, `cancelled`) that started
/// more than the retention ago. A `running` run is never deleted.
const WHERE: &str = "start_time < NOW() - make_interval(days => $1) \
     AND status IN ('success', 'failed', 'cancelled')";

async fn cleanup(config_path: &Path, args: CleanupArgs) -> anyhow::Result<u8> {
    let pool = super::connect(config_path, &args.conn).await?;
    // Global settings only: a device id that cannot exist selects no per-device rows.
    let settings = Settings::from_pairs(
        sqlx::query_as::<_, (String, String)>(
            "SELECT key, value FROM settings WHERE device_id IS NULL",
        )
        .fetch_all(&pool)
        .await?,
    );
    let days = settings.get_u64("run_retention_days", 90)?;
    let deleted = if days == 0 {
        0
    } else {
        let days_i32 = i32::try_from(days).unwrap_or(i32::MAX);
        if args.dry_run {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM runs WHERE {WHERE}"))
                .bind(days_i32)
                .fetch_one(&pool)
                .await?;
            n as u64
        } else {
            sqlx::query(&format!("DELETE FROM runs WHERE {WHERE}"))
                .bind(days_i32)
                .execute(&pool)
                .await?
                .rows_affected()
        }
    };
    let report = CleanupReport {
        retention_days: days,
        dry_run: args.dry_run,
        deleted,
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
