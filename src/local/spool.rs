//! The spool: run records kept in the state directory until the database takes them.
//!
//! When `run` cannot reach the database to record a finished backup, it writes the complete
//! record ([`RunRecord`]) to `spool/<start>-<client-run-id>.json` (one file per run, written
//! atomically). The first `run` or `sync` that reaches the database delivers the spool, oldest
//! first, before anything else (see [`crate::ops::delivery`]); `restic-fleet spool deliver` does
//! the same by hand and `restic-fleet spool list` shows what waits. Delivery is exactly once:
//! the record carries the id the client chose when the run started, the database has a unique
//! constraint on it, and the file is removed only after the transaction committed.
//!
//! Only files here: writing, listing, reading and removing records.

use std::path::{Path, PathBuf};

use crate::domain::run_record::RunRecord;
use crate::local::state::{self, StateDir};

const DIR: &str = "spool";

/// Writes a finished record to the spool; returns its file.
pub fn write(state: &StateDir, r: &RunRecord) -> anyhow::Result<PathBuf> {
    let dir = state.subdir(DIR)?;
    let name = format!(
        "{}-{}.json",
        r.start_time.format("%Y%m%dT%H%M%S%.6fZ"),
        r.client_run_id
    );
    state::write_atomic(&dir, &name, &serde_json::to_vec_pretty(r)?)
}

/// One file of the spool.
#[derive(Debug)]
pub struct Spooled {
    pub path: PathBuf,
    /// The record, or why the file cannot be read as one.
    pub record: Result<RunRecord, String>,
}

/// The spool's directory (it may not exist yet).
pub fn dir(state: &StateDir) -> PathBuf {
    state.root().join(DIR)
}

/// The spooled records, oldest first (file names start with the run's start time).
pub fn list(state: &StateDir) -> anyhow::Result<Vec<Spooled>> {
    let dir = dir(state);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read the spool {}: {e}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".json")
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let record = read_record(&path);
            Spooled { path, record }
        })
        .collect())
}

/// The record in a spool file, or why the file cannot be read as one.
pub fn read_record(path: &Path) -> Result<RunRecord, String> {
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
}

/// Removes a delivered (or superseded) spool file durably.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                state::sync_dir(dir);
            }
        }
        // Another process delivered it at the same time; the database holds it once.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "delivered {} but could not remove it ({e}); delivering it again changes nothing",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::run_record::TriggeredBy;
    use uuid::Uuid;

    #[test]
    fn records_round_trip_oldest_first_and_a_torn_file_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let job = Uuid::new_v4();
        let mut later = RunRecord::starting(job, "docs", "laptop", TriggeredBy::Schedule);
        let mut earlier = later.clone();
        earlier.client_run_id = Uuid::new_v4();
        earlier.start_time = later.start_time - chrono::Duration::hours(1);
        later.status = "success".into();
        later.snapshot_id = Some("ab".repeat(32));
        write(&state, &later).unwrap();
        write(&state, &earlier).unwrap();
        std::fs::write(dir.path().join("spool/zz-torn.json"), b"{\"client_run").unwrap();
        let items = list(&state).unwrap();
        assert_eq!(items.len(), 3);
        let first = items[0].record.as_ref().unwrap();
        assert_eq!(first.client_run_id, earlier.client_run_id);
        let second = items[1].record.as_ref().unwrap();
        assert_eq!(second.snapshot_id, later.snapshot_id);
        assert_eq!(
            second.start_time, later.start_time,
            "times survive to the microsecond"
        );
        assert!(items[2].record.is_err());
        // Writing the same run again replaces its file (a start replaced by the finished record).
        write(&state, &later).unwrap();
        assert_eq!(list(&state).unwrap().len(), 3);
    }
}
