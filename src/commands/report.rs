//! `restic-fleet report --html FILE`: the fleet on one self-contained HTML page (no script, no
//! external resource, a Content-Security-Policy that allows neither): the verdicts of
//! `status`, the jobs that need attention, each job's last days as a heat map, and the growth
//! of the repository. Collected and rendered by [`crate::ops::report`]; this file checks the
//! options and writes the page atomically, world-readable, for any static web server.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::commands::{Conn, explain, require_device};
use crate::domain::exit;
use crate::usage_err;

/// The most days a report covers: the heat map has one mark per job per day.
const MAX_DAYS: u32 = 366;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the HTML page to FILE, atomically (a temp file in the same directory, then a
    /// rename), readable by everyone (mode 0644) so that a web server can serve it.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// How many days of history the heat map and the growth charts show (1 to 366).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: u32,
    /// Only this device (repeat for several).
    #[arg(long, value_name = "ID")]
    pub device: Vec<String>,
    /// Database URL (default: the DATABASE_URL variable, else database_url from the config
    /// file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

pub async fn run(config_path: &Path, args: ReportArgs) -> anyhow::Result<u8> {
    explain(report(config_path, args).await)
}

async fn report(config_path: &Path, args: ReportArgs) -> anyhow::Result<u8> {
    if !(1..=MAX_DAYS).contains(&args.days) {
        return Err(usage_err!(
            "--days {} is out of range; give a number of days from 1 to {MAX_DAYS}",
            args.days
        ));
    }
    if args.html.as_os_str().is_empty() || args.html.is_dir() {
        return Err(usage_err!(
            "--html {:?} is not a file name; give the path of the HTML file to write, e.g. \
             /var/www/html/backups.html",
            args.html
        ));
    }
    let conn = Conn {
        database_url: args.database_url.clone(),
        json: false,
    };
    let pool = crate::commands::connect(config_path, &conn).await?;
    for d in &args.device {
        require_device(&pool, d).await?;
    }
    let view =
        crate::ops::report::collect(&pool, &args.device, args.days, chrono::Utc::now()).await?;
    let html = crate::ops::report::render(&view)?;
    crate::commands::write_public_file(&args.html, "report", "--html", &html)?;
    Ok(exit::SUCCESS)
}
