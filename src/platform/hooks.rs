//! What a run does around its backup besides restic: the job's hooks (shell commands before,
//! after, on failure and finally) and its healthchecks.io-style pings.
//!
//! `run` calls exactly two entry points, [`RunMonitor::before_backup`] and
//! [`RunMonitor::after_backup`], with plain values: the monitor never reads the database, so a
//! run made from the device's local copy (no database) hooks and pings the same way.
//!
//! Rules:
//! - `before` runs after the start ping; when it fails and its on-error rule is `stop`, the
//!   run fails without backing up and the hook's error is the run's error.
//! - After the backup: `after` on success (warnings included), `failure` on failure or
//!   cancellation, then `finally` always. A failing after/finally hook turns a success into a
//!   success with warnings (the backup itself is kept), so `status` shows it.
//! - Hooks run through the platform shell (`sh -c`, `cmd /C`) in their own process group; when
//!   the shell exits, or is killed after `hook_timeout_seconds`, everything it started is
//!   ended too (see [`HookProcesses`]). They see only `RESTIC_FLEET_*` variables besides the
//!   inherited environment minus every password variable. Their output, capped as it is read,
//!   goes into the run's `metadata.hooks`.
//! - A ping that fails is retried a few times, then noted in `metadata.pings` and logged; it
//!   never changes the run's outcome.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::domain::hook_command::validate_command;
use crate::domain::job::Job;
use crate::platform::child::HookProcesses;
use crate::platform::ping::{self, PingKind};

/// Each hook's stdout and stderr are kept up to this many bytes (their ends, where errors are).
const OUTPUT_CAP: usize = 8 * 1024;

/// Environment variables a hook never inherits: every way to reach the repository password,
/// and the database URL (which may hold the database password).
const SECRET_ENV: &[&str] = &[
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "DATABASE_URL",
    "PGPASSWORD",
];

/// What a `before` hook's failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails without backing up.
    Stop,
    /// The backup goes ahead; the failure is a warning.
    Continue,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Stop => "stop",
            OnError::Continue => "continue",
        }
    }
}

/// A job's hooks, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookSet {
    pub before: Option<String>,
    pub after: Option<String>,
    pub failure: Option<String>,
    pub finally: Option<String>,
    /// `None` means the default, `stop`.
    pub before_on_error: Option<OnError>,
}

impl HookSet {
    /// The hooks of a job row, checked again before anything runs.
    pub fn from_job(job: &Job) -> Result<HookSet, String> {
        let set = HookSet {
            before: job.hook_before.clone(),
            after: job.hook_after.clone(),
            failure: job.hook_failure.clone(),
            finally: job.hook_finally.clone(),
            before_on_error: Some(match job.hook_before_on_error.as_str() {
                "continue" => OnError::Continue,
                "stop" => OnError::Stop,
                other => {
                    return Err(format!(
                        "hook_before_on_error must be stop or continue, found {other:?}"
                    ));
                }
            }),
        };
        for (name, cmd) in set.commands() {
            validate_command(cmd).map_err(|e| format!("the {name} hook {e}"))?;
        }
        Ok(set)
    }

    fn commands(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("before", &self.before),
            ("after", &self.after),
            ("failure", &self.failure),
            ("finally", &self.finally),
        ]
        .into_iter()
        .filter_map(|(n, c)| c.as_deref().map(|c| (n, c)))
    }
}

/// Who is running: the values of the `RESTIC_FLEET_*` variables that do not change.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub job_id: String,
    pub job_name: String,
    pub device_id: String,
    /// The run's id (a database id, or a client id for an offline run).
    pub run_id: String,
}

/// How the backup ended, as hooks and pings need it.
#[derive(Debug, Clone, Default)]
pub struct BackupResult {
    /// `success`, `failed` or `cancelled` (the `runs.status`).
    pub status: String,
    pub warnings: Vec<String>,
    pub snapshot_id: Option<String>,
    /// restic's exit code.
    pub exit_code: Option<i32>,
    pub error_message: Option<String>,
    pub files_new: Option<i64>,
    pub data_added_bytes: Option<i64>,
}

/// What the monitor adds to the run record.
#[derive(Debug, Default)]
pub struct MonitorRecord {
    /// To merge into `runs.metadata`: `hooks` and `pings` (when any ran).
    pub metadata: serde_json::Map<String, Value>,
    /// Warnings to add to a successful run (a failed after/finally hook).
    pub warnings: Vec<String>,
}

/// One hook's execution, stored in `metadata.hooks`.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    pub hook: &'static str,
    pub command: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    pub stdout: String,
    pub stderr: String,
    /// Why it failed (none when it exited 0).
    pub error: Option<String>,
    /// Stopped because restic-fleet itself was told to stop: no further hook runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// The hooks and pings of one run.
#[derive(Debug)]
pub struct RunMonitor {
    who: RunIdentity,
    hooks: HookSet,
    ping_url: Option<String>,
    timeout: Duration,
    warning_as_success: bool,
    /// Strings to mask in stored hook output (the repository password).
    secrets: Vec<String>,
    hook_runs: Vec<HookRun>,
    pings: Vec<Value>,
    before_warning: Option<String>,
    invalid_hooks: Option<String>,
    /// A hook was stopped by SIGINT/SIGTERM: the remaining hooks are skipped.
    interrupted: bool,
}

impl RunMonitor {
    /// `ping_url` is validated again here: an invalid one is noted and not contacted.
    pub fn new(
        who: RunIdentity,
        hooks: HookSet,
        ping_url: Option<String>,
        hook_timeout: Duration,
        ping_warning_as_success: bool,
        secrets: Vec<String>,
    ) -> RunMonitor {
        RunMonitor {
            who,
            hooks,
            ping_url: ping_url.filter(|u| !u.trim().is_empty()),
            timeout: hook_timeout,
            warning_as_success: ping_warning_as_success,
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            hook_runs: Vec::new(),
            pings: Vec::new(),
            before_warning: None,
            invalid_hooks: None,
            interrupted: false,
        }
    }

    /// The monitor of a run of `job`. Hooks that fail validation here (the database was
    /// changed behind `job edit`'s back) make [`RunMonitor::before_backup`] fail the run.
    pub fn for_job(
        job: &Job,
        device_id: &str,
        run_id: &str,
        hook_timeout: Duration,
        ping_warning_as_success: bool,
        secrets: Vec<String>,
    ) -> RunMonitor {
        let who = RunIdentity {
            job_id: job.id.to_string(),
            job_name: job.name.clone(),
            device_id: device_id.to_string(),
            run_id: run_id.to_string(),
        };
        let (hooks, invalid) = match HookSet::from_job(job) {
            Ok(h) => (h, None),
            Err(e) => (HookSet::default(), Some(e)),
        };
        let mut m = RunMonitor::new(
            who,
            hooks,
            job.ping_url.clone(),
            hook_timeout,
            ping_warning_as_success,
            secrets,
        );
        m.invalid_hooks = invalid;
        m
    }

    /// The start ping, then the `before` hook. `Err` is the run's error message when the
    /// backup must not happen (a failing `before` hook with on-error `stop`).
    pub async fn before_backup(&mut self) -> Result<(), String> {
        self.ping(PingKind::Start, format!("run {} started", self.who.run_id))
            .await;
        if let Some(e) = &self.invalid_hooks {
            return Err(format!(
                "job {} ({:?}) has an invalid hook, nothing was backed up: {e}; fix it with \
                 `restic-fleet job edit {}`",
                self.who.job_id, self.who.job_name, self.who.job_id
            ));
        }
        let Some(cmd) = self.hooks.before.clone() else {
            return Ok(());
        };
        let run = self
            .run_hook("before", &cmd, &BackupResult::default(), "running")
            .await;
        let error = run.error.clone();
        self.interrupted |= run.interrupted;
        self.hook_runs.push(run);
        match error {
            None => Ok(()),
            Some(e) if self.interrupted => Err(format!(
                "the before hook failed, nothing was backed up: {e}"
            )),
            Some(e) => match self.hooks.before_on_error.unwrap_or(OnError::Stop) {
                OnError::Stop => Err(format!(
                    "the before hook failed, nothing was backed up: {e}"
                )),
                OnError::Continue => {
                    tracing::warn!("the before hook failed; backing up anyway: {e}");
                    self.before_warning = Some(format!("the before hook failed: {e}"));
                    Ok(())
                }
            },
        }
    }

    /// The `after` or `failure` hook, the `finally` hook, then the result ping. Returns what to
    /// add to the run record.
    pub async fn after_backup(&mut self, result: &BackupResult) -> MonitorRecord {
        let mut warnings: Vec<String> = self.before_warning.take().into_iter().collect();
        let success = result.status == "success";
        let hook_status = match result.status.as_str() {
            "success" if !result.warnings.is_empty() || !warnings.is_empty() => "warning",
            other => other,
        };
        let first = if success {
            ("after", self.hooks.after.clone())
        } else {
            ("failure", self.hooks.failure.clone())
        };
        for (name, cmd) in [first, ("finally", self.hooks.finally.clone())] {
            let Some(cmd) = cmd else { continue };
            if self.interrupted {
                tracing::warn!("the {name} hook is not run: restic-fleet was told to stop");
                continue;
            }
            let run = self.run_hook(name, &cmd, result, hook_status).await;
            self.interrupted |= run.interrupted;
            if let Some(e) = &run.error {
                tracing::warn!("the {name} hook failed: {e}");
                if success {
                    warnings.push(format!("the {name} hook failed: {e}"));
                }
            }
            self.hook_runs.push(run);
        }
        let has_warnings = !result.warnings.is_empty() || !warnings.is_empty();
        let kind = match (success, has_warnings) {
            (true, false) => PingKind::Success,
            (true, true) if self.warning_as_success => PingKind::Success,
            _ => PingKind::Fail,
        };
        let mut all_warnings = result.warnings.clone();
        all_warnings.extend(warnings.iter().cloned());
        self.ping(kind, ping_body(result, hook_status, &all_warnings))
            .await;
        let mut metadata = serde_json::Map::new();
        if !self.hook_runs.is_empty() {
            metadata.insert("hooks".into(), json!(self.hook_runs));
        }
        if !self.pings.is_empty() {
            metadata.insert("pings".into(), Value::Array(self.pings.clone()));
        }
        MonitorRecord { metadata, warnings }
    }

    async fn ping(&mut self, kind: PingKind, body: String) {
        let Some(base) = self.ping_url.clone() else {
            return;
        };
        let shown = ping::display_url(&base);
        let result = match ping::validate_url(&base) {
            Err(e) => Err(format!("the job's ping URL {shown} is not used: {e}")),
            Ok(url) => ping::send_ping(&url, kind, body).await,
        };
        match &result {
            Ok(()) => tracing::debug!("pinged {shown} ({})", kind.as_str()),
            Err(e) => tracing::warn!("ping {} failed (the backup goes on): {e}", kind.as_str()),
        }
        self.pings.push(json!({
            "ping": kind.as_str(),
            "ok": result.is_ok(),
            "error": result.err(),
        }));
    }

    async fn run_hook(
        &self,
        name: &'static str,
        cmd: &str,
        result: &BackupResult,
        status: &str,
    ) -> HookRun {
        let started = Instant::now();
        let mut hook = HookRun {
            hook: name,
            command: cmd.to_string(),
            exit_code: None,
            timed_out: false,
            duration_ms: 0,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            interrupted: false,
        };
        if let Err(e) = validate_command(cmd) {
            hook.error = Some(format!("the {name} hook {e}"));
            return hook;
        }
        let env = self.hook_env(name, status, result);
        tracing::info!("running the {name} hook");
        let outcome = execute_shell(cmd, &env, self.timeout).await;
        hook.duration_ms = started.elapsed().as_millis() as u64;
        let mask = |s: &str| {
            self.secrets.iter().fold(s.to_string(), |acc, secret| {
                crate::domain::text::redact(&acc, secret)
            })
        };
        match outcome {
            Err(ShellError {
                message,
                interrupted,
            }) => {
                hook.error = Some(message);
                hook.interrupted = interrupted;
            }
            Ok(done) => {
                hook.exit_code = done.exit_code;
                hook.timed_out = done.timed_out;
                hook.stdout = mask(&done.stdout);
                hook.stderr = mask(&done.stderr);
                if done.timed_out {
                    hook.error = Some(format!(
                        "it did not finish within {}s (hook_timeout_seconds) and was killed",
                        self.timeout.as_secs()
                    ));
                } else if done.exit_code != Some(0) {
                    // The last line it wrote to stderr says why, else stdout's.
                    let last_of = |t: &str| {
                        t.lines()
                            .rfind(|l| !l.trim().is_empty())
                            .map(|l| l.trim().to_string())
                    };
                    let last = last_of(&hook.stderr)
                        .or_else(|| last_of(&hook.stdout))
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default();
                    hook.error = Some(match done.exit_code {
                        Some(c) => format!("it exited with code {c}{last}"),
                        None => format!("it was killed by a signal{last}"),
                    });
                }
            }
        }
        hook
    }

    /// What a hook learns of the run, in its environment.
    fn hook_env(
        &self,
        name: &'static str,
        status: &str,
        result: &BackupResult,
    ) -> [(&'static str, String); 9] {
        [
            ("RESTIC_FLEET_JOB_ID", self.who.job_id.clone()),
            ("RESTIC_FLEET_JOB_NAME", self.who.job_name.clone()),
            ("RESTIC_FLEET_DEVICE_ID", self.who.device_id.clone()),
            ("RESTIC_FLEET_RUN_ID", self.who.run_id.clone()),
            ("RESTIC_FLEET_HOOK", name.to_string()),
            ("RESTIC_FLEET_STATUS", status.to_string()),
            (
                "RESTIC_FLEET_SNAPSHOT_ID",
                result.snapshot_id.clone().unwrap_or_default(),
            ),
            (
                "RESTIC_FLEET_EXIT_CODE",
                result.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            ),
            (
                "RESTIC_FLEET_ERROR",
                result.error_message.clone().unwrap_or_default(),
            ),
        ]
    }
}

/// The lines `runs show` prints for a run's recorded hooks (with their output) and failed
/// pings.
pub fn describe_recorded(metadata: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(m) = metadata else { return out };
    for h in m
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = h["hook"].as_str().unwrap_or("?");
        let result = match (h["error"].as_str(), h["exit_code"].as_i64()) {
            (Some(e), _) => format!("failed: {e}"),
            (None, Some(c)) => format!("exit {c}"),
            (None, None) => "?".into(),
        };
        out.push(format!(
            "hook {name:<7} {} ({result}, {} ms)",
            h["command"].as_str().unwrap_or(""),
            h["duration_ms"].as_u64().unwrap_or(0)
        ));
        for stream in ["stdout", "stderr"] {
            if let Some(text) = h[stream].as_str().filter(|t| !t.trim().is_empty()) {
                for line in text.trim_end().lines() {
                    out.push(format!("  {stream}: {line}"));
                }
            }
        }
    }
    for p in m
        .get("pings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p["ok"] == false {
            out.push(format!(
                "ping {} failed: {}",
                p["ping"].as_str().unwrap_or("?"),
                p["error"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

/// The body of the result ping: one `key: value` a line.
fn ping_body(r: &BackupResult, status: &str, warnings: &[String]) -> String {
    let mut body = format!("status: {status}\n");
    if let Some(s) = &r.snapshot_id {
        body.push_str(&format!("snapshot: {s}\n"));
    }
    if let Some(n) = r.files_new {
        body.push_str(&format!("files new: {n}\n"));
    }
    if let Some(n) = r.data_added_bytes {
        body.push_str(&format!("bytes added: {n}\n"));
    }
    if let Some(c) = r.exit_code {
        body.push_str(&format!("restic exit code: {c}\n"));
    }
    if r.status != "success"
        && let Some(e) = &r.error_message
    {
        body.push_str(&format!("error: {e}\n"));
    }
    for w in warnings {
        body.push_str(&format!("warning: {w}\n"));
    }
    body
}

struct ShellError {
    message: String,
    interrupted: bool,
}

impl ShellError {
    fn failed(message: String) -> ShellError {
        ShellError {
            message,
            interrupted: false,
        }
    }
}

struct ShellDone {
    exit_code: Option<i32>,
    timed_out: bool,
    /// The ends of its output (see [`Tail`]).
    stdout: String,
    stderr: String,
}

/// How long the output of a hook that has exited is still read: what it wrote is in the pipe
/// already, so this only matters when something it left behind holds the pipe open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// The last [`OUTPUT_CAP`] bytes a pipe carried: everything before is read and thrown away, so
/// a hook printing gigabytes costs no memory.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > OUTPUT_CAP {
            let excess = self.bytes.len() - OUTPUT_CAP;
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }

    /// Reads `pipe` into the tail until it ends or `deadline` passes.
    async fn drain<R: AsyncRead + Unpin>(&mut self, pipe: &mut Option<R>, deadline: Instant) {
        let Some(r) = pipe else { return };
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout_at(deadline.into(), r.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.push(&buf[..n]),
                _ => break,
            }
        }
        *pipe = None;
    }

    /// The text kept, starting on a character boundary, `[...]` first when its start was cut.
    fn text(self) -> String {
        if !self.cut {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        // Skip UTF-8 continuation bytes: the cut may have split a character.
        let start = self
            .bytes
            .iter()
            .position(|b| b & 0xC0 != 0x80)
            .unwrap_or(self.bytes.len());
        format!("[...]{}", String::from_utf8_lossy(&self.bytes[start..]))
    }
}

/// Runs `cmd` through the platform shell with `env` added and the secrets removed. Its output
/// is read as it comes, keeping only its end; once the shell has exited (or after `timeout`)
/// everything it started is ended, and its output is read only as far as it is already there.
async fn execute_shell(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<ShellDone, ShellError> {
    let mut command = shell_command(cmd);
    for k in SECRET_ENV {
        command.env_remove(k);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (mut child, procs) = HookProcesses::spawn(&mut command)
        .map_err(|e| ShellError::failed(format!("the shell could not be started: {e}")))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (mut out_tail, mut err_tail) = (Tail::default(), Tail::default());
    let (mut out_buf, mut err_buf) = ([0u8; 8192], [0u8; 8192]);
    let deadline = tokio::time::sleep(timeout);
    // The hook has a process group of its own, which also keeps a terminal's Ctrl-C from
    // reaching it: a SIGINT/SIGTERM to us stops it here.
    let stop = crate::platform::child::stop_signal();
    tokio::pin!(deadline, stop);
    let ended = loop {
        tokio::select! {
            n = read_some(&mut out, &mut out_buf) => match n {
                Some(n) => out_tail.push(&out_buf[..n]),
                None => out = None,
            },
            n = read_some(&mut err, &mut err_buf) => match n {
                Some(n) => err_tail.push(&err_buf[..n]),
                None => err = None,
            },
            status = child.wait() => break Ok(status),
            _ = &mut deadline => break Err(None),
            sig = &mut stop => break Err(Some(sig)),
        }
    };
    procs.end();
    let status = match ended {
        Ok(status) => status,
        Err(sig) => {
            let _ = child.kill().await;
            if let Some(sig) = sig {
                return Err(ShellError {
                    message: format!("it was stopped because restic-fleet received {sig}"),
                    interrupted: true,
                });
            }
            return Ok(ShellDone {
                exit_code: None,
                timed_out: true,
                stdout: out_tail.text(),
                stderr: err_tail.text(),
            });
        }
    };
    let status =
        status.map_err(|e| ShellError::failed(format!("waiting for the hook failed: {e}")))?;
    let until = Instant::now() + DRAIN_AFTER_EXIT;
    out_tail.drain(&mut out, until).await;
    err_tail.drain(&mut err, until).await;
    Ok(ShellDone {
        exit_code: status.code(),
        timed_out: false,
        stdout: out_tail.text(),
        stderr: err_tail.text(),
    })
}

/// One read from `pipe`; `None` at its end (or on an error). A closed pipe never resolves, so
/// the `select!` above waits on the others.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        None => std::future::pending().await,
        Some(r) => match r.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
    }
}

#[cfg(unix)]
fn shell_command(cmd: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

#[cfg(windows)]
fn shell_command(cmd: &str) -> tokio::process::Command {
    use std::os::windows::process::CommandExt;
    // cmd.exe parses its own command line: hand it over verbatim, as typed.
    let mut c = std::process::Command::new("cmd");
    c.arg("/C").raw_arg(cmd);
    tokio::process::Command::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_its_end() {
        let mut t = Tail::default();
        t.push(b"abc");
        assert_eq!(t.text(), "abc");
        let mut t = Tail::default();
        for _ in 0..OUTPUT_CAP {
            t.push("é".as_bytes());
        }
        assert_eq!(t.bytes.len(), OUTPUT_CAP);
        let text = t.text();
        assert!(
            text.starts_with("[...]é") && text.len() == OUTPUT_CAP + 5,
            "{text}"
        );
    }

    #[test]
    fn body_names_the_result() {
        let r = BackupResult {
            status: "failed".into(),
            error_message: Some("boom".into()),
            exit_code: Some(1),
            ..Default::default()
        };
        let b = ping_body(&r, "failed", &[]);
        assert!(b.starts_with("status: failed\n") && b.contains("error: boom"));
    }
}
