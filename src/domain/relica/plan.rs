//! Building the [`ImportPlan`] from a parsed document: which origins, then one device per
//! origin (its id and platform), one job per backup (name, paths, schedules, hooks, metadata),
//! the run history, and a warning for every choice the file did not make for us.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use uuid::Uuid;

use super::document::{Backup, Destination, Origin, RelicaDocument};
use super::error::RelicaError;
use super::history::plan_history;
use super::hooks::job_hooks;
use super::ids::{device_ids, is_valid_device_id};
use super::metadata::{rfc3339, scrub_secrets};
use super::planned::{ImportPlan, PlannedDevice, PlannedJob};
use super::schedules::plan_schedules;

/// Builds the import plan for the origins named in `origins_filter` (origin names or origin
/// UUIDs; empty = all). Errors: a filter entry matching no origin, a backup whose origin is
/// missing (only possible for hand-built documents, [`parse`](super::parse::parse) already
/// refuses it).
pub fn plan(doc: &RelicaDocument, origins_filter: &[String]) -> Result<ImportPlan, RelicaError> {
    let mut warnings = Vec::new();
    let origin_by_id: HashMap<Uuid, &Origin> = doc.origins.iter().map(|o| (o.id, o)).collect();
    if let Some(b) = doc
        .backups
        .iter()
        .find(|b| !origin_by_id.contains_key(&b.origin_id))
    {
        return Err(RelicaError::MissingOrigin {
            path: b.label(),
            origin_id: b.origin_id,
        });
    }
    let selected = select_origins(doc, origins_filter)?;
    let wanted = |id: &Uuid| origins_filter.is_empty() || selected.contains(id);
    let ids = device_ids(doc);

    let mut devices = Vec::new();
    for o in doc.origins.iter().filter(|o| wanted(&o.id)) {
        devices.push(plan_device(doc, o, ids[&o.id].clone(), &mut warnings));
    }
    let ctx = JobContext {
        doc,
        origin_by_id: &origin_by_id,
        ids: &ids,
        dest_by_id: doc.destinations.iter().map(|d| (d.id, d)).collect(),
    };
    let mut jobs = Vec::new();
    let mut names_per_device: HashMap<String, HashSet<String>> = HashMap::new();
    for b in doc.backups.iter().filter(|b| wanted(&b.origin_id)) {
        jobs.push(plan_job(&ctx, b, &mut names_per_device, &mut warnings));
    }
    summary_warnings(doc, &jobs, &origin_by_id, &mut warnings);
    let history = plan_history(doc, &jobs, &mut warnings);

    Ok(ImportPlan {
        devices,
        jobs,
        warnings,
        history,
    })
}

/// The origins `origins_filter` names (by name or UUID); an entry naming none is refused with
/// the list of known origins.
fn select_origins(
    doc: &RelicaDocument,
    origins_filter: &[String],
) -> Result<HashSet<Uuid>, RelicaError> {
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
    Ok(selected)
}

fn looks_windows(path: &str) -> bool {
    let b = path.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || path.starts_with("\\\\")
}

/// The device of origin `o`, under device id `id` (a warning says why when it is not the
/// origin's name).
fn plan_device(
    doc: &RelicaDocument,
    o: &Origin,
    id: String,
    warnings: &mut Vec<String>,
) -> PlannedDevice {
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
    let (platform, source) = guess_platform(doc, o, is_self, warnings);
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
    PlannedDevice {
        id,
        name: o.name.clone(),
        platform: platform.to_owned(),
        metadata,
    }
}

/// The origin's platform and where it came from: `local.runtime.os` for the machine the file
/// was written on, otherwise the form of its backups' include paths (the majority wins), and
/// `linux` by default; doubtful cases are warned about.
fn guess_platform(
    doc: &RelicaDocument,
    o: &Origin,
    is_self: bool,
    warnings: &mut Vec<String>,
) -> (&'static str, &'static str) {
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
    (platform, source)
}

/// What every job of the plan is built from besides its backup.
struct JobContext<'a> {
    doc: &'a RelicaDocument,
    origin_by_id: &'a HashMap<Uuid, &'a Origin>,
    ids: &'a HashMap<Uuid, String>,
    dest_by_id: HashMap<Uuid, &'a Destination>,
}

/// The job of backup `b`; `names_per_device` holds the (lowercased) job names already given on
/// each device, so a second backup of the same name gets its id appended.
fn plan_job(
    ctx: &JobContext<'_>,
    b: &Backup,
    names_per_device: &mut HashMap<String, HashSet<String>>,
    warnings: &mut Vec<String>,
) -> PlannedJob {
    let origin = ctx.origin_by_id[&b.origin_id];
    let device_id = ctx.ids[&b.origin_id].clone();
    let label = b.label();
    origin_warnings(b, origin, &device_id, &label, warnings);
    let taken = names_per_device.entry(device_id.clone()).or_default();
    let name = unique_name(b, &job_name(b, origin), taken, &label, warnings);
    let source_paths = source_paths(b, &label, warnings);
    let enabled = !source_paths.is_empty();
    if !enabled {
        warnings.push(format!(
            "{label}: include is empty; the job is imported disabled"
        ));
    }
    let schedules = plan_schedules(b, &label, warnings);
    let done = ctx.doc.last_backups_done.get(&b.id);
    let last_run_at = done.and_then(|m| m.values().max().copied());
    let dests = destinations_metadata(b, ctx);
    let hooks = job_hooks(b, &label, warnings);
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
    PlannedJob {
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
    }
}

/// Warnings where the backup and its origin disagree (name prefix, account); the origin_id
/// decides the device and the backup's account is kept.
fn origin_warnings(
    b: &Backup,
    origin: &Origin,
    device_id: &str,
    label: &str,
    warnings: &mut Vec<String>,
) {
    if let Some(prefix) = b
        .name
        .split_once('/')
        .map(|(p, _)| p)
        .filter(|p| *p != origin.name)
    {
        warnings.push(format!(
            "{label}: the name prefix {prefix:?} differs from its origin's name {:?}; the \
             job belongs to device {device_id:?} by origin_id and keeps the prefix in its name",
            origin.name
        ));
    }
    if b.account_id.is_some() && origin.account_id.is_some() && b.account_id != origin.account_id {
        warnings.push(format!(
            "{label}: account_id differs from its origin's account_id; the backup's is used"
        ));
    }
}

/// The job name of a Relica backup: Relica names a backup `ORIGIN/NAME`; the origin is kept in
/// `origin_name` (and shown beside the name), so the name drops that prefix. A `/` left (a
/// prefix other than the origin's name, or one inside the name) becomes `-`, since a job name
/// with `/` would read as `DEVICE/NAME`.
fn job_name(b: &Backup, origin: &Origin) -> String {
    let name = match b.name.split_once('/') {
        Some((prefix, rest)) if prefix == origin.name && !rest.trim().is_empty() => rest,
        _ => b.name.as_str(),
    };
    name.replace('/', "-")
}

/// `base`, or `base (id)` when the device already has a job of that name (compared
/// case-insensitively); records the name as taken.
fn unique_name(
    b: &Backup,
    base: &str,
    taken: &mut HashSet<String>,
    label: &str,
    warnings: &mut Vec<String>,
) -> String {
    let mut name = base.to_string();
    if taken.contains(&name.to_lowercase()) {
        name = format!("{base} ({})", b.id);
        warnings.push(format!(
            "{label}: another backup of the same origin has this name; imported as {name:?}"
        ));
    }
    taken.insert(name.to_lowercase());
    name
}

/// `include[]` without exact duplicates, in order.
fn source_paths(b: &Backup, label: &str, warnings: &mut Vec<String>) -> Vec<String> {
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
    source_paths
}

/// `relica.destinations` of a job: the non-secret facts of each destination and when the
/// backup last reached it.
fn destinations_metadata(b: &Backup, ctx: &JobContext<'_>) -> Vec<Value> {
    let done = ctx.doc.last_backups_done.get(&b.id);
    b.destinations
        .iter()
        .map(|d| {
            let info = ctx.dest_by_id.get(d);
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
        .collect()
}

/// The warnings about the plan as a whole: destinations are only recorded, and only the
/// machine the file was written on has times and history.
fn summary_warnings(
    doc: &RelicaDocument,
    jobs: &[PlannedJob],
    origin_by_id: &HashMap<Uuid, &Origin>,
    warnings: &mut Vec<String>,
) {
    if jobs.iter().any(|j| {
        j.metadata["relica"]["destinations"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    }) {
        warnings.push(
            "Relica destinations are recorded in the jobs' metadata (relica.destinations) only \
             (Relica's cache names a destination's base path, not where each backup's \
             repository lies below it); restic-fleet backs up every job to the repository \
             repository_url gives it (one shared URL, or a template such as \
             sftp:host:/base/{device_id})"
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
}
