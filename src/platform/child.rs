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

/// Lets the child inherit the lock files `fds` (Unix): flock locks belong to the open file,
/// so a job or slot lock is then released only when this process AND restic have ended. A
/// restic still shutting down after its parent was killed keeps the job locked, so no new run
/// of the job starts beside it and the stale-run check waits for it.
pub fn share_locks(cmd: &mut tokio::process::Command, fds: Vec<i32>) {
    #[cfg(unix)]
    {
        if fds.is_empty() {
            return;
        }
        // SAFETY: fcntl is async-signal-safe; the closure allocates nothing (the Vec was
        // allocated before the fork and is only read).
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    nix::fcntl::fcntl(
                        *fd,
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                    )
                    .map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (cmd, fds);
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
