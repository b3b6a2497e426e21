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

    /// How two records of the same run compare by state, `Greater` when `self` is further
    /// along: a finished record is later than a start (`running`); of two finished records the
    /// one that ended later is; what is left of a tie is broken by the records' contents, so
    /// that the choice never depends on the order the records were met in (the names of their
    /// spool files, say). A device writes one record per run, then replaces its start with the
    /// finished record under the same name; two records of one run in the spool come from a
    /// crash between the two writes at best, or were put there by hand.
    pub fn later_state(&self, other: &RunRecord) -> std::cmp::Ordering {
        let finished = |r: &RunRecord| r.status != "running";
        let contents = |r: &RunRecord| serde_json::to_string(r).unwrap_or_default();
        finished(self)
            .cmp(&finished(other))
            .then(self.end_time.cmp(&other.end_time))
            .then_with(|| contents(self).cmp(&contents(other)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_record_is_later_than_a_start_and_a_later_end_wins() {
        let start: RunRecord = serde_json::from_value(json!({
            "client_run_id": Uuid::nil(), "job_id": Uuid::nil(), "job_name": "j",
            "device_id": "d", "start_time": "2026-01-01T00:00:00Z", "status": "running",
            "triggered_by": "manual", "metadata": {},
        }))
        .unwrap();
        let mut early = start.clone();
        early.status = "success".into();
        early.end_time = Some(start.start_time + chrono::Duration::minutes(1));
        let mut late = early.clone();
        late.status = "failed".into();
        late.end_time = Some(start.start_time + chrono::Duration::minutes(2));
        assert!(early.later_state(&start).is_gt() && start.later_state(&early).is_lt());
        assert!(late.later_state(&early).is_gt() && early.later_state(&late).is_lt());
        let mut same_end = early.clone();
        same_end.status = "failed".into();
        assert_eq!(
            same_end.later_state(&early),
            early.later_state(&same_end).reverse()
        );
        assert!(early.later_state(&early).is_eq());
    }
}
