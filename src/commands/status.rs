//! `restic-fleet status`: is everything backed up? The report is collected by
//! [`crate::ops::status`] and judged by [`crate::domain::health`]; this file prints it.
//!
//! On an enrolled device, the report covers that device's jobs, and maintenance only on the
//! maintenance owner.
//!
//! Exit codes: 0 when every enabled job (of an enabled device) has the verdict `ok` and
//! maintenance needs no attention; 1 when any enabled job is `warning`, `failing`, `overdue` or
//! `never_run`, or maintenance is `overdue` or `failing` (so `status` can drive monitoring); 2
//! for a usage or configuration error (e.g. an unknown `--device`).

use std::path::Path;

use clap::Args;

use crate::commands::{Conn, explain, require_device};
use crate::domain::exit;
use crate::domain::health::job::Verdict;
use crate::domain::health::maintenance::{MaintenanceStatus, StepHistory};
use crate::ops::status::StatusReport;
use crate::output::{self, printable};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Also send one notification per change of a job's verdict or a device's state since the
    /// last --notify, to the settings notify_webhook_url and notify_ntfy_url (for a timer on
    /// an admin machine). A target that fails is retried next time; the exit code is unchanged.
    #[arg(long)]
    pub notify: bool,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn run(config_path: &Path, args: StatusArgs) -> anyhow::Result<u8> {
    explain(status(config_path, args).await)
}

async fn status(config_path: &Path, args: StatusArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    if let Some(d) = &args.device {
        require_device(&pool, d).await?;
    }
    // A device's role reports its own jobs: the maintenance owner reads every job (to forget
    // by them) but answers only for its own. Maintenance is the owner's and the admins' to
    // see; another device cannot see the owner's row.
    let (own_device, owner) = crate::store::roles::session_device(&pool).await?;
    let device = args.device.as_deref().or(own_device.as_deref());
    let mut report = if args.notify {
        // Notifications of what changed since the last --notify, judged on the report they
        // return (collected under their lock).
        crate::ops::notify::collect_and_notify(&pool, device).await?
    } else {
        crate::ops::status::collect(&pool, device, chrono::Utc::now()).await?
    };
    if own_device.is_none() || owner {
        // Overdue or failing maintenance makes status exit 1, like a job that needs attention.
        let maintenance =
            crate::ops::maintenance_status::collect(&pool, report.generated_at).await?;
        report.ok &= !maintenance.needs_attention();
        report.maintenance = Some(maintenance);
    }
    // A warning, not a failure: the backups are fine, they are getting slower.
    report.repository_warnings = Some(crate::ops::status::repository_warnings(&pool).await?);
    if args.conn.json {
        // The jobs are most of a whole fleet's report: written on all processors.
        let jobs = std::mem::take(&mut report.jobs);
        output::print_json_with_items(&report, "jobs", &jobs)?;
        std::mem::forget(jobs);
    } else {
        print_human(&report);
        if let Some(m) = &report.maintenance {
            print_maintenance(m);
        }
        for w in report.repository_warnings.iter().flatten() {
            println!("warning: {}", printable(&w.message));
        }
    }
    let code = if report.ok {
        exit::SUCCESS
    } else {
        exit::FAILED
    };
    // The process ends next: freeing a whole fleet's report piece by piece (hundreds of
    // thousands of strings at 50,000 jobs) would only delay the exit.
    std::mem::forget(report);
    Ok(code)
}

/// The terminal colour (SGR code) of a verdict.
fn colour_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "32",
        Verdict::Warning => "33",
        Verdict::Failing => "31",
        Verdict::Overdue => "35",
        Verdict::NeverRun => "33",
        Verdict::Disabled => "2",
    }
}

/// The devices' table, then the jobs' table, the reasons of the jobs that need attention and
/// a summary line.
fn print_human(r: &StatusReport) {
    if r.devices.is_empty() {
        println!("no devices; enrol one with `restic-fleet device enroll ID --platform linux`");
        return;
    }
    print_devices(r);
    print_outdated(r);
    println!();
    if r.jobs.is_empty() {
        println!("no jobs; add one with `restic-fleet job add --device ID --name NAME --path P`");
        return;
    }
    print_jobs(r);
    print_attention(r);
}

/// The devices' table, each state coloured on a terminal.
fn print_devices(r: &StatusReport) {
    let colour = output::colour();
    let now = r.generated_at;
    let mut t = output::table(&["device", "name", "platform", "last seen", "state"]);
    for d in &r.devices {
        let state = if d.enabled { d.state } else { "disabled" };
        t.add_row(vec![
            d.device_id.clone(),
            d.name.clone(),
            d.platform.clone(),
            output::ago(d.last_seen, now),
            state.to_string(),
        ]);
    }
    let rendered = output::render(&t);
    for line in rendered.lines() {
        let mut l = line.to_string();
        if colour {
            for (word, code) in [("offline", "31"), ("never_seen", "33"), ("online", "32")] {
                if l.trim_end().ends_with(word) {
                    let cut = l.trim_end().len() - word.len();
                    l = format!("{}{}", &l[..cut], output::paint(word, code));
                    break;
                }
            }
        }
        println!("{l}");
    }
}

/// One warning per device whose client is older than the schema needs (not an attention
/// verdict: the old client keeps backing up, it may only misread what is newer than it).
fn print_outdated(r: &StatusReport) {
    let Some(minimum) = &r.min_client_version else {
        return;
    };
    for d in r.devices.iter().filter(|d| d.client_outdated) {
        println!(
            "warning: device {} runs restic-fleet {}, older than {}, the oldest version that \
             understands this database's schema; install the new package on it (README, Install)",
            printable(&d.device_id),
            printable(d.client_version.as_deref().unwrap_or("unknown")),
            printable(minimum)
        );
    }
}

/// The jobs' table, each verdict coloured on a terminal.
fn print_jobs(r: &StatusReport) {
    let colour = output::colour();
    let now = r.generated_at;
    let mut t = output::table(&[
        "verdict",
        "device",
        "job",
        "last run",
        "last success",
        "next run",
    ]);
    for j in &r.jobs {
        let last = match (&j.last_run_status, j.last_run_start) {
            (Some(s), Some(t)) => format!("{s} {}", output::ago(Some(t), now)),
            _ => "never".into(),
        };
        t.add_row(vec![
            j.verdict.as_str().to_string(),
            j.device_id.clone(),
            j.job_name.clone(),
            last,
            output::ago(j.last_success_at, now),
            output::time(j.next_run_at),
        ]);
    }
    let rendered = output::render(&t);
    let mut rows = r.jobs.iter();
    for (i, line) in rendered.lines().enumerate() {
        // Line 0 is the header; each job's first line starts with its verdict.
        let mut l = line.to_string();
        if i > 0 && colour {
            let trimmed = l.trim_start();
            let pad = l.len() - trimmed.len();
            let mut peek = rows.clone();
            if let Some(j) = peek.next()
                && trimmed.starts_with(j.verdict.as_str())
            {
                rows = peek;
                let w = j.verdict.as_str();
                l = format!(
                    "{}{}{}",
                    &l[..pad],
                    output::paint(w, colour_of(j.verdict)),
                    &l[pad + w.len()..]
                );
            }
        }
        println!("{l}");
    }
}

/// The reason of every job that needs attention, and the summary line.
fn print_attention(r: &StatusReport) {
    for j in r
        .jobs
        .iter()
        .filter(|j| !matches!(j.verdict, Verdict::Ok | Verdict::Disabled))
    {
        println!(
            "{} {}: {}",
            j.job_id,
            output::printable(&j.job_name),
            output::printable(&j.reason)
        );
    }
    let summary: Vec<String> = r.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "{} job(s): {}; {}",
        r.jobs.len(),
        summary.join(", "),
        if r.ok {
            "everything is backed up"
        } else {
            "attention needed"
        }
    );
}

/// The human lines of the maintenance object.
fn print_maintenance(s: &MaintenanceStatus) {
    let t = |h: &StepHistory| {
        h.last_success_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into())
    };
    println!(
        "maintenance: {} (owner {}{}; last forget {}, prune {}, check {})",
        s.verdict,
        printable(s.owner.as_deref().unwrap_or("none")),
        s.owner_state
            .map(|st| format!(", {st}"))
            .unwrap_or_default(),
        t(&s.last_forget),
        t(&s.last_prune),
        t(&s.last_check)
    );
    if s.verdict != "ok" {
        println!("maintenance: {}", printable(&s.reason));
    }
    // One repository is the top line itself; several get a line each.
    if s.repositories.len() < 2 {
        return;
    }
    for r in &s.repositories {
        println!(
            "  repository {} ({}{}): {} (last forget {}, prune {}, check {}){}",
            printable(&r.label),
            printable(r.maintainer.as_deref().unwrap_or("shared")),
            r.maintainer_state
                .map(|st| format!(", {st}"))
                .unwrap_or_default(),
            r.verdict,
            t(&r.last_forget),
            t(&r.last_prune),
            t(&r.last_check),
            if r.verdict == "ok" {
                String::new()
            } else {
                format!(": {}", printable(&r.reason))
            }
        );
    }
}
