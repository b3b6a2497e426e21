//! Child processes that die with their parent.
//!
//! A restic started by `run` must not outlive it: an orphan would go on writing a snapshot
//! nobody records and hold a repository lock while a new run of the job starts. On Linux the
//! child asks the kernel for a parent-death signal (`PR_SET_PDEATHSIG`) before it executes
//! restic; SIGINT is the signal restic (0.14 and later) answers by removing its lock and
//! exiting. On Windows the child is put into a Job Object with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, whose only handle this process holds: when this
//! process ends in any way, the system closes the handle and kills the job's processes.

/// Asks for the parent-death signal in the child (Linux; a no-op elsewhere on Unix).
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, getppid, kill); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGINT)
                    .map_err(std::io::Error::from)?;
                // The parent may have died between fork and prctl: then no signal would come.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::other("the parent process has exited"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Keeps a started child tied to this process: on Windows, a Job Object that kills the child
/// when this process ends; nothing to hold elsewhere (see [`die_with_parent`]).
pub struct Tether {
    #[cfg(windows)]
    job: Option<windows_sys::Win32::Foundation::HANDLE>,
}

impl Tether {
    pub fn new(child: &tokio::process::Child) -> Self {
        #[cfg(windows)]
        {
            Self {
                job: windows_job::assign(child),
            }
        }
        #[cfg(not(windows))]
        {
            let _ = child;
            Self {}
        }
    }
}

#[cfg(windows)]
impl Drop for Tether {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            // The child has ended by now (the tether is dropped after waiting for it);
            // closing the last handle kills whatever it may have left in the job.
            unsafe {
                windows_sys::Win32::Foundation::CloseHandle(job);
            }
        }
    }
}

#[cfg(windows)]
mod windows_job {
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject,
    };

    /// A new kill-on-close Job Object holding `child`; `None` (with a warning) when Windows
    /// refuses, in which case the backup still runs.
    pub(super) fn assign(child: &tokio::process::Child) -> Option<HANDLE> {
        let process = child.raw_handle()? as HANDLE;
        // SAFETY: plain Win32 calls on handles we own; the info struct is zero-initialised
        // as the API expects and only its limit flags are set.
        unsafe {
            let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if job.is_null() {
                tracing::warn!("could not create a job object: restic may outlive this process");
                return None;
            }
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            let ok = SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                &info as *const _ as *const core::ffi::c_void,
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            );
            if ok == 0 || AssignProcessToJobObject(job, process) == 0 {
                tracing::warn!(
                    "could not put restic into a job object: it may outlive this process"
                );
                CloseHandle(job);
                return None;
            }
            Some(job)
        }
    }
}

/// Resolves when this process is asked to stop: SIGINT or SIGTERM (Ctrl-C on Windows), with
/// the signal's name. Whatever runs a child (restic, a hook) or waits (for the network, for a
/// repository lock) selects on it, so that a stop ends the wait and the child cleanly.
pub(crate) async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Everything one hook starts, ended together once the hook has exited or timed out.
///
/// The hook leads a process group of its own (Unix) or runs in a kill-on-close Job Object
/// (Windows), so ending the group reaches the shell's background children. A child that
/// leaves the group (`setsid`, a daemon's double fork) is still found on Linux: while the hook
/// runs this process is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphans of the hook
/// become its children instead of init's, and every descendant that was not there before the
/// hook is killed and reaped. Elsewhere on Unix such an escaped child is not reached.
pub struct HookProcesses {
    pid: Option<u32>,
    #[cfg(target_os = "linux")]
    before: Vec<i32>,
    #[cfg(windows)]
    _tether: Tether,
}

impl HookProcesses {
    /// Starts `cmd` as the leader of a new process group and notes what already ran beside it.
    pub fn spawn(
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<(tokio::process::Child, HookProcesses)> {
        #[cfg(unix)]
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        let before = {
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                tracing::debug!("could not become a child subreaper: {e}");
            }
            descendants(&[])
        };
        let child = cmd.spawn();
        #[cfg(target_os = "linux")]
        if child.is_err() {
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
        let child = child?;
        let procs = HookProcesses {
            pid: child.id(),
            #[cfg(target_os = "linux")]
            before,
            #[cfg(windows)]
            _tether: Tether::new(&child),
        };
        Ok((child, procs))
    }

    /// Kills the hook's process group and, on Linux, every process it left behind; on Windows
    /// dropping the Job Object's last handle kills what the hook left in it.
    pub fn end(self) {
        #[cfg(unix)]
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        #[cfg(target_os = "linux")]
        {
            kill_new_descendants(&self.before);
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
        #[cfg(not(unix))]
        let _ = self.pid;
    }
}

/// Kills and reaps every descendant of this process not in `before`, in rounds: a killed
/// process's own children are handed to this process (the subreaper) and met in the next one.
#[cfg(target_os = "linux")]
fn kill_new_descendants(before: &[i32]) {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;
    for _ in 0..50 {
        let left = descendants(before);
        if left.is_empty() {
            return;
        }
        for pid in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        for pid in &left {
            // Only this process's own children can be reaped; for the others this is ECHILD.
            let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
        }
    }
    tracing::warn!("some processes a hook started could not be ended");
}

/// The process ids of this process's descendants, from `/proc/<pid>/stat`, except `skip` and
/// everything below them (what ran before the hook, such as a sleep inhibitor, and what it
/// starts, is not the hook's).
#[cfg(target_os = "linux")]
fn descendants(skip: &[i32]) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold anything, so split after its last ')'.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![std::process::id() as i32];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(p, pp)| *pp == parent && !skip.contains(p))
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}
