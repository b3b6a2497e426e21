//! The verdict on a repository's maintenance: who maintains it, when forget, prune and check
//! last succeeded, and whether that is `ok`, `overdue` (the oldest of the three last successes
//! is more than twice the schedule's period ago), `failing` (the newest run of a step failed),
//! `never_run` or `not_configured` (no maintainer). `status` exits 1 for `overdue` and
//! `failing`. The top-level verdict is the shared repositories' (maintained by the
//! `maintenance_device`); each repository has its own in `repositories`, labelled by the first
//! 12 hex digits of its fingerprint and its maintainer (never its URL).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::calendar::Schedule;
use crate::domain::health::device;
use crate::domain::health::period::expected_period;
use crate::domain::settings::Settings;

/// The newest finished row and the newest successful row of one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepHistory {
    /// End of the last successful run of the step (RFC 3339), null if never.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Status of the newest finished run of the step (`success`, `failed`), null if never.
    pub last_status: Option<String>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub device_id: Option<String>,
}

/// `status --json` → `maintenance`: `owner` (device id or null), `owner_state` (`online`,
/// `offline` when not seen for three `sync_interval_seconds`, `never_seen`, `unknown_device`,
/// or null without an owner), `owner_last_seen`, `schedule` (cron), `period_seconds` (between
/// two scheduled maintenances), `last_forget`, `last_prune`, `last_check` (each:
/// `last_success_at`, `last_status`, `last_run_at`, `last_error`, `device_id`), `verdict`
/// (`ok`, `overdue` when the oldest of the three last successes is more than twice the period
/// ago, `failing` when the newest run of a step failed, `never_run`, `not_configured` without
/// `maintenance_device`), `reason` (one sentence).
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceStatus {
    pub owner: Option<String>,
    pub owner_state: Option<&'static str>,
    pub owner_last_seen: Option<DateTime<Utc>>,
    pub schedule: Option<String>,
    pub period_seconds: Option<i64>,
    pub last_forget: StepHistory,
    pub last_prune: StepHistory,
    pub last_check: StepHistory,
    pub verdict: &'static str,
    pub reason: String,
    /// Each repository's own maintenance.
    pub repositories: Vec<RepositoryMaintenance>,
}

/// One repository in `status --json` → `maintenance.repositories`: `repository_id` (null for
/// the steps recorded before steps named their repository), `label` (first 12 hex digits of
/// the fingerprint, or `shared`), `maintainer` (the device, null when shared: the
/// maintenance_device), `maintainer_state`, `snapshot_count`, `total_size`, `counted_at` (as of
/// its last maintenance), `schedule`, `period_seconds`, `last_forget`, `last_prune`,
/// `last_check`, `verdict`, `reason`, as at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryMaintenance {
    pub repository_id: Option<i32>,
    pub label: String,
    pub maintainer: Option<String>,
    pub maintainer_state: Option<&'static str>,
    pub snapshot_count: Option<i32>,
    pub total_size: Option<i64>,
    pub counted_at: Option<DateTime<Utc>>,
    pub schedule: Option<String>,
    pub period_seconds: Option<i64>,
    pub last_forget: StepHistory,
    pub last_prune: StepHistory,
    pub last_check: StepHistory,
    pub verdict: &'static str,
    pub reason: String,
}

/// Which repository, as told to viewers, and what was counted in it.
#[derive(Debug, Clone, Default)]
pub struct RepositoryIdent {
    pub repository_id: Option<i32>,
    pub label: String,
    /// The device that maintains it; `None`: shared.
    pub maintainer: Option<String>,
    pub snapshot_count: Option<i32>,
    pub total_size: Option<i64>,
    pub counted_at: Option<DateTime<Utc>>,
}

impl RepositoryMaintenance {
    /// A repository's entry from its verdict (judged with its maintainer as owner).
    pub fn new(ident: RepositoryIdent, s: MaintenanceStatus) -> Self {
        RepositoryMaintenance {
            repository_id: ident.repository_id,
            label: ident.label,
            maintainer: ident.maintainer,
            maintainer_state: s.owner_state,
            snapshot_count: ident.snapshot_count,
            total_size: ident.total_size,
            counted_at: ident.counted_at,
            schedule: s.schedule,
            period_seconds: s.period_seconds,
            last_forget: s.last_forget,
            last_prune: s.last_prune,
            last_check: s.last_check,
            verdict: s.verdict,
            reason: s.reason,
        }
    }

    pub fn needs_attention(&self) -> bool {
        attention(self.verdict, self.maintainer_state)
    }
}

/// `never_run` alone is the normal state of a fresh maintainer, but not when it is no
/// registered device or has never synced: then no timer exists anywhere and maintenance would
/// never run without anyone being told.
fn attention(verdict: &str, state: Option<&str>) -> bool {
    matches!(verdict, "overdue" | "failing")
        || (verdict == "never_run" && matches!(state, Some("unknown_device" | "never_seen")))
}

impl MaintenanceStatus {
    /// Whether `status` must exit 1 for it or for one of its repositories.
    pub fn needs_attention(&self) -> bool {
        attention(self.verdict, self.owner_state)
            || self
                .repositories
                .iter()
                .any(RepositoryMaintenance::needs_attention)
    }
}

impl StepHistory {
    /// The history of the same step over two repositories taken as one: the newer last run,
    /// the newer last success.
    pub fn merge(&mut self, other: &StepHistory) {
        if other.last_run_at > self.last_run_at {
            self.last_status = other.last_status.clone();
            self.last_run_at = other.last_run_at;
            self.last_error = other.last_error.clone();
            self.device_id = other.device_id.clone();
        }
        self.last_success_at = self.last_success_at.max(other.last_success_at);
    }
}

/// What was read about the repository's maintenance, to be judged.
pub struct MaintenanceFacts {
    /// The global `maintenance_device`.
    pub owner: Option<String>,
    /// The owner's row: `None` when no such device exists, else its `last_seen`.
    pub owner_last_seen: Option<Option<DateTime<Utc>>>,
    /// The owner's own settings (time zone, schedule overrides), which decide its timer.
    pub settings: Settings,
    /// The history of `forget`, `prune` and `check`, in that order.
    pub steps: [StepHistory; 3],
}

/// Judges the maintenance from what was read at `now`.
pub fn status(facts: MaintenanceFacts, now: DateTime<Utc>) -> MaintenanceStatus {
    let MaintenanceFacts {
        owner,
        owner_last_seen,
        settings,
        steps: [forget, prune, check],
    } = facts;
    let (owner_state, owner_last_seen) = match &owner {
        None => (None, None),
        Some(_) => owner_state(owner_last_seen, &settings, now),
    };
    let (schedule, period) = schedule_and_period(&settings, now);
    let mut status = MaintenanceStatus {
        owner,
        owner_state,
        owner_last_seen,
        schedule,
        period_seconds: period,
        last_forget: forget,
        last_prune: prune,
        last_check: check,
        verdict: "ok",
        reason: String::new(),
        repositories: Vec::new(),
    };
    let (verdict, reason) = judge(&status, now);
    status.verdict = verdict;
    status.reason = reason;
    status
}

/// The owner's state (`unknown_device` when no device has its id, else a device state) and
/// when it was last seen.
fn owner_state(
    last_seen: Option<Option<DateTime<Utc>>>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> (Option<&'static str>, Option<DateTime<Utc>>) {
    match last_seen {
        None => (Some("unknown_device"), None),
        Some(seen) => {
            let sync = settings
                .get_u64("sync_interval_seconds", 300)
                .unwrap_or(300);
            (Some(device::state(seen, sync, now)), seen)
        }
    }
}

/// The maintenance schedule (cron) and the period between two scheduled maintenances; a
/// schedule that does not parse is shown as written, without a period.
fn schedule_and_period(settings: &Settings, now: DateTime<Utc>) -> (Option<String>, Option<i64>) {
    match crate::domain::maintenance::schedule(settings) {
        Ok(expr) => {
            let tz = settings.timezone().unwrap_or(chrono_tz::UTC);
            let period = expected_period(&[Schedule::Cron(expr.clone())], now, &tz);
            (Some(expr.as_str().to_string()), period)
        }
        Err(_) => (
            settings.get("maintenance_schedule").map(str::to_string),
            None,
        ),
    }
}

/// The verdict and its sentence.
pub fn judge(s: &MaintenanceStatus, now: DateTime<Utc>) -> (&'static str, String) {
    let Some(owner) = &s.owner else {
        return (
            "not_configured",
            "no maintenance owner: snapshots are never forgotten and the repository is never \
             checked; set one with `restic-fleet settings set maintenance_device ID`"
                .to_string(),
        );
    };
    let owner_note = owner_note(s, owner);
    let steps = [
        ("forget", &s.last_forget),
        ("prune", &s.last_prune),
        ("check", &s.last_check),
    ];
    if let Some((name, h)) = steps
        .iter()
        .find(|(_, h)| h.last_status.as_deref() == Some("failed"))
    {
        return (
            "failing",
            format!(
                "the last {name} failed{}: {}{owner_note}",
                h.last_run_at
                    .map(|t| format!(" at {}", t.to_rfc3339()))
                    .unwrap_or_default(),
                h.last_error.as_deref().unwrap_or("no reason recorded")
            ),
        );
    }
    if steps.iter().all(|(_, h)| h.last_success_at.is_none()) {
        return (
            "never_run",
            format!("maintenance has never run on {owner:?}{owner_note}"),
        );
    }
    let oldest = steps
        .iter()
        .map(|(_, h)| h.last_success_at)
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().min());
    let overdue = match (oldest, s.period_seconds) {
        (None, _) => true,
        (Some(t), Some(p)) => (now - t).num_seconds() > p.saturating_mul(2),
        (Some(_), None) => false,
    };
    if overdue {
        let what = overdue_reason(&steps, oldest, s.period_seconds);
        return (
            "overdue",
            format!("maintenance is overdue: {what}{owner_note}"),
        );
    }
    (
        "ok",
        format!(
            "maintained by {owner:?}; last check {}{owner_note}",
            s.last_check
                .last_success_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ),
    )
}

/// What the reason adds about the owner when it is not online: offline, never synced, or no
/// registered device at all.
fn owner_note(s: &MaintenanceStatus, owner: &str) -> String {
    match s.owner_state {
        Some("offline") => format!(
            "; the owner {owner:?} is offline (last seen {}): bring it back or name another \
             owner with `restic-fleet settings set maintenance_device ID`",
            s.owner_last_seen
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ),
        Some("never_seen") => format!("; the owner {owner:?} has never synced"),
        Some("unknown_device") => {
            format!("; the owner {owner:?} is not a registered device: fix maintenance_device")
        }
        _ => String::new(),
    }
}

/// Why maintenance is overdue: the steps that never succeeded, or when the oldest of the
/// three last successes ended.
fn overdue_reason(
    steps: &[(&str, &StepHistory); 3],
    oldest: Option<DateTime<Utc>>,
    period_seconds: Option<i64>,
) -> String {
    let missing: Vec<&str> = steps
        .iter()
        .filter(|(_, h)| h.last_success_at.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        format!(
            "the last complete maintenance ended {}, more than twice the schedule's period \
             ({}s) ago",
            oldest.map(|t| t.to_rfc3339()).unwrap_or_default(),
            period_seconds.unwrap_or(0)
        )
    } else {
        format!("{} never succeeded", missing.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, d, 3, 0, 0).unwrap()
    }

    fn ok_step(t: DateTime<Utc>) -> StepHistory {
        StepHistory {
            last_success_at: Some(t),
            last_status: Some("success".into()),
            last_run_at: Some(t),
            ..Default::default()
        }
    }

    fn base() -> MaintenanceStatus {
        MaintenanceStatus {
            owner: Some("nas".into()),
            owner_state: Some("online"),
            owner_last_seen: Some(at(20)),
            schedule: Some("@weekly".into()),
            period_seconds: Some(7 * 86400),
            last_forget: ok_step(at(10)),
            last_prune: ok_step(at(10)),
            last_check: ok_step(at(10)),
            verdict: "ok",
            reason: String::new(),
            repositories: Vec::new(),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(&base(), at(20)).0, "ok");
        assert_eq!(judge(&base(), at(25)).0, "overdue");
        let mut s = base();
        s.last_prune.last_status = Some("failed".into());
        s.last_prune.last_error = Some("boom".into());
        let (v, r) = judge(&s, at(11));
        assert_eq!(v, "failing");
        assert!(r.contains("prune") && r.contains("boom"), "{r}");
        let mut s = base();
        s.owner = None;
        assert_eq!(judge(&s, at(11)).0, "not_configured");
        let mut s = base();
        s.last_forget = StepHistory::default();
        s.last_prune = StepHistory::default();
        s.last_check = StepHistory::default();
        assert_eq!(judge(&s, at(11)).0, "never_run");
        // A fresh owner that syncs is fine; one that is unknown or never synced is not.
        s.verdict = "never_run";
        assert!(!s.needs_attention());
        for state in ["unknown_device", "never_seen"] {
            s.owner_state = Some(state);
            assert!(s.needs_attention(), "{state}");
        }
        let mut s = base();
        s.last_check = StepHistory::default();
        assert_eq!(judge(&s, at(11)).0, "overdue");
        let mut s = base();
        s.owner_state = Some("offline");
        let (v, r) = judge(&s, at(11));
        assert_eq!(v, "ok");
        assert!(r.contains("offline") && r.contains("nas"), "{r}");
    }

    #[test]
    fn a_repository_that_needs_attention_makes_the_whole_need_it() {
        let mut top = base();
        assert!(!top.needs_attention());
        let mut repo = base();
        repo.last_prune.last_status = Some("failed".into());
        (repo.verdict, repo.reason) = judge(&repo, at(11));
        top.repositories.push(RepositoryMaintenance::new(
            RepositoryIdent {
                label: "0123456789ab".into(),
                maintainer: Some("laptop".into()),
                ..Default::default()
            },
            repo,
        ));
        assert!(top.needs_attention());
        assert_eq!(top.repositories[0].verdict, "failing");
    }

    #[test]
    fn merged_histories_take_the_newest() {
        let mut a = ok_step(at(10));
        let mut failed = ok_step(at(5));
        failed.last_status = Some("failed".into());
        failed.last_run_at = Some(at(12));
        a.merge(&failed);
        assert_eq!(a.last_status.as_deref(), Some("failed"));
        assert_eq!(a.last_success_at, Some(at(10)));
        let mut empty = StepHistory::default();
        empty.merge(&ok_step(at(3)));
        assert_eq!(empty.last_success_at, Some(at(3)));
    }
}
