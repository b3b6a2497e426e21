//! Import of a Relica Backup client cache (`cache_header.cache_version` 3): pure parsing and
//! planning. No I/O besides parsing a `&str`; the caller writes the [`ImportPlan`] into the
//! database.
//!
//! # What the Relica file contains (cache version 3)
//!
//! * `read_only.origins[]`: the machines of the account (`id`, `name`, `account_id`, `created`,
//!   `last_connected`, `last_ip`, and a secret `key` that is never read here).
//!   `read_only.self` is the machine the file was written on; `local.runtime.os` is its OS.
//! * `read_only.backups[]`: `id`, `name` (free text, usually `"<origin>/<label>"`, but the prefix
//!   does not always equal the origin's name), `origin_id`, `account_id`, `include[]`,
//!   `exclude[]` (may be absent), `destinations[]` (destination ids), `hooks[]`, and `schedule`
//!   (`scheduled`, `flexible`, `times_of_day["HH:MM"]`, `days_of_week[]` 0-6 with 0 = Sunday,
//!   `days_of_month[]` 1-31, `months_of_year[]` 1-12; an empty list means "every").
//! * `read_only.destinations[]`: where Relica stored the data; credentials are never read.
//! * `local.last_backups_done{backup_id:{destination_id:time}}` and `local.recent_tasks[]`
//!   (`id`, `backup_id`, `destination_id`, `task`, `status` `success`|`error`, `begin`, `end`,
//!   `error_message`). Both only describe backups run by the `self` machine.
//! * Times carry nanoseconds; Go's zero time `0001-01-01T00:00:00Z` means "never" (`None`).
//!
//! # Secrets
//!
//! The parser never reads the origin `key`, the account (`api_key`, `password`, ...), or the
//! destination credentials, so they cannot reach [`ImportPlan`]. As a second guard, every
//! metadata object is scrubbed of keys whose name contains `key`, `password`, `passwd`,
//! `secret`, `token` or `credential` (see [`is_secret_field_name`]).

pub mod retention;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The only `cache_header.cache_version` this importer understands.
pub const SUPPORTED_CACHE_VERSION: i64 = 3;

/// Every error names the element of the Relica file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelicaError {
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    UnsupportedCacheVersion {
        found: String,
        supported: i64,
    },
    Malformed {
        path: String,
        message: String,
    },
    MissingOrigin {
        path: String,
        origin_id: Uuid,
    },
    UnknownOriginFilter {
        filter: String,
        known: String,
    },
}

impl fmt::Display for RelicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelicaError::NotJson {
                line,
                column,
                message,
            } => write!(
                f,
                "the Relica file is not valid JSON (line {line}, column {column}: {message}); \
                 pass the unmodified cache file from the Relica client's data folder"
            ),
            RelicaError::UnsupportedCacheVersion { found, supported } => write!(
                f,
                "cache_header.cache_version is {found} but only cache_version {supported} is \
                 supported; use the cache file written by a Relica client that writes version \
                 {supported}"
            ),
            RelicaError::Malformed { path, message } => {
                write!(f, "malformed Relica file: {path}: {message}")
            }
            RelicaError::MissingOrigin { path, origin_id } => write!(
                f,
                "{path}: origin_id {origin_id} is not among read_only.origins; the file is \
                 inconsistent, so the backup's device cannot be determined"
            ),
            RelicaError::UnknownOriginFilter { filter, known } => write!(
                f,
                "origin filter {filter:?} matches no origin name or id in the Relica file \
                 (known origins: {known})"
            ),
        }
    }
}

impl std::error::Error for RelicaError {}

fn malformed(path: impl Into<String>, message: impl Into<String>) -> RelicaError {
    RelicaError::Malformed {
        path: path.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsed document
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Parsing helpers: every accessor knows the JSON path of what it reads.
// ---------------------------------------------------------------------------------------------

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            format!("the string {short:?}")
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A field; JSON `null` counts as absent (Go writes `null` for nil slices and pointers).
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, RelicaError> {
    v.as_object()
        .ok_or_else(|| malformed(path, format!("expected an object, found {}", describe(v))))
}

fn req_object<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, RelicaError> {
    let p = format!("{path}.{key}");
    let v = field(obj, key).ok_or_else(|| malformed(&p, "is missing"))?;
    as_object(v, &p)
}

fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, RelicaError> {
    field(obj, key)
        .map(|v| as_object(v, &format!("{path}.{key}")))
        .transpose()
}

fn opt_array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a [Value], RelicaError> {
    match field(obj, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected an array, found {}", describe(v)),
        )),
    }
}

fn req_array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a [Value], RelicaError> {
    if field(obj, key).is_none() {
        return Err(malformed(format!("{path}.{key}"), "is missing"));
    }
    opt_array(obj, path, key)
}

fn opt_str(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected a string, found {}", describe(v)),
        )),
    }
}

fn req_str(obj: &Map<String, Value>, path: &str, key: &str) -> Result<String, RelicaError> {
    opt_str(obj, path, key)?.ok_or_else(|| malformed(format!("{path}.{key}"), "is missing"))
}

fn parse_uuid(s: &str, path: &str) -> Result<Uuid, RelicaError> {
    Uuid::parse_str(s).map_err(|_| malformed(path, format!("{s:?} is not a UUID")))
}

fn opt_uuid(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<Uuid>, RelicaError> {
    match opt_str(obj, path, key)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => parse_uuid(&s, &format!("{path}.{key}")).map(Some),
    }
}

fn req_uuid(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Uuid, RelicaError> {
    opt_uuid(obj, path, key)?.ok_or_else(|| malformed(format!("{path}.{key}"), "is missing"))
}

fn opt_bool(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<bool>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(malformed(
            format!("{path}.{key}"),
            format!("expected true or false, found {}", describe(v)),
        )),
    }
}

fn opt_i64(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<i64>, RelicaError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            malformed(
                format!("{path}.{key}"),
                format!("expected an integer, found {}", describe(v)),
            )
        }),
    }
}

/// RFC 3339 with optional nanoseconds; Go's zero time (year 1) and `""` mean "never".
fn parse_time(s: &str, path: &str) -> Result<Option<DateTime<Utc>>, RelicaError> {
    if s.is_empty() {
        return Ok(None);
    }
    let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
        malformed(
            path,
            format!("{s:?} is not an RFC 3339 time like 2025-12-15T03:01:07.580094317Z ({e})"),
        )
    })?;
    let t = t.with_timezone(&Utc);
    Ok((t.year() > 1).then_some(t))
}

fn opt_time(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<DateTime<Utc>>, RelicaError> {
    match opt_str(obj, path, key)? {
        None => Ok(None),
        Some(s) => parse_time(&s, &format!("{path}.{key}")),
    }
}

fn str_list(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Vec<String>, RelicaError> {
    opt_array(obj, path, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                malformed(
                    format!("{path}.{key}[{i}]"),
                    format!("expected a string, found {}", describe(v)),
                )
            })
        })
        .collect()
}

fn int_list(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    lo: u8,
    hi: u8,
    meaning: &str,
) -> Result<Vec<u8>, RelicaError> {
    opt_array(obj, path, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64()
                .filter(|n| (lo as i64..=hi as i64).contains(n))
                .map(|n| n as u8)
                .ok_or_else(|| {
                    malformed(
                        format!("{path}.{key}[{i}]"),
                        format!("{} is not {meaning} ({lo}-{hi})", describe(v)),
                    )
                })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------------------------

/// Parses a Relica client cache. Unknown fields are ignored, absent lists (`exclude`, `hooks`,
/// ...) are empty, zero times are `None`. Refuses (naming the JSON path) text that is not JSON,
/// a `cache_version` other than [`SUPPORTED_CACHE_VERSION`], wrongly typed or out-of-range
/// values, duplicate origin or backup ids, and a backup whose `origin_id` is not an origin.
pub fn parse(json: &str) -> Result<RelicaDocument, RelicaError> {
    let root: Value = serde_json::from_str(json).map_err(|e| RelicaError::NotJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let root = as_object(&root, "(document root)")?;

    let header = field(root, "cache_header").ok_or_else(|| {
        malformed(
            "cache_header",
            format!(
                "is missing; this does not look like a Relica client cache (expected \
                 \"cache_header\": {{\"cache_version\": {SUPPORTED_CACHE_VERSION}}})"
            ),
        )
    })?;
    let header = as_object(header, "cache_header")?;
    let version = field(header, "cache_version")
        .ok_or_else(|| malformed("cache_header.cache_version", "is missing"))?;
    if version.as_i64() != Some(SUPPORTED_CACHE_VERSION) {
        return Err(RelicaError::UnsupportedCacheVersion {
            found: version.to_string(),
            supported: SUPPORTED_CACHE_VERSION,
        });
    }
    let save_time = opt_time(header, "cache_header", "save_time")?;

    let ro = req_object(root, "", "read_only").map_err(strip_leading_dot)?;
    let rp = "read_only";

    let mut origins = Vec::new();
    let mut origin_ids = HashSet::new();
    for (i, v) in req_array(ro, rp, "origins")?.iter().enumerate() {
        let p = format!("read_only.origins[{i}]");
        let o = parse_origin(v, &p, i)?;
        if !origin_ids.insert(o.id) {
            return Err(malformed(p, format!("origin id {} appears twice", o.id)));
        }
        origins.push(o);
    }
    let self_origin_id = match opt_object(ro, rp, "self")? {
        Some(s) => opt_uuid(s, "read_only.self", "id")?,
        None => None,
    };

    let mut destinations = Vec::new();
    for (i, v) in opt_array(ro, rp, "destinations")?.iter().enumerate() {
        destinations.push(parse_destination(
            v,
            &format!("read_only.destinations[{i}]"),
        )?);
    }

    let mut backups = Vec::new();
    let mut backup_ids = HashSet::new();
    for (i, v) in req_array(ro, rp, "backups")?.iter().enumerate() {
        let b = parse_backup(v, i)?;
        if !backup_ids.insert(b.id) {
            return Err(malformed(b.label(), "the backup id appears twice"));
        }
        if !origin_ids.contains(&b.origin_id) {
            return Err(RelicaError::MissingOrigin {
                path: b.label(),
                origin_id: b.origin_id,
            });
        }
        backups.push(b);
    }

    let mut runtime = Runtime::default();
    let mut last_backups_done = BTreeMap::new();
    let mut recent_tasks = Vec::new();
    if let Some(local) = opt_object(root, "", "local").map_err(strip_leading_dot)? {
        if let Some(rt) = opt_object(local, "local", "runtime")? {
            runtime = Runtime {
                os: opt_str(rt, "local.runtime", "os")?,
                arch: opt_str(rt, "local.runtime", "arch")?,
                version: opt_str(rt, "local.runtime", "version")?,
            };
        }
        if let Some(lbd) = opt_object(local, "local", "last_backups_done")? {
            for (bid, per_dest) in lbd {
                let p = format!("local.last_backups_done[{bid:?}]");
                let backup_id = parse_uuid(bid, &p)?;
                let mut m = BTreeMap::new();
                for (did, t) in as_object(per_dest, &p)? {
                    let dp = format!("{p}[{did:?}]");
                    let dest = parse_uuid(did, &dp)?;
                    let s = t.as_str().ok_or_else(|| {
                        malformed(&dp, format!("expected a time, found {}", describe(t)))
                    })?;
                    if let Some(t) = parse_time(s, &dp)? {
                        m.insert(dest, t);
                    }
                }
                last_backups_done.insert(backup_id, m);
            }
        }
        for (i, v) in opt_array(local, "local", "recent_tasks")?
            .iter()
            .enumerate()
        {
            recent_tasks.push(parse_task(v, i)?);
        }
    }

    Ok(RelicaDocument {
        cache_version: SUPPORTED_CACHE_VERSION,
        save_time,
        runtime,
        self_origin_id,
        origins,
        backups,
        destinations,
        last_backups_done,
        recent_tasks,
    })
}

fn strip_leading_dot(e: RelicaError) -> RelicaError {
    match e {
        RelicaError::Malformed { path, message } => RelicaError::Malformed {
            path: path.trim_start_matches('.').to_owned(),
            message,
        },
        e => e,
    }
}

fn parse_origin(v: &Value, p: &str, index: usize) -> Result<Origin, RelicaError> {
    let o = as_object(v, p)?;
    Ok(Origin {
        index,
        id: req_uuid(o, p, "id")?,
        name: req_str(o, p, "name")?,
        account_id: opt_uuid(o, p, "account_id")?,
        created: opt_time(o, p, "created")?,
        last_connected: opt_time(o, p, "last_connected")?,
        last_ip: opt_str(o, p, "last_ip")?,
    })
}

fn parse_destination(v: &Value, p: &str) -> Result<Destination, RelicaError> {
    let o = as_object(v, p)?;
    let ca = opt_object(o, p, "cloud_account")?;
    let cp = format!("{p}.cloud_account");
    let from_ca = |key: &str| -> Result<Option<String>, RelicaError> {
        ca.map(|c| opt_str(c, &cp, key))
            .transpose()
            .map(Option::flatten)
    };
    Ok(Destination {
        id: req_uuid(o, p, "id")?,
        name: opt_str(o, p, "name")?,
        kind: opt_str(o, p, "type")?,
        provider_name: from_ca("provider_name")?,
        remote_type: from_ca("remote_type")?,
        remote_base_path: from_ca("remote_base_path")?,
        retention_days: opt_i64(o, p, "retention_days")?,
    })
}

fn parse_backup(v: &Value, index: usize) -> Result<Backup, RelicaError> {
    let p0 = format!("read_only.backups[{index}]");
    let o = as_object(v, &p0)?;
    let id = req_uuid(o, &p0, "id")?;
    let name = req_str(o, &p0, "name")?;
    // From here on, errors name the backup by name and id as well.
    let p = format!("{p0} ({name:?}, id {id})");
    let p = p.as_str();
    let destinations = str_list(o, p, "destinations")?
        .iter()
        .enumerate()
        .map(|(i, s)| parse_uuid(s, &format!("{p}.destinations[{i}]")))
        .collect::<Result<_, _>>()?;
    let mut hooks = Vec::new();
    for (i, h) in opt_array(o, p, "hooks")?.iter().enumerate() {
        let hp = format!("{p}.hooks[{i}]");
        let h = as_object(h, &hp)?;
        hooks.push(Hook {
            id: opt_uuid(h, &hp, "id")?,
            timing: opt_str(h, &hp, "timing")?,
            on_error: opt_str(h, &hp, "on_error")?,
            description: opt_str(h, &hp, "description")?,
            command: opt_str(h, &hp, "command")?.unwrap_or_default(),
        });
    }
    let schedule = match opt_object(o, p, "schedule")? {
        None => Schedule::default(),
        Some(s) => {
            let sp = format!("{p}.schedule");
            let sp = sp.as_str();
            let mut times = Vec::new();
            for (i, t) in str_list(s, sp, "times_of_day")?.iter().enumerate() {
                times.push(TimeOfDay::parse(t).ok_or_else(|| {
                    malformed(
                        format!("{sp}.times_of_day[{i}]"),
                        format!("{t:?} is not a time of day HH:MM between 00:00 and 23:59"),
                    )
                })?);
            }
            Schedule {
                scheduled: opt_bool(s, sp, "scheduled")?.unwrap_or(false),
                flexible: opt_bool(s, sp, "flexible")?.unwrap_or(false),
                times_of_day: times,
                days_of_week: int_list(
                    s,
                    sp,
                    "days_of_week",
                    0,
                    6,
                    "a day of the week (0 = Sunday)",
                )?,
                days_of_month: int_list(s, sp, "days_of_month", 1, 31, "a day of the month")?,
                months_of_year: int_list(s, sp, "months_of_year", 1, 12, "a month")?,
            }
        }
    };
    Ok(Backup {
        index,
        id,
        name,
        origin_id: req_uuid(o, p, "origin_id")?,
        account_id: opt_uuid(o, p, "account_id")?,
        created: opt_time(o, p, "created")?,
        include: str_list(o, p, "include")?,
        exclude: str_list(o, p, "exclude")?,
        destinations,
        hooks,
        schedule,
    })
}

fn parse_task(v: &Value, index: usize) -> Result<Task, RelicaError> {
    let p = format!("local.recent_tasks[{index}]");
    let p = p.as_str();
    let o = as_object(v, p)?;
    Ok(Task {
        index,
        id: opt_uuid(o, p, "id")?,
        backup_id: req_uuid(o, p, "backup_id")?,
        destination_id: opt_uuid(o, p, "destination_id")?,
        task: opt_str(o, p, "task")?,
        status: req_str(o, p, "status")?,
        begin: opt_time(o, p, "begin")?,
        end: opt_time(o, p, "end")?,
        error_message: opt_str(o, p, "error_message")?.filter(|m| !m.is_empty()),
    })
}

// ---------------------------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------------------------

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
    /// See [`device_ids`] for the rule.
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
    /// i12: Relica hooks as real hooks (see [`job_hooks`]).
    pub hooks: JobHooks,
}

/// i12: the hooks a Relica backup's `hooks[]` become: timing `start` runs before the backup,
/// `end` after it whatever happened (`finally`); `on_error` of the start hooks becomes the
/// before hook's rule (`stop` if any says stop or says nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobHooks {
    pub before: Option<String>,
    pub finally: Option<String>,
    /// `stop` or `continue`.
    pub before_on_error: String,
}

/// Several hooks of one timing run one after the other, stopping at the first that fails
/// (`&&` means that in `sh` and in `cmd.exe` alike). Hooks with an unknown timing or without
/// a command are left out with a warning (they stay in `metadata.relica.hooks`).
pub fn job_hooks(b: &Backup, label: &str, warnings: &mut Vec<String>) -> JobHooks {
    let mut before: Vec<&str> = Vec::new();
    let mut finally: Vec<&str> = Vec::new();
    let mut stop = false;
    for (i, h) in b.hooks.iter().enumerate() {
        let cmd = h.command.trim();
        if cmd.is_empty() {
            warnings.push(format!(
                "{label}: hooks[{i}] has no command and is not imported"
            ));
            continue;
        }
        if crate::platform::hooks::validate_command(cmd).is_err() {
            warnings.push(format!(
                "{label}: hooks[{i}] has a command no shell can run (NUL byte or over 8 KiB) and \
                 is not imported"
            ));
            continue;
        }
        match h.timing.as_deref() {
            Some("start") => {
                before.push(cmd);
                match h.on_error.as_deref() {
                    Some("continue") | Some("ignore") => {}
                    Some("stop") | None => stop = true,
                    Some(other) => {
                        stop = true;
                        warnings.push(format!(
                            "{label}: hooks[{i}] has on_error {other:?}, read as stop"
                        ));
                    }
                }
            }
            Some("end") => finally.push(cmd),
            other => warnings.push(format!(
                "{label}: hooks[{i}] has timing {:?} (expected start or end) and is not imported",
                other.unwrap_or("")
            )),
        }
    }
    let join = |v: Vec<&str>| (!v.is_empty()).then(|| v.join(" && "));
    JobHooks {
        before_on_error: if before.is_empty() || stop {
            "stop".into()
        } else {
            "continue".into()
        },
        before: join(before),
        finally: join(finally),
    }
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

/// Whether an origin name can serve as our device id: non-empty, at most 255 characters
/// (`devices.id` is `VARCHAR(255)`), no whitespace, no control characters, none of `,` `/` `\`
/// (restic splits tags on commas; slashes would break unit and task names), and not itself a
/// UUID (so it can never collide with an id chosen by the UUID fallback).
pub fn is_valid_device_id(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '/' | '\\'))
        && Uuid::parse_str(name).is_err()
}

/// The device id chosen for every origin of the document, keyed by origin id.
///
/// Rule: the origin's **name** when [`is_valid_device_id`] holds and no other origin of the
/// whole document has the same name compared case-insensitively; otherwise the origin's **UUID**
/// (lowercase, hyphenated). The rule looks at all origins, not only the filtered ones, so a
/// device keeps its id whatever `origins_filter` a later import uses. Ids are unique: names are
/// unique case-insensitively, UUIDs are unique, and a name that parses as a UUID is never used.
/// The restic-fleet config on that machine must use the same device id.
pub fn device_ids(doc: &RelicaDocument) -> HashMap<Uuid, String> {
    let mut name_count: HashMap<String, usize> = HashMap::new();
    for o in &doc.origins {
        *name_count.entry(o.name.to_lowercase()).or_default() += 1;
    }
    doc.origins
        .iter()
        .map(|o| {
            let unique = name_count[&o.name.to_lowercase()] == 1;
            let id = if unique && is_valid_device_id(&o.name) {
                o.name.clone()
            } else {
                o.id.to_string()
            };
            (o.id, id)
        })
        .collect()
}

/// Whether a metadata key must never be stored (it names a secret).
pub fn is_secret_field_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "password", "passwd", "secret", "token", "credential"]
        .iter()
        .any(|s| k.contains(s))
}

/// Removes, recursively, every object member whose name [`is_secret_field_name`].
fn scrub_secrets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !is_secret_field_name(k));
            m.values_mut().for_each(scrub_secrets);
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_secrets),
        _ => {}
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn looks_windows(path: &str) -> bool {
    let b = path.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || path.starts_with("\\\\")
}

/// Builds the import plan for the origins named in `origins_filter` (origin names or origin
/// UUIDs; empty = all). Errors: a filter entry matching no origin, a backup whose origin is
/// missing (only possible for hand-built documents, [`parse`] already refuses it).
pub fn plan(doc: &RelicaDocument, origins_filter: &[String]) -> Result<ImportPlan, RelicaError> {
    let mut warnings = Vec::new();
    let origin_by_id: HashMap<Uuid, &Origin> = doc.origins.iter().map(|o| (o.id, o)).collect();
    for b in &doc.backups {
        if !origin_by_id.contains_key(&b.origin_id) {
            return Err(RelicaError::MissingOrigin {
                path: b.label(),
                origin_id: b.origin_id,
            });
        }
    }

    // Which origins.
    let mut selected: HashSet<Uuid> = HashSet::new();
    for f in origins_filter {
        let by_uuid = Uuid::parse_str(f.trim()).ok();
        let matches: Vec<Uuid> = doc
            .origins
            .iter()
            .filter(|o| o.name == *f || Some(o.id) == by_uuid)
            .map(|o| o.id)
            .collect();
        if matches.is_empty() {
            let known = doc
                .origins
                .iter()
                .map(|o| format!("{:?} ({})", o.name, o.id))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RelicaError::UnknownOriginFilter {
                filter: f.clone(),
                known,
            });
        }
        selected.extend(matches);
    }
    let wanted = |id: &Uuid| origins_filter.is_empty() || selected.contains(id);

    let ids = device_ids(doc);
    let dest_by_id: HashMap<Uuid, &Destination> =
        doc.destinations.iter().map(|d| (d.id, d)).collect();

    // Devices.
    let mut devices = Vec::new();
    for o in doc.origins.iter().filter(|o| wanted(&o.id)) {
        let id = ids[&o.id].clone();
        if id != o.name {
            warnings.push(format!(
                "read_only.origins[{}] ({:?}): the name cannot serve as a device id ({}), so the \
                 device id is the origin id {}",
                o.index,
                o.name,
                if is_valid_device_id(&o.name) {
                    "another origin has the same name"
                } else {
                    "empty, too long, or contains whitespace, control characters, ',' '/' or '\\'"
                },
                o.id
            ));
        }
        let is_self = doc.self_origin_id == Some(o.id);
        let paths: Vec<&String> = doc
            .backups
            .iter()
            .filter(|b| b.origin_id == o.id)
            .flat_map(|b| &b.include)
            .collect();
        let win = paths.iter().filter(|p| looks_windows(p)).count();
        let runtime_os = doc.runtime.os.as_deref().filter(|_| is_self);
        let (platform, source) = match runtime_os {
            Some("windows") => ("windows", "local.runtime.os"),
            Some("linux") => ("linux", "local.runtime.os"),
            _ if paths.is_empty() => {
                warnings.push(format!(
                    "read_only.origins[{}] ({:?}): no backups to guess the platform from; \
                     recorded as linux, correct it if the machine runs Windows",
                    o.index, o.name
                ));
                ("linux", "default")
            }
            _ if win * 2 > paths.len() => ("windows", "include paths"),
            _ => ("linux", "include paths"),
        };
        if let Some(os) = runtime_os.filter(|os| !matches!(*os, "windows" | "linux")) {
            warnings.push(format!(
                "read_only.origins[{}] ({:?}): local.runtime.os is {os:?}, which restic-fleet \
                 does not support; recorded as {platform}",
                o.index, o.name
            ));
        }
        if win > 0 && win < paths.len() {
            warnings.push(format!(
                "read_only.origins[{}] ({:?}): include paths mix Windows and POSIX forms; \
                 platform recorded as {platform}",
                o.index, o.name
            ));
        }
        let mut metadata = json!({"relica": {
            "origin_id": o.id,
            "account_id": o.account_id,
            "created": o.created.as_ref().map(rfc3339),
            "last_connected": o.last_connected.as_ref().map(rfc3339),
            "last_ip": o.last_ip,
            "is_self": is_self,
            "platform_source": source,
        }});
        scrub_secrets(&mut metadata);
        devices.push(PlannedDevice {
            id,
            name: o.name.clone(),
            platform: platform.to_owned(),
            metadata,
        });
    }

    // Jobs.
    let mut jobs = Vec::new();
    let mut names_per_device: HashMap<String, HashSet<String>> = HashMap::new();
    for b in doc.backups.iter().filter(|b| wanted(&b.origin_id)) {
        let origin = origin_by_id[&b.origin_id];
        let device_id = ids[&b.origin_id].clone();
        let label = b.label();

        if let Some(prefix) = b
            .name
            .split_once('/')
            .map(|(p, _)| p)
            .filter(|p| *p != origin.name)
        {
            warnings.push(format!(
                "{label}: the name prefix {prefix:?} differs from its origin's name {:?}; the \
                 job belongs to device {device_id:?} by origin_id and keeps its name",
                origin.name
            ));
        }
        if b.account_id.is_some()
            && origin.account_id.is_some()
            && b.account_id != origin.account_id
        {
            warnings.push(format!(
                "{label}: account_id differs from its origin's account_id; the backup's is used"
            ));
        }

        let mut name = b.name.clone();
        let taken = names_per_device.entry(device_id.clone()).or_default();
        if taken.contains(&name.to_lowercase()) {
            name = format!("{} ({})", b.name, b.id);
            warnings.push(format!(
                "{label}: another backup of the same origin has this name; imported as {name:?}"
            ));
        }
        taken.insert(name.to_lowercase());

        let mut seen = HashSet::new();
        let source_paths: Vec<String> = b
            .include
            .iter()
            .filter(|p| seen.insert(p.as_str()))
            .cloned()
            .collect();
        if source_paths.len() < b.include.len() {
            warnings.push(format!(
                "{label}: include lists {} paths with {} duplicate(s); kept {} in order",
                b.include.len(),
                b.include.len() - source_paths.len(),
                source_paths.len()
            ));
        }
        let enabled = !source_paths.is_empty();
        if !enabled {
            warnings.push(format!(
                "{label}: include is empty; the job is imported disabled"
            ));
        }

        let schedules = plan_schedules(b, &label, &mut warnings);

        let done = doc.last_backups_done.get(&b.id);
        let last_run_at = done.and_then(|m| m.values().max().copied());
        let dests: Vec<Value> = b
            .destinations
            .iter()
            .map(|d| {
                let info = dest_by_id.get(d);
                json!({
                    "id": d,
                    "name": info.and_then(|i| i.name.clone()),
                    "type": info.and_then(|i| i.kind.clone()),
                    "provider_name": info.and_then(|i| i.provider_name.clone()),
                    "remote_type": info.and_then(|i| i.remote_type.clone()),
                    "remote_base_path": info.and_then(|i| i.remote_base_path.clone()),
                    "retention_days": info.and_then(|i| i.retention_days),
                    "last_backup_done": done.and_then(|m| m.get(d)).map(rfc3339),
                })
            })
            .collect();
        let hooks = job_hooks(b, &label, &mut warnings);
        let mut metadata = json!({"relica": {
            "backup_id": b.id,
            "backup_name": b.name,
            "origin_id": b.origin_id,
            "account_id": b.account_id,
            "created": b.created.as_ref().map(rfc3339),
            "scheduled": b.schedule.scheduled,
            "flexible": b.schedule.flexible,
            "schedule": b.schedule,
            "destinations": dests,
            "hooks": b.hooks,
            "hooks_executed": true,
        }});
        scrub_secrets(&mut metadata);

        jobs.push(PlannedJob {
            id: b.id,
            device_id,
            name,
            source_paths,
            exclude_patterns: b.exclude.clone(),
            origin_name: origin.name.clone(),
            origin_id: origin.id,
            account_id: b.account_id,
            metadata,
            schedules,
            last_run_at,
            enabled,
            hooks,
        });
    }

    if jobs.iter().any(|j| {
        j.metadata["relica"]["destinations"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    }) {
        warnings.push(
            "Relica destinations are recorded in the jobs' metadata (relica.destinations) only; \
             restic-fleet backs up every job to the one repository configured in settings"
                .to_owned(),
        );
    }
    if let Some(self_id) = doc
        .self_origin_id
        .filter(|id| jobs.iter().any(|j| j.origin_id != *id))
    {
        let self_name = origin_by_id.get(&self_id).map_or("?", |o| o.name.as_str());
        warnings.push(format!(
            "the file was written on origin {self_name:?}: last backup times and run history \
             exist only for its backups; jobs of other origins have none"
        ));
    }

    // History.
    let job_by_id: HashMap<Uuid, &PlannedJob> = jobs.iter().map(|j| (j.id, j)).collect();
    let known_backups: HashSet<Uuid> = doc.backups.iter().map(|b| b.id).collect();
    let mut history = Vec::new();
    let mut seen_tasks = HashSet::new();
    for t in &doc.recent_tasks {
        let p = format!("local.recent_tasks[{}]", t.index);
        let Some(job) = job_by_id.get(&t.backup_id) else {
            if !known_backups.contains(&t.backup_id) {
                warnings.push(format!(
                    "{p}: backup_id {} is not among read_only.backups; task skipped",
                    t.backup_id
                ));
            }
            continue;
        };
        if t.task.as_deref().is_some_and(|k| k != "backup") {
            warnings.push(format!(
                "{p}: task {:?} is not a backup; skipped",
                t.task.as_deref().unwrap_or_default()
            ));
            continue;
        }
        let Some(begin) = t.begin else {
            warnings.push(format!("{p}: no begin time; skipped"));
            continue;
        };
        let (status, error_message) = match t.status.as_str() {
            "success" => ("success", None),
            "error" => (
                "failed",
                Some(
                    t.error_message
                        .clone()
                        .unwrap_or_else(|| "Relica reported an error without a message".into()),
                ),
            ),
            "canceled" | "cancelled" => ("cancelled", t.error_message.clone()),
            other => {
                warnings.push(format!(
                    "{p}: unknown status {other:?} (expected success or error); skipped"
                ));
                continue;
            }
        };
        let relica_task_id = match t.id {
            Some(id) => id.to_string(),
            None => format!("{}@{}", t.backup_id, rfc3339(&begin)),
        };
        if !seen_tasks.insert(relica_task_id.clone()) {
            warnings.push(format!(
                "{p}: task {relica_task_id} appears twice; kept the first"
            ));
            continue;
        }
        let mut metadata = json!({
            "source": "relica",
            "relica_task_id": relica_task_id,
            "relica_destination_id": t.destination_id,
            "relica_task": t.task,
            "relica_status": t.status,
        });
        scrub_secrets(&mut metadata);
        history.push(PlannedRun {
            job_id: job.id,
            device_id: job.device_id.clone(),
            status: status.to_owned(),
            start_time: begin,
            end_time: t.end,
            duration_seconds: t.end.map(|e| (e - begin).num_seconds()),
            error_message,
            relica_task_id,
            metadata,
        });
    }
    for bid in doc.last_backups_done.keys() {
        if !known_backups.contains(bid) {
            warnings.push(format!(
                "local.last_backups_done[{:?}]: not among read_only.backups; ignored",
                bid.to_string()
            ));
        }
    }

    Ok(ImportPlan {
        devices,
        jobs,
        warnings,
        history,
    })
}

// ---------------------------------------------------------------------------------------------
// Schedule -> cron
// ---------------------------------------------------------------------------------------------

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn sorted_set(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn join(v: &[u8]) -> String {
    v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

fn list_or_star(v: &[u8]) -> String {
    if v.is_empty() { "*".into() } else { join(v) }
}

/// `days_of_week` sets that cron can write as `*/s` (0, s, 2s, ... up to 6), which starts with
/// `*` and therefore combines with a day-of-month list by AND under Vixie's rule.
fn dow_step_form(dow: &[u8]) -> Option<u8> {
    (2..=6u8).find(|&s| (0..=6u8).step_by(s as usize).collect::<Vec<_>>() == dow)
}

/// Turns a Relica schedule into cron lines (`minute hour dom month dow`, device local time, as
/// Relica). Rules:
///
/// * `scheduled: false` -> no schedule (manual-only job); times or days present are only kept in
///   metadata, with a warning. `scheduled: true` without `times_of_day` -> no schedule, warning.
/// * One line per distinct time of day: `M H dom month dow`, lists sorted and deduplicated, an
///   empty or complete list written `*`; weekday numbers as in Relica (0 = Sunday).
/// * Both `days_of_week` and `days_of_month` set: Relica is taken to require both (AND). Vixie
///   cron fires when either matches, so AND is exact only when the weekday set is `*/s`
///   ({0,2,4,6}, {0,3,6}, {0,4}, {0,5}, {0,6}); otherwise only the restriction that fires on
///   fewer days is kept (days of month if |dom|*7 <= |dow|*31, else days of week), a superset
///   of Relica's days, with a warning: backups may run more often than in Relica, never less.
/// * Days 29-31: Relica runs such a backup on the last day of a month that lacks the day. Extra
///   lines add day 30 in 30-day months for 31, and in February day 28 for any day >= 29 plus
///   day 29 for any day >= 30. In a leap year this also fires on Feb 28 when 28 was not asked
///   for (cron cannot tell leap years); the warning says so.
fn plan_schedules(b: &Backup, label: &str, warnings: &mut Vec<String>) -> Vec<PlannedSchedule> {
    let s = &b.schedule;
    let dow_all = sorted_set(&s.days_of_week);
    let dom_all = sorted_set(&s.days_of_month);
    let mon_all = sorted_set(&s.months_of_year);
    let times: Vec<TimeOfDay> = s
        .times_of_day
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    if !s.scheduled {
        if !times.is_empty() || !dow_all.is_empty() || !dom_all.is_empty() || !mon_all.is_empty() {
            warnings.push(format!(
                "{label}: schedule.scheduled is false, so the job is imported manual-only; the \
                 unused Relica times and days are kept in metadata (relica.schedule)"
            ));
        }
        return Vec::new();
    }
    if times.is_empty() {
        warnings.push(format!(
            "{label}: schedule.scheduled is true but times_of_day is empty; no schedule \
             created, the job runs only when started by hand"
        ));
        return Vec::new();
    }
    if times.len() < s.times_of_day.len() {
        warnings.push(format!(
            "{label}: times_of_day lists a time more than once; one schedule per distinct time"
        ));
    }

    // "Every" when empty or complete.
    let dow = if dow_all.len() == 7 {
        vec![]
    } else {
        dow_all.clone()
    };
    let dom = if dom_all.len() == 31 {
        vec![]
    } else {
        dom_all.clone()
    };
    let mon = if mon_all.len() == 12 {
        vec![]
    } else {
        mon_all.clone()
    };

    let mut exact = true;
    let (dom_used, dow_field) = if !dom.is_empty() && !dow.is_empty() {
        if let Some(step) = dow_step_form(&dow) {
            (dom.clone(), format!("*/{step}"))
        } else {
            exact = false;
            let keep_dom = dom.len() * 7 <= dow.len() * 31;
            let (chosen, what) = if keep_dom {
                (
                    format!("days_of_month {dom:?}"),
                    "every such day of the month, whatever the weekday",
                )
            } else {
                (
                    format!("days_of_week {dow:?}"),
                    "every such weekday, whatever the day of the month",
                )
            };
            warnings.push(format!(
                "{label}: Relica runs this backup only on days in both days_of_week {dow:?} \
                 (0 = Sunday) and days_of_month {dom:?}; cron cannot say \"both\" (Vixie cron \
                 fires when either matches), so the schedule keeps only {chosen} and fires on \
                 {what}: more often than Relica, never less"
            ));
            if keep_dom {
                (dom.clone(), "*".into())
            } else {
                (vec![], join(&dow))
            }
        }
    } else {
        (dom.clone(), list_or_star(&dow))
    };

    // Lines as (dom, months, purpose) before adding the time of day.
    let mut day_lines: Vec<(String, String, String)> = vec![(
        list_or_star(&dom_used),
        list_or_star(&mon),
        "relica schedule".into(),
    )];
    if let Some(&max) = dom_used.last().filter(|&&m| m >= 29) {
        let in_months = |m: u8| mon.is_empty() || mon.contains(&m);
        let mut notes = Vec::new();
        let thirty: Vec<u8> = [4u8, 6, 9, 11]
            .into_iter()
            .filter(|&m| in_months(m))
            .collect();
        if max == 31 && !dom_used.contains(&30) && !thirty.is_empty() {
            day_lines.push((
                "30".into(),
                join(&thirty),
                "last day of 30-day months, for days_of_month 31".into(),
            ));
            notes.push(format!(
                "day 30 in {}",
                thirty
                    .iter()
                    .map(|&m| MONTH_NAMES[m as usize - 1])
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if in_months(2) {
            let mut feb: Vec<u8> = vec![28];
            if max >= 30 {
                feb.push(29);
            }
            feb.retain(|d| !dom_used.contains(d));
            if !feb.is_empty() {
                day_lines.push((
                    join(&feb),
                    "2".into(),
                    format!("last day of February, for days_of_month {max}"),
                ));
                notes.push(format!("Feb {}", join(&feb)));
                if !dom_used.contains(&28) {
                    exact = false;
                }
            }
        }
        if !notes.is_empty() {
            let leap = if dom_used.contains(&28) {
                String::new()
            } else {
                "; in leap years it also fires on Feb 28 (cron cannot tell leap years)".into()
            };
            warnings.push(format!(
                "{label}: days_of_month {dom_used:?} includes days some months lack; Relica then \
                 runs on the month's last day, so extra schedules were added ({}){leap}",
                notes.join("; ")
            ));
        }
    }

    let mut out = Vec::new();
    for t in &times {
        for (dom_f, mon_f, purpose) in &day_lines {
            let mut metadata = json!({
                "source": "relica",
                "relica_backup_id": b.id,
                "relica_time_of_day": t.to_string(),
                "relica_days_of_week": s.days_of_week,
                "relica_days_of_month": s.days_of_month,
                "relica_months_of_year": s.months_of_year,
                "relica_flexible": s.flexible,
                "exact": exact,
                "purpose": purpose,
            });
            scrub_secrets(&mut metadata);
            out.push(PlannedSchedule {
                cron_expression: format!("{} {} {dom_f} {mon_f} {dow_field}", t.minute, t.hour),
                metadata,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/relica/relica-account-info.json"
    );

    fn fixture() -> RelicaDocument {
        let text = std::fs::read_to_string(FIXTURE).expect("fixture readable");
        parse(&text).expect("fixture parses")
    }

    fn job<'a>(p: &'a ImportPlan, name: &str) -> &'a PlannedJob {
        p.jobs.iter().find(|j| j.name == name).expect(name)
    }

    fn crons(j: &PlannedJob) -> Vec<&str> {
        j.schedules
            .iter()
            .map(|s| s.cron_expression.as_str())
            .collect()
    }

    fn u(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    // ---- the real fixture, expectations computed by hand from the JSON ----

    #[test]
    fn fixture_counts() {
        let d = fixture();
        assert_eq!(d.backups.len(), 21);
        assert_eq!(d.origins.len(), 9);
        assert_eq!(d.recent_tasks.len(), 500);
        assert_eq!(
            d.self_origin_id,
            Some(u("214d5118-bc3a-4927-989a-a90ae144f47a"))
        );
        let p = plan(&d, &[]).unwrap();
        assert_eq!(p.devices.len(), 9);
        assert_eq!(p.jobs.len(), 21);
        let manual: Vec<&str> = p
            .jobs
            .iter()
            .filter(|j| j.schedules.is_empty())
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(manual, ["homepc/Fotky", "device1/test"]);
        // 17 backups with one time of day, two (device1/Dokumenty, device6/Dokumenty) with two.
        assert_eq!(p.jobs.iter().map(|j| j.schedules.len()).sum::<usize>(), 21);
        assert!(p.jobs.iter().all(|j| j.enabled));
    }

    #[test]
    fn fixture_device_ids_are_the_origin_names() {
        let p = plan(&fixture(), &[]).unwrap();
        let ids: Vec<&str> = p.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "device1", "device2", "device3", "device4", "cloud", "device8", "device6", "prcek",
                "device5"
            ]
        );
        let plat = |id: &str| {
            p.devices
                .iter()
                .find(|d| d.id == id)
                .unwrap()
                .platform
                .clone()
        };
        assert_eq!(plat("device1"), "linux");
        assert_eq!(plat("device2"), "windows");
        assert_eq!(plat("cloud"), "linux"); // self: local.runtime.os
        assert_eq!(plat("device5"), "linux"); // no backups: default + warning
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("\"device5\"") && w.contains("no backups"))
        );
    }

    #[test]
    fn fixture_cron_lines() {
        let p = plan(&fixture(), &[]).unwrap();
        assert_eq!(
            crons(job(&p, "device1/Dokumenty")),
            ["0 13 * * *", "0 23 * * *"]
        );
        assert_eq!(crons(job(&p, "device1/home")), ["30 22 * * *"]);
        assert_eq!(crons(job(&p, "device3/Fotky")), ["30 1 * * 1,2,4,6"]);
        assert_eq!(crons(job(&p, "cloud/backups")), ["0 3 * * 1,3,5"]);
        // days_of_week [0] = Sunday = cron 0.
        assert_eq!(crons(job(&p, "device7/Fotky")), ["0 22 * * 0"]);
        assert_eq!(crons(job(&p, "device7/Docs")), ["0 1 * * 0,3"]);
        assert_eq!(crons(job(&p, "device7/PhotoMaterials")), ["0 23 * * 6"]);
        assert_eq!(
            crons(job(&p, "device6/Dokumenty")),
            ["0 12 * * *", "0 22 * * *"]
        );
        let s = &job(&p, "device7/Fotky").schedules[0].metadata;
        assert_eq!(s["relica_time_of_day"], "22:00");
        assert_eq!(s["relica_flexible"], true);
        assert_eq!(s["exact"], true);
    }

    #[test]
    fn fixture_paths_names_and_origins() {
        let p = plan(&fixture(), &[]).unwrap();
        assert_eq!(
            job(&p, "device3/Dokumenty").source_paths,
            ["C:\\Users\\User2\\Documents", "C:\\Users\\User2\\Desktop"]
        );
        assert_eq!(job(&p, "device7/Docs2").source_paths, ["D:\\"]);
        assert_eq!(job(&p, "device4/ÚČTO").source_paths, ["C:\\UCTO2020"]);
        assert_eq!(job(&p, "device4/ÚČTO").device_id, "device4");
        let home = job(&p, "device1/home");
        assert_eq!(home.exclude_patterns.len(), 17);
        assert_eq!(home.exclude_patterns[0], "/home/user/.cache");
        assert_eq!(home.exclude_patterns[5], "/home/user/VirtualBox VMs");
        assert!(job(&p, "device1/Dokumenty").exclude_patterns.is_empty());

        // "homepc/..." belongs to origin device2, "device7/..." to origin device8.
        let hp = job(&p, "homepc/User3 dokumenty");
        assert_eq!(hp.id, u("6f82fc40-b82b-43d2-b4f0-72c12deca9fa"));
        assert_eq!(hp.origin_name, "device2");
        assert_eq!(hp.origin_id, u("32ed6434-d17e-44be-a1de-260c6bec9452"));
        assert_eq!(hp.device_id, "device2");
        assert_eq!(
            hp.account_id,
            Some(u("003dbcee-4f0a-4a55-a7bb-a6511b263558"))
        );
        assert_eq!(crons(hp), ["0 12 * * 2,5"]);
        assert_eq!(job(&p, "device7/Fotky").device_id, "device8");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("\"homepc\"") && w.contains("\"device2\""))
        );
    }

    #[test]
    fn fixture_last_run_and_history() {
        let p = plan(&fixture(), &[]).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            job(&p, "cloud/backups").last_run_at,
            Some(t("2025-12-15T03:01:07.580094317Z"))
        );
        assert_eq!(
            job(&p, "cloud/home").last_run_at,
            Some(t("2025-12-15T01:00:59.59646097Z"))
        );
        assert_eq!(job(&p, "device1/home").last_run_at, None);

        assert_eq!(p.history.len(), 500);
        assert_eq!(
            p.history.iter().filter(|r| r.status == "failed").count(),
            489
        );
        assert_eq!(
            p.history.iter().filter(|r| r.status == "success").count(),
            11
        );
        let backups = u("2ac41143-fd87-4c5d-b2d4-213eb5b6c42e");
        assert_eq!(
            p.history.iter().filter(|r| r.job_id == backups).count(),
            252
        );
        assert!(p.history.iter().all(|r| r.device_id == "cloud"));
        let first = &p.history[0];
        assert_eq!(first.relica_task_id, "e00d98bf-80f9-4f26-8fda-5d7a171b8645");
        assert_eq!(
            first.metadata["relica_task_id"],
            "e00d98bf-80f9-4f26-8fda-5d7a171b8645"
        );
        assert_eq!(first.start_time, t("2025-12-04T08:49:17.743154362Z"));
        assert_eq!(first.end_time, Some(t("2025-12-04T08:49:27.782800592Z")));
        assert!(
            first
                .error_message
                .as_deref()
                .unwrap()
                .starts_with("opening destination 'Cloud'")
        );
        assert!(
            p.history
                .iter()
                .filter(|r| r.status == "success")
                .all(|r| r.error_message.is_none())
        );
        let keys: HashSet<&str> = p
            .history
            .iter()
            .map(|r| r.relica_task_id.as_str())
            .collect();
        assert_eq!(keys.len(), 500);
    }

    #[test]
    fn relica_hooks_become_job_hooks() {
        let hook = |timing: &str, on_error: Option<&str>, cmd: &str| Hook {
            id: None,
            timing: Some(timing.into()),
            on_error: on_error.map(str::to_string),
            description: None,
            command: cmd.into(),
        };
        let mut b = Backup {
            index: 0,
            id: Uuid::nil(),
            name: "d/x".into(),
            origin_id: Uuid::nil(),
            account_id: None,
            created: None,
            include: vec![],
            exclude: vec![],
            destinations: vec![],
            hooks: vec![
                hook("start", Some("continue"), "dump db"),
                hook("start", Some("continue"), "sync"),
                hook("end", Some("stop"), "notify"),
                hook("middle", None, "what"),
                hook("end", None, " "),
            ],
            schedule: Schedule::default(),
        };
        let mut w = Vec::new();
        let h = job_hooks(&b, "b", &mut w);
        assert_eq!(h.before.as_deref(), Some("dump db && sync"));
        assert_eq!(h.finally.as_deref(), Some("notify"));
        assert_eq!(h.before_on_error, "continue");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("no command") || w[1].contains("no command"));
        b.hooks[1].on_error = None;
        assert_eq!(job_hooks(&b, "b", &mut w).before_on_error, "stop");
    }

    #[test]
    fn fixture_hooks_destinations_and_no_secrets() {
        let p = plan(&fixture(), &[]).unwrap();
        let m = &job(&p, "cloud/backups").metadata["relica"];
        assert_eq!(m["hooks_executed"], true);
        assert_eq!(m["hooks"][0]["timing"], "end");
        let hooks = &job(&p, "cloud/backups").hooks;
        assert_eq!(
            hooks.finally.as_deref(),
            Some("/etc/cloud-config/scripts/endpoint-watcher cloud relica-backup-end backups")
        );
        assert_eq!(hooks.before, None);
        assert_eq!(
            m["destinations"][0]["id"],
            "cb871492-76dc-4683-8ecd-d9a6c84ae798"
        );
        assert_eq!(m["destinations"][0]["name"], "Cloud");
        assert_eq!(
            m["destinations"][0]["last_backup_done"],
            "2025-12-15T03:01:07.580094317Z"
        );
        assert!(!p.warnings.iter().any(|w| w.contains("NOT executed")));

        let all = serde_json::to_string(&p).unwrap();
        for secret in [
            "<DEVICE_KEY",
            "T9oFN7DmzdJiYiUKjTaL",
            "YD7FoJcgYvuhgWXR79C3",
            "<PASSWORD_HASH>",
            "<ACCOUNT_PASSWORD_ENCRYPTED>",
            "<METADATA_ENCRYPTION_KEY>",
            "igC***",
            "backup_user",
            "cus_EXAMPLE",
        ] {
            assert!(!all.contains(secret), "plan leaks {secret}");
        }
        fn no_secret_keys(v: &Value) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| {
                    assert!(!is_secret_field_name(k), "secret-looking key {k}");
                    no_secret_keys(v)
                }),
                Value::Array(a) => a.iter().for_each(no_secret_keys),
                _ => {}
            }
        }
        p.devices.iter().for_each(|d| no_secret_keys(&d.metadata));
        p.jobs.iter().for_each(|j| {
            no_secret_keys(&j.metadata);
            j.schedules.iter().for_each(|s| no_secret_keys(&s.metadata));
        });
        p.history.iter().for_each(|r| no_secret_keys(&r.metadata));
    }

    #[test]
    fn fixture_origin_filter() {
        let d = fixture();
        let p = plan(&d, &["device2".into()]).unwrap();
        assert_eq!(p.devices.len(), 1);
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            ["homepc/User3 dokumenty", "homepc/Fotky", "homepc/davinci"]
        );
        assert!(p.history.is_empty());

        let p = plan(&d, &["214d5118-bc3a-4927-989a-a90ae144f47a".into()]).unwrap();
        assert_eq!(p.devices[0].id, "cloud");
        assert_eq!(p.jobs.len(), 2);
        assert_eq!(p.history.len(), 500);

        let e = plan(&d, &["nope".into()]).unwrap_err();
        assert!(matches!(e, RelicaError::UnknownOriginFilter { .. }));
        assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("\"device1\""));
    }

    // ---- small synthetic documents ----

    const ORIGIN: &str = "11111111-1111-4111-8111-111111111111";
    const BACKUP: &str = "22222222-2222-4222-8222-222222222222";

    /// A minimal document with one origin named `origin_name` and one backup whose fields are
    /// `backup_fields` (a JSON object body without braces).
    fn doc(origin_name: &str, backup_fields: &str) -> String {
        format!(
            r#"{{"cache_header": {{"cache_version": 3, "save_time": "0001-01-01T00:00:00Z"}},
              "read_only": {{
                "origins": [{{"id": "{ORIGIN}", "name": "{origin_name}", "key": "SECRETKEY",
                              "last_connected": "0001-01-01T00:00:00Z", "future_field": [1]}}],
                "backups": [{{"id": "{BACKUP}", "name": "pc/Docs", "origin_id": "{ORIGIN}",
                              {backup_fields}}}]
              }},
              "local": {{
                "last_backups_done": {{"{BACKUP}": {{"33333333-3333-4333-8333-333333333333":
                                                    "0001-01-01T00:00:00Z"}}}},
                "recent_tasks": [{{"backup_id": "{BACKUP}", "begin": "2025-01-02T03:04:05.123456789Z",
                                   "end": "0001-01-01T00:00:00Z", "status": "success",
                                   "task": "backup"}}]
              }}}}"#
        )
    }

    fn sched(fields: &str) -> String {
        format!(r#""include": ["/a"], "schedule": {{"scheduled": true, {fields}}}"#)
    }

    fn plan_of(backup_fields: &str) -> ImportPlan {
        plan(&parse(&doc("pc", backup_fields)).unwrap(), &[]).unwrap()
    }

    #[test]
    fn tolerant_parsing() {
        // No exclude, no hooks, no destinations, no schedule, no account; unknown fields; zero times.
        let d = parse(&doc(
            "pc",
            r#""include": ["/a", "/a", "/b"], "whatever": {"x": 1}"#,
        ))
        .unwrap();
        assert_eq!(d.save_time, None);
        assert_eq!(d.origins[0].last_connected, None);
        assert!(d.backups[0].exclude.is_empty() && d.backups[0].hooks.is_empty());
        assert!(d.last_backups_done.values().all(|m| m.is_empty()));
        assert_eq!(d.recent_tasks[0].end, None);
        let p = plan(&d, &[]).unwrap();
        let j = &p.jobs[0];
        assert_eq!(j.source_paths, ["/a", "/b"]);
        assert!(j.schedules.is_empty());
        assert_eq!(j.last_run_at, None);
        assert_eq!(j.account_id, None);
        // Task without id: key is backup id @ begin, with nanoseconds.
        assert_eq!(
            p.history[0].relica_task_id,
            format!("{BACKUP}@2025-01-02T03:04:05.123456789Z")
        );
        assert_eq!(p.history[0].end_time, None);
        assert!(!serde_json::to_string(&p).unwrap().contains("SECRETKEY"));
    }

    #[test]
    fn not_json() {
        let e = parse("{\"cache_header\": ").unwrap_err();
        assert!(matches!(e, RelicaError::NotJson { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("not valid JSON"));
    }

    #[test]
    fn wrong_cache_version() {
        let text = doc("pc", r#""include": ["/a"]"#)
            .replace("\"cache_version\": 3", "\"cache_version\": 4");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e,
            RelicaError::UnsupportedCacheVersion {
                found: "4".into(),
                supported: 3
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("cache_header.cache_version is 4") && msg.contains("version 3"),
            "{msg}"
        );

        let e = parse(r#"{"read_only": {}}"#).unwrap_err();
        assert!(
            e.to_string().contains("cache_header") && e.to_string().contains("Relica"),
            "{e}"
        );
    }

    #[test]
    fn missing_origin() {
        let text = doc("pc", r#""include": ["/a"]"#).replacen(
            &format!("\"origin_id\": \"{ORIGIN}\""),
            "\"origin_id\": \"44444444-4444-4444-8444-444444444444\"",
            1,
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "read_only.backups[0] (\"pc/Docs\", id {BACKUP}): origin_id \
                 44444444-4444-4444-8444-444444444444 is not among read_only.origins; the file is \
                 inconsistent, so the backup's device cannot be determined"
            )
        );
    }

    #[test]
    fn bad_time_of_day_and_weekday() {
        let e = parse(&doc("pc", &sched(r#""times_of_day": ["01:00", "25:00"]"#))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "read_only.backups[0] (\"pc/Docs\", id {BACKUP}).schedule.times_of_day[1]"
            )),
            "{msg}"
        );
        assert!(msg.contains("\"25:00\""), "{msg}");

        let e = parse(&doc(
            "pc",
            &sched(r#""times_of_day": ["01:00"], "days_of_week": [0, 7]"#),
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(".schedule.days_of_week[1]")
                && msg.contains("number 7")
                && msg.contains("0 = Sunday"),
            "{msg}"
        );

        let e = parse(&doc("pc", r#""include": ["/a", 5]"#)).unwrap_err();
        assert!(
            e.to_string()
                .contains(".include[1]: expected a string, found the number 5"),
            "{e}"
        );
        let e = parse(&doc(
            "pc",
            r#""include": [], "days_of_month": 3, "schedule": {"days_of_month": [0]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("days_of_month[0]"), "{e}");
        assert!(TimeOfDay::parse("7:05").is_some());
        for bad in ["24:00", "12:60", "12:5", "1200", ":30", "a:bc"] {
            assert!(TimeOfDay::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn manual_only_keeps_times_in_metadata() {
        let p = plan_of(
            r#""include": ["/a"], "schedule": {"scheduled": false, "times_of_day": ["01:00"]}"#,
        );
        assert!(p.jobs[0].schedules.is_empty());
        assert_eq!(
            p.jobs[0].metadata["relica"]["schedule"]["times_of_day"][0],
            "01:00"
        );
        assert!(p.warnings.iter().any(|w| w.contains("manual-only")));
    }

    #[test]
    fn days_of_month_months_and_full_lists() {
        let p = plan_of(&sched(
            r#""times_of_day": ["05:07", "05:07"], "days_of_month": [15, 1], "months_of_year": [3, 1]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["7 5 1,15 1,3 *"]);
        let p = plan_of(&sched(
            r#""times_of_day": ["00:00"], "days_of_week": [6,5,4,3,2,1,0]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 0 * * *"]);
    }

    #[test]
    fn both_day_lists_fall_back_to_a_superset_with_warning() {
        // 2 days of month vs 1 weekday: days of month fire less often -> kept.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [1], "days_of_month": [1, 15]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 1,15 * *"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], false);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("both") && w.contains("days_of_month [1, 15]"))
        );
        // 10 days of month vs 1 weekday: the weekday is kept.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [1], "days_of_month": [1,2,3,4,5,6,7,8,9,10]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 * * 1"]);
        // Weekends {0,6} are `*/6`, which starts with `*`, so Vixie ANDs it with the day list.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [6, 0], "days_of_month": [1, 15]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 1,15 * */6"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], true);
    }

    #[test]
    fn short_months_run_on_the_last_day() {
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [31]"#,
        ));
        assert_eq!(
            crons(&p.jobs[0]),
            ["0 1 31 * *", "0 1 30 4,6,9,11 *", "0 1 28,29 2 *"]
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("last day") && w.contains("leap"))
        );
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [29], "months_of_year": [1, 2]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 29 1,2 *", "0 1 28 2 *"]);
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [28, 30], "months_of_year": [2, 4]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 28,30 2,4 *", "0 1 29 2 *"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], true);
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [29]"#,
        ));
        assert_eq!(p.jobs[0].schedules.len(), 2);
    }

    #[test]
    fn device_id_rule() {
        let d = parse(&doc("my laptop", r#""include": ["C:\\x"]"#)).unwrap();
        let p = plan(&d, &[]).unwrap();
        assert_eq!(p.devices[0].id, ORIGIN);
        assert_eq!(p.devices[0].name, "my laptop");
        assert_eq!(p.devices[0].platform, "windows");
        assert_eq!(p.jobs[0].device_id, ORIGIN);
        assert!(p.warnings.iter().any(|w| w.contains("origin id")));
        assert!(is_valid_device_id("Počítač-1"));
        for bad in ["", "a b", "a,b", "a/b", "a\tb", ORIGIN] {
            assert!(!is_valid_device_id(bad), "{bad:?}");
        }
        // Two origins named alike (case-insensitively) both get their UUIDs.
        let mut d = parse(&doc("PC", r#""include": ["/a"]"#)).unwrap();
        let mut twin = d.origins[0].clone();
        twin.id = u("55555555-5555-4555-8555-555555555555");
        twin.name = "pc".into();
        d.origins.push(twin);
        let ids = device_ids(&d);
        assert_eq!(ids[&u(ORIGIN)], ORIGIN);
        assert_eq!(
            ids[&u("55555555-5555-4555-8555-555555555555")],
            "55555555-5555-4555-8555-555555555555"
        );
    }

    #[test]
    fn scrub_removes_secret_names() {
        let mut v = json!({"a": {"api_key": 1, "Password": 2, "x": [{"token_id": 3, "ok": 4}]}, "credentials": []});
        scrub_secrets(&mut v);
        assert_eq!(v, json!({"a": {"x": [{"ok": 4}]}}));
    }
}
