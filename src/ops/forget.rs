//! Forgetting by job: one `restic forget` per job with a retention policy, limited to exactly
//! that job's snapshots (its `backup:<uuid>` tag and its device as host) and grouped with
//! `--group-by=` (no grouping), so all of the job's snapshots form one group even after its
//! paths changed. restic's default grouping (host, paths) would keep every old path set's
//! snapshots forever. Snapshots of other jobs are never selected; snapshots whose
//! `backup:<uuid>` tag names no job in the database are reported, never removed.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::retention::RetentionPolicy;
use crate::platform::repository::Snapshot;
use crate::store::maintenance::JobRef;

/// restic forget's arguments for one job (without `--dry-run`).
pub fn forget_args(job: &JobRef, policy: &RetentionPolicy) -> Result<Vec<String>, String> {
    let keep = policy.restic_args()?;
    if keep.is_empty() {
        // Never call forget without a keep option: restic would refuse, and a later restic
        // might not.
        return Err(format!("job {} has no retention policy", job.id));
    }
    let mut args = vec![
        "forget".to_string(),
        "--json".into(),
        "--group-by=".into(),
        format!("--host={}", job.device_id),
        format!("--tag=backup:{}", job.id),
    ];
    args.extend(keep);
    Ok(args)
}

/// One group of `restic forget --json` (0.14 through 0.19).
#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    keep: Option<Vec<Snapshot>>,
    #[serde(default)]
    remove: Option<Vec<Snapshot>>,
}

/// The snapshots forget kept and removed (or would remove, with `--dry-run`), newest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetResult {
    pub kept: Vec<String>,
    pub removed: Vec<String>,
}

/// Parses forget's JSON. restic prints it on stdout after progress lines in some versions, so
/// the first line starting with `[` is taken.
pub fn parse_forget(stdout: &str) -> Result<ForgetResult, String> {
    let json = stdout
        .lines()
        .find(|l| l.trim_start().starts_with('['))
        .unwrap_or("[]");
    let groups: Option<Vec<Group>> = serde_json::from_str(json)
        .map_err(|e| format!("restic forget --json printed something unexpected: {e}"))?;
    let mut out = ForgetResult::default();
    for g in groups.unwrap_or_default() {
        out.kept
            .extend(g.keep.unwrap_or_default().into_iter().map(|s| s.id));
        out.removed
            .extend(g.remove.unwrap_or_default().into_iter().map(|s| s.id));
    }
    Ok(out)
}

/// A snapshot whose `backup:<uuid>` tag names no job in the database.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub snapshot_id: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub hostname: String,
    pub paths: Vec<String>,
    pub job_id: Uuid,
}

pub fn orphans(snapshots: &[Snapshot], jobs: &[JobRef]) -> Vec<Orphan> {
    let known: HashSet<Uuid> = jobs.iter().map(|j| j.id).collect();
    snapshots
        .iter()
        .filter_map(|s| {
            let id = s.job_id()?;
            (!known.contains(&id)).then(|| Orphan {
                snapshot_id: s.id.clone(),
                time: s.time,
                hostname: s.hostname.clone(),
                paths: s.paths.clone(),
                job_id: id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_selects_exactly_one_job_in_one_group() {
        let job = JobRef {
            id: Uuid::nil(),
            device_id: "laptop".into(),
            name: "home".into(),
        };
        let p = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        assert_eq!(
            forget_args(&job, &p).unwrap(),
            [
                "forget",
                "--json",
                "--group-by=",
                "--host=laptop",
                "--tag=backup:00000000-0000-0000-0000-000000000000",
                "--keep-last=2"
            ]
        );
        assert!(forget_args(&job, &RetentionPolicy::default()).is_err());
    }

    #[test]
    fn parses_forget_output() {
        let snap = |id: &str| {
            format!(
                r#"{{"time":"2026-11-29T05:00:00Z","hostname":"h","paths":["/a"],"id":"{id}","short_id":"x"}}"#
            )
        };
        let text = format!(
            "[{{\"tags\":null,\"host\":\"\",\"paths\":null,\"keep\":[{}],\"remove\":[{},{}],\"reasons\":[]}}]\n",
            snap("k1"),
            snap("r1"),
            snap("r2")
        );
        let r = parse_forget(&text).unwrap();
        assert_eq!(r.kept, ["k1"]);
        assert_eq!(r.removed, ["r1", "r2"]);
        let r = parse_forget("[{\"keep\":[],\"remove\":null}]").unwrap();
        assert!(r.removed.is_empty());
        assert!(parse_forget("").unwrap().removed.is_empty());
        assert!(parse_forget("[{").is_err());
    }
}
