//! Relica hooks as job hooks: a backup's `hooks[]` become the job's `before` and `finally`
//! commands, checked by the same rule as hooks written with `job monitor`.

use super::document::Backup;
use super::planned::JobHooks;
use crate::domain::hook_command::validate_command;

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
        if validate_command(cmd).is_err() {
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
