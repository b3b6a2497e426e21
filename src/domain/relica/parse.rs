//! Parsing a Relica client cache (`cache_header.cache_version` 3) into a [`RelicaDocument`]:
//! the header check, then `read_only` (origins, self, destinations, backups) and `local`
//! (runtime, last backups done, recent tasks), in that order, so the first error reported is
//! always the same for the same file.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::document::{
    Backup, Destination, Hook, Origin, RelicaDocument, Runtime, SUPPORTED_CACHE_VERSION, Schedule,
    Task, TimeOfDay,
};
use super::error::{RelicaError, malformed};
use super::json::{
    as_object, describe, field, int_list, opt_array, opt_bool, opt_i64, opt_object, opt_str,
    opt_time, opt_uuid, parse_time, parse_uuid, req_array, req_object, req_str, req_uuid, str_list,
};

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
    let save_time = parse_header(root)?;

    let ro = req_object(root, "", "read_only").map_err(strip_leading_dot)?;
    let (origins, origin_ids) = parse_origins(ro)?;
    let self_origin_id = match opt_object(ro, "read_only", "self")? {
        Some(s) => opt_uuid(s, "read_only.self", "id")?,
        None => None,
    };
    let destinations = parse_destinations(ro)?;
    let backups = parse_backups(ro, &origin_ids)?;
    let local = parse_local(root)?;

    Ok(RelicaDocument {
        cache_version: SUPPORTED_CACHE_VERSION,
        save_time,
        runtime: local.runtime,
        self_origin_id,
        origins,
        backups,
        destinations,
        last_backups_done: local.last_backups_done,
        recent_tasks: local.recent_tasks,
    })
}

/// Checks `cache_header.cache_version` and returns `cache_header.save_time`.
fn parse_header(root: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, RelicaError> {
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
    opt_time(header, "cache_header", "save_time")
}

/// `read_only.origins[]` and the set of their ids; an id given twice is refused.
fn parse_origins(ro: &Map<String, Value>) -> Result<(Vec<Origin>, HashSet<Uuid>), RelicaError> {
    let mut origins = Vec::new();
    let mut origin_ids = HashSet::new();
    for (i, v) in req_array(ro, "read_only", "origins")?.iter().enumerate() {
        let p = format!("read_only.origins[{i}]");
        let o = parse_origin(v, &p, i)?;
        if !origin_ids.insert(o.id) {
            return Err(malformed(p, format!("origin id {} appears twice", o.id)));
        }
        origins.push(o);
    }
    Ok((origins, origin_ids))
}

/// `read_only.destinations[]`.
fn parse_destinations(ro: &Map<String, Value>) -> Result<Vec<Destination>, RelicaError> {
    let mut destinations = Vec::new();
    for (i, v) in opt_array(ro, "read_only", "destinations")?
        .iter()
        .enumerate()
    {
        destinations.push(parse_destination(
            v,
            &format!("read_only.destinations[{i}]"),
        )?);
    }
    Ok(destinations)
}

/// `read_only.backups[]`; a backup id given twice, or an `origin_id` that is not among
/// `origin_ids`, is refused.
fn parse_backups(
    ro: &Map<String, Value>,
    origin_ids: &HashSet<Uuid>,
) -> Result<Vec<Backup>, RelicaError> {
    let mut backups = Vec::new();
    let mut backup_ids = HashSet::new();
    for (i, v) in req_array(ro, "read_only", "backups")?.iter().enumerate() {
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
    Ok(backups)
}

/// What `local` holds: facts about the machine the file was written on only.
#[derive(Default)]
struct Local {
    runtime: Runtime,
    last_backups_done: BTreeMap<Uuid, BTreeMap<Uuid, DateTime<Utc>>>,
    recent_tasks: Vec<Task>,
}

/// `local.runtime`, `local.last_backups_done` and `local.recent_tasks` (all optional).
fn parse_local(root: &Map<String, Value>) -> Result<Local, RelicaError> {
    let mut out = Local::default();
    let Some(local) = opt_object(root, "", "local").map_err(strip_leading_dot)? else {
        return Ok(out);
    };
    if let Some(rt) = opt_object(local, "local", "runtime")? {
        out.runtime = Runtime {
            os: opt_str(rt, "local.runtime", "os")?,
            arch: opt_str(rt, "local.runtime", "arch")?,
            version: opt_str(rt, "local.runtime", "version")?,
        };
    }
    if let Some(lbd) = opt_object(local, "local", "last_backups_done")? {
        out.last_backups_done = parse_last_backups_done(lbd)?;
    }
    for (i, v) in opt_array(local, "local", "recent_tasks")?
        .iter()
        .enumerate()
    {
        out.recent_tasks.push(parse_task(v, i)?);
    }
    Ok(out)
}

/// `local.last_backups_done{backup_id:{destination_id:time}}`, zero times dropped.
fn parse_last_backups_done(
    lbd: &Map<String, Value>,
) -> Result<BTreeMap<Uuid, BTreeMap<Uuid, DateTime<Utc>>>, RelicaError> {
    let mut last_backups_done = BTreeMap::new();
    for (bid, per_dest) in lbd {
        let p = format!("local.last_backups_done[{bid:?}]");
        let backup_id = parse_uuid(bid, &p)?;
        let mut m = BTreeMap::new();
        for (did, t) in as_object(per_dest, &p)? {
            let dp = format!("{p}[{did:?}]");
            let dest = parse_uuid(did, &dp)?;
            let s = t
                .as_str()
                .ok_or_else(|| malformed(&dp, format!("expected a time, found {}", describe(t))))?;
            if let Some(t) = parse_time(s, &dp)? {
                m.insert(dest, t);
            }
        }
        last_backups_done.insert(backup_id, m);
    }
    Ok(last_backups_done)
}

/// Top-level keys are read with an empty parent path (`.read_only`); their errors name the key
/// alone.
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

/// The descriptive facts of a destination; its credentials are never read.
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
    let hooks = parse_hooks(o, p)?;
    let schedule = match opt_object(o, p, "schedule")? {
        None => Schedule::default(),
        Some(s) => parse_schedule(s, &format!("{p}.schedule"))?,
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

/// A backup's `hooks[]`; a hook without a command gets an empty one (the plan warns about it).
fn parse_hooks(o: &Map<String, Value>, p: &str) -> Result<Vec<Hook>, RelicaError> {
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
    Ok(hooks)
}

/// A backup's `schedule` object at path `sp`, every time and day checked for its range.
fn parse_schedule(s: &Map<String, Value>, sp: &str) -> Result<Schedule, RelicaError> {
    let mut times = Vec::new();
    for (i, t) in str_list(s, sp, "times_of_day")?.iter().enumerate() {
        times.push(TimeOfDay::parse(t).ok_or_else(|| {
            malformed(
                format!("{sp}.times_of_day[{i}]"),
                format!("{t:?} is not a time of day HH:MM between 00:00 and 23:59"),
            )
        })?);
    }
    Ok(Schedule {
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
