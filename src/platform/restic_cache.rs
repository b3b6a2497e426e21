//! restic's cache directory. Without one, restic re-reads the repository's index from the
//! backend on every backup; under a systemd timer neither `$HOME` nor `$XDG_CACHE_HOME` is set,
//! so restic's own default does not exist there.
//!
//! The directory is, in order: the setting `repository_cache_dir`; the directory systemd made
//! for the unit (`CacheDirectory=restic-fleet` exports it as `$CACHE_DIRECTORY`);
//! `%ProgramData%\restic-fleet\cache` on Windows; `/var/cache/restic-fleet` as root (the same
//! directory a system unit gets, so hand runs and timer runs share one cache);
//! `$XDG_CACHE_HOME/restic-fleet` or `~/.cache/restic-fleet` otherwise (what a user unit gets).
//! A run in which restic cannot use its cache records a warning. restic 0.19 aborts when it
//! cannot create its cache directory, where 0.14 to 0.18 warned and carried on uncached; so a
//! directory that cannot be made or written is replaced by `--no-cache` before restic starts
//! ([`unusable`]), with the same warning, for every restic version and command.

use std::path::{Path, PathBuf};

use crate::domain::settings::Settings;

/// The directory name under the system or user cache base (systemd `CacheDirectory=`).
pub const DIR_NAME: &str = "restic-fleet";

/// The cache directory restic is given, or `None` to leave restic's own default.
pub fn resolve(settings: &Settings) -> Option<PathBuf> {
    if let Some(dir) = settings.get("repository_cache_dir") {
        return Some(PathBuf::from(dir.trim()));
    }
    default_dir()
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The default described in the module documentation.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dirs) = var("CACHE_DIRECTORY") {
        // systemd lists every CacheDirectory= entry, separated by colons.
        if let Some(first) = dirs.split(':').find(|d| !d.is_empty()) {
            return Some(PathBuf::from(first));
        }
    }
    if cfg!(windows) {
        return var("ProgramData").map(|p| PathBuf::from(p).join(DIR_NAME).join("cache"));
    }
    if is_root() {
        return Some(PathBuf::from("/var/cache").join(DIR_NAME));
    }
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join(DIR_NAME))
}

#[cfg(unix)]
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// Why restic cannot use `dir` as its cache (`None`: restic's own default, which it cannot
/// find), in the words restic 0.14 to 0.18 print for it; `None` when it can: the directory
/// exists or can be made, and a file can be written in it.
pub fn unusable(dir: Option<&Path>) -> Option<String> {
    let Some(dir) = dir else {
        return Some(
            "unable to open cache: unable to locate cache directory: neither $XDG_CACHE_HOME \
             nor $HOME are defined"
                .to_string(),
        );
    };
    let usable = std::fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir));
    match usable {
        Ok(_) => None,
        Err(e) => Some(format!("unable to open cache: {}: {e}", dir.display())),
    }
}

/// The warning for a run whose restic said it cannot use its cache (restic prints
/// `unable to open cache: ...` and carries on uncached), if it said so in `stderr`.
pub fn warning(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.contains("unable to open cache"))?;
    Some(warning_for(line))
}

/// The warning for a cache restic cannot use, `line` saying why.
pub fn warning_for(line: &str) -> String {
    format!(
        "restic could not use its cache ({line}), so every backup re-reads the repository \
         index; set a writable directory with `restic-fleet settings set repository_cache_dir \
         DIR`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_wins_and_cache_problems_are_warnings() {
        let s = Settings::from_pairs([("repository_cache_dir".into(), " /srv/cache ".into())]);
        assert_eq!(resolve(&s), Some(PathBuf::from("/srv/cache")));
        let w = warning(
            "unable to open cache: unable to locate cache directory: neither $XDG_CACHE_HOME \
             nor $HOME are defined\nno parent snapshot found\n",
        )
        .unwrap();
        assert!(
            w.contains("neither $XDG_CACHE_HOME nor $HOME are defined"),
            "{w}"
        );
        assert_eq!(warning("using parent snapshot 1234\n"), None);
    }

    #[test]
    fn a_directory_that_cannot_be_made_or_written_is_unusable() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(unusable(Some(&tmp.path().join("a/b"))), None);
        assert!(tmp.path().join("a/b").is_dir());
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let why = unusable(Some(&file.join("cache"))).unwrap();
        assert!(why.starts_with("unable to open cache: "), "{why}");
        assert!(why.contains("/file/cache"), "{why}");
        assert!(
            unusable(None)
                .unwrap()
                .contains("neither $XDG_CACHE_HOME nor $HOME")
        );
    }
}
