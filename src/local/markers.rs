//! Markers of the restic processes this device starts, so that `restic unlock` runs only when
//! a restic of this device may have left a lock behind.
//!
//! `restic unlock` opens the repository (a key derivation, about 0.3 s, plus a listing of the
//! locks), which would make every run and every no-op sync pay for a crash that almost never
//! happened. Instead `run` writes `restic/<client-run-id>.running` in the state directory before
//! restic starts and holds an OS lock on it; the file is removed when restic ends with an exit
//! code (restic removed its own lock). It stays when restic was killed, or when `run` itself was
//! killed: the kernel then drops the OS lock, and the next `run` or `sync` finds a marker it can
//! lock, removes the stale repository locks with restic's own rules and clears the marker.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use uuid::Uuid;

use crate::local::state::StateDir;

const DIR: &str = "restic";
const SUFFIX: &str = ".running";

/// A restic of this process is (about to be) running.
#[derive(Debug)]
pub(crate) struct ResticMarker {
    _file: File,
    path: PathBuf,
}

impl ResticMarker {
    /// Marks that restic is about to start for run `run`. `None` when the state directory is
    /// not writable (then the next run unlocks, as it cannot tell).
    pub(crate) fn start(state: &StateDir, run: Uuid) -> Option<Self> {
        let dir = state.subdir(DIR).ok()?;
        let path = dir.join(format!("{run}{SUFFIX}"));
        // Created and locked under another name, then renamed: a `sync` looking at the same
        // time never sees the marker unlocked (as if its restic had died) and clears it.
        let pending = dir.join(format!(".{run}{SUFFIX}.new"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&pending)
            .ok()?;
        if file.try_lock().is_err() || std::fs::rename(&pending, &path).is_err() {
            let _ = std::fs::remove_file(&pending);
            return None;
        }
        Some(Self { _file: file, path })
    }

    /// restic ended by itself (with an exit code): it removed its own lock.
    pub(crate) fn finished(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// restic was killed: its lock may be left; the next run or sync unlocks.
    pub(crate) fn keep(self) {}
}

/// Markers whose process is gone (their OS lock is free), i.e. a restic of this device that
/// may have left a repository lock. A state directory that cannot be read counts as one.
pub(crate) fn left_behind(state: &StateDir) -> Vec<PathBuf> {
    let dir = state.root().join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(_) => return vec![dir],
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(SUFFIX))
        .filter(|p| match File::open(p).map(|f| f.try_lock()) {
            // Locked, yet it may have been removed (its restic ended) since it was opened.
            Ok(Ok(())) => p.exists(),
            Ok(Err(TryLockError::WouldBlock)) => false,
            // Removed since the listing: its restic ended by itself.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Ok(Err(TryLockError::Error(_))) | Err(_) => true,
        })
        .collect()
}

/// Clears markers after `restic unlock` ran for them.
pub(crate) fn clear(markers: &[PathBuf]) {
    for m in markers.iter().filter(|m| m.is_file()) {
        let _ = std::fs::remove_file(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_counts_only_once_its_process_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        assert!(left_behind(&state).is_empty());
        let live = ResticMarker::start(&state, Uuid::new_v4()).unwrap();
        // Held by this process: not left behind (the lock is per open file description).
        assert!(left_behind(&state).is_empty());
        live.keep();
        let left = left_behind(&state);
        assert_eq!(left.len(), 1);
        clear(&left);
        assert!(left_behind(&state).is_empty());
        ResticMarker::start(&state, Uuid::new_v4())
            .unwrap()
            .finished();
        assert!(left_behind(&state).is_empty());
    }

    #[test]
    fn a_marker_is_never_seen_unlocked_while_it_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let done = std::sync::atomic::AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let mut seen = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    seen += left_behind(&state).len();
                }
                seen
            });
            let mut unmarked = 0;
            for _ in 0..3000 {
                match ResticMarker::start(&state, Uuid::new_v4()) {
                    Some(m) => m.finished(),
                    None => unmarked += 1,
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (watcher.join().unwrap(), unmarked)
        });
        assert_eq!(seen, (0, 0), "a sync would have cleared a live marker");
    }
}
