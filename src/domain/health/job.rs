//! A job's verdict, decided from its last *finished* run (`success` or `failed`; a run still
//! `running` does not change the verdict, a `cancelled` one is skipped):
//! - `disabled`: the job or its device is disabled.
//! - `never_run`: no finished run is recorded.
//! - `failing`: the last finished run failed.
//! - `overdue`: the job has enabled schedules and no success ended within the expected period
//!   (see [`crate::domain::health::period`]) plus grace. Grace is the setting
//!   `missed_run_grace_seconds` (default 900) plus `schedule_jitter_seconds`. Jobs without
//!   enabled schedules are never overdue.
//! - `warning`: the last finished run succeeded with warnings (`error_message` starting with
//!   `warning:`, or non-empty `metadata.warnings` or `metadata.missing_paths`).
//! - `ok`: otherwise.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::health::age::age;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warning,
    Failing,
    Overdue,
    NeverRun,
    Disabled,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Failing => "failing",
            Verdict::Overdue => "overdue",
            Verdict::NeverRun => "never_run",
            Verdict::Disabled => "disabled",
        }
    }
}

/// A run as the verdict needs it.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub id: i32,
    pub status: String,
    pub error_message: Option<String>,
    pub metadata: Option<Value>,
}

/// The warnings a successful run recorded.
pub fn run_warnings(run: &RunFacts) -> Vec<String> {
    let mut out = Vec::new();
    let meta = run.metadata.as_ref();
    if let Some(ws) = meta
        .and_then(|m| m.get("warnings"))
        .and_then(|w| w.as_array())
    {
        out.extend(
            ws.iter()
                .map(|w| w.as_str().map(str::to_string).unwrap_or(w.to_string())),
        );
    }
    if out.is_empty()
        && let Some(ps) = meta
            .and_then(|m| m.get("missing_paths"))
            .and_then(|w| w.as_array())
            .filter(|a| !a.is_empty())
    {
        let ps: Vec<String> = ps
            .iter()
            .map(|p| p.as_str().map(str::to_string).unwrap_or(p.to_string()))
            .collect();
        out.push(format!("missing source paths: {}", ps.join(", ")));
    }
    if out.is_empty()
        && let Some(m) = run
            .error_message
            .as_deref()
            .filter(|m| m.trim_start().to_ascii_lowercase().starts_with("warning:"))
    {
        out.push(m.trim_start()["warning:".len()..].trim().to_string());
    }
    out
}

/// The inputs of one job's verdict.
pub struct Facts<'a> {
    pub job_enabled: bool,
    pub device_enabled: bool,
    /// The newest run whose status is `success` or `failed`.
    pub last_finished: Option<&'a RunFacts>,
    /// When the newest successful run ended (its start when the end is missing).
    pub last_success: Option<DateTime<Utc>>,
    pub expected_period: Option<i64>,
    pub grace_seconds: i64,
}

/// Decides the verdict and a one-sentence reason.
pub fn verdict(f: &Facts<'_>, now: DateTime<Utc>) -> (Verdict, String, Vec<String>) {
    if !f.device_enabled {
        return (Verdict::Disabled, "the device is disabled".into(), vec![]);
    }
    if !f.job_enabled {
        return (Verdict::Disabled, "the job is disabled".into(), vec![]);
    }
    let Some(last) = f.last_finished else {
        return (
            Verdict::NeverRun,
            "no finished run is recorded".into(),
            vec![],
        );
    };
    if last.status == "failed" {
        let msg = last
            .error_message
            .as_deref()
            .unwrap_or("no message recorded");
        return (
            Verdict::Failing,
            format!("the last run (#{}) failed: {msg}", last.id),
            vec![],
        );
    }
    if let (Some(period), Some(success)) = (f.expected_period, f.last_success) {
        // Far-future deadlines (a yearly schedule, a huge grace) saturate instead of overflowing.
        let deadline = Duration::try_seconds(period.saturating_add(f.grace_seconds))
            .and_then(|d| success.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now > deadline {
            return (
                Verdict::Overdue,
                format!(
                    "no successful backup for {} (expected every {} plus {} grace)",
                    age((now - success).num_seconds()),
                    age(period),
                    age(f.grace_seconds)
                ),
                vec![],
            );
        }
    }
    let warnings = run_warnings(last);
    if !warnings.is_empty() {
        return (
            Verdict::Warning,
            format!(
                "the last run (#{}) had warnings: {}",
                last.id,
                warnings.join("; ")
            ),
            warnings,
        );
    }
    (Verdict::Ok, "the last run succeeded".into(), vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_periods_do_not_overflow() {
        let last = run("success", None, serde_json::json!({}));
        let facts = Facts {
            job_enabled: true,
            device_enabled: true,
            last_finished: Some(&last),
            last_success: Some(Utc::now()),
            expected_period: Some(i64::MAX),
            grace_seconds: i64::MAX,
        };
        assert_eq!(verdict(&facts, Utc::now()).0, Verdict::Ok);
    }

    pub(crate) fn run(status: &str, msg: Option<&str>, meta: Value) -> RunFacts {
        RunFacts {
            id: 1,
            status: status.into(),
            error_message: msg.map(str::to_string),
            metadata: Some(meta),
        }
    }

    fn f(
        last: Option<&RunFacts>,
        success: Option<DateTime<Utc>>,
        period: Option<i64>,
    ) -> Facts<'_> {
        Facts {
            job_enabled: true,
            device_enabled: true,
            last_finished: last,
            last_success: success,
            expected_period: period,
            grace_seconds: 900,
        }
    }

    #[test]
    fn verdicts() {
        let now = Utc::now();
        let ok = run("success", None, serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&ok), Some(now), Some(3600)), now).0,
            Verdict::Ok
        );
        assert_eq!(
            verdict(&f(None, None, Some(3600)), now).0,
            Verdict::NeverRun
        );
        let old = now - Duration::hours(2);
        assert_eq!(
            verdict(&f(Some(&ok), Some(old), Some(3600)), now).0,
            Verdict::Overdue
        );
        assert_eq!(verdict(&f(Some(&ok), Some(old), None), now).0, Verdict::Ok);
        let failed = run("failed", Some("boom"), serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&failed), Some(old), Some(60)), now).0,
            Verdict::Failing
        );
        let warn = run("success", Some("warning: x"), serde_json::json!({}));
        assert_eq!(
            verdict(&f(Some(&warn), Some(now), None), now).0,
            Verdict::Warning
        );
        let missing = run(
            "success",
            None,
            serde_json::json!({"missing_paths": ["/x"]}),
        );
        let (v, _, w) = verdict(&f(Some(&missing), Some(now), None), now);
        assert_eq!(v, Verdict::Warning);
        assert!(w[0].contains("/x"));
        let mut disabled = f(Some(&ok), Some(now), None);
        disabled.device_enabled = false;
        assert_eq!(verdict(&disabled, now).0, Verdict::Disabled);
    }
}
