//! Catch-up runs and re-registering syncs started through the OS scheduler.
//!
//! A run started by sync as its own child process would have sync's environment, not the
//! job's: no cache directory, no `ConditionACPower=`, no journal identity, and it would die
//! with sync's unit unless that unit used `KillMode=process` (which also kept `systemctl stop`
//! of a job from stopping its restic). So sync asks the scheduler instead:
//!
//! * systemd: `systemctl [--user] start --no-block restic-fleet-catchup@<job>.service`, a
//!   template unit installed with the sync units that runs `run <job> --triggered-by missed`
//!   with the same directories and conditions as the job's own unit (`--wait` drops
//!   `--no-block`, so systemctl returns when the run has finished);
//! * Windows: `schtasks /Create` of a trigger-less task `\restic-fleet\restic-fleet-catchup-<job>`
//!   and `schtasks /Run` of it.
//!
//! Where the scheduler is not running (a container without systemd, no `schtasks`), the run
//! is started directly as before, so a catch-up is never lost.

use std::path::Path;
use std::process::{Command, Stdio};

use uuid::Uuid;

use crate::platform::scheduler::names;
use crate::platform::scheduler::plan::Plan;
use crate::platform::scheduler::privilege::is_root;

/// How a catch-up run was started.
pub enum CatchUp {
    /// Handed to the scheduler; nothing to wait for here.
    Scheduled,
    /// Run through the scheduler to its end (`--wait`), with the scheduler's exit code.
    Finished(Option<i32>),
    /// Started directly as a child of sync (no scheduler here).
    Child(tokio::process::Child),
}

/// Starts `restic-fleet run <job> --triggered-by missed` as a child in its own process group.
pub fn spawn_direct(plan: &Plan, job: Uuid) -> std::io::Result<CatchUp> {
    let mut cmd = tokio::process::Command::new(&plan.binary);
    cmd.arg("--config")
        .arg(&plan.config_path)
        .args(["run", &job.to_string(), "--triggered-by", "missed"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    #[cfg(unix)]
    cmd.process_group(0);
    cmd.spawn().map(CatchUp::Child)
}

/// The outcome of asking systemctl.
pub enum Systemctl {
    Done(Option<i32>),
    /// systemctl is missing or systemd is not running.
    Unavailable(String),
    Failed(String),
}

/// A program's standard error as one line: its non-empty lines joined by "; " (systemctl
/// writes several, which a one-line report would otherwise show as `\n`).
pub fn stderr_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `systemctl [--user] start [--no-block] UNIT`.
pub fn systemctl_start(user: bool, unit: &str, wait: bool) -> Systemctl {
    let Ok(program) = which::which("systemctl") else {
        return Systemctl::Unavailable("systemctl was not found".into());
    };
    let mut cmd = Command::new(program);
    if user {
        cmd.arg("--user");
    }
    cmd.arg("start");
    if !wait {
        cmd.arg("--no-block");
    }
    cmd.arg(unit).stdin(Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => Systemctl::Done(out.status.code()),
        Ok(out) => {
            let err = stderr_line(&out.stderr);
            if err.contains("not been booted with systemd")
                || err.contains("Failed to connect to bus")
            {
                Systemctl::Unavailable(err)
            } else if wait {
                // The unit ran and failed: its exit is the run's.
                Systemctl::Done(out.status.code())
            } else {
                Systemctl::Failed(format!("systemctl start {unit} failed: {err}"))
            }
        }
        Err(e) => Systemctl::Failed(format!("could not run systemctl: {e}")),
    }
}

/// `run` on a single-entry schedule starts a sync afterwards to register the next instant.
/// Under systemd (`$INVOCATION_ID` is set for every unit) that sync is the sync unit, which
/// outlives the job unit whose cgroup ends with the run; under Task Scheduler it is the sync
/// task; run by hand it is a child process in its own group.
pub fn reregister(config_path: &Path) {
    if std::env::var_os("INVOCATION_ID").is_some() {
        let user = !is_root();
        match systemctl_start(user, &format!("{}.service", names::SYNC), false) {
            Systemctl::Done(_) => {
                tracing::info!("started the sync unit to register this job's next run");
                return;
            }
            Systemctl::Unavailable(e) | Systemctl::Failed(e) => {
                tracing::warn!("could not start the sync unit ({e}); starting sync directly")
            }
        }
    }
    if cfg!(windows) {
        let task = format!("{}{}", names::TASK_FOLDER, names::SYNC);
        if let Ok(program) = which::which("schtasks") {
            match Command::new(program).args(["/Run", "/TN", &task]).output() {
                Ok(out) if out.status.success() => {
                    tracing::info!("started the sync task to register this job's next run");
                    return;
                }
                Ok(out) => tracing::warn!(
                    "schtasks /Run {task} failed ({}); starting sync directly",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => tracing::warn!("could not run schtasks ({e}); starting sync directly"),
            }
        }
    }
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(me);
    cmd.arg("--config")
        .arg(config_path)
        .args(["sync", "--no-catch-up"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    match cmd.spawn() {
        Ok(_) => tracing::info!("started a sync to register this job's next run"),
        Err(e) => tracing::warn!("could not start a sync to register the next run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::stderr_line;

    #[test]
    fn systemctl_stderr_becomes_one_line() {
        let err =
            b"System has not been booted with systemd as init system (PID 1). Can't operate.\n\
                    Failed to connect to bus: Host is down\n";
        assert_eq!(
            stderr_line(err),
            "System has not been booted with systemd as init system (PID 1). Can't operate.; \
             Failed to connect to bus: Host is down"
        );
        assert_eq!(stderr_line(b"\n  \n"), "");
    }
}
