//! restic's environment as a run started by a systemd timer or a Windows task needs it to
//! behave like a run started by hand: restic's cache directory
//! ([`crate::platform::restic_cache`]) and the backend credentials
//! ([`crate::domain::restic::backend_env`]) on every restic command, and those credentials
//! masked wherever restic's output is shown or stored.
//!
//! Every restic command (`run`, the stale-run reconciliation, snapshot ids, unlock) goes
//! through [`configure_restic`], so none of them can drift from the others.

use crate::domain::settings::Settings;

/// Sets restic's cache directory and the backend environment on a restic command. The backend
/// environment was validated by [`backend_env::from_settings`] before the run started; a value
/// that no longer parses adds nothing here.
pub(crate) fn configure_restic(cmd: &mut tokio::process::Command, settings: &Settings) {
    match crate::platform::restic_cache::resolve(settings) {
        Some(dir) => {
            cmd.env("RESTIC_CACHE_DIR", dir);
        }
        None => {
            cmd.env_remove("RESTIC_CACHE_DIR");
        }
    }
    if let Ok(vars) = crate::domain::restic::backend_env::from_settings(settings) {
        for (k, v) in vars {
            cmd.env(k, v);
        }
    }
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
