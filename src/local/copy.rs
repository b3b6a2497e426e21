//! The local copy: what this device needs to run its jobs when the database is away.
//!
//! Every `sync` that reaches the database writes `local-copy.json` in the state directory
//! (atomically, mode 0600: it holds the repository password): the device's jobs (disabled ones
//! too, so `run --force` and the refusals behave as online), their enabled schedules, and the
//! settings in force (global overridden by the device's own). `run` reads it only when the
//! database cannot be reached. It needs nothing a device role cannot SELECT: its own device,
//! jobs and schedules, and the global and own settings.
//!
//! Beside it, `last-run/<job>.json` holds the start of each job's latest run on this device,
//! written by every run (recorded live or spooled), so that a scheduled run while the database
//! is away knows whether its slot was already covered.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::job::Job;
use crate::domain::schedule::ScheduleRow;
use crate::domain::settings::Settings;
use crate::local::state::{self, StateDir};

const FILE: &str = "local-copy.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalCopy {
    /// Bumped when the layout changes incompatibly; a copy of another format is not used.
    pub format: u32,
    pub device_id: String,
    /// When the database was read.
    pub written_at: DateTime<Utc>,
    pub device_enabled: bool,
    pub settings: BTreeMap<String, String>,
    /// The keys of `settings` the device sets itself (the others are global); absent from a
    /// copy written by an older client.
    #[serde(default)]
    pub own_settings: Vec<String>,
    pub jobs: Vec<Job>,
    /// The enabled schedules of the device's jobs.
    pub schedules: Vec<ScheduleRow>,
}

impl LocalCopy {
    /// Reads this device's part of the database; `None` when the device is not registered.
    pub async fn fetch(conn: &mut PgConnection, device_id: &str) -> anyhow::Result<Option<Self>> {
        let enabled = crate::store::devices::enabled(&mut *conn, device_id).await?;
        let Some(device_enabled) = enabled else {
            return Ok(None);
        };
        let settings = crate::store::settings::load(&mut *conn, device_id).await?;
        let (jobs, schedules) =
            crate::store::client::jobs_and_schedules(&mut *conn, device_id, false).await?;
        Ok(Some(Self {
            format: FORMAT,
            device_id: device_id.to_string(),
            written_at: Utc::now(),
            device_enabled,
            settings: settings.values().clone(),
            own_settings: settings.own_keys().iter().cloned().collect(),
            jobs,
            schedules,
        }))
    }

    pub fn path(state: &StateDir) -> PathBuf {
        state.root().join(FILE)
    }

    /// Writes the copy, unless the file holds this very copy already: then only its
    /// modification time moves on (when the database was last read, see [`LocalCopy::read`]),
    /// so a sync that changed nothing neither rewrites nor fsyncs a file holding the password.
    pub fn write(&self, state: &StateDir) -> anyhow::Result<PathBuf> {
        let path = Self::path(state);
        if let Ok(old) = std::fs::read(&path)
            && let Ok(prev) = serde_json::from_slice::<LocalCopy>(&old)
        {
            let same = LocalCopy {
                written_at: prev.written_at,
                ..self.clone()
            };
            if serde_json::to_vec_pretty(&same)? == old {
                if let Ok(f) = std::fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
                return Ok(path);
            }
        }
        let bytes = serde_json::to_vec_pretty(self)?;
        state::write_atomic(state.ensure()?, FILE, &bytes)
    }

    /// The copy for `device_id`, or why there is none usable (one sentence).
    pub fn read(state: &StateDir, device_id: &str) -> Result<Self, String> {
        let path = Self::path(state);
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "there is no local copy of this device's jobs at {} yet (`restic-fleet sync` \
                     writes it whenever it reaches the database)",
                    path.display()
                )
            } else {
                format!("the local copy {} cannot be read: {e}", path.display())
            }
        })?;
        let mut copy: Self = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the local copy {} is not valid ({e}); the next `restic-fleet sync` that reaches \
                 the database rewrites it",
                path.display()
            )
        })?;
        if copy.format != FORMAT {
            return Err(format!(
                "the local copy {} has format {} but this client reads format {FORMAT}; the next \
                 `restic-fleet sync` that reaches the database rewrites it",
                path.display(),
                copy.format
            ));
        }
        if copy.device_id != device_id {
            return Err(format!(
                "the local copy {} belongs to device {:?}, not to this device {device_id:?}; the \
                 next `restic-fleet sync` that reaches the database rewrites it",
                path.display(),
                copy.device_id
            ));
        }
        // A sync that found nothing changed only touched the file (see [`LocalCopy::write`]).
        if let Ok(touched) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            copy.written_at = copy.written_at.max(DateTime::<Utc>::from(touched));
        }
        Ok(copy)
    }

    pub fn settings(&self) -> Settings {
        Settings::from_pairs(self.settings.clone())
            .with_own(&self.device_id, self.own_settings.iter().cloned())
    }

    pub fn job(&self, id: Uuid) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// How old the copy is, as people say it ("3h 12m").
    pub fn age(&self, now: DateTime<Utc>) -> String {
        let secs = (now - self.written_at).num_seconds().max(0);
        let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        match (d, h, m) {
            (0, 0, 0) => format!("{s}s"),
            (0, 0, _) => format!("{m}m {s}s"),
            (0, _, _) => format!("{h}h {m}m"),
            _ => format!("{d}d {h}h"),
        }
    }
}

/// The latest run of a job on this device, as this device knows it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LastRun {
    pub start_time: DateTime<Utc>,
}

/// Records the start of a job's run (kept only when later than the one recorded).
pub fn write_last_run(state: &StateDir, job: Uuid, start_time: DateTime<Utc>) {
    if read_last_run(state, job).is_some_and(|l| l.start_time >= start_time) {
        return;
    }
    let result = state.subdir("last-run").and_then(|dir| {
        let bytes = serde_json::to_vec(&LastRun { start_time })?;
        state::write_atomic(&dir, &format!("{job}.json"), &bytes)
    });
    if let Err(e) = result {
        tracing::warn!("could not note the time of this run in the state directory: {e:#}");
    }
}

pub fn read_last_run(state: &StateDir, job: Uuid) -> Option<LastRun> {
    let bytes = std::fs::read(state.root().join("last-run").join(format!("{job}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy written before jobs carried their origin and account still loads (their
    /// repository is then made without them: `{origin_name}`/`{account_id}` fail the run with a
    /// sentence until the next sync rewrites the copy).
    #[test]
    fn an_old_copy_without_origin_and_account_loads() {
        let old = r#"{"format":1,"device_id":"d","written_at":"2026-01-01T00:00:00Z",
            "device_enabled":true,"settings":{"repository_url":"/srv/{device_id}"},
            "jobs":[{"id":"00000000-0000-0000-0000-000000000007","device_id":"d","name":"n",
            "description":null,"source_paths":["/x"],"exclude_patterns":null,"tags":null,
            "restic_args":null,"enabled":true,"created_at":"2026-01-01T00:00:00Z",
            "updated_at":"2026-01-01T00:00:00Z","metadata":null,"origin_id":null,
            "ping_url":null,"hook_before":null,"hook_after":null,"hook_failure":null,
            "hook_finally":null}],"schedules":[]}"#;
        let copy: LocalCopy = serde_json::from_str(old).unwrap();
        let job = &copy.jobs[0];
        assert!(job.origin_name.is_none() && job.account_id.is_none());
        let repo = crate::domain::repository::of_job(&copy.settings(), &job.place()).unwrap();
        assert_eq!(repo.url, "/srv/d");
    }
}
