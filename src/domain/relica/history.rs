//! The run history of an import: `local.recent_tasks` of the planned jobs as `runs` rows, each
//! with a stable Relica task id so a re-import never adds a task twice.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use uuid::Uuid;

use super::document::{RelicaDocument, Task};
use super::metadata::{rfc3339, scrub_secrets};
use super::planned::{PlannedJob, PlannedRun};

/// The runs of the planned `jobs` from `local.recent_tasks`, in file order; tasks of other
/// backups, tasks that are no backup, without a begin time, with an unknown status or given
/// twice are left out (with a warning unless their backup is merely not selected). Last, a
/// warning for each `local.last_backups_done` entry of an unknown backup.
pub(super) fn plan_history(
    doc: &RelicaDocument,
    jobs: &[PlannedJob],
    warnings: &mut Vec<String>,
) -> Vec<PlannedRun> {
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
        if let Some(run) = plan_run(t, job, &p, &mut seen_tasks, warnings) {
            history.push(run);
        }
    }
    for bid in doc.last_backups_done.keys() {
        if !known_backups.contains(bid) {
            warnings.push(format!(
                "local.last_backups_done[{:?}]: not among read_only.backups; ignored",
                bid.to_string()
            ));
        }
    }
    history
}

/// The run of task `t` (at path `p`) of `job`, or `None` with a warning saying why it is left
/// out; `seen_tasks` holds the task ids already planned.
fn plan_run(
    t: &Task,
    job: &PlannedJob,
    p: &str,
    seen_tasks: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) -> Option<PlannedRun> {
    if t.task.as_deref().is_some_and(|k| k != "backup") {
        warnings.push(format!(
            "{p}: task {:?} is not a backup; skipped",
            t.task.as_deref().unwrap_or_default()
        ));
        return None;
    }
    let Some(begin) = t.begin else {
        warnings.push(format!("{p}: no begin time; skipped"));
        return None;
    };
    let (status, error_message) = run_status(t, p, warnings)?;
    let relica_task_id = match t.id {
        Some(id) => id.to_string(),
        None => format!("{}@{}", t.backup_id, rfc3339(&begin)),
    };
    if !seen_tasks.insert(relica_task_id.clone()) {
        warnings.push(format!(
            "{p}: task {relica_task_id} appears twice; kept the first"
        ));
        return None;
    }
    let mut metadata = json!({
        "source": "relica",
        "relica_task_id": relica_task_id,
        "relica_destination_id": t.destination_id,
        "relica_task": t.task,
        "relica_status": t.status,
    });
    scrub_secrets(&mut metadata);
    Some(PlannedRun {
        job_id: job.id,
        device_id: job.device_id.clone(),
        status: status.to_owned(),
        start_time: begin,
        end_time: t.end,
        duration_seconds: t.end.map(|e| (e - begin).num_seconds()),
        error_message,
        relica_task_id,
        metadata,
    })
}

/// The run status and error message of a task's Relica status, or `None` (with a warning) for
/// a status we do not know.
fn run_status(
    t: &Task,
    p: &str,
    warnings: &mut Vec<String>,
) -> Option<(&'static str, Option<String>)> {
    match t.status.as_str() {
        "success" => Some(("success", None)),
        "error" => Some((
            "failed",
            Some(
                t.error_message
                    .clone()
                    .unwrap_or_else(|| "Relica reported an error without a message".into()),
            ),
        )),
        "canceled" | "cancelled" => Some(("cancelled", t.error_message.clone())),
        other => {
            warnings.push(format!(
                "{p}: unknown status {other:?} (expected success or error); skipped"
            ));
            None
        }
    }
}
