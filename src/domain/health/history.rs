//! A job's recent history, day by day, as the HTML report's heat map shows it: the outcome of
//! each UTC day of a window (`success`, `warning`, `failed`, `missed` when a schedule expected a
//! run and none happened, `none` when nothing was scheduled or due), decided from the runs the
//! store summed up per day and the instants the job's schedules fired at.
//!
//! Days are UTC days so that one column is the same 24 hours for every device of the fleet; a
//! cron schedule still fires in its device's time zone. A schedule expects runs only from its
//! creation (and its job's) until `now` minus the device's grace, so the part of today that is
//! still to come is never "missed".

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::CronExpr;

/// The outcome of one day of one job (or the worst of a device's jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DayOutcome {
    /// Nothing was scheduled or due, and nothing finished.
    Nothing,
    Success,
    Warning,
    /// A schedule expected a run and no run finished (cancelled runs do not count).
    Missed,
    Failed,
}

impl DayOutcome {
    /// The name the page uses for the outcome (its CSS class and its legend).
    pub fn as_str(self) -> &'static str {
        match self {
            DayOutcome::Nothing => "none",
            DayOutcome::Success => "success",
            DayOutcome::Warning => "warning",
            DayOutcome::Missed => "missed",
            DayOutcome::Failed => "failed",
        }
    }

    /// The outcome in words, for the page's tooltips.
    pub fn label(self) -> &'static str {
        match self {
            DayOutcome::Nothing => "nothing scheduled",
            DayOutcome::Success => "success",
            DayOutcome::Warning => "success with warnings",
            DayOutcome::Missed => "scheduled but missed",
            DayOutcome::Failed => "failed",
        }
    }

    /// One character per outcome, so that the strip reads without colour (and without CSS).
    pub fn glyph(self) -> char {
        match self {
            DayOutcome::Nothing => '·',
            DayOutcome::Success => '●',
            DayOutcome::Warning => '▲',
            DayOutcome::Missed => '○',
            DayOutcome::Failed => '✖',
        }
    }
}

/// How many days one set of [`DayMasks`] covers: the bits of a signed 64-bit integer that
/// shifts leave positive.
pub const DAYS_PER_MASK: u32 = 63;

/// The runs of one job over [`DAYS_PER_MASK`] days, as the store sums them up: bit `i` of each
/// mask is day `first + i`, set when a run of that day failed, succeeded with warnings, or
/// succeeded. A day with only cancelled runs, or a run still in progress, has no bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct DayMasks {
    pub first: usize,
    pub failed: i64,
    pub warned: i64,
    pub succeeded: i64,
}

impl DayMasks {
    /// Writes what ran on each of its days into `ran` (indexed by day of the window): the
    /// worst of the day's finished runs.
    pub fn fill(&self, ran: &mut [Option<DayOutcome>]) {
        for bit in 0..DAYS_PER_MASK as usize {
            let Some(slot) = ran.get_mut(self.first + bit) else {
                break;
            };
            let on = |mask: i64| (mask >> bit) & 1 == 1;
            *slot = if on(self.failed) {
                Some(DayOutcome::Failed)
            } else if on(self.warned) {
                Some(DayOutcome::Warning)
            } else if on(self.succeeded) {
                Some(DayOutcome::Success)
            } else {
                *slot
            };
        }
    }
}

/// The days of a report: `days` UTC days ending with the day of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: NaiveDate,
    pub days: u32,
}

impl Window {
    pub fn ending_at(now: DateTime<Utc>, days: u32) -> Window {
        let days = days.max(1);
        Window {
            first: now.date_naive() - Duration::days(i64::from(days) - 1),
            days,
        }
    }

    /// Midnight UTC at the start of the window.
    pub fn start(&self) -> DateTime<Utc> {
        self.first.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// Midnight UTC at the end of the window (the end of the day of `now`).
    pub fn end(&self) -> DateTime<Utc> {
        self.start() + Duration::days(i64::from(self.days))
    }

    /// The index of the day `t` falls on, if it is in the window.
    pub fn day_of(&self, t: DateTime<Utc>) -> Option<usize> {
        let d = (t.date_naive() - self.first).num_days();
        (0..i64::from(self.days)).contains(&d).then_some(d as usize)
    }

    /// The date of day `i`.
    pub fn date(&self, i: usize) -> NaiveDate {
        self.first + Duration::days(i as i64)
    }
}

/// The first fire instant of every day of the window, per cron expression and time zone,
/// computed once for all the jobs that share them.
#[derive(Debug, Default)]
pub struct FireMemo {
    days: HashMap<(String, Tz), Vec<Option<DateTime<Utc>>>>,
}

impl FireMemo {
    /// The first instant `expr` fires at on each day of `w` (in `tz`), one call to the cron
    /// engine per day that fires at all.
    pub fn first_fires(&mut self, expr: &CronExpr, tz: Tz, w: &Window) -> &[Option<DateTime<Utc>>] {
        self.days
            .entry((expr.as_str().to_string(), tz))
            .or_insert_with(|| {
                let mut out = vec![None; w.days as usize];
                let mut cursor = w.start() - Duration::seconds(1);
                while let Some(t) = expr.next_after(cursor, &tz) {
                    let Some(i) = w.day_of(t) else { break };
                    out[i] = Some(t);
                    // The rest of this day is of no interest: jump to the next one.
                    cursor = w.start() + Duration::days(i as i64 + 1) - Duration::seconds(1);
                }
                out
            })
    }
}

/// When runs were expected: from `since` (the later of the schedule's and the job's creation)
/// until `until` (now minus the device's grace).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Marks in `due` the days on which a cron schedule expected a run within `span`.
pub fn cron_due(
    memo: &mut FireMemo,
    expr: &CronExpr,
    tz: Tz,
    w: &Window,
    span: Span,
    due: &mut [bool],
) {
    let since_day = w.day_of(span.since);
    let fires = memo.first_fires(expr, tz, w);
    for (i, first) in fires.iter().enumerate() {
        let Some(first) = *first else { continue };
        let day_end = w.start() + Duration::days(i as i64 + 1);
        let fired = if Some(i) == since_day && first < span.since {
            // Created during the day: only an instant after the creation counts.
            expr.next_after(span.since, &tz).filter(|t| *t < day_end)
        } else {
            Some(first)
        };
        if fired.is_some_and(|t| t >= span.since && t <= span.until) {
            due[i] = true;
        }
    }
}

/// Marks in `due` the days on which an interval schedule was overdue within `span`: every day
/// from the one its next run fell due (an interval after the last run, or after `since`) until
/// the day of the next run, as long as no run finished.
pub fn interval_due(seconds: u64, w: &Window, span: Span, ran_on: &[bool], due: &mut [bool]) {
    let step = Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 2).max(1));
    let mut next_due = span.since.checked_add_signed(step);
    for (i, ran) in ran_on.iter().enumerate() {
        let day_start = w.start() + Duration::days(i as i64);
        let day_end = day_start + Duration::days(1);
        if *ran {
            // The run's time of day is not known here: counting from the start of its day
            // flags a miss at most one day early, never hides one.
            next_due = day_start.checked_add_signed(step);
        } else if next_due.is_some_and(|d| d < day_end && d <= span.until) {
            due[i] = true;
        }
    }
}

/// The outcome of each day from what ran (per day, `None` when nothing finished) and which days
/// a schedule expected a run.
pub fn outcomes(ran: &[Option<DayOutcome>], due: &[bool]) -> Vec<DayOutcome> {
    ran.iter()
        .zip(due)
        .map(|(r, d)| match (r, d) {
            (Some(o), _) => *o,
            (None, true) => DayOutcome::Missed,
            (None, false) => DayOutcome::Nothing,
        })
        .collect()
}

/// The worst outcome of each day over several rows (a device's jobs).
pub fn worst(rows: &[&[DayOutcome]], days: usize) -> Vec<DayOutcome> {
    (0..days)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i).copied())
                .max()
                .unwrap_or(DayOutcome::Nothing)
        })
        .collect()
}

/// Consecutive days with the same outcome: `(outcome, first day, number of days)`.
pub fn segments(days: &[DayOutcome]) -> Vec<(DayOutcome, usize, usize)> {
    let mut out: Vec<(DayOutcome, usize, usize)> = Vec::new();
    for (i, o) in days.iter().enumerate() {
        match out.last_mut() {
            Some((last, _, n)) if last == o => *n += 1,
            _ => out.push((*o, i, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// 2026-11-02 is a Monday; a window of 14 days ending on Sunday 2026-11-15.
    fn two_weeks() -> Window {
        Window::ending_at(at(2026, 11, 15, 12), 14)
    }

    #[test]
    fn window_days() {
        let w = two_weeks();
        assert_eq!(w.first, NaiveDate::from_ymd_opt(2026, 11, 2).unwrap());
        assert_eq!(w.day_of(at(2026, 11, 2, 0)), Some(0));
        assert_eq!(w.day_of(at(2026, 11, 15, 23)), Some(13));
        assert_eq!(w.day_of(at(2026, 11, 16, 0)), None);
        assert_eq!(w.day_of(at(2026, 11, 1, 23)), None);
        assert_eq!(w.end(), at(2026, 11, 16, 0));
    }

    #[test]
    fn weekday_cron_is_due_on_weekdays_only_and_not_later_today() {
        let w = two_weeks();
        let expr = CronExpr::parse("0 2 * * 1-5").unwrap();
        let mut due = vec![false; 14];
        let span = Span {
            since: at(2026, 1, 1, 0),
            until: at(2026, 11, 15, 12),
        };
        cron_due(
            &mut FireMemo::default(),
            &expr,
            chrono_tz::UTC,
            &w,
            span,
            &mut due,
        );
        let expected: Vec<bool> = (0..14).map(|i| i % 7 < 5).collect();
        assert_eq!(due, expected);

        // Daily at 13:00: today's instant (after `until`) is not due yet.
        let daily = CronExpr::parse("0 13 * * *").unwrap();
        let mut due = vec![false; 14];
        cron_due(
            &mut FireMemo::default(),
            &daily,
            chrono_tz::UTC,
            &w,
            span,
            &mut due,
        );
        assert!(due[..13].iter().all(|d| *d));
        assert!(!due[13]);
    }

    #[test]
    fn cron_is_not_due_before_the_schedule_existed() {
        let w = two_weeks();
        let expr = CronExpr::parse("0 2,20 * * *").unwrap();
        let mut due = vec![false; 14];
        // Created on day 5 at 10:00: that day's 20:00 counts, its 02:00 does not exist yet.
        let span = Span {
            since: at(2026, 11, 7, 10),
            until: at(2026, 11, 15, 12),
        };
        cron_due(
            &mut FireMemo::default(),
            &expr,
            chrono_tz::UTC,
            &w,
            span,
            &mut due,
        );
        assert_eq!(due.iter().position(|d| *d), Some(5));
        let mut due = vec![false; 14];
        let late = Span {
            since: at(2026, 11, 7, 21),
            ..span
        };
        cron_due(
            &mut FireMemo::default(),
            &expr,
            chrono_tz::UTC,
            &w,
            late,
            &mut due,
        );
        assert_eq!(due.iter().position(|d| *d), Some(6));
    }

    #[test]
    fn cron_fires_in_the_device_time_zone() {
        // 00:30 in Prague is 23:30 UTC the day before (winter time).
        let w = two_weeks();
        let expr = CronExpr::parse("30 0 * * 1").unwrap();
        let mut due = vec![false; 14];
        let span = Span {
            since: at(2026, 1, 1, 0),
            until: w.end(),
        };
        cron_due(
            &mut FireMemo::default(),
            &expr,
            chrono_tz::Europe::Prague,
            &w,
            span,
            &mut due,
        );
        let days: Vec<usize> = (0..14).filter(|i| due[*i]).collect();
        assert_eq!(days, vec![6, 13], "Sundays in UTC");
    }

    #[test]
    fn interval_longer_than_a_day_is_due_once_overdue() {
        let w = two_weeks();
        let span = Span {
            since: at(2026, 1, 1, 0),
            until: at(2026, 11, 15, 12),
        };
        // Every 2 days; ran on day 0 and day 2, then never again: due from day 4 on.
        let mut ran_on = vec![false; 14];
        ran_on[0] = true;
        ran_on[2] = true;
        let mut due = vec![false; 14];
        interval_due(2 * 86400, &w, span, &ran_on, &mut due);
        let days: Vec<usize> = (0..14).filter(|i| due[*i]).collect();
        assert_eq!(days, (4..14).collect::<Vec<_>>());
        // Hourly: every day without a run is due.
        let mut due = vec![false; 14];
        interval_due(3600, &w, span, &ran_on, &mut due);
        assert!((0..14).all(|i| ran_on[i] != due[i]), "{due:?}");
    }

    #[test]
    fn outcomes_worst_and_segments() {
        use DayOutcome::*;
        let ran = [Some(Success), None, None, Some(Failed), Some(Warning)];
        let due = [true, true, false, true, true];
        let o = outcomes(&ran, &due);
        assert_eq!(o, vec![Success, Missed, Nothing, Failed, Warning]);
        let other = vec![Warning, Success, Success, Success, Failed];
        assert_eq!(
            worst(&[&o, &other], 5),
            vec![Warning, Missed, Success, Failed, Failed]
        );
        assert_eq!(
            segments(&[Success, Success, Missed, Success]),
            vec![(Success, 0, 2), (Missed, 2, 1), (Success, 3, 1)]
        );
    }

    #[test]
    fn masks_give_the_worst_run_of_each_day() {
        use DayOutcome::*;
        let mut ran = vec![None; 70];
        let m = DayMasks {
            first: 63,
            failed: 0b0100,
            warned: 0b0110,
            succeeded: 0b1111 | 1 << 62,
        };
        m.fill(&mut ran);
        assert_eq!(
            ran[63..].to_vec(),
            vec![
                Some(Success),
                Some(Warning),
                Some(Failed),
                Some(Success),
                None,
                None,
                None
            ]
        );
        assert!(ran[..63].iter().all(Option::is_none));
        let mut ran = vec![None; 63];
        m.fill(&mut ran);
        assert!(ran.iter().all(Option::is_none));
        DayMasks { first: 0, ..m }.fill(&mut ran);
        assert_eq!(ran[62], Some(Success));
    }
}
