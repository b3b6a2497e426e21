//! What a device should have installed, computed from the database: shared by every backend.
//! Which of its schedules are usable, where each stands (upcoming, due, missed), and the
//! `next_run_at` sync stores for it.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::calendar::Schedule;
use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;

/// One enabled job with its valid enabled schedules.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub job: Job,
    pub schedules: Vec<(ScheduleRow, Schedule)>,
}

/// Everything a backend needs to render its artifacts.
#[derive(Debug, Clone)]
pub struct Plan {
    pub device_id: String,
    pub binary: std::path::PathBuf,
    pub config_path: std::path::PathBuf,
    /// Variables every unit sets for the program it starts, so that a timer run uses what the
    /// sync run by hand used (a state directory given by environment). Task Scheduler actions
    /// cannot set variables; sync warns there instead.
    pub environment: Vec<(String, String)>,
    pub tz: Tz,
    pub now: DateTime<Utc>,
    pub jitter_seconds: u64,
    pub sync_interval_seconds: u64,
    pub jobs: Vec<JobPlan>,
    /// The maintenance schedule when this device is the `maintenance_device` (only that
    /// device installs the maintenance timer/task).
    pub maintenance: Option<crate::domain::calendar::CronExpr>,
}

/// Where a schedule stands relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// The stored next run lies ahead (or was never computed): recompute it.
    Upcoming,
    /// A run started at or after the stored slot: recompute it.
    Done,
    /// Past, but within the grace period: the timer is about to run it; leave it alone.
    Due,
    /// Past the grace period with no run since: a catch-up run is needed.
    Missed,
}

/// Classifies a schedule's stored `next_run_at` given the latest run start of its job.
pub fn slot_state(
    next_run_at: Option<DateTime<Utc>>,
    latest_run_start: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> SlotState {
    let Some(slot) = next_run_at else {
        return SlotState::Upcoming;
    };
    if slot > now {
        return SlotState::Upcoming;
    }
    if latest_run_start.is_some_and(|start| start >= slot) {
        return SlotState::Done;
    }
    if now - slot > grace {
        SlotState::Missed
    } else {
        SlotState::Due
    }
}

/// The `next_run_at` sync stores for a schedule in `state`: pending slots are kept (so a
/// missed slot stays visible until a run covers it), others are recomputed.
pub fn next_to_store(
    state: SlotState,
    row: &ScheduleRow,
    schedule: &Schedule,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    match state {
        SlotState::Due | SlotState::Missed => row.next_run_at,
        // An interval schedule that never ran keeps the first slot it was given (when it was
        // added, or by the first sync): recomputing `now + interval` at every sync would move
        // the slot ahead of the timer forever, and the timer's runs would find nothing due.
        // A slot further ahead than one interval (the interval was shortened) is recomputed.
        SlotState::Upcoming
            if row.last_run_at.is_none()
                && matches!(schedule, Schedule::Interval { .. })
                && row
                    .next_run_at
                    .zip(crate::domain::schedule::next_run(schedule, None, now, tz))
                    .is_some_and(|(stored, latest)| stored <= latest) =>
        {
            row.next_run_at
        }
        SlotState::Upcoming | SlotState::Done => {
            crate::domain::schedule::next_run(schedule, row.last_run_at, now, tz).map(|next| {
                // An interval schedule whose last run lies far back: the next run is due now,
                // not in the past (it would otherwise be reported missed over and over).
                if next < now { now } else { next }
            })
        }
    }
}

/// A schedule the plan leaves out, and why: a failed item of the sync report.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub job_id: Uuid,
    pub job_name: String,
    /// `schedule <id>`.
    pub item: String,
    pub error: String,
}

/// The `next_run_at` sync stores for one schedule.
#[derive(Debug, Clone, Copy)]
pub struct NextRun {
    pub schedule_id: i32,
    pub next: Option<DateTime<Utc>>,
    /// What the row holds now: when it equals `next` there is nothing to write.
    pub stored: Option<DateTime<Utc>>,
}

/// What the device's enabled jobs and schedules ask for at one instant.
#[derive(Debug, Default)]
pub struct Slots {
    /// The jobs with at least one usable schedule, each schedule at its new `next_run_at`.
    pub jobs: Vec<JobPlan>,
    /// Each job with a missed slot, with its earliest missed slot.
    pub missed: Vec<(Job, DateTime<Utc>)>,
    /// One per usable schedule, in the order of the rows.
    pub next_runs: Vec<NextRun>,
    pub skipped: Vec<Skipped>,
}

/// Sorts the schedules under their jobs, leaves out those that cannot be used, and works out
/// where each stands at `now`: its `next_run_at` to store, and the jobs whose slot passed more
/// than `grace` ago without a run (`latest` holds each job's latest run start).
pub fn plan_jobs(
    jobs: Vec<Job>,
    schedules: Vec<ScheduleRow>,
    latest: &HashMap<Uuid, DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
    grace: Duration,
) -> Slots {
    let mut by_job: HashMap<Uuid, Vec<ScheduleRow>> = HashMap::new();
    for s in schedules {
        by_job.entry(s.job_id).or_default().push(s);
    }
    let mut slots = Slots::default();
    for job in jobs {
        let rows = by_job.remove(&job.id).unwrap_or_default();
        let mut valid = Vec::new();
        let mut earliest_missed: Option<DateTime<Utc>> = None;
        for row in rows {
            let schedule = match usable_schedule(&job, &row, now, tz) {
                Ok(s) => s,
                Err(skipped) => {
                    slots.skipped.push(skipped);
                    continue;
                }
            };
            let state = slot_state(row.next_run_at, latest.get(&job.id).copied(), now, grace);
            if state == SlotState::Missed
                && let Some(slot) = row.next_run_at
            {
                earliest_missed =
                    Some(earliest_missed.map_or(slot, |e: DateTime<Utc>| e.min(slot)));
            }
            let next = next_to_store(state, &row, &schedule, now, tz);
            slots.next_runs.push(NextRun {
                schedule_id: row.id,
                next,
                stored: row.next_run_at,
            });
            // Renderers anchor interval timers and tasks at the slot stored for it.
            let mut row = row;
            row.next_run_at = next;
            valid.push((row, schedule));
        }
        if let Some(slot) = earliest_missed {
            slots.missed.push((job.clone(), slot));
        }
        if !valid.is_empty() {
            slots.jobs.push(JobPlan {
                job,
                schedules: valid,
            });
        }
    }
    slots
}

/// The row's schedule, or why it is left out: it cannot be read (stored by SQL), or it is a
/// cron expression that never fires. Either stays left out until it is fixed.
fn usable_schedule(
    job: &Job,
    row: &ScheduleRow,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<Schedule, Skipped> {
    let skipped = |error: String| Skipped {
        job_id: job.id,
        job_name: job.name.clone(),
        item: format!("schedule {}", row.id),
        error,
    };
    let schedule = row.schedule().map_err(|e| {
        skipped(format!(
            "job {:?} ({}): {e}; the schedule is skipped until it is fixed",
            job.name, job.id
        ))
    })?;
    if let Schedule::Cron(expr) = &schedule
        && expr.next_after(now, tz).is_none()
    {
        return Err(skipped(format!(
            "job {:?} ({}): schedule {}: cron expression {:?} never fires (no such \
             date); fix it with `restic-fleet schedule rm` and `schedule add`",
            job.name,
            job.id,
            row.id,
            expr.as_str()
        )));
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, h, m, 0).unwrap()
    }

    #[test]
    fn slot_states() {
        let g = Duration::minutes(15);
        assert_eq!(slot_state(None, None, t(3, 0), g), SlotState::Upcoming);
        assert_eq!(
            slot_state(Some(t(4, 0)), None, t(3, 0), g),
            SlotState::Upcoming
        );
        assert_eq!(slot_state(Some(t(2, 0)), None, t(2, 10), g), SlotState::Due);
        assert_eq!(
            slot_state(Some(t(2, 0)), None, t(2, 16), g),
            SlotState::Missed
        );
        assert_eq!(
            slot_state(Some(t(2, 0)), Some(t(1, 0)), t(3, 0), g),
            SlotState::Missed,
            "a run before the slot does not cover it"
        );
        assert_eq!(
            slot_state(Some(t(2, 0)), Some(t(2, 0)), t(3, 0), g),
            SlotState::Done
        );
    }

    fn row(last: Option<DateTime<Utc>>, next: Option<DateTime<Utc>>) -> ScheduleRow {
        ScheduleRow {
            id: 1,
            job_id: Uuid::nil(),
            schedule_type: "interval".into(),
            cron_expression: None,
            interval_seconds: Some(3600),
            enabled: true,
            last_run_at: last,
            next_run_at: next,
        }
    }

    #[test]
    fn a_never_run_interval_keeps_its_first_slot() {
        let hourly = Schedule::Interval { seconds: 3600 };
        let tz = chrono_tz::UTC;
        let now = t(3, 0);
        // Sync after sync, the slot stays where it was first put.
        let r = row(None, Some(t(3, 40)));
        assert_eq!(
            next_to_store(SlotState::Upcoming, &r, &hourly, now, &tz),
            Some(t(3, 40))
        );
        // No slot yet, or one further than an interval away: now + interval.
        for r in [row(None, None), row(None, Some(t(9, 0)))] {
            assert_eq!(
                next_to_store(SlotState::Upcoming, &r, &hourly, now, &tz),
                Some(t(4, 0))
            );
        }
        // After a run: last run + interval.
        let r = row(Some(t(2, 30)), Some(t(3, 30)));
        assert_eq!(
            next_to_store(SlotState::Upcoming, &r, &hourly, now, &tz),
            Some(t(3, 30))
        );
    }
}
