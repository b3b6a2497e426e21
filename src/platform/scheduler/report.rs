//! The sync report (`sync --json` prints this object): the backends record in it the scheduler
//! commands they ran, their warnings and the items that failed; sync fills in the rest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One artifact in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub files: Vec<String>,
}

/// A missed slot and what sync did about it.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub job_id: Uuid,
    pub job_name: String,
    /// The stored `next_run_at` that passed without a run.
    pub slot: DateTime<Utc>,
    /// `started`, `finished`, `not started (--no-catch-up)`, `not started (dry run)`, `failed to
    /// start`.
    pub catch_up: String,
    /// With `--wait`: the catch-up run's exit code.
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub job_id: Option<Uuid>,
    pub job_name: Option<String>,
    pub item: String,
    pub error: String,
}

/// The sync report (`--json` prints this object).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub device_id: String,
    pub backend: String,
    pub dry_run: bool,
    pub added: Vec<Item>,
    pub updated: Vec<Item>,
    pub removed: Vec<Item>,
    pub unchanged: Vec<Item>,
    pub missed: Vec<Missed>,
    pub failed: Vec<Failed>,
    pub warnings: Vec<String>,
    /// Scheduler commands run (systemctl / schtasks), in order.
    pub commands: Vec<String>,
    /// Runs left `running` by a dead process and closed (as failed, or as success when their
    /// snapshot was found).
    pub stale_runs_closed: Vec<i32>,
    /// Run ids of the spooled records delivered (recorded while the database was away).
    pub spool_delivered: Vec<i32>,
    /// The local copy written (path), when the sync reached the database and was not a dry run.
    pub local_copy: Option<String>,
    /// `next_run_at` per enabled schedule id, as stored.
    pub next_runs: BTreeMap<i32, Option<DateTime<Utc>>>,
}

impl Report {
    pub fn fail(
        &mut self,
        job_id: Option<Uuid>,
        job_name: Option<&str>,
        item: &str,
        error: String,
    ) {
        self.failed.push(Failed {
            job_id,
            job_name: job_name.map(str::to_string),
            item: item.to_string(),
            error,
        });
    }
}
