//! Schedules: standard 5-field cron expressions (Vixie cron semantics, evaluated in a time
//! zone) and fixed intervals, plus the systemd OnCalendar= lines that fire at exactly the
//! same instants.

pub mod cron;
pub mod systemd;
pub mod task_scheduler;

pub use cron::{CronError, CronExpr};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

/// How far ahead dated compensation lines (daylight-saving changes) are generated. Every sync
/// regenerates them, so the horizon only has to outlive the longest time a machine stays off.
pub const HORIZON_DAYS: u32 = 400;

/// The longest expression `schedules.cron_expression` (VARCHAR(255)) holds.
pub const MAX_CRON_CHARS: usize = 255;

/// Parses a cron expression that is about to be stored: valid, short enough for its column,
/// and able to fire at all (`0 0 30 2 *` never does, and would make every later sync fail).
/// The error is one sentence naming the expression and the fix.
pub fn storable_cron(expr: &str) -> Result<CronExpr, String> {
    let n = expr.trim().chars().count();
    if n > MAX_CRON_CHARS {
        return Err(format!(
            "the cron expression {:?}... is {n} characters long, more than the {MAX_CRON_CHARS} \
             a schedule holds; write it shorter with ranges and steps (1-30/2) or split it into \
             several schedules",
            expr.trim().chars().take(40).collect::<String>()
        ));
    }
    let parsed = CronExpr::parse(expr).map_err(|e| e.to_string())?;
    if !parsed.can_fire() {
        return Err(format!(
            "the cron expression {:?} can never fire: none of its days of the month exists in \
             its months (like 30 February); fix the day-of-month or month field",
            parsed.as_str()
        ));
    }
    Ok(parsed)
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A crontab expression evaluated in a time zone.
    Cron(CronExpr),
    /// Every `seconds` seconds, counted from the previous run.
    Interval { seconds: u64 },
}

impl Schedule {
    /// The next run strictly after `last`: for cron the next fire instant in `tz`, for an
    /// interval `last + seconds` (`None` for a zero interval or on overflow).
    pub fn next_after(&self, last: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(expr) => expr.next_after(last, tz),
            Schedule::Interval { seconds } => interval_next(last, *seconds),
        }
    }

    /// The next `n` runs after `last`.
    pub fn upcoming(&self, last: DateTime<Utc>, tz: &Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = last;
        while out.len() < n {
            match self.next_after(cursor, tz) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }
}

/// `last + seconds`; `None` when `seconds` is zero or the result is out of range.
pub fn interval_next(last: DateTime<Utc>, seconds: u64) -> Option<DateTime<Utc>> {
    if seconds == 0 {
        return None;
    }
    let secs = i64::try_from(seconds).ok()?;
    last.checked_add_signed(Duration::try_seconds(secs)?)
}

/// `t` rounded up to a whole second: StartBoundary and OnCalendar= have no fractions, and a
/// trigger must not fire before the slot it stands for.
pub fn whole_second_at_or_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let down = chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t);
    if down < t {
        down + chrono::Duration::seconds(1)
    } else {
        down
    }
}

/// Whether this platform's scheduler entry for these schedules is the documented fallback: a
/// single entry at the next instant (systemd: lines generated inside a repeated hour that
/// cannot be exact; Windows: more than 48 triggers). Such an entry must be re-registered after
/// every occurrence, which `run` does by starting a sync.
pub fn needs_reregistration(
    schedules: &[Schedule],
    tz: &chrono_tz::Tz,
    now: DateTime<Utc>,
) -> bool {
    let horizon = HORIZON_DAYS;
    if cfg!(windows) {
        task_scheduler::job_triggers(schedules, &[], tz, now, horizon).fallback
    } else {
        schedules.iter().any(|s| match s {
            Schedule::Cron(expr) => systemd::on_calendar_plan(expr, tz, now, horizon).fallback,
            Schedule::Interval { .. } => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn interval_schedule() {
        let t = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let s = Schedule::Interval { seconds: 3600 };
        assert_eq!(
            s.upcoming(t, &chrono_tz::UTC, 2),
            vec![t + Duration::hours(1), t + Duration::hours(2)]
        );
        assert_eq!(interval_next(t, 0), None);
        assert_eq!(interval_next(t, u64::MAX), None);
        let c = Schedule::Cron(CronExpr::parse("@daily").unwrap());
        assert_eq!(
            c.next_after(t, &chrono_tz::UTC),
            Some(t + Duration::days(1))
        );
    }

    #[test]
    fn fallback_entries_ask_for_reregistration() {
        let tz: chrono_tz::Tz = "Europe/Prague".parse().unwrap();
        let cron = |e: &str| Schedule::Cron(CronExpr::parse(e).unwrap());
        // 02:10 CET on 2027-10-31 is inside the second pass of the repeated hour; the fixed-time
        // job still has 02:30 left in it, which systemd would fire a second time.
        let second_pass = Utc.with_ymd_and_hms(2027, 10, 31, 1, 10, 0).unwrap();
        let ordinary = Utc.with_ymd_and_hms(2027, 6, 1, 12, 0, 0).unwrap();
        assert!(!needs_reregistration(
            &[cron("0,30 2 * * *")],
            &tz,
            ordinary
        ));
        assert!(!needs_reregistration(
            &[Schedule::Interval { seconds: 60 }],
            &tz,
            second_pass
        ));
        if !cfg!(windows) {
            assert!(needs_reregistration(
                &[cron("0,30 2 * * *")],
                &tz,
                second_pass
            ));
        }
    }
}
