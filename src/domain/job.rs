//! Backup jobs as stored in `backup_jobs`, and what `run` derives from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::usage_err;

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub device_id: String,
    pub name: String,
    pub description: Option<String>,
    pub source_paths: Vec<String>,
    pub exclude_patterns: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub restic_args: Option<Value>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<Value>,
    pub origin_name: Option<String>,
    pub origin_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    // What the device pings and executes around a run (migration 010; admins write them).
    /// From `job_ping_urls`: `None` also when this role may not read it (see
    /// [`crate::store::jobs::JOB_COLUMNS`]).
    pub ping_url: Option<String>,
    pub hook_before: Option<String>,
    pub hook_after: Option<String>,
    pub hook_failure: Option<String>,
    pub hook_finally: Option<String>,
    /// Defaulted so a local copy written before the column existed still reads.
    #[serde(default = "default_hook_before_on_error")]
    pub hook_before_on_error: String,
}

/// The column's default (migration 010): a failing before hook stops the run.
fn default_hook_before_on_error() -> String {
    "stop".to_string()
}

/// Chooses the job a bare `NAME` or a `DEVICE/NAME` means among `candidates` (the jobs of that
/// name, and the one at `DEVICE/NAME`). A bare name means the job of that name on
/// `local_device` (this machine's device, when it is enrolled), else the one job of that name
/// in the fleet. Text with a `/` must match exactly one job: a job named so literally (from
/// before `/` was refused in names) and a `DEVICE/NAME` pair are ambiguous. An ambiguous name
/// is refused (exit 2) with every candidate and its UUID.
pub fn pick_named(
    text: &str,
    candidates: Vec<Job>,
    local_device: Option<&str>,
) -> anyhow::Result<Job> {
    if text.contains('/') && candidates.len() > 1 {
        return Err(usage_err!(
            "the job name {text:?} is ambiguous: it names {}; name the job by its UUID",
            candidates
                .iter()
                .map(|j| format!("job {:?} of device {:?} ({})", j.name, j.device_id, j.id))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if let Some(local) = local_device
        && let Some(j) = candidates
            .iter()
            .find(|j| j.device_id == local && j.name == text)
    {
        return Ok(j.clone());
    }
    match candidates.as_slice() {
        [] => Err(usage_err!(
            "no backup job named {text:?} exists (give its UUID, its name on this device, or \
             DEVICE/NAME); list jobs with `restic-fleet job list`"
        )),
        [one] => Ok(one.clone()),
        many => Err(usage_err!(
            "the job name {text:?} is ambiguous: {}; name one as DEVICE/NAME or by its UUID",
            many.iter()
                .map(|j| format!("{}/{} ({})", j.device_id, j.name, j.id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Validates `restic_args`: a JSON array of strings. Returns the strings.
pub fn restic_args(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "restic_args must be a JSON array of strings like [\"--one-file-system\"], but \
                     element {i} is {other}; fix it with `restic-fleet job edit`"
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "restic_args must be a JSON array of strings like [\"--one-file-system\"], found {other}; \
             fix it with `restic-fleet job edit`"
        )),
    }
}

/// Makes a value safe as one restic tag: restic splits `--tag` on commas, so `%` and `,` are
/// percent-encoded (`%25`, `%2C`), and control characters too. Nothing else changes, so the
/// common case reads naturally.
pub fn tag_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '%' => out.push_str("%25"),
            ',' => out.push_str("%2C"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The tags `run` writes: `backup:<job-uuid>`, `device:<device-id>`, `origin:<origin_name>` and
/// `account:<account-uuid>` when set, then the deprecated `backup_jobs.tags` values.
pub fn standard_tags(job: &Job, device_id: &str) -> Vec<String> {
    let mut tags = vec![
        format!("backup:{}", job.id),
        format!("device:{}", tag_value(device_id)),
    ];
    if let Some(origin) = job.origin_name.as_deref().filter(|o| !o.is_empty()) {
        tags.push(format!("origin:{}", tag_value(origin)));
    }
    if let Some(account) = job.account_id {
        tags.push(format!("account:{account}"));
    }
    for t in job.tags.iter().flatten() {
        if !t.is_empty() {
            tags.push(tag_value(t));
        }
    }
    tags
}

/// A job name: 1 to 255 characters, no control characters, no `/` (which would read as
/// `DEVICE/NAME` wherever a job is named).
pub fn validate_name(name: &str) -> anyhow::Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 255 || n.chars().any(|c| c.is_control()) {
        return Err(usage_err!(
            "job name {name:?} must be 1 to 255 characters without control characters"
        ));
    }
    if n.contains('/') {
        return Err(usage_err!(
            "job name {name:?} contains '/', which reads as DEVICE/NAME wherever a job is named; \
             choose a name without it, like {:?}",
            n.replace('/', "-")
        ));
    }
    Ok(n.to_string())
}

/// Is `p` an absolute path on `platform` (`linux`: `/...`; `windows`: `C:\...`, `C:/...` or
/// `\\server\share`)?
pub fn is_absolute(p: &str, platform: &str) -> bool {
    if platform == "windows" {
        let b = p.as_bytes();
        (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
            || p.starts_with("\\\\")
    } else {
        p.starts_with('/')
    }
}

/// Source paths: at least one, each non-empty and absolute for the device's platform.
pub fn validate_paths(paths: &[String], platform: &str) -> anyhow::Result<Vec<String>> {
    if paths.is_empty() {
        return Err(usage_err!(
            "a job needs at least one path to back up; give it with --path P"
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        if p.trim().is_empty() || p.contains('\0') {
            return Err(usage_err!(
                "--path {p:?} is empty; give the full path of a folder or file to back up"
            ));
        }
        if !is_absolute(p, platform) {
            return Err(usage_err!(
                "--path {p:?} is not an absolute {platform} path; a backup runs as a service from \
                 an unknown working directory, so give the full path (like {})",
                if platform == "windows" {
                    "C:\\Users\\alice"
                } else {
                    "/home/alice"
                }
            ));
        }
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Exclude patterns: each non-empty.
pub fn validate_excludes(patterns: &[String]) -> anyhow::Result<Vec<String>> {
    for p in patterns {
        if p.trim().is_empty() || p.contains('\0') {
            return Err(usage_err!(
                "--exclude {p:?} is empty; give a restic exclude pattern like '*.tmp'"
            ));
        }
    }
    Ok(patterns.to_vec())
}

impl Job {
    /// The job's values a `repository_url` template may use (see [`crate::domain::repository`]).
    pub fn place(&self) -> crate::domain::repository::JobPlace<'_> {
        crate::domain::repository::JobPlace {
            device_id: &self.device_id,
            job_id: self.id,
            account_id: self.account_id,
            origin_name: self.origin_name.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restic_args_must_be_array_of_strings() {
        assert_eq!(restic_args(Some(&json!([]))).unwrap(), Vec::<String>::new());
        assert_eq!(
            restic_args(Some(&json!(["--one-file-system", "-v"]))).unwrap(),
            vec!["--one-file-system", "-v"]
        );
        assert!(
            restic_args(Some(&json!({"a": 1})))
                .unwrap_err()
                .contains("JSON array of strings")
        );
        assert!(
            restic_args(Some(&json!(["ok", 3])))
                .unwrap_err()
                .contains("element 1")
        );
        assert!(restic_args(None).unwrap().is_empty());
    }

    #[test]
    fn job_without_hook_before_on_error_reads_as_stop() {
        let job: Job = serde_json::from_value(json!({
            "id": "7f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f",
            "device_id": "pc1",
            "name": "docs",
            "description": null,
            "source_paths": ["/home"],
            "exclude_patterns": null,
            "tags": null,
            "restic_args": null,
            "enabled": true,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "metadata": null,
            "origin_name": null,
            "origin_id": null,
            "account_id": null
        }))
        .expect("a job written before the hook columns existed");
        assert_eq!(job.hook_before_on_error, "stop");
        assert!(job.hook_before.is_none());
    }

    #[test]
    fn tags_cannot_split() {
        assert_eq!(tag_value("a,b"), "a%2Cb");
        assert_eq!(tag_value("100%"), "100%25");
        assert_eq!(tag_value("x\ny"), "x%0Ay");
        assert_eq!(tag_value("ÚČTO pc"), "ÚČTO pc");
        assert!(!tag_value("a,b,c").contains(','));
    }
}
