//! Schedules as stored in `schedules`, and the next-run arithmetic the whole product shares.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::calendar::{CronExpr, Schedule};
use crate::usage_err;

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct ScheduleRow {
    pub id: i32,
    pub job_id: Uuid,
    pub schedule_type: String,
    pub cron_expression: Option<String>,
    pub interval_seconds: Option<i32>,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
}

impl ScheduleRow {
    /// Parses the row; the error is one sentence naming the schedule and what is wrong.
    pub fn schedule(&self) -> Result<Schedule, String> {
        match self.schedule_type.as_str() {
            "cron" => {
                let expr = self.cron_expression.as_deref().unwrap_or("");
                CronExpr::parse(expr)
                    .map(Schedule::Cron)
                    .map_err(|e| format!("schedule {}: {e}", self.id))
            }
            "interval" => match self.interval_seconds {
                Some(s) if s > 0 => Ok(Schedule::Interval { seconds: s as u64 }),
                other => Err(format!(
                    "schedule {}: interval_seconds must be a positive number of seconds, found {}",
                    self.id,
                    other
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "NULL".into())
                )),
            },
            other => Err(format!(
                "schedule {}: unknown schedule_type {other:?} (expected cron or interval)",
                self.id
            )),
        }
    }
}

/// The next run instant of a schedule: for cron the first fire time strictly after `now`; for an
/// interval `last_run_at + interval` (`now + interval` when it never ran).
pub fn next_run(
    schedule: &Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Cron(_) => schedule.next_after(now, tz),
        Schedule::Interval { .. } => schedule.next_after(last_run.unwrap_or(now), tz),
    }
}

/// A schedule in one short phrase: `cron 0 2 * * *` or `every 3600s`.
pub fn describe_schedule(s: &ScheduleRow) -> String {
    let what = match (
        s.schedule_type.as_str(),
        &s.cron_expression,
        s.interval_seconds,
    ) {
        ("cron", Some(c), _) => format!("cron {c}"),
        (_, _, Some(i)) => format!("every {i}s"),
        (t, _, _) => t.to_string(),
    };
    if s.enabled {
        what
    } else {
        format!("{what} (disabled)")
    }
}

/// An `--interval` value: whole seconds (`3600`), or a number with a unit: `90s`, `30m`, `1h`,
/// `2d`, `1w`. The bounds are checked by [`parse_schedule`], so the value may be out of range
/// here; clap calls this and prints the sentence on failure.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not an interval: give seconds (3600) or a number with a unit s, m, h, d \
             or w (90s, 30m, 1h, 2d, 1w)"
        )
    };
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    let n: i64 = digits.trim().parse().map_err(|_| bad())?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    Ok(n.saturating_mul(scale))
}

/// Validates `--cron`/`--interval` into a schedule.
pub fn parse_schedule(cron: Option<&str>, interval: Option<i64>) -> anyhow::Result<Schedule> {
    match (cron, interval) {
        // Refuses what can never fire or does not fit the column.
        (Some(expr), None) => crate::domain::calendar::storable_cron(expr)
            .map(Schedule::Cron)
            .map_err(|e| usage_err!("{e}")),
        (None, Some(s)) if s > 0 && s <= i64::from(i32::MAX) => {
            Ok(Schedule::Interval { seconds: s as u64 })
        }
        (None, Some(s)) => Err(usage_err!(
            "--interval {s} must be a positive number of seconds (at most {}), e.g. 3600 or 1h for \
             hourly",
            i32::MAX
        )),
        _ => Err(usage_err!(
            "give exactly one of --cron EXPR or --interval DURATION"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_take_seconds_or_a_unit() {
        for (text, secs) in [("3600", 3600), ("90s", 90), ("30m", 1800), ("1h", 3600)] {
            assert_eq!(parse_interval(text), Ok(secs), "{text}");
        }
        assert_eq!(parse_interval("2d"), Ok(172_800));
        assert_eq!(parse_interval("1W"), Ok(604_800));
        assert_eq!(parse_interval("-60"), Ok(-60));
        for bad in ["soon", "1x", "h", "", "1.5h"] {
            let e = parse_interval(bad).unwrap_err();
            assert!(e.contains("30m, 1h, 2d"), "{bad}: {e}");
        }
        assert!(parse_schedule(None, parse_interval("1h").ok()).is_ok());
    }
}
