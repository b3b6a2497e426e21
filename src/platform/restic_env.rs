//! restic's environment: a clean one, built from nothing. restic gets what it and the programs
//! it starts (ssh, rclone) need from this process's environment ([`INHERITED`]), the
//! repository, its password and restic's cache directory ([`crate::platform::restic_cache`]),
//! and the backend credentials ([`crate::domain::restic::backend_env`]); never anything of
//! restic-fleet's own (`DATABASE_URL` and its password, `PG*`, `RESTIC_FLEET_*`). Those
//! credentials are masked wherever restic's output is shown or stored.
//!
//! Every restic command (`run`, unlock, the stale-run reconciliation, snapshot ids, `snapshots`,
//! `restore`, `maintain`, `restic version`) starts through [`restic_command`] or
//! [`clean_environment`], so none of them can drift from the others.

use std::process::Stdio;

use crate::domain::settings::Settings;

/// What restic and the programs it starts need of this process's environment, by name
/// (compared upper-cased, as Windows does): the search path, the user and home (ssh's
/// configuration and known hosts, rclone's configuration), language and time zone, the
/// temporary and cache directories, the ssh agent of a person running a command by hand, and
/// this machine's own proxy and certificate settings. These come from the machine, not from the
/// database, which may set only [`crate::domain::restic::backend_env::ALLOWED`].
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "SSH_AUTH_SOCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Windows: Go's networking and os.UserCacheDir, ssh.exe and rclone.exe need these.
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "USERPROFILE",
    "HOMEDRIVE",
    "HOMEPATH",
    "USERNAME",
    "USERDOMAIN",
    "TEMP",
    "TMP",
];

/// Whether restic inherits the variable `name` of this process's environment: a name of
/// [`INHERITED`], a locale category (`LC_*`), or a backend variable the machine itself set.
fn inherited(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    INHERITED.contains(&upper.as_str())
        || upper.starts_with("LC_")
        || crate::domain::restic::backend_env::is_allowed(name)
}

/// Empties `cmd`'s environment and puts back what [`inherited`] keeps of this process's.
pub(crate) fn clean_environment(cmd: &mut std::process::Command) {
    cmd.env_clear();
    for (name, value) in std::env::vars_os() {
        if name.to_str().is_some_and(inherited) {
            cmd.env(name, value);
        }
    }
}

/// A restic command whose environment is clean and carries the repository, the password, the
/// cache directory and the backend environment (never its argv); stdin is closed, stderr piped,
/// and restic dies with this process (no orphan keeps a lock). A cache directory restic cannot
/// use is left out (`--no-cache`); that warning belongs to a backup or a command a person runs
/// ([`restic_command_warning`]), so a helper command (unlock, snapshot lookups) only logs it.
pub(crate) fn restic_command(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
) -> tokio::process::Command {
    let (cmd, cache_warning) = restic_command_warning(restic, repository, password, settings);
    if let Some(w) = cache_warning {
        tracing::debug!("{w}");
    }
    cmd
}

/// [`restic_command`] and the warning for a cache directory restic cannot use.
pub(crate) fn restic_command_warning(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
) -> (tokio::process::Command, Option<String>) {
    let mut cmd = tokio::process::Command::new(restic);
    clean_environment(cmd.as_std_mut());
    cmd.env("RESTIC_REPOSITORY", repository)
        .env("RESTIC_PASSWORD", password)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::platform::child::die_with_parent(&mut cmd);
    let cache_warning = configure_restic(&mut cmd, settings);
    (cmd, cache_warning)
}

/// Sets restic's cache directory and the backend environment on a restic command, before its
/// arguments. A cache directory restic cannot use gives `--no-cache` and the warning returned.
/// The backend environment was validated by [`backend_env::from_settings`] before the run
/// started; a value that no longer parses adds nothing here.
fn configure_restic(cmd: &mut tokio::process::Command, settings: &Settings) -> Option<String> {
    use crate::platform::restic_cache;
    let dir = restic_cache::resolve(settings);
    let warning = restic_cache::unusable(dir.as_deref()).map(|why| {
        cmd.arg("--no-cache").env_remove("RESTIC_CACHE_DIR");
        restic_cache::warning_for(&why)
    });
    if warning.is_none() {
        match dir {
            Some(dir) => cmd.env("RESTIC_CACHE_DIR", dir),
            None => cmd.env_remove("RESTIC_CACHE_DIR"),
        };
    }
    if let Ok(vars) = crate::domain::restic::backend_env::from_settings(settings) {
        for (k, v) in vars {
            cmd.env(k, v);
        }
    }
    warning
}

/// `text` with the repository password and every backend environment value replaced by `***`.
pub(crate) fn redact_secrets(text: &str, password: &str, settings: &Settings) -> String {
    let mut out = crate::domain::text::redact(text, password);
    for (_, v) in crate::domain::restic::backend_env::from_settings(settings).unwrap_or_default() {
        // Very short values (a region like "eu") would mask ordinary words; they are not
        // credentials.
        if v.len() >= 4 {
            out = crate::domain::text::redact(&out, &v);
        }
    }
    out
}

/// The first line of `restic version` (`restic 0.18.0 compiled with go1.24.4 on linux/amd64`),
/// or why there is none.
pub fn version_line(program: &std::path::Path) -> Result<String, &'static str> {
    let mut cmd = std::process::Command::new(program);
    clean_environment(&mut cmd);
    match cmd.arg("version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()),
        Ok(_) => Err("unknown (restic version failed)"),
        Err(_) => Err("not installed"),
    }
}
