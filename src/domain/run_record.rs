//! One run as a value: the [`RunRecord`] that becomes a row of `runs` (live, or later from the
//! spool) and what started the run ([`TriggeredBy`]).
//!
//! A record carries every column `runs` gets plus the id the client chose when the run started
//! (`client_run_id`), so a record kept in the spool and delivered later is the same row a live
//! run writes. Plain data: the spool (`local/`), the delivery (`ops/`), `run` and the command
//! line all share it. Building a record from the clock, the host and restic's outcome is
//! [`crate::ops::delivery`]'s work.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// What started a run (`runs.triggered_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggeredBy {
    Manual,
    Schedule,
    Missed,
}

impl TriggeredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggeredBy::Manual => "manual",
            TriggeredBy::Schedule => "schedule",
            TriggeredBy::Missed => "missed",
        }
    }
}

/// One run, as stored in `runs` (and in a spool file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub client_run_id: Uuid,
    pub job_id: Uuid,
    /// Not a column: for people reading the spool.
    pub job_name: String,
    pub device_id: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub error_message: Option<String>,
    pub files_new: Option<i32>,
    pub files_changed: Option<i32>,
    pub files_unmodified: Option<i32>,
    pub dirs_new: Option<i32>,
    pub dirs_changed: Option<i32>,
    pub dirs_unmodified: Option<i32>,
    pub data_added_bytes: Option<i64>,
    pub total_files_processed: Option<i32>,
    pub total_bytes_processed: Option<i64>,
    pub duration_seconds: Option<i32>,
    pub snapshot_id: Option<String>,
    pub restic_output: Option<String>,
    pub restic_errors: Option<String>,
    pub triggered_by: String,
    pub metadata: Value,
}

impl RunRecord {
    /// Whether the record was kept in the spool because the database could not be reached.
    pub fn recorded_offline(&self) -> bool {
        self.metadata.get("recorded_offline") == Some(&Value::Bool(true))
    }

    /// Adds the keys of `extra` (an object) to the metadata, replacing keys of the same name.
    pub(crate) fn merge_metadata(&mut self, extra: Value) {
        if !self.metadata.is_object() {
            self.metadata = json!({});
        }
        if let (Some(m), Value::Object(extra)) = (self.metadata.as_object_mut(), extra) {
            m.extend(extra);
        }
    }
}
