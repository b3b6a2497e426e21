//! The Windows backend: one Task Scheduler task per job in the folder `\restic-fleet\`, plus
//! the sync task, registered with `schtasks /Create /TN \restic-fleet\<name> /XML <file> /F`.
//!
//! * The task XML is rendered from `templates/task.xml` and written as UTF-16LE with a BOM (the
//!   form Windows itself exports). Triggers come from [`crate::domain::calendar::task_scheduler`],
//!   which also documents the daylight-saving behaviour and the single-TimeTrigger fallback (such a
//!   task is re-registered by every sync, which runs every `sync_interval_seconds`).
//! * What is installed is known from a local state folder, `tasks/` beside the config file: the
//!   XML last registered successfully, one `<name>.xml` per task. A task is re-registered only
//!   when its XML differs; tasks of deleted, disabled or moved jobs are deleted with
//!   `schtasks /Delete /TN \restic-fleet\<name> /F` (never anything outside that folder).
//! * Database values never reach the XML unescaped: the only database value in the action is
//!   the job UUID; the job name goes into `<Description>` XML-escaped, with control characters
//!   replaced; paths are XML-escaped and quoted for `CommandLineToArgvW`.
//! * Settings (defaults in migration 005): `windows_run_on_battery` (true: laptops back up on
//!   battery), `windows_wake_to_run` (false), `windows_execution_time_limit_hours` (72).
//! * Principal: SYSTEM (S-1-5-18) with highest privileges when sync runs elevated, otherwise the
//!   current user with LogonType S4U (runs while logged off, no stored password).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use minijinja::{Environment, context};

use crate::domain::calendar::task_scheduler::{self as triggers, TriggerSet};
use crate::domain::settings::Settings;
use crate::platform::scheduler::backend::{Artifact, Backend, Changes};
use crate::platform::scheduler::catch_up::{CatchUp, spawn_direct, stderr_line};
use crate::platform::scheduler::names::{
    self, CATCH_UP_TASK_PREFIX, MAINTENANCE, PREFIX, SYNC, TASK_FOLDER,
};
use crate::platform::scheduler::plan::{JobPlan, Plan};
use crate::platform::scheduler::report::Report;
/// `<Source>` of every task we write.
pub const MARKER: &str =
    "restic-fleet (restic-fleet sync regenerates this task; edits are overwritten)";
/// The dry-run file with the command lines.
pub const COMMANDS_FILE: &str = "schtasks-commands.txt";

const TASK_XML: &str = include_str!("../../../templates/task.xml");

/// Escapes text for XML element content and attributes. Characters XML 1.0 cannot carry at all
/// (control characters other than tab, newline, carriage return) become U+FFFD.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Quotes one argument so that `CommandLineToArgvW` (and the MSVC C runtime) yields it back
/// unchanged: no quotes when it has no space, tab, newline or quote; otherwise wrapped in
/// quotes, with backslashes doubled before a quote and at the end, and quotes escaped.
pub fn argv_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(backslashes));
                backslashes = 0;
                out.push(c);
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}

/// Free text for `<Description>`: one line, at most 200 characters, control and bidi
/// characters written as `U+XXXX`.
fn description_text(text: &str) -> String {
    crate::domain::text::description_line(text)
}

/// UTF-16LE with a byte-order mark.
pub fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

/// Decodes what [`utf16le`] wrote (`None` if it is not UTF-16LE with a BOM).
pub fn from_utf16le(bytes: &[u8]) -> Option<String> {
    let body = bytes.strip_prefix(&[0xFF, 0xFE])?;
    if body.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// Task settings read from the database settings.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub run_on_battery: bool,
    pub wake_to_run: bool,
    pub execution_time_limit_hours: u64,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            run_on_battery: true,
            wake_to_run: false,
            execution_time_limit_hours: 72,
        }
    }
}

impl TaskSettings {
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        Ok(TaskSettings {
            run_on_battery: s.get_bool("windows_run_on_battery", true)?,
            wake_to_run: s.get_bool("windows_wake_to_run", false)?,
            execution_time_limit_hours: s.get_u64("windows_execution_time_limit_hours", 72)?,
        })
    }
}

/// Who the tasks run as.
#[derive(Debug, Clone)]
pub enum Principal {
    /// SYSTEM with highest privileges (sync runs elevated).
    System,
    /// The current user with S4U (no stored password, runs while logged off).
    User(String),
}

impl Principal {
    /// SYSTEM when this process is elevated (root on Unix), else the current user.
    pub fn detect() -> Principal {
        if elevated() {
            Principal::System
        } else {
            Principal::User(current_user())
        }
    }
}

#[cfg(windows)]
fn elevated() -> bool {
    // High (S-1-16-12288) or System (S-1-16-16384) mandatory integrity level.
    Command::new("whoami")
        .arg("/groups")
        .output()
        .map(|o| {
            let t = String::from_utf8_lossy(&o.stdout);
            t.contains("S-1-16-12288") || t.contains("S-1-16-16384")
        })
        .unwrap_or(false)
}

#[cfg(not(windows))]
fn elevated() -> bool {
    crate::platform::scheduler::privilege::is_root()
}

fn current_user() -> String {
    let user = std::env::var("USERNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "user".to_string());
    match std::env::var("USERDOMAIN") {
        Ok(d) if !d.is_empty() => format!("{d}\\{user}"),
        _ => user,
    }
}

pub struct Windows {
    pub dry_run: bool,
    /// With `--dry-run`: where to write the XML files and [`COMMANDS_FILE`].
    pub output_dir: Option<PathBuf>,
    /// The state folder (`tasks/` beside the config file); set by `configure`.
    pub state_dir: Option<PathBuf>,
    pub settings: TaskSettings,
    pub principal: Principal,
}

impl Windows {
    pub fn new(dry_run: bool, output_dir: Option<PathBuf>) -> Self {
        Windows {
            dry_run,
            output_dir,
            state_dir: None,
            settings: TaskSettings::default(),
            principal: Principal::detect(),
        }
    }

    fn state_dir(&self) -> anyhow::Result<&Path> {
        self.state_dir
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the windows backend was not configured"))
    }

    fn task_xml(
        &self,
        plan: &Plan,
        description: &str,
        set: &TriggerSet,
        args: &[&str],
    ) -> anyhow::Result<Vec<u8>> {
        let mut words = vec![
            "--config".to_string(),
            argv_quote(&plan.config_path.to_string_lossy()),
        ];
        words.extend(args.iter().map(|a| argv_quote(a)));
        let (user_id, logon_type, run_level) = match &self.principal {
            Principal::System => ("S-1-5-18".to_string(), "", "HighestAvailable"),
            Principal::User(u) => (u.clone(), "S4U", "LeastPrivilege"),
        };
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        let battery = !self.settings.run_on_battery;
        let text = env.render_str(
            TASK_XML,
            context! {
                marker => xml_escape(MARKER),
                description => xml_escape(description),
                triggers => triggers::triggers_xml(&set.triggers, "  "),
                user_id => xml_escape(&user_id),
                logon_type => logon_type,
                run_level => run_level,
                // Strings: minijinja would print booleans as True/False.
                disallow_on_batteries => battery.to_string(),
                stop_on_batteries => battery.to_string(),
                wake_to_run => self.settings.wake_to_run.to_string(),
                execution_time_limit =>
                    triggers::duration(self.settings.execution_time_limit_hours.saturating_mul(3600)),
                command => xml_escape(&plan.binary.to_string_lossy()),
                arguments => xml_escape(&words.join(" ")),
            },
        )?;
        Ok(utf16le(&text))
    }

    fn schtasks(&self, args: &[&str], report: &mut Report) -> Result<(), String> {
        let line = command_line(args);
        let Ok(program) = which::which("schtasks") else {
            return Err("schtasks was not found".to_string());
        };
        report.commands.push(line.clone());
        match Command::new(program).args(args).output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!("`{line}` failed: {}", stderr_line(&out.stderr))),
            Err(e) => Err(format!("could not run `{line}`: {e}")),
        }
    }

    fn dry_run_output(&self, changes: &Changes) -> anyhow::Result<()> {
        let Some(dir) = &self.output_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create --output-dir {}: {e}", dir.display()))?;
        let mut lines = String::new();
        for a in &changes.remove {
            lines.push_str(&command_line(&delete_args(&a.name)));
            lines.push('\n');
        }
        for a in changes
            .add
            .iter()
            .chain(&changes.update)
            .chain(&changes.unchanged)
        {
            for (f, content) in &a.files {
                let path = dir.join(f);
                std::fs::write(&path, content)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                if !changes.unchanged.iter().any(|u| u.name == a.name) {
                    let p = path.to_string_lossy().into_owned();
                    lines.push_str(&command_line(&create_args(&a.name, &p)));
                    lines.push('\n');
                }
            }
        }
        std::fs::write(dir.join(COMMANDS_FILE), lines)?;
        Ok(())
    }

    /// A job's task, named after its UUID.
    fn job_task(&self, plan: &Plan, jp: &JobPlan) -> anyhow::Result<Artifact> {
        let name = names::job_artifact_stem(jp.job.id);
        let job_id = jp.job.id.to_string();
        let schedules: Vec<_> = jp.schedules.iter().map(|(_, s)| s.clone()).collect();
        let slots: Vec<_> = jp.schedules.iter().map(|(r, _)| r.next_run_at).collect();
        let set = triggers::job_triggers(
            &schedules,
            &slots,
            &plan.tz,
            plan.now,
            crate::domain::calendar::HORIZON_DAYS,
        );
        let description = format!(
            "restic-fleet backup {job_id} ({}){}",
            description_text(&jp.job.name),
            if set.fallback {
                "; next occurrence only, re-registered by every sync"
            } else {
                ""
            }
        );
        let xml = self.task_xml(
            plan,
            &description,
            &set,
            &["run", &job_id, "--triggered-by", "schedule"],
        )?;
        Ok(Artifact {
            name: name.clone(),
            job_id: Some(jp.job.id),
            label: jp.job.name.clone(),
            files: BTreeMap::from([(format!("{name}.xml"), xml)]),
        })
    }

    /// The sync task, repeating every `sync_interval_seconds` (at least a minute).
    fn sync_task(&self, plan: &Plan) -> anyhow::Result<Artifact> {
        let set = TriggerSet {
            triggers: triggers::interval_triggers(
                plan.sync_interval_seconds.max(60),
                triggers::fixed_anchor(),
            ),
            fallback: false,
        };
        let xml = self.task_xml(
            plan,
            &format!(
                "restic-fleet sync every {} seconds: keeps this device's backup tasks in step with the database",
                plan.sync_interval_seconds.max(60)
            ),
            &set,
            &["sync"],
        )?;
        Ok(Artifact {
            name: SYNC.to_string(),
            job_id: None,
            label: "sync".to_string(),
            files: BTreeMap::from([(format!("{SYNC}.xml"), xml)]),
        })
    }

    /// The maintenance owner's task, firing at the maintenance schedule.
    fn maintenance_task(
        &self,
        plan: &Plan,
        expr: &crate::domain::calendar::CronExpr,
    ) -> anyhow::Result<Artifact> {
        let set = triggers::job_triggers(
            &[crate::domain::calendar::Schedule::Cron(expr.clone())],
            &[None],
            &plan.tz,
            plan.now,
            crate::domain::calendar::HORIZON_DAYS,
        );
        let description = format!(
            "restic-fleet maintenance of the shared repository (forget, prune, check) at {}{}",
            description_text(expr.as_str()),
            if set.fallback {
                "; next occurrence only, re-registered by every sync"
            } else {
                ""
            }
        );
        let xml = self.task_xml(plan, &description, &set, &["maintain"])?;
        Ok(Artifact {
            name: MAINTENANCE.to_string(),
            job_id: None,
            label: "maintenance".to_string(),
            files: BTreeMap::from([(format!("{MAINTENANCE}.xml"), xml)]),
        })
    }
}

fn task_path(name: &str) -> String {
    format!("{TASK_FOLDER}{name}")
}

/// An installed task: its state copy, or (registered without one) an empty file that never
/// equals a rendered task, so sync registers it again or deletes it.
fn installed_task(name: &str, copy: Option<(String, Vec<u8>)>) -> Artifact {
    Artifact {
        name: name.to_string(),
        job_id: names::job_of(name),
        label: String::new(),
        files: BTreeMap::from([copy.unwrap_or_else(|| (format!("{name}.xml"), Vec::new()))]),
    }
}

/// The names of the tasks registered in [`TASK_FOLDER`] with our prefix, from
/// `schtasks /Query /FO CSV /NH` (its first column is the task path; task paths are not
/// localised). `None` when schtasks is missing or fails: the state copies are used alone then.
fn registered_tasks() -> Option<std::collections::BTreeSet<String>> {
    let program = which::which("schtasks").ok()?;
    let out = Command::new(program)
        .args(["/Query", "/FO", "CSV", "/NH"])
        .output()
        .ok()?;
    if !out.status.success() {
        tracing::warn!(
            "schtasks /Query failed ({}); relying on the task copies in the state folder",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(parse_task_list(&String::from_utf8_lossy(&out.stdout)))
}

/// Our task names in `schtasks /Query /FO CSV /NH` output.
fn parse_task_list(csv: &str) -> std::collections::BTreeSet<String> {
    csv.lines()
        .filter_map(|line| {
            let first = line.trim_start().strip_prefix('"')?.split('"').next()?;
            let name = first.strip_prefix(TASK_FOLDER)?;
            // One-shot catch-up tasks are not schedules (see `catch_up`): sync never deletes
            // them as leftovers.
            (name.starts_with(PREFIX)
                && !name.starts_with(CATCH_UP_TASK_PREFIX)
                && !name.contains('\\'))
            .then(|| name.to_string())
        })
        .collect()
}

fn create_args(name: &str, xml: &str) -> Vec<String> {
    vec![
        "/Create".into(),
        "/TN".into(),
        task_path(name),
        "/XML".into(),
        xml.to_string(),
        "/F".into(),
    ]
}

fn delete_args(name: &str) -> Vec<String> {
    vec!["/Delete".into(), "/TN".into(), task_path(name), "/F".into()]
}

/// The command as a Windows command line (for reports and the dry-run file).
fn command_line<S: AsRef<str>>(args: &[S]) -> String {
    let mut out = String::from("schtasks");
    for a in args {
        out.push(' ');
        out.push_str(&argv_quote(a.as_ref()));
    }
    out
}

impl Backend for Windows {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn configure(&mut self, settings: &Settings, plan: &Plan) -> anyhow::Result<()> {
        self.settings = TaskSettings::from_settings(settings)?;
        let dir = plan
            .config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        self.state_dir = Some(dir.join("tasks"));
        Ok(())
    }

    fn start_catch_up(
        &mut self,
        plan: &Plan,
        job: uuid::Uuid,
        _wait: bool,
        report: &mut Report,
    ) -> Result<CatchUp, String> {
        // A trigger-less task with the job task's settings, registered and run on demand, so
        // the run has the job's principal and conditions.
        if which::which("schtasks").is_err() {
            report.warnings.push(format!(
                "schtasks was not found: the catch-up run of job {job} was started directly"
            ));
            return spawn_direct(plan, job).map_err(|e| e.to_string());
        }
        let name = format!("{CATCH_UP_TASK_PREFIX}{job}");
        let job_id = job.to_string();
        let empty = TriggerSet {
            triggers: Vec::new(),
            fallback: false,
        };
        let xml = self
            .task_xml(
                plan,
                &format!("restic-fleet catch-up of a missed run of backup {job_id}"),
                &empty,
                &["run", &job_id, "--triggered-by", "missed"],
            )
            .map_err(|e| e.to_string())?;
        let dir = self
            .state_dir()
            .map_err(|e| e.to_string())?
            .with_file_name("catch-up");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(format!("{name}.xml"));
        std::fs::write(&file, xml).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let file = file.to_string_lossy().into_owned();
        let create = create_args(&name, &file);
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        self.schtasks(&create, report)?;
        let task = task_path(&name);
        self.schtasks(&["/Run", "/TN", &task], report)?;
        Ok(CatchUp::Scheduled)
    }

    fn render(&self, plan: &Plan) -> anyhow::Result<Vec<Artifact>> {
        let mut out = Vec::new();
        for jp in &plan.jobs {
            out.push(self.job_task(plan, jp)?);
        }
        out.push(self.sync_task(plan)?);
        // The maintenance task exists on the maintenance owner only.
        if let Some(expr) = &plan.maintenance {
            out.push(self.maintenance_task(plan, expr)?);
        }
        Ok(out)
    }

    fn installed(&self) -> anyhow::Result<Vec<Artifact>> {
        let dir = self.state_dir()?;
        // What Task Scheduler really has in our folder, when it can be asked: a task deleted by
        // hand is registered again, and one registered without a state copy is managed too.
        let registered = if self.dry_run {
            None
        } else {
            registered_tasks()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read the task state folder {}: {e}",
                    dir.display()
                ));
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".xml") else {
                continue;
            };
            if !name.starts_with(PREFIX) || !entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            {
                continue;
            }
            let Ok(content) = std::fs::read(entry.path()) else {
                continue;
            };
            if registered.as_ref().is_some_and(|r| !r.contains(name)) {
                // Deleted outside restic-fleet: forget the copy, so the task counts as absent.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            out.push(installed_task(name, Some((file.clone(), content))));
        }
        for name in registered.iter().flatten() {
            if !out.iter().any(|a| &a.name == name) {
                out.push(installed_task(name, None));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn apply(&mut self, changes: &Changes, report: &mut Report) -> anyhow::Result<()> {
        if self.dry_run {
            return self.dry_run_output(changes);
        }
        if self.output_dir.is_some() {
            report
                .warnings
                .push("--output-dir is only used with --dry-run; it was ignored".to_string());
        }
        if changes.is_empty() {
            return Ok(());
        }
        if which::which("schtasks").is_err() {
            report.warnings.push(
                "schtasks was not found: no Task Scheduler task was registered or removed (run \
                 sync on Windows, or use --dry-run --output-dir DIR to inspect the tasks)"
                    .to_string(),
            );
            return Ok(());
        }
        let dir = self.state_dir()?.to_path_buf();
        for a in &changes.remove {
            self.delete_task(&dir, a, report);
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("cannot create the task state folder {}: {e}", dir.display())
        })?;
        for a in changes.add.iter().chain(&changes.update) {
            self.register_task(&dir, a, report);
        }
        Ok(())
    }
}

impl Windows {
    /// Deletes the task (one already gone counts as deleted), then its copy in the state folder.
    fn delete_task(&self, dir: &Path, a: &Artifact, report: &mut Report) {
        let args = delete_args(&a.name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match self.schtasks(&args, report) {
            Ok(()) => {}
            Err(e) if e.contains("cannot find") || e.contains("does not exist") => {}
            Err(e) => {
                report.fail(a.job_id, Some(&a.label), &a.name, e);
                return;
            }
        }
        for f in a.files.keys() {
            let path = dir.join(f);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                report.fail(
                    a.job_id,
                    Some(&a.label),
                    &a.name,
                    format!("cannot remove {}: {e}", path.display()),
                );
            }
        }
    }

    /// Registers the task from a `.new` file in the state folder, which becomes the state copy
    /// only once schtasks accepted it (so a failed registration is tried again next sync).
    fn register_task(&self, dir: &Path, a: &Artifact, report: &mut Report) {
        for (f, content) in &a.files {
            let fin = dir.join(f);
            let tmp = dir.join(format!("{f}.new"));
            if let Err(e) = std::fs::write(&tmp, content) {
                report.fail(
                    a.job_id,
                    Some(&a.label),
                    &a.name,
                    format!("cannot write {}: {e}", tmp.display()),
                );
                continue;
            }
            let tmp_s = tmp.to_string_lossy().into_owned();
            let args = create_args(&a.name, &tmp_s);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let result = self.schtasks(&args, report);
            match result {
                Ok(()) => {
                    if let Err(e) = std::fs::rename(&tmp, &fin) {
                        report.fail(
                            a.job_id,
                            Some(&a.label),
                            &a.name,
                            format!("cannot record {}: {e}", fin.display()),
                        );
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    report.fail(a.job_id, Some(&a.label), &a.name, e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_list_keeps_our_folder_and_prefix_only() {
        let csv = "\"\\restic-fleet\\restic-fleet-sync\",\"28.11.2026 10:05:00\",\"Bereit\"\r\n\
                   \"\\restic-fleet\\restic-fleet-job-1\",\"N/A\",\"Ready\"\n\
                   \"\\restic-fleet\\someone-else\",\"N/A\",\"Ready\"\n\
                   \"\\Microsoft\\restic-fleet-sync\",\"N/A\",\"Ready\"\n\
                   \"\\restic-fleet\\sub\\restic-fleet-x\",\"N/A\",\"Ready\"\n\
                   \n\
                   INFO: garbage\n";
        let names: Vec<String> = parse_task_list(csv).into_iter().collect();
        assert_eq!(names, ["restic-fleet-job-1", "restic-fleet-sync"]);
    }

    #[test]
    fn argv_quoting_follows_command_line_to_argv() {
        assert_eq!(argv_quote("run"), "run");
        assert_eq!(argv_quote(""), "\"\"");
        assert_eq!(
            argv_quote("C:\\Program Files\\x"),
            "\"C:\\Program Files\\x\""
        );
        assert_eq!(argv_quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(argv_quote("a b\\"), "\"a b\\\\\"");
        assert_eq!(argv_quote("a\\\\\" b"), "\"a\\\\\\\\\\\" b\"");
        assert_eq!(argv_quote("C:\\dir\\"), "C:\\dir\\");
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            xml_escape("<a href=\"x\">&'\u{1}</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}&lt;/a&gt;"
        );
        let bytes = utf16le("Ú<");
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
        assert_eq!(from_utf16le(&bytes).unwrap(), "Ú<");
    }
}
