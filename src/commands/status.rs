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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::{Conn, explain, require_device};
use crate::domain::calendar::{CronExpr, Schedule};
use crate::domain::exit;
use crate::domain::settings::Settings;
use crate::output::{self, print_json};
use crate::store::fleet::{FleetSnapshot, JobStateRow};

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
    /// i11: see [`crate::ops::maintenance_status::MaintenanceStatus`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::ops::maintenance_status::MaintenanceStatus>,
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
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub id: i32,
    pub status: String,
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
    let crons: Vec<&CronExpr> = schedules
        .iter()
        .filter_map(|s| match s {
            Schedule::Cron(expr) => Some(expr),
            Schedule::Interval { .. } => None,
        })
        .collect();
    let intervals = schedules.iter().filter_map(|s| match s {
        Schedule::Interval { seconds } => Some(i64::try_from(*seconds).unwrap_or(i64::MAX)),
        Schedule::Cron(_) => None,
    });
    let gap = cron_gap(&crons, around, tz).map(|(gap, _)| gap);
    intervals.chain(gap).min()
}

/// Two consecutive scheduled instants: `(before, next)`.
type Bracket = (DateTime<Utc>, DateTime<Utc>);
/// Brackets by their `before`.
type Brackets = BTreeMap<DateTime<Utc>, DateTime<Utc>>;

/// The cron part of [`expected_period`]: the gap (seconds) that follows `around` among the
/// merged instants of `crons`, and the bracket `[before, next)` it was measured on (the
/// scheduled instant at or before `around` and the next one). Every instant inside the bracket
/// has the same gap, which is what [`GapMemo`] relies on. The bracket is `None` for a schedule
/// with no instant before `around` (its first gap is returned).
fn cron_gap(crons: &[&CronExpr], around: DateTime<Utc>, tz: &Tz) -> Option<(i64, Option<Bracket>)> {
    let next_of = |t: DateTime<Utc>| crons.iter().filter_map(|e| e.next_after(t, tz)).min();
    let before = crons
        .iter()
        .filter_map(|e| last_at_or_before(e, around, tz))
        .max();
    match (before, next_of(around)) {
        (Some(a), Some(b)) => Some(((b - a).num_seconds(), Some((a, b)))),
        // No instant before `around` (a schedule for the future only): its first gap.
        (None, Some(b)) => next_of(b).map(|c| ((c - b).num_seconds(), None)),
        _ => None,
    }
}

/// Cron gaps already measured, by set of expressions and time zone: a fleet's jobs share a
/// few schedules and mostly succeeded within the same few periods, so whole-fleet `status`
/// measures each bracket once instead of walking the calendar for each of 50,000 jobs.
#[derive(Default)]
struct GapMemo<'a> {
    /// By (expressions, zone): `before → next` of each bracket measured.
    brackets: HashMap<(&'a [String], Tz), Brackets>,
}

impl<'a> GapMemo<'a> {
    /// The cron gap after `around` of the expressions `exprs` (parsed: `crons`).
    fn gap(
        &mut self,
        exprs: &'a [String],
        crons: &[&CronExpr],
        around: DateTime<Utc>,
        tz: Tz,
    ) -> Option<i64> {
        let known = self.brackets.entry((exprs, tz)).or_default();
        if let Some((before, next)) = known.range(..=around).next_back()
            && around < *next
        {
            return Some((*next - *before).num_seconds());
        }
        let (gap, bracket) = cron_gap(crons, around, &tz)?;
        if let Some((before, next)) = bracket {
            known.insert(before, next);
        }
        Some(gap)
    }
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
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    if let Some(d) = &args.device {
        require_device(&pool, d).await?;
    }
    let mut report = if args.notify {
        // i12: notifications of what changed since the last --notify.
        crate::ops::notify::collect_and_notify(&pool, args.device.as_deref()).await?
    } else {
        collect(&pool, args.device.as_deref(), Utc::now()).await?
    };
    // i11: the maintenance object; overdue or failing maintenance makes status exit 1
    let maintenance = crate::ops::maintenance_status::collect(&pool, report.generated_at).await?;
    report.ok &= !maintenance.needs_attention();
    report.maintenance = Some(maintenance);
    if args.conn.json {
        print_json(&report)?;
    } else {
        print_human(&report);
        if let Some(m) = &report.maintenance {
            crate::ops::maintenance_status::print_human(m); // i11
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
/// The snapshot's rows are moved into the report, not copied: at 50,000 jobs every copy and
/// every free shows.
pub async fn collect(
    pool: &PgPool,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<StatusReport> {
    let FleetSnapshot {
        devices,
        jobs,
        running,
        global_settings,
        device_settings,
    } = crate::store::fleet::status_snapshot(pool, device).await?;
    // Settings: the globals are evaluated once; only devices with rows of their own merge.
    let global = DeviceSettings::from(&Settings::from_pairs(global_settings.iter().cloned()));
    let settings_of = |device_id: &str| match device_settings.get(device_id) {
        None => global,
        Some(own) => DeviceSettings::from(&Settings::from_pairs(
            global_settings.iter().chain(own.iter()).cloned(),
        )),
    };
    let mut device_facts: HashMap<String, (bool, DeviceSettings)> =
        HashMap::with_capacity(devices.len());
    let mut device_out = Vec::with_capacity(devices.len());
    for d in devices {
        let s = settings_of(&d.id);
        let sync = s.sync_interval;
        let state = match d.last_seen {
            None => "never_seen",
            Some(t) if (now - t).num_seconds() > 3 * sync as i64 => "offline", // sync ≤ i32::MAX
            Some(_) => "online",
        };
        device_facts.insert(d.id.clone(), (d.enabled, s));
        device_out.push(DeviceStatus {
            device_id: d.id,
            name: d.name,
            platform: d.platform,
            enabled: d.enabled,
            last_seen: d.last_seen,
            state,
            sync_interval_seconds: sync,
        });
    }
    // A job whose device is not in the snapshot (deleted meanwhile) is judged with defaults.
    let facts_of = |device_id: &str| {
        device_facts.get(device_id).copied().unwrap_or((
            true,
            DeviceSettings {
                tz: chrono_tz::UTC,
                sync_interval: 300,
                grace: 900,
            },
        ))
    };
    let periods = expected_periods(&jobs, &facts_of, now);

    let mut job_out = Vec::with_capacity(jobs.len());
    // Jobs come grouped by device: its facts are looked up once per device, not once per job.
    let mut current: Option<(String, (bool, DeviceSettings))> = None;
    for (j, period) in jobs.into_iter().zip(periods) {
        let (device_enabled, settings) = match &current {
            Some((id, facts)) if *id == j.device_id => *facts,
            _ => {
                let facts = facts_of(&j.device_id);
                current = Some((j.device_id.clone(), facts));
                facts
            }
        };
        let success = j.last_success_start.zip(j.last_success_end);
        let last_success = success.map(|(_, end)| end);
        let finished = match (j.last_finished_run_id, j.last_finished_status) {
            (Some(id), Some(status)) => Some(RunFacts {
                id,
                status,
                error_message: j.last_finished_error,
                metadata: j.last_finished_metadata,
            }),
            _ => None,
        };
        let facts = Facts {
            job_enabled: j.enabled,
            device_enabled,
            last_finished: finished.as_ref(),
            last_success,
            expected_period: period,
            grace_seconds: settings.grace,
        };
        let (v, reason, warnings) = verdict(&facts, now);
        job_out.push(JobStatus {
            job_id: j.id,
            job_name: j.name,
            device_id: j.device_id,
            enabled: j.enabled,
            verdict: v,
            reason,
            last_run_id: j.last_run_id,
            last_run_status: j.last_run_status,
            last_run_start: j.last_run_start,
            running: running.contains(&j.id),
            last_success_at: last_success,
            last_success_age_seconds: last_success.map(|t| (now - t).num_seconds().max(0)),
            next_run_at: j.next_run_at,
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

/// Each job's expected period (see [`expected_period`]), in the order of `jobs`: around the
/// start of its last success, else `now`, in its device's time zone (`facts_of`). Every
/// distinct cron expression is parsed once and every distinct gap measured once.
fn expected_periods(
    jobs: &[JobStateRow],
    facts_of: &dyn Fn(&str) -> (bool, DeviceSettings),
    now: DateTime<Utc>,
) -> Vec<Option<i64>> {
    let mut parsed: HashMap<&str, Option<CronExpr>> = HashMap::new();
    for expr in jobs.iter().flat_map(|j| &j.crons) {
        parsed
            .entry(expr.as_str())
            .or_insert_with(|| CronExpr::parse(expr).ok());
    }
    let mut gaps = GapMemo::default();
    let mut current: Option<(&str, Tz)> = None;
    jobs.iter()
        .map(|j| {
            let tz = match current {
                Some((id, tz)) if id == j.device_id => tz,
                _ => {
                    let tz = facts_of(&j.device_id).1.tz;
                    current = Some((&j.device_id, tz));
                    tz
                }
            };
            let crons: Vec<&CronExpr> = j
                .crons
                .iter()
                .filter_map(|expr| parsed.get(expr.as_str())?.as_ref())
                .collect();
            let around = j
                .last_success_start
                .filter(|_| j.last_success_end.is_some());
            let gap = if crons.is_empty() {
                None
            } else {
                gaps.gap(&j.crons, &crons, around.unwrap_or(now), tz)
            };
            let interval = j.min_interval.filter(|s| *s > 0).map(i64::from);
            interval.into_iter().chain(gap).min()
        })
        .collect()
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

    /// The memo must give exactly what measuring each job afresh gives: for schedules with
    /// uneven gaps, DST zones (a skipped and a repeated hour, a 30-minute shift), leap days,
    /// and instants on, just before and just after scheduled instants, in an order that hits
    /// brackets measured before.
    #[test]
    fn memoised_gaps_equal_gaps_measured_afresh() {
        let sets: Vec<Vec<String>> = [
            &["0 2 * * *"][..],
            &["0 13,23 * * *"],
            &["30 2 * * *"],
            &["30 1 * * 0"],
            &["*/15 * * * *"],
            &["0 3 * * 1,3,5"],
            &["0 0 29 2 *"],
            &["0 2 * * *", "0 14 * * 6"],
            &["30 1 * * *", "45 2 1 * *"],
        ]
        .iter()
        .map(|set| set.iter().map(|e| e.to_string()).collect())
        .collect();
        let parsed: Vec<Vec<CronExpr>> = sets
            .iter()
            .map(|set| set.iter().map(|e| CronExpr::parse(e).unwrap()).collect())
            .collect();
        let zones: Vec<Tz> = [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Europe/Moscow",
        ]
        .iter()
        .map(|z| z.parse().unwrap())
        .collect();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut memo = GapMemo::default();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut hits = 0;
        for _ in 0..6000 {
            // xorshift: deterministic, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let set = (seed % sets.len() as u64) as usize;
            let tz = zones[((seed >> 8) % zones.len() as u64) as usize];
            let crons: Vec<&CronExpr> = parsed[set].iter().collect();
            let offset = Duration::seconds(((seed >> 16) % (3 * 365 * 86400)) as i64);
            let mut around = start + offset;
            // Mostly the start of a run: on a scheduled instant or a few seconds after it.
            match (seed >> 40) % 4 {
                0 => {}
                k => {
                    if let Some(at) = crons.iter().filter_map(|e| e.next_after(around, &tz)).min() {
                        around = at + Duration::seconds([0, 7, -1][k as usize - 1]);
                    }
                }
            }
            let fresh = cron_gap(&crons, around, &tz).map(|(gap, _)| gap);
            let before = memo
                .brackets
                .get(&(&sets[set][..], tz))
                .map_or(0, |b| b.len());
            assert_eq!(
                memo.gap(&sets[set], &crons, around, tz),
                fresh,
                "{:?} in {tz} around {around}",
                sets[set]
            );
            if memo
                .brackets
                .get(&(&sets[set][..], tz))
                .map_or(0, |b| b.len())
                == before
            {
                hits += 1;
            }
        }
        // The memo was used, not just filled.
        assert!(hits > 1000, "only {hits} memo hits");
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
            status: status.into(),
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
