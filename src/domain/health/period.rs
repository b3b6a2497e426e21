//! The expected time between a job's runs, from its enabled schedules: the smallest interval of
//! its interval schedules, or, for cron schedules (all of the job's merged), the gap between the
//! scheduled instant at or before the last success's start and the next one: after the 23:00
//! run of `0 13,23 * * *` the next success is due 14 hours later, after the 13:00 run 10 hours
//! later.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::{CronExpr, Schedule};

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

/// Cron brackets already measured, by expression and time zone: a fleet's jobs share a few
/// hundred expressions (however they combine them) and mostly succeeded within the same few
/// periods, so whole-fleet `status` walks the calendar once per expression and bracket instead
/// of once per job. A set's bracket is made of its expressions' own: the latest instant at or
/// before `around` of any of them, and the earliest after it.
#[derive(Default)]
pub struct GapMemo {
    /// By expression, then zone: `before → next` of each bracket measured. Keyed by the text so
    /// that a lookup borrows it (the jobs' rows come and go while the memo lives).
    brackets: HashMap<String, HashMap<Tz, Brackets>>,
}

impl GapMemo {
    /// The cron gap after `around` of the merged expressions `crons` (text and parsed), as
    /// [`expected_period`] measures it.
    pub fn gap(
        &mut self,
        crons: &[(&str, &CronExpr)],
        around: DateTime<Utc>,
        tz: Tz,
    ) -> Option<i64> {
        let mut before = None;
        let mut next = None;
        for (text, expr) in crons {
            let (b, n) = self.bracket(text, expr, around, tz);
            before = before.max(b);
            next = match (next, n) {
                (Some(x), Some(y)) => Some(std::cmp::min(x, y)),
                (x, y) => x.or(y),
            };
        }
        match (before, next) {
            (Some(b), Some(n)) => Some((n - b).num_seconds()),
            // No instant before `around` (a schedule for the future only): measured afresh.
            _ => {
                let exprs: Vec<&CronExpr> = crons.iter().map(|(_, e)| *e).collect();
                cron_gap(&exprs, around, &tz).map(|(gap, _)| gap)
            }
        }
    }

    /// One expression's instant at or before `around` and its next one after it.
    fn bracket(
        &mut self,
        text: &str,
        expr: &CronExpr,
        around: DateTime<Utc>,
        tz: Tz,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        if !self.brackets.contains_key(text) {
            self.brackets.insert(text.to_string(), HashMap::new());
        }
        let Some(zones) = self.brackets.get_mut(text) else {
            return (None, None);
        };
        let known = zones.entry(tz).or_default();
        if let Some((before, next)) = known.range(..=around).next_back()
            && around < *next
        {
            return (Some(*before), Some(*next));
        }
        let before = last_at_or_before(expr, around, &tz);
        let next = expr.next_after(around, &tz);
        if let (Some(b), Some(n)) = (before, next) {
            known.insert(b, n);
        }
        (before, next)
    }
}

/// The expected periods of many jobs, as whole-fleet `status` asks for them one job at a time:
/// every distinct cron expression parsed once, every bracket measured once ([`GapMemo`]).
#[derive(Default)]
pub struct FleetPeriods {
    /// Each expression met, parsed (`None`: it does not parse, so it sets no period).
    parsed: HashMap<String, Option<CronExpr>>,
    gaps: GapMemo,
}

impl FleetPeriods {
    /// A job's expected period (see [`expected_period`]) from its enabled schedules' distinct
    /// cron expressions and smallest interval, for the run at `around`, in zone `tz`.
    pub fn period(
        &mut self,
        crons: &[String],
        min_interval: Option<i64>,
        around: DateTime<Utc>,
        tz: Tz,
    ) -> Option<i64> {
        for expr in crons {
            if !self.parsed.contains_key(expr.as_str()) {
                self.parsed.insert(expr.clone(), CronExpr::parse(expr).ok());
            }
        }
        let parsed: Vec<(&str, &CronExpr)> = crons
            .iter()
            .filter_map(|e| Some((e.as_str(), self.parsed.get(e.as_str())?.as_ref()?)))
            .collect();
        let gap = if parsed.is_empty() {
            None
        } else {
            self.gaps.gap(&parsed, around, tz)
        };
        min_interval.filter(|s| *s > 0).into_iter().chain(gap).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::job::{Facts, RunFacts, Verdict, verdict};
    use chrono::TimeZone;

    fn run(status: &str, msg: Option<&str>, meta: serde_json::Value) -> RunFacts {
        RunFacts {
            id: 1,
            status: status.into(),
            error_message: msg.map(str::to_string),
            metadata: Some(meta),
        }
    }

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
            let measured = |m: &GapMemo| {
                m.brackets
                    .values()
                    .flat_map(|z| z.values())
                    .map(|b| b.len())
                    .sum::<usize>()
            };
            let before = measured(&memo);
            let pairs: Vec<(&str, &CronExpr)> = sets[set]
                .iter()
                .map(String::as_str)
                .zip(parsed[set].iter())
                .collect();
            assert_eq!(
                memo.gap(&pairs, around, tz),
                fresh,
                "{:?} in {tz} around {around}",
                sets[set]
            );
            if measured(&memo) == before {
                hits += 1;
            }
        }
        // The memo was used, not just filled.
        assert!(hits > 1000, "only {hits} memo hits");
    }

    #[test]
    fn fleet_periods_agree_with_expected_period() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let around = Utc.with_ymd_and_hms(2027, 3, 28, 1, 30, 0).unwrap();
        let mut fleet = FleetPeriods::default();
        let cases: [(&[&str], Option<i64>); 6] = [
            (&["0 2 * * *"], None),
            (&["0 2 * * *", "0 14 * * *"], None),
            (&["0 2 * * *"], Some(3600)),
            (&["0 13,23 * * *"], Some(0)),
            (&["not cron"], Some(7200)),
            (&[], None),
        ];
        // Twice each, so the second pass is answered from the memo.
        for (crons, interval) in cases.iter().chain(cases.iter()) {
            let mut schedules: Vec<Schedule> = crons
                .iter()
                .filter_map(|c| CronExpr::parse(c).ok().map(Schedule::Cron))
                .collect();
            if let Some(s) = interval.filter(|s| *s > 0) {
                schedules.push(Schedule::Interval { seconds: s as u64 });
            }
            let texts: Vec<String> = crons.iter().map(|c| c.to_string()).collect();
            assert_eq!(
                fleet.period(&texts, *interval, around, tz),
                expected_period(&schedules, around, &tz),
                "{crons:?} every {interval:?}"
            );
        }
        assert_eq!(fleet.period(&[], None, around, tz), None);
        assert_eq!(
            fleet.period(&["not cron".into()], Some(60), around, tz),
            Some(60)
        );
    }
}
