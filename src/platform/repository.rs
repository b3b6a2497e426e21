//! The fleet's shared restic repository as the maintenance, `snapshots` and `restore`
//! commands reach it: URL, password and cache directory from the settings (in restic's
//! environment, never in argv), the snapshot listing, and waiting while another restic holds
//! the repository lock.
//!
//! A backup waits while the maintenance owner prunes, and maintenance waits while backups run,
//! each up to `repository_lock_wait_seconds` ([`LockWait`]): after a lock failure stale locks
//! go and restic is tried again at once; if the lock is still held, restic 0.16+ waits for the
//! rest of the time itself (`--retry-lock`, so it gets the lock the moment it is free), while
//! for 0.14, which fails at once when it cannot lock, the retries live here.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::restic::{self, Transcript};
use crate::domain::settings::Settings;
use crate::platform::restic_env::redact_secrets;
use crate::usage_err;

/// Everything needed to start restic on the shared repository.
#[derive(Clone)]
pub struct Repository {
    pub restic: PathBuf,
    pub url: String,
    password: String,
    /// The settings in force: restic's cache directory and the backend environment
    /// (`repository_environment`) come from them, as for `run`.
    settings: Settings,
    /// Whether the warning for a cache restic cannot use was given (once per command).
    cache_warned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("url", &crate::domain::text::mask_url(&self.url))
            .field("password", &"***")
            .finish()
    }
}

/// What one restic command printed and how it ended (password redacted). The text is whole:
/// `snapshots --json` and `forget --json` print one line that can be megabytes long in a big
/// repository; [`bounded`] caps it for storage.
#[derive(Debug, Clone, Default)]
pub struct ResticOutput {
    /// `None` when restic could not be started or was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ResticOutput {
    pub fn success(&self) -> bool {
        self.code == Some(restic::code::OK)
    }

    /// restic could not lock the repository (0.17+: exit 11; older: exit 1 and its message).
    pub fn lock_failure(&self) -> bool {
        is_lock_failure(self.code, &self.stderr)
    }

    /// One sentence for a failed command against `repo`.
    pub fn reason(&self, repo: &Repository) -> String {
        match self.code {
            Some(c) => restic::failure_reason(c, &[], &self.stderr, &repo.url, &repo.settings),
            None => format!(
                "restic did not finish: {}",
                self.stderr.lines().last().unwrap_or("killed by a signal")
            ),
        }
    }
}

/// Whether restic's exit code and stderr say that the repository was locked by another process.
pub fn is_lock_failure(code: Option<i32>, stderr: &str) -> bool {
    match code {
        Some(restic::code::LOCK_FAILED) => true,
        Some(restic::code::FATAL) => {
            stderr.contains("unable to create lock") || stderr.contains("already locked")
        }
        _ => false,
    }
}

impl Repository {
    /// The repository of the settings; a missing URL or password, or a missing restic, is a
    /// sentence naming the fix.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings.get("repository_url").ok_or_else(|| {
            usage_err!(
                "the repository_url setting is empty; set it with `restic-fleet settings set \
                 repository_url URL` (e.g. sftp:user@host:/srv/restic or /srv/restic)"
            )
        })?;
        let password = settings.get("repository_password").ok_or_else(|| {
            usage_err!(
                "the repository_password setting is empty; set it with `restic-fleet settings \
                 set repository_password -` (reads it from standard input)"
            )
        })?;
        // Checked again here, where it is used: a row written around `settings set`.
        crate::domain::restic::backend_env::from_settings(settings)?;
        let restic = which::which("restic").map_err(|_| {
            usage_err!(
                "restic was not found on PATH; install it (Debian/Ubuntu: apt install restic, \
                 Windows: winget install restic.restic)"
            )
        })?;
        Ok(Repository {
            restic,
            url: url.to_string(),
            password: password.to_string(),
            settings: settings.clone(),
            cache_warned: Default::default(),
        })
    }

    /// The same repository settings (password, environment, cache) reaching `url`, one
    /// expansion of a `repository_url` template.
    pub fn with_url(mut self, url: String) -> Self {
        self.url = url;
        self
    }

    /// A restic command with the same clean environment as a backup's: the repository, the
    /// password, the cache directory and the backend credentials, nothing of restic-fleet's.
    pub fn command(&self) -> tokio::process::Command {
        let (mut cmd, cache_warning) = crate::platform::restic_env::restic_command_warning(
            &self.restic,
            &self.url,
            &self.password,
            &self.settings,
        );
        cmd.stdout(Stdio::piped());
        if let Some(w) = cache_warning
            && !self
                .cache_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("{w}");
        }
        cmd
    }

    /// Runs `restic ARGS` to the end; output is redacted.
    pub async fn run(&self, args: &[String]) -> ResticOutput {
        let mut cmd = self.command();
        cmd.args(args);
        tracing::debug!("restic {}", args.join(" "));
        match cmd.output().await {
            Ok(out) => ResticOutput {
                code: out.status.code(),
                stdout: redact_secrets(
                    &String::from_utf8_lossy(&out.stdout),
                    &self.password,
                    &self.settings,
                ),
                stderr: redact_secrets(
                    &String::from_utf8_lossy(&out.stderr),
                    &self.password,
                    &self.settings,
                ),
            },
            Err(e) => ResticOutput {
                code: None,
                stdout: String::new(),
                stderr: format!("could not start restic at {}: {e}", self.restic.display()),
            },
        }
    }

    /// Runs `restic ARGS`, retrying while another process holds the repository lock.
    /// restic 0.16+ waits itself (see [`LockWait`]); its version is asked only then.
    pub async fn run_waiting(&self, args: &[String], wait: &mut LockWait) -> ResticOutput {
        let mut argv = args.to_vec();
        loop {
            let out = self.run(&argv).await;
            if out.lock_failure() && wait.version.is_none() {
                wait.version = self.version();
            }
            if !out.lock_failure() || !wait.wait(false).await {
                return out;
            }
            argv = wait.restic_args();
            argv.extend_from_slice(args);
        }
    }

    /// The version of this restic, if it says.
    pub fn version(&self) -> Option<restic::Version> {
        crate::platform::restic_env::version_line(&self.restic)
            .ok()
            .and_then(|l| restic::Version::parse(&l))
    }

    /// The repository's snapshots, optionally only those of `host` carrying every tag of
    /// `tags` (restic's own filters; read without a lock).
    pub async fn snapshots(
        &self,
        host: Option<&str>,
        tags: &[String],
    ) -> anyhow::Result<Vec<Snapshot>> {
        let mut args = vec!["snapshots".to_string(), "--json".into(), "--no-lock".into()];
        if let Some(h) = host {
            args.push(format!("--host={h}"));
        }
        if !tags.is_empty() {
            args.push(format!("--tag={}", tags.join(",")));
        }
        let out = self.run(&args).await;
        if !out.success() {
            return Err(crate::domain::exit::Failure::failed(format!(
                "could not list the snapshots of the repository: {}",
                out.reason(self)
            ))
            .into());
        }
        parse_snapshots(out.stdout.as_bytes())
    }
}

/// `text` capped as a run's stored output is (head and tail kept).
pub fn bounded(text: &str) -> String {
    let mut t = Transcript::new(restic::OUTPUT_CAP_BYTES);
    for line in text.lines() {
        t.push_line(line);
    }
    t.finish()
}

/// One snapshot as `restic snapshots --json` lists it (0.14 through 0.19).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub short_id: String,
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl Snapshot {
    /// The job UUID of its `backup:<uuid>` tag, if it has one.
    pub fn job_id(&self) -> Option<uuid::Uuid> {
        self.tags
            .iter()
            .flatten()
            .find_map(|t| t.strip_prefix("backup:"))
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
    }
}

pub fn parse_snapshots(json: &[u8]) -> anyhow::Result<Vec<Snapshot>> {
    // restic prints `null` for an empty list in some versions.
    let list: Option<Vec<Snapshot>> = serde_json::from_slice(json).map_err(|e| {
        anyhow::anyhow!("restic snapshots --json printed something unexpected: {e}")
    })?;
    let mut list = list.unwrap_or_default();
    list.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    Ok(list)
}

/// Waiting for the repository lock: retries with a growing pause (the first retry at once,
/// after stale locks were removed; then 5, 10, 20, 30, 30, ... seconds) until
/// `repository_lock_wait_seconds` have passed since the first failure.
#[derive(Debug)]
pub struct LockWait {
    deadline: Option<Instant>,
    limit: Duration,
    retries: u32,
    /// The restic in use, if known: 0.16+ waits for the lock itself.
    version: Option<restic::Version>,
    /// The `--retry-lock` argument of the attempt that hands the rest of the wait to restic.
    handed_over: Option<String>,
}

impl LockWait {
    pub fn new(limit: Duration) -> Self {
        LockWait {
            deadline: None,
            limit,
            retries: 0,
            version: None,
            handed_over: None,
        }
    }

    /// Waits with restic's `--retry-lock` when `version` has it.
    pub fn with_version(mut self, version: Option<restic::Version>) -> Self {
        self.version = version;
        self
    }

    /// The global restic arguments of the next attempt: `--retry-lock` once the wait has been
    /// handed to restic.
    pub fn restic_args(&self) -> Vec<String> {
        self.handed_over.iter().cloned().collect()
    }

    /// From the setting `repository_lock_wait_seconds` (default 1800).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self::new(Duration::from_secs(
            settings.get_u64("repository_lock_wait_seconds", 1800)?,
        )))
    }

    /// How long to pause before retry number `n` (0-based).
    fn pause(n: u32) -> Duration {
        match n {
            0 => Duration::ZERO,
            1 => Duration::from_secs(5),
            2 => Duration::from_secs(10),
            3 => Duration::from_secs(20),
            _ => Duration::from_secs(30),
        }
    }

    /// Called after a lock failure: pauses and returns true when another attempt should be
    /// made, false when the wait is over (or, with `stop_on_signal`, SIGINT/SIGTERM arrived:
    /// the caller already handles those signals, so they would otherwise be swallowed here).
    /// The first retry is always allowed, so a stale lock removed in between costs no wait.
    pub async fn wait(&mut self, stop_on_signal: bool) -> bool {
        let now = Instant::now();
        let deadline = *self.deadline.get_or_insert(now + self.limit);
        if self.retries > 0 && (now >= deadline || self.handed_over.is_some()) {
            tracing::warn!(
                "the repository stayed locked for {}s (repository_lock_wait_seconds); giving up",
                self.limit.as_secs()
            );
            return false;
        }
        let left = deadline.saturating_duration_since(now);
        if self.retries > 0 && self.version.is_some_and(restic::Version::retries_lock) {
            self.retries += 1;
            // Whole seconds, rounded up: restic's own wait ends no earlier than ours would.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            tracing::info!(
                "the repository is locked by another restic (maintenance or a backup); restic \
                 waits for the lock itself for up to {secs}s (waiting at most {}s in all)",
                self.limit.as_secs()
            );
            self.handed_over = Some(format!("--retry-lock={secs}s"));
            return true;
        }
        let pause = Self::pause(self.retries).min(left);
        self.retries += 1;
        if !pause.is_zero() {
            tracing::info!(
                "the repository is locked by another restic (maintenance or a backup); retrying \
                 in {}s (waiting at most {}s in all)",
                pause.as_secs(),
                self.limit.as_secs()
            );
            if stop_on_signal {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::platform::child::stop_signal() => {
                        tracing::warn!("interrupted while waiting for the repository lock");
                        return false;
                    }
                }
            } else {
                tokio::time::sleep(pause).await;
            }
        }
        true
    }

    /// How many retries were made.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_failures_of_every_version() {
        assert!(is_lock_failure(Some(11), ""));
        assert!(is_lock_failure(
            Some(1),
            "Fatal: unable to create lock in backend: repository is already locked exclusively by PID 7"
        ));
        assert!(!is_lock_failure(Some(1), "Fatal: wrong password"));
        assert!(!is_lock_failure(Some(0), "already locked"));
        assert!(!is_lock_failure(None, "already locked"));
    }

    #[test]
    fn snapshots_json_of_0_14() {
        let id = "a".repeat(64);
        let j = format!(
            r#"[{{"time":"2026-11-29T05:00:00.123456789+01:00","tree":"t","paths":["/x"],"hostname":"h","username":"u","tags":["backup:3f2b6c1e-0b1d-4c9e-8f3a-000000000001","device:h"],"id":"{id}","short_id":"aaaaaaaa"}}]"#
        );
        let s = parse_snapshots(j.as_bytes()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].job_id().unwrap().to_string(),
            "3f2b6c1e-0b1d-4c9e-8f3a-000000000001"
        );
        assert!(parse_snapshots(b"null").unwrap().is_empty());
        assert!(parse_snapshots(b"[]").unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_first_retry_is_immediate_and_the_wait_ends() {
        let mut w = LockWait::new(Duration::ZERO);
        assert!(w.wait(false).await);
        assert!(!w.wait(false).await);
        assert_eq!(w.retries(), 1);
    }

    #[tokio::test]
    async fn restic_0_16_and_later_wait_for_the_rest_themselves() {
        let v = restic::Version::parse("restic 0.18.0 compiled with go1.24.4").unwrap();
        let mut w = LockWait::new(Duration::from_secs(60)).with_version(Some(v));
        // The first retry is at once, after stale locks were removed, and as before.
        assert!(w.wait(false).await);
        assert!(w.restic_args().is_empty());
        let t0 = Instant::now();
        assert!(w.wait(false).await);
        assert!(t0.elapsed() < Duration::from_secs(1), "no pause of its own");
        assert_eq!(w.restic_args(), vec!["--retry-lock=60s".to_string()]);
        // restic waited the rest: a lock failure after that ends the wait.
        assert!(!w.wait(false).await);
        // 0.14 has no --retry-lock.
        let v = restic::Version::parse("restic 0.14.0 compiled with go1.19.8").unwrap();
        let mut w = LockWait::new(Duration::ZERO).with_version(Some(v));
        assert!(w.wait(false).await);
        assert!(!w.wait(false).await);
        assert!(w.restic_args().is_empty());
    }
}
