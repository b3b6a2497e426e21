//! restic's environment as a run started by a systemd timer or a Windows task needs it to
//! behave like a run started by hand: restic's cache directory
//! ([`crate::platform::restic_cache`]) and the backend credentials
//! ([`crate::domain::restic::backend_env`]) on every restic command, and those credentials
//! masked wherever restic's output is shown or stored.
//!
//! Every restic command (`run`, the stale-run reconciliation, snapshot ids, unlock) goes
//! through [`configure_restic`], so none of them can drift from the others.

use crate::domain::settings::Settings;

/// Sets restic's cache directory and the backend environment on a restic command, before its
/// arguments. A cache directory restic cannot use gives `--no-cache` and the warning returned.
/// The backend environment was validated by [`backend_env::from_settings`] before the run
/// started; a value that no longer parses adds nothing here.
pub(crate) fn configure_restic(
    cmd: &mut tokio::process::Command,
    settings: &Settings,
) -> Option<String> {
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
    match std::process::Command::new(program).arg("version").output() {
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
