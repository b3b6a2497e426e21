//! The `job add|edit` options that set what a device pings and executes around a run:
//! `--ping-url`, `--hook-before|after|failure|finally` (each with a `--no-...` to clear it) and
//! `--hook-before-on-error`. Validated here before anything is written (and again by `run`
//! before use, see [`crate::platform::hooks`]); only admins may write them. The ping URL is kept in
//! `job_ping_urls`, apart from the job row that viewers and the maintenance owner read.

use clap::Args;
use sqlx::PgPool;
use uuid::Uuid;

use crate::platform::hooks::OnError;
use crate::platform::ping;
use crate::store::jobs::Change;
use crate::usage_err;

#[derive(Debug, Clone, Default, Args)]
pub struct MonitorArgs {
    /// healthchecks.io-style ping URL: the run POSTs URL/start, then URL on success or URL/fail
    /// on failure (and on warnings unless the setting ping_warning_as_success is true).
    #[arg(long, value_name = "URL")]
    pub ping_url: Option<String>,
    /// Remove the ping URL.
    #[arg(long, conflicts_with = "ping_url")]
    pub no_ping_url: bool,
    /// Shell command run before the backup (sh -c on Linux, cmd /C on Windows).
    #[arg(long, value_name = "CMD")]
    pub hook_before: Option<String>,
    /// Remove the before hook.
    #[arg(long, conflicts_with = "hook_before")]
    pub no_hook_before: bool,
    /// Shell command run after a successful backup (warnings included).
    #[arg(long, value_name = "CMD")]
    pub hook_after: Option<String>,
    /// Remove the after hook.
    #[arg(long, conflicts_with = "hook_after")]
    pub no_hook_after: bool,
    /// Shell command run after a failed or cancelled backup.
    #[arg(long, value_name = "CMD")]
    pub hook_failure: Option<String>,
    /// Remove the failure hook.
    #[arg(long, conflicts_with = "hook_failure")]
    pub no_hook_failure: bool,
    /// Shell command run after every backup, last.
    #[arg(long, value_name = "CMD")]
    pub hook_finally: Option<String>,
    /// Remove the finally hook.
    #[arg(long, conflicts_with = "hook_finally")]
    pub no_hook_finally: bool,
    /// When the before hook fails: stop (the run fails, nothing is backed up; the default) or
    /// continue (back up anyway, with a warning).
    #[arg(long, value_enum, value_name = "RULE")]
    pub hook_before_on_error: Option<OnError>,
}

/// The validated changes.
#[derive(Debug, Default)]
pub struct MonitorChanges {
    ping_url: Change,
    hooks: [Change; 4],
    on_error: Option<OnError>,
}

impl MonitorChanges {
    pub fn is_empty(&self) -> bool {
        self.ping_url.is_none() && self.hooks.iter().all(Option::is_none) && self.on_error.is_none()
    }
}

const HOOKS: [&str; 4] = ["before", "after", "failure", "finally"];

impl MonitorArgs {
    /// Checks every value; the error is one sentence naming the option.
    pub fn validate(&self) -> anyhow::Result<MonitorChanges> {
        let ping_url = match (&self.ping_url, self.no_ping_url) {
            (_, true) => Some(None),
            (Some(u), false) => {
                let u = u.trim();
                let parsed = ping::validate_url(u).map_err(|e| {
                    usage_err!(
                        "--ping-url {:?} is not usable: {e}; give a URL like \
                         https://hc-ping.com/UUID",
                        ping::display_url(u)
                    )
                })?;
                // Stored as parsed, so what `job show` names is what `run` contacts.
                Some(Some(parsed.to_string()))
            }
            (None, false) => None,
        };
        let given = [
            (&self.hook_before, self.no_hook_before),
            (&self.hook_after, self.no_hook_after),
            (&self.hook_failure, self.no_hook_failure),
            (&self.hook_finally, self.no_hook_finally),
        ];
        let mut hooks: [Change; 4] = Default::default();
        for (i, (cmd, clear)) in given.into_iter().enumerate() {
            hooks[i] = match (cmd, clear) {
                (_, true) => Some(None),
                (Some(c), false) => {
                    crate::domain::hook_command::validate_command(c)
                        .map_err(|e| usage_err!("--hook-{} {e}", HOOKS[i]))?;
                    Some(Some(c.clone()))
                }
                (None, false) => None,
            };
        }
        Ok(MonitorChanges {
            ping_url,
            hooks,
            on_error: self.hook_before_on_error,
        })
    }
}

/// Writes the changes to the job, in one transaction (see
/// [`crate::store::jobs::set_hooks_and_ping_url`]); nothing when there are none.
pub async fn apply(pool: &PgPool, job: Uuid, c: &MonitorChanges) -> anyhow::Result<()> {
    if c.is_empty() {
        return Ok(());
    }
    let on_error = c.on_error.map(OnError::as_str);
    crate::store::jobs::set_hooks_and_ping_url(pool, job, &c.hooks, on_error, &c.ping_url).await
}

/// The lines `job show` adds: the ping URL (host only: its path is the secret) and the hooks.
pub fn describe(job: &crate::domain::job::Job) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = &job.ping_url {
        out.push(format!("ping url:    {}", ping::display_url(u)));
    }
    for (name, cmd) in [
        ("before", &job.hook_before),
        ("after", &job.hook_after),
        ("failure", &job.hook_failure),
        ("finally", &job.hook_finally),
    ] {
        if let Some(c) = cmd {
            let rule = if name == "before" {
                format!(" (on error: {})", job.hook_before_on_error)
            } else {
                String::new()
            };
            out.push(format!("hook {name:<7} {c}{rule}"));
        }
    }
    out
}
