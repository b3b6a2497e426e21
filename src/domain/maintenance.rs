//! Who maintains the repositories and when: the settings `maintenance_device` and
//! `maintenance_schedule`, read by `maintain`, `sync` (the maintainers' timer/task) and
//! `status`, and the checks `settings set` applies to the maintenance settings.
//!
//! Exactly one device runs forget and prune on each repository: restic's forget and prune take
//! an exclusive lock, so a fleet where every host prunes after its backup makes the other
//! hosts' backups fail, and nobody would notice when the machine that pruned is gone. A shared
//! repository is maintained by the one `maintenance_device`; a repository one device writes
//! alone (see [`crate::domain::repository`]) by that device, so its lock blocks nobody else.
//! `status` reports an offline maintainer and overdue maintenance.

use crate::domain::calendar::CronExpr;
use crate::domain::repository::Maintainer;
use crate::domain::settings::Settings;
use crate::usage_err;

/// `maintenance_schedule` when the setting is empty.
pub const DEFAULT_SCHEDULE: &str = "@weekly";

/// The maintenance schedule; an invalid stored value is a configuration error naming the fix.
pub fn schedule(settings: &Settings) -> anyhow::Result<CronExpr> {
    let text = settings
        .get("maintenance_schedule")
        .unwrap_or(DEFAULT_SCHEDULE);
    let expr = CronExpr::parse(text.trim()).map_err(|e| {
        usage_err!(
            "setting maintenance_schedule {text:?} is not a cron expression ({e}); fix it with \
             `restic-fleet settings set maintenance_schedule '@weekly'`"
        )
    })?;
    // A value stored before `settings set` refused it, or by plain SQL: a timer that never
    // fires would leave the repository unmaintained without a word.
    if !expr.can_fire() {
        return Err(usage_err!(
            "setting maintenance_schedule {text:?} can never fire (no such date, like 30 \
             February); fix it with `restic-fleet settings set maintenance_schedule '@weekly'`"
        ));
    }
    Ok(expr)
}

/// The schedule of the maintenance timer/task on `device_id` (its `settings` in force), when it
/// maintains a repository: it is `owner` (the shared repositories), or it has jobs and its
/// `repository_url` makes their repository its own (its own setting, or a `{device_id}` or
/// `{job_id}` template). `None` otherwise, so that sync removes the timer/task there.
pub fn schedule_for(
    settings: &Settings,
    owner: Option<&str>,
    device_id: &str,
    has_jobs: bool,
) -> anyhow::Result<Option<CronExpr>> {
    if owner == Some(device_id) || (has_jobs && maintains_own(settings, device_id)) {
        Ok(Some(schedule(settings)?))
    } else {
        Ok(None)
    }
}

/// Whether the device's jobs go to a repository it maintains itself.
pub fn maintains_own(settings: &Settings, device_id: &str) -> bool {
    settings.get("repository_url").is_some_and(|template| {
        let own = settings.own_keys().contains("repository_url");
        crate::domain::repository::maintainer(template, own, device_id) != Maintainer::Shared
    })
}

/// A size limit for `prune --max-unused`: `unlimited`, a percentage, or bytes with k/m/g/t.
fn valid_max_unused(v: &str) -> bool {
    v == "unlimited" || valid_size(v, true)
}

/// `check --read-data-subset`: `n/t`, a percentage, or a size.
fn valid_subset(v: &str) -> bool {
    if let Some((n, t)) = v.split_once('/') {
        return matches!((n.parse::<u32>(), t.parse::<u32>()), (Ok(n), Ok(t)) if n >= 1 && n <= t);
    }
    valid_size(v, true)
}

fn valid_size(v: &str, percent: bool) -> bool {
    let (num, unit) = match v
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => v.split_at(i),
        None => (v, ""),
    };
    let ok_num = !num.is_empty() && num.parse::<f64>().is_ok_and(|n| n >= 0.0);
    let ok_unit = matches!(unit, "" | "k" | "K" | "m" | "M" | "g" | "G" | "t" | "T")
        || (percent && unit == "%" && num.parse::<f64>().is_ok_and(|n| n <= 100.0));
    ok_num && ok_unit && v.len() <= 20
}

/// Checks a maintenance setting's value before `settings set` writes it (the same values are
/// checked again before they become restic arguments). Other keys pass.
pub fn validate_setting(key: &str, value: &str) -> anyhow::Result<()> {
    let v = value.trim();
    match key {
        "maintenance_schedule" if !v.is_empty() => {
            // Also refuses what can never fire (`0 3 30 2 *`): maintenance would never run.
            crate::domain::calendar::storable_cron(v).map_err(|e| {
                usage_err!(
                    "setting maintenance_schedule {value:?} is refused: {e}; use 5 fields like \
                     '0 3 * * 0' or a macro like @weekly"
                )
            })?;
        }
        "prune_max_unused" if !v.is_empty() && !valid_max_unused(v) => {
            return Err(usage_err!(
                "setting prune_max_unused {value:?} is not a restic limit; use a percentage \
                 (5%), a size (100M) or unlimited, or empty for restic's default"
            ));
        }
        "check_read_data_subset" if !v.is_empty() && !valid_subset(v) => {
            return Err(usage_err!(
                "setting check_read_data_subset {value:?} is not a restic subset; use a \
                 percentage (2%), n/t (1/10) or a size (500M), or empty to check the structure \
                 only"
            ));
        }
        "maintenance_device" if v.chars().any(|c| c.is_control()) => {
            return Err(usage_err!(
                "setting maintenance_device must be a device id, not {value:?}"
            ));
        }
        "retention_default" => crate::domain::retention::validate_default_setting(v)?,
        _ => {}
    }
    Ok(())
}

/// `--max-unused=...` for prune, if set (checked again here: it becomes a restic argument).
pub fn prune_args(settings: &Settings) -> anyhow::Result<Vec<String>> {
    match settings.get("prune_max_unused").map(str::trim) {
        None => Ok(vec![]),
        Some(v) if valid_max_unused(v) => Ok(vec![format!("--max-unused={v}")]),
        Some(v) => Err(usage_err!(
            "setting prune_max_unused {v:?} is not a restic limit; fix it with `restic-fleet \
             settings set prune_max_unused 5%`"
        )),
    }
}

/// `--read-data-subset=...` for check, if set.
pub fn check_args(settings: &Settings) -> anyhow::Result<Vec<String>> {
    match settings.get("check_read_data_subset").map(str::trim) {
        None => Ok(vec![]),
        Some(v) if valid_subset(v) => Ok(vec![format!("--read-data-subset={v}")]),
        Some(v) => Err(usage_err!(
            "setting check_read_data_subset {v:?} is not a restic subset; fix it with \
             `restic-fleet settings set check_read_data_subset 2%`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn the_timer_belongs_to_the_maintainers_only() {
        let s = settings(&[("maintenance_schedule", ""), ("repository_url", "/srv/all")]);
        let weekly = schedule_for(&s, Some("nas"), "nas", false)
            .unwrap()
            .unwrap();
        assert_eq!(weekly.as_str(), "@weekly");
        assert!(
            schedule_for(&s, Some("nas"), "laptop", true)
                .unwrap()
                .is_none()
        );
        assert!(schedule_for(&s, None, "nas", true).unwrap().is_none());
        // A device writing its own repository maintains it, when it has jobs.
        let per = settings(&[("repository_url", "/srv/{device_id}")]);
        assert!(
            schedule_for(&per, Some("nas"), "laptop", true)
                .unwrap()
                .is_some()
        );
        assert!(
            schedule_for(&per, Some("nas"), "laptop", false)
                .unwrap()
                .is_none()
        );
        let per_job = settings(&[("repository_url", "/srv/{job_id}")]);
        assert!(
            schedule_for(&per_job, None, "laptop", true)
                .unwrap()
                .is_some()
        );
        let origin = settings(&[("repository_url", "/srv/{origin_name}")]);
        assert!(
            schedule_for(&origin, Some("nas"), "laptop", true)
                .unwrap()
                .is_none()
        );
        let own = settings(&[("repository_url", "/srv/mine")])
            .with_own("laptop", ["repository_url".to_string()]);
        assert!(
            schedule_for(&own, Some("nas"), "laptop", true)
                .unwrap()
                .is_some()
        );
        let bad = settings(&[("maintenance_schedule", "x")]);
        assert!(schedule_for(&bad, Some("nas"), "nas", false).is_err());
        let never = settings(&[("maintenance_schedule", "0 3 30 2 *")]);
        assert!(schedule_for(&never, Some("nas"), "nas", false).is_err());
        assert!(validate_setting("maintenance_schedule", "0 3 30 2 *").is_err());
        assert!(validate_setting("maintenance_schedule", "0 3 31 4,6 *").is_err());
        assert!(validate_setting("maintenance_schedule", "0 3 29 2 *").is_ok());
        assert!(
            schedule_for(&bad, Some("nas"), "laptop", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn restic_values_are_checked() {
        for ok in ["5%", "100M", "unlimited", "0", "2.5%", "1G"] {
            assert!(validate_setting("prune_max_unused", ok).is_ok(), "{ok}");
        }
        for bad in ["5%%", "--x", "-1", "101%", "5 %", "M"] {
            assert!(validate_setting("prune_max_unused", bad).is_err(), "{bad}");
        }
        for ok in ["2%", "1/10", "500M", ""] {
            assert!(
                validate_setting("check_read_data_subset", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["0/10", "11/10", "x", "--read-data"] {
            assert!(
                validate_setting("check_read_data_subset", bad).is_err(),
                "{bad}"
            );
        }
        assert!(validate_setting("maintenance_schedule", "0 3 * * 0").is_ok());
        assert!(validate_setting("maintenance_schedule", "weekly").is_err());
        assert!(validate_setting("retention_default", "keep-daily=7").is_ok());
        assert!(validate_setting("retention_default", "keep-daily=x").is_err());
        assert_eq!(
            prune_args(&settings(&[("prune_max_unused", "10%")])).unwrap(),
            ["--max-unused=10%"]
        );
        assert!(check_args(&settings(&[])).unwrap().is_empty());
    }
}
