//! The version of the restic on PATH, kept in the state directory: `sync` records it in the
//! device's metadata, and `run` uses what newer restic offers (`--retry-lock` from 0.16).

use crate::domain::restic::Version;
use crate::local::state::StateDir;

/// The version of the restic on PATH, if it is known.
pub fn version(state: &StateDir) -> Option<Version> {
    Version::parse(&line(state))
}

/// `restic version` as one line, or why it is unknown.
///
/// Starting restic is 40% of a no-op sync (9 of 22 ms), so the answer is kept in the state
/// directory with the binary's path, size and modification time, and restic runs again only
/// when one of them changed (an upgrade) or the file is missing.
pub fn line(state: &StateDir) -> String {
    const CACHE: &str = "restic-version";
    let Ok(program) = which::which("restic") else {
        return "not installed".to_string();
    };
    let stamp = std::fs::metadata(&program).ok().map(|m| {
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{}\n{}\n{modified}\n", program.display(), m.len())
    });
    if let Some(stamp) = &stamp
        && let Ok(cached) = std::fs::read_to_string(state.root().join(CACHE))
        && let Some(version) = cached.strip_prefix(stamp.as_str())
        && !version.trim().is_empty()
    {
        return version.trim().to_string();
    }
    match crate::platform::restic_env::version_line(&program) {
        Ok(version) => {
            if let Some(stamp) = stamp
                && let Err(e) = state.ensure().and_then(|dir| {
                    crate::local::state::write_atomic(
                        dir,
                        CACHE,
                        format!("{stamp}{version}\n").as_bytes(),
                    )
                })
            {
                tracing::debug!("cannot keep the restic version: {e:#}");
            }
            version
        }
        Err(why) => why.to_string(),
    }
}
