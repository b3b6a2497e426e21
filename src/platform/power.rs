//! A sleep inhibitor held while restic works (setting `prevent_sleep`, default true), so a
//! laptop does not suspend in the middle of a backup: on Linux a `systemd-inhibit
//! --what=sleep` process (logind's block inhibitor) living as long as the backup, on Windows
//! `SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)`. Without logind, or without
//! `systemd-inhibit`, the backup runs all the same; without a D-Bus system bus (the way to
//! logind) no `systemd-inhibit` is started at all.

use crate::domain::settings::Settings;

/// The setting's key.
pub const KEY: &str = "prevent_sleep";

/// Holds the inhibitor until released or dropped.
#[derive(Debug)]
pub struct SleepInhibitor {
    #[cfg(unix)]
    child: Option<tokio::process::Child>,
}

/// Whether the setting asks for an inhibitor (a malformed value is a configuration error,
/// checked before the run starts).
pub fn wanted(settings: &Settings) -> anyhow::Result<bool> {
    settings.get_bool(KEY, true)
}

/// Takes a sleep inhibitor when `wanted`. `why` is shown by `systemd-inhibit --list`.
pub async fn hold(wanted: bool, why: &str) -> SleepInhibitor {
    if !wanted {
        return SleepInhibitor::none();
    }
    platform_hold(why).await
}

impl SleepInhibitor {
    fn none() -> Self {
        SleepInhibitor {
            #[cfg(unix)]
            child: None,
        }
    }

    /// Lets the machine sleep again. An inhibitor that could not be taken (no logind: the
    /// process had ended by now) is reported here, at debug level.
    pub async fn release(self) {
        #[cfg(unix)]
        {
            let mut this = self;
            let Some(mut child) = this.child.take() else {
                return;
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err).await;
                    }
                    tracing::debug!(
                        "no sleep inhibitor: systemd-inhibit ended ({status}): {}",
                        err.trim()
                    );
                }
                _ => end_group(&child),
            }
        }
    }
}

/// Where sd-bus looks for the system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
#[cfg(unix)]
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// Whether logind can be reached at all: `systemd-inhibit` asks it over the system bus, so
/// without one (a container, a minimal server) starting it would only cost a process that
/// fails.
#[cfg(unix)]
fn system_bus_may_exist() -> bool {
    std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some_and(|a| !a.is_empty())
        || std::path::Path::new(SYSTEM_BUS_SOCKET).exists()
}

#[cfg(unix)]
async fn platform_hold(why: &str) -> SleepInhibitor {
    use std::process::Stdio;
    if !system_bus_may_exist() {
        tracing::debug!(
            "no D-Bus system bus (DBUS_SYSTEM_BUS_ADDRESS unset, no {SYSTEM_BUS_SOCKET}), so no \
             logind: no sleep inhibitor"
        );
        return SleepInhibitor::none();
    }
    let Ok(program) = which::which("systemd-inhibit") else {
        tracing::debug!("systemd-inhibit is not installed: no sleep inhibitor");
        return SleepInhibitor::none();
    };
    let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args([
        "--what=sleep",
        "--who=restic-fleet",
        &format!("--why={why}"),
        "--mode=block",
        "sleep",
        "infinity",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    // Its own group, so that ending the inhibitor ends `sleep` too.
    .process_group(0);
    // A killed run must not leave the inhibitor behind, blocking sleep for good.
    crate::platform::child::die_with_parent(&mut cmd);
    // Not waited for: logind takes the inhibitor while restic starts (restic takes far longer
    // to open the repository), and a working inhibitor never ends, so waiting to see whether
    // it failed would hold every backup up for the whole wait.
    match cmd.spawn() {
        Ok(child) => SleepInhibitor { child: Some(child) },
        Err(e) => {
            tracing::debug!("could not start systemd-inhibit: {e}");
            SleepInhibitor::none()
        }
    }
}

/// Ends the inhibitor's process group (`systemd-inhibit` and its `sleep`).
#[cfg(unix)]
fn end_group(child: &tokio::process::Child) {
    if let Some(g) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(g),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

#[cfg(unix)]
impl Drop for SleepInhibitor {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            end_group(&child);
        }
    }
}

#[cfg(windows)]
mod win {
    pub const ES_CONTINUOUS: u32 = 0x8000_0000;
    pub const ES_SYSTEM_REQUIRED: u32 = 0x0000_0001;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        pub fn SetThreadExecutionState(flags: u32) -> u32;
    }
}

#[cfg(windows)]
async fn platform_hold(_why: &str) -> SleepInhibitor {
    // SAFETY: a plain Win32 call with flags only; it changes this thread's power request.
    let previous =
        unsafe { win::SetThreadExecutionState(win::ES_CONTINUOUS | win::ES_SYSTEM_REQUIRED) };
    if previous == 0 {
        tracing::debug!("SetThreadExecutionState failed: no sleep inhibitor");
    }
    SleepInhibitor {}
}

#[cfg(windows)]
impl Drop for SleepInhibitor {
    fn drop(&mut self) {
        // SAFETY: as above; ES_CONTINUOUS alone clears the request.
        unsafe {
            win::SetThreadExecutionState(win::ES_CONTINUOUS);
        }
    }
}

#[cfg(not(any(unix, windows)))]
async fn platform_hold(_why: &str) -> SleepInhibitor {
    SleepInhibitor {}
}
