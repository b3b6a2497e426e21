//! Relica schedules as cron lines: one line per time of day, the day-of-week/day-of-month
//! combination cron cannot say exactly, and the extra lines that make days 29-31 run on the
//! last day of shorter months, as Relica does. Each approximation is explained in a warning.

use std::collections::BTreeSet;

use serde_json::json;

use super::document::{Backup, TimeOfDay};
use super::metadata::scrub_secrets;
use super::planned::PlannedSchedule;

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn sorted_set(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The sorted distinct values, or none ("every") when they are all `count` possible ones.
fn every_when_complete(v: &[u8], count: usize) -> Vec<u8> {
    let set = sorted_set(v);
    if set.len() == count { vec![] } else { set }
}

fn join(v: &[u8]) -> String {
    v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

fn list_or_star(v: &[u8]) -> String {
    if v.is_empty() { "*".into() } else { join(v) }
}

/// `days_of_week` sets that cron can write as `*/s` (0, s, 2s, ... up to 6), which starts with
/// `*` and therefore combines with a day-of-month list by AND under Vixie's rule.
fn dow_step_form(dow: &[u8]) -> Option<u8> {
    (2..=6u8).find(|&s| (0..=6u8).step_by(s as usize).collect::<Vec<_>>() == dow)
}

/// The day fields of one cron line, before the time of day is added.
struct DayLine {
    dom: String,
    months: String,
    purpose: String,
}

/// Turns a Relica schedule into cron lines (`minute hour dom month dow`, device local time, as
/// Relica). Rules:
///
/// * `scheduled: false` -> no schedule (manual-only job); times or days present are only kept in
///   metadata, with a warning. `scheduled: true` without `times_of_day` -> no schedule, warning.
/// * One line per distinct time of day: `M H dom month dow`, lists sorted and deduplicated, an
///   empty or complete list written `*`; weekday numbers as in Relica (0 = Sunday).
/// * Both `days_of_week` and `days_of_month` set: Relica is taken to require both (AND). Vixie
///   cron fires when either matches, so AND is exact only when the weekday set is `*/s`
///   ({0,2,4,6}, {0,3,6}, {0,4}, {0,5}, {0,6}); otherwise only the restriction that fires on
///   fewer days is kept (days of month if |dom|*7 <= |dow|*31, else days of week), a superset
///   of Relica's days, with a warning: backups may run more often than in Relica, never less.
/// * Days 29-31: Relica runs such a backup on the last day of a month that lacks the day. Extra
///   lines add day 30 in 30-day months for 31, and in February day 28 for any day >= 29 plus
///   day 29 for any day >= 30. In a leap year this also fires on Feb 28 when 28 was not asked
///   for (cron cannot tell leap years); the warning says so.
pub(super) fn plan_schedules(
    b: &Backup,
    label: &str,
    warnings: &mut Vec<String>,
) -> Vec<PlannedSchedule> {
    let Some(times) = times_to_schedule(b, label, warnings) else {
        return Vec::new();
    };
    let s = &b.schedule;
    let dow = every_when_complete(&s.days_of_week, 7);
    let dom = every_when_complete(&s.days_of_month, 31);
    let mon = every_when_complete(&s.months_of_year, 12);

    let (dom_used, dow_field, days_exact) = day_fields(&dom, &dow, label, warnings);
    let mut day_lines = vec![DayLine {
        dom: list_or_star(&dom_used),
        months: list_or_star(&mon),
        purpose: "relica schedule".into(),
    }];
    let (extra, months_exact) = short_month_lines(&dom_used, &mon, label, warnings);
    day_lines.extend(extra);
    cron_rows(
        b,
        &times,
        &day_lines,
        &dow_field,
        days_exact && months_exact,
    )
}

/// The distinct times of day to schedule, or `None` when the backup gets no schedule
/// (manual-only, or scheduled without a time), with the warnings that say so.
fn times_to_schedule(
    b: &Backup,
    label: &str,
    warnings: &mut Vec<String>,
) -> Option<Vec<TimeOfDay>> {
    let s = &b.schedule;
    let times: Vec<TimeOfDay> = s
        .times_of_day
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !s.scheduled {
        if !times.is_empty()
            || !s.days_of_week.is_empty()
            || !s.days_of_month.is_empty()
            || !s.months_of_year.is_empty()
        {
            warnings.push(format!(
                "{label}: schedule.scheduled is false, so the job is imported manual-only; the \
                 unused Relica times and days are kept in metadata (relica.schedule)"
            ));
        }
        return None;
    }
    if times.is_empty() {
        warnings.push(format!(
            "{label}: schedule.scheduled is true but times_of_day is empty; no schedule \
             created, the job runs only when started by hand"
        ));
        return None;
    }
    if times.len() < s.times_of_day.len() {
        warnings.push(format!(
            "{label}: times_of_day lists a time more than once; one schedule per distinct time"
        ));
    }
    Some(times)
}

/// The days of month the lines use and the day-of-week field, and whether they say exactly
/// what Relica does. When both day lists are set and the weekdays have no `*/s` form, only the
/// list that fires on fewer days is kept (a superset of Relica's days), with a warning.
fn day_fields(
    dom: &[u8],
    dow: &[u8],
    label: &str,
    warnings: &mut Vec<String>,
) -> (Vec<u8>, String, bool) {
    if dom.is_empty() || dow.is_empty() {
        return (dom.to_vec(), list_or_star(dow), true);
    }
    if let Some(step) = dow_step_form(dow) {
        return (dom.to_vec(), format!("*/{step}"), true);
    }
    let keep_dom = dom.len() * 7 <= dow.len() * 31;
    let (chosen, what) = if keep_dom {
        (
            format!("days_of_month {dom:?}"),
            "every such day of the month, whatever the weekday",
        )
    } else {
        (
            format!("days_of_week {dow:?}"),
            "every such weekday, whatever the day of the month",
        )
    };
    warnings.push(format!(
        "{label}: Relica runs this backup only on days in both days_of_week {dow:?} \
         (0 = Sunday) and days_of_month {dom:?}; cron cannot say \"both\" (Vixie cron \
         fires when either matches), so the schedule keeps only {chosen} and fires on \
         {what}: more often than Relica, never less"
    ));
    if keep_dom {
        (dom.to_vec(), "*".into(), false)
    } else {
        (vec![], join(dow), false)
    }
}

/// The extra lines for days 29-31 (day 30 of 30-day months, the end of February) and whether
/// the schedule stays exact with them (not when February 28 is added for a leap-year 29).
fn short_month_lines(
    dom_used: &[u8],
    mon: &[u8],
    label: &str,
    warnings: &mut Vec<String>,
) -> (Vec<DayLine>, bool) {
    let mut lines = Vec::new();
    let mut exact = true;
    let Some(&max) = dom_used.last().filter(|&&m| m >= 29) else {
        return (lines, exact);
    };
    let in_months = |m: u8| mon.is_empty() || mon.contains(&m);
    let mut notes = Vec::new();
    let thirty: Vec<u8> = [4u8, 6, 9, 11]
        .into_iter()
        .filter(|&m| in_months(m))
        .collect();
    if max == 31 && !dom_used.contains(&30) && !thirty.is_empty() {
        lines.push(DayLine {
            dom: "30".into(),
            months: join(&thirty),
            purpose: "last day of 30-day months, for days_of_month 31".into(),
        });
        notes.push(format!(
            "day 30 in {}",
            thirty
                .iter()
                .map(|&m| MONTH_NAMES[m as usize - 1])
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if in_months(2) {
        let mut feb: Vec<u8> = vec![28];
        if max >= 30 {
            feb.push(29);
        }
        feb.retain(|d| !dom_used.contains(d));
        if !feb.is_empty() {
            lines.push(DayLine {
                dom: join(&feb),
                months: "2".into(),
                purpose: format!("last day of February, for days_of_month {max}"),
            });
            notes.push(format!("Feb {}", join(&feb)));
            if !dom_used.contains(&28) {
                exact = false;
            }
        }
    }
    if !notes.is_empty() {
        let leap = if dom_used.contains(&28) {
            String::new()
        } else {
            "; in leap years it also fires on Feb 28 (cron cannot tell leap years)".into()
        };
        warnings.push(format!(
            "{label}: days_of_month {dom_used:?} includes days some months lack; Relica then \
             runs on the month's last day, so extra schedules were added ({}){leap}",
            notes.join("; ")
        ));
    }
    (lines, exact)
}

/// One schedule row per time of day and day line, its metadata recording the Relica schedule.
fn cron_rows(
    b: &Backup,
    times: &[TimeOfDay],
    day_lines: &[DayLine],
    dow_field: &str,
    exact: bool,
) -> Vec<PlannedSchedule> {
    let s = &b.schedule;
    let mut out = Vec::new();
    for t in times {
        for line in day_lines {
            let mut metadata = json!({
                "source": "relica",
                "relica_backup_id": b.id,
                "relica_time_of_day": t.to_string(),
                "relica_days_of_week": s.days_of_week,
                "relica_days_of_month": s.days_of_month,
                "relica_months_of_year": s.months_of_year,
                "relica_flexible": s.flexible,
                "exact": exact,
                "purpose": line.purpose,
            });
            scrub_secrets(&mut metadata);
            out.push(PlannedSchedule {
                cron_expression: format!(
                    "{} {} {} {} {dow_field}",
                    t.minute, t.hour, line.dom, line.months
                ),
                metadata,
            });
        }
    }
    out
}
