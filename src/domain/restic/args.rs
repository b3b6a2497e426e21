//! The allow-list of `backup_jobs.restic_args`: extra options that only tune what and how to
//! back up. The database decides what a device executes, so anything that could run a program
//! (`--password-command`, `-o sftp.command=...`, `-o rclone.program=...`), change where or as
//! whom the backup goes (`--repo`, `--password-file`, `--host`, `--tag`, `-o s3.region=...`),
//! or add source paths (`--files-from`, positional arguments, `--`) is refused, naming the
//! argument.
//!
//! [`validated`] is called where restic_args is written (`job add`, `job edit`) and again by
//! `run` before restic starts, so a row written with plain SQL cannot slip through. Every later
//! thing the database can make a device execute or contact (hooks, ping URLs, backend
//! environment) follows the same rule: validated where written and where used, and writable by
//! admins only (row-level security of migration 006).

use serde_json::Value;

/// How an allowed option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A switch (`--force`; `--force=false` is accepted too).
    Nothing,
    /// A value: `--opt=V`, `--opt V`, or for a short form `-eV`, `-e V`.
    Value,
    /// `-o KEY=VALUE` / `--option KEY=VALUE`, KEY checked by [`option_key_allowed`].
    BackendOption,
}

/// (long name, short letter, how it takes a value). restic 0.14 to 0.19 `backup` options.
const ALLOWED: &[(&str, Option<char>, Takes)] = &[
    ("exclude", Some('e'), Takes::Value),
    ("iexclude", None, Takes::Value),
    ("exclude-file", None, Takes::Value),
    ("iexclude-file", None, Takes::Value),
    ("exclude-caches", None, Takes::Nothing),
    ("exclude-if-present", None, Takes::Value),
    ("exclude-larger-than", None, Takes::Value),
    ("exclude-cloud-files", None, Takes::Nothing),
    ("one-file-system", Some('x'), Takes::Nothing),
    ("limit-upload", None, Takes::Value),
    ("limit-download", None, Takes::Value),
    ("compression", None, Takes::Value),
    ("pack-size", None, Takes::Value),
    ("read-concurrency", None, Takes::Value),
    ("no-scan", None, Takes::Nothing),
    ("skip-if-unchanged", None, Takes::Nothing),
    ("with-atime", None, Takes::Nothing),
    ("ignore-inode", None, Takes::Nothing),
    ("ignore-ctime", None, Takes::Nothing),
    ("force", Some('f'), Takes::Nothing),
    ("use-fs-snapshot", None, Takes::Nothing),
    ("group-by", Some('g'), Takes::Value),
    ("retry-lock", None, Takes::Value),
    ("no-cache", None, Takes::Nothing),
    ("cleanup-cache", None, Takes::Nothing),
    ("option", Some('o'), Takes::BackendOption),
];

/// Options refused with a reason of their own (everything not in [`ALLOWED`] is refused too).
const REFUSED: &[(&str, &str)] = &[
    ("password-command", "runs a program"),
    ("password-file", "changes the repository password"),
    ("insecure-no-password", "changes the repository password"),
    ("key-hint", "changes the repository key"),
    ("repo", "sends the backup to another repository"),
    ("r", "sends the backup to another repository"),
    ("repository-file", "sends the backup to another repository"),
    (
        "host",
        "changes as whom the backup goes (the host is the device id)",
    ),
    (
        "H",
        "changes as whom the backup goes (the host is the device id)",
    ),
    (
        "tag",
        "changes as whom the backup goes (tags are set by restic-fleet)",
    ),
    ("files-from", "adds source paths outside the job"),
    ("files-from-raw", "adds source paths outside the job"),
    ("files-from-verbatim", "adds source paths outside the job"),
    ("stdin", "backs up something else than the job's paths"),
    ("stdin-from-command", "runs a program"),
    (
        "stdin-filename",
        "backs up something else than the job's paths",
    ),
    ("cacert", "changes whom the backup trusts"),
    ("tls-client-cert", "changes as whom the backup connects"),
    ("insecure-tls", "changes whom the backup trusts"),
    ("cache-dir", "writes outside the cache restic-fleet sets"),
    ("parent", "makes the snapshot depend on another snapshot"),
    ("time", "forges the snapshot time"),
];

/// `-o` keys that cannot start a program nor change where the backup goes.
fn option_key_allowed(key: &str) -> bool {
    let Some((backend, name)) = key.split_once('.') else {
        return false;
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !plain(backend) || !plain(name) {
        return false;
    }
    // rclone.* as a whole: the backend itself is a program restic starts.
    (name == "connections" && backend != "rclone")
        || matches!(
            key,
            "s3.storage-class" | "s3.list-objects-v1" | "azure.access-tier"
        )
}

/// restic_args as stored (a JSON array of strings, or NULL), checked against the allow-list.
/// The error is one sentence naming the offending argument.
pub fn validated(value: Option<&Value>) -> Result<Vec<String>, String> {
    let args = crate::domain::job::restic_args(value)?;
    check(&args)?;
    Ok(args)
}

/// Checks a list of extra restic arguments against the allow-list.
pub fn check(args: &[String]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (name, inline, long) = if let Some(rest) = arg.strip_prefix("--") {
            if rest.is_empty() {
                return Err(refusal(
                    arg,
                    "ends the options, so what follows would be backed up as extra source paths; \
                     give paths with `job edit --path`",
                ));
            }
            match rest.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string()), true),
                None => (rest.to_string(), None, true),
            }
        } else if let Some(rest) = arg.strip_prefix('-').filter(|r| !r.is_empty()) {
            let mut chars = rest.chars();
            let letter = chars.next().map(String::from).unwrap_or_default();
            let tail: String = chars.collect();
            (letter, (!tail.is_empty()).then_some(tail), false)
        } else {
            return Err(refusal(
                arg,
                "is a positional argument and would be backed up as an extra source path; give \
                 paths with `job edit --path`",
            ));
        };
        if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
            return Err(refusal(arg, why));
        }
        let found = ALLOWED.iter().find(|(l, s, _)| {
            if long {
                *l == name
            } else {
                s.map(String::from).as_deref() == Some(name.as_str())
            }
        });
        let Some(&(_, _, takes)) = found else {
            return Err(refusal(
                arg,
                "is not on the allow-list of restic options that only tune what and how to back \
                 up (see README, \"restic arguments\")",
            ));
        };
        match takes {
            Takes::Nothing => {
                if let Some(v) = &inline
                    && (!long || !matches!(v.as_str(), "true" | "false"))
                {
                    return Err(refusal(
                        arg,
                        "is a switch; give it alone (options cannot be combined in one \
                         argument)",
                    ));
                }
            }
            Takes::Value | Takes::BackendOption => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return Err(refusal(arg, "needs a value after it")),
                        }
                    }
                };
                if takes == Takes::BackendOption {
                    let key = value.split_once('=').map(|(k, _)| k).unwrap_or(&value);
                    if !option_key_allowed(key) {
                        return Err(format!(
                            "restic argument {arg:?} with {value:?} is not allowed: backend option \
                             {key:?} could start a program or change where the backup goes; only \
                             BACKEND.connections (not rclone), s3.storage-class, \
                             s3.list-objects-v1 and azure.access-tier may be set"
                        ));
                    }
                }
            }
        }
        i += 1;
    }
    Ok(())
}

fn refusal(arg: &str, why: &str) -> String {
    format!("restic argument {arg:?} is not allowed: it {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        assert_eq!(check(&v), Ok(()), "{args:?}");
    }

    fn refused(args: &[&str], names: &str) {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let e = check(&v).expect_err(&format!("{args:?} must be refused"));
        assert!(e.contains(names), "{e}");
    }

    #[test]
    fn tuning_options_pass() {
        ok(&[]);
        ok(&["--exclude-caches", "--one-file-system", "-x"]);
        ok(&[
            "--exclude-if-present",
            ".nobackup",
            "--exclude-larger-than=1G",
        ]);
        ok(&["--iexclude", "*.TMP", "-e", "*.tmp", "-e*.bak"]);
        ok(&["--limit-upload", "1000", "--limit-download=500"]);
        ok(&[
            "--compression",
            "max",
            "--pack-size=64",
            "--read-concurrency",
            "4",
        ]);
        ok(&[
            "--no-scan",
            "--skip-if-unchanged",
            "--with-atime",
            "--ignore-inode",
        ]);
        ok(&[
            "--ignore-ctime",
            "--force",
            "--use-fs-snapshot",
            "--force=false",
        ]);
        ok(&["-o", "s3.connections=10", "--option=sftp.connections=2"]);
        ok(&["-o", "s3.storage-class=STANDARD_IA", "-os3.connections=3"]);
    }

    #[test]
    fn dangerous_options_are_refused_by_name() {
        refused(
            &["--password-command", "sh -c 'id'"],
            "\"--password-command\"",
        );
        refused(&["--password-command=sh"], "runs a program");
        refused(&["--password-file", "/x"], "--password-file");
        refused(&["--repo", "/other"], "another repository");
        refused(&["-r", "/other"], "\"-r\"");
        refused(&["-r/other"], "another repository");
        refused(&["--repository-file=/x"], "another repository");
        refused(&["--host", "other"], "--host");
        refused(&["--tag", "x"], "--tag");
        refused(&["--files-from", "/list"], "outside the job");
        refused(&["--files-from-raw=/list"], "outside the job");
        refused(&["--stdin-from-command"], "runs a program");
        refused(&["-o", "sftp.command=ssh evil"], "sftp.command");
        refused(&["-o", "sftp.args=-oProxyCommand=x"], "sftp.args");
        refused(&["--option=rclone.program=/bin/sh"], "rclone.program");
        refused(&["-o", "rclone.args=serve"], "rclone.args");
        refused(&["-o", "rclone.connections=2"], "rclone.connections");
        refused(&["-o", "s3.region=elsewhere"], "s3.region");
        refused(&["-o"], "needs a value");
        refused(&["--", "/etc"], "\"--\"");
        refused(&["/etc"], "\"/etc\"");
        refused(&["--one-file-system", "/etc"], "positional");
        refused(&["--verbose"], "allow-list");
        refused(&["-xv"], "\"-xv\"");
        refused(&["--force=yes"], "switch");
        refused(&["--exclude"], "needs a value");
    }

    #[test]
    fn stored_value_is_checked_too() {
        assert!(validated(Some(&serde_json::json!(["--exclude-caches"]))).is_ok());
        assert!(validated(Some(&serde_json::json!(["--repo", "/x"]))).is_err());
        assert!(validated(Some(&serde_json::json!("--repo"))).is_err());
        assert!(validated(None).unwrap().is_empty());
    }
}
