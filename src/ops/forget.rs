//! Forgetting by job retention policy, in batches: one `restic forget` per retention policy
//! and batch of jobs, each job limited to exactly its own snapshots.
//!
//! A batch names its jobs with `--tag=backup:<uuid>` repeated (restic ORs repeated `--tag`
//! options) and groups with `--group-by=host,tags`, so each job's snapshots form one group of
//! their own and each group keeps the policy. That holds only when all of a job's snapshots
//! carry the same tag set and its device as host: [`must_go_alone`] finds, in the one
//! `restic snapshots` listing maintain takes anyway, the jobs where they do not (tags edited,
//! a snapshot from another host with the job's tag), and those are forgotten alone with the
//! per-job arguments of [`forget_args`]: `--host`, `--tag=backup:<uuid>` and `--group-by=`
//! (no grouping, so a job whose paths or tags changed is still one group). restic's default
//! grouping (host, paths) would keep every old path set's snapshots forever.
//!
//! A batch stays within the command-line limit of the platform ([`command_line_limit`]),
//! counting the whole command line as Windows quotes it. Snapshots of other jobs are never
//! selected; snapshots whose `backup:<uuid>` tag names no job in the database are reported,
//! never removed (unless `maintain --forget-unknown-jobs`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::retention::RetentionPolicy;
use crate::platform::repository::Snapshot;
use crate::store::maintenance::JobRef;

/// Windows: `CreateProcess` takes at most 32,767 characters for the whole command line.
pub const WINDOWS_COMMAND_LINE: usize = 32_767;

/// Elsewhere the kernel allows megabytes, but restic's tag filter costs one comparison per
/// snapshot and `--tag` option in every process: with 128 KiB (about 2,600 jobs) that filter
/// stays below the cost of reading the snapshots themselves (see README, "Maintenance"), while
/// 50,000 jobs still need only about 20 processes.
pub const UNIX_COMMAND_LINE: usize = 128 * 1024;

/// What the lock waiting may add to a command line (`--retry-lock=...`), and the rest of the
/// arguments restic is given (`--dry-run`), kept free in every batch.
const RESERVE: usize = 256;

/// The command-line limit of this platform.
pub fn command_line_limit() -> usize {
    if cfg!(windows) {
        WINDOWS_COMMAND_LINE
    } else {
        UNIX_COMMAND_LINE
    }
}

/// The characters `arg` takes on a command line, with its separator, as Windows quotes it
/// (an upper bound: quotes around it when it has a blank or is empty, and every `"` and `\`
/// counted twice).
pub fn arg_len(arg: &str) -> usize {
    let quote = arg.is_empty() || arg.contains([' ', '\t']);
    let escapes = arg.chars().filter(|c| matches!(c, '"' | '\\')).count();
    arg.chars().count() + escapes + if quote { 2 } else { 0 } + 1
}

/// restic forget's arguments for one job alone (without `--dry-run`).
pub fn forget_args(job: &JobRef, policy: &RetentionPolicy) -> Result<Vec<String>, String> {
    Ok(alone_args(job, keep_args(job.id, policy)?))
}

fn alone_args(job: &JobRef, keep: Vec<String>) -> Vec<String> {
    let mut args = vec![
        "forget".to_string(),
        "--json".into(),
        "--group-by=".into(),
        format!("--host={}", job.device_id),
        format!("--tag=backup:{}", job.id),
    ];
    args.extend(keep);
    args
}

fn keep_args(job: Uuid, policy: &RetentionPolicy) -> Result<Vec<String>, String> {
    let keep = policy.restic_args()?;
    if keep.is_empty() {
        // Never call forget without a keep option: restic would refuse, and a later restic
        // might not.
        return Err(format!("job {job} has no retention policy"));
    }
    Ok(keep)
}

/// The jobs whose snapshots cannot be grouped by their tags: a snapshot of the job with a
/// tag set other than its first one, from a host other than its device, or tagged for more
/// than one job. They are forgotten alone.
pub fn must_go_alone(snapshots: &[Snapshot], jobs: &[JobRef]) -> HashSet<Uuid> {
    let devices: HashMap<Uuid, &str> = jobs.iter().map(|j| (j.id, j.device_id.as_str())).collect();
    let mut first_tags: HashMap<Uuid, Vec<&str>> = HashMap::new();
    let mut alone = HashSet::new();
    for s in snapshots {
        let mut tags: Vec<&str> = s.tags.iter().flatten().map(String::as_str).collect();
        tags.sort_unstable();
        tags.dedup();
        let owners: Vec<Uuid> = tags
            .iter()
            .filter_map(|t| t.strip_prefix("backup:"))
            .filter_map(|u| Uuid::parse_str(u).ok())
            .filter(|u| devices.contains_key(u))
            .collect();
        for id in &owners {
            let same = first_tags.entry(*id).or_insert_with(|| tags.clone()) == &tags;
            if !same || owners.len() > 1 || devices.get(id) != Some(&s.hostname.as_str()) {
                alone.insert(*id);
            }
        }
    }
    alone
}

/// One `restic forget` to run: its arguments (without the program and `--dry-run`) and the
/// jobs whose snapshots it forgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetCall {
    pub argv: Vec<String>,
    pub jobs: Vec<Uuid>,
    /// Whether the jobs are told apart by their groups' tags (else: one job, one group).
    pub batched: bool,
}

/// The forgets for `jobs` (each with its effective policy): the jobs of `alone` one by one,
/// the others in batches of one policy each, every command line (with `program`) at most
/// `limit` characters. A job whose policy cannot be turned into arguments is returned with
/// the reason instead.
pub fn plan(
    program: &str,
    jobs: &[(JobRef, RetentionPolicy)],
    alone: &HashSet<Uuid>,
    limit: usize,
) -> (Vec<ForgetCall>, Vec<(Uuid, String)>) {
    let mut calls = Vec::new();
    let mut refused = Vec::new();
    let mut by_policy: BTreeMap<Vec<String>, Vec<Uuid>> = BTreeMap::new();
    for (job, policy) in jobs {
        let keep = match keep_args(job.id, policy) {
            Ok(k) => k,
            Err(e) => {
                refused.push((job.id, e));
                continue;
            }
        };
        if alone.contains(&job.id) {
            calls.push(ForgetCall {
                argv: alone_args(job, keep),
                jobs: vec![job.id],
                batched: false,
            });
        } else {
            by_policy.entry(keep).or_default().push(job.id);
        }
    }
    for (keep, ids) in by_policy {
        let mut head = vec![
            "forget".to_string(),
            "--json".into(),
            "--group-by=host,tags".into(),
        ];
        head.extend(keep);
        let head_len: usize = arg_len(program) + head.iter().map(|a| arg_len(a)).sum::<usize>();
        let mut current = ForgetCall {
            argv: head.clone(),
            jobs: vec![],
            batched: true,
        };
        let mut len = head_len;
        for id in ids {
            let tag = format!("--tag=backup:{id}");
            let n = arg_len(&tag);
            if !current.jobs.is_empty() && len + n + RESERVE > limit {
                calls.push(std::mem::replace(
                    &mut current,
                    ForgetCall {
                        argv: head.clone(),
                        jobs: vec![],
                        batched: true,
                    },
                ));
                len = head_len;
            }
            current.argv.push(tag);
            current.jobs.push(id);
            len += n;
        }
        if !current.jobs.is_empty() {
            calls.push(current);
        }
    }
    (calls, refused)
}

/// One group of `restic forget --json` (0.14 through 0.19).
#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    tags: Option<Vec<String>>,
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

fn groups(stdout: &str) -> Result<Vec<Group>, String> {
    // restic prints the JSON on stdout after progress lines in some versions: the first line
    // starting with `[` is taken.
    let json = stdout
        .lines()
        .find(|l| l.trim_start().starts_with('['))
        .unwrap_or("[]");
    let groups: Option<Vec<Group>> = serde_json::from_str(json)
        .map_err(|e| format!("restic forget --json printed something unexpected: {e}"))?;
    Ok(groups.unwrap_or_default())
}

fn add(out: &mut ForgetResult, g: Group) {
    out.kept
        .extend(g.keep.unwrap_or_default().into_iter().map(|s| s.id));
    out.removed
        .extend(g.remove.unwrap_or_default().into_iter().map(|s| s.id));
}

/// Parses forget's JSON of one job's forget (all groups are the job's).
pub fn parse_forget(stdout: &str) -> Result<ForgetResult, String> {
    let mut out = ForgetResult::default();
    for g in groups(stdout)? {
        add(&mut out, g);
    }
    Ok(out)
}

/// Parses a batch's JSON: each group belongs to the job of `jobs` whose `backup:<uuid>` its
/// tags carry. Also returns how many groups named no job of the batch (restic selected them
/// by a tag, so they were forgotten by the policy all the same: a warning) and the jobs that
/// had more than one group (a tag set changed after the listing; each group kept the policy).
pub fn parse_batch(stdout: &str, jobs: &[Uuid]) -> Result<BatchResult, String> {
    let wanted: HashSet<Uuid> = jobs.iter().copied().collect();
    let mut out = BatchResult::default();
    for g in groups(stdout)? {
        let owners: Vec<Uuid> = g
            .tags
            .iter()
            .flatten()
            .filter_map(|t| t.strip_prefix("backup:"))
            .filter_map(|u| Uuid::parse_str(u).ok())
            .filter(|u| wanted.contains(u))
            .collect();
        match owners.as_slice() {
            [one] => {
                let entry = out.jobs.entry(*one).or_default();
                if !entry.kept.is_empty() || !entry.removed.is_empty() {
                    out.split.insert(*one);
                }
                add(entry, g);
            }
            _ => out.stray_groups += 1,
        }
    }
    Ok(out)
}

/// What one batch forgot, per job.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub jobs: HashMap<Uuid, ForgetResult>,
    pub stray_groups: usize,
    pub split: HashSet<Uuid>,
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

    fn job(n: u128, device: &str) -> JobRef {
        JobRef {
            id: Uuid::from_u128(n),
            device_id: device.into(),
            name: format!("job {n}"),
            account_id: None,
            origin_name: None,
        }
    }

    fn last(n: i32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        }
    }

    fn snap(id: &str, host: &str, tags: &[String]) -> Snapshot {
        Snapshot {
            id: id.into(),
            short_id: String::new(),
            time: chrono::DateTime::UNIX_EPOCH,
            hostname: host.into(),
            paths: vec![],
            tags: Some(tags.to_vec()),
        }
    }

    #[test]
    fn forget_alone_selects_exactly_one_job_in_one_group() {
        assert_eq!(
            forget_args(&job(0, "laptop"), &last(2)).unwrap(),
            [
                "forget",
                "--json",
                "--group-by=",
                "--host=laptop",
                "--tag=backup:00000000-0000-0000-0000-000000000000",
                "--keep-last=2"
            ]
        );
        assert!(forget_args(&job(0, "laptop"), &RetentionPolicy::default()).is_err());
    }

    #[test]
    fn windows_quoting_is_counted() {
        assert_eq!(arg_len("abc"), 4);
        assert_eq!(arg_len(""), 3);
        assert_eq!(arg_len("a b"), 6);
        assert_eq!(arg_len(r#"C:\x "y""#), 8 + 3 + 2 + 1);
    }

    /// Every batch within the limit, every job exactly once, one policy per batch, the jobs
    /// that must go alone alone, for many fleet sizes and limits.
    #[test]
    fn batches_respect_the_limit_and_the_policies() {
        let program = r"C:\Program Files\restic\restic.exe";
        for (n, limit) in [
            (0, WINDOWS_COMMAND_LINE),
            (1, 1000),
            (50, 1000),
            (3000, WINDOWS_COMMAND_LINE),
            (7000, UNIX_COMMAND_LINE),
        ] {
            let jobs: Vec<(JobRef, RetentionPolicy)> = (0..n)
                .map(|i| (job(i as u128, "d"), last(1 + (i % 3))))
                .collect();
            let alone: HashSet<Uuid> = (0..n)
                .step_by(97)
                .map(|i| Uuid::from_u128(i as u128))
                .collect();
            let (calls, refused) = plan(program, &jobs, &alone, limit);
            assert!(refused.is_empty());
            let mut seen: Vec<Uuid> = calls.iter().flat_map(|c| c.jobs.clone()).collect();
            seen.sort();
            let mut all: Vec<Uuid> = jobs.iter().map(|(j, _)| j.id).collect();
            all.sort();
            assert_eq!(seen, all, "every job exactly once (n={n})");
            let policy = |id: &Uuid| last(1 + (id.as_u128() % 3) as i32);
            for c in &calls {
                let len = arg_len(program) + c.argv.iter().map(|a| arg_len(a)).sum::<usize>();
                assert!(len + RESERVE <= limit, "{len} > {limit}");
                assert!(c.jobs.iter().all(|j| policy(j) == policy(&c.jobs[0])));
                let keep = format!("--keep-last={}", policy(&c.jobs[0]).keep_last.unwrap());
                assert!(c.argv.contains(&keep), "{:?}", c.argv);
                let tags = c.argv.iter().filter(|a| a.starts_with("--tag=")).count();
                assert_eq!(tags, c.jobs.len());
                if c.jobs.iter().any(|j| alone.contains(j)) {
                    assert!(!c.batched && c.jobs.len() == 1);
                    assert!(c.argv.contains(&"--host=d".to_string()));
                } else {
                    assert!(c.batched && c.argv.contains(&"--group-by=host,tags".into()));
                }
            }
            if n == 7000 {
                // A big fleet takes few processes.
                assert!(calls.len() < 20 + alone.len(), "{}", calls.len());
            }
        }
        let (calls, refused) = plan(
            "restic",
            &[(job(1, "d"), RetentionPolicy::default())],
            &HashSet::new(),
            1000,
        );
        assert!(calls.is_empty());
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn jobs_whose_snapshots_differ_go_alone() {
        let tag = |n: u128| format!("backup:{}", Uuid::from_u128(n));
        let jobs = [job(1, "a"), job(2, "a"), job(3, "b"), job(4, "b")];
        let snaps = [
            snap("1", "a", &[tag(1), "device:a".into()]),
            snap("2", "a", &["device:a".into(), tag(1)]),
            snap("3", "a", &[tag(2)]),
            snap("4", "a", &[tag(2), "x".into()]),
            snap("5", "b", &[tag(3)]),
            snap("6", "a", &[tag(3)]),
            snap("7", "b", &[tag(4), tag(9)]),
        ];
        let alone = must_go_alone(&snaps, &jobs);
        let want: HashSet<Uuid> = [2, 3].into_iter().map(Uuid::from_u128).collect();
        assert_eq!(alone, want);
        let snaps = [snap("8", "b", &[tag(4), tag(3)])];
        assert_eq!(must_go_alone(&snaps, &jobs).len(), 2);
    }

    #[test]
    fn a_batch_is_mapped_back_to_its_jobs() {
        let s = |id: &str| {
            format!(
                r#"{{"time":"2026-11-29T05:00:00Z","hostname":"h","paths":["/a"],"id":"{id}","short_id":"x"}}"#
            )
        };
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let text = format!(
            "progress\n[{{\"tags\":[\"backup:{a}\",\"device:h\"],\"host\":\"h\",\"keep\":[{}],\"remove\":[{}]}},\
             {{\"tags\":[\"backup:{b}\"],\"host\":\"h\",\"keep\":[{}],\"remove\":null}},\
             {{\"tags\":[\"backup:{b}\",\"new\"],\"host\":\"h\",\"keep\":[{}],\"remove\":[]}},\
             {{\"tags\":[\"other\"],\"host\":\"h\",\"keep\":[],\"remove\":[]}}]\n",
            s("k1"),
            s("r1"),
            s("k2"),
            s("k3")
        );
        let r = parse_batch(&text, &[a, b]).unwrap();
        assert_eq!(r.jobs[&a].kept, ["k1"]);
        assert_eq!(r.jobs[&a].removed, ["r1"]);
        assert_eq!(r.jobs[&b].kept, ["k2", "k3"]);
        assert!(r.split.contains(&b) && !r.split.contains(&a));
        assert_eq!(r.stray_groups, 1);
        assert!(parse_batch("[{", &[a]).is_err());
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
