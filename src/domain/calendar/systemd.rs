//! systemd `OnCalendar=` lines that fire exactly at the instants of
//! [`CronExpr::next_after`](crate::domain::calendar::CronExpr::next_after).
//!
//! The cron fields become one calendar expression with the time-zone suffix (two when the
//! Vixie day rule ORs day-of-month and day-of-week, because systemd ANDs them). With a time
//! zone, systemd never fires a skipped wall time and fires a repeated wall time on the first
//! pass only (checked with `systemd-analyze calendar`, systemd 252). Vixie cron differs in
//! two places, which are compensated with dated UTC lines for every daylight-saving change
//! within the horizon:
//!
//! * a fixed-time job whose wall time falls into a spring-forward gap fires once at the
//!   change, e.g. `2027-03-28 01:00:00 UTC` for a 02:30 job in Europe/Prague;
//! * a job whose minute or hour field starts with `*` fires again on the second pass of a
//!   repeated hour, e.g. `2027-10-31 01:00,30:00 UTC`.
//!
//! Dated lines only cover changes up to `horizon_days` after `from`; the sync re-runs often
//! and refreshes them ([`DEFAULT_HORIZON_DAYS`] = 400 covers at least one full year).
//!
//! An expression that can never fire (e.g. `0 0 31 4 *`) yields no lines at all.
//!
//! Fallback (reported by [`on_calendar_plan`]): when the native lines would fire an instant
//! that cron does not, the result is a single dated line at the next instant, which every run
//! and sync must re-register. The one known case: lines generated while the clock is in the
//! second pass of a repeated hour, for a fixed-time job with matches left in that hour
//! (systemd resolves a repeated wall time to the pass its calendar base is in, so a timer
//! started then would fire them again). Around a change seen from before it, systemd's
//! behaviour is a subset of Vixie's for every expression and dated lines suffice.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::cron::{CronExpr, DstPolicy, offset_secs, transitions};

/// Horizon used by the sync for dated compensation lines.
pub const DEFAULT_HORIZON_DAYS: u32 = 400;

const DAY_NAMES_MON_FIRST: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Formats a set of values `min..=max` as a systemd calendar component: `*`, or a list of
/// values and `a..b` ranges. Repetitions (`a/b`) are never used: systemd 252 fails with
/// "Resource deadlock avoided" on e.g. `*-01/5-01 00:00:00 Europe/Prague` after two elapses.
fn fmt_set(values: &[u32], min: u32, max: u32) -> String {
    if values.len() as u32 == max - min + 1 {
        return "*".to_string();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{:02}..{:02}", values[i], values[j]));
        } else {
            for v in &values[i..=j] {
                parts.push(format!("{v:02}"));
            }
        }
        i = j + 1;
    }
    parts.join(",")
}

fn bits(mask: u64, min: u32, max: u32) -> Vec<u32> {
    (min..=max).filter(|v| mask & (1u64 << v) != 0).collect()
}

/// Day-of-week prefix (with trailing space), empty when every day is allowed.
fn fmt_dows(dows: u8) -> String {
    // Monday-first indices 0..7 (Sunday last), as systemd writes ranges.
    let idx: Vec<u32> = (0..7u32)
        .filter(|i| dows & (1 << ((i + 1) % 7)) != 0)
        .collect();
    if idx.len() == 7 {
        return String::new();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && idx[j + 1] == idx[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!(
                "{}..{}",
                DAY_NAMES_MON_FIRST[idx[i] as usize], DAY_NAMES_MON_FIRST[idx[j] as usize]
            ));
        } else {
            for v in &idx[i..=j] {
                parts.push(DAY_NAMES_MON_FIRST[*v as usize].to_string());
            }
        }
        i = j + 1;
    }
    format!("{} ", parts.join(","))
}

/// The calendar expressions for the wall-clock set of `expr` in `tz` (no DST compensation).
pub fn base_lines(expr: &CronExpr, tz: &Tz) -> Vec<String> {
    let time = format!(
        "{}:{}:00",
        fmt_set(&bits(expr.hours as u64, 0, 23), 0, 23),
        fmt_set(&bits(expr.minutes, 0, 59), 0, 59)
    );
    let all_months = bits(expr.months as u64, 1, 12);
    // Months in which some day of the day-of-month set exists (systemd reports an "infinite
    // loop" for expressions such as `*-04,06-31` instead of "never").
    let min_dom = expr.doms.trailing_zeros();
    let dom_months: Vec<u32> = all_months
        .iter()
        .copied()
        .filter(|m| min_dom <= days_in_month(*m))
        .collect();
    let doms = fmt_set(&bits(expr.doms as u64, 1, 31), 1, 31);
    let dows = fmt_dows(expr.dows);
    let zone = tz.name();
    let mut lines = Vec::new();
    if expr.day_or() {
        // Vixie ORs the two day fields; systemd ANDs within one expression.
        let months = fmt_set(&all_months, 1, 12);
        lines.push(format!("{dows}*-{months}-* {time} {zone}"));
    }
    if !dom_months.is_empty() {
        let months = fmt_set(&dom_months, 1, 12);
        let dows = if expr.day_or() { "" } else { dows.as_str() };
        lines.push(format!("{dows}*-{months}-{doms} {time} {zone}"));
    }
    lines.dedup();
    lines
}

/// The longest a month can be (February counts 29).
fn days_in_month(m: u32) -> u32 {
    match m {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Instants of `expr` in `(from, to]` under `policy`.
fn instants_between(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    policy: DstPolicy,
) -> BTreeSet<DateTime<Utc>> {
    let mut out = BTreeSet::new();
    let mut cursor = from;
    while let Some(t) = expr.next_after_with(cursor, tz, policy) {
        if t > to {
            break;
        }
        out.insert(t);
        cursor = t;
    }
    out
}

/// Dated UTC lines for the given instants, one line per UTC date and hour.
fn dated_lines(instants: &BTreeSet<DateTime<Utc>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    let mut key: Option<(chrono::NaiveDate, u32)> = None;
    let flush = |key: Option<(chrono::NaiveDate, u32)>, group: &[u32], out: &mut Vec<String>| {
        if let Some((d, h)) = key {
            out.push(format!(
                "{} {:02}:{}:00 UTC",
                d.format("%Y-%m-%d"),
                h,
                fmt_set(group, 0, 59)
            ));
        }
    };
    for t in instants {
        let k = (t.date_naive(), t.hour());
        if key != Some(k) {
            flush(key, &group, &mut out);
            group.clear();
            key = Some(k);
        }
        group.push(t.minute());
    }
    flush(key, &group, &mut out);
    out
}

/// The result of [`on_calendar_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarPlan {
    /// `OnCalendar=` values, one per element (empty when the expression never fires).
    pub lines: Vec<String>,
    /// True when exact lines were impossible and `lines` is the single dated line at the
    /// next instant, which every run and sync must re-register.
    pub fallback: bool,
}

/// `OnCalendar=` values (one per element) that fire exactly at the instants
/// [`CronExpr::next_after`] yields after `from`, through `from + horizon_days` days.
///
/// See the module documentation for the daylight-saving compensation and the fallback.
pub fn on_calendar_lines(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> Vec<String> {
    on_calendar_plan(expr, tz, from, horizon_days).lines
}

/// Like [`on_calendar_lines`], and says whether the fallback was used.
pub fn on_calendar_plan(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> CalendarPlan {
    let lines = base_lines(expr, tz);
    if second_pass_would_misfire(expr, tz, from) {
        return fallback(expr, tz, from, lines);
    }
    let horizon_end = from + Duration::days(i64::from(horizon_days));
    let mut extra = BTreeSet::new();
    // A change shortly before `from` can still have second-pass instants after `from`.
    for change in transitions(tz, from - Duration::hours(26), horizon_end) {
        // Every wall time affected by a change lies within a day of it.
        let lo = (change - Duration::hours(26)).max(from);
        let hi = (change + Duration::hours(26)).min(horizon_end);
        if lo >= hi {
            continue;
        }
        let want = instants_between(expr, tz, lo, hi, DstPolicy::Vixie);
        let native = instants_between(expr, tz, lo, hi, DstPolicy::SystemdNative);
        if native.difference(&want).next().is_some() {
            return fallback(expr, tz, from, lines);
        }
        extra.extend(want.difference(&native).copied());
    }
    let mut lines = lines;
    lines.extend(dated_lines(&extra));
    CalendarPlan {
        lines,
        fallback: false,
    }
}

/// Not representable: a single dated line at the next instant, which every run and sync
/// re-registers.
fn fallback(expr: &CronExpr, tz: &Tz, from: DateTime<Utc>, lines: Vec<String>) -> CalendarPlan {
    match expr.next_after(from, tz) {
        Some(t) => CalendarPlan {
            lines: dated_lines(&BTreeSet::from([t])),
            fallback: true,
        },
        None => CalendarPlan {
            lines,
            fallback: false,
        },
    }
}

/// systemd resolves a repeated wall time to the pass its calendar base lies in: a timer
/// whose base (`from`) is inside the second pass of a fall-back change fires the rest of the
/// repeated interval on the second pass (seen with `systemd-analyze calendar --base-time`).
/// True when that would fire an instant that cron does not (a fixed-time job with matches
/// left in the repeated interval).
fn second_pass_would_misfire(expr: &CronExpr, tz: &Tz, from: DateTime<Utc>) -> bool {
    for change in transitions(tz, from - Duration::hours(4), from) {
        let before = offset_secs(tz, change - Duration::seconds(1));
        let after = offset_secs(tz, change);
        if after >= before {
            continue;
        }
        let end = change + Duration::seconds(i64::from(before - after));
        let mut t = from
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(from);
        while t < end {
            t += Duration::minutes(1);
            if t > from && t < end {
                let wall = t.with_timezone(tz).naive_local();
                if expr.matches_wall(wall)
                    && expr.next_after(t - Duration::seconds(1), tz) != Some(t)
                {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_components() {
        assert_eq!(fmt_set(&[0, 15, 30, 45], 0, 59), "00,15,30,45");
        assert_eq!(fmt_set(&[1, 8, 15, 22], 1, 31), "01,08,15,22");
        assert_eq!(fmt_set(&[0, 30], 0, 59), "00,30");
        assert_eq!(fmt_set(&[1, 2, 3, 7], 0, 59), "01..03,07");
        assert_eq!(fmt_dows(0b0011_1110), "Mon..Fri ");
        assert_eq!(fmt_dows(0b0100_0001), "Sat,Sun ");
        assert_eq!(fmt_dows(0x7f), "");
    }

    #[test]
    fn lines_for_prague() {
        let tz: Tz = "Europe/Prague".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let e = CronExpr::parse("30 2 * * *").unwrap();
        assert_eq!(
            on_calendar_lines(&e, &tz, from, 400),
            vec![
                "*-*-* 02:30:00 Europe/Prague".to_string(),
                "2027-03-28 01:00:00 UTC".to_string()
            ]
        );
        let e = CronExpr::parse("0 12 1 * mon").unwrap();
        assert_eq!(
            on_calendar_lines(&e, &chrono_tz::UTC, from, 400),
            vec!["Mon *-*-* 12:00:00 UTC", "*-*-01 12:00:00 UTC"]
        );
    }
}
