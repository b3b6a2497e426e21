//! Standard 5-field crontab expressions (Vixie / Debian cron semantics).
//!
//! Fields: minute hour day-of-month month day-of-week, with lists (`1,5`), ranges (`1-5`),
//! steps after `*` or a range (`*/5`, `1-30/7`; a step larger than the range selects its first
//! value, so `*/100` in day-of-month is day 1; a step after a single number, `0/10`, is refused
//! as Debian's cron refuses it), month names `jan`-`dec` and day names
//! `sun`-`sat` (case-insensitive), 0 and 7 both Sunday, and the macros `@hourly`, `@daily`,
//! `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.
//!
//! Day rule (Vixie): when both day-of-month and day-of-week are restricted (neither field
//! starts with `*`), a day matching EITHER fires; otherwise a day must match both, so
//! `0 12 */3 * 1` fires on every third day of the month that is also a Monday.
//!
//! Daylight saving (Vixie cron as Debian's cron(8) documents it), see [`CronExpr::next_after`].
//! Debian's `cron.c` applies its daylight-saving rules only to clock changes of less than three
//! hours; a bigger jump (Pacific/Apia skipped 30 December 2011) is a clock reset: skipped
//! fixed-time jobs get no catch-up, and after a jump back of three hours or more fixed-time
//! jobs fire again on the second pass.

/// Clock changes at least this long are a reset to Debian's cron (`3*MINUTE_COUNT` minutes).
const CLOCK_RESET_SECS: i64 = 3 * 3600;

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// How far (in days of wall-clock dates) [`CronExpr::next_after`] searches before giving up.
/// About ten years: long enough for `0 0 29 2 *` (at most eight years between leap days, around
/// 2100), short enough that an impossible expression such as `0 0 30 2 *` answers quickly.
pub const SEARCH_DAYS: i64 = 3660;

/// The error returned by [`CronExpr::parse`]. Its `Display` is one sentence naming the
/// expression, the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    expr: String,
    detail: String,
}

impl CronError {
    fn new(expr: &str, detail: impl Into<String>) -> Self {
        CronError {
            expr: expr.to_string(),
            detail: detail.into(),
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The problem, without the leading `invalid cron expression "...":`.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid cron expression {:?}: {}",
            self.expr, self.detail
        )
    }
}

impl std::error::Error for CronError {}

/// Which daylight-saving behaviour to apply when turning wall times into instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DstPolicy {
    /// Vixie cron: fixed-time jobs fire at the end of a gap and once in a repeated hour;
    /// other jobs follow the wall clock (skip gaps, fire on both passes).
    Vixie,
    /// What systemd's OnCalendar= does with a time zone: skipped wall times never fire,
    /// repeated wall times fire on the first pass only.
    SystemdNative,
}

/// A parsed 5-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    /// Bits 0..=59.
    pub(super) minutes: u64,
    /// Bits 0..=23.
    pub(super) hours: u32,
    /// Bits 1..=31.
    pub(super) doms: u32,
    /// Bits 1..=12.
    pub(super) months: u16,
    /// Bits 0..=6 (Sunday = 0; a 7 in the expression sets bit 0).
    pub(super) dows: u8,
    /// The day-of-month field starts with `*`.
    pub(super) dom_star: bool,
    /// The day-of-week field starts with `*`.
    pub(super) dow_star: bool,
    /// Neither minute nor hour field starts with `*`.
    fixed: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Offset added to a name's index to get its value.
    name_base: u32,
}

const MONTH_NAMES: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
        name_base: 1,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: DAY_NAMES,
        name_base: 0,
    },
];

const FIELD_LIST: &str = "minute hour day-of-month month day-of-week";

fn parse_value(expr: &str, spec: &FieldSpec, text: &str) -> Result<u32, CronError> {
    if text.is_empty() {
        return Err(CronError::new(
            expr,
            format!("{} field has an empty value", spec.name),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = text.trim_start_matches('0');
        let value = if trimmed.is_empty() {
            Some(0)
        } else if trimmed.len() > 6 {
            None
        } else {
            trimmed.parse::<u32>().ok()
        };
        return match value {
            Some(v) if v >= spec.min && v <= spec.max => Ok(v),
            _ => Err(CronError::new(
                expr,
                format!(
                    "{} field value {} is out of range {}-{}",
                    spec.name, text, spec.min, spec.max
                ),
            )),
        };
    }
    if !spec.names.is_empty() {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = spec.names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + spec.name_base);
        }
        let first = spec.names[0];
        let last = spec.names[spec.names.len() - 1];
        return Err(CronError::new(
            expr,
            format!(
                "{} field value {:?} is neither a name ({}-{}) nor a number {}-{}",
                spec.name, text, first, last, spec.min, spec.max
            ),
        ));
    }
    Err(CronError::new(
        expr,
        format!(
            "{} field value {:?} is not a number {}-{}",
            spec.name, text, spec.min, spec.max
        ),
    ))
}

/// Parses one field into a bit set of values (DOW values still 0..=7 here).
fn parse_field(expr: &str, spec: &FieldSpec, text: &str) -> Result<u64, CronError> {
    let mut bits: u64 = 0;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(CronError::new(
                expr,
                format!("{} field {:?} has an empty list element", spec.name, text),
            ));
        }
        let mut parts = item.splitn(2, '/');
        let base = parts.next().unwrap_or("");
        let step = match parts.next() {
            None => None,
            Some(s) => {
                let span = spec.max - spec.min + 1;
                let ok = !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
                let v = if ok { s.parse::<u32>().ok() } else { None };
                // Debian reads any positive step; one larger than the range selects only the
                // range's first value.
                match v {
                    Some(v) if v >= 1 => Some(v),
                    _ => {
                        return Err(CronError::new(
                            expr,
                            format!(
                                "{} field step {:?} in {:?} must be a positive number (like {})",
                                spec.name,
                                s,
                                item,
                                span / 2
                            ),
                        ));
                    }
                }
            }
        };
        let (lo, hi) = if base == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let lo = parse_value(expr, spec, a)?;
            let hi = parse_value(expr, spec, b)?;
            if lo > hi {
                let hint = if spec.name == "day-of-week" {
                    " (use 7 for Sunday at the end of a range, e.g. 5-7)"
                } else {
                    ""
                };
                return Err(CronError::new(
                    expr,
                    format!(
                        "{} field range {:?} runs backwards; cron ranges cannot wrap around, \
                         write it as two ranges joined by a comma{}",
                        spec.name, base, hint
                    ),
                ));
            }
            (lo, hi)
        } else {
            let v = parse_value(expr, spec, base)?;
            // Debian's entry.c takes a single number as a complete item, so `0/10` is a
            // syntax error there (cronie reads it as `0-max/10`); refuse it rather than guess.
            if step.is_some() {
                return Err(CronError::new(
                    expr,
                    format!(
                        "{} field item {:?} has a step after a single number, which Debian's \
                         cron refuses; write {}-{}/{} or */{}",
                        spec.name,
                        item,
                        base,
                        spec.max,
                        step.unwrap_or(1),
                        step.unwrap_or(1)
                    ),
                ));
            }
            (v, v)
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1u64 << v;
            v = match v.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
    }
    Ok(bits)
}

impl CronExpr {
    /// Parses a 5-field crontab expression or one of the macros.
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(CronError::new(
                expr,
                format!(
                    "the expression is empty; expected 5 fields ({FIELD_LIST}) or a macro such as @daily"
                ),
            ));
        }
        let expanded: &str = if let Some(name) = trimmed.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "hourly" => "0 * * * *",
                "daily" | "midnight" => "0 0 * * *",
                "weekly" => "0 0 * * 0",
                "monthly" => "0 0 1 * *",
                "yearly" | "annually" => "0 0 1 1 *",
                "reboot" => {
                    return Err(CronError::new(
                        expr,
                        "@reboot runs once at boot and is not a time schedule; \
                         use a time-based expression such as @daily",
                    ));
                }
                _ => {
                    return Err(CronError::new(
                        expr,
                        format!(
                            "unknown macro {trimmed:?}; supported macros are @hourly, @daily, \
                             @midnight, @weekly, @monthly, @yearly and @annually"
                        ),
                    ));
                }
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            // A 6-field expression is usually Quartz/Spring style, starting with seconds.
            let seconds = if fields.len() == 6 {
                format!(
                    "; a seconds field is not supported (the first field is the minute): drop it, \
                     as in {:?}",
                    fields[1..].join(" ")
                )
            } else {
                String::new()
            };
            return Err(CronError::new(
                expr,
                format!(
                    "expected 5 fields ({FIELD_LIST}), found {}{seconds}",
                    fields.len()
                ),
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (spec, text)) in FIELDS.iter().zip(fields.iter()).enumerate() {
            bits[i] = parse_field(expr, spec, text)?;
        }
        let mut dows = bits[4] as u8 & 0x7f;
        if bits[4] & (1 << 7) != 0 {
            dows |= 1;
        }
        Ok(CronExpr {
            source: trimmed.to_string(),
            minutes: bits[0],
            hours: bits[1] as u32,
            doms: bits[2] as u32,
            months: bits[3] as u16,
            dows,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
            fixed: !fields[0].starts_with('*') && !fields[1].starts_with('*'),
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when neither the minute nor the hour field starts with `*` (Vixie's "fixed-time
    /// job"). `@hourly` is not fixed; `@daily`, `@weekly`, `@monthly`, `@yearly` are.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed
    }

    /// Whether any date matches at all. Every (month, day) pair that exists recurs on every
    /// weekday over the years (29 February within 28 years), so only a day-of-month that no
    /// selected month has (`30 2`, `31 4,6`) can make an expression fire never.
    pub fn can_fire(&self) -> bool {
        if self.day_or() {
            return true;
        }
        const MAX_DAYS: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0
                && (1..=MAX_DAYS[m as usize]).any(|d| self.doms & (1 << d) != 0)
        })
    }

    /// True when both day fields are restricted, so a day matching either fires.
    pub(super) fn day_or(&self) -> bool {
        !self.dom_star && !self.dow_star
    }

    /// Does the calendar date match the month and day fields?
    pub(super) fn date_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.doms & (1 << date.day()) != 0;
        let dow = self.dows & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.day_or() {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Does the wall-clock time (minute resolution) match all fields?
    pub(super) fn matches_wall(&self, wall: NaiveDateTime) -> bool {
        self.date_matches(wall.date())
            && self.hours & (1 << wall.hour()) != 0
            && self.minutes & (1u64 << wall.minute()) != 0
    }

    /// The first fire instant strictly after `after`, evaluated in the wall clock of `tz`.
    ///
    /// Daylight-saving changes follow Vixie cron: a fixed-time job (see
    /// [`is_fixed_time`](Self::is_fixed_time)) whose wall time is skipped fires once at the
    /// instant of the change (several skipped matches collapse into that one instant), and a
    /// fixed-time job whose wall time is repeated fires on the first pass only. Other jobs
    /// follow the wall clock: skipped wall times do not fire, repeated ones fire on both passes.
    ///
    /// Returns `None` when nothing matches within [`SEARCH_DAYS`] days of wall-clock dates.
    pub fn next_after(&self, after: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        self.next_after_with(after, tz, DstPolicy::Vixie)
    }

    /// The next `n` fire instants after `after` (fewer if the search gives up).
    pub fn upcoming(&self, after: DateTime<Utc>, tz: &Tz, n: usize) -> Vec<DateTime<Utc>> {
        self.upcoming_with(after, tz, n, DstPolicy::Vixie)
    }

    pub(super) fn upcoming_with(
        &self,
        after: DateTime<Utc>,
        tz: &Tz,
        n: usize,
        policy: DstPolicy,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after_with(cursor, tz, policy) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }

    pub(super) fn next_after_with(
        &self,
        after: DateTime<Utc>,
        tz: &Tz,
        policy: DstPolicy,
    ) -> Option<DateTime<Utc>> {
        let local_after = after.with_timezone(tz).naive_local();
        // Wall times earlier than `after`'s own wall time can only fire later when the clock
        // is about to fall back; then look back over the repeated interval (at most 3 hours).
        let lookback = if offset_secs(tz, after + Duration::hours(3)) < offset_secs(tz, after) {
            Duration::hours(3)
        } else {
            Duration::zero()
        };
        let start = local_after.checked_sub_signed(lookback)?;
        let start = start.with_second(0)?.with_nanosecond(0)?;
        let mut date = start.date();
        let last = date.checked_add_signed(Duration::days(SEARCH_DAYS))?;
        let mut from_time = start.time();
        while date <= last {
            if self.months & (1 << date.month()) == 0 {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                date = NaiveDate::from_ymd_opt(y, m, 1)?;
                from_time = NaiveTime::MIN;
                continue;
            }
            if self.date_matches(date)
                && let Some(t) = self.first_on_day(date, from_time, after, tz, policy)
            {
                return Some(t);
            }
            date = date.succ_opt()?;
            from_time = NaiveTime::MIN;
        }
        None
    }

    /// The earliest instant > `after` among the wall times of `date` at or after `from`.
    fn first_on_day(
        &self,
        date: NaiveDate,
        from: NaiveTime,
        after: DateTime<Utc>,
        tz: &Tz,
        policy: DstPolicy,
    ) -> Option<DateTime<Utc>> {
        let mut best: Option<DateTime<Utc>> = None;
        for h in from.hour()..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let m0 = if h == from.hour() { from.minute() } else { 0 };
            for m in m0..60 {
                if self.minutes & (1u64 << m) == 0 {
                    continue;
                }
                let wall = date.and_hms_opt(h, m, 0)?;
                let (earliest, second) = self.instants_of(wall, tz, policy);
                for t in [earliest, second].into_iter().flatten() {
                    if t > after && best.is_none_or(|b| t < b) {
                        best = Some(t);
                    }
                }
                // No later wall time can have an instant before this wall time's earliest.
                if earliest.is_some_and(|e| e > after) {
                    return best;
                }
            }
        }
        best
    }

    /// The instants at which wall time `wall` fires: (first, optional second pass).
    fn instants_of(
        &self,
        wall: NaiveDateTime,
        tz: &Tz,
        policy: DstPolicy,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => (Some(t.with_timezone(&Utc)), None),
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                // A jump back of three hours or more is a clock reset: fixed-time jobs too
                // fire on the second pass.
                let reset = (second - first).num_seconds() >= CLOCK_RESET_SECS;
                if policy == DstPolicy::Vixie && (!self.fixed || reset) {
                    (Some(first), Some(second))
                } else {
                    (Some(first), None)
                }
            }
            LocalResult::None => {
                if policy == DstPolicy::Vixie && self.fixed {
                    // No catch-up across a jump forward of three hours or more.
                    let end = gap_end(wall, tz);
                    let reset = end.is_some_and(|e| {
                        i64::from(offset_secs(tz, e) - offset_secs(tz, e - Duration::seconds(1)))
                            >= CLOCK_RESET_SECS
                    });
                    if reset { (None, None) } else { (end, None) }
                } else {
                    (None, None)
                }
            }
        }
    }
}

/// The instant at which the gap containing the nonexistent wall time `wall` ends.
fn gap_end(wall: NaiveDateTime, tz: &Tz) -> Option<DateTime<Utc>> {
    let mut w = wall;
    for _ in 0..(26 * 60) {
        w = w.checked_add_signed(Duration::minutes(1))?;
        match tz.from_local_datetime(&w) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    None
}

/// UTC offset of `tz` at instant `t`, in seconds.
pub(super) fn offset_secs(tz: &Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

/// Instants at which the offset of `tz` changes in `(from, to]`.
pub fn transitions(tz: &Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let step = Duration::hours(6);
    let mut t = from;
    while t < to {
        let next = (t + step).min(to);
        if offset_secs(tz, t) != offset_secs(tz, next) {
            // Bisect to the second.
            let (mut lo, mut hi) = (t.timestamp(), next.timestamp());
            let off_lo = offset_secs(tz, t);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let m = DateTime::from_timestamp(mid, 0).unwrap_or(t);
                if offset_secs(tz, m) == off_lo {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            if let Some(x) = DateTime::from_timestamp(hi, 0) {
                out.push(x);
            }
        }
        t = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(e: &str) -> String {
        CronExpr::parse(e).unwrap_err().to_string()
    }

    #[test]
    fn error_messages_name_field_and_problem() {
        assert_eq!(
            err("61 * * * *"),
            "invalid cron expression \"61 * * * *\": minute field value 61 is out of range 0-59"
        );
        assert_eq!(
            err("* * *"),
            "invalid cron expression \"* * *\": expected 5 fields (minute hour day-of-month \
             month day-of-week), found 3"
        );
        assert!(err("0 24 * * *").contains("hour field value 24 is out of range 0-23"));
        assert!(err("0 0 0 * *").contains("day-of-month field value 0 is out of range 1-31"));
        assert!(err("0 0 32 * *").contains("day-of-month field value 32 is out of range 1-31"));
        assert!(err("0 0 * 13 *").contains("month field value 13 is out of range 1-12"));
        assert!(err("0 0 * foo *").contains("month field value \"foo\" is neither a name"));
        assert!(err("0 0 * * 8").contains("day-of-week field value 8 is out of range 0-7"));
        assert!(
            err("0 0 * * fri-sun").contains("day-of-week field range \"fri-sun\" runs backwards")
        );
        assert!(err("0 0 * * fri-sun").contains("5-7"));
        assert!(err("0 0 * * xyz").contains("day-of-week field value \"xyz\" is neither"));
        assert!(err("*/0 * * * *").contains("minute field step \"0\""));
        assert!(err("x * * * *").contains("minute field value \"x\" is not a number 0-59"));
        assert!(err("1,,2 * * * *").contains("minute field \"1,,2\" has an empty list element"));
        assert!(err("30-10 * * * *").contains("minute field range \"30-10\" runs backwards"));
        assert!(err("0 mon * * *").contains("hour field value \"mon\" is not a number"));
        assert!(err("@reboot").contains("@reboot runs once at boot and is not a time schedule"));
        assert!(err("@fortnightly").contains("unknown macro \"@fortnightly\""));
        assert!(err("").contains("the expression is empty"));
        assert!(err("* * * * * *").contains("expected 5 fields"));
        let six = err("0 30 3 * * *");
        assert!(
            six.contains("found 6; a seconds field is not supported")
                && six.ends_with("drop it, as in \"30 3 * * *\""),
            "{six}"
        );
        assert!(err("1-2-3 * * * *").contains("minute field value \"2-3\""));
        assert!(err("*/5/2 * * * *").contains("minute field step \"5/2\""));
        assert!(err("-5 * * * *").contains("minute field has an empty value"));
        assert!(err("99999999999 * * * *").contains("out of range 0-59"));
        // One sentence: no line breaks.
        for e in ["61 * * * *", "@reboot", "0 0 * * fri-sun", ""] {
            assert!(!err(e).contains('\n'));
        }
    }

    #[test]
    fn fixed_time_classification() {
        let fixed = |e: &str| CronExpr::parse(e).unwrap().is_fixed_time();
        assert!(!fixed("@hourly"));
        assert!(fixed("@daily") && fixed("@midnight") && fixed("@weekly"));
        assert!(fixed("@monthly") && fixed("@yearly") && fixed("@annually"));
        assert!(fixed("30 2 * * *"));
        assert!(fixed("0,30 1-3 * * *"));
        assert!(!fixed("*/5 2 * * *"));
        assert!(!fixed("30 */2 * * *"));
        assert!(fixed("0-59 0-23 * * *"));
    }

    #[test]
    fn names_and_sunday() {
        let a = CronExpr::parse("0 0 * JAN,mar Sun").unwrap();
        let b = CronExpr::parse("0 0 * 1,3 7").unwrap();
        assert_eq!(a.months, b.months);
        assert_eq!(a.dows, b.dows);
        assert_eq!(a.dows, 1);
        let c = CronExpr::parse("0 0 * * mon-fri/2").unwrap();
        assert_eq!(c.dows, 0b0010_1010);
        // Debian cron 3.0pl1 (entry.c): a step after a single number is refused; a step
        // larger than its range selects the first value.
        assert!(err("5/15 * * * *").contains("step after a single number"));
        assert!(err("0 0/10 * * *").contains("write 0-23/10 or */10"));
        let d = CronExpr::parse("0 0 */100 * *").unwrap();
        assert_eq!(d.doms, 1 << 1);
        let d = CronExpr::parse("*/60 10-20/99 * * *").unwrap();
        assert_eq!((d.minutes, d.hours), (1, 1 << 10));
    }

    /// xorshift64* so the test needs no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn garbage_never_panics() {
        let alphabet: Vec<char> = "0123456789*/-,@ \tabcdefjmnorstuwyLW#?é日\u{0}7"
            .chars()
            .collect();
        let tz: Tz = "Europe/Prague".parse().unwrap();
        let base = Utc.with_ymd_and_hms(2027, 3, 27, 23, 0, 0).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for i in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let mut s: String = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            if i % 3 == 0 {
                // Bias towards five-field shapes so evaluation is exercised too.
                let f: Vec<String> = (0..5)
                    .map(|_| {
                        const TOKENS: [&str; 12] = [
                            "*", "*/2", "1-5", "3", "0", "1,2", "5/15", "mon", "jan", "7", "-", "/",
                        ];
                        let n = if rng.next().is_multiple_of(5) { 2 } else { 1 };
                        (0..n).map(|_| TOKENS[(rng.next() % 12) as usize]).collect()
                    })
                    .collect();
                s = f.join(" ");
            }
            if let Ok(e) = CronExpr::parse(&s) {
                parsed += 1;
                let _ = e.upcoming(base, &tz, 3);
            }
        }
        assert!(parsed > 50, "fuzzer produced too few valid expressions");
    }

    #[test]
    fn impossible_expression_is_quick_none() {
        let e = CronExpr::parse("0 0 30 2 *").unwrap();
        let start = std::time::Instant::now();
        let base = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(e.next_after(base, &chrono_tz::UTC), None);
        assert!(start.elapsed().as_secs() < 2);
    }

    #[test]
    fn prague_dst_rules() {
        let tz: Tz = "Europe/Prague".parse().unwrap();
        let utc = |d, h, m| Utc.with_ymd_and_hms(2027, 3, d, h, m, 0).unwrap();
        // Fixed job in the gap fires at 03:00 CEST = 01:00 UTC, once.
        let e = CronExpr::parse("0,30 2 * * *").unwrap();
        let got = e.upcoming(utc(27, 12, 0), &tz, 3);
        assert_eq!(got, vec![utc(28, 1, 0), utc(29, 0, 0), utc(29, 0, 30)]);
        // Wildcard job skips the gap.
        let e = CronExpr::parse("30 * * * *").unwrap();
        let got = e.upcoming(utc(28, 0, 0), &tz, 2);
        assert_eq!(got, vec![utc(28, 0, 30), utc(28, 1, 30)]);
        // Autumn: wildcard fires twice, fixed once.
        let o = |h, m| Utc.with_ymd_and_hms(2027, 10, 31, h, m, 0).unwrap();
        let e = CronExpr::parse("30 * * * *").unwrap();
        let got = e.upcoming(o(0, 0), &tz, 3);
        assert_eq!(got, vec![o(0, 30), o(1, 30), o(2, 30)]);
        let e = CronExpr::parse("30 2 * * *").unwrap();
        let got = e.upcoming(o(0, 0), &tz, 1);
        assert_eq!(got, vec![o(0, 30)]);
        let e = CronExpr::parse("30 2 * * *").unwrap();
        assert!(e.next_after(o(0, 30), &tz).unwrap() > o(23, 0));
    }
}
