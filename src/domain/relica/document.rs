//! The parts of a Relica client cache that matter for an import, as plain values: origins,
//! backups with their schedules and hooks, destinations and the recent tasks. Secret fields have
//! no place here, so nothing built from these values can carry them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The only `cache_header.cache_version` this importer understands.
pub const SUPPORTED_CACHE_VERSION: i64 = 3;

/// The parts of a Relica client cache that matter for an import. Secret fields are not kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelicaDocument {
    pub cache_version: i64,
    pub save_time: Option<DateTime<Utc>>,
    /// `local.runtime` of the machine the file came from.
    pub runtime: Runtime,
    /// `read_only.self.id`: the origin the file was written on.
    pub self_origin_id: Option<Uuid>,
    pub origins: Vec<Origin>,
    pub backups: Vec<Backup>,
    pub destinations: Vec<Destination>,
    /// `local.last_backups_done`, zero times dropped.
    pub last_backups_done: BTreeMap<Uuid, BTreeMap<Uuid, DateTime<Utc>>>,
    pub recent_tasks: Vec<Task>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Runtime {
    pub os: Option<String>,
    pub arch: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// Position in `read_only.origins`.
    pub index: usize,
    pub id: Uuid,
    pub name: String,
    pub account_id: Option<Uuid>,
    pub created: Option<DateTime<Utc>>,
    pub last_connected: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backup {
    /// Position in `read_only.backups`.
    pub index: usize,
    pub id: Uuid,
    pub name: String,
    pub origin_id: Uuid,
    pub account_id: Option<Uuid>,
    pub created: Option<DateTime<Utc>>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub destinations: Vec<Uuid>,
    pub hooks: Vec<Hook>,
    pub schedule: Schedule,
}

impl Backup {
    /// `read_only.backups[3] ("device1/Docs", id ...)`, used in errors and warnings.
    pub fn label(&self) -> String {
        format!(
            "read_only.backups[{}] ({:?}, id {})",
            self.index, self.name, self.id
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hook {
    pub id: Option<Uuid>,
    pub timing: Option<String>,
    pub on_error: Option<String>,
    pub description: Option<String>,
    pub command: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Schedule {
    pub scheduled: bool,
    pub flexible: bool,
    pub times_of_day: Vec<TimeOfDay>,
    /// 0-6, 0 = Sunday (Go's `time.Weekday`).
    pub days_of_week: Vec<u8>,
    /// 1-31.
    pub days_of_month: Vec<u8>,
    /// 1-12.
    pub months_of_year: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl TimeOfDay {
    /// `"HH:MM"` (hour may have one digit), 00:00-23:59.
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let (h, m) = s.split_once(':')?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
            return None;
        }
        let (hour, minute): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }
}

/// Descriptive, non-secret facts of a `read_only.destinations[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Destination {
    pub id: Uuid,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub provider_name: Option<String>,
    pub remote_type: Option<String>,
    pub remote_base_path: Option<String>,
    pub retention_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Position in `local.recent_tasks`.
    pub index: usize,
    pub id: Option<Uuid>,
    pub backup_id: Uuid,
    pub destination_id: Option<Uuid>,
    /// `backup` in every task seen so far.
    pub task: Option<String>,
    pub status: String,
    pub begin: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}
