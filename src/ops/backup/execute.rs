//! Step 2 of `run`: execute restic for a resolved job and classify how it ended.
//!
//! Nothing here touches the database: the input is a [`ResolvedJob`] (from the database or the
//! local copy), the output an [`Outcome`] that [`crate::ops::delivery`] turns into a run record.
//! restic's argv never carries the repository or the password (they go in its environment),
//! and restic dies with this process ([`crate::platform::child`]).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::domain::exit;
use crate::domain::job::Job;
use crate::domain::restic::{self, Line, Summary, Transcript};
use crate::domain::settings::Settings;
use crate::domain::text::mask_url;
use crate::ops::backup::progress::Progress;
use crate::ops::backup::resolve::ResolvedJob;

#[derive(Debug, Default)]
struct StreamResult {
    transcript: String,
    pub(crate) summary: Option<Summary>,
    pub(crate) errors: Vec<String>,
    fatal: Vec<String>,
    raw_tail: String,
}

/// The outcome of the restic process.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) status: &'static str,
    pub(crate) exit_code: Option<i32>,
    pub(crate) error_message: Option<String>,
    pub(crate) summary: Summary,
    pub(crate) output: String,
    pub(crate) errors: String,
    pub(crate) warnings: Vec<String>,
    pub(crate) missing_paths: Vec<String>,
    pub(crate) cli_code: u8,
}

/// An outcome for a run that could not start restic at all.
pub(crate) fn failed(message: String, code: u8) -> Outcome {
    Outcome {
        status: "failed",
        error_message: Some(message),
        cli_code: code,
        ..Default::default()
    }
}

/// Builds restic's argv (without the program): never the repository or the password.
pub fn restic_argv(job: &Job, device_id: &str, extra: &[String]) -> Vec<String> {
    let mut argv = vec![
        "backup".to_string(),
        "--json".to_string(),
        format!("--host={device_id}"),
    ];
    for tag in crate::domain::job::standard_tags(job, device_id) {
        argv.push(format!("--tag={tag}"));
    }
    for pattern in job.exclude_patterns.iter().flatten() {
        argv.push(format!("--exclude={pattern}"));
    }
    argv.extend(extra.iter().cloned());
    argv.push("--".to_string());
    argv.extend(job.source_paths.iter().cloned());
    argv
}

/// Runs restic for a resolved job and says how it ended, with the password redacted from
/// everything restic said.
/// The job and slot locks this run holds stay with this process: their files are opened
/// close-on-exec (as Rust opens every file), so neither restic nor what it starts (an ssh
/// ControlPersist master outliving it) can keep a job locked.
pub(crate) async fn execute(
    resolved: &ResolvedJob,
    progress: bool,
    network_wait: crate::platform::network::NetworkWait,
    state: &crate::local::state::StateDir,
) -> Outcome {
    let password = resolved.password.as_str();
    let outcome = execute_unredacted(resolved, progress, network_wait, state).await;
    // Backend environment values (cloud credentials) are secrets like the password.
    let secret =
        |t: &str| crate::platform::restic_env::redact_secrets(t, password, &resolved.settings);
    Outcome {
        output: secret(&outcome.output),
        errors: secret(&outcome.errors),
        error_message: outcome.error_message.map(|m| secret(&m)),
        ..outcome
    }
}

/// What must hold before anything of the run starts (the start ping, the before hook, which
/// may stop services): restic arguments inside the allow-list, source paths, restic on PATH.
/// Returns the extra restic arguments and restic's path, or why the run fails and its exit
/// code (2 for the job's arguments or paths, 1 for a missing restic).
pub(crate) fn preflight(
    resolved: &ResolvedJob,
) -> Result<(Vec<String>, std::path::PathBuf), (String, u8)> {
    let job = &resolved.job;
    if let Some(e) = &resolved.repository_error {
        return Err((e.clone(), exit::USAGE));
    }
    // Validated again where it is used: a row written by plain SQL that breaks the allow-list
    // fails the run before restic starts (see domain/restic/args.rs).
    let extra = match crate::domain::restic::args::validated(job.restic_args.as_ref()) {
        Ok(a) => a,
        Err(msg) => {
            return Err((
                format!("job {} ({:?}): {msg}", job.id, job.name),
                exit::USAGE,
            ));
        }
    };
    if job.source_paths.is_empty() {
        return Err((
            format!(
                "job {} ({:?}) has no source paths; add some with `restic-fleet job edit {} --path PATH`",
                job.id, job.name, job.id
            ),
            exit::USAGE,
        ));
    }
    let restic = match which::which("restic") {
        Ok(p) => p,
        Err(_) => {
            return Err((
                "restic was not found on PATH; install it (Debian/Ubuntu: apt install restic, \
                 Windows: winget install restic.restic) and make sure the scheduler's PATH \
                 contains it"
                    .to_string(),
                exit::FAILED,
            ));
        }
    };
    Ok((extra, restic))
}

async fn execute_unredacted(
    resolved: &ResolvedJob,
    progress: bool,
    network_wait: crate::platform::network::NetworkWait,
    state: &crate::local::state::StateDir,
) -> Outcome {
    let (extra, restic) = match preflight(resolved) {
        Ok(p) => p,
        Err((message, code)) => return failed(message, code),
    };
    let missing: Vec<String> = resolved
        .job
        .source_paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .cloned()
        .collect();
    let argv = restic_argv(&resolved.job, &resolved.device_id, &extra);
    let run = Restic {
        restic: &restic,
        argv: &argv,
        resolved,
        progress,
        state,
    };
    match run.until_settled(network_wait).await {
        Ok(attempt) => run.outcome(attempt, missing).await,
        Err(message) => failed(message, exit::FAILED),
    }
}

/// One backup's restic command line and what its processes share.
struct Restic<'a> {
    restic: &'a std::path::Path,
    argv: &'a [String],
    resolved: &'a ResolvedJob,
    progress: bool,
    /// Where the version of the restic in use is kept (0.16+ waits for a lock itself).
    state: &'a crate::local::state::StateDir,
}

impl Restic<'_> {
    /// One restic process; `global` are restic options that go before the command.
    async fn once(&self, global: &[String]) -> Result<Attempt, String> {
        let argv: Vec<String> = global.iter().chain(self.argv).cloned().collect();
        backup_once(self.restic, &argv, self.resolved, self.progress).await
    }

    /// Runs restic until it ends for a reason waiting does not cure. The error is a sentence
    /// for a restic that could not be started.
    async fn until_settled(
        &self,
        mut network_wait: crate::platform::network::NetworkWait,
    ) -> Result<Attempt, String> {
        let settings = &self.resolved.settings;
        let mut attempt = self.once(&[]).await?;
        // A repository unreachable at start (the network lagging after wake) is retried for up
        // to network_wait_seconds.
        while attempt.cancelled_by.is_none()
            && crate::platform::network::unreachable(
                attempt.status.as_ref().ok().and_then(|s| s.code()),
                attempt.out.summary.is_some(),
                &format!(
                    "{}\n{}\n{}",
                    attempt.err.raw_tail,
                    attempt.err.fatal.join("\n"),
                    attempt.out.fatal.join("\n")
                ),
            )
            && network_wait.again().await
        {
            attempt = self.once(&[]).await?;
        }
        // A lock left by a restic that died (another machine's crashed prune, a killed check)
        // makes the backup fail; `restic unlock` removes only such stale locks, then a retry. A
        // live lock (the maintenance owner pruning) is waited for, up to
        // repository_lock_wait_seconds.
        let mut lock_wait = crate::platform::repository::LockWait::from_settings(settings)
            .unwrap_or_else(|e| {
                tracing::warn!("{e:#}; waiting the default 1800s for the repository lock");
                crate::platform::repository::LockWait::new(Duration::from_secs(1800))
            })
            .with_version(if attempt.lock_failure() {
                crate::local::restic_version::version(self.state)
            } else {
                None
            });
        while attempt.cancelled_by.is_none() && attempt.lock_failure() && lock_wait.wait(true).await
        {
            tracing::warn!("the repository is locked; removing stale locks and trying again");
            self.remove_stale_locks().await;
            attempt = self.once(&lock_wait.restic_args()).await?;
        }
        Ok(attempt)
    }

    async fn remove_stale_locks(&self) -> bool {
        let r = self.resolved;
        remove_stale_locks(self.restic, &r.repository, &r.password, &r.settings).await
    }

    /// How the last restic ended, as the run records it. `missing` are the source paths found
    /// missing before restic started.
    async fn outcome(&self, attempt: Attempt, missing: Vec<String>) -> Outcome {
        let Attempt {
            status,
            out,
            err,
            cancelled_by,
            cache_warning,
        } = attempt;
        let summary = out
            .summary
            .clone()
            .or(err.summary.clone())
            .unwrap_or_default();
        let missing_paths = with_skipped_paths(missing, &err.raw_tail);
        let mut warnings = Vec::new();
        // restic that cannot use its cache is a warning, not a silent success
        warnings.extend(
            cache_warning.or_else(|| crate::platform::restic_cache::warning(&err.raw_tail)),
        );
        warnings.extend(missing_warning(&missing_paths));
        let mut outcome = Outcome {
            exit_code: status.as_ref().ok().and_then(|s| s.code()),
            summary,
            output: out.transcript,
            errors: err.transcript,
            missing_paths,
            ..Default::default()
        };
        if let Some(sig) = cancelled_by {
            // A signal that lands while restic is still creating its lock can leave that lock
            // behind (restic's cleanup ran before the lock existed). Its process is gone now,
            // so `restic unlock` (which removes only stale locks) clears it without touching
            // others.
            self.remove_stale_locks().await;
            outcome.status = "cancelled";
            outcome.error_message = Some(format!(
                "cancelled by {sig}; restic was stopped with SIGINT and released its repository \
                 lock"
            ));
            outcome.cli_code = exit::CANCELLED;
            outcome.warnings = warnings;
            return outcome;
        }
        let mut fatal = out.fatal;
        fatal.extend(err.fatal);
        let mut file_errors = out.errors;
        file_errors.extend(err.errors);
        let repository = self.resolved.repository.as_str();
        judge(
            &mut outcome,
            &status,
            &fatal,
            &file_errors,
            &mut warnings,
            (repository, &self.resolved.settings),
        );
        if outcome.status == "success" && !warnings.is_empty() {
            outcome.error_message = Some(format!("warning: {}", warnings.join("; warning: ")));
        }
        // restic says only that all paths are missing; the record names them and the fix.
        if outcome.status == "failed"
            && let Some(missing) = missing_warning(&outcome.missing_paths)
        {
            outcome.error_message = Some(format!(
                "{}; {missing}; give the job paths that exist on this machine with \
                 `restic-fleet job edit {} --path P`",
                outcome.error_message.as_deref().unwrap_or("restic failed"),
                self.resolved.job.id
            ));
        }
        // No second repository open to learn the full snapshot id: restic 0.15+ reports it,
        // and an older restic's short id is resolved by the next sync
        // ([`crate::ops::snapshot_ids`]).
        outcome.warnings = warnings;
        tracing::debug!("restic repository {}", mask_url(repository));
        outcome
    }
}

/// The source paths missing before restic started, plus those restic reports it skipped.
fn with_skipped_paths(mut missing: Vec<String>, stderr_tail: &str) -> Vec<String> {
    for p in restic::skipped_paths(stderr_tail) {
        // restic prints the absolute path; a pre-checked entry may be relative.
        if !missing.iter().any(|m| p == *m || p.ends_with(m.as_str())) {
            missing.push(p);
        }
    }
    missing
}

/// The warning that names the source paths not backed up, if any.
fn missing_warning(missing_paths: &[String]) -> Option<String> {
    if missing_paths.is_empty() {
        return None;
    }
    let one = missing_paths.len() == 1;
    Some(format!(
        "source path{} {} do{} not exist and {} NOT backed up",
        if one { "" } else { "s" },
        missing_paths
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        if one { "es" } else { "" },
        if one { "was" } else { "were" },
    ))
}

/// The status, exit code and error message of a restic that ended on its own, from its exit
/// code: 3 (some files unreadable) is a success with warnings.
fn judge(
    outcome: &mut Outcome,
    status: &std::io::Result<std::process::ExitStatus>,
    fatal: &[String],
    file_errors: &[String],
    warnings: &mut Vec<String>,
    (repository, settings): (&str, &crate::domain::settings::Settings),
) {
    match outcome.exit_code {
        Some(restic::code::OK) => {
            outcome.status = "success";
            outcome.cli_code = if warnings.is_empty() {
                exit::SUCCESS
            } else {
                exit::WARNINGS
            };
        }
        Some(restic::code::INCOMPLETE) => {
            outcome.status = "success";
            outcome.cli_code = exit::WARNINGS;
            // restic 0.19 ends with 3 also when a source path is missing, and nothing was
            // unreadable: the warning for the missing paths says it all.
            if file_errors.is_empty() && !outcome.missing_paths.is_empty() {
                return;
            }
            let shown: Vec<&str> = file_errors.iter().take(5).map(String::as_str).collect();
            warnings.push(format!(
                "restic finished with warnings (exit 3): snapshot {} is incomplete because {} \
                 item(s) could not be read{}{}",
                outcome
                    .summary
                    .snapshot_id
                    .as_deref()
                    .map_or("?", restic::short_id),
                file_errors.len().max(1),
                if shown.is_empty() { "" } else { ": " },
                shown.join("; ")
            ));
        }
        Some(code) => {
            outcome.status = "failed";
            outcome.cli_code = exit::FAILED;
            outcome.error_message = Some(restic::failure_reason(
                code,
                fatal,
                &outcome.errors,
                repository,
                settings,
            ));
        }
        None => {
            outcome.status = "failed";
            outcome.cli_code = exit::FAILED;
            outcome.error_message = Some(match status {
                Ok(st) => format!("restic was killed by a signal ({st})"),
                Err(e) => format!("waiting for restic failed: {e}"),
            });
        }
    }
}

/// One restic process: how it ended and what it said.
struct Attempt {
    status: std::io::Result<std::process::ExitStatus>,
    out: StreamResult,
    err: StreamResult,
    cancelled_by: Option<&'static str>,
    /// The cache directory restic was not given (`--no-cache`), and why.
    cache_warning: Option<String>,
}

impl Attempt {
    /// restic could not lock the repository (0.17+: exit 11; older: its message).
    fn lock_failure(&self) -> bool {
        let code = self.status.as_ref().ok().and_then(|s| s.code());
        if code == Some(restic::code::LOCK_FAILED) {
            return true;
        }
        code == Some(restic::code::FATAL)
            && [&self.out, &self.err].iter().any(|s| {
                s.fatal
                    .iter()
                    .chain(std::iter::once(&s.raw_tail))
                    .any(|t| t.contains("unable to create lock") || t.contains("already locked"))
            })
    }
}

/// Runs `restic <argv>` once, streaming its output into a progress display and transcripts, and
/// stops it cleanly on SIGINT/SIGTERM. The error is a sentence for a run that never started.
async fn backup_once(
    restic: &std::path::Path,
    argv: &[String],
    resolved: &ResolvedJob,
    progress: bool,
) -> Result<Attempt, String> {
    let job_name = resolved.job.name.as_str();
    let (mut cmd, cache_warning) = crate::platform::restic_env::restic_command_warning(
        restic,
        &resolved.repository,
        &resolved.password,
        &resolved.settings,
    );
    cmd.args(argv)
        .env("RESTIC_PROGRESS_FPS", if progress { "4" } else { "0.0167" })
        .stdout(Stdio::piped());
    #[cfg(unix)]
    cmd.process_group(0); // signals reach restic only through us, once
    let reporter = Arc::new(Mutex::new(Progress::new(progress, job_name)));
    // On Unix restic writes into unnamed temporary files that this process follows, not into
    // pipes: when this process dies, a write to a pipe without reader would kill restic with
    // SIGPIPE (Go exits on a broken stdout/stderr) before its parent-death SIGINT handler has
    // removed its repository lock. The files vanish with the last process holding them.
    #[cfg(unix)]
    let (done_tx, out_task, err_task, mut child) = {
        let capture =
            || tempfile::tempfile().map_err(|e| format!("cannot capture restic's output: {e}"));
        let (out_file, err_file) = (capture()?, capture()?);
        let writer = |f: &std::fs::File| {
            f.try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("cannot capture restic's output: {e}"))
        };
        cmd.stdout(writer(&out_file)?).stderr(writer(&err_file)?);
        let child = cmd
            .spawn()
            .map_err(|e| format!("could not start restic at {}: {e}", restic.display()))?;
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let out_task = tokio::spawn(tail_file(out_file, done_rx.clone(), reporter.clone()));
        let err_task = tokio::spawn(tail_file(err_file, done_rx, reporter.clone()));
        (done_tx, out_task, err_task, child)
    };
    #[cfg(not(unix))]
    let (out_task, err_task, mut child) = {
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start restic at {}: {e}", restic.display()))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("restic's output could not be captured".into());
        };
        let out_task = tokio::spawn(read_stream(stdout, reporter.clone()));
        let err_task = tokio::spawn(read_stream(stderr, reporter.clone()));
        (out_task, err_task, child)
    };
    // Dropped after restic has been waited for: until then restic dies with this process.
    let _tether = crate::platform::child::Tether::new(&child);

    let (status, cancelled_by) = wait_or_stop(&mut child).await;
    #[cfg(unix)]
    let _ = done_tx.send(true);
    let out = out_task.await.unwrap_or_default();
    let err = err_task.await.unwrap_or_default();
    if let Ok(mut p) = reporter.lock() {
        p.finish();
    }
    Ok(Attempt {
        status,
        out,
        err,
        cancelled_by,
        cache_warning,
    })
}

/// Waits for restic to end; on SIGINT/SIGTERM stops it with SIGINT (so it releases its
/// repository lock), killing it if it has not stopped within 60s. Returns how it ended and the
/// signal that stopped it, if one did.
async fn wait_or_stop(
    child: &mut tokio::process::Child,
) -> (
    std::io::Result<std::process::ExitStatus>,
    Option<&'static str>,
) {
    let mut cancelled_by: Option<&'static str> = None;
    let status = loop {
        tokio::select! {
            st = child.wait() => break st,
            sig = crate::platform::child::stop_signal() => {
                if cancelled_by.is_none() {
                    tracing::warn!("received {sig}: stopping restic so it releases its repository lock");
                    cancelled_by = Some(sig);
                    interrupt(child);
                    let grace = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
                    match grace {
                        Ok(st) => break st,
                        Err(_) => {
                            tracing::error!("restic did not stop within 60s; killing it");
                            let _ = child.start_kill();
                            break child.wait().await;
                        }
                    }
                }
            }
        }
    };
    (status, cancelled_by)
}

/// Runs `restic unlock`: removes locks whose process no longer exists (on this host) or that are
/// older than 30 minutes; live locks of other machines are left alone. Returns whether restic
/// unlock succeeded (the markers of dead restics are cleared only then).
pub(crate) async fn remove_stale_locks(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
) -> bool {
    let mut cmd =
        crate::platform::restic_env::restic_command(restic, repository, password, settings);
    cmd.arg("unlock").stdout(Stdio::null());
    match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => true,
        Ok(Ok(out)) => {
            tracing::warn!(
                "restic unlock failed: {}",
                crate::platform::restic_env::redact_secrets(
                    String::from_utf8_lossy(&out.stderr).trim(),
                    password,
                    settings
                )
            );
            false
        }
        Ok(Err(e)) => {
            tracing::warn!("could not start restic unlock: {e}");
            false
        }
        Err(_) => {
            tracing::warn!("restic unlock did not finish within 120s");
            false
        }
    }
}

#[cfg(unix)]
fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
}

#[cfg(not(unix))]
fn interrupt(child: &tokio::process::Child) {
    // Windows has no SIGINT for a child without a console of its own; restic's locks are
    // removed by its own stale-lock detection (and `restic unlock`).
    let _ = child.id();
}

/// Classifies restic's output lines as they come: progress, summary, errors, transcript.
struct StreamParser {
    progress: Arc<Mutex<Progress>>,
    transcript: Transcript,
    tail: Transcript,
    result: StreamResult,
}

impl StreamParser {
    fn new(progress: Arc<Mutex<Progress>>) -> Self {
        Self {
            progress,
            transcript: Transcript::new(restic::OUTPUT_CAP_BYTES),
            tail: Transcript::new(64 * 1024),
            result: StreamResult::default(),
        }
    }

    fn line(&mut self, line: &str) {
        match restic::parse_line(line) {
            Line::Status(st) => {
                if let Ok(mut p) = self.progress.lock() {
                    p.update(&st);
                }
                return; // per-second status lines are not stored
            }
            Line::Summary(s) => self.result.summary = Some(s),
            Line::Error(e) => {
                tracing::warn!("restic: {e}");
                self.result.errors.push(e)
            }
            Line::ExitError(m) => self.result.fatal.push(m),
            Line::OtherJson => {}
            Line::Text => {
                if line.trim_start().starts_with("Fatal:") {
                    self.result.fatal.push(line.trim().to_string());
                }
                self.tail.push_line(line);
            }
        }
        self.transcript.push_line(line);
    }

    fn finish(mut self) -> StreamResult {
        self.result.transcript = self.transcript.finish();
        self.result.raw_tail = self.tail.finish();
        self.result
    }
}

/// Reads a pipe to its end.
#[cfg_attr(unix, allow(dead_code))]
async fn read_stream<R: AsyncRead + Unpin>(
    reader: R,
    progress: Arc<Mutex<Progress>>,
) -> StreamResult {
    let mut lines = BufReader::new(reader).lines();
    let mut parser = StreamParser::new(progress);
    while let Ok(Some(line)) = lines.next_line().await {
        parser.line(&line);
    }
    parser.finish()
}

/// Follows a file restic writes to (at our own offset, with pread) until `done` says restic
/// has ended and everything it wrote has been read.
#[cfg(unix)]
async fn tail_file(
    file: std::fs::File,
    mut done: tokio::sync::watch::Receiver<bool>,
    progress: Arc<Mutex<Progress>>,
) -> StreamResult {
    use std::os::unix::fs::FileExt;
    let mut parser = StreamParser::new(progress);
    let mut offset = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let finished = *done.borrow_and_update();
        while let Ok(n) = file.read_at(&mut buf, offset) {
            if n == 0 {
                break;
            }
            offset += n as u64;
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                parser.line(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
            }
        }
        if finished {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = done.changed() => {}
        }
    }
    if !pending.is_empty() {
        parser.line(String::from_utf8_lossy(&pending).trim_end_matches('\r'));
    }
    parser.finish()
}
