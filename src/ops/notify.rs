//! `restic-fleet status --notify`: one notification per change of a job's verdict or a device's
//! online state, to every target in the settings (`notify_webhook_url`, `notify_ntfy_url`),
//! each change exactly once per target.
//!
//! How "exactly once" holds:
//! - `notification_state` remembers, per target and subject (`job:<uuid>`, `device:<id>`),
//!   the last state that target *accepted*. A row changes only after the POST succeeded, so a
//!   target that is down gets the change on a later call.
//! - The whole comparison runs in one transaction that first takes
//!   `LOCK TABLE notification_state IN SHARE ROW EXCLUSIVE MODE` (a lock that conflicts with
//!   itself and ends with the transaction: no session state, so it works through PgBouncer's
//!   transaction pooling). A second `--notify` waits, then reads what the first recorded and
//!   sends nothing twice. The status is collected after the lock is taken, so the second call
//!   compares fresh verdicts with fresh state.
//!
//! Which changes are sent: a job turning `failing`, `overdue` or `warning`, a device turning
//! `offline`, and the way back (`ok`, `online`) as `resolved`. A subject never notified counts
//! as healthy, so a new target hears about every current problem once. `never_run`,
//! `disabled` and `never_seen` are not changes to report and leave the memory alone.
//!
//! A target that fails never changes `status`'s exit code: the failure is a warning on stderr.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::health::device;
use crate::domain::health::job::Verdict;
use crate::domain::settings::Settings;
use crate::ops::status::{self, StatusReport};
use crate::output::printable;
use crate::platform::ping;
use crate::store::notifications as store;

/// A place notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Webhook,
    Ntfy,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Webhook => "webhook",
            Target::Ntfy => "ntfy",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            Target::Webhook => "notify_webhook_url",
            Target::Ntfy => "notify_ntfy_url",
        }
    }
}

/// The JSON body POSTed to `notify_webhook_url` (a stable interface, documented in README):
/// `event` (`problem` or `resolved`), `kind` (`job` or `device`), `job`, `job_id` (null for a
/// device), `device`, `verdict` (the job's verdict, or the device's `offline`/`online`),
/// `previous_verdict` (what was last notified, null at first), `reason` (one sentence),
/// `last_success_at` (RFC 3339 or null), `run_id` (the job's newest run or null), `last_seen`
/// (the device's, RFC 3339 or null), `generated_at`.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub event: &'static str,
    pub kind: &'static str,
    pub job: Option<String>,
    pub job_id: Option<Uuid>,
    pub device: String,
    pub verdict: String,
    pub previous_verdict: Option<String>,
    pub reason: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub run_id: Option<i32>,
    pub last_seen: Option<DateTime<Utc>>,
    pub generated_at: DateTime<Utc>,
}

/// A subject's current state as the notifier sees it.
struct Subject {
    key: String,
    state: String,
    kind: StateKind,
    template: Notification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateKind {
    Problem,
    Healthy,
    /// Nothing to report (never run, disabled, never seen).
    Silent,
}

/// Collects the status and notifies every configured target of what changed. Returns the
/// report (collected under the lock) for `status` to print.
pub async fn collect_and_notify(
    pool: &PgPool,
    device: Option<&str>,
) -> anyhow::Result<StatusReport> {
    // Notification targets are fleet-wide: the global rows only.
    let settings = crate::store::settings::load(pool, "").await?;
    let targets = targets(&settings);
    if targets.is_empty() {
        tracing::warn!(
            "--notify: no notification target is set; set notify_webhook_url or notify_ntfy_url \
             with `restic-fleet settings set`"
        );
        return status::collect(pool, device, Utc::now()).await;
    }

    // The lock is held on a connection of its own for the whole call, while the status is
    // read through the pool (which has one connection: see `db::connect_no_migrate`).
    let mut lock_conn = store::lock_connection(pool).await?;
    let mut tx = sqlx::Connection::begin(&mut lock_conn).await?;
    store::lock(&mut tx).await?;
    let report = status::collect(pool, device, Utc::now()).await?;
    let known = store::known(&mut tx).await?;

    let subjects = subjects(&report);
    if device.is_none() {
        // Jobs and devices that no longer exist are forgotten (a report for one device does
        // not list the others, so only a full report may do this).
        let keys: Vec<&str> = subjects.iter().map(|s| s.key.as_str()).collect();
        store::forget_all_but(&mut tx, &keys).await?;
    }
    let tally = notify_changes(&mut tx, subjects, &known, &targets).await?;
    tx.commit().await?;
    let _ = sqlx::Connection::close(lock_conn).await;
    if tally.failed > 0 {
        tracing::warn!(
            "{} notification(s) could not be sent ({} sent)",
            tally.failed,
            tally.sent
        );
    } else if tally.sent > 0 {
        tracing::info!("{} notification(s) sent", tally.sent);
    }
    Ok(report)
}

/// The targets whose URL is set and valid (an invalid one is named in a warning).
fn targets(settings: &Settings) -> Vec<(Target, String)> {
    let mut targets = Vec::new();
    for t in [Target::Webhook, Target::Ntfy] {
        if let Some(url) = settings.get(t.setting()) {
            let url = url.trim().to_string();
            match ping::validate_url(&url) {
                Ok(parsed) => targets.push((t, parsed.to_string())),
                Err(e) => tracing::warn!(
                    "setting {} is not used: {e}; fix it with `restic-fleet settings set {} URL`",
                    t.setting(),
                    t.setting()
                ),
            }
        }
    }
    targets
}

/// What one `--notify` sent and failed to send.
#[derive(Default)]
struct Tally {
    sent: usize,
    failed: usize,
    /// A target that failed once is not tried again in this call (a black-holed target would
    /// cost the timeout per change); its changes stay unsent for the next call.
    down: Vec<Target>,
}

/// Sends every subject's change to every target and records, in the transaction `tx`, what
/// each target accepted (and the healthy states nobody needs to hear about).
async fn notify_changes(
    tx: &mut PgConnection,
    subjects: Vec<Subject>,
    known: &HashMap<(String, String), String>,
    targets: &[(Target, String)],
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for subject in subjects {
        if subject.kind == StateKind::Silent {
            continue;
        }
        for (target, url) in targets {
            let prev = known
                .get(&(target.as_str().to_string(), subject.key.clone()))
                .cloned();
            if prev.as_deref() == Some(subject.state.as_str()) {
                continue;
            }
            let prev_was_problem = prev.as_deref().is_some_and(is_problem);
            let send = match subject.kind {
                StateKind::Problem => true,
                StateKind::Healthy => prev_was_problem,
                StateKind::Silent => false,
            };
            if send && !tally.send(*target, url, &subject, prev).await {
                continue;
            }
            store::remember(tx, target.as_str(), &subject.key, &subject.state).await?;
        }
    }
    Ok(tally)
}

impl Tally {
    /// Sends the change of `subject` (last notified as `prev`) to one target; false when it
    /// was not sent (the target is down), so the change stays unrecorded for the next call.
    async fn send(
        &mut self,
        target: Target,
        url: &str,
        subject: &Subject,
        prev: Option<String>,
    ) -> bool {
        if self.down.contains(&target) {
            self.failed += 1;
            return false;
        }
        let mut n = subject.template.clone();
        n.previous_verdict = prev;
        n.event = if subject.kind == StateKind::Problem {
            "problem"
        } else {
            "resolved"
        };
        match deliver(target, url, &n).await {
            Ok(()) => {
                self.sent += 1;
                tracing::info!(
                    "notified {} of {}: {} is {}",
                    target.as_str(),
                    subject.key,
                    printable(n.job.as_deref().unwrap_or(&n.device)),
                    n.verdict
                );
                true
            }
            Err(e) => {
                self.failed += 1;
                self.down.push(target);
                tracing::warn!(
                    "could not notify {} of {} ({}); it is sent again by the next \
                     `status --notify`",
                    target.as_str(),
                    subject.key,
                    e
                );
                false
            }
        }
    }
}

fn is_problem(state: &str) -> bool {
    matches!(state, "failing" | "overdue" | "warning" | "offline")
}

/// Every job and device of the report with its notifier state.
fn subjects(report: &StatusReport) -> Vec<Subject> {
    let now = report.generated_at;
    let mut out = Vec::new();
    for j in &report.jobs {
        let kind = match j.verdict {
            Verdict::Failing | Verdict::Overdue | Verdict::Warning => StateKind::Problem,
            Verdict::Ok => StateKind::Healthy,
            Verdict::NeverRun | Verdict::Disabled => StateKind::Silent,
        };
        out.push(Subject {
            key: format!("job:{}", j.job_id),
            state: j.verdict.as_str().to_string(),
            kind,
            template: Notification {
                event: "",
                kind: "job",
                job: Some(j.job_name.clone()),
                job_id: Some(j.job_id),
                device: j.device_id.clone(),
                verdict: j.verdict.as_str().to_string(),
                previous_verdict: None,
                reason: j.reason.clone(),
                last_success_at: j.last_success_at,
                run_id: j.last_run_id,
                last_seen: None,
                generated_at: now,
            },
        });
    }
    for d in &report.devices {
        let kind = match (d.enabled, d.state) {
            (false, _) => StateKind::Silent,
            (true, "offline") => StateKind::Problem,
            (true, "online") => StateKind::Healthy,
            _ => StateKind::Silent,
        };
        let reason = device::reason(d.state, d.last_seen, d.sync_interval_seconds, now);
        out.push(Subject {
            key: format!("device:{}", d.device_id),
            state: d.state.to_string(),
            kind,
            template: Notification {
                event: "",
                kind: "device",
                job: None,
                job_id: None,
                device: d.device_id.clone(),
                verdict: d.state.to_string(),
                previous_verdict: None,
                reason,
                last_success_at: None,
                run_id: None,
                last_seen: d.last_seen,
                generated_at: now,
            },
        });
    }
    out
}

/// POSTs one notification to one target.
async fn deliver(target: Target, url: &str, n: &Notification) -> Result<(), String> {
    let (headers, body) = match target {
        Target::Webhook => (
            vec![("Content-Type", "application/json".to_string())],
            serde_json::to_string(n).map_err(|e| e.to_string())?,
        ),
        Target::Ntfy => ntfy_message(n),
    };
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        ping::post_blocking(&url, &headers, &body, ping::TIMEOUT, 1)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the notification task failed: {e}")))
}

/// ntfy's plain-text publish: the message as the body, `Title`, `Priority` and `Tags` headers.
/// Names and the reason are [`printable`]: ntfy shows the text as it is (its CLI subscriber
/// prints it to a terminal), and a run's message is written by the device.
fn ntfy_message(n: &Notification) -> (Vec<(&'static str, String)>, String) {
    let what = match &n.job {
        Some(job) => format!("backup {} on {}", printable(job), printable(&n.device)),
        None => format!("device {}", printable(&n.device)),
    };
    let (title, priority, tags) = match (n.event, n.verdict.as_str()) {
        ("resolved", _) => (
            format!("resolved: {what} is {}", n.verdict),
            "default",
            "white_check_mark",
        ),
        (_, "failing") => (format!("{what} is failing"), "high", "rotating_light"),
        (_, "offline") => (format!("{what} is offline"), "high", "electric_plug"),
        (_, v) => (format!("{what} is {v}"), "default", "warning"),
    };
    let mut body = printable(&n.reason).into_owned();
    if let Some(t) = n.last_success_at {
        body.push_str(&format!("\nlast success: {}", t.to_rfc3339()));
    }
    if let Some(id) = n.job_id {
        body.push_str(&format!("\njob id: {id}"));
    }
    (
        vec![
            ("Title", header_text(&title)),
            ("Priority", priority.to_string()),
            ("Tags", tags.to_string()),
            ("Content-Type", "text/plain; charset=utf-8".to_string()),
        ],
        body,
    )
}

/// A header value that cannot inject another header: control characters become spaces, and
/// text that is not plain ASCII is sent as an RFC 2047 encoded word, which ntfy decodes.
fn header_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        clean
    } else {
        format!("=?UTF-8?B?{}?=", base64(clean.as_bytes()))
    }
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cannot_inject() {
        assert_eq!(header_text("a\r\nX-Evil: 1"), "a  X-Evil: 1");
        assert_eq!(header_text("záloha"), "=?UTF-8?B?esOhbG9oYQ==?=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
    }

    #[test]
    fn ntfy_text_shows_device_written_text_escaped() {
        let evil = "x\x1b]52;c;cHduZWQ=\x07\r\u{9b}2J\u{202e}\nforged: line";
        let n = Notification {
            event: "problem",
            kind: "job",
            job: Some("Büro ☃".into()),
            job_id: Some(Uuid::nil()),
            device: "d1".into(),
            verdict: "failing".into(),
            previous_verdict: None,
            reason: format!("the last run (#1) failed: {evil}"),
            last_success_at: None,
            run_id: Some(1),
            last_seen: None,
            generated_at: Utc::now(),
        };
        let (headers, body) = ntfy_message(&n);
        assert_eq!(
            body,
            "the last run (#1) failed: x\\x1b]52;c;cHduZWQ=\\x07\\r\\u{9b}2J\\u{202e}\\nforged: \
             line\njob id: 00000000-0000-0000-0000-000000000000"
        );
        let title = &headers.iter().find(|(h, _)| *h == "Title").unwrap().1;
        assert_eq!(title, &header_text("backup Büro ☃ on d1 is failing"));
    }
}
