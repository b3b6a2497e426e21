//! The HTML report of `restic-fleet report --html`: the status report of [`crate::ops::status`]
//! (the same verdicts and reasons as `status`), the state of maintenance, and each job's last
//! days from [`crate::store::report`], judged day by day by
//! [`crate::domain::health::history`], assembled into a view of plain values and rendered by
//! the template `templates/report.html` (minijinja, HTML auto-escaping).
//!
//! Text a device wrote (names, host names, versions, messages) goes through
//! [`crate::output::printable`] first, as in a terminal, so control and bidi characters show as
//! visible escapes; the template engine then escapes it for HTML.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use minijinja::{Environment, context};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::calendar::Schedule;
use crate::domain::health::history::{
    self, DAYS_PER_MASK, DayMasks, DayOutcome, FireMemo, Span, Window, outcomes, segments, worst,
};
use crate::domain::health::job::Verdict;
use crate::domain::health::maintenance::MaintenanceStatus;
use crate::domain::health::settings::DeviceSettings;
use crate::domain::schedule::describe_schedule;
use crate::domain::settings::Settings;
use crate::ops::status::{DeviceStatus, JobStatus, StatusReport};
use crate::output::{human_bytes, printable};
use crate::store::report::{GrowthDays, ScheduleInfo};

const TEMPLATE: &str = include_str!("../../templates/report.html");

/// How many devices the page shows in detail (each job's days, facts, growth); the others get
/// one line each. A page for 10,000 devices and 50,000 jobs in full weighs tens of megabytes
/// and takes a browser many seconds; `--device` shows any device in full.
const MAX_DETAILED: usize = 200;

/// How many devices after those get a line with their days; the rest are named in one
/// sentence (a browser lays out a line of text far faster than thousands of table rows).
const MAX_LINES: usize = 2000;

/// How many jobs (and devices) the tables of problems list (worst first); the counts cover
/// them all.
const MAX_PROBLEMS: usize = 1000;

/// The verdicts in the order the page lists them, worst first.
const VERDICT_ORDER: [Verdict; 6] = [
    Verdict::Failing,
    Verdict::Overdue,
    Verdict::Warning,
    Verdict::NeverRun,
    Verdict::Ok,
    Verdict::Disabled,
];

/// Everything the page shows, as plain values.
#[derive(Debug, Serialize)]
pub struct ReportView {
    pub generated_at: String,
    pub days: u32,
    pub first_day: String,
    pub last_day: String,
    /// `(verdict, number of jobs)`, in [`VERDICT_ORDER`], zeros included.
    pub counts: Vec<(&'static str, usize)>,
    pub jobs: usize,
    pub devices: usize,
    pub offline: usize,
    pub never_seen: usize,
    pub maintenance: MaintenanceView,
    pub problems: Vec<ProblemView>,
    pub device_problems: Vec<DeviceProblemView>,
    pub attention: Vec<DeviceView>,
    pub healthy: Vec<DeviceView>,
    /// The next [`MAX_LINES`] devices, those that need attention first.
    pub lines: Vec<DeviceLine>,
    /// The ids of the devices after those, in the same order.
    pub rest: Vec<String>,
    /// The devices that do not sync and are not in `device_problems`.
    pub more_device_problems: usize,
    /// The jobs that need attention and are not in `problems` (beyond [`MAX_PROBLEMS`]).
    pub more_problems: usize,
    pub fleet_growth: GrowthView,
}

#[derive(Debug, Serialize)]
pub struct MaintenanceView {
    pub verdict: &'static str,
    pub reason: String,
    pub owner: String,
    pub last_forget: String,
    pub last_prune: String,
    pub last_check: String,
    /// Each repository (label, maintainer, the same fields).
    pub repositories: Vec<RepositoryMaintenanceView>,
}

/// One repository's maintenance on the page, named by its fingerprint's first 12 hex digits
/// and its maintainer (never its URL).
#[derive(Debug, Serialize)]
pub struct RepositoryMaintenanceView {
    pub label: String,
    pub maintainer: String,
    pub verdict: &'static str,
    pub reason: String,
    pub snapshots: String,
    pub last_forget: String,
    pub last_prune: String,
    pub last_check: String,
}

/// A job that is not ok.
#[derive(Debug, Serialize)]
pub struct ProblemView {
    pub device_id: String,
    pub job_name: String,
    pub job_id: String,
    pub verdict: &'static str,
    pub reason: String,
    pub last_success: String,
    pub last_error: String,
}

/// A device that is offline or never synced.
#[derive(Debug, Serialize)]
pub struct DeviceProblemView {
    pub device_id: String,
    pub name: String,
    pub state: &'static str,
    pub reason: String,
}

/// Consecutive days with one outcome: its class, one glyph per day, and the dates in words.
#[derive(Debug, Serialize)]
pub struct Segment {
    pub outcome: &'static str,
    pub glyphs: String,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct JobView {
    pub name: String,
    pub job_id: String,
    pub verdict: &'static str,
    pub schedules: Vec<String>,
    pub strip: Vec<Segment>,
}

/// A device beyond the first [`MAX_DETAILED`]: one line.
#[derive(Debug, Serialize)]
pub struct DeviceLine {
    pub device_id: String,
    pub name: String,
    pub state: &'static str,
    pub jobs: usize,
    pub needing_attention: usize,
    pub strip: Vec<Segment>,
}

#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub device_id: String,
    pub name: String,
    pub hostname: String,
    pub platform: String,
    pub state: &'static str,
    pub last_seen: String,
    pub client_version: String,
    pub restic_version: String,
    pub strip: Vec<Segment>,
    pub jobs: Vec<JobView>,
    pub growth: GrowthView,
}

/// Bytes added and files new or changed per day, as SVG geometry (numbers only).
#[derive(Debug, Serialize, Default)]
pub struct GrowthView {
    pub total_bytes: String,
    pub total_files: u64,
    pub bytes_max: String,
    pub files_max: u64,
    pub bytes_bars: Vec<Bar>,
    pub files_bars: Vec<Bar>,
    /// The same values as an SVG polyline in a box 4 wide per day and 20 high (sparklines).
    pub bytes_points: String,
    pub files_points: String,
}

/// One bar of a chart: its x and height (of a 100-high box), and its day and value in words.
#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: usize,
    pub h: u32,
    pub title: String,
}

/// Reads and judges everything the page shows: the fleet, or the devices in `devices`.
pub async fn collect(
    pool: &PgPool,
    devices: &[String],
    days: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<ReportView> {
    let status = fleet_status(pool, devices, now).await?;
    let maintenance = crate::ops::maintenance_status::collect(pool, now).await?;
    let only = (!devices.is_empty()).then_some(devices);
    let window = Window::ending_at(now, days);
    let (job_days, growth) =
        crate::store::report::history(pool, window.start(), window.end(), only).await?;
    let info = crate::store::report::device_info(pool, only).await?;
    let schedules = crate::store::report::schedules(pool, only).await?;
    let settings = device_settings(pool, only).await?;
    let (problems, more_problems) = problems(pool, &status).await?;
    let mut ran: HashMap<Uuid, Vec<Option<DayOutcome>>> = HashMap::new();
    for d in job_days {
        let days = ran
            .entry(d.job_id)
            .or_insert_with(|| vec![None; window.days as usize]);
        DayMasks {
            first: usize::try_from(d.chunk).unwrap_or(usize::MAX / 2) * DAYS_PER_MASK as usize,
            failed: d.failed,
            warned: d.warned,
            succeeded: d.succeeded,
        }
        .fill(days);
    }
    let strips = Strips {
        window,
        now,
        ran,
        schedules: by_job(schedules),
        settings,
    };
    let fleet_growth = growth_view(growth.as_ref(), &window);
    let info: HashMap<String, _> = info.into_iter().map(|i| (i.id.clone(), i)).collect();
    let ranked = rank_devices(&status, &strips);
    let detailed: Vec<String> = ranked
        .iter()
        .take(MAX_DETAILED)
        .map(|d| d.device.device_id.clone())
        .collect();
    let growth: HashMap<String, GrowthDays> =
        crate::store::report::device_growth(pool, window.start(), window.end(), &detailed)
            .await?
            .into_iter()
            .filter_map(|g| Some((g.device_id.clone()?, g)))
            .collect();
    let (attention, healthy, lines, rest) = device_views(ranked, &strips, &info, &growth, now);
    let mut device_problems = device_problems(&status, now);
    let more_device_problems = device_problems.len().saturating_sub(MAX_PROBLEMS);
    device_problems.truncate(MAX_PROBLEMS);
    Ok(ReportView {
        generated_at: now.format("%Y-%m-%d %H:%M UTC").to_string(),
        days: window.days,
        first_day: window.date(0).to_string(),
        last_day: window.date(window.days as usize - 1).to_string(),
        counts: VERDICT_ORDER
            .iter()
            .map(|v| {
                (
                    v.as_str(),
                    status.counts.get(v.as_str()).copied().unwrap_or(0),
                )
            })
            .collect(),
        jobs: status.jobs.len(),
        devices: status.devices.len(),
        offline: count_state(&status.devices, "offline"),
        never_seen: count_state(&status.devices, "never_seen"),
        maintenance: maintenance_view(&maintenance),
        problems,
        more_problems,
        device_problems,
        more_device_problems,
        attention,
        healthy,
        lines,
        rest,
        fleet_growth,
    })
}

/// Renders the page.
pub fn render(view: &ReportView) -> anyhow::Result<String> {
    let mut env = Environment::new();
    // The name ends in .html: minijinja escapes every value for HTML.
    env.add_template("report.html", TEMPLATE)?;
    Ok(env
        .get_template("report.html")?
        .render(context! { r => view })?)
}

/// The status report of the fleet or of the given devices, exactly as `status` judges it.
async fn fleet_status(
    pool: &PgPool,
    devices: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<StatusReport> {
    if let [one] = devices {
        return crate::ops::status::collect(pool, Some(one), now).await;
    }
    let mut report = crate::ops::status::collect(pool, None, now).await?;
    if !devices.is_empty() {
        let keep: HashSet<&str> = devices.iter().map(String::as_str).collect();
        report
            .devices
            .retain(|d| keep.contains(d.device_id.as_str()));
        report.jobs.retain(|j| keep.contains(j.device_id.as_str()));
        let mut counts = BTreeMap::new();
        for j in &report.jobs {
            *counts.entry(j.verdict.as_str()).or_insert(0) += 1;
        }
        report.counts = counts;
    }
    Ok(report)
}

/// Every device's settings as the verdicts read them (its time zone and grace).
async fn device_settings(
    pool: &PgPool,
    devices: Option<&[String]>,
) -> anyhow::Result<HashMap<String, DeviceSettings>> {
    let rows = crate::store::report::settings(pool, devices).await?;
    let global: Vec<(String, String)> = rows
        .iter()
        .filter(|(d, _, _)| d.is_none())
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    let mut own: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (d, k, v) in rows {
        if let Some(d) = d {
            own.entry(d).or_default().push((k, v));
        }
    }
    let mut out: HashMap<String, DeviceSettings> = own
        .into_iter()
        .map(|(d, pairs)| {
            let merged = Settings::from_pairs(global.iter().cloned().chain(pairs));
            (d, DeviceSettings::from(&merged))
        })
        .collect();
    out.insert(
        String::new(),
        DeviceSettings::from(&Settings::from_pairs(global)),
    );
    Ok(out)
}

/// Schedules grouped by job, each job's by id.
fn by_job(schedules: Vec<ScheduleInfo>) -> HashMap<Uuid, Vec<ScheduleInfo>> {
    let mut out: HashMap<Uuid, Vec<ScheduleInfo>> = HashMap::new();
    for s in schedules {
        out.entry(s.row.job_id).or_default().push(s);
    }
    // A job's schedules in the order they were added, as `schedule list` shows them.
    for list in out.values_mut() {
        list.sort_unstable_by_key(|s| s.row.id);
    }
    out
}

/// What the day-by-day strips are made of.
struct Strips {
    window: Window,
    now: DateTime<Utc>,
    ran: HashMap<Uuid, Vec<Option<DayOutcome>>>,
    schedules: HashMap<Uuid, Vec<ScheduleInfo>>,
    /// By device id; `""` holds the global settings.
    settings: HashMap<String, DeviceSettings>,
}

impl Strips {
    /// A job's outcome on each day: what ran, else whether an enabled schedule expected a run
    /// (a disabled job or device expects nothing).
    fn job(&self, j: &JobStatus, device_enabled: bool, memo: &mut FireMemo) -> Vec<DayOutcome> {
        let n = self.window.days as usize;
        let ran = self.ran.get(&j.job_id).cloned().unwrap_or(vec![None; n]);
        let mut due = vec![false; n];
        let settings = self
            .settings
            .get(&j.device_id)
            .or_else(|| self.settings.get(""))
            .copied()
            .unwrap_or(DeviceSettings::DEFAULTS);
        let until = self.now - Duration::seconds(settings.grace);
        let ran_on: Vec<bool> = ran.iter().map(Option::is_some).collect();
        let schedules = self.schedules.get(&j.job_id).map(Vec::as_slice);
        for s in schedules.unwrap_or_default() {
            if !(s.row.enabled && j.enabled && device_enabled) {
                continue;
            }
            let span = Span {
                since: s.since,
                until,
            };
            match s.row.schedule() {
                Ok(Schedule::Cron(expr)) => {
                    history::cron_due(memo, &expr, settings.tz, &self.window, span, &mut due)
                }
                Ok(Schedule::Interval { seconds }) => {
                    history::interval_due(seconds, &self.window, span, &ran_on, &mut due)
                }
                // A schedule that does not parse fires nowhere; `schedule list` names it.
                Err(_) => {}
            }
        }
        outcomes(&ran, &due)
    }

    /// The schedules of a job in words.
    fn described(&self, job: Uuid) -> Vec<String> {
        self.schedules
            .get(&job)
            .map(|ss| ss.iter().map(|s| describe_schedule(&s.row)).collect())
            .unwrap_or_default()
    }

    /// Days as segments of one outcome each.
    fn segments(&self, days: &[DayOutcome]) -> Vec<Segment> {
        segments(days)
            .into_iter()
            .map(|(o, first, n)| {
                let from = self.window.date(first);
                let title = if n == 1 {
                    format!("{from}: {}", o.label())
                } else {
                    let to = self.window.date(first + n - 1);
                    format!("{from} to {to}: {}", o.label())
                };
                Segment {
                    outcome: o.as_str(),
                    glyphs: std::iter::repeat_n(o.glyph(), n).collect(),
                    title,
                }
            })
            .collect()
    }
}

/// A verdict that `status` counts as needing attention.
fn needs_attention(v: Verdict) -> bool {
    !matches!(v, Verdict::Ok | Verdict::Disabled)
}

/// The devices in detail (those that need attention, the healthy ones), as lines, and named.
type DeviceViews = (
    Vec<DeviceView>,
    Vec<DeviceView>,
    Vec<DeviceLine>,
    Vec<String>,
);

/// One device's days: each job's and the worst of them, and whether it needs attention now
/// (enabled, and offline, never seen, or with a job that is not ok).
struct DeviceDays<'a> {
    device: &'a DeviceStatus,
    jobs: Vec<&'a JobStatus>,
    days: Vec<Vec<DayOutcome>>,
    combined: Vec<DayOutcome>,
    bad: bool,
}

/// Every device's days, those that need attention first (otherwise in the order of `status`).
fn rank_devices<'a>(status: &'a StatusReport, strips: &Strips) -> Vec<DeviceDays<'a>> {
    let mut jobs_of: HashMap<&str, Vec<&JobStatus>> = HashMap::new();
    for j in &status.jobs {
        jobs_of.entry(j.device_id.as_str()).or_default().push(j);
    }
    let mut memo = FireMemo::default();
    let mut all: Vec<DeviceDays> = status
        .devices
        .iter()
        .map(|d| {
            let jobs = jobs_of.remove(d.device_id.as_str()).unwrap_or_default();
            let days: Vec<Vec<DayOutcome>> = jobs
                .iter()
                .map(|j| strips.job(j, d.enabled, &mut memo))
                .collect();
            let rows: Vec<&[DayOutcome]> = days.iter().map(Vec::as_slice).collect();
            let combined = worst(&rows, strips.window.days as usize);
            let bad = d.enabled
                && (d.state != "online" || jobs.iter().any(|j| needs_attention(j.verdict)));
            DeviceDays {
                device: d,
                jobs,
                days,
                combined,
                bad,
            }
        })
        .collect();
    // Stable: within each group the devices keep the order of `status`.
    all.sort_by_key(|d| !d.bad);
    all
}

/// The devices in `ranked` order: the first [`MAX_DETAILED`] in detail (their jobs, facts and
/// growth; split into those that need attention and the healthy ones), the next [`MAX_LINES`]
/// as one line each, the rest by id, so that the page stays small at fleet scale.
fn device_views(
    ranked: Vec<DeviceDays>,
    strips: &Strips,
    info: &HashMap<String, crate::store::report::DeviceInfo>,
    growth: &HashMap<String, GrowthDays>,
    now: DateTime<Utc>,
) -> DeviceViews {
    let (mut attention, mut healthy, mut lines, mut rest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (n, d) in ranked.into_iter().enumerate() {
        if n >= MAX_DETAILED + MAX_LINES {
            rest.push(printable(&d.device.device_id).into_owned());
            continue;
        }
        if n >= MAX_DETAILED {
            lines.push(DeviceLine {
                device_id: printable(&d.device.device_id).into_owned(),
                name: printable(&d.device.name).into_owned(),
                state: state_of(d.device),
                jobs: d.jobs.len(),
                needing_attention: d.jobs.iter().filter(|j| needs_attention(j.verdict)).count(),
                strip: strips.segments(&d.combined),
            });
            continue;
        }
        let g = growth.get(&d.device.device_id);
        let bad = d.bad;
        let view = device_view(d, strips, info, g, now);
        if bad { &mut attention } else { &mut healthy }.push(view);
    }
    (attention, healthy, lines, rest)
}

/// A device's state on the page: `disabled`, or its state.
fn state_of(d: &DeviceStatus) -> &'static str {
    if d.enabled { d.state } else { "disabled" }
}

/// One device in detail.
fn device_view(
    d: DeviceDays,
    strips: &Strips,
    info: &HashMap<String, crate::store::report::DeviceInfo>,
    growth: Option<&GrowthDays>,
    now: DateTime<Utc>,
) -> DeviceView {
    let i = info.get(&d.device.device_id);
    let text = |f: fn(&crate::store::report::DeviceInfo) -> Option<&String>| {
        i.and_then(f)
            .map(|s| printable(s).into_owned())
            .unwrap_or_else(|| "not recorded".into())
    };
    DeviceView {
        device_id: printable(&d.device.device_id).into_owned(),
        name: printable(&d.device.name).into_owned(),
        hostname: text(|i| i.hostname.as_ref()),
        platform: printable(&d.device.platform).into_owned(),
        state: state_of(d.device),
        last_seen: crate::output::ago(d.device.last_seen, now),
        client_version: text(|i| i.client_version.as_ref()),
        // The heartbeat stores `restic version`'s whole line ("restic 0.17.3 compiled...").
        restic_version: match text(|i| i.restic_version.as_ref()) {
            v if v.starts_with("restic") => v,
            v => format!("restic {v}"),
        },
        strip: strips.segments(&d.combined),
        jobs: d
            .jobs
            .iter()
            .zip(&d.days)
            .map(|(j, days)| JobView {
                name: printable(&j.job_name).into_owned(),
                job_id: j.job_id.to_string(),
                verdict: j.verdict.as_str(),
                schedules: strips.described(j.job_id),
                strip: strips.segments(days),
            })
            .collect(),
        growth: growth_view(growth, &strips.window),
    }
}

/// The first [`MAX_PROBLEMS`] jobs that need attention, worst first, with the first line of
/// their newest error, and how many more there are.
async fn problems(
    pool: &PgPool,
    status: &StatusReport,
) -> anyhow::Result<(Vec<ProblemView>, usize)> {
    let ranked = ranked_problems(status);
    let more = ranked.len().saturating_sub(MAX_PROBLEMS);
    let shown: Vec<Uuid> = ranked.iter().take(MAX_PROBLEMS).map(|j| j.job_id).collect();
    let errors: HashMap<Uuid, String> = crate::store::report::last_errors(pool, &shown)
        .await?
        .into_iter()
        .map(|(id, msg, _)| (id, first_line(msg.as_deref().unwrap_or(""))))
        .collect();
    let views = ranked
        .into_iter()
        .take(MAX_PROBLEMS)
        .map(|j| problem_view(j, &errors))
        .collect();
    Ok((views, more))
}

/// The jobs that need attention, worst verdict first.
fn ranked_problems(status: &StatusReport) -> Vec<&JobStatus> {
    let rank = |v: Verdict| VERDICT_ORDER.iter().position(|o| *o == v).unwrap_or(0);
    let mut jobs: Vec<&JobStatus> = status
        .jobs
        .iter()
        .filter(|j| needs_attention(j.verdict))
        .collect();
    jobs.sort_by(|a, b| {
        (rank(a.verdict), &a.device_id, &a.job_name).cmp(&(
            rank(b.verdict),
            &b.device_id,
            &b.job_name,
        ))
    });
    jobs
}

/// A job that needs attention, with the first line of its newest error.
fn problem_view(j: &JobStatus, errors: &HashMap<Uuid, String>) -> ProblemView {
    ProblemView {
        device_id: printable(&j.device_id).into_owned(),
        job_name: printable(&j.job_name).into_owned(),
        job_id: j.job_id.to_string(),
        verdict: j.verdict.as_str(),
        reason: printable(&j.reason).into_owned(),
        last_success: when(j.last_success_at),
        last_error: errors.get(&j.job_id).cloned().unwrap_or_default(),
    }
}

/// The enabled devices that are offline or never synced.
fn device_problems(status: &StatusReport, now: DateTime<Utc>) -> Vec<DeviceProblemView> {
    status
        .devices
        .iter()
        .filter(|d| d.enabled && d.state != "online")
        .map(|d| DeviceProblemView {
            device_id: printable(&d.device_id).into_owned(),
            name: printable(&d.name).into_owned(),
            state: d.state,
            reason: crate::domain::health::device::reason(
                d.state,
                d.last_seen,
                d.sync_interval_seconds,
                now,
            ),
        })
        .collect()
}

fn count_state(devices: &[DeviceStatus], state: &str) -> usize {
    devices
        .iter()
        .filter(|d| d.enabled && d.state == state)
        .count()
}

fn maintenance_view(m: &MaintenanceStatus) -> MaintenanceView {
    MaintenanceView {
        verdict: m.verdict,
        reason: printable(&m.reason).into_owned(),
        owner: printable(m.owner.as_deref().unwrap_or("none")).into_owned(),
        last_forget: when(m.last_forget.last_success_at),
        last_prune: when(m.last_prune.last_success_at),
        last_check: when(m.last_check.last_success_at),
        repositories: m
            .repositories
            .iter()
            .map(|r| RepositoryMaintenanceView {
                label: printable(&r.label).into_owned(),
                maintainer: printable(r.maintainer.as_deref().unwrap_or("shared")).into_owned(),
                verdict: r.verdict,
                reason: printable(&r.reason).into_owned(),
                snapshots: r
                    .snapshot_count
                    .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
                last_forget: when(r.last_forget.last_success_at),
                last_prune: when(r.last_prune.last_success_at),
                last_check: when(r.last_check.last_success_at),
            })
            .collect(),
    }
}

/// A time on the page: UTC to the minute, or `never`.
fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

/// The first line of a message, shown as a terminal would.
fn first_line(msg: &str) -> String {
    printable(msg.lines().next().unwrap_or("").trim()).into_owned()
}

/// The bars of the two growth charts (per day of the window, empty days as zero).
fn growth_view(g: Option<&GrowthDays>, w: &Window) -> GrowthView {
    let n = w.days as usize;
    let (mut bytes, mut files) = (vec![0u64; n], vec![0u64; n]);
    if let Some(g) = g {
        for ((day, b), f) in g.days.iter().zip(&g.bytes).zip(&g.files) {
            if let Some(i) = usize::try_from(*day).ok().filter(|i| *i < n) {
                bytes[i] = u64::try_from(*b).unwrap_or(0);
                files[i] = u64::try_from(*f).unwrap_or(0);
            }
        }
    }
    let bars = |values: &[u64], word: &dyn Fn(u64) -> String| -> Vec<Bar> {
        let max = values.iter().copied().max().unwrap_or(0).max(1);
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Bar {
                x: i,
                h: ((*v as f64 / max as f64) * 100.0).round() as u32,
                title: format!("{}: {}", w.date(i), word(*v)),
            })
            .collect()
    };
    GrowthView {
        total_bytes: human_bytes(bytes.iter().sum()),
        total_files: files.iter().sum(),
        bytes_max: human_bytes(bytes.iter().copied().max().unwrap_or(0)),
        files_max: files.iter().copied().max().unwrap_or(0),
        bytes_bars: bars(&bytes, &|v| human_bytes(v)),
        files_bars: bars(&files, &|v| format!("{v} files")),
        bytes_points: points(&bytes),
        files_points: points(&files),
    }
}

/// A polyline of `values`, 4 units apart, scaled to a height of 20 (0 at the bottom).
fn points(values: &[u64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = String::with_capacity(values.len() * 7);
    for (i, v) in values.iter().enumerate() {
        let y = 20.0 - (*v as f64 / max) * 19.0;
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{},{:.0}", i * 4, y));
    }
    out
}
