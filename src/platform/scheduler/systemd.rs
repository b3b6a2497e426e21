//! The systemd backend: one `.service` and one `.timer` per job, plus the sync timer.
//!
//! Our units are named `restic-fleet-*` and start with [`MARKER`]; a file without both is never
//! changed or removed. Values from the database never reach a unit file unescaped: the only
//! database value in `ExecStart=` is the job UUID, and descriptions are reduced to printable
//! text with `%` doubled and `\` replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use minijinja::{Environment, context};

use crate::domain::calendar::Schedule;
use crate::platform::scheduler::backend::{Artifact, Backend, Changes};
use crate::platform::scheduler::catch_up::{self, CatchUp, Systemctl};
use crate::platform::scheduler::names::{self, CATCH_UP_TEMPLATE, MAINTENANCE, PREFIX, SYNC};
use crate::platform::scheduler::plan::{JobPlan, Plan};
use crate::platform::scheduler::report::Report;

/// First line of every unit we write.
pub const MARKER: &str =
    "# Managed by restic-fleet (restic-fleet sync regenerates this file; edits are overwritten)";

const JOB_SERVICE: &str = include_str!("../../../templates/job.service");
const JOB_TIMER: &str = include_str!("../../../templates/job.timer");
const SYNC_SERVICE: &str = include_str!("../../../templates/sync.service");
const SYNC_TIMER: &str = include_str!("../../../templates/sync.timer");
const MAINTENANCE_SERVICE: &str = include_str!("../../../templates/maintenance.service");
const MAINTENANCE_TIMER: &str = include_str!("../../../templates/maintenance.timer");

/// Quotes one command-line word for `ExecStart=`: double quotes with C escapes, `%` and `$`
/// doubled so that neither specifiers nor variables expand.
pub fn exec_quote(word: &str) -> String {
    quote(word, true)
}

/// One `Environment=` assignment, quoted: C escapes and `%` doubled as in [`exec_quote`], but
/// `$` kept, since systemd expands no variables there.
pub fn environment_quote(name: &str, value: &str) -> String {
    quote(&format!("{name}={value}"), false)
}

fn quote(word: &str, double_dollar: bool) -> String {
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            '$' if double_dollar => out.push_str("$$"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Free text for `Description=`: one line, printable (control and bidi characters written as
/// `U+XXXX`), no specifiers, no line continuation.
pub fn description_text(text: &str) -> String {
    let line = crate::domain::text::description_line(text);
    format!("({})", line.replace('%', "%%").replace('\\', "/"))
}

fn exec_start(plan: &Plan, args: &[&str]) -> String {
    let mut words = vec![
        exec_quote(&plan.binary.to_string_lossy()),
        "--config".to_string(),
        exec_quote(&plan.config_path.to_string_lossy()),
    ];
    words.extend(args.iter().map(|a| exec_quote(a)));
    words.join(" ")
}

/// The `Environment=` lines' values of every unit.
fn environment(plan: &Plan) -> Vec<String> {
    plan.environment
        .iter()
        .map(|(name, value)| environment_quote(name, value))
        .collect()
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env
}

fn render(template: &str, ctx: minijinja::Value) -> anyhow::Result<Vec<u8>> {
    let env = env();
    Ok(env.render_str(template, ctx)?.into_bytes())
}

/// The default unit directory: system units as root, user units otherwise.
pub fn default_unit_dir(user: bool) -> PathBuf {
    if !user {
        return PathBuf::from("/etc/systemd/system");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("systemd").join("user")
}

pub struct Systemd {
    pub unit_dir: PathBuf,
    /// The unit directory was given (`sync --unit-dir`): the sync unit's own sync gets it too.
    pub unit_dir_given: bool,
    /// The setting `run_on_battery` (false adds `ConditionACPower=true` to the job units and
    /// the catch-up template).
    pub run_on_battery: bool,
    /// `systemctl --user` instead of the system manager.
    pub user: bool,
    pub dry_run: bool,
}

impl Systemd {
    fn systemctl(&self, args: &[&str], report: &mut Report, usable: &mut Option<bool>) {
        if *usable == Some(false) {
            return;
        }
        let mut full: Vec<&str> = Vec::new();
        if self.user {
            full.push("--user");
        }
        full.extend_from_slice(args);
        let line = format!("systemctl {}", full.join(" "));
        let Ok(program) = which::which("systemctl") else {
            *usable = Some(false);
            report.warnings.push(format!(
                "systemctl was not found: unit files were written to {} but the timers are NOT \
                 active (enable them on a machine running systemd)",
                self.unit_dir.display()
            ));
            return;
        };
        report.commands.push(line.clone());
        match Command::new(program).args(&full).output() {
            Ok(out) if out.status.success() => *usable = Some(true),
            Ok(out) => {
                let err = catch_up::stderr_line(&out.stderr);
                if err.contains("not been booted with systemd")
                    || err.contains("Failed to connect to bus")
                    || err.contains("System has not been booted")
                {
                    *usable = Some(false);
                    report.warnings.push(format!(
                        "systemd is not running here ({err}): unit files were written to {} but \
                         the timers are NOT active",
                        self.unit_dir.display()
                    ));
                } else {
                    report.fail(None, None, &line, format!("`{line}` failed: {err}"));
                }
            }
            Err(e) => report.fail(None, None, &line, format!("could not run `{line}`: {e}")),
        }
    }

    /// A job's `.service` and `.timer`, named after its UUID.
    fn job_units(&self, plan: &Plan, jp: &JobPlan) -> anyhow::Result<Artifact> {
        let stem = names::job_artifact_stem(jp.job.id);
        let job_id = jp.job.id.to_string();
        let (on_calendar, intervals) = timer_lines(plan, jp);
        let description = description_text(&jp.job.name);
        let service = render(
            JOB_SERVICE,
            context! {
                marker => MARKER,
                what => "backup",
                job_id => &job_id,
                description => &description,
                exec_start => exec_start(plan, &["run", &job_id, "--triggered-by", "schedule"]),
                environment => environment(plan),
                run_on_battery => self.run_on_battery,
            },
        )?;
        let timer = render(
            JOB_TIMER,
            context! {
                marker => MARKER,
                job_id => &job_id,
                description => &description,
                on_calendar => on_calendar,
                intervals => intervals,
                jitter => plan.jitter_seconds,
                service => format!("{stem}.service"),
            },
        )?;
        let mut files = BTreeMap::new();
        files.insert(format!("{stem}.service"), service);
        files.insert(format!("{stem}.timer"), timer);
        Ok(Artifact {
            name: stem,
            job_id: Some(jp.job.id),
            label: jp.job.name.clone(),
            files,
        })
    }

    /// The sync `.service` and `.timer`, and the catch-up template unit that belongs with them.
    fn sync_units(&self, plan: &Plan) -> anyhow::Result<Artifact> {
        let unit_dir = self.unit_dir.to_string_lossy();
        let sync_args: &[&str] = if self.unit_dir_given {
            &["sync", "--unit-dir", &unit_dir]
        } else {
            &["sync"]
        };
        let sync_service = render(
            SYNC_SERVICE,
            context! {
                marker => MARKER,
                exec_start => exec_start(plan, sync_args),
                environment => environment(plan),
            },
        )?;
        let sync_timer = render(
            SYNC_TIMER,
            context! {
                marker => MARKER,
                interval => plan.sync_interval_seconds.max(60),
                service => format!("{SYNC}.service"),
            },
        )?;
        // The catch-up template has the job unit's settings; `%i` is the job UUID.
        let catch_up = render(
            JOB_SERVICE,
            context! {
                marker => MARKER,
                what => "backup",
                job_id => "%i",
                description => "(catch-up of a missed run)",
                exec_start => format!(
                    "{} %i {} {}",
                    exec_start(plan, &["run"]),
                    exec_quote("--triggered-by"),
                    exec_quote("missed")
                ),
                environment => environment(plan),
                run_on_battery => self.run_on_battery,
            },
        )?;
        let mut files = BTreeMap::new();
        files.insert(CATCH_UP_TEMPLATE.to_string(), catch_up);
        files.insert(format!("{SYNC}.service"), sync_service);
        files.insert(format!("{SYNC}.timer"), sync_timer);
        Ok(Artifact {
            name: SYNC.to_string(),
            job_id: None,
            label: "sync".to_string(),
            files,
        })
    }
}

/// A job timer's `OnCalendar=` lines and `OnUnitActiveSec=` intervals, each once.
fn timer_lines(plan: &Plan, jp: &JobPlan) -> (Vec<String>, Vec<u64>) {
    let mut on_calendar: Vec<String> = Vec::new();
    let mut intervals: Vec<u64> = Vec::new();
    for (row, schedule) in &jp.schedules {
        match schedule {
            Schedule::Cron(expr) => {
                for l in crate::domain::calendar::systemd::on_calendar_lines(
                    expr,
                    &plan.tz,
                    plan.now,
                    crate::domain::calendar::HORIZON_DAYS,
                ) {
                    if !on_calendar.contains(&l) {
                        on_calendar.push(l);
                    }
                }
            }
            Schedule::Interval { seconds } => {
                if !intervals.contains(seconds) {
                    intervals.push(*seconds)
                }
                // OnUnitActiveSec= counts from the unit's last start, which manual and
                // catch-up runs do not move; a dated line fires at the slot the
                // database holds, and every sync after a run moves it on.
                if let Some(slot) = row.next_run_at {
                    let slot = crate::domain::calendar::whole_second_at_or_after(slot);
                    let line = format!("{} UTC", slot.format("%Y-%m-%d %H:%M:%S"));
                    if !on_calendar.contains(&line) {
                        on_calendar.push(line);
                    }
                }
            }
        }
    }
    (on_calendar, intervals)
}

impl Backend for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn configure(
        &mut self,
        settings: &crate::domain::settings::Settings,
        _plan: &Plan,
    ) -> anyhow::Result<()> {
        self.run_on_battery = settings.get_bool("run_on_battery", true)?;
        Ok(())
    }

    fn start_catch_up(
        &mut self,
        plan: &Plan,
        job: uuid::Uuid,
        wait: bool,
        report: &mut Report,
    ) -> Result<CatchUp, String> {
        // An instance of the template unit installed with the sync units, so the run has the
        // job unit's directories and conditions.
        let unit = format!("restic-fleet-catchup@{job}.service");
        let mut line = String::from("systemctl");
        if self.user {
            line.push_str(" --user");
        }
        line.push_str(" start");
        if !wait {
            line.push_str(" --no-block");
        }
        report.commands.push(format!("{line} {unit}"));
        match catch_up::systemctl_start(self.user, &unit, wait) {
            Systemctl::Done(code) if wait => Ok(CatchUp::Finished(code)),
            Systemctl::Done(_) => Ok(CatchUp::Scheduled),
            Systemctl::Failed(e) => Err(e),
            Systemctl::Unavailable(why) => {
                report.warnings.push(format!(
                    "systemd is not running here ({why}): the catch-up run of job {job} was \
                     started directly"
                ));
                catch_up::spawn_direct(plan, job).map_err(|e| e.to_string())
            }
        }
    }

    fn render(&self, plan: &Plan) -> anyhow::Result<Vec<Artifact>> {
        let mut out = Vec::new();
        for jp in &plan.jobs {
            out.push(self.job_units(plan, jp)?);
        }
        out.push(self.sync_units(plan)?);
        // The maintenance timer exists on the maintenance owner only.
        if let Some(expr) = &plan.maintenance {
            out.push(maintenance_units(plan, expr)?);
        }
        Ok(out)
    }

    fn installed(&self) -> anyhow::Result<Vec<Artifact>> {
        installed_units(&self.unit_dir)
    }

    fn apply(&mut self, changes: &Changes, report: &mut Report) -> anyhow::Result<()> {
        if self.dry_run || changes.is_empty() {
            return Ok(());
        }
        let mut usable = None;
        for a in &changes.remove {
            self.systemctl(
                &["disable", "--now", &format!("{}.timer", a.name)],
                report,
                &mut usable,
            );
            for f in a.files.keys() {
                let path = self.unit_dir.join(f);
                if let Err(e) = std::fs::remove_file(&path) {
                    report.fail(
                        a.job_id,
                        Some(&a.label),
                        &a.name,
                        format!("cannot remove {}: {e}", path.display()),
                    );
                }
            }
        }
        std::fs::create_dir_all(&self.unit_dir)?;
        let mut foreign = Vec::new();
        for a in changes.add.iter().chain(&changes.update) {
            // A file with our name but without our marker is someone else's: never touched.
            if let Some(f) = a.files.keys().find(|f| is_foreign(&self.unit_dir.join(f))) {
                report.fail(
                    a.job_id,
                    Some(&a.label),
                    &a.name,
                    format!(
                        "{} exists but was not written by restic-fleet (its first line is not \
                         the marker), so it is left alone; move it away and run sync again",
                        self.unit_dir.join(f).display()
                    ),
                );
                foreign.push(a.name.clone());
                continue;
            }
            for (f, content) in &a.files {
                if let Err(e) = write_atomic(&self.unit_dir.join(f), content) {
                    report.fail(
                        a.job_id,
                        Some(&a.label),
                        &a.name,
                        format!("cannot write {f}: {e}"),
                    );
                }
            }
        }
        self.systemctl(&["daemon-reload"], report, &mut usable);
        for a in changes.add.iter().filter(|a| !foreign.contains(&a.name)) {
            self.systemctl(
                &["enable", "--now", &format!("{}.timer", a.name)],
                report,
                &mut usable,
            );
        }
        for a in changes.update.iter().filter(|a| !foreign.contains(&a.name)) {
            self.systemctl(
                &["restart", &format!("{}.timer", a.name)],
                report,
                &mut usable,
            );
        }
        Ok(())
    }
}

/// `restic-fleet-maintenance.service` and `.timer` of the maintenance owner, firing at the
/// maintenance schedule.
fn maintenance_units(
    plan: &Plan,
    expr: &crate::domain::calendar::CronExpr,
) -> anyhow::Result<Artifact> {
    let on_calendar = crate::domain::calendar::systemd::on_calendar_lines(
        expr,
        &plan.tz,
        plan.now,
        crate::domain::calendar::HORIZON_DAYS,
    );
    let service = render(
        MAINTENANCE_SERVICE,
        context! {
            marker => MARKER,
            exec_start => exec_start(plan, &["maintain"]),
            environment => environment(plan),
        },
    )?;
    let timer = render(
        MAINTENANCE_TIMER,
        context! {
            marker => MARKER,
            schedule => description_text(expr.as_str()),
            on_calendar => on_calendar,
            service => format!("{MAINTENANCE}.service"),
        },
    )?;
    let mut files = BTreeMap::new();
    files.insert(format!("{MAINTENANCE}.service"), service);
    files.insert(format!("{MAINTENANCE}.timer"), timer);
    Ok(Artifact {
        name: MAINTENANCE.to_string(),
        job_id: None,
        label: "maintenance".to_string(),
        files,
    })
}

fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A file at `path` exists and does not start with our marker line.
fn is_foreign(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(content) => content.split(|b| *b == b'\n').next() != Some(MARKER.as_bytes()),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Our units in `dir`: name prefix AND marker line, grouped by stem.
pub fn installed_units(dir: &Path) -> anyhow::Result<Vec<Artifact>> {
    let mut by_stem: BTreeMap<String, Artifact> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot read the unit directory {}: {e}",
                dir.display()
            ));
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_suffix(".service")
            .or_else(|| name.strip_suffix(".timer"))
        else {
            continue;
        };
        if !name.starts_with(PREFIX) || !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        // The catch-up template is installed and removed with the sync units.
        let stem = if name == CATCH_UP_TEMPLATE {
            SYNC
        } else {
            stem
        };
        let Ok(content) = std::fs::read(entry.path()) else {
            continue;
        };
        let first = content.split(|b| *b == b'\n').next().unwrap_or_default();
        if first != MARKER.as_bytes() {
            continue;
        }
        let job_id = names::job_of(stem);
        by_stem
            .entry(stem.to_string())
            .or_insert_with(|| Artifact {
                name: stem.to_string(),
                job_id,
                label: String::new(),
                files: BTreeMap::new(),
            })
            .files
            .insert(name, content);
    }
    Ok(by_stem.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_quote_escapes_everything_systemd_would_interpret() {
        assert_eq!(exec_quote("/usr/bin/x"), "\"/usr/bin/x\"");
        assert_eq!(exec_quote("a b"), "\"a b\"");
        assert_eq!(exec_quote("50%$HOME\"\\"), "\"50%%$$HOME\\\"\\\\\"");
        assert_eq!(exec_quote("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn description_is_one_safe_line() {
        let d = description_text("a%b\\c\nd\u{202e}e");
        assert_eq!(d, "(a%%b/cU+000AdU+202Ee)");
        assert!(!d.contains('\n'));
    }
}
