//! `restic-fleet status`: is everything backed up?
//!
//! Exit codes: 0 when every enabled job (of an enabled device) has the verdict `ok`;
//! 1 when any enabled job is `warning`, `failing`, `overdue` or `never_run` (so `status` can
//! drive monitoring); 2 for a usage or configuration error (e.g. an unknown `--device`).
//!
//! Verdicts, decided from the last *finished* run (`success` or `failed`; a run still
//! `running` does not change the verdict, a `cancelled` one is skipped):
//! - `disabled`: the job or its device is disabled.
//! - `never_run`: no finished run is recorded.
//! - `failing`: the last finished run failed.
//! - `overdue`: the job has enabled schedules and no success ended within the expected period
//!   plus grace. The expected period is the smallest interval of its interval schedules, or,
//!   for cron schedules (all of the job's merged), the gap between the scheduled instant at or
//!   before the last success's start and the next one: after the 23:00 run of
//!   `0 13,23 * * *` the next success is due 14 hours later, after the 13:00 run 10 hours later.
//!   Grace is the setting `missed_run_grace_seconds` (default 900) plus
//!   `schedule_jitter_seconds`. Jobs without enabled schedules are never overdue.
//! - `warning`: the last finished run succeeded with warnings (`error_message` starting with
//!   `warning:`, or non-empty `metadata.warnings` or `metadata.missing_paths`).
//! - `ok`: otherwise.
//!
//! A device is `offline` when it has not been seen for three `sync_interval_seconds`,
//! `never_seen` when it never synced, else `online`.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::output::{self, print_json};
use super::{Conn, explain, require_device};
use crate::exit;
use crate::schedule::{CronExpr, Schedule};
use crate::settings::Settings;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warning,
    Failing,
    Overdue,
    NeverRun,
    Disabled,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Failing => "failing",
            Verdict::Overdue => "overdue",
            Verdict::NeverRun => "never_run",
            Verdict::Disabled => "disabled",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Verdict::Ok => "32",
            Verdict::Warning => "33",
            Verdict::Failing => "31",
            Verdict::Overdue => "35",
            Verdict::NeverRun => "33",
            Verdict::Disabled => "2",
        }
    }
}

/// `status --json`: `generated_at` (RFC 3339), `ok` (true when every enabled job is ok and
/// maintenance is neither overdue nor failing: the exit code is 0 exactly then), `counts`
/// (verdict → number of jobs), `devices`, `jobs`, `maintenance` (i11).
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    pub ok: bool,
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    pub devices: Vec<DeviceStatus>,
    pub jobs: Vec<JobStatus>,
    /// i11: see [`crate::maintenance::status::MaintenanceStatus`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::status::MaintenanceStatus>,
}

/// A device in `status --json`: `device_id`, `name`, `platform`, `enabled`, `last_seen`
/// (RFC 3339 or null), `state` (`online`, `offline` when not seen for three
/// `sync_interval_seconds`, `never_seen`), `sync_interval_seconds`.
#[derive(Debug, Serialize)]
pub struct DeviceStatus {
    pub device_id: String,
    pub name: String,
    pub platform: String,
    pub enabled: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub state: &'static str,
    pub sync_interval_seconds: u64,
}

/// A job in `status --json`: `job_id`, `job_name`, `device_id`, `enabled` (the job's own
/// flag), `verdict` (`ok`, `warning`, `failing`, `overdue`, `never_run`, `disabled`),
/// `reason` (one sentence), `last_run_id`, `last_run_status` (of the newest run, `running`
/// included), `last_run_start`, `running` (a run is in progress), `last_success_at` (end of the
/// last successful run), `last_success_age_seconds`, `next_run_at` (earliest of the enabled
/// schedules), `expected_period_seconds` (null without enabled schedules), `warnings`.
#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job_id: Uuid,
    pub job_name: String,
    pub device_id: String,
    pub enabled: bool,
    pub verdict: Verdict,
    pub reason: String,
    pub last_run_id: Option<i32>,
    pub last_run_status: Option<String>,
    pub last_run_start: Option<DateTime<Utc>>,
    pub running: bool,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_age_seconds: Option<i64>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub expected_period_seconds: Option<i64>,
    pub warnings: Vec<String>,
}

/// A run as the verdict needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunFacts {
    pub id: i32,
    pub job_id: Uuid,
    pub status: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub metadata: Option<Value>,
}

pub async fn run(config_path: &Path, args: StatusArgs) -> anyhow::Result<u8> {
    explain(status(config_path, args).await)
}

/// The warnings a successful run recorded.
pub fn run_warnings(run: &RunFacts) -> Vec<String> {
    let mut out = Vec::new();
    let meta = run.metadata.as_ref();
    if let Some(ws) = meta
        .and_then(|m| m.get("warnings"))
        .and_then(|w| w.as_array())
    {
        out.extend(
            ws.iter()
                .map(|w| w.as_str().map(str::to_string).unwrap_or(w.to_string())),
        );
    }
    if out.is_empty()
        && let Some(ps) = meta
            .and_then(|m| m.get("missing_paths"))
            .and_then(|w| w.as_array())
            .filter(|a| !a.is_empty())
    {
        let ps: Vec<String> = ps
            .iter()
            .map(|p| p.as_str().map(str::to_string).unwrap_or(p.to_string()))
            .collect();
        out.push(format!("missing source paths: {}", ps.join(", ")));
    }
    if out.is_empty()
        && let Some(m) = run
            .error_message
            .as_deref()
            .filter(|m| m.trim_start().to_ascii_lowercase().starts_with("warning:"))
    {
        out.push(m.trim_start()["warning:".len()..].trim().to_string());
    }
    out
}

/// The newest fire instant of `expr` at or before `t`, looking back up to ten years.
pub fn last_at_or_before(expr: &CronExpr, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
    for hours in [2i64, 50, 9 * 24, 33 * 24, 367 * 24, 1470 * 24, 3660 * 24] {
        let mut found = None;
        let mut cursor = t - Duration::hours(hours);
        while let Some(next) = expr.next_after(cursor, tz) {
            if next > t {
                break;
            }
            found = Some(next);
            cursor = next;
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The expected time between runs (seconds) of a job with these enabled schedules, for the run
/// at `around` (the start of the last success, else now): the smallest interval of its interval
/// schedules, or for its cron schedules (merged) the gap between the scheduled instant at or
/// before `around` and the next one. A schedule whose gaps differ (`0 13,23 * * *`: 10 and 14
/// hours) thus expects the next success after the gap that actually follows the last one.
/// `None` without schedules.
pub fn expected_period(schedules: &[Schedule], around: DateTime<Utc>, tz: &Tz) -> Option<i64> {
    let mut best: Option<i64> = None;
    let crons: Vec<&CronExpr> = schedules
        .iter()
        .filter_map(|s| match s {
            Schedule::Cron(expr) => Some(expr),
            Schedule::Interval { .. } => None,
        })
        .collect();
    for s in schedules {
        if let Schedule::Interval { seconds } = s {
            let v = i64::try_from(*seconds).unwrap_or(i64::MAX);
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    }
    let next_of = |t: DateTime<Utc>| crons.iter().filter_map(|e| e.next_after(t, tz)).min();
    let before = crons
        .iter()
        .filter_map(|e| last_at_or_before(e, around, tz))
        .max();
    let gap = match (before, next_of(around)) {
        (Some(a), Some(b)) => Some(b - a),
        // No instant before `around` (a schedule for the future only): its first gap.
        (None, Some(b)) => next_of(b).map(|c| c - b),
        _ => None,
    };
    if let Some(gap) = gap {
        let gap = gap.num_seconds();
        best = Some(best.map_or(gap, |b| b.min(gap)));
    }
    best
}

/// The inputs of one job's verdict.
pub struct Facts<'a> {
    pub job_enabled: bool,
    pub device_enabled: bool,
    /// The newest run whose status is `success` or `failed`.
    pub last_finished: Option<&'a RunFacts>,
    /// When the newest successful run ended (its start when the end is missing).
    pub last_success: Option<DateTime<Utc>>,
    pub expected_period: Option<i64>,
    pub grace_seconds: i64,
}

/// Decides the verdict and a one-sentence reason.
pub fn verdict(f: &Facts<'_>, now: DateTime<Utc>) -> (Verdict, String, Vec<String>) {
    if !f.device_enabled {
        return (Verdict::Disabled, "the device is disabled".into(), vec![]);
    }
    if !f.job_enabled {
        return (Verdict::Disabled, "the job is disabled".into(), vec![]);
    }
    let Some(last) = f.last_finished else {
        return (
            Verdict::NeverRun,
            "no finished run is recorded".into(),
            vec![],
        );
    };
    if last.status == "failed" {
        let msg = last
            .error_message
            .as_deref()
            .unwrap_or("no message recorded");
        return (
            Verdict::Failing,
            format!("the last run (#{}) failed: {msg}", last.id),
            vec![],
        );
    }
    if let (Some(period), Some(success)) = (f.expected_period, f.last_success) {
        // Far-future deadlines (a yearly schedule, a huge grace) saturate instead of overflowing.
        let deadline = Duration::try_seconds(period.saturating_add(f.grace_seconds))
            .and_then(|d| success.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now > deadline {
            return (
                Verdict::Overdue,
                format!(
                    "no successful backup for {} (expected every {} plus {} grace)",
                    output::age((now - success).num_seconds()),
                    output::age(period),
                    output::age(f.grace_seconds)
                ),
                vec![],
            );
        }
    }
    let warnings = run_warnings(last);
    if !warnings.is_empty() {
        return (
            Verdict::Warning,
            format!(
                "the last run (#{}) had warnings: {}",
                last.id,
                warnings.join("; ")
            ),
            warnings,
        );
    }
    (Verdict::Ok, "the last run succeeded".into(), vec![])
}

async fn status(config_path: &Path, args: StatusArgs) -> anyhow::Result<u8> {
    let pool = super::connect(config_path, &args.conn).await?;
    if let Some(d) = &args.device {
        require_device(&pool, d).await?;
    }
    let mut report = if args.notify {
        // i12: notifications of what changed since the last --notify.
        crate::monitor::notify::collect_and_notify(&pool, args.device.as_deref()).await?
    } else {
        collect(&pool, args.device.as_deref(), Utc::now()).await?
    };
    // i11: the maintenance object; overdue or failing maintenance makes status exit 1
    let maintenance = crate::maintenance::status::collect(&pool, report.generated_at).await?;
    report.ok &= !maintenance.needs_attention();
    report.maintenance = Some(maintenance);
    if args.conn.json {
        print_json(&report)?;
    } else {
        print_human(&report);
        if let Some(m) = &report.maintenance {
            crate::maintenance::status::print_human(m); // i11
        }
    }
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

/// The settings `status` needs for one device.
#[derive(Debug, Clone, Copy)]
struct DeviceSettings {
    tz: Tz,
    sync_interval: u64,
    grace: i64,
}

impl DeviceSettings {
    fn from(s: &Settings) -> Self {
        let sync_interval = s.get_u64("sync_interval_seconds", 300).unwrap_or(300);
        let grace = s.get_u64("missed_run_grace_seconds", 900).unwrap_or(900)
            + s.get_u64("schedule_jitter_seconds", 0).unwrap_or(0);
        Self {
            tz: s.timezone().unwrap_or(chrono_tz::UTC),
            sync_interval,
            grace: grace as i64, // each term ≤ i32::MAX
        }
    }
}

/// Builds the status report from the database: a fixed number of statements whatever the
/// fleet's size (see [`crate::store::fleet::status_snapshot`]), then in-memory joins by key.
pub async fn collect(
    pool: &PgPool,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<StatusReport> {
    let snap = crate::store::fleet::status_snapshot(pool, device).await?;
    // Settings: the globals are evaluated once; only devices with rows of their own merge.
    let global = DeviceSettings::from(&Settings::from_pairs(snap.global_settings.iter().cloned()));
    let settings_of = |device_id: &str| match snap.device_settings.get(device_id) {
        None => global,
        Some(own) => DeviceSettings::from(&Settings::from_pairs(
            snap.global_settings.iter().chain(own.iter()).cloned(),
        )),
    };
    let mut settings: HashMap<&str, DeviceSettings> = HashMap::with_capacity(snap.devices.len());
    let mut device_out = Vec::with_capacity(snap.devices.len());
    for d in &snap.devices {
        let s = settings_of(&d.id);
        settings.insert(&d.id, s);
        let sync = s.sync_interval;
        let state = match d.last_seen {
            None => "never_seen",
            Some(t) if (now - t).num_seconds() > 3 * sync as i64 => "offline", // sync ≤ i32::MAX
            Some(_) => "online",
        };
        device_out.push(DeviceStatus {
            device_id: d.id.clone(),
            name: d.name.clone(),
            platform: d.platform.clone(),
            enabled: d.enabled,
            last_seen: d.last_seen,
            state,
            sync_interval_seconds: sync,
        });
    }
    let device_enabled: HashMap<&str, bool> = snap
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.enabled))
        .collect();

    let mut parsed_crons: HashMap<&str, Option<CronExpr>> = HashMap::new();
    let mut job_out = Vec::with_capacity(snap.jobs.len());
    for j in &snap.jobs {
        let device_enabled = device_enabled
            .get(j.device_id.as_str())
            .copied()
            .unwrap_or(true);
        let DeviceSettings { tz, grace, .. } = settings
            .get(j.device_id.as_str())
            .copied()
            .unwrap_or(DeviceSettings {
                tz: chrono_tz::UTC,
                sync_interval: 300,
                grace: 900,
            });
        // A fleet shares few distinct expressions: each is parsed once.
        let mut parsed: Vec<Schedule> = j
            .crons
            .iter()
            .flatten()
            .filter_map(|expr| {
                parsed_crons
                    .entry(expr.as_str())
                    .or_insert_with(|| CronExpr::parse(expr).ok())
                    .clone()
                    .map(Schedule::Cron)
            })
            .collect();
        if let Some(seconds) = j.min_interval.and_then(|s| u64::try_from(s).ok()) {
            parsed.push(Schedule::Interval { seconds });
        }
        let success = j.last_success_start.zip(j.last_success_end);
        let period = expected_period(&parsed, success.map_or(now, |(start, _)| start), &tz);
        let next_run_at = j.next_run_at;
        let last_success = success.map(|(_, end)| end);
        let finished = match (
            j.last_finished_run_id,
            &j.last_finished_status,
            j.last_finished_start,
        ) {
            (Some(id), Some(status), Some(start_time)) => Some(RunFacts {
                id,
                job_id: j.id,
                status: status.clone(),
                start_time,
                end_time: j.last_finished_end,
                error_message: j.last_finished_error.clone(),
                metadata: j.last_finished_metadata.clone(),
            }),
            _ => None,
        };
        let facts = Facts {
            job_enabled: j.enabled,
            device_enabled,
            last_finished: finished.as_ref(),
            last_success,
            expected_period: period,
            grace_seconds: grace,
        };
        let (v, reason, warnings) = verdict(&facts, now);
        job_out.push(JobStatus {
            job_id: j.id,
            job_name: j.name.clone(),
            device_id: j.device_id.clone(),
            enabled: j.enabled,
            verdict: v,
            reason,
            last_run_id: j.last_run_id,
            last_run_status: j.last_run_status.clone(),
            last_run_start: j.last_run_start,
            running: snap.running.contains(&j.id),
            last_success_at: last_success,
            last_success_age_seconds: last_success.map(|t| (now - t).num_seconds().max(0)),
            next_run_at,
            expected_period_seconds: period,
            warnings,
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    for j in &job_out {
        *counts.entry(j.verdict.as_str()).or_insert(0) += 1;
    }
    let ok = job_out
        .iter()
        .all(|j| j.verdict == Verdict::Ok || j.verdict == Verdict::Disabled);
    Ok(StatusReport {
        generated_at: now,
        ok,
        counts,
        devices: device_out,
        jobs: job_out,
        maintenance: None, // i11: filled by `status`
    })
}

fn print_human(r: &StatusReport) {
    let colour = output::colour();
    let now = r.generated_at;
    if r.devices.is_empty() {
        println!(
            "no devices; add one with `restic-fleet device add ID --name NAME --platform linux`"
        );
        return;
    }
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
    println!();
    if r.jobs.is_empty() {
        println!("no jobs; add one with `restic-fleet job add --device ID --name NAME --path P`");
        return;
    }
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
                    output::paint(w, j.verdict.colour()),
                    &l[pad + w.len()..]
                );
            }
        }
        println!("{l}");
    }
    for j in r
        .jobs
        .iter()
        .filter(|j| !matches!(j.verdict, Verdict::Ok | Verdict::Disabled))
    {
        println!("{} {}: {}", j.job_id, j.job_name, j.reason);
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cron_period_is_gap_between_recent_instants() {
        let now = Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap();
        let daily = Schedule::Cron(CronExpr::parse("0 2 * * *").unwrap());
        assert_eq!(
            expected_period(std::slice::from_ref(&daily), now, &chrono_tz::UTC),
            Some(86400)
        );
        let twice = Schedule::Cron(CronExpr::parse("0 14 * * *").unwrap());
        assert_eq!(
            expected_period(&[daily, twice], now, &chrono_tz::UTC),
            Some(12 * 3600)
        );
        let weekly = Schedule::Cron(CronExpr::parse("@weekly").unwrap());
        assert_eq!(
            expected_period(&[weekly], now, &chrono_tz::UTC),
            Some(7 * 86400)
        );
        let yearly = Schedule::Cron(CronExpr::parse("@yearly").unwrap());
        assert_eq!(
            expected_period(&[yearly], now, &chrono_tz::UTC),
            Some(365 * 86400)
        );
        let every = Schedule::Interval { seconds: 3600 };
        assert_eq!(expected_period(&[every], now, &chrono_tz::UTC), Some(3600));
        assert_eq!(expected_period(&[], now, &chrono_tz::UTC), None);
    }

    #[test]
    fn uneven_gaps_expect_the_gap_that_follows_the_last_success() {
        let tz: Tz = "Europe/Moscow".parse().unwrap();
        let twice = [Schedule::Cron(CronExpr::parse("0 13,23 * * *").unwrap())];
        // The 23:00 run (20:00 UTC): the next is at 13:00, 14 hours later.
        let night = Utc.with_ymd_and_hms(2027, 1, 10, 20, 0, 2).unwrap();
        assert_eq!(expected_period(&twice, night, &tz), Some(14 * 3600));
        // The 13:00 run (10:00 UTC): the next is at 23:00, 10 hours later.
        let day = Utc.with_ymd_and_hms(2027, 1, 11, 10, 0, 2).unwrap();
        assert_eq!(expected_period(&twice, day, &tz), Some(10 * 3600));
        // Mon/Wed/Fri: after Friday's run the weekend gap of 72 hours.
        let mwf = [Schedule::Cron(CronExpr::parse("0 3 * * 1,3,5").unwrap())];
        let friday = Utc.with_ymd_and_hms(2027, 1, 15, 3, 0, 5).unwrap();
        assert_eq!(
            expected_period(&mwf, friday, &chrono_tz::UTC),
            Some(72 * 3600)
        );

        // At 10:57 the next morning the 23:05 success is not overdue; at 13:20 it is.
        let last = run("success", None, serde_json::json!({}));
        let ended = Utc.with_ymd_and_hms(2027, 1, 10, 20, 5, 0).unwrap();
        let facts = Facts {
            job_enabled: true,
            device_enabled: true,
            last_finished: Some(&last),
            last_success: Some(ended),
            expected_period: expected_period(&twice, night, &tz),
            grace_seconds: 900,
        };
        let morning = Utc.with_ymd_and_hms(2027, 1, 11, 7, 57, 0).unwrap();
        assert_eq!(verdict(&facts, morning).0, Verdict::Ok);
        let afternoon = Utc.with_ymd_and_hms(2027, 1, 11, 10, 21, 0).unwrap();
        assert_eq!(verdict(&facts, afternoon).0, Verdict::Overdue);
    }

    #[test]
    fn huge_periods_do_not_overflow() {
        let last = run("success", None, serde_json::json!({}));
        let facts = Facts {
            job_enabled: true,
            device_enabled: true,
            last_finished: Some(&last),
            last_success: Some(Utc::now()),
            expected_period: Some(i64::MAX),
            grace_seconds: i64::MAX,
        };
        assert_eq!(verdict(&facts, Utc::now()).0, Verdict::Ok);
    }

    fn run(status: &str, msg: Option<&str>, meta: Value) -> RunFacts {
        RunFacts {
            id: 1,
            job_id: Uuid::nil(),
            status: status.into(),
            start_time: Utc::now(),
            end_time: None,
            error_message: msg.map(str::to_string),
            metadata: Some(meta),
        }
    }

    fn f(
        last: Option<&RunFacts>,
        success: Option<DateTime<Utc>>,
        period: Option<i64>,
    ) -> Facts<'_> {
        Facts {
            job_enabled: true,
            device_enabled: true,
            last_finished: last,
            last_success: success,
            expected_period: period,
            grace_seconds: 900,
        }
    }

    #[test]
    fn verdicts() {
        let now = Utc::now();
        let ok = run("success", None, serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&ok), Some(now), Some(3600)), now).0,
            Verdict::Ok
        );
        assert_eq!(
            verdict(&f(None, None, Some(3600)), now).0,
            Verdict::NeverRun
        );
        let old = now - Duration::hours(2);
        assert_eq!(
            verdict(&f(Some(&ok), Some(old), Some(3600)), now).0,
            Verdict::Overdue
        );
        assert_eq!(verdict(&f(Some(&ok), Some(old), None), now).0, Verdict::Ok);
        let failed = run("failed", Some("boom"), serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&failed), Some(old), Some(60)), now).0,
            Verdict::Failing
        );
        let warn = run("success", Some("warning: x"), serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&warn), Some(now), None), now).0,
            Verdict::Warning
        );
        let missing = run(
            "success",
            None,
            serde_json::json!({"missing_paths": ["/x"]}),
        );
        let (v, _, w) = verdict(&f(Some(&missing), Some(now), None), now);
        assert_eq!(v, Verdict::Warning);
        assert!(w[0].contains("/x"));
        let mut disabled = f(Some(&ok), Some(now), None);
        disabled.device_enabled = false;
        assert_eq!(verdict(&disabled, now).0, Verdict::Disabled);
    }
}
