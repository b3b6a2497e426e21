//! Step 1 of `run`: resolve the job and everything restic needs, from the database or, when
//! the database cannot be reached, from the local copy ([`crate::local::copy`]).
//!
//! Both sources yield the same [`ResolvedJob`] and go through the same refusals (unknown job,
//! another device's job, disabled job or device, missing repository settings), so a run behaves
//! alike online and offline. The due check of scheduled runs ([`due`]) is plain Rust over
//! schedule rows, whichever source they came from.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;
use crate::domain::settings::Settings;
use crate::local::config::Config;
use crate::local::copy::LocalCopy;
use crate::usage_err;

/// Where a resolved job came from.
#[derive(Debug, Clone)]
pub enum JobSource {
    Database,
    /// The database could not be reached (`reason`); the local copy written at `written_at`.
    LocalCopy {
        reason: String,
        written_at: DateTime<Utc>,
        age: String,
    },
}

/// Everything `run` needs to execute a job, whatever its source.
#[derive(Debug, Clone)]
pub struct ResolvedJob {
    pub job: Job,
    pub device_id: String,
    pub settings: Settings,
    /// The job's repository: `repository_url` expanded for the job (see
    /// [`crate::domain::repository::of_job`]); empty when that failed.
    pub repository: String,
    /// Why the job's repository URL could not be made (one sentence); the run then fails before
    /// restic starts, and is recorded.
    pub repository_error: Option<String>,
    pub password: String,
    pub tz: chrono_tz::Tz,
    pub max_concurrent: u64,
    pub wait: Duration,
    pub source: JobSource,
    /// The job's enabled schedules as the source had them (the local copy's, offline; online
    /// the due check reads them again under the job lock).
    pub schedules: Vec<ScheduleRow>,
}

/// Resolves the job from the database.
pub async fn from_database(
    conn: &mut PgConnection,
    config: &Config,
    job_id: Uuid,
    force: bool,
) -> anyhow::Result<ResolvedJob> {
    let crate::store::jobs::JobAndDevice {
        job,
        device_enabled,
    } = crate::store::jobs::find_with_device(&mut *conn, job_id, &config.device_id)
        .await?
        .ok_or_else(|| {
            usage_err!(
                "no backup job with id {job_id} exists; list this device's jobs with \
             `restic-fleet job list --device {}`",
                config.device_id
            )
        })?;
    let settings = crate::store::settings::load(&mut *conn, &config.device_id).await?;
    let schedules = job_schedules(conn, job_id).await?;
    finish(
        job,
        device_enabled,
        settings,
        schedules,
        config,
        force,
        JobSource::Database,
    )
}

/// Resolves the job from the local copy, because the database could not be reached.
pub fn from_local_copy(
    state: &crate::local::state::StateDir,
    config: &Config,
    job_id: Uuid,
    force: bool,
    reason: &str,
) -> anyhow::Result<ResolvedJob> {
    let copy = LocalCopy::read(state, &config.device_id).map_err(|why| {
        crate::domain::exit::Failure::failed(format!(
            "the database cannot be reached ({reason}) and {why}; the backup needs one sync \
             while the database is reachable"
        ))
    })?;
    let now = Utc::now();
    let Some(job) = copy.job(job_id).cloned() else {
        return Err(usage_err!(
            "job {job_id} is not in the local copy of this device's jobs (written {} ago): the \
             database cannot be reached, so only this device's jobs known at the last sync can \
             run; check the UUID, or run `restic-fleet sync` once the database is back",
            copy.age(now)
        ));
    };
    let schedules = copy
        .schedules
        .iter()
        .filter(|s| s.job_id == job_id && s.enabled)
        .cloned()
        .collect();
    let source = JobSource::LocalCopy {
        reason: reason.to_string(),
        written_at: copy.written_at,
        age: copy.age(now),
    };
    finish(
        job,
        Some(copy.device_enabled),
        copy.settings(),
        schedules,
        config,
        force,
        source,
    )
}

/// The job's enabled schedules, read now (under the job lock, for the due check).
pub async fn job_schedules(
    conn: &mut PgConnection,
    job_id: Uuid,
) -> anyhow::Result<Vec<ScheduleRow>> {
    Ok(crate::store::schedules::enabled_of_job(conn, job_id).await?)
}

/// The refusals every source shares, then the settings restic needs.
fn finish(
    job: Job,
    device_enabled: Option<bool>,
    settings: Settings,
    schedules: Vec<ScheduleRow>,
    config: &Config,
    force: bool,
    source: JobSource,
) -> anyhow::Result<ResolvedJob> {
    let job_id = job.id;
    if job.device_id != config.device_id {
        return Err(usage_err!(
            "job {job_id} ({:?}) belongs to device {:?}, not to this device {:?}; run it on that \
             device, or move it with `restic-fleet job edit {job_id} --device {}`",
            job.name,
            job.device_id,
            config.device_id,
            config.device_id
        ));
    }
    if !job.enabled && !force {
        return Err(usage_err!(
            "job {job_id} ({:?}) is disabled; enable it with `restic-fleet job enable {job_id}` or \
             pass --force to run it once anyway",
            job.name
        ));
    }
    if device_enabled == Some(false) && !force {
        return Err(usage_err!(
            "this device {:?} is disabled; enable it with `restic-fleet device enable {}` or \
             pass --force to run the job once anyway",
            config.device_id,
            config.device_id
        ));
    }
    if settings.get("repository_url").is_none() {
        return Err(usage_err!(
            "the repository_url setting is empty; set it with `restic-fleet settings set \
             repository_url URL` (e.g. sftp:user@host:/srv/restic or /srv/{{device_id}})"
        ));
    }
    // A template the job's values do not fit (no origin, an origin with a '/') fails the run,
    // recorded with the sentence, rather than refusing it unrecorded: the schedule keeps
    // firing and the failure shows in `status` until the job or the setting is fixed.
    let (repository, repository_error) =
        match crate::domain::repository::of_job(&settings, &job.place()) {
            Ok(r) => (r.url, None),
            Err(e) => (String::new(), Some(e)),
        };
    let password = settings
        .get("repository_password")
        .map(str::to_string)
        .ok_or_else(|| {
            usage_err!(
                "the repository_password setting is empty; set it with `restic-fleet settings set \
             repository_password -` (reads it from standard input)"
            )
        })?;
    let tz = settings.timezone()?;
    let max_concurrent = settings.get_u64("max_concurrent_backups", 1)?.max(1);
    let wait = Duration::from_secs(settings.get_u64("concurrency_wait_seconds", 3600)?);
    Ok(ResolvedJob {
        job,
        device_id: config.device_id.clone(),
        settings,
        repository,
        repository_error,
        password,
        tz,
        max_concurrent,
        wait,
        source,
        schedules,
    })
}

/// Whether a scheduled run has a slot to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The job has enabled schedules at all (a job without any is always due).
    pub has_schedules: bool,
    pub due: bool,
    pub next: Option<DateTime<Utc>>,
}

/// A timer firing or a catch-up run for a slot another run already covered (systemd's
/// Persistent= catch-up at boot racing sync's catch-up) must not back up twice: under the job
/// lock, a non-manual run goes ahead only when one of the job's schedules is due. An interval
/// timer (OnUnitActiveSec=, Task Scheduler repetition) keeps its own rhythm, which manual and
/// catch-up runs do not reset, so an interval slot counts as due up to half an interval early:
/// the timer's run then realigns `next_run_at` with it, and no two scheduled backups of an
/// interval job are less than half an interval apart.
///
/// `last_run` is this device's own note of the job's latest run start (written by every run,
/// recorded live or spooled): when it is newer than a schedule's `last_run_at`, the slot it
/// covered is taken as covered even though the database (or the local copy) does not know yet.
pub fn due(
    schedules: &[ScheduleRow],
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &chrono_tz::Tz,
) -> Due {
    let horizon = now + chrono::Duration::seconds(5);
    let mut any_due = false;
    let mut min_next: Option<DateTime<Utc>> = None;
    for row in schedules.iter().filter(|s| s.enabled) {
        let parsed = row.schedule().ok();
        let next = match (last_run, &parsed) {
            (Some(l), Some(sched)) if row.last_run_at.is_none_or(|r| r < l) => {
                crate::domain::schedule::next_run(sched, Some(l), l, tz)
            }
            _ => row.next_run_at,
        };
        let early = match (row.schedule_type.as_str(), row.interval_seconds) {
            ("interval", Some(secs)) if secs > 0 => {
                chrono::Duration::milliseconds(i64::from(secs) * 500)
            }
            _ => chrono::Duration::zero(),
        };
        if next.is_none_or(|n| n <= horizon + early) {
            any_due = true;
        }
        if let Some(n) = next {
            min_next = Some(min_next.map_or(n, |m| m.min(n)));
        }
    }
    Due {
        has_schedules: schedules.iter().any(|s| s.enabled),
        due: any_due,
        next: min_next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cron(expr: &str, next: Option<DateTime<Utc>>) -> ScheduleRow {
        ScheduleRow {
            id: 1,
            job_id: Uuid::nil(),
            schedule_type: "cron".into(),
            cron_expression: Some(expr.into()),
            interval_seconds: None,
            enabled: true,
            last_run_at: None,
            next_run_at: next,
        }
    }

    #[test]
    fn a_slot_covered_by_this_devices_own_run_is_not_due_again() {
        let tz = chrono_tz::UTC;
        let slot = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
        let now = slot + chrono::Duration::minutes(3);
        let rows = [cron("0 * * * *", Some(slot))];
        assert!(due(&rows, None, now, &tz).due, "the stored slot has passed");
        // A run started at the slot (recorded offline, the copy still has the old slot).
        let covered = due(&rows, Some(slot + chrono::Duration::seconds(1)), now, &tz);
        assert!(!covered.due);
        assert_eq!(covered.next, Some(slot + chrono::Duration::hours(1)));
        assert!(!due(&[], None, now, &tz).has_schedules);
    }
}
