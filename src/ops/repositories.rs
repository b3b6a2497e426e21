//! The fleet's repositories as the settings imply them, computed for an admin: every device's
//! settings in force and every job are read in two statements whatever the fleet's size, each
//! job's repository is expanded ([`crate::domain::repository::of_job`]) and the jobs are grouped
//! by the expanded URL. `repositories list|init|move` share it; so do the existence check
//! (`restic cat config`, a few at a time) and `restic init`.
//!
//! A repository is opened with the settings of the devices that write it: a shared one with the
//! global settings, a device's own one with that device's settings in force.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use uuid::Uuid;

use crate::domain::repository::{JobPlace, Maintainer, fingerprint, of_job};
use crate::domain::settings::Settings;
use crate::platform::repository::{Repository, ResticOutput};
use crate::store::repositories::JobPlaceRow;
use crate::store::settings::AllSettings;

/// How many restic processes check or create repositories at the same time.
pub const CONCURRENCY: usize = 4;

/// A job as `repositories --json` names it: `job_id`, `device_id`, `job_name`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobRef {
    pub job_id: Uuid,
    pub device_id: String,
    pub job_name: String,
}

/// One repository the settings imply.
#[derive(Debug, Clone)]
pub struct FleetRepository {
    /// The expanded URL: may hold credentials, mask it before showing it.
    pub url: String,
    pub fingerprint: String,
    pub maintainer: Maintainer,
    /// The devices whose jobs write it, sorted.
    pub devices: Vec<String>,
    pub jobs: Vec<JobRef>,
    /// The settings it is opened with (password, cache directory, backend environment).
    pub settings: Settings,
}

/// A job whose repository cannot be known, or a repository its devices cannot all open: one
/// sentence naming the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub job_id: Option<Uuid>,
    pub device_id: Option<String>,
    pub job_name: Option<String>,
    pub reason: String,
}

/// The fleet's repositories and what keeps any of them from being known.
#[derive(Debug, Default)]
pub struct Fleet {
    pub repositories: Vec<FleetRepository>,
    pub problems: Vec<Problem>,
    /// The global `maintenance_device`, which maintains the shared repositories.
    pub maintenance_device: Option<String>,
}

impl Fleet {
    /// The repository at exactly `url`, if the fleet has it.
    pub fn by_url(&self, url: &str) -> Option<&FleetRepository> {
        self.repositories.iter().find(|r| r.url == url)
    }

    /// The device in charge of `r`'s maintenance: its device, or the `maintenance_device`.
    pub fn maintainer_of(&self, r: &FleetRepository) -> Option<String> {
        match &r.maintainer {
            Maintainer::Device(d) => Some(d.clone()),
            Maintainer::Shared => self.maintenance_device.clone(),
        }
    }

    /// How the maintainer is shown: the device, or `maintenance_device (<id or unset>)`.
    pub fn maintainer_label(&self, r: &FleetRepository) -> String {
        match &r.maintainer {
            Maintainer::Device(d) => d.clone(),
            Maintainer::Shared => format!(
                "maintenance_device ({})",
                self.maintenance_device.as_deref().unwrap_or("unset")
            ),
        }
    }
}

/// Reads the settings and jobs (two statements) and computes the fleet's repositories.
pub async fn compute(pool: &sqlx::PgPool) -> anyhow::Result<Fleet> {
    let settings = crate::store::settings::all(pool).await?;
    let jobs = crate::store::repositories::job_places(pool).await?;
    Ok(group(&settings, jobs))
}

/// Groups the jobs by the repository each one's device's settings give it, in the order first
/// seen. Jobs arrive grouped by device, so each device's settings are merged once.
pub fn group(all: &AllSettings, jobs: Vec<JobPlaceRow>) -> Fleet {
    let global = all.global();
    let mut fleet = Fleet {
        maintenance_device: global.get("maintenance_device").map(str::to_string),
        ..Fleet::default()
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut devices: Vec<BTreeSet<String>> = Vec::new();
    let mut current: Option<(String, Settings)> = None;
    for j in jobs {
        if current.as_ref().is_none_or(|(d, _)| *d != j.device_id) {
            current = Some((j.device_id.clone(), all.of(&j.device_id)));
        }
        let Some((_, settings)) = current.as_ref() else {
            continue;
        };
        let job = JobRef {
            job_id: j.id,
            device_id: j.device_id.clone(),
            job_name: j.name.clone(),
        };
        let place = JobPlace {
            device_id: &j.device_id,
            job_id: j.id,
            account_id: j.account_id,
            origin_name: j.origin_name.as_deref(),
        };
        let repo = match of_job(settings, &place) {
            Ok(r) => r,
            Err(reason) => {
                fleet.problems.push(problem(&job, reason));
                continue;
            }
        };
        let i = *index.entry(repo.url.clone()).or_insert_with(|| {
            let opened_with = match repo.maintainer {
                Maintainer::Shared => global.clone(),
                Maintainer::Device(_) => settings.clone(),
            };
            fleet.repositories.push(FleetRepository {
                fingerprint: fingerprint(&repo.url),
                url: repo.url.clone(),
                maintainer: repo.maintainer.clone(),
                devices: Vec::new(),
                jobs: Vec::new(),
                settings: opened_with,
            });
            devices.push(BTreeSet::new());
            fleet.repositories.len() - 1
        });
        let r = &mut fleet.repositories[i];
        if r.maintainer != repo.maintainer {
            fleet.problems.push(problem(
                &job,
                format!(
                    "repository {} is written by device {:?} and by others: a repository_url \
                     of a device's own must be that device's alone; give {:?} another one",
                    short(&r.fingerprint),
                    j.device_id,
                    j.device_id
                ),
            ));
        }
        if devices[i].insert(j.device_id.clone())
            && settings.get("repository_password") != r.settings.get("repository_password")
        {
            fleet.problems.push(Problem {
                job_id: None,
                device_id: Some(j.device_id.clone()),
                job_name: None,
                reason: format!(
                    "device {:?} writes to repository {} with another repository_password than \
                     the repository's ({}); it cannot open it: remove its own password with \
                     `restic-fleet settings unset repository_password --device {}`, or give it \
                     a repository_url of its own",
                    j.device_id,
                    short(&r.fingerprint),
                    match r.maintainer {
                        Maintainer::Shared => "the global one",
                        Maintainer::Device(_) => "its device's",
                    },
                    crate::domain::quote::posix(&j.device_id)
                ),
            });
        }
        r.jobs.push(job);
    }
    for (r, d) in fleet.repositories.iter_mut().zip(devices) {
        r.devices = d.into_iter().collect();
    }
    fleet
}

fn problem(job: &JobRef, reason: String) -> Problem {
    Problem {
        job_id: Some(job.job_id),
        device_id: Some(job.device_id.clone()),
        job_name: Some(job.job_name.clone()),
        reason,
    }
}

/// The first 12 hex digits of a fingerprint: a repository's label where its URL is not shown.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

/// Whether a repository exists, as restic answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existence {
    Exists,
    Missing,
    /// restic could not tell (wrong password, unreachable backend, no restic): why.
    Unknown(String),
}

/// Opens `r` with its settings.
pub fn open(r: &FleetRepository) -> anyhow::Result<Repository> {
    Repository::new(r.url.clone(), &r.settings)
}

/// Asks restic whether `repo` exists with the cheapest command that needs its key:
/// `restic cat config` reads one small file, so a missing repository (exit 10, or 0.14's
/// message) is told apart from a wrong password or an unreachable backend.
pub async fn exists(repo: &Repository) -> Existence {
    let out = repo
        .run(&["cat".into(), "config".into(), "--no-lock".into()])
        .await;
    classify(&out, repo)
}

fn classify(out: &ResticOutput, repo: &Repository) -> Existence {
    if out.success() {
        return Existence::Exists;
    }
    match out.code {
        Some(c) if crate::domain::restic::is_missing_repository(c, &out.stderr) => {
            Existence::Missing
        }
        _ => Existence::Unknown(out.reason(repo)),
    }
}

/// Checks every repository of `repos`, [`CONCURRENCY`] at a time, in their order.
pub async fn check_all(repos: &[FleetRepository]) -> Vec<Existence> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, r) in repos.iter().enumerate() {
        let opened = open(r);
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let e = match opened {
                Ok(repo) => exists(&repo).await,
                Err(e) => Existence::Unknown(e.to_string()),
            };
            (i, e)
        });
    }
    let mut out = vec![Existence::Unknown("not checked".into()); repos.len()];
    while let Some(done) = set.join_next().await {
        if let Ok((i, e)) = done {
            out[i] = e;
        }
    }
    out
}

/// Creates the repository with `restic init`; the error is one sentence.
pub async fn init(repo: &Repository) -> Result<(), String> {
    let out = repo.run(&["init".into()]).await;
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "restic init failed for {}: {}",
            crate::domain::text::mask_url(&repo.url),
            out.reason(repo)
        ))
    }
}

/// Runs `restic ARGS` on `dest` with `source` as restic's second repository
/// (`RESTIC_FROM_REPOSITORY`, `RESTIC_FROM_PASSWORD`: the same names in 0.14 through 0.19), for
/// `init --copy-chunker-params` and `copy`. Neither password nor URL reaches the command line;
/// both passwords are masked in the output.
pub async fn run_with_source(
    dest: &Repository,
    source: &Repository,
    args: &[&str],
) -> ResticOutput {
    let mut cmd = dest.command();
    cmd.env("RESTIC_FROM_REPOSITORY", &source.url)
        .env("RESTIC_FROM_PASSWORD", source.password())
        .args(args);
    let redact = |b: &[u8]| source.redact(&dest.redact(&String::from_utf8_lossy(b)));
    match cmd.output().await {
        Ok(out) => ResticOutput {
            code: out.status.code(),
            stdout: redact(&out.stdout),
            stderr: redact(&out.stderr),
        },
        Err(e) => ResticOutput {
            code: None,
            stdout: String::new(),
            stderr: format!("could not start restic at {}: {e}", dest.restic.display()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(device: &str, n: u128) -> JobPlaceRow {
        JobPlaceRow {
            id: Uuid::from_u128(n),
            device_id: device.into(),
            name: format!("job{n}"),
            account_id: None,
            origin_name: None,
        }
    }

    fn settings(global: &[(&str, &str)], own: &[(&str, &str, &str)]) -> AllSettings {
        let mut s = AllSettings {
            global: global
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..AllSettings::default()
        };
        for (d, k, v) in own {
            s.own
                .entry(d.to_string())
                .or_default()
                .push((k.to_string(), v.to_string()));
        }
        s
    }

    #[test]
    fn a_device_template_gives_each_device_its_repository() {
        let s = settings(
            &[
                ("repository_url", "/srv/{device_id}"),
                ("repository_password", "p"),
            ],
            &[],
        );
        let f = group(&s, vec![job("a", 1), job("a", 2), job("b", 3)]);
        assert_eq!(f.repositories.len(), 2);
        assert_eq!(f.repositories[0].url, "/srv/a");
        assert_eq!(f.repositories[0].jobs.len(), 2);
        assert_eq!(f.repositories[0].maintainer, Maintainer::Device("a".into()));
        assert_eq!(f.repositories[1].devices, ["b"]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
    }

    #[test]
    fn a_shared_repository_uses_the_global_settings_and_flags_other_passwords() {
        let s = settings(
            &[
                ("repository_url", "/srv/all"),
                ("repository_password", "p"),
                ("maintenance_device", "a"),
            ],
            &[("b", "repository_password", "other")],
        );
        let f = group(&s, vec![job("a", 1), job("b", 2)]);
        assert_eq!(f.repositories.len(), 1);
        let r = &f.repositories[0];
        assert_eq!(r.devices, ["a", "b"]);
        assert_eq!(f.maintainer_label(r), "maintenance_device (a)");
        assert_eq!(r.settings.get("repository_password"), Some("p"));
        assert_eq!(f.problems.len(), 1);
        assert!(f.problems[0].reason.contains("another repository_password"));
    }

    #[test]
    fn a_job_that_cannot_expand_is_a_problem_not_a_repository() {
        let s = settings(
            &[
                ("repository_url", "/srv/{origin_name}"),
                ("repository_password", "p"),
            ],
            &[("b", "repository_url", "/srv/b")],
        );
        let f = group(&s, vec![job("a", 1), job("b", 2)]);
        assert_eq!(f.repositories.len(), 1);
        assert_eq!(f.repositories[0].maintainer, Maintainer::Device("b".into()));
        assert_eq!(f.problems.len(), 1);
        assert!(f.problems[0].reason.contains("has no origin_name"));
        assert_eq!(f.maintainer_label(&f.repositories[0]), "b");
        let unset = Fleet::default();
        assert_eq!(
            unset.maintainer_label(&FleetRepository {
                maintainer: Maintainer::Shared,
                ..f.repositories[0].clone()
            }),
            "maintenance_device (unset)"
        );
    }
}
