//! What every scheduler backend does the same way: the [`Backend`] trait (render, list what is
//! installed, apply changes, start a catch-up run), the [`Artifact`]s it installs, and the
//! comparison of desired and installed artifacts into [`Changes`].

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::domain::settings::Settings;
use crate::platform::scheduler::catch_up::{self, CatchUp};
use crate::platform::scheduler::names;
use crate::platform::scheduler::plan::Plan;
use crate::platform::scheduler::report::{Item, Report};

/// One installable unit of a backend: a job's timer+service pair, a task XML, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Stable name derived from the job UUID (e.g. `restic-fleet-job-<uuid>`).
    pub name: String,
    pub job_id: Option<Uuid>,
    /// Human label (the job name) for reports.
    pub label: String,
    /// File name -> exact content.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Artifact {
    /// The artifact as the report lists it.
    pub fn item(&self) -> Item {
        Item {
            name: self.name.clone(),
            job_id: self.job_id,
            job_name: (!self.label.is_empty()).then(|| self.label.clone()),
            files: self.files.keys().cloned().collect(),
        }
    }
}

/// What reconciling desired and installed artifacts asks for.
#[derive(Debug, Default)]
pub struct Changes {
    pub add: Vec<Artifact>,
    pub update: Vec<Artifact>,
    /// Installed artifacts nothing in the database wants any more.
    pub remove: Vec<Artifact>,
    pub unchanged: Vec<Artifact>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// Compares by name and exact file contents.
pub fn reconcile(desired: Vec<Artifact>, installed: Vec<Artifact>) -> Changes {
    let mut installed: BTreeMap<String, Artifact> =
        installed.into_iter().map(|a| (a.name.clone(), a)).collect();
    let mut changes = Changes::default();
    for want in desired {
        match installed.remove(&want.name) {
            None => changes.add.push(want),
            Some(have) if have.files == want.files => changes.unchanged.push(want),
            Some(_) => changes.update.push(want),
        }
    }
    changes.remove = installed.into_values().collect();
    changes
}

/// A scheduler backend.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Reads backend-specific settings and paths once the plan is known (default: nothing).
    fn configure(&mut self, _settings: &Settings, _plan: &Plan) -> anyhow::Result<()> {
        Ok(())
    }
    /// The artifacts the plan asks for.
    fn render(&self, plan: &Plan) -> anyhow::Result<Vec<Artifact>>;
    /// The managed artifacts installed now.
    fn installed(&self) -> anyhow::Result<Vec<Artifact>>;
    /// Installs, updates and removes; records commands, warnings and failures in `report`.
    fn apply(&mut self, changes: &Changes, report: &mut Report) -> anyhow::Result<()>;
    /// Starts a catch-up run of `job` through the OS scheduler (see [`catch_up`]), so that it
    /// has the job's environment and conditions; the default starts it directly.
    fn start_catch_up(
        &mut self,
        plan: &Plan,
        job: Uuid,
        _wait: bool,
        _report: &mut Report,
    ) -> Result<CatchUp, String> {
        catch_up::spawn_direct(plan, job).map_err(|e| e.to_string())
    }
}

/// Brings what `backend` has installed in step with `plan`, and lists in `report` what was
/// added, updated, removed and left unchanged. With `keep_maintenance` (the maintenance
/// schedule could not be read), the installed maintenance timer/task is not removed: removing
/// it would stop maintenance altogether.
pub fn install(
    backend: &mut dyn Backend,
    settings: &Settings,
    plan: &Plan,
    keep_maintenance: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    backend.configure(settings, plan)?;
    let desired = backend.render(plan)?;
    let installed = backend.installed()?;
    let mut changes = reconcile(desired, installed);
    if keep_maintenance {
        changes.remove.retain(|a| a.name != names::MAINTENANCE);
    }
    backend.apply(&changes, report)?;
    // An item the backend could not apply is listed under failed only.
    let failed: Vec<String> = report.failed.iter().map(|f| f.item.clone()).collect();
    let done = |a: &&Artifact| !failed.contains(&a.name);
    report.added = changes
        .add
        .iter()
        .filter(done)
        .map(Artifact::item)
        .collect();
    report.updated = changes
        .update
        .iter()
        .filter(done)
        .map(Artifact::item)
        .collect();
    report.removed = changes
        .remove
        .iter()
        .filter(done)
        .map(Artifact::item)
        .collect();
    report.unchanged = changes.unchanged.iter().map(Artifact::item).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_compares_names_and_contents() {
        let a = |name: &str, body: &str| Artifact {
            name: name.into(),
            job_id: None,
            label: String::new(),
            files: BTreeMap::from([(format!("{name}.timer"), body.as_bytes().to_vec())]),
        };
        let c = reconcile(
            vec![a("x", "1"), a("y", "2"), a("z", "3")],
            vec![a("x", "1"), a("y", "old"), a("gone", "0")],
        );
        assert_eq!(
            c.unchanged
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["x"]
        );
        assert_eq!(
            c.update.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["y"]
        );
        assert_eq!(
            c.add.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["z"]
        );
        assert_eq!(
            c.remove.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["gone"]
        );
    }
}
