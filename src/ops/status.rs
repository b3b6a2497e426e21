//! The report of `restic-fleet status` (and `metrics`, `status --notify`): reads the fleet
//! from the database in a fixed number of statements whatever its size
//! ([`crate::store::fleet::status_read`]), joins the rows in memory by key and has
//! [`crate::domain::health`] judge every job and device.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::health::device;
use crate::domain::health::job::{Facts, RunFacts, Verdict, verdict};
use crate::domain::health::maintenance::MaintenanceStatus;
use crate::domain::health::period::FleetPeriods;
use crate::domain::health::settings::DeviceSettings;
use crate::domain::settings::Settings;
use crate::store::fleet::{DeviceRow, FleetHead, JobStateRow};

/// `status --json`: `generated_at` (RFC 3339), `ok` (true when every enabled job is ok and
/// maintenance is neither overdue nor failing: the exit code is 0 exactly then), `counts`
/// (verdict → number of jobs), `min_client_version` (the oldest restic-fleet that understands
/// the database's schema), `devices`, `jobs`, `maintenance` (see
/// [`MaintenanceStatus`]: filled by `status`, absent from `metrics`' and `--notify`'s use).
#[derive(Debug, Serialize)]
pub struct StatusReport {
    #[serde(serialize_with = "crate::output::json_time")]
    pub generated_at: DateTime<Utc>,
    pub ok: bool,
    pub counts: BTreeMap<&'static str, usize>,
    pub min_client_version: Option<String>,
    pub devices: Vec<DeviceStatus>,
    pub jobs: Vec<JobStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceStatus>,
    /// Filled by `status`, absent from `metrics`' and `--notify`'s use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_warnings: Option<Vec<RepositoryWarning>>,
}

/// A repository holding more snapshots than `repository_snapshot_warning`, in `status --json`'s
/// `repository_warnings`: `repository` (the fingerprint's first 12 hex digits), `fingerprint`,
/// `maintainer` (its device; null: shared, the maintenance_device's), `snapshot_count`,
/// `counted_at`, `threshold`, `message` (the sentence with the advice).
#[derive(Debug, Serialize)]
pub struct RepositoryWarning {
    pub repository: String,
    pub fingerprint: String,
    pub maintainer: Option<String>,
    pub snapshot_count: i32,
    pub counted_at: Option<DateTime<Utc>>,
    pub threshold: u64,
    pub message: String,
}

/// The repositories this role sees whose last count is above the global setting
/// `repository_snapshot_warning` (default 20,000; 0 turns the warning off). restic reads every
/// snapshot of a repository on every backup and forget, so past that size each backup of
/// every device in it gets slower.
pub async fn repository_warnings(pool: &PgPool) -> anyhow::Result<Vec<RepositoryWarning>> {
    let global = crate::store::settings::global(pool).await?;
    let threshold = global.get_u64("repository_snapshot_warning", 20_000)?;
    if threshold == 0 {
        return Ok(Vec::new());
    }
    let rows = crate::store::repositories::all(pool).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let count = r.snapshot_count?;
            if u64::try_from(count).unwrap_or(0) <= threshold {
                return None;
            }
            let label = r.fingerprint.get(..12).unwrap_or(&r.fingerprint).to_string();
            let message = format!(
                "repository {label} ({}) holds {count} snapshots, more than \
                 repository_snapshot_warning ({threshold}): every backup and forget in it reads \
                 them all; split it with a repository_url that has {{device_id}} (e.g. \
                 `restic-fleet settings set repository_url /srv/restic/{{device_id}}`), or \
                 move its busiest devices out with `restic-fleet repositories move DEVICE --to URL`",
                match &r.maintainer_device_id {
                    Some(d) => format!("maintained by {d}"),
                    None => "shared".to_string(),
                }
            );
            Some(RepositoryWarning {
                repository: label,
                fingerprint: r.fingerprint,
                maintainer: r.maintainer_device_id,
                snapshot_count: count,
                counted_at: r.counted_at,
                threshold,
                message,
            })
        })
        .collect())
}

/// A device in `status --json`: `device_id`, `name`, `platform`, `enabled`, `last_seen`
/// (RFC 3339 or null), `state` (`online`, `offline` when not seen for three
/// `sync_interval_seconds`, `never_seen`), `sync_interval_seconds`, `client_version` (as last
/// reported; null when never), `client_outdated` (older than the report's
/// `min_client_version`; false when unknown).
#[derive(Debug, Serialize)]
pub struct DeviceStatus {
    pub device_id: String,
    pub name: String,
    pub platform: String,
    pub enabled: bool,
    #[serde(serialize_with = "crate::output::json_opt_time")]
    pub last_seen: Option<DateTime<Utc>>,
    pub state: &'static str,
    pub sync_interval_seconds: u64,
    pub client_version: Option<String>,
    pub client_outdated: bool,
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
    #[serde(serialize_with = "crate::output::json_opt_time")]
    pub last_run_start: Option<DateTime<Utc>>,
    pub running: bool,
    #[serde(serialize_with = "crate::output::json_opt_time")]
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_age_seconds: Option<i64>,
    #[serde(serialize_with = "crate::output::json_opt_time")]
    pub next_run_at: Option<DateTime<Utc>>,
    pub expected_period_seconds: Option<i64>,
    pub warnings: Vec<String>,
}

/// A device's facts as its jobs' verdicts need them: whether it is enabled, and its settings.
type DeviceFacts = (bool, DeviceSettings);
/// A device's place in the report's device list, and its facts.
type PlacedFacts = (u32, DeviceFacts);

/// Builds the status report from the database: a fixed number of statements whatever the
/// fleet's size (see [`crate::store::fleet::status_read`]). Devices and settings come first;
/// each job is judged as its row arrives, while the server is still sending the next ones, and
/// its row is moved into the report, not copied: at 50,000 jobs every copy and every free shows.
pub async fn collect(
    pool: &PgPool,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<StatusReport> {
    let (head, read) = crate::store::fleet::status_read(pool, device).await?;
    let FleetHead {
        devices,
        running,
        global_settings,
        device_settings,
        min_client_version,
    } = head;
    // Settings: the globals are evaluated once; only devices with rows of their own merge.
    let global = DeviceSettings::from(&Settings::from_pairs(global_settings.iter().cloned()));
    let settings_of = |device_id: &str| match device_settings.get(device_id) {
        None => global,
        Some(own) => DeviceSettings::from(&Settings::from_pairs(
            global_settings.iter().chain(own.iter()).cloned(),
        )),
    };
    let (device_out, device_facts) =
        device_statuses(devices, &settings_of, min_client_version.as_deref(), now);
    let mut judge = JobJudge {
        device_facts,
        running,
        periods: FleetPeriods::default(),
        now,
    };
    // Room for a generous number of jobs per device up front: growing the vector by doubling
    // copied and faulted in its pages again at every step; room never used costs no memory.
    let mut job_out = Vec::with_capacity(judge.device_facts.len().saturating_mul(8));
    read.jobs(|row| job_out.push(judge.judge(row))).await?;
    let mut report = summarize(now, device_out, in_report_order(job_out));
    report.min_client_version = min_client_version;
    Ok(report)
}

/// The jobs by device, then name, in byte order (whatever the database's collation), each
/// given with its device's place in the sorted device list (`u32::MAX`: a device not in the
/// read, then ordered by its id). The keys are sorted apart and the reports then put in place by
/// swaps: moving 50,000 reports about while sorting, or into new vectors, cost more than the
/// sort itself.
fn in_report_order(jobs: Vec<(u32, JobStatus)>) -> Vec<JobStatus> {
    let mut keys: Vec<(u32, &str, &str, usize)> = jobs
        .iter()
        .enumerate()
        .map(|(i, (place, j))| (*place, j.device_id.as_str(), j.job_name.as_str(), i))
        .collect();
    // The same place is the same device: its id is compared only for devices not in the read.
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| match a.0 {
                u32::MAX => a.1.cmp(b.1),
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.2.cmp(b.2))
    });
    let order: Vec<usize> = keys.into_iter().map(|k| k.3).collect();
    let mut jobs: Vec<JobStatus> = jobs.into_iter().map(|(_, j)| j).collect();
    permute(&mut jobs, order);
    jobs
}

/// Puts `items` in `order` (`order[k]`: the index of the item that belongs at `k`, each index
/// once) in place, following each cycle of the permutation with swaps.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for start in 0..items.len().min(order.len()) {
        let mut k = start;
        while order[k] != DONE {
            let from = order[k];
            order[k] = DONE;
            if from == start || from >= items.len() {
                break;
            }
            items.swap(k, from);
            k = from;
        }
    }
}

/// Each device's state, and its place and facts by id for its jobs' verdicts.
fn device_statuses(
    devices: Vec<DeviceRow>,
    settings_of: &dyn Fn(&str) -> DeviceSettings,
    min_client_version: Option<&str>,
    now: DateTime<Utc>,
) -> (Vec<DeviceStatus>, HashMap<String, PlacedFacts>) {
    let mut device_facts: HashMap<String, PlacedFacts> = HashMap::with_capacity(devices.len());
    let mut device_out = Vec::with_capacity(devices.len());
    for (place, d) in (0u32..).zip(devices) {
        let s = settings_of(&d.id);
        let sync = s.sync_interval;
        let state = device::state(d.last_seen, sync, now);
        device_facts.insert(d.id.clone(), (place, (d.enabled, s)));
        device_out.push(DeviceStatus {
            device_id: d.id,
            name: d.name,
            platform: d.platform,
            enabled: d.enabled,
            last_seen: d.last_seen,
            state,
            sync_interval_seconds: sync,
            client_outdated: crate::domain::client_version::is_outdated(
                d.client_version.as_deref(),
                min_client_version,
            ),
            client_version: d.client_version,
        });
    }
    (device_out, device_facts)
}

/// Judges jobs one at a time, with what every verdict shares: the devices' facts, the jobs
/// running, and the expected periods measured so far.
struct JobJudge {
    device_facts: HashMap<String, PlacedFacts>,
    running: HashSet<Uuid>,
    periods: FleetPeriods,
    now: DateTime<Utc>,
}

impl JobJudge {
    /// One job's verdict from its state row, with its device's place (see
    /// [`in_report_order`]). A job whose device is not in the read (deleted meanwhile) is judged
    /// with the defaults.
    fn judge(&mut self, j: JobStateRow) -> (u32, JobStatus) {
        let (place, facts) = self
            .device_facts
            .get(j.device_id.as_str())
            .copied()
            .unwrap_or((u32::MAX, (true, DeviceSettings::DEFAULTS)));
        // Around the start of its last success, else now, in its device's time zone.
        let around = j
            .last_success_start
            .filter(|_| j.last_success_end.is_some())
            .unwrap_or(self.now);
        let period =
            self.periods
                .period(&j.crons, j.min_interval.map(i64::from), around, facts.1.tz);
        let running = self.running.contains(&j.id);
        (place, job_status(j, facts, period, running, self.now))
    }
}

/// One job's verdict from its state row, its device's facts and its expected period.
fn job_status(
    j: JobStateRow,
    (device_enabled, settings): DeviceFacts,
    period: Option<i64>,
    running: bool,
    now: DateTime<Utc>,
) -> JobStatus {
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
    JobStatus {
        job_id: j.id,
        job_name: j.name,
        device_id: j.device_id,
        enabled: j.enabled,
        verdict: v,
        reason,
        last_run_id: j.last_run_id,
        last_run_status: j.last_run_status,
        last_run_start: j.last_run_start,
        running,
        last_success_at: last_success,
        last_success_age_seconds: last_success.map(|t| (now - t).num_seconds().max(0)),
        next_run_at: j.next_run_at,
        expected_period_seconds: period,
        warnings,
    }
}

/// The report: the counts by verdict and whether every enabled job is ok (maintenance is
/// added by `status`).
fn summarize(now: DateTime<Utc>, devices: Vec<DeviceStatus>, jobs: Vec<JobStatus>) -> StatusReport {
    let mut counts = BTreeMap::new();
    for j in &jobs {
        *counts.entry(j.verdict.as_str()).or_insert(0) += 1;
    }
    let ok = jobs
        .iter()
        .all(|j| j.verdict == Verdict::Ok || j.verdict == Verdict::Disabled);
    StatusReport {
        generated_at: now,
        ok,
        counts,
        min_client_version: None,
        devices,
        jobs,
        maintenance: None,
        repository_warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::permute;

    #[test]
    fn permute_puts_each_item_where_the_order_says() {
        // Every permutation of 5 items (cycles of every length), against a copy made afresh.
        let mut order: Vec<usize> = (0..5).collect();
        let mut seen = 0;
        loop {
            let mut items: Vec<String> = (0..5).map(|i| format!("item {i}")).collect();
            let expected: Vec<String> = order.iter().map(|&i| items[i].clone()).collect();
            permute(&mut items, order.clone());
            assert_eq!(items, expected, "order {order:?}");
            seen += 1;
            // The next permutation in lexicographic order, until the last.
            let Some(i) = (0..4).rev().find(|&i| order[i] < order[i + 1]) else {
                break;
            };
            let j = (i + 1..5).rev().find(|&j| order[j] > order[i]).unwrap();
            order.swap(i, j);
            order[i + 1..].reverse();
        }
        assert_eq!(seen, 120);
    }
}
