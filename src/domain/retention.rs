//! Retention policies: restic forget's `--keep-*` options per job (table `job_retention`) and
//! the fleet default (setting `retention_default`). A policy is validated where it is written
//! (`job edit`, `settings set`, `relica-migrate`) and again where it becomes restic arguments.

use serde::Serialize;

use crate::usage_err;

/// What restic forget keeps of one job's snapshots. At least one field is set in a stored or
/// parsed policy; [`RetentionPolicy::is_empty`] is the "keep everything" value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RetentionPolicy {
    pub keep_last: Option<i32>,
    pub keep_hourly: Option<i32>,
    pub keep_daily: Option<i32>,
    pub keep_weekly: Option<i32>,
    pub keep_monthly: Option<i32>,
    pub keep_yearly: Option<i32>,
    pub keep_within: Option<String>,
}

/// The option names, as restic and `retention_default` spell them.
const COUNT_KEYS: [&str; 6] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, v)| v.is_none()) && self.keep_within.is_none()
    }

    fn counts(&self) -> [(&'static str, Option<i32>); 6] {
        [
            (COUNT_KEYS[0], self.keep_last),
            (COUNT_KEYS[1], self.keep_hourly),
            (COUNT_KEYS[2], self.keep_daily),
            (COUNT_KEYS[3], self.keep_weekly),
            (COUNT_KEYS[4], self.keep_monthly),
            (COUNT_KEYS[5], self.keep_yearly),
        ]
    }

    fn count_mut(&mut self, key: &str) -> Option<&mut Option<i32>> {
        Some(match key {
            "keep-last" => &mut self.keep_last,
            "keep-hourly" => &mut self.keep_hourly,
            "keep-daily" => &mut self.keep_daily,
            "keep-weekly" => &mut self.keep_weekly,
            "keep-monthly" => &mut self.keep_monthly,
            "keep-yearly" => &mut self.keep_yearly,
            _ => return None,
        })
    }

    /// Checks every value (counts 1..=1000000, keep-within a restic duration).
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in self.counts() {
            if let Some(n) = v
                && !(1..=1_000_000).contains(&n)
            {
                return Err(format!(
                    "--{key} {n} is out of range; give a number of snapshots from 1 to 1000000"
                ));
            }
        }
        if let Some(w) = &self.keep_within {
            validate_duration(w)?;
        }
        Ok(())
    }

    /// restic forget arguments (`--keep-last=2`, ...), in a fixed order. The policy is checked
    /// again here because it comes from the database and becomes part of a command line.
    pub fn restic_args(&self) -> Result<Vec<String>, String> {
        self.validate()?;
        let mut out: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|(k, v)| v.map(|n| format!("--{k}={n}")))
            .collect();
        if let Some(w) = &self.keep_within {
            out.push(format!("--keep-within={w}"));
        }
        Ok(out)
    }

    /// `keep-last=2 keep-within=30d` (the `retention_default` syntax); `keep everything` when
    /// empty.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "keep everything".to_string();
        }
        let mut parts: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|(k, v)| v.map(|n| format!("{k}={n}")))
            .collect();
        if let Some(w) = &self.keep_within {
            parts.push(format!("keep-within={w}"));
        }
        parts.join(" ")
    }

    /// Parses the `retention_default` syntax: `keep-NAME=VALUE` items separated by spaces or
    /// commas. An empty text is the empty policy.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = RetentionPolicy::default();
        for item in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "{item:?} is not KEY=VALUE; write the policy like \"keep-daily=7 keep-weekly=4\""
                ));
            };
            let key = key.trim().trim_start_matches("--");
            if key == "keep-within" {
                p.keep_within = Some(value.to_string());
            } else if let Some(slot) = p.count_mut(key) {
                *slot = Some(value.parse::<i32>().map_err(|_| {
                    format!("{key}={value:?}: the value must be a whole number of snapshots")
                })?);
            } else {
                return Err(format!(
                    "{key:?} is not a retention option; use keep-last, keep-hourly, keep-daily, \
                     keep-weekly, keep-monthly, keep-yearly or keep-within"
                ));
            }
        }
        p.validate()?;
        Ok(p)
    }
}

/// A restic duration: one or more NUMBER+UNIT with UNIT in y, m, d, h (like `30d`, `1y6m`).
pub fn validate_duration(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "keep-within {text:?} is not a restic duration; write a number and a unit (y, m, d, \
             h), e.g. 30d or 1y6m"
        )
    };
    if text.is_empty() || text.len() > 32 {
        return Err(bad());
    }
    let mut digits = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => digits += 1,
            'y' | 'm' | 'd' | 'h' if digits > 0 => digits = 0,
            _ => return Err(bad()),
        }
    }
    if digits != 0 {
        return Err(bad());
    }
    Ok(())
}

/// Validates the `retention_default` setting's value (called by `settings set`).
pub fn validate_default_setting(value: &str) -> anyhow::Result<()> {
    RetentionPolicy::parse(value).map_err(|e| usage_err!("setting retention_default: {e}"))?;
    Ok(())
}

/// The fleet default from the settings; an invalid stored value is a configuration error.
pub fn default_policy(
    settings: &crate::domain::settings::Settings,
) -> anyhow::Result<RetentionPolicy> {
    match settings.get("retention_default") {
        None => Ok(RetentionPolicy::default()),
        Some(v) => RetentionPolicy::parse(v).map_err(|e| {
            usage_err!(
                "setting retention_default is invalid: {e}; fix it with `restic-fleet settings \
                 set retention_default \"keep-daily=7 keep-weekly=4\"`"
            )
        }),
    }
}

/// `job show --json`'s `retention` object: the job's own policy fields (null when unset),
/// `source` (`job`, `default` from the setting `retention_default`, or `none`: keep
/// everything) and `description` (`keep-last=2 keep-within=30d` or `keep everything`).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionView {
    #[serde(flatten)]
    pub policy: RetentionPolicy,
    pub source: &'static str,
    pub description: String,
}

impl RetentionView {
    pub fn effective(own: Option<RetentionPolicy>, default: &RetentionPolicy) -> Self {
        let (policy, source) = match own {
            Some(p) if !p.is_empty() => (p, "job"),
            _ if !default.is_empty() => (default.clone(), "default"),
            _ => (RetentionPolicy::default(), "none"),
        };
        let description = policy.describe();
        RetentionView {
            policy,
            source,
            description,
        }
    }
}

/// `job edit`'s retention flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RetentionArgs {
    /// Retention: keep the last N snapshots (applied by the maintenance owner).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<i32>,
    /// Retention: keep the last N hourly snapshots.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<i32>,
    /// Retention: keep the last N daily snapshots.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<i32>,
    /// Retention: keep the last N weekly snapshots.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<i32>,
    /// Retention: keep the last N monthly snapshots.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<i32>,
    /// Retention: keep the last N yearly snapshots.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<i32>,
    /// Retention: keep every snapshot younger than DURATION before the newest (30d, 1y6m, ...).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Remove the job's own retention policy (it then follows retention_default, if set,
    /// else keeps every snapshot).
    #[arg(
        long,
        conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                              "keep_monthly", "keep_yearly", "keep_within"]
    )]
    pub no_retention: bool,
}

impl RetentionArgs {
    /// Whether any retention flag was given (validated: a bad value is a usage error).
    pub fn requested(&self) -> anyhow::Result<bool> {
        let given = self.no_retention || !self.as_policy().is_empty();
        if given {
            self.as_policy().validate().map_err(|e| usage_err!("{e}"))?;
        }
        Ok(given)
    }

    fn as_policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
        }
    }

    /// The job's policy after the change, from its current one (`None`: it has none):
    /// `--no-retention` removes the policy (the empty one), other flags change only the
    /// options given.
    pub fn applied_to(&self, current: Option<RetentionPolicy>) -> RetentionPolicy {
        if self.no_retention {
            return RetentionPolicy::default();
        }
        let mut p = current.unwrap_or_default();
        let given = self.as_policy();
        p.keep_last = given.keep_last.or(p.keep_last);
        p.keep_hourly = given.keep_hourly.or(p.keep_hourly);
        p.keep_daily = given.keep_daily.or(p.keep_daily);
        p.keep_weekly = given.keep_weekly.or(p.keep_weekly);
        p.keep_monthly = given.keep_monthly.or(p.keep_monthly);
        p.keep_yearly = given.keep_yearly.or(p.keep_yearly);
        p.keep_within = given.keep_within.or(p.keep_within);
        p
    }
}

/// The job's effective retention (its own policy, else the default, else keep everything).
pub fn view(
    own: Option<RetentionPolicy>,
    settings: &crate::domain::settings::Settings,
) -> RetentionView {
    // A broken default must not hide the job: shown as if unset (maintain reports it).
    let default = default_policy(settings).unwrap_or_default();
    RetentionView::effective(own, &default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_the_default_syntax() {
        let p = RetentionPolicy::parse("keep-daily=7, keep-weekly=4 keep-within=1y6m").unwrap();
        assert_eq!(p.keep_daily, Some(7));
        assert_eq!(p.keep_weekly, Some(4));
        assert_eq!(p.keep_within.as_deref(), Some("1y6m"));
        assert_eq!(p.describe(), "keep-daily=7 keep-weekly=4 keep-within=1y6m");
        assert_eq!(
            p.restic_args().unwrap(),
            ["--keep-daily=7", "--keep-weekly=4", "--keep-within=1y6m"]
        );
        assert!(RetentionPolicy::parse("").unwrap().is_empty());
        assert_eq!(RetentionPolicy::default().describe(), "keep everything");
    }

    #[test]
    fn rejects_what_restic_would_misread() {
        assert!(RetentionPolicy::parse("keep-last=0").is_err());
        assert!(RetentionPolicy::parse("keep-last=-1").is_err());
        assert!(RetentionPolicy::parse("keep-forever=1").is_err());
        assert!(RetentionPolicy::parse("keep-last").is_err());
        for bad in ["", "30", "d", "30x", "30d ", "--30d", "30d,1", "1h-2d"] {
            assert!(validate_duration(bad).is_err(), "{bad:?}");
        }
        for good in ["30d", "1y6m", "2h", "1y2m3d4h"] {
            assert!(validate_duration(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn effective_policy_prefers_the_job_then_the_default() {
        let own = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        let def = RetentionPolicy::parse("keep-daily=7").unwrap();
        assert_eq!(RetentionView::effective(Some(own), &def).source, "job");
        let v = RetentionView::effective(None, &def);
        assert_eq!((v.source, v.policy.keep_daily), ("default", Some(7)));
        let v = RetentionView::effective(None, &RetentionPolicy::default());
        assert_eq!(v.source, "none");
        assert!(v.policy.is_empty());
    }
}
