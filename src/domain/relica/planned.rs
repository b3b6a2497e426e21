//! The import plan: the rows an import would write (devices, jobs with their hooks and
//! schedules, runs) and the warnings that explain each choice. Plain data, built by
//! [`plan`](super::plan::plan) and written by `relica-migrate`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What an import would write. Pure data; the caller inserts it (devices, then jobs with their
/// schedules, then runs whose `metadata.relica_task_id` is not yet present).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportPlan {
    pub devices: Vec<PlannedDevice>,
    pub jobs: Vec<PlannedJob>,
    /// Human sentences; each names the Relica element and says what was chosen.
    pub warnings: Vec<String>,
    pub history: Vec<PlannedRun>,
}

/// One `devices` row per selected Relica origin (origins without backups included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedDevice {
    /// See [`device_ids`](super::ids::device_ids) for the rule.
    pub id: String,
    /// The origin's name, unchanged.
    pub name: String,
    /// `linux` or `windows`. For `read_only.self` from `local.runtime.os`; otherwise `windows`
    /// when the origin's include paths look like Windows paths (`C:\...`, `D:\`, `\\server\...`),
    /// `linux` when they are POSIX paths, and `linux` with a warning when there are none.
    pub platform: String,
    /// `{"relica": {origin_id, account_id, created, last_connected, last_ip, is_self,
    /// platform_source}}`; never the origin `key`.
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedJob {
    /// The Relica backup id, unchanged (snapshots are tagged `backup:<id>`).
    pub id: Uuid,
    pub device_id: String,
    /// The Relica backup name, unchanged (made unique per device with a warning if needed).
    pub name: String,
    /// `include[]` with exact duplicates removed, first occurrence kept, otherwise unchanged.
    pub source_paths: Vec<String>,
    /// `exclude[]` as given.
    pub exclude_patterns: Vec<String>,
    pub origin_name: String,
    pub origin_id: Uuid,
    pub account_id: Option<Uuid>,
    /// `{"relica": {backup_id, origin_id, created, scheduled, flexible, schedule,
    /// destinations: [{id, name, type, provider_name, remote_type, remote_base_path,
    /// retention_days, last_backup_done}], hooks: [...], hooks_executed: true}}`.
    pub metadata: Value,
    pub schedules: Vec<PlannedSchedule>,
    /// Latest time in `local.last_backups_done[backup id]` over all destinations.
    pub last_run_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    /// The Relica backup's hooks as the job's own (see [`job_hooks`](super::hooks::job_hooks)).
    pub hooks: JobHooks,
}

/// The hooks a Relica backup's `hooks[]` become: timing `start` runs before the backup,
/// `end` after it whatever happened (`finally`); `on_error` of the start hooks becomes the
/// before hook's rule (`stop` if any says stop or says nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobHooks {
    pub before: Option<String>,
    pub finally: Option<String>,
    /// `stop` or `continue`.
    pub before_on_error: String,
}

/// A `schedules` row with `schedule_type = 'cron'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedSchedule {
    pub cron_expression: String,
    /// `{"source": "relica", "relica_backup_id", "relica_time_of_day", "relica_days_of_week",
    /// "relica_days_of_month", "relica_months_of_year", "relica_flexible", "exact", "purpose"}`.
    pub metadata: Value,
}

/// A `runs` row from `local.recent_tasks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRun {
    pub job_id: Uuid,
    pub device_id: String,
    /// `success` or `failed`.
    pub status: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub error_message: Option<String>,
    /// Stable identity of the task: the Relica task id, or `<backup id>@<begin>` when the task
    /// has none. Also stored as `metadata.relica_task_id`; re-imports skip runs whose
    /// `metadata->>'relica_task_id'` already exists.
    pub relica_task_id: String,
    /// `{"source": "relica", "relica_task_id", "relica_destination_id", "relica_task",
    /// "relica_status"}`.
    pub metadata: Value,
}
