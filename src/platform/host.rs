//! Who this client is: the host name the OS reports, the platform, and the client version
//! recorded in device and run metadata.

/// This machine's host name as the OS reports it (empty when it cannot be read).
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `linux` or `windows` (the values of `devices.platform`), or the OS name elsewhere.
pub fn platform() -> &'static str {
    std::env::consts::OS
}

/// The client version, recorded in device and run metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
