//! The Relica import of `relica-migrate` inside its transaction: settings, devices, jobs with
//! their schedules, and the run history, each row's fate recorded in the [`Report`]. A row an
//! admin edited since the last import is skipped (naming the fields) unless `--overwrite`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::calendar::{CronExpr, Schedule};
use crate::domain::relica::{self, ImportPlan, PlannedDevice, PlannedJob, PlannedSchedule};
use crate::store;

/// The `--json` report. Field names are stable:
///
/// * `dry_run` (bool: nothing was written), `file`, `database_url` (password masked),
///   `import_history`, `overwrite`.
/// * `devices`, `jobs`, `schedules`, `runs`: a [`Section`] each.
/// * `settings`: `[{key, action}]` for `repository_url` / `repository_password` (values never
///   shown).
/// * `warnings`: every warning of the plan (sentences naming the Relica element).
/// * `notes`: further sentences, always including [`HOOKS_NOTE`].
/// * `enrolment`: `[{device_id, device_name, command}]`, the `restic-fleet device enroll` line
///   that gives each machine its own database login (it prints the `restic-fleet init` line to
///   run on that machine). Rejected devices have none.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub file: String,
    pub database_url: String,
    pub import_history: bool,
    pub overwrite: bool,
    pub devices: Section,
    pub jobs: Section,
    pub schedules: Section,
    pub runs: Section,
    pub settings: Vec<SettingChange>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub enrolment: Vec<Enrolment>,
}

/// Counts per action and one item per row considered. `deleted` is only used for schedules
/// (Relica schedules of a job that the file no longer has).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub deleted: usize,
    pub items: Vec<Item>,
}

/// One row: `action` (`created`, `updated`, `unchanged`, `skipped`, `deleted`), `id` (device id,
/// job UUID, schedule row id, or Relica task id for runs; `null` for a schedule not written),
/// `name` (device or job name), `device_id`, `job_id`, `cron_expression` (schedules),
/// `fields` (the fields changed, or for a skipped row the fields edited in the database) and
/// `reason` (why it was skipped).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub action: Action,
    pub id: Option<String>,
    pub name: Option<String>,
    pub device_id: Option<String>,
    pub job_id: Option<Uuid>,
    pub cron_expression: Option<String>,
    pub fields: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Deleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
            Action::Deleted => "deleted",
        }
    }
}

impl Item {
    fn new(action: Action) -> Item {
        Item {
            action,
            id: None,
            name: None,
            device_id: None,
            job_id: None,
            cron_expression: None,
            fields: Vec::new(),
            reason: None,
        }
    }
}

impl Section {
    fn push(&mut self, item: Item) {
        match item.action {
            Action::Created => self.created += 1,
            Action::Updated => self.updated += 1,
            Action::Unchanged => self.unchanged += 1,
            Action::Skipped => self.skipped += 1,
            Action::Deleted => self.deleted += 1,
        }
        self.items.push(item);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingChange {
    pub key: String,
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub device_id: String,
    pub device_name: String,
    pub command: String,
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Import (inside the transaction)
// ---------------------------------------------------------------------------------------------

/// What every step of the import works with.
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// `--overwrite`: rows an admin edited since the last import are updated all the same.
    pub overwrite: bool,
    /// `--import-history`: Relica's recent tasks become `runs` rows.
    pub import_history: bool,
    /// `--repository-url`, stored as the global setting when given.
    pub repository_url: Option<String>,
    /// Each planned device's time zone (for `next_run_at`).
    pub zones: HashMap<String, chrono_tz::Tz>,
    /// Each planned schedule's cron line, parsed.
    pub crons: HashMap<String, CronExpr>,
}

/// Writes the plan: settings, devices, jobs with their schedules, and the run history when
/// asked for, recording each row's fate in the report.
pub async fn import(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    password: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    import_settings(conn, ctx, password, &mut report.settings).await?;
    let rejected_devices = import_devices(conn, ctx, plan, &mut report.devices).await?;
    let present_jobs = import_jobs(conn, ctx, plan, &rejected_devices, report).await?;
    if ctx.import_history {
        import_runs(conn, plan, &present_jobs, &mut report.runs).await?;
    }
    Ok(())
}

/// `--repository-url` and `--password-file` as the global settings.
async fn import_settings(
    conn: &mut PgConnection,
    ctx: &Ctx,
    password: Option<&str>,
    settings: &mut Vec<SettingChange>,
) -> anyhow::Result<()> {
    if let Some(url) = &ctx.repository_url {
        let action = set_global(conn, "repository_url", url.trim()).await?;
        settings.push(SettingChange {
            key: "repository_url".into(),
            action,
        });
    }
    if let Some(pw) = password {
        let action = set_global(conn, "repository_password", pw).await?;
        settings.push(SettingChange {
            key: "repository_password".into(),
            action,
        });
    }
    Ok(())
}

/// The devices. The CLI's validation applies to imported rows too: a device it would refuse is
/// reported as skipped ("rejected: ...") and not stored. Returns, per rejected device id, why
/// its jobs are skipped.
async fn import_devices(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    section: &mut Section,
) -> anyhow::Result<HashMap<String, String>> {
    let mut rejected = HashMap::new();
    for d in &plan.devices {
        if let Some(reason) = rejected_device(d) {
            let mut item = Item::new(Action::Skipped);
            item.id = Some(d.id.clone());
            item.name = Some(d.name.clone());
            item.device_id = Some(d.id.clone());
            item.reason = Some(format!("rejected: {reason}"));
            rejected.insert(d.id.clone(), format!("its device {:?} was rejected", d.id));
            section.push(item);
            continue;
        }
        let item = import_device(conn, ctx, d).await?;
        section.push(item);
    }
    Ok(rejected)
}

/// What the database holds for the planned jobs, read in three statements before any job is
/// written (one per job each would be three round trips per job), and kept current as jobs
/// are written; new jobs wait here to be inserted together.
struct Known {
    jobs: HashMap<Uuid, store::import::ImportedJob>,
    /// Who holds each planned (device, name): job id and whether an import created it.
    names: HashMap<(String, String), (Uuid, bool)>,
    schedules: HashMap<Uuid, Vec<store::import::RelicaSchedule>>,
    new_jobs: Vec<(usize, Value)>,
}

impl Known {
    async fn read(conn: &mut PgConnection, plan: &ImportPlan) -> anyhow::Result<Known> {
        let ids: Vec<Uuid> = plan.jobs.iter().map(|j| j.id).collect();
        let jobs = store::import::jobs_for_update(conn, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r.job))
            .collect();
        let (devices, names): (Vec<String>, Vec<String>) = plan
            .jobs
            .iter()
            .map(|j| (j.device_id.clone(), j.name.clone()))
            .unzip();
        let names = store::import::name_holders(conn, &devices, &names)
            .await?
            .into_iter()
            .map(|(d, n, id, imported)| ((d, n), (id, imported)))
            .collect();
        let mut schedules: HashMap<Uuid, Vec<_>> = HashMap::new();
        for s in store::import::relica_schedules_of(conn, &ids).await? {
            schedules.entry(s.job_id).or_default().push(s);
        }
        Ok(Known {
            jobs,
            names,
            schedules,
            new_jobs: Vec::new(),
        })
    }

    /// Another job than `j` that holds `j`'s name on its device.
    fn name_holder(&self, j: &PlannedJob) -> Option<(Uuid, bool)> {
        self.names
            .get(&(j.device_id.clone(), j.name.clone()))
            .copied()
            .filter(|(id, _)| *id != j.id)
    }

    /// `j` now holds its name (and no longer the one it had).
    fn took_name(&mut self, j: &PlannedJob) {
        if let Some(old) = self.jobs.get(&j.id) {
            let key = (old.device_id.clone(), old.name.clone());
            if self.names.get(&key).is_some_and(|(id, _)| *id == j.id) {
                self.names.remove(&key);
            }
        }
        self.names
            .insert((j.device_id.clone(), j.name.clone()), (j.id, true));
    }
}

/// The jobs, each with its schedules unless it was skipped (then its schedules are reported
/// skipped too). A job the CLI would refuse, or whose device was rejected, is not stored.
/// Returns the jobs that exist afterwards: only their runs can be imported.
async fn import_jobs(
    conn: &mut PgConnection,
    ctx: &Ctx,
    plan: &ImportPlan,
    rejected_devices: &HashMap<String, String>,
    report: &mut Report,
) -> anyhow::Result<HashSet<Uuid>> {
    let mut known = Known::read(conn, plan).await?;
    let mut present_jobs: HashSet<Uuid> = HashSet::new();
    let mut outcomes = Vec::with_capacity(plan.jobs.len());
    for (index, j) in plan.jobs.iter().enumerate() {
        let platform = plan
            .devices
            .iter()
            .find(|d| d.id == j.device_id)
            .map_or("linux", |d| d.platform.as_str());
        let rejection = match rejected_devices.get(j.device_id.as_str()) {
            Some(r) => Some(r.clone()),
            None => rejected_job(j, platform),
        };
        let (item, exists, write_schedules) = match rejection {
            Some(reason) => {
                let mut it = job_item(Action::Skipped, j);
                it.reason = Some(format!("rejected: {reason}"));
                (it, known.jobs.contains_key(&j.id), false)
            }
            None => import_job(conn, ctx, j, index, &mut known).await?,
        };
        outcomes.push((item.reason.clone(), write_schedules));
        report.jobs.push(item);
        if exists {
            present_jobs.insert(j.id);
        }
    }
    let (indexes, metas): (Vec<usize>, Vec<Value>) =
        std::mem::take(&mut known.new_jobs).into_iter().unzip();
    let new_jobs: Vec<&PlannedJob> = indexes.iter().map(|i| &plan.jobs[*i]).collect();
    store::import::insert_jobs(conn, &new_jobs, metas).await?;
    let mut new_schedules = NewSchedules::default();
    for (j, (skip_reason, write_schedules)) in plan.jobs.iter().zip(outcomes) {
        let existing = known.schedules.remove(&j.id).unwrap_or_default();
        if write_schedules {
            let section = &mut report.schedules;
            import_schedules(conn, ctx, j, existing, section, &mut new_schedules).await?;
            continue;
        }
        for s in &j.schedules {
            let mut it = schedule_item(Action::Skipped, j, Some(s.cron_expression.clone()));
            it.reason = Some(format!(
                "its job was skipped: {}",
                skip_reason.as_deref().unwrap_or("see the job")
            ));
            report.schedules.push(it);
        }
    }
    new_schedules.insert(conn, &mut report.schedules).await?;
    Ok(present_jobs)
}

/// Schedules to create, inserted together once every job is written, and the report items
/// (by index) that get their ids.
#[derive(Default)]
struct NewSchedules {
    rows: Vec<store::import::NewSchedule>,
    items: Vec<usize>,
}

impl NewSchedules {
    async fn insert(self, conn: &mut PgConnection, section: &mut Section) -> anyhow::Result<()> {
        for (rows, items) in self.rows.chunks(5000).zip(self.items.chunks(5000)) {
            let ids = store::import::insert_schedules(conn, rows).await?;
            for (id, item) in ids.into_iter().zip(items) {
                section.items[*item].id = Some(id.to_string());
            }
        }
        Ok(())
    }
}

fn rejected_device(d: &PlannedDevice) -> Option<String> {
    crate::domain::device::validate_device_name(&d.name)
        .err()
        .map(|e| e.to_string())
}

/// Why the CLI would refuse this job (`job add`'s checks: name, absolute paths for the
/// platform, exclude patterns), if it would. Relica backups carry no restic arguments, so there
/// are none to check against [`crate::domain::restic::args`].
fn rejected_job(j: &PlannedJob, platform: &str) -> Option<String> {
    use crate::domain::job;
    job::validate_name(&j.name)
        .and_then(|_| job::validate_paths(&j.source_paths, platform))
        .and_then(|_| job::validate_excludes(&j.exclude_patterns))
        .err()
        .map(|e| e.to_string())
}

/// A report item about job `j`.
fn job_item(action: Action, j: &PlannedJob) -> Item {
    let mut item = Item::new(action);
    item.id = Some(j.id.to_string());
    item.job_id = Some(j.id);
    item.name = Some(j.name.clone());
    item.device_id = Some(j.device_id.clone());
    item
}

/// A report item about a schedule (`cron`) of job `j`.
fn schedule_item(action: Action, j: &PlannedJob, cron: Option<String>) -> Item {
    let mut item = Item::new(action);
    item.job_id = Some(j.id);
    item.name = Some(j.name.clone());
    item.device_id = Some(j.device_id.clone());
    item.cron_expression = cron;
    item
}

async fn set_global(conn: &mut PgConnection, key: &str, value: &str) -> anyhow::Result<Action> {
    let current = store::import::global_setting(conn, key).await?;
    let action = match current.as_deref() {
        Some(v) if v == value => return Ok(Action::Unchanged),
        Some(_) => Action::Updated,
        None => Action::Created,
    };
    store::import::set_global_setting(conn, key, value).await?;
    Ok(action)
}

// ---- fingerprints ----

/// 64-bit FNV-1a of the canonical JSON (object keys sorted, as serde_json's map keeps them).
fn field_hash(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What to do with an existing row, given its imported fields now (`current`), the file's
/// (`planned`) and the hashes the last import stored (`stamp`).
enum Decision {
    Unchanged,
    Update(Vec<String>),
    Skip(Vec<String>),
}

fn decide(
    current: &Map<String, Value>,
    planned: &Map<String, Value>,
    stamp: Option<&Map<String, Value>>,
    overwrite: bool,
) -> Decision {
    let differing: Vec<String> = planned
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    if differing.is_empty() {
        return Decision::Unchanged;
    }
    let edited: Vec<String> = match stamp {
        None => current.keys().cloned().collect(),
        Some(stamp) => current
            .iter()
            .filter(|(k, v)| match stamp.get(*k) {
                Some(h) => h.as_str() != Some(&field_hash(v)),
                // A field newer than the stamp (hooks) is no edit while it holds its default:
                // the row was imported before the field existed.
                None => k.as_str() != "hooks" || **v != hooks_field(&None, &None, "stop"),
            })
            .map(|(k, _)| k.clone())
            .collect(),
    };
    if edited.is_empty() || overwrite {
        Decision::Update(differing)
    } else {
        Decision::Skip(edited)
    }
}

fn stamp_of(metadata: &Option<Value>) -> Option<&Map<String, Value>> {
    metadata
        .as_ref()?
        .get("relica_import")?
        .get("fields")?
        .as_object()
}

/// Whether the stamp holds the hashes of exactly the planned values (the last import wrote
/// this file's values).
fn stamp_is_fresh(stamp: Option<&Map<String, Value>>, planned: &Map<String, Value>) -> bool {
    stamp.is_some_and(|s| {
        planned
            .iter()
            .all(|(k, v)| s.get(k).and_then(Value::as_str) == Some(&field_hash(v)))
    })
}

fn new_stamp(now: DateTime<Utc>, planned: &Map<String, Value>) -> Value {
    let fields: Map<String, Value> = planned
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(field_hash(v))))
        .collect();
    json!({
        "imported_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "fields": fields,
    })
}

fn to_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---- devices ----

/// Creates the device, or updates it when the file changed and the row was not edited since
/// the last import (or `--overwrite`).
async fn import_device(
    conn: &mut PgConnection,
    ctx: &Ctx,
    d: &PlannedDevice,
) -> anyhow::Result<Item> {
    let planned = to_map(json!({"name": d.name, "platform": d.platform}));
    let relica = d.metadata.get("relica").cloned().unwrap_or(Value::Null);
    let new_meta = || json!({"relica": relica, "relica_import": new_stamp(ctx.now, &planned)});
    let mut item = Item::new(Action::Created);
    item.id = Some(d.id.clone());
    item.name = Some(d.name.clone());
    item.device_id = Some(d.id.clone());

    let Some(row) = store::import::device_for_update(conn, &d.id).await? else {
        store::import::insert_device(conn, d, new_meta()).await?;
        return Ok(item);
    };
    let current = to_map(json!({"name": row.name, "platform": row.platform}));
    let old_relica = row
        .metadata
        .as_ref()
        .and_then(|m| m.get("relica"))
        .cloned()
        .unwrap_or(Value::Null);
    let stamp = stamp_of(&row.metadata);
    let stamp_fresh = stamp_is_fresh(stamp, &planned);
    let mut fields = match decide(&current, &planned, stamp, ctx.overwrite) {
        Decision::Skip(edited) => {
            item.action = Action::Skipped;
            item.reason = Some(device_skip_reason(d, &row, stamp.is_none(), &edited));
            item.fields = edited;
            return Ok(item);
        }
        Decision::Unchanged => Vec::new(),
        Decision::Update(f) => f,
    };
    if old_relica != relica {
        fields.push("metadata.relica".into());
    }
    if fields.is_empty() && stamp_fresh {
        item.action = Action::Unchanged;
        return Ok(item);
    }
    store::import::update_device(conn, d, new_meta()).await?;
    item.action = if fields.is_empty() {
        Action::Unchanged
    } else {
        Action::Updated
    };
    item.fields = fields;
    Ok(item)
}

/// Why an existing device is kept as is: it was never imported, or it was `edited` since.
fn device_skip_reason(
    d: &PlannedDevice,
    row: &store::import::ImportedDevice,
    never_imported: bool,
    edited: &[String],
) -> String {
    if never_imported {
        format!(
            "device {:?} already exists (name {:?}, platform {}) and was not \
             created by a Relica import; kept as is (--overwrite sets name {:?} and \
             platform {})",
            d.id, row.name, row.platform, d.name, d.platform
        )
    } else {
        format!(
            "edited in the database since the last import ({}); kept as is \
             (--overwrite replaces it)",
            edited.join(", ")
        )
    }
}

// ---- jobs ----

/// The `schedules` fingerprint field: sorted `"<cron>|<enabled>"` lines.
fn schedule_lines<'a>(it: impl Iterator<Item = (&'a str, bool)>) -> Value {
    let mut v: Vec<String> = it.map(|(c, e)| format!("{c}|{e}")).collect();
    v.sort();
    json!(v)
}

fn planned_job_fields(j: &PlannedJob) -> Map<String, Value> {
    to_map(json!({
        "device_id": j.device_id,
        "name": j.name,
        "source_paths": j.source_paths,
        "exclude_patterns": j.exclude_patterns,
        "enabled": j.enabled,
        "origin_name": j.origin_name,
        "origin_id": j.origin_id,
        "account_id": j.account_id,
        "relica": j.metadata.get("relica").cloned().unwrap_or(Value::Null),
        "schedules": schedule_lines(j.schedules.iter().map(|s| (s.cron_expression.as_str(), true))),
        "hooks": hooks_field(&j.hooks.before, &j.hooks.finally, &j.hooks.before_on_error),
    }))
}

/// The imported fields of an existing job row and its Relica schedules, as
/// [`planned_job_fields`] writes them for the plan.
fn current_job_fields(
    row: &store::import::ImportedJob,
    scheds: &[store::import::RelicaSchedule],
) -> Map<String, Value> {
    to_map(json!({
        "device_id": row.device_id,
        "name": row.name,
        "source_paths": row.source_paths,
        "exclude_patterns": row.exclude_patterns.clone().unwrap_or_default(),
        "enabled": row.enabled,
        "origin_name": row.origin_name,
        "origin_id": row.origin_id,
        "account_id": row.account_id,
        "relica": row.metadata.as_ref().and_then(|m| m.get("relica")).cloned().unwrap_or(Value::Null),
        "schedules": schedule_lines(scheds.iter().map(|s| (s.cron_expression.as_deref().unwrap_or(""), s.enabled))),
        "hooks": hooks_field(&row.hook_before, &row.hook_finally, &row.hook_before_on_error),
    }))
}

/// The imported hook columns as one change-detected field.
fn hooks_field(before: &Option<String>, finally: &Option<String>, on_error: &str) -> Value {
    json!({"before": before, "finally": finally, "before_on_error": on_error})
}

/// Returns the report item, whether the job row exists afterwards, and whether its schedules
/// are to be written.
async fn import_job(
    conn: &mut PgConnection,
    ctx: &Ctx,
    j: &PlannedJob,
    index: usize,
    known: &mut Known,
) -> anyhow::Result<(Item, bool, bool)> {
    let planned = planned_job_fields(j);
    let mut item = job_item(Action::Created, j);
    let name_taken = known.name_holder(j).map(|holder| name_taken(j, holder));
    let new_meta = json!({
        "relica": planned["relica"],
        "relica_import": new_stamp(ctx.now, &planned),
    });

    let Some(row) = known.jobs.get(&j.id) else {
        if let Some(reason) = name_taken {
            item.action = Action::Skipped;
            item.fields = vec!["name".into()];
            item.reason = Some(reason);
            return Ok((item, false, false));
        }
        known.took_name(j);
        known.new_jobs.push((index, new_meta));
        return Ok((item, true, true));
    };

    let scheds = known.schedules.get(&j.id).map_or(&[][..], Vec::as_slice);
    let current = current_job_fields(row, scheds);
    let stamp = stamp_of(&row.metadata);
    match decide(&current, &planned, stamp, ctx.overwrite) {
        Decision::Skip(edited) => {
            item.action = Action::Skipped;
            item.reason = Some(job_skip_reason(j, row, stamp.is_none(), &edited));
            item.fields = edited;
            Ok((item, true, false))
        }
        Decision::Unchanged => {
            item.action = Action::Unchanged;
            if !stamp_is_fresh(stamp, &planned) {
                // Same values, but not (or not recently) stamped: adopt the row.
                store::import::merge_job_metadata(conn, j.id, new_meta).await?;
            }
            Ok((item, true, true))
        }
        Decision::Update(fields) => {
            if let Some(reason) =
                name_taken.filter(|_| fields.iter().any(|f| f == "name" || f == "device_id"))
            {
                item.action = Action::Skipped;
                item.fields = vec!["name".into()];
                item.reason = Some(reason);
                return Ok((item, true, false));
            }
            store::import::write_job(conn, j, new_meta).await?;
            known.took_name(j);
            item.action = Action::Updated;
            item.fields = fields;
            Ok((item, true, true))
        }
    }
}

/// Why the job cannot have its name: the name must be free on the device
/// (UNIQUE (device_id, name)), and another job holds it.
fn name_taken(j: &PlannedJob, (other, imported): (Uuid, bool)) -> String {
    format!(
        "device {:?} already has another job named {:?} (id {other}, {}); rename that job or \
             the Relica backup and re-run",
        j.device_id,
        j.name,
        if imported {
            "imported from another Relica backup"
        } else {
            "not from Relica"
        }
    )
}

/// Why an existing job is kept as is: it was never imported, or it was `edited` since.
fn job_skip_reason(
    j: &PlannedJob,
    row: &store::import::ImportedJob,
    never_imported: bool,
    edited: &[String],
) -> String {
    if never_imported {
        format!(
            "job {} already exists (device {:?}, name {:?}) and was not created by a \
             Relica import; kept as is (--overwrite replaces it with the Relica backup)",
            j.id, row.device_id, row.name
        )
    } else {
        format!(
            "edited in the database since the last import ({}); kept as is \
             (--overwrite replaces it with the Relica backup)",
            edited.join(", ")
        )
    }
}

// ---- schedules ----

/// The clock of one job's schedules: its device's time zone, now, and the last run the file
/// knows of.
struct JobClock {
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    planned_last: Option<DateTime<Utc>>,
}

impl JobClock {
    fn next_run(&self, sched: &Schedule, last: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        crate::domain::schedule::next_run(sched, last, self.now, &self.tz)
    }
}

/// Writes the job's Relica schedules: an existing row with the same cron line is kept (and
/// refreshed), a new line is inserted, a row whose line the file no longer has is deleted.
/// Schedules a user added to the job are not touched.
async fn import_schedules(
    conn: &mut PgConnection,
    ctx: &Ctx,
    j: &PlannedJob,
    existing: Vec<store::import::RelicaSchedule>,
    section: &mut Section,
    new_schedules: &mut NewSchedules,
) -> anyhow::Result<()> {
    let clock = JobClock {
        tz: ctx
            .zones
            .get(&j.device_id)
            .copied()
            .unwrap_or(chrono_tz::UTC),
        now: ctx.now,
        // PostgreSQL keeps microseconds (sqlx truncates); compare at that precision.
        planned_last: j.last_run_at.map(|t| t.trunc_subsecs(6)),
    };
    let mut used: HashSet<i32> = HashSet::new();
    for s in &j.schedules {
        let mut item = schedule_item(Action::Created, j, Some(s.cron_expression.clone()));
        let expr =
            ctx.crons.get(&s.cron_expression).cloned().ok_or_else(|| {
                anyhow::anyhow!("cron line {:?} was not checked", s.cron_expression)
            })?;
        let sched = Schedule::Cron(expr);
        let found = existing.iter().find(|e| {
            !used.contains(&e.id) && e.cron_expression.as_deref() == Some(&s.cron_expression)
        });
        match found {
            None => {
                new_schedules.items.push(section.items.len());
                new_schedules.rows.push(store::import::NewSchedule {
                    job_id: j.id,
                    cron_expression: s.cron_expression.clone(),
                    last_run_at: clock.planned_last,
                    next_run_at: clock.next_run(&sched, clock.planned_last),
                    metadata: s.metadata.clone(),
                });
            }
            Some(e) => {
                used.insert(e.id);
                item.id = Some(e.id.to_string());
                refresh_schedule(conn, &clock, &sched, e, s, &mut item).await?;
            }
        }
        section.push(item);
    }
    for e in existing.iter().filter(|e| !used.contains(&e.id)) {
        store::import::delete_schedule(conn, e.id).await?;
        let mut item = schedule_item(Action::Deleted, j, e.cron_expression.clone());
        item.id = Some(e.id.to_string());
        item.reason = Some("no longer in the Relica schedule".into());
        section.push(item);
    }
    Ok(())
}

/// Brings an existing Relica schedule `e` in line with the planned `s` (metadata, last run,
/// enabled, next run) and records in `item` what changed.
async fn refresh_schedule(
    conn: &mut PgConnection,
    clock: &JobClock,
    sched: &Schedule,
    e: &store::import::RelicaSchedule,
    s: &PlannedSchedule,
    item: &mut Item,
) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    if e.metadata.as_ref() != Some(&s.metadata) {
        fields.push("metadata".to_owned());
    }
    // last_run_at never moves backwards (restic-fleet may have run the job since).
    let last = match (e.last_run_at, clock.planned_last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if last != e.last_run_at {
        fields.push("last_run_at".to_owned());
    }
    // Relica's schedule is active: one disabled here is enabled again (this branch
    // runs for a job edited here only under --overwrite).
    if !e.enabled {
        fields.push("enabled".to_owned());
    }
    let next =
        if fields.iter().any(|f| f == "last_run_at" || f == "enabled") || e.next_run_at.is_none() {
            clock.next_run(sched, last)
        } else {
            e.next_run_at
        };
    if fields.is_empty() && next == e.next_run_at {
        item.action = Action::Unchanged;
        return Ok(());
    }
    store::import::update_schedule(conn, e.id, &s.metadata, last, next).await?;
    if e.next_run_at.is_none() && next.is_some() {
        fields.push("next_run_at".to_owned());
    }
    item.action = Action::Updated;
    item.fields = fields;
    Ok(())
}

// ---- runs ----

/// The planned runs whose Relica task is not yet in `runs`; the runs of jobs that do not exist
/// (skipped, rejected) are reported skipped.
async fn import_runs(
    conn: &mut PgConnection,
    plan: &ImportPlan,
    present_jobs: &HashSet<Uuid>,
    section: &mut Section,
) -> anyhow::Result<()> {
    let keys: Vec<String> = plan
        .history
        .iter()
        .map(|r| r.relica_task_id.clone())
        .collect();
    let existing = store::import::imported_task_ids(conn, &keys).await?;
    let existing: HashSet<String> = existing.into_iter().collect();
    let mut new_runs = Vec::new();
    for r in &plan.history {
        let mut item = Item::new(Action::Created);
        item.id = Some(r.relica_task_id.clone());
        item.job_id = Some(r.job_id);
        item.device_id = Some(r.device_id.clone());
        if existing.contains(&r.relica_task_id) {
            item.action = Action::Unchanged;
        } else if !present_jobs.contains(&r.job_id) {
            item.action = Action::Skipped;
            item.reason = Some(format!("its job {} was not imported", r.job_id));
        } else {
            new_runs.push(r);
        }
        section.push(item);
    }
    // A few statements for the whole history, not one per run.
    for chunk in new_runs.chunks(5000) {
        let durations = chunk
            .iter()
            .map(|r| r.duration_seconds.and_then(|d| i32::try_from(d).ok()))
            .collect();
        store::import::insert_runs(conn, chunk, durations).await?;
    }
    Ok(())
}

// ---- retention ----

/// Stores keep-within `Nd` (N from [`relica::retention::retention_days`]) for each imported
/// job (not `skipped`) without a policy of its own; one note per job says so.
pub async fn import_retention(
    conn: &mut PgConnection,
    jobs: &[PlannedJob],
    skipped: &HashSet<Uuid>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let with_days: Vec<(&PlannedJob, i64)> = jobs
        .iter()
        .filter(|j| !skipped.contains(&j.id))
        .filter_map(|j| {
            // restic's duration counts; 1000000 days is far beyond any real retention.
            relica::retention::retention_days(&j.metadata).map(|d| (j, d.min(1_000_000)))
        })
        .collect();
    let stored: HashSet<Uuid> = store::import::insert_keep_withins(
        conn,
        with_days.iter().map(|(j, _)| j.id).collect(),
        with_days.iter().map(|(_, d)| format!("{d}d")).collect(),
    )
    .await?
    .into_iter()
    .collect();
    for (j, days) in with_days {
        notes.push(if stored.contains(&j.id) {
            format!(
                "job {:?} ({}): Relica's retention_days {days} became the retention policy \
                 keep-within {days}d (applied by the maintenance owner's `restic-fleet maintain`)",
                j.name, j.id
            )
        } else {
            format!(
                "job {:?} ({}): Relica's retention_days {days} was not applied because the job \
                 already has a retention policy",
                j.name, j.id
            )
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let planned = to_map(json!({"a": 1, "b": [1, 2]}));
        let stamp_v = new_stamp(Utc::now(), &planned);
        let stamp = stamp_v["fields"].as_object().unwrap();
        // Same values: unchanged.
        assert!(matches!(
            decide(&planned, &planned, Some(stamp), false),
            Decision::Unchanged
        ));
        // The file changed, the row is as imported: update.
        let newer = to_map(json!({"a": 2, "b": [1, 2]}));
        assert!(matches!(
            decide(&planned, &newer, Some(stamp), false),
            Decision::Update(f) if f == ["a"]
        ));
        // The row was edited: skip, naming the field, unless overwrite.
        let edited = to_map(json!({"a": 1, "b": [3]}));
        assert!(matches!(
            decide(&edited, &planned, Some(stamp), false),
            Decision::Skip(f) if f == ["b"]
        ));
        assert!(matches!(
            decide(&edited, &planned, Some(stamp), true),
            Decision::Update(f) if f == ["b"]
        ));
        // Never imported and different: skip.
        assert!(matches!(
            decide(&edited, &planned, None, false),
            Decision::Skip(_)
        ));
        assert_eq!(field_hash(&json!([1])), field_hash(&json!([1])));
        assert_ne!(field_hash(&json!([1])), field_hash(&json!([2])));
    }
}
