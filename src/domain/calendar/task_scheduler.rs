//! Windows Task Scheduler triggers that fire exactly at the instants of
//! [`CronExpr::next_after`](crate::domain::calendar::CronExpr::next_after).
//!
//! # What Task Scheduler does at daylight-saving changes (research)
//!
//! * Microsoft's WeeklyTrigger page (learn.microsoft.com/windows/win32/taskschd/weeklytrigger,
//!   remarks added 2022) documents one case: on the day DST starts, a task scheduled for a wall
//!   time inside the skipped hour runs at the earliest time that exists that day (02:30 ->
//!   03:00). That matches Vixie for fixed-time jobs but not for `*`-minute/hour jobs (Vixie
//!   skips them).
//! * KB 325413 ("Task Scheduler behavior at daylight saving time transitions") says the
//!   behaviour for the transition hours is *not specified*; nothing documents whether a
//!   repeated wall time fires once or twice, or whether a Repetition pattern counts wall-clock
//!   or elapsed time across a change.
//! * A boundary written with an offset (`...+01:00` or `Z`, the "Synchronize across time
//!   zones" form) is a fixed instant: such tasks run at the same UTC time regardless of DST
//!   (third-party documentation, e.g. febooti's Task Scheduler DST note, reports exactly
//!   that).
//!
//! # How the generator avoids all of it
//!
//! Every boundary carries the UTC offset that is in force at that wall time, and no trigger's
//! active window ever contains a DST change:
//!
//! * The time line is cut into *segments*: runs of whole local dates with one constant offset,
//!   between the dates on which the offset changes (within `horizon_days`; the last segment is
//!   open-ended). Each segment gets its own calendar triggers (ScheduleByDay / ScheduleByWeek /
//!   ScheduleByMonth / ScheduleByMonthDayOfWeek, with Repetition for regular minute or hour
//!   steps), with `StartBoundary` on the first date and `EndBoundary` at the midnight that
//!   starts the next change date, both written with the segment's offset. Inside a segment,
//!   the wall clock of the offset and the local wall clock of a machine in that zone are the
//!   same, so it does not matter which of the two Task Scheduler evaluates.
//! * The change dates themselves get one-off TimeTriggers at the exact instants the cron engine
//!   computes for that date (Vixie rules: a fixed-time job in a gap fires at the end of the gap,
//!   a repeated wall time fires once for fixed-time jobs and twice otherwise), compressed into
//!   arithmetic progressions with Repetition (elapsed time between absolute instants).
//! * Changes beyond the horizon are not compensated: every sync re-renders the triggers (the
//!   XML only changes when a change date passes or enters the horizon).
//!
//! Repetition durations are chosen strictly between the last wanted repetition and the next one
//! (`(n-1)*step + 1 minute`, or `+30 s` for one-minute steps), so it does not matter whether
//! Task Scheduler counts a repetition that lands exactly on the end of the duration.
//!
//! # Fallbacks
//!
//! * Day sets Task Scheduler cannot express (day-of-month AND day-of-week with one of them
//!   written `*/n`, e.g. `0 12 */3 * 1`) are enumerated: absolute TimeTriggers for every
//!   instant within the horizon (compressed with Repetition).
//! * Anything needing more than [`MAX_TRIGGERS`] triggers becomes ONE TimeTrigger at the next
//!   occurrence. The task then has to be re-registered after every occurrence: every sync (the
//!   sync task repeats every `sync_interval_seconds`) and every run re-renders it, so it moves on
//!   to the following occurrence.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::domain::calendar::cron::{CronExpr, offset_secs, transitions};

/// The Task Scheduler schema allows at most 48 triggers per task.
pub const MAX_TRIGGERS: usize = 48;

/// StartBoundary date of the first segment when the zone had no change in the look-back.
const ANCHOR: (i32, u32, u32) = (2020, 1, 1);

/// Weeks of the month for ScheduleByMonthDayOfWeek: bit 1..=4 = weeks 1-4, bit 5 = `Last`.
pub const WEEK_LAST: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Calendar {
    /// A TimeTrigger: fires once at StartBoundary (plus its Repetition).
    Once,
    /// ScheduleByDay with DaysInterval.
    Daily { days_interval: u32 },
    /// ScheduleByWeek (WeeksInterval 1), Sunday = bit 0.
    Weekly { dows: u8 },
    /// ScheduleByMonth: days bits 1..=31, months bits 1..=12.
    Monthly { days: u32, months: u16 },
    /// ScheduleByMonthDayOfWeek: weeks bits 1..=5 (5 = Last), days of week, months.
    MonthlyDow { weeks: u8, dows: u8, months: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repetition {
    pub interval_secs: u64,
    /// `None`: repeat indefinitely.
    pub duration_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub calendar: Calendar,
    pub start: DateTime<FixedOffset>,
    pub end: Option<DateTime<FixedOffset>>,
    pub repetition: Option<Repetition>,
}

/// The triggers for one schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerSet {
    pub triggers: Vec<Trigger>,
    /// True when the set is the single next-occurrence fallback.
    pub fallback: bool,
}

/// `PnDTnHnMnS` (zero parts omitted; `PT0S` for zero).
pub fn duration(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::from("P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if h > 0 || m > 0 || s > 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 {
            out.push_str(&format!("{s}S"));
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` with `Z` or `+HH:MM`.
pub fn boundary(t: &DateTime<FixedOffset>) -> String {
    let off = t.offset().local_minus_utc();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if off == 0 {
        format!("{base}Z")
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        format!("{base}{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    }
}

fn fixed(secs: i32) -> FixedOffset {
    FixedOffset::east_opt(secs).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
}

/// Arithmetic progressions `(first, step, count)` covering the sorted set `s` (greedy: from the
/// smallest uncovered element, the step that covers most uncovered elements).
fn ap_cover(s: &[i64], max_step: i64) -> Vec<(i64, i64, usize)> {
    let all: BTreeSet<i64> = s.iter().copied().collect();
    let mut uncovered = all.clone();
    let mut out = Vec::new();
    while let Some(&a) = uncovered.iter().next() {
        let mut best: (usize, usize, i64) = (1, 1, 0);
        for &b in all.range(a + 1..).take(240) {
            let d = b - a;
            if d > max_step {
                break;
            }
            let (mut n, mut new, mut x) = (0usize, 0usize, a);
            while all.contains(&x) {
                n += 1;
                if uncovered.contains(&x) {
                    new += 1;
                }
                x += d;
            }
            if (new, n) > (best.0, best.1) {
                best = (new, n, d);
            }
        }
        let (_, n, d) = best;
        for k in 0..n {
            uncovered.remove(&(a + d * k as i64));
        }
        out.push((a, d, n));
    }
    out
}

/// The Repetition for `count` fires `step_secs` apart.
fn repetition(step_secs: i64, count: usize) -> Option<Repetition> {
    if count < 2 {
        return None;
    }
    let step = step_secs as u64;
    let margin = if step >= 120 { 60 } else { step / 2 };
    Some(Repetition {
        interval_secs: step,
        duration_secs: Some(step * (count as u64 - 1) + margin),
    })
}

fn bits(mask: u64, min: u32, max: u32) -> Vec<u32> {
    (min..=max).filter(|v| mask & (1u64 << v) != 0).collect()
}

/// The day patterns of `expr`, or `None` when Task Scheduler cannot express them.
fn day_calendars(expr: &CronExpr) -> Option<Vec<Calendar>> {
    const ALL_DOMS: u32 = 0xFFFF_FFFE;
    const ALL_MONTHS: u16 = 0x1FFE;
    let all_doms = expr.doms == ALL_DOMS;
    let all_dows = expr.dows == 0x7f;
    let months = expr.months;
    let every_day = if expr.day_or() {
        all_doms || all_dows
    } else {
        all_doms && all_dows
    };
    let dow_cal = |dows: u8| {
        if months == ALL_MONTHS {
            Calendar::Weekly { dows }
        } else {
            Calendar::MonthlyDow {
                weeks: 0b11_1110,
                dows,
                months,
            }
        }
    };
    if every_day {
        return Some(vec![if months == ALL_MONTHS {
            Calendar::Daily { days_interval: 1 }
        } else {
            Calendar::Monthly {
                days: ALL_DOMS,
                months,
            }
        }]);
    }
    let dom_cal = Calendar::Monthly {
        days: expr.doms,
        months,
    };
    if expr.day_or() {
        return Some(vec![dow_cal(expr.dows), dom_cal]);
    }
    if all_doms {
        return Some(vec![dow_cal(expr.dows)]);
    }
    if all_dows {
        return Some(vec![dom_cal]);
    }
    // Both restricted and ANDed: only whole weeks of the month (1-7, 8-14, 15-21, 22-28).
    let mut weeks = 0u8;
    let mut rest = expr.doms;
    for w in 0..4u32 {
        let block = 0x7fu32 << (1 + 7 * w);
        if rest & block == block {
            weeks |= 1 << (w + 1);
            rest &= !block;
        }
    }
    if rest == 0 {
        Some(vec![Calendar::MonthlyDow {
            weeks,
            dows: expr.dows,
            months,
        }])
    } else {
        None
    }
}

/// The first instant whose local date in `tz` is `date` or later.
fn start_of_day(tz: &Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let mut wall = date.and_hms_opt(0, 0, 0)?;
    for _ in 0..(27 * 60) {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => wall = wall.checked_add_signed(Duration::minutes(1))?,
        }
    }
    None
}

/// TimeTriggers (absolute instants, written in `tz`'s offset at each start) for `instants`.
fn once_triggers(instants: &[DateTime<Utc>], tz: &Tz) -> Vec<Trigger> {
    let secs: Vec<i64> = instants.iter().map(|t| t.timestamp()).collect();
    ap_cover(&secs, 31 * 86_400)
        .into_iter()
        .filter_map(|(a, d, n)| {
            let t = DateTime::from_timestamp(a, 0)?;
            Some(Trigger {
                calendar: Calendar::Once,
                start: t.with_timezone(&fixed(offset_secs(tz, t))),
                end: None,
                repetition: repetition(d, n),
            })
        })
        .collect()
}

fn instants_between(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Option<Vec<DateTime<Utc>>> {
    let mut out = Vec::new();
    let mut cursor = from;
    while let Some(t) = expr.next_after(cursor, tz) {
        if t >= to {
            break;
        }
        out.push(t);
        if out.len() > limit {
            return None;
        }
        cursor = t;
    }
    Some(out)
}

fn segmented(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    horizon_days: u32,
    calendars: &[Calendar],
) -> Option<Vec<Trigger>> {
    let look_back = from - Duration::days(400);
    let horizon_end = from + Duration::days(i64::from(horizon_days));
    let local = |t: DateTime<Utc>| t.with_timezone(tz).date_naive();
    let today = local(from);
    let mut change_dates = BTreeSet::new();
    for t in transitions(tz, look_back, horizon_end) {
        change_dates.insert(local(t - Duration::seconds(1)));
        change_dates.insert(local(t));
    }
    let prev = change_dates.range(..today).next_back().copied();
    let future: Vec<NaiveDate> = change_dates.range(today..).copied().collect();
    let mut seg_start = match prev {
        Some(d) => d.succ_opt()?,
        None => NaiveDate::from_ymd_opt(ANCHOR.0, ANCHOR.1, ANCHOR.2)?,
    };
    // (first date, last date (None: open))
    let mut segments: Vec<(NaiveDate, Option<NaiveDate>)> = Vec::new();
    for d in &future {
        if seg_start < *d {
            segments.push((seg_start, Some(d.pred_opt()?)));
        }
        seg_start = seg_start.max(d.succ_opt()?);
    }
    segments.push((seg_start, None));

    // Minutes of the day at which the expression fires, as progressions.
    let mut day_minutes = Vec::new();
    for h in bits(u64::from(expr.hours), 0, 23) {
        for m in bits(expr.minutes, 0, 59) {
            day_minutes.push(i64::from(h * 60 + m));
        }
    }
    let time_aps = ap_cover(&day_minutes, 1440);
    let mut out = Vec::new();
    for (first, last) in segments {
        if last.is_some_and(|l| l < today) {
            continue;
        }
        let probe = start_of_day(tz, first.max(today))?;
        let off = offset_secs(tz, probe);
        if let Some(l) = last {
            let end = start_of_day(tz, l.succ_opt()?)?;
            if offset_secs(tz, end - Duration::seconds(1)) != off {
                return None;
            }
        }
        let fo = fixed(off);
        let end = match last {
            Some(l) => Some(
                fo.from_local_datetime(&l.succ_opt()?.and_hms_opt(0, 0, 0)?)
                    .single()?,
            ),
            None => None,
        };
        for cal in calendars {
            for &(a, d, n) in &time_aps {
                let wall: NaiveDateTime = first.and_hms_opt((a / 60) as u32, (a % 60) as u32, 0)?;
                out.push(Trigger {
                    calendar: cal.clone(),
                    start: fo.from_local_datetime(&wall).single()?,
                    end,
                    repetition: repetition(d * 60, n),
                });
            }
        }
        if out.len() > MAX_TRIGGERS {
            return None;
        }
    }
    // The change dates: exact instants from the cron engine.
    for d in future {
        let lo = start_of_day(tz, d)?;
        let hi = start_of_day(tz, d.succ_opt()?)?;
        let lo = lo.max(from);
        if lo >= hi {
            continue;
        }
        let instants = instants_between(expr, tz, lo - Duration::seconds(1), hi, 2000)?;
        let instants: Vec<_> = instants.into_iter().filter(|t| *t > from).collect();
        out.extend(once_triggers(&instants, tz));
        if out.len() > MAX_TRIGGERS {
            return None;
        }
    }
    Some(out)
}

/// Task Scheduler triggers that fire at exactly the instants `expr` fires in `tz` after `from`
/// (through at least `horizon_days` days; see the module documentation).
pub fn cron_triggers(
    expr: &CronExpr,
    tz: &Tz,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> TriggerSet {
    if let Some(cals) = day_calendars(expr)
        && let Some(t) = segmented(expr, tz, from, horizon_days, &cals)
        && t.len() <= MAX_TRIGGERS
    {
        return TriggerSet {
            triggers: t,
            fallback: false,
        };
    }
    // Enumerate the horizon's instants.
    let horizon_end = from + Duration::days(i64::from(horizon_days));
    if let Some(instants) = instants_between(expr, tz, from, horizon_end, 200_000) {
        let t = once_triggers(&instants, tz);
        if t.len() <= MAX_TRIGGERS {
            return TriggerSet {
                triggers: t,
                fallback: false,
            };
        }
    }
    TriggerSet {
        triggers: expr
            .next_after(from, tz)
            .map(|t| once_triggers(&[t], tz))
            .unwrap_or_default(),
        fallback: true,
    }
}

/// An interval schedule: a TimeTrigger repeating every `seconds` indefinitely from `anchor`
/// (Task Scheduler allows repetition intervals from one minute to 31 days; longer intervals
/// use ScheduleByDay with DaysInterval, rounded to whole days).
pub fn interval_triggers(seconds: u64, anchor: DateTime<Utc>) -> Vec<Trigger> {
    let anchor = crate::domain::calendar::whole_second_at_or_after(anchor).with_timezone(&fixed(0));
    if seconds > 31 * 86_400 {
        return vec![Trigger {
            calendar: Calendar::Daily {
                days_interval: u32::try_from(seconds.div_ceil(86_400))
                    .unwrap_or(365)
                    .min(365),
            },
            start: anchor,
            end: None,
            repetition: None,
        }];
    }
    vec![Trigger {
        calendar: Calendar::Once,
        start: anchor,
        end: None,
        repetition: Some(Repetition {
            interval_secs: seconds.max(60),
            duration_secs: None,
        }),
    }]
}

/// A fixed anchor (2020-01-01 UTC) for repeating triggers that have no slot of their own (the
/// sync task), so that their XML never changes.
pub fn fixed_anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(ANCHOR.0, ANCHOR.1, ANCHOR.2, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The triggers of a job with several schedules: the union of each schedule's triggers, or,
/// when that needs more than [`MAX_TRIGGERS`], ONE TimeTrigger at the job's next occurrence
/// (re-registered by every sync and run; see the module documentation).
///
/// `slots[i]` is the stored `next_run_at` of `schedules[i]` (may be shorter or empty). An
/// interval schedule's repetition starts at its slot, so the task fires when the database says
/// the schedule is due; without a slot it starts one interval after `from`.
pub fn job_triggers(
    schedules: &[crate::domain::calendar::Schedule],
    slots: &[Option<DateTime<Utc>>],
    tz: &Tz,
    from: DateTime<Utc>,
    horizon_days: u32,
) -> TriggerSet {
    let slot = |i: usize, s: &crate::domain::calendar::Schedule| {
        slots
            .get(i)
            .copied()
            .flatten()
            .or_else(|| s.next_after(from, tz))
    };
    let mut out = TriggerSet::default();
    for (i, s) in schedules.iter().enumerate() {
        let set = match s {
            crate::domain::calendar::Schedule::Cron(expr) => {
                cron_triggers(expr, tz, from, horizon_days)
            }
            crate::domain::calendar::Schedule::Interval { seconds } => TriggerSet {
                triggers: slot(i, s)
                    .map(|anchor| interval_triggers(*seconds, anchor))
                    .unwrap_or_default(),
                fallback: false,
            },
        };
        out.fallback |= set.fallback;
        for t in set.triggers {
            if !out.triggers.contains(&t) {
                out.triggers.push(t);
            }
        }
    }
    if out.triggers.len() > MAX_TRIGGERS || (out.fallback && schedules.len() > 1) {
        let next = schedules
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                crate::domain::calendar::Schedule::Cron(_) => s.next_after(from, tz),
                crate::domain::calendar::Schedule::Interval { .. } => slot(i, s),
            })
            .min()
            .map(crate::domain::calendar::whole_second_at_or_after);
        return TriggerSet {
            triggers: next.map(|t| once_triggers(&[t], tz)).unwrap_or_default(),
            fallback: true,
        };
    }
    out
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn dows_xml(dows: u8, ind: &str) -> String {
    let mut s = format!("{ind}<DaysOfWeek>\n");
    for (i, name) in DAY_NAMES.iter().enumerate() {
        if dows & (1 << i) != 0 {
            s.push_str(&format!("{ind}  <{name} />\n"));
        }
    }
    s.push_str(&format!("{ind}</DaysOfWeek>\n"));
    s
}

fn months_xml(months: u16, ind: &str) -> String {
    let mut s = format!("{ind}<Months>\n");
    for (i, name) in MONTH_NAMES.iter().enumerate() {
        if months & (1 << (i + 1)) != 0 {
            s.push_str(&format!("{ind}  <{name} />\n"));
        }
    }
    s.push_str(&format!("{ind}</Months>\n"));
    s
}

/// One trigger element, indented by `ind`, in the schema's element order.
pub fn trigger_xml(t: &Trigger, ind: &str) -> String {
    let tag = if t.calendar == Calendar::Once {
        "TimeTrigger"
    } else {
        "CalendarTrigger"
    };
    let i2 = format!("{ind}  ");
    let i3 = format!("{ind}    ");
    let mut s = format!("{ind}<{tag}>\n");
    s.push_str(&format!("{i2}<Enabled>true</Enabled>\n"));
    s.push_str(&format!(
        "{i2}<StartBoundary>{}</StartBoundary>\n",
        boundary(&t.start)
    ));
    if let Some(e) = &t.end {
        s.push_str(&format!("{i2}<EndBoundary>{}</EndBoundary>\n", boundary(e)));
    }
    if let Some(r) = &t.repetition {
        s.push_str(&format!("{i2}<Repetition>\n"));
        s.push_str(&format!(
            "{i3}<Interval>{}</Interval>\n",
            duration(r.interval_secs)
        ));
        if let Some(d) = r.duration_secs {
            s.push_str(&format!("{i3}<Duration>{}</Duration>\n", duration(d)));
        }
        s.push_str(&format!(
            "{i3}<StopAtDurationEnd>false</StopAtDurationEnd>\n"
        ));
        s.push_str(&format!("{i2}</Repetition>\n"));
    }
    let i4 = format!("{ind}      ");
    match &t.calendar {
        Calendar::Once => {}
        Calendar::Daily { days_interval } => {
            s.push_str(&format!(
                "{i2}<ScheduleByDay>\n{i3}<DaysInterval>{days_interval}</DaysInterval>\n{i2}</ScheduleByDay>\n"
            ));
        }
        Calendar::Weekly { dows } => {
            s.push_str(&format!("{i2}<ScheduleByWeek>\n"));
            s.push_str(&dows_xml(*dows, &i3));
            s.push_str(&format!("{i3}<WeeksInterval>1</WeeksInterval>\n"));
            s.push_str(&format!("{i2}</ScheduleByWeek>\n"));
        }
        Calendar::Monthly { days, months } => {
            s.push_str(&format!("{i2}<ScheduleByMonth>\n{i3}<DaysOfMonth>\n"));
            for d in bits(u64::from(*days), 1, 31) {
                s.push_str(&format!("{i4}<Day>{d}</Day>\n"));
            }
            s.push_str(&format!("{i3}</DaysOfMonth>\n"));
            s.push_str(&months_xml(*months, &i3));
            s.push_str(&format!("{i2}</ScheduleByMonth>\n"));
        }
        Calendar::MonthlyDow {
            weeks,
            dows,
            months,
        } => {
            s.push_str(&format!("{i2}<ScheduleByMonthDayOfWeek>\n{i3}<Weeks>\n"));
            for w in 1..=WEEK_LAST {
                if weeks & (1 << w) != 0 {
                    let v = if w == WEEK_LAST {
                        "Last".to_string()
                    } else {
                        w.to_string()
                    };
                    s.push_str(&format!("{i4}<Week>{v}</Week>\n"));
                }
            }
            s.push_str(&format!("{i3}</Weeks>\n"));
            s.push_str(&dows_xml(*dows, &i3));
            s.push_str(&months_xml(*months, &i3));
            s.push_str(&format!("{i2}</ScheduleByMonthDayOfWeek>\n"));
        }
    }
    s.push_str(&format!("{ind}</{tag}>\n"));
    s
}

/// The `<Triggers>` element (first line unindented, later lines indented by `ind`, no final
/// newline), exactly as it goes into the task XML.
pub fn triggers_xml(triggers: &[Trigger], ind: &str) -> String {
    if triggers.is_empty() {
        return "<Triggers />".to_string();
    }
    let mut s = String::from("<Triggers>\n");
    for t in triggers {
        s.push_str(&trigger_xml(t, &format!("{ind}  ")));
    }
    s.push_str(&format!("{ind}</Triggers>"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_boundaries() {
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(60), "PT1M");
        assert_eq!(duration(3600 * 23 + 60), "PT23H1M");
        assert_eq!(duration(86_400 * 2 + 5), "P2DT5S");
        let t = fixed(3600)
            .with_ymd_and_hms(2027, 3, 1, 2, 30, 0)
            .single()
            .unwrap();
        assert_eq!(boundary(&t), "2027-03-01T02:30:00+01:00");
        let t = fixed(-9000)
            .with_ymd_and_hms(2027, 3, 1, 2, 30, 0)
            .single()
            .unwrap();
        assert_eq!(boundary(&t), "2027-03-01T02:30:00-02:30");
    }

    #[test]
    fn interval_triggers_start_at_the_stored_slot() {
        let from = Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap();
        let slot = from + Duration::milliseconds(30_500);
        let hourly = crate::domain::calendar::Schedule::Interval { seconds: 3600 };
        let set = job_triggers(
            std::slice::from_ref(&hourly),
            &[Some(slot)],
            &Tz::UTC,
            from,
            400,
        );
        assert!(!set.fallback);
        assert_eq!(set.triggers.len(), 1);
        assert_eq!(set.triggers[0].start, from + Duration::seconds(31));
        assert_eq!(
            set.triggers[0].repetition.as_ref().unwrap().interval_secs,
            3600
        );
        // Without a slot (preview): one interval after `from`, like the preview's times.
        let set = job_triggers(std::slice::from_ref(&hourly), &[], &Tz::UTC, from, 400);
        assert_eq!(set.triggers[0].start, from + Duration::hours(1));
        // The single-trigger fallback of a job takes the interval's slot too, not from + 1h.
        let busy = crate::domain::calendar::Schedule::Cron(
            CronExpr::parse("*/2 */2 */2 */2 */2").unwrap(),
        );
        let set = job_triggers(&[busy, hourly], &[None, Some(slot)], &Tz::UTC, from, 400);
        assert!(set.fallback);
        assert_eq!(set.triggers.len(), 1);
        assert_eq!(set.triggers[0].start, from + Duration::seconds(31));
    }

    #[test]
    fn progressions() {
        assert_eq!(ap_cover(&[0, 15, 30, 45], 1440), vec![(0, 15, 4)]);
        let sevens: Vec<i64> = (0..24)
            .flat_map(|h| (0..60).step_by(7).map(move |m| h * 60 + m))
            .collect();
        assert_eq!(ap_cover(&sevens, 1440).len(), 9);
        assert_eq!(ap_cover(&[5], 1440), vec![(5, 0, 1)]);
    }

    #[test]
    fn prague_daily_has_segments_and_a_gap_trigger() {
        let tz: Tz = "Europe/Prague".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2027, 1, 10, 0, 0, 0).unwrap();
        let e = CronExpr::parse("30 2 * * *").unwrap();
        let set = cron_triggers(&e, &tz, from, 400);
        assert!(!set.fallback);
        let xml = triggers_xml(&set.triggers, "");
        assert!(
            xml.contains("<StartBoundary>2027-03-28T03:00:00+02:00</StartBoundary>"),
            "{xml}"
        );
        assert!(
            xml.contains("<EndBoundary>2027-03-28T00:00:00+01:00</EndBoundary>"),
            "{xml}"
        );
    }
}
