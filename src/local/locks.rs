//! Run exclusion with operating-system file locks in the state directory.
//!
//! A `run` holds, for its whole duration, an exclusive lock on `locks/job-<uuid>.lock` and on
//! one of the device's `max_concurrent_backups` slot files `locks/slot-<n>.lock`. The kernel
//! releases them when the process ends in any way (exit, crash, `kill -9`), and no database is
//! involved, so exclusion holds with the database up, down or restarting. A `running` row whose
//! job lock is free belongs to a process that is gone (see [`crate::ops::reconcile`]).
//!
//! `std::fs::File::try_lock` is flock(2) on Unix and LockFileEx on Windows. The lock files are
//! never deleted: removing a file another process is about to lock would let two processes hold
//! "the" lock on two different inodes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::local::state::StateDir;

/// A held lock; released when dropped (or by the kernel when the process dies).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock at `path` without waiting; `None` when another process holds it.
    fn try_acquire(path: PathBuf) -> anyhow::Result<Option<Self>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file, path })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(anyhow::anyhow!(
                "cannot lock {}: {e}; the state directory must be on a local file system",
                path.display()
            )),
        }
    }

    /// Writes who holds the lock (shown to a process that finds it taken).
    pub fn describe_holder(&mut self, text: &str) {
        use std::io::{Seek, Write};
        let _ = self.file.set_len(0);
        let _ = self.file.seek(std::io::SeekFrom::Start(0));
        let _ = self.file.write_all(text.as_bytes());
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

fn job_lock_path(state: &StateDir, job: Uuid) -> anyhow::Result<PathBuf> {
    Ok(state.subdir("locks")?.join(format!("job-{job}.lock")))
}

/// Takes the job's lock; `None` when another process of this device runs the job.
pub fn try_lock_job(state: &StateDir, job: Uuid) -> anyhow::Result<Option<FileLock>> {
    FileLock::try_acquire(job_lock_path(state, job)?)
}

/// What the holder of a job's lock wrote about itself (empty when unreadable: Windows locks
/// are mandatory, so another process cannot read the file while it is held).
pub fn job_lock_holder(state: &StateDir, job: Uuid) -> String {
    job_lock_path(state, job)
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Waits up to `wait` for one of the device's `max` slots; returns the slot's lock, or `None`
/// when all stayed taken.
pub async fn acquire_slot(
    state: &StateDir,
    max: u64,
    wait: Duration,
    mut on_wait: impl FnMut(),
) -> anyhow::Result<Option<FileLock>> {
    let dir = state.subdir("locks")?;
    let deadline = Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX.into()));
    let mut announced = false;
    loop {
        for slot in 0..max.max(1) {
            if let Some(lock) = FileLock::try_acquire(dir.join(format!("slot-{slot}.lock")))? {
                return Ok(Some(lock));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        if !announced {
            on_wait();
            announced = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let job = Uuid::new_v4();
        let held = try_lock_job(&state, job).unwrap().expect("free");
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process, just as another process would.
        assert!(try_lock_job(&state, job).unwrap().is_none());
        assert!(try_lock_job(&state, Uuid::new_v4()).unwrap().is_some());
        drop(held);
        assert!(try_lock_job(&state, job).unwrap().is_some());
    }

    #[tokio::test]
    async fn slots_hold_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let a = acquire_slot(&state, 2, Duration::ZERO, || {})
            .await
            .unwrap();
        let b = acquire_slot(&state, 2, Duration::ZERO, || {})
            .await
            .unwrap();
        assert!(a.is_some() && b.is_some());
        let mut waited = false;
        let c = acquire_slot(&state, 2, Duration::from_millis(100), || waited = true)
            .await
            .unwrap();
        assert!(c.is_none() && waited);
        drop(a);
        assert!(
            acquire_slot(&state, 2, Duration::ZERO, || {})
                .await
                .unwrap()
                .is_some()
        );
    }
}
