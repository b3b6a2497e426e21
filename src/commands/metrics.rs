//! `restic-fleet metrics`: the fleet's state in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector or any scraper that runs a command.
//!
//! Verdicts and device states come from `status` ([`crate::ops::status::collect`]); the
//! figures of each job's newest finished run come from one query
//! ([`crate::store::fleet::last_finished_runs`]), through `job_run_state` (one row per job),
//! never a scan of the run history. A series whose value
//! is unknown (a job that never succeeded has no last-success time) is left out rather than
//! given a made-up value; `restic_fleet_job_verdict{verdict="never_run"}` covers those jobs.
//!
//! The format is written by hand: it is small and fixed, and the escaping rules (label values:
//! `\\`, `\"`, `\n`; HELP text: `\\`, `\n`) are applied in one place, [`label_value`]. The tests
//! parse the output with the Python `prometheus_client` parser.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Args;
use uuid::Uuid;

use crate::commands::{Conn, explain, require_device};
use crate::domain::exit;
use crate::domain::health::job::Verdict;
use crate::domain::health::maintenance::MaintenanceStatus;
use crate::ops::status::{DeviceStatus, JobStatus, StatusReport};
use crate::store::fleet::LastRun;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the metrics to FILE atomically (a temp file in the same directory, then a rename),
    /// as node_exporter's textfile collector needs; default: standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only this device and its jobs.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Database URL (default: the DATABASE_URL variable, else database_url from the config
    /// file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

pub async fn run(config_path: &Path, args: MetricsArgs) -> anyhow::Result<u8> {
    explain(metrics(config_path, args).await)
}

async fn metrics(config_path: &Path, args: MetricsArgs) -> anyhow::Result<u8> {
    let conn = Conn {
        database_url: args.database_url.clone(),
        json: false,
    };
    let pool = crate::commands::connect(config_path, &conn).await?;
    if let Some(d) = &args.device {
        require_device(&pool, d).await?;
    }
    let report = crate::ops::status::collect(&pool, args.device.as_deref(), Utc::now()).await?;
    let runs: HashMap<Uuid, LastRun> =
        crate::store::fleet::last_finished_runs(&pool, args.device.as_deref())
            .await?
            .into_iter()
            .map(|r| (r.job_id, r))
            .collect();
    let maintenance = crate::ops::maintenance_status::collect(&pool, report.generated_at).await?;
    let mut text = render(&report, &runs);
    render_maintenance(&mut text, &maintenance);
    let repositories = crate::store::repositories::all(&pool).await?;
    let threshold = crate::store::settings::global(&pool)
        .await?
        .get_u64("repository_snapshot_warning", 20_000)?;
    render_repositories(&mut text, &repositories, args.device.as_deref(), threshold);
    render_repository_maintenance(&mut text, &maintenance);
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Some(path) => crate::commands::write_public_file(path, "metrics", "--output", &text)?,
    }
    Ok(exit::SUCCESS)
}

/// The snapshot count (and size, when known) of each counted repository, by the first 12 hex
/// digits of its fingerprint and its maintainer (`maintenance_device` for a shared one), and
/// the warning threshold; with `device`, only the repositories it maintains.
fn render_repositories(
    out: &mut String,
    rows: &[crate::store::repositories::RepositoryRow],
    device: Option<&str>,
    threshold: u64,
) {
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| device.is_none() || r.maintainer_device_id.as_deref() == device)
        .collect();
    let labels = |r: &crate::store::repositories::RepositoryRow| {
        (
            r.fingerprint
                .get(..12)
                .unwrap_or(&r.fingerprint)
                .to_string(),
            r.maintainer_device_id
                .clone()
                .unwrap_or_else(|| "maintenance_device".into()),
        )
    };
    for (name, help, value) in [
        (
            "restic_fleet_repository_snapshots",
            "Snapshots in the repository as of its last maintenance.",
            (|r: &crate::store::repositories::RepositoryRow| r.snapshot_count.map(f64::from))
                as fn(&crate::store::repositories::RepositoryRow) -> Option<f64>,
        ),
        (
            "restic_fleet_repository_size_bytes",
            "Size of the repository as of its last maintenance.",
            |r| r.total_size.map(|n| n as f64),
        ),
    ] {
        let mut f = Family::new(out, name, "gauge", help);
        for r in &rows {
            if let Some(v) = value(r) {
                let (repository, maintainer) = labels(r);
                f.sample(
                    name,
                    &[("repository", &repository), ("maintainer", &maintainer)],
                    v,
                );
            }
        }
    }
    let name = "restic_fleet_repository_snapshot_warning";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "The setting repository_snapshot_warning: status warns about a repository with more snapshots (0: off).",
    );
    f.sample(name, &[], threshold as f64);
}

/// Escapes a label value as the text format requires.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// One metric family being written: HELP and TYPE once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// A sample value: integers without a fraction, special values as the format spells them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

const VERDICTS: [Verdict; 6] = [
    Verdict::Ok,
    Verdict::Warning,
    Verdict::Failing,
    Verdict::Overdue,
    Verdict::NeverRun,
    Verdict::Disabled,
];

const DEVICE_STATES: [&str; 3] = ["online", "offline", "never_seen"];

/// The exposition text of a status report and the jobs' newest finished runs: the jobs'
/// families, then the devices', then when the figures were read.
fn render(report: &StatusReport, runs: &HashMap<Uuid, LastRun>) -> String {
    let mut out = String::new();
    render_job_runs(&mut out, &report.jobs, runs);
    job_gauge(
        &mut out,
        &report.jobs,
        "restic_fleet_job_running",
        "1 while a run of the job is in progress.",
        |j| Some(if j.running { 1.0 } else { 0.0 }),
    );
    job_gauge(
        &mut out,
        &report.jobs,
        "restic_fleet_job_expected_period_seconds",
        "The time expected between the job's successful runs (from its schedules); absent without schedules.",
        |j| j.expected_period_seconds.map(|p| p as f64),
    );
    render_verdicts(&mut out, &report.jobs);
    render_devices(&mut out, &report.devices);
    let name = "restic_fleet_metrics_generated_timestamp_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "When these metrics were read from the database (Unix time).",
    );
    f.sample(name, &[], seconds(report.generated_at));
    out
}

/// A gauge family with one sample per job (labels `device`, `job`, `job_id`) whose `value` is
/// known.
fn job_gauge(
    out: &mut String,
    jobs: &[JobStatus],
    name: &'static str,
    help: &str,
    value: impl Fn(&JobStatus) -> Option<f64>,
) {
    let mut f = Family::new(out, name, "gauge", help);
    for j in jobs {
        if let Some(v) = value(j) {
            let id = j.job_id.to_string();
            f.sample(
                name,
                &[
                    ("device", &j.device_id),
                    ("job", &j.job_name),
                    ("job_id", &id),
                ],
                v,
            );
        }
    }
}

/// The families of each job's newest success and newest finished run (when, with its
/// status; how long; bytes added; new files).
fn render_job_runs(out: &mut String, jobs: &[JobStatus], runs: &HashMap<Uuid, LastRun>) {
    job_gauge(
        out,
        jobs,
        "restic_fleet_job_last_success_timestamp_seconds",
        "When the job's newest successful backup ended (Unix time); absent when it never succeeded.",
        |j| j.last_success_at.map(seconds),
    );
    let name = "restic_fleet_job_last_run_timestamp_seconds";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "When the job's newest finished run ended (Unix time), with its status.",
    );
    for j in jobs {
        if let Some(r) = runs.get(&j.job_id) {
            let t = r.end_time.unwrap_or(r.start_time);
            let id = j.job_id.to_string();
            f.sample(
                name,
                &[
                    ("device", &j.device_id),
                    ("job", &j.job_name),
                    ("job_id", &id),
                    ("status", &r.status),
                ],
                seconds(t),
            );
        }
    }
    job_gauge(
        out,
        jobs,
        "restic_fleet_job_last_run_duration_seconds",
        "How long the job's newest finished run took.",
        |j| {
            runs.get(&j.job_id).and_then(|r| {
                r.duration_seconds.map(f64::from).or_else(|| {
                    r.end_time
                        .map(|e| (e - r.start_time).num_milliseconds() as f64 / 1000.0)
                })
            })
        },
    );
    job_gauge(
        out,
        jobs,
        "restic_fleet_job_last_run_added_bytes",
        "Bytes the job's newest finished run added to the repository.",
        |j| {
            runs.get(&j.job_id)
                .and_then(|r| r.data_added_bytes)
                .map(|b| b as f64)
        },
    );
    job_gauge(
        out,
        jobs,
        "restic_fleet_job_last_run_files_new",
        "New files the job's newest finished run backed up.",
        |j| runs.get(&j.job_id).and_then(|r| r.files_new).map(f64::from),
    );
}

/// One sample per job and verdict: 1 for its current verdict, 0 for the others.
fn render_verdicts(out: &mut String, jobs: &[JobStatus]) {
    let name = "restic_fleet_job_verdict";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "1 for the job's current verdict as `restic-fleet status` decides it, 0 for the others.",
    );
    for j in jobs {
        let id = j.job_id.to_string();
        for v in VERDICTS {
            f.sample(
                name,
                &[
                    ("device", &j.device_id),
                    ("job", &j.job_name),
                    ("job_id", &id),
                    ("verdict", v.as_str()),
                ],
                if j.verdict == v { 1.0 } else { 0.0 },
            );
        }
    }
}

/// The devices' families: when each last synced, its state, whether it is enabled.
fn render_devices(out: &mut String, devices: &[DeviceStatus]) {
    {
        let name = "restic_fleet_device_last_seen_timestamp_seconds";
        let mut f = Family::new(
            out,
            name,
            "gauge",
            "When the device last synced (Unix time); absent when it never did.",
        );
        for d in devices {
            if let Some(t) = d.last_seen {
                f.sample(name, &[("device", &d.device_id)], seconds(t));
            }
        }
    }
    {
        let name = "restic_fleet_device_state";
        let mut f = Family::new(
            out,
            name,
            "gauge",
            "1 for the device's state (online; offline after three sync intervals unseen; never_seen), 0 for the others.",
        );
        for d in devices {
            for s in DEVICE_STATES {
                f.sample(
                    name,
                    &[("device", &d.device_id), ("state", s)],
                    if d.state == s { 1.0 } else { 0.0 },
                );
            }
        }
    }
    let name = "restic_fleet_device_enabled";
    let mut f = Family::new(out, name, "gauge", "1 when the device is enabled.");
    for d in devices {
        f.sample(
            name,
            &[("device", &d.device_id)],
            if d.enabled { 1.0 } else { 0.0 },
        );
    }
}

/// The maintenance verdicts `restic_fleet_maintenance_verdict` has a series for.
const MAINTENANCE_VERDICTS: [&str; 5] = ["ok", "overdue", "failing", "never_run", "not_configured"];

/// The repository's maintenance: when forget, prune and check last succeeded and the verdict
/// `status` gives it, from [`crate::ops::maintenance_status::collect`]. Repository-wide, so
/// without job or device labels (and written with `--device` too).
fn render_maintenance(out: &mut String, m: &MaintenanceStatus) {
    {
        let name = "restic_fleet_maintenance_last_success_timestamp_seconds";
        let mut f = Family::new(
            out,
            name,
            "gauge",
            "When the step (forget, prune, check) of the repository's maintenance last succeeded (Unix time); absent when it never did.",
        );
        for (step, h) in [
            ("forget", &m.last_forget),
            ("prune", &m.last_prune),
            ("check", &m.last_check),
        ] {
            if let Some(t) = h.last_success_at {
                f.sample(name, &[("step", step)], seconds(t));
            }
        }
    }
    {
        let name = "restic_fleet_maintenance_verdict";
        let mut f = Family::new(
            out,
            name,
            "gauge",
            "1 for the maintenance verdict as `restic-fleet status` decides it, 0 for the others.",
        );
        for v in MAINTENANCE_VERDICTS {
            f.sample(
                name,
                &[("verdict", v)],
                if m.verdict == v { 1.0 } else { 0.0 },
            );
        }
    }
}

/// Each repository's maintenance (labelled by the first 12 hex digits of its fingerprint and
/// its maintainer, `shared` for the maintenance_device's): the same series per repository.
fn render_repository_maintenance(out: &mut String, m: &MaintenanceStatus) {
    let labels = |r: &crate::domain::health::maintenance::RepositoryMaintenance| {
        (
            r.label.clone(),
            r.maintainer.clone().unwrap_or_else(|| "shared".to_string()),
        )
    };
    {
        let name = "restic_fleet_repository_maintenance_last_success_timestamp_seconds";
        let mut f = Family::new(
            out,
            name,
            "gauge",
            "When the step (forget, prune, check) of a repository's maintenance last succeeded (Unix time); absent when it never did.",
        );
        for r in &m.repositories {
            let (repo, maintainer) = labels(r);
            for (step, h) in [
                ("forget", &r.last_forget),
                ("prune", &r.last_prune),
                ("check", &r.last_check),
            ] {
                if let Some(t) = h.last_success_at {
                    let l = [
                        ("repository", repo.as_str()),
                        ("maintainer", &maintainer),
                        ("step", step),
                    ];
                    f.sample(name, &l, seconds(t));
                }
            }
        }
    }
    let name = "restic_fleet_repository_maintenance_verdict";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "1 for a repository's maintenance verdict as `restic-fleet status` decides it, 0 for the others.",
    );
    for r in &m.repositories {
        let (repo, maintainer) = labels(r);
        for v in MAINTENANCE_VERDICTS {
            let l = [
                ("repository", repo.as_str()),
                ("maintainer", &maintainer),
                ("verdict", v),
            ];
            f.sample(name, &l, if r.verdict == v { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label_value("x\ny"), "x\\ny");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(1732860000.0), "1732860000");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
