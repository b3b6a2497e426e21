//! Whether sync runs with the machine's privileges: it then manages the system's scheduler
//! (system units, tasks run as SYSTEM) rather than the current user's.

/// This process runs as root (never on Windows, where elevation is asked of `whoami`).
#[cfg(unix)]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// This process runs as root (never on Windows, where elevation is asked of `whoami`).
#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}
